"""Train the geometry head: normalised latent -> per-token depth and static probability.

    mirage-gym train geometry --steps 4000

Targets come from the renderer at the latent grid: the block median of
ground-truth depth (the same reduction the env uses) and "static" = every
pixel of the block is static (not sky, not a moving object).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..geometry import depth_to_grid, mask_to_grid
from ..images import to_model
from ..models.tiny.config import TinyConfig
from ..models.tiny.networks import GeometryHead
from .data import random_views
from .frozen import load_or_measure_stats, load_trained_vae
from .loop import LoopArgs, train


def geometry_targets(views: dict, grid: int) -> tuple[torch.Tensor, torch.Tensor]:
    depth = depth_to_grid(torch.from_numpy(views["depth"]), grid, grid)
    static = mask_to_grid(torch.from_numpy(views["static"]), grid, grid) & torch.isfinite(depth)
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


def main(args: GeometryArgs) -> dict:
    cfg = TinyConfig()
    vae = load_trained_vae(args.vae_dir, cfg)
    cfg = load_or_measure_stats(Path(args.vae_dir).parent, vae, cfg)
    mean = torch.tensor(cfg.latent_mean).view(1, -1, 1, 1)
    std = torch.tensor(cfg.latent_std).view(1, -1, 1, 1)
    head = GeometryHead(latent_channels=cfg.latent_channels, width=cfg.geometry_width)
    out = Path(args.out_dir)

    def loss_fn(model, rng):
        views = random_views(rng, args.batch_size, cfg.image_size)
        with torch.no_grad():
            latents = (vae.encode(to_model(views["rgb"])).latents - mean) / std
        depth, static = geometry_targets(views, cfg.latent_size)
        return geometry_loss(model, latents, depth, static)

    def on_checkpoint(step):
        head.eval()
        scores = evaluate_geometry(head, vae, cfg)
        head.train()
        with open(out / "eval.jsonl", "a") as f:
            f.write(json.dumps({"step": step, **scores}) + "\n")

    return train(head, args, loss_fn, on_checkpoint=on_checkpoint, desc="geometry")
