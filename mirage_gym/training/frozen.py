"""Load the already-trained parts of the embedded model for the next stage."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from ..models.tiny.config import TinyConfig
from ..models.tiny.networks import GeometryHead, build_vae


def load_trained_vae(checkpoint_dir, cfg: TinyConfig):
    path = Path(checkpoint_dir) / "model.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"no trained VAE at {path}: run `mirage-gym train vae` first")
    vae = build_vae(cfg)
    vae.load_state_dict(load_file(str(path)))
    return vae.eval().requires_grad_(False)


def run_args(folder) -> dict:
    """The arguments a training run in ``folder`` was started with ({} if unknown)."""
    args_file = Path(folder) / "args.json"
    return json.loads(args_file.read_text()) if args_file.is_file() else {}


def trained_with_prefill(folder) -> bool:
    """Whether the denoiser run in ``folder`` took its residual over the hole
    prefill (runs from before the option: over zero)."""
    return bool(run_args(folder).get("prefill_holes", False))


def load_trained_sampler(checkpoint_dir, cfg: TinyConfig):
    """A trained denoiser, frozen, in the sampler the env uses, with the hole
    prefill setting its run was trained with (its args.json; off if unknown)."""
    from ..models.tiny.networks import build_denoiser
    from ..models.tiny.pipeline import ResidualFlowSampler

    folder = Path(checkpoint_dir)
    path = folder / "model.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"no trained denoiser at {path}: run `mirage-gym train denoiser` first")
    unet = build_denoiser(cfg)
    unet.load_state_dict(load_file(str(path)))
    return ResidualFlowSampler(unet.eval().requires_grad_(False), steps=cfg.denoise_steps, pin=cfg.memory_pin,
                               gap_support=cfg.gap_support, prefill=trained_with_prefill(folder))


def load_trained_geometry(checkpoint_dir, cfg: TinyConfig):
    path = Path(checkpoint_dir) / "model.safetensors"
    if not path.is_file():
        return None
    head = GeometryHead(latent_channels=cfg.latent_channels, width=cfg.geometry_width)
    head.load_state_dict(load_file(str(path)))
    return head.eval().requires_grad_(False)


@torch.no_grad()
def latent_stats(vae, images: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of the VAE's raw latents over ``images``."""
    lat = torch.cat([vae.encode(b).latents for b in images.split(32)])
    return lat.mean(dim=(0, 2, 3)).tolist(), lat.std(dim=(0, 2, 3)).clamp(min=1e-3).tolist()


def stats_file(checkpoint_root) -> Path:
    return Path(checkpoint_root) / "latent_stats.json"


def load_or_measure_stats(checkpoint_root, vae, cfg: TinyConfig) -> TinyConfig:
    """The normalisation every later stage uses, measured once per VAE
    checkpoint on training views (re-measured when the VAE changes)."""
    import numpy as np

    from ..images import to_model
    from .data import random_views

    path = stats_file(checkpoint_root)
    vae_step = json.loads((Path(checkpoint_root) / "vae" / "state.json").read_text())["step"]
    stats = json.loads(path.read_text()) if path.is_file() else {}
    if stats.get("vae_step") != vae_step:
        images = to_model(random_views(np.random.default_rng(777), 512, cfg.image_size)["rgb"])
        mean, std = latent_stats(vae, images)
        stats = {"vae_step": vae_step, "latent_mean": mean, "latent_std": std}
        path.write_text(json.dumps(stats, indent=1))
    cfg.latent_mean, cfg.latent_std = stats["latent_mean"], stats["latent_std"]
    return cfg
