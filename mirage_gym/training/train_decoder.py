"""Fine-tune the VAE decoder on the token maps the env actually decodes.

    mirage-gym train decoder --out-dir checkpoints/tiny/decoder

Why: at a return the latent memory gives back the very tokens it stored,
but the cells it does not store (sky, moving objects) and unseen space are
generated, and a decoder trained only on encoder output spreads those
tokens into the pinned pixels around them (scripts/return_breakdown.py:
room 1,000,004 decodes its pinned pixels at 24.0 dB against 27.6 for the
whole encoding). Here the decoder sees what the env decodes: samples built
by the denoiser's :class:`SampleMaker` (memory exactly as the env builds
it), sampled by the frozen denoiser, and learns to give the ground truth.
Pixels the memory pins carry full weight; generated pixels carry
``generated_weight`` (in unseen space their truth is a guess). The other
half of each batch is a plain reconstruction with the VAE's own loss, so
clean tokens keep their quality. Only the decoder trains: the encoder, and
with it the latent statistics, geometry head and denoiser, are unchanged,
so the result exports beside them (``mirage-gym train export --vae-dir``).
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from ..images import to_model
from ..models.tiny.config import TinyConfig
from ..models.tiny.networks import build_denoiser
from ..models.tiny.pipeline import ResidualFlowSampler, condition
from .frozen import load_or_measure_stats, load_trained_geometry, load_trained_vae
from .loop import LoopArgs, train
from .train_denoiser import SampleMaker, evaluate_denoiser
from .train_vae import edge_loss, evaluate_vae, vae_loss


@dataclass
class DecoderArgs(LoopArgs):
    out_dir: str = "checkpoints/tiny/decoder"
    vae_dir: str = "checkpoints/tiny/vae"  # the VAE whose decoder starts the fine-tune (its encoder stays)
    geometry_dir: str = "checkpoints/tiny/geometry"
    denoiser_dir: str = "checkpoints/tiny/denoiser"  # the frozen denoiser whose samples are decoded
    steps: int = 2_000
    batch_size: int = 16  # half generated token maps, half plain reconstructions
    lr: float = 2e-4
    warmup: int = 50
    trajectory_length: int = 12
    pool_size: int = 1500
    refill_rate: float = 0.5  # trajectories added to the pool per step
    rollout_fraction: float = 0.25  # share of trajectories whose frames the denoiser generates (as in the env)
    generated_weight: float = 0.2  # loss weight of pixels in cells the sampler generates (1 where memory pins)


def load_denoiser(folder, cfg: TinyConfig):
    path = Path(folder) / "model.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"no trained denoiser at {path}: run `mirage-gym train denoiser` first")
    unet = build_denoiser(cfg)
    unet.load_state_dict(load_file(str(path)))
    return unet.eval().requires_grad_(False)


def pinned_pixels(mask: torch.Tensor, cfg: TinyConfig) -> torch.Tensor:
    """(N, 1, H, W) float: 1 on the pixels of cells the sampler takes from memory, else 0."""
    _, covered, _ = condition(torch.zeros(mask.shape[0], 1, *mask.shape[1:]), mask, cfg.memory_pin, cfg.gap_support,
                              cfg.prefill_holes)
    cells = (covered >= cfg.memory_pin).float()[:, None]
    return F.interpolate(cells, scale_factor=cfg.downsample, mode="nearest")


def generated_decode_loss(vae, sampler: ResidualFlowSampler, batch: dict, cfg: TinyConfig, scale: tuple,
                          generated_weight: float) -> dict:
    """Decode the sampler's latent for each sample and compare with the
    ground-truth frame, weighted by :func:`pinned_pixels`."""
    std, mean = scale
    with torch.no_grad():
        noise = torch.randn(batch["target"].shape)
        latent = sampler(batch["context"], batch["memory"], batch["mask"], batch["plucker"], noise)
    recon = vae.decode(latent * std + mean).sample
    truth = to_model(batch["rgb"])
    pinned = pinned_pixels(batch["mask"], cfg)
    weight = pinned + (1 - pinned) * generated_weight  # (N, 1, H, W)
    diff = recon - truth
    l1 = (diff.abs() * weight).mean() / weight.mean()
    mse = (diff.pow(2) * weight).mean() / weight.mean()
    return {"loss": l1 + mse + 0.1 * edge_loss(recon, truth), "l1_gen": l1.detach(), "pinned_share": pinned.mean()}


def main(args: DecoderArgs) -> dict:
    cfg = TinyConfig()
    vae = load_trained_vae(args.vae_dir, cfg)
    cfg = load_or_measure_stats(Path(args.vae_dir).parent, vae, cfg)
    run_args = Path(args.denoiser_dir) / "args.json"
    if run_args.is_file():  # sample as the denoiser was trained
        cfg.prefill_holes = bool(json.loads(run_args.read_text()).get("prefill_holes", False))
    geometry = load_trained_geometry(args.geometry_dir, cfg)
    unet = load_denoiser(args.denoiser_dir, cfg)
    sampler = ResidualFlowSampler(unet, steps=cfg.denoise_steps, pin=cfg.memory_pin, gap_support=cfg.gap_support,
                                  prefill=cfg.prefill_holes)
    maker = SampleMaker(vae, geometry, cfg)
    scale = (maker.std, maker.mean)
    vae.decoder.requires_grad_(True)
    out = Path(args.out_dir)
    pool: deque = deque(maxlen=args.pool_size)
    keys = ("context", "memory", "mask", "plucker", "target")

    def refill(rng):
        with torch.no_grad():
            s = maker(rng, args.trajectory_length, noise=False,
                      rollout=sampler if rng.random() < args.rollout_fraction else None)
        for i in range(s["target"].shape[0]):
            pool.append({**{k: s[k][i] for k in keys}, "rgb": torch.from_numpy(s["rgb"][int(s["index"][i])])})

    def loss_fn(model, rng):
        while len(pool) < min(args.pool_size, 20 * args.trajectory_length):
            refill(rng)
        if rng.random() < args.refill_rate:
            refill(rng)
        half = args.batch_size // 2
        idx = rng.integers(0, len(pool), args.batch_size)
        generated = {k: torch.stack([pool[i][k] for i in idx[:half]]) for k in pool[0]}
        clean = to_model(torch.stack([pool[i]["rgb"] for i in idx[half:]]))
        gen = generated_decode_loss(model, sampler, generated, cfg, scale, args.generated_weight)
        rec = vae_loss(model, clean)
        return {"loss": gen["loss"] + rec["loss"], "l1_gen": gen["l1_gen"], "l1_rec": rec["l1"],
                "pinned_share": gen["pinned_share"]}

    def on_checkpoint(step):
        vae.eval()
        scores = {**evaluate_vae(vae, cfg.image_size), **evaluate_denoiser(unet, maker)}
        vae.train()
        with open(out / "eval.jsonl", "a") as f:
            f.write(json.dumps({"step": step, **scores}) + "\n")

    out.mkdir(parents=True, exist_ok=True)
    if not (out / "eval.jsonl").is_file():
        on_checkpoint(0)  # the starting decoder's scores, to compare every checkpoint with
    return train(vae, args, loss_fn, on_checkpoint=on_checkpoint, desc="decoder")
