"""Fine-tune the VAE decoder on the token maps the env actually decodes.

    mirage-gym train decoder --out-dir checkpoints/tiny/decoder

Why: at a return the latent memory gives back the very tokens it stored,
but the cells it does not store (sky, moving objects) are generated, and a
decoder trained only on encoder output spreads those tokens into the pinned
pixels around them (scripts/return_breakdown.py: room 1,000,004 decodes its
pinned pixels at 24.0 dB against 27.6 for the whole encoding). Here the
decoder sees such token maps: the coverage masks, contexts and camera
motions of the denoiser's :class:`SampleMaker` (memory exactly as the env
builds it), with the frame's own tokens in the covered cells (what the
memory gives back at a return) and the frozen denoiser's samples in the
rest, and learns to give the ground-truth frame. Pinned pixels carry full
weight, generated ones ``generated_weight`` (in unseen space their truth is
a guess). The other half of each batch is a plain reconstruction with the
VAE's own loss. Only the decoder trains: the encoder, and with it the latent
statistics, geometry head and denoiser, are unchanged, so the result
exports beside them (``mirage-gym train export --vae-dir``).

A first version fed the warped memory itself (not the frame's tokens) into
the covered cells: generated frames gained (held-out one-segment PSNR 20.7
-> 21.9 dB at 400 steps) but plain reconstruction lost 0.9 dB and with it
revisits (leave-and-return 26.69 -> 26.27 dB), since the decoder learned to
undo warp blur at the cost of sharp tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ..images import to_model
from ..models.tiny.config import TinyConfig
from ..models.tiny.pipeline import COVERED, MemoryResidualSampler, condition
from .frozen import load_or_measure_stats, load_trained_geometry, load_trained_sampler, load_trained_vae
from .loop import LoopArgs, train
from .pool import SamplePool
from .train_denoiser import SampleMaker, evaluate_denoiser
from .train_vae import edge_loss, evaluate_vae, vae_loss


@dataclass
class DecoderArgs(LoopArgs):
    out_dir: str = "checkpoints/tiny/decoder"
    init_from: str = "checkpoints/tiny/vae"  # the trained VAE whose decoder this fine-tunes (its encoder stays)
    geometry_dir: str = "checkpoints/tiny/geometry"
    denoiser_dir: str = "checkpoints/tiny/denoiser"  # the frozen denoiser whose samples are decoded
    steps: int = 2_000
    batch_size: int = 16  # half generated token maps, half plain reconstructions
    lr: float = 2e-4
    warmup: int = 50
    trajectory_length: int = 12
    pool_size: int = 1500
    refill: float = 0.5  # trajectories added to the pool per step
    rollout_fraction: float = 0.25  # share of trajectories whose frames the denoiser generates (as in the env)
    generated_weight: float = 0.2  # loss weight of pixels in cells the sampler generates (1 where memory pins)


def pixel_weights(mask: torch.Tensor, cfg: TinyConfig, generated_weight: float) -> torch.Tensor:
    """(N, 1, H, W) loss weights: 1 on the pixels of cells the memory shows
    (coverage >= pipeline.COVERED once gaps are closed), ``generated_weight``
    on generated cells."""
    _, covered, _, _ = condition(torch.zeros(mask.shape[0], 1, *mask.shape[1:]), mask, torch.zeros_like(mask), cfg.gap_support)
    pinned = (covered >= COVERED).float()[:, None]
    cells = pinned + generated_weight * (1 - pinned)
    return F.interpolate(cells, scale_factor=cfg.downsample, mode="nearest")


def generated_decode_loss(vae, sampler: MemoryResidualSampler, batch: dict, cfg: TinyConfig, scale: tuple,
                          generated_weight: float) -> dict:
    """Decode the sampler's latent for each sample and compare with the
    ground-truth frame, weighted by :func:`pixel_weights`."""
    std, mean = scale
    with torch.no_grad():
        noise = torch.randn(batch["target"].shape)
        # memory = the frame's own tokens: what the memory holds at a return
        latent = sampler(batch["context"], batch["target"], batch["mask"], batch["plucker"], noise,
                         observed=torch.ones_like(batch["mask"]), prior=batch["prior"])
    recon = vae.decode(latent * std + mean).sample
    truth = to_model(batch["rgb"])
    weight = pixel_weights(batch["mask"], cfg, generated_weight)  # (N, 1, H, W)
    diff = recon - truth
    l1 = (diff.abs() * weight).mean() / weight.mean()
    mse = (diff.pow(2) * weight).mean() / weight.mean()
    return {"loss": l1 + mse + 0.1 * edge_loss(recon, truth), "l1_gen": l1.detach()}


def main(args: DecoderArgs) -> dict:
    cfg = TinyConfig()
    vae = load_trained_vae(args.init_from, cfg)  # a resumed run loads its own checkpoint over it
    cfg = load_or_measure_stats(Path(args.init_from).parent, vae, cfg)
    geometry = load_trained_geometry(args.geometry_dir, cfg)
    sampler = load_trained_sampler(args.denoiser_dir, cfg)
    unet = sampler.denoiser
    maker = SampleMaker(vae, geometry, cfg)
    scale = (maker.std, maker.mean)
    vae.decoder.requires_grad_(True)
    keys = ("context", "mask", "prior", "plucker", "target")  # the memory itself is replaced by the target (see the loss)

    def trajectory_samples(rng):
        with torch.no_grad():
            s = maker(rng, args.trajectory_length, noise=False,
                      rollout=sampler if rng.random() < args.rollout_fraction else None)
        return [{**{k: s[k][i] for k in keys}, "rgb": torch.from_numpy(s["rgb"][int(s["index"][i])])}
                for i in range(s["target"].shape[0])]

    pool = SamplePool(trajectory_samples, args.pool_size, warm=20 * args.trajectory_length, refill=args.refill)

    def loss_fn(model, rng):
        batch = pool.batch(rng, args.batch_size)
        half = args.batch_size // 2
        generated = {k: v[:half] for k, v in batch.items()}
        clean = to_model(batch["rgb"][half:])
        gen = generated_decode_loss(model, sampler, generated, cfg, scale, args.generated_weight)
        rec = vae_loss(model, clean)
        return {"loss": gen["loss"] + rec["loss"], "l1_gen": gen["l1_gen"], "l1_rec": rec["l1"]}

    def evaluate(step):
        return {**evaluate_vae(vae, cfg.image_size), **evaluate_denoiser(unet, maker)}

    # the starting decoder scored first, to compare every checkpoint with
    return train(vae, args, loss_fn, evaluate=evaluate, score_start=True, desc="decoder")
