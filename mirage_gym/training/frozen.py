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


def is_weights_folder(path) -> bool:
    """A folder written by ``mirage-gym train export`` (the shipped weights are one)."""
    from ..models.tiny.world_model import MARKER

    return (Path(path) / MARKER).is_file()


def weights_config(folder) -> TinyConfig:
    """The config a weights folder was exported with (sizes, sampler settings, latent statistics)."""
    return TinyConfig.from_dict(json.loads((Path(folder) / "world_model.json").read_text())["config"])


def load_frozen_codec(vae_dir, geometry_dir, cfg: TinyConfig):
    """The frozen VAE, geometry head (None if untrained) and the config with
    its latent statistics, from a weights folder (``vae_dir`` holds
    world_model.json; ``geometry_dir`` empty: the same folder) or from
    training checkpoints. A weights folder lets a run start on any machine
    from the shipped codec, with no checkpoints of earlier stages."""
    if is_weights_folder(vae_dir):
        from diffusers import AutoencoderTiny

        saved = weights_config(vae_dir)
        cfg.latent_mean, cfg.latent_std = saved.latent_mean, saved.latent_std
        vae = AutoencoderTiny.from_pretrained(Path(vae_dir) / "vae", use_safetensors=True, local_files_only=True,
                                              torch_dtype=torch.float32)
        geometry_folder = Path(geometry_dir or vae_dir)
        if is_weights_folder(geometry_folder):
            geometry = GeometryHead.from_pretrained(geometry_folder / "geometry", use_safetensors=True, local_files_only=True,
                                                    torch_dtype=torch.float32).eval().requires_grad_(False)
        else:
            geometry = load_trained_geometry(geometry_folder, cfg)
        return vae.eval().requires_grad_(False), geometry, cfg
    vae = load_trained_vae(vae_dir, cfg)
    cfg = load_or_measure_stats(Path(vae_dir).parent, vae, cfg)
    return vae, load_trained_geometry(geometry_dir, cfg), cfg


def denoiser_state_dict(folder) -> dict:
    """The UNet's weights from a denoiser checkpoint (``model.safetensors``;
    a run trained with a critic stores the UNet under ``unet.``) or from a
    weights folder's ``denoiser/``."""
    folder = Path(folder)
    if is_weights_folder(folder):
        folder = folder / "denoiser"
        path = folder / "diffusion_pytorch_model.safetensors"
    else:
        path = folder / "model.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"no trained denoiser at {path}: run `mirage-gym train denoiser` first")
    state = load_file(str(path))
    if any(k.startswith("unet.") for k in state):
        state = {k[len("unet."):]: v for k, v in state.items() if k.startswith("unet.")}
    return {k: v.float() for k, v in state.items()}


def load_trained_sampler(checkpoint_dir, cfg: TinyConfig):
    """A trained denoiser, frozen, in the sampler the env uses. Sets
    ``cfg.room_prior`` to the one it trained with, so samples made with
    ``cfg`` give it the base it knows."""
    from ..models.tiny.networks import build_denoiser
    from ..models.tiny.world_model import make_sampler

    if is_weights_folder(checkpoint_dir):
        cfg.room_prior = weights_config(checkpoint_dir).room_prior
    else:
        cfg.room_prior = bool(run_args(checkpoint_dir).get("room_prior", False))

    unet = build_denoiser(cfg)
    unet.load_state_dict(denoiser_state_dict(checkpoint_dir))
    return make_sampler(unet.eval().requires_grad_(False), cfg)


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
