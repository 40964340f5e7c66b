"""Train the geometry head: normalised latent -> per-token depth and static probability.

    mirage-gym train geometry --steps 4000

Targets come from the renderer at the latent grid: the block median of
ground-truth depth (the same reduction the env uses) and "static" = every
pixel of the block is static (not sky, not a moving object).

The env writes the model's *own* frames to memory, filtered by this head.
Trained on encodings of real frames only, it let generated sky and moving
objects through: on the turn-away-and-back loop the cells a room's first
view leaves to generation (windows, moving objects) came back pinned after
one loop (held-out rooms 1,000,001 / -03 / -04: pinned share 0.93 / 0.96 /
0.86 -> 1.00 / 0.996 / 0.99; with ground-truth geometry 0.95 -> 0.95 in room
-01). ``--denoiser-dir`` fine-tunes it on a mix: ``generated_fraction`` of
each batch are latents the denoiser generated in rollouts through rooms
(:class:`SampleMaker` with the model's own frames, as in the env), with the
ground-truth depth and static mask of the frame they stand for. Measured
in session 7 (model card): the generated sky still came back pinned and the
revisit figures moved both ways between checkpoints, so the shipped head is
the plain one.

    mirage-gym train geometry --init-from checkpoints/tiny/geometry --denoiser-dir checkpoints/tiny/denoiser \
        --out-dir checkpoints/tiny/geometry_generated --steps 1500 --lr 3e-4
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..geometry import depth_to_grid, mask_to_grid
from ..images import to_model
from ..models.tiny.config import TinyConfig
from ..models.tiny.networks import GeometryHead
from .checkpoint import load_checkpoint
from .data import random_views
from .frozen import load_or_measure_stats, load_trained_geometry, load_trained_sampler, load_trained_vae
from .loop import LoopArgs, train
from .pool import SamplePool


def geometry_targets(views: dict, grid: int) -> tuple[torch.Tensor, torch.Tensor]:
    return grid_targets(views["depth"], views["static"], grid)


def grid_targets(depth_full: np.ndarray, static_full: np.ndarray, grid: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token depth (N, grid, grid) and static mask of full-resolution ground truth (N, H, W)."""
    depth = depth_to_grid(torch.as_tensor(depth_full), grid, grid)
    static = mask_to_grid(torch.as_tensor(static_full), grid, grid) & torch.isfinite(depth)
    return depth, static


def geometry_loss(head, latents, depth, static) -> dict:
    log_depth, logit = head(latents)
    valid = static & torch.isfinite(depth)
    depth_l1 = (log_depth - torch.log(depth.clamp(min=1e-3)))[valid].abs().mean()
    bce = F.binary_cross_entropy_with_logits(logit, static.float())
    return {"loss": depth_l1 + 0.5 * bce, "log_depth_l1": depth_l1.detach(), "static_bce": bce.detach()}


@dataclass
class GeometryArgs(LoopArgs):
    out_dir: str = "checkpoints/tiny/geometry"
    vae_dir: str = "checkpoints/tiny/vae"
    steps: int = 4000
    batch_size: int = 32
    lr: float = 1e-3
    init_from: str = ""  # a checkpoint folder whose weights start a fresh run (ignored when resuming)
    # Fine-tune on the model's own frames too (module docstring); empty: real frames only.
    denoiser_dir: str = ""
    geometry_for_rollouts: str = "checkpoints/tiny/geometry"  # the frozen head that filters the rollouts' memory writes
    generated_fraction: float = 0.5
    trajectory_length: int = 8
    pool_size: int = 2000
    refill: float = 0.25  # rollouts added to the pool per step


@torch.no_grad()
def evaluate_geometry(head, vae, cfg: TinyConfig, count: int = 128) -> dict:
    views = random_views(np.random.default_rng(4321), count, cfg.image_size, held_out=True)
    mean = torch.tensor(cfg.latent_mean).view(1, -1, 1, 1)
    std = torch.tensor(cfg.latent_std).view(1, -1, 1, 1)
    latents = (vae.encode(to_model(views["rgb"])).latents - mean) / std
    depth, static = geometry_targets(views, cfg.latent_size)
    log_depth, logit = head(latents)
    valid = static & torch.isfinite(depth)
    rel = ((log_depth.exp() - depth).abs() / depth)[valid]
    acc = ((logit > 0) == static).float().mean()
    return {"depth_rel_err_median": float(rel.median()), "static_accuracy": float(acc)}


def generated_frames(maker, sampler, trajectory_length: int, held_out: bool = False):
    """``make`` for a :class:`SamplePool` of (latent, depth, static) for the
    frames the denoiser generated in a rollout, each with the ground truth of
    the pose it was generated for."""

    def make(rng: np.random.Generator) -> list[dict]:
        s = maker(rng, trajectory_length, held_out=held_out, rollout=sampler)
        frames = np.arange(1, s["written"].shape[0])  # frame 0 is the real start frame
        depth, static = grid_targets(s["depth_true"][frames], s["static_true"][frames], maker.cfg.latent_size)
        return [{"latent": s["written"][f], "depth": depth[i], "static": static[i]} for i, f in enumerate(frames)]

    return make


@torch.no_grad()
def evaluate_on_generated(head, frames: SamplePool) -> dict:
    """Static accuracy and *precision* (share of cells called static that
    are: a false "static" lets generated sky into memory) on held-out rollouts."""
    latents, depth, static = (torch.stack([it[k] for it in frames.items]) for k in ("latent", "depth", "static"))
    log_depth, logit = head(latents)
    called = logit > 0
    valid = static & torch.isfinite(depth)
    rel = ((log_depth.exp() - depth).abs() / depth)[valid]
    return {"gen_static_accuracy": float((called == static).float().mean()),
            "gen_static_precision": float(static[called].float().mean()), "gen_depth_rel_err_median": float(rel.median())}


def main(args: GeometryArgs) -> dict:
    cfg = TinyConfig()
    vae = load_trained_vae(args.vae_dir, cfg)
    cfg = load_or_measure_stats(Path(args.vae_dir).parent, vae, cfg)
    mean = torch.tensor(cfg.latent_mean).view(1, -1, 1, 1)
    std = torch.tensor(cfg.latent_std).view(1, -1, 1, 1)
    head = GeometryHead(latent_channels=cfg.latent_channels, width=cfg.geometry_width)
    out = Path(args.out_dir)
    if args.init_from and not (out / "state.json").is_file():
        load_checkpoint(args.init_from, head)  # weights only: a fresh optimizer and schedule
    generated = held_out = None
    if args.denoiser_dir:
        generated, held_out = _generated_pools(args, vae, cfg)
    n_generated = int(round(args.batch_size * args.generated_fraction)) if generated else 0

    def loss_fn(model, rng):
        views = random_views(rng, args.batch_size - n_generated, cfg.image_size)
        with torch.no_grad():
            latents = (vae.encode(to_model(views["rgb"])).latents - mean) / std
        depth, static = geometry_targets(views, cfg.latent_size)
        if n_generated:
            g = generated.batch(rng, n_generated)
            latents, depth, static = torch.cat([latents, g["latent"]]), torch.cat([depth, g["depth"]]), torch.cat([static, g["static"]])
        return geometry_loss(model, latents, depth, static)

    def evaluate(step):
        scores = evaluate_geometry(head, vae, cfg)
        if held_out is not None:
            scores.update(evaluate_on_generated(head, held_out))
        return scores

    # a fine-tune scores its starting head first, to compare every checkpoint with
    return train(head, args, loss_fn, evaluate=evaluate, score_start=bool(args.init_from), desc="geometry")


def _generated_pools(args: GeometryArgs, vae, cfg: TinyConfig) -> tuple[SamplePool, SamplePool]:
    """(training pool, fixed held-out pool) of frames the frozen denoiser generates."""
    from .train_denoiser import SampleMaker

    maker = SampleMaker(vae, load_trained_geometry(args.geometry_for_rollouts, cfg), cfg)
    sampler = load_trained_sampler(args.denoiser_dir, cfg)
    held_out = SamplePool(generated_frames(maker, sampler, args.trajectory_length, held_out=True), 10_000, warm=0, refill=0)
    rng = np.random.default_rng(2468)
    for _ in range(6):
        held_out.add(rng)
    training = SamplePool(generated_frames(maker, sampler, args.trajectory_length), args.pool_size,
                          warm=8 * args.trajectory_length, refill=args.refill)
    return training, held_out
