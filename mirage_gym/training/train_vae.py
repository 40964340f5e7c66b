"""Train the embedded model's autoencoder (diffusers AutoencoderTiny, 4x down).

    mirage-gym train vae --steps 30000 --out checkpoints/tiny/vae

Loss: L1 + MSE + 0.1 * edge (image-gradient) loss. Half of each batch is
decoded from latents with a little Gaussian noise added, so the decoder
tolerates the small errors of generated latents. Every checkpoint is scored
on held-out rooms (seeds >= 1,000,000): mean PSNR, worst-10% PSNR, and the
bicubic 4x-down-and-up baseline a 4x latent must beat.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..eval.metrics import psnr
from ..images import to_model, to_uint8
from ..models.tiny.config import TinyConfig
from ..models.tiny.networks import build_vae
from .data import random_views
from .loop import LoopArgs, train

LATENT_NOISE = 0.05


def edge_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    dx = lambda t: t[..., :, 1:] - t[..., :, :-1]  # noqa: E731
    dy = lambda t: t[..., 1:, :] - t[..., :-1, :]  # noqa: E731
    return (dx(x) - dx(y)).abs().mean() + (dy(x) - dy(y)).abs().mean()


def vae_loss(vae, images: torch.Tensor) -> dict:
    latents = vae.encode(images).latents
    noisy = latents.clone()
    half = latents.shape[0] // 2
    noisy[:half] = noisy[:half] + LATENT_NOISE * torch.randn_like(noisy[:half])
    recon = vae.decode(noisy).sample
    l1, mse, edge = (recon - images).abs().mean(), F.mse_loss(recon, images), edge_loss(recon, images)
    return {"loss": l1 + mse + 0.1 * edge, "l1": l1.detach(), "mse": mse.detach()}


@torch.no_grad()
def evaluate_vae(vae, size: int, count: int = 96) -> dict:
    rgb = random_views(np.random.default_rng(12345), count, size, held_out=True)["rgb"]
    images = to_model(rgb)
    recon = torch.cat([vae.decode(vae.encode(b).latents).sample.clamp(-1, 1) for b in images.split(32)])
    scores = psnr(to_uint8(recon), rgb).numpy()
    small = F.interpolate(images, scale_factor=0.25, mode="bilinear", antialias=True, align_corners=False)
    bicubic = F.interpolate(small, size=images.shape[-2:], mode="bicubic", align_corners=False).clamp(-1, 1)
    base = psnr(to_uint8(bicubic), rgb).numpy()
    return {"psnr_mean": float(scores.mean()), "psnr_worst10": float(np.sort(scores)[: max(1, count // 10)].mean()),
            "bicubic4x_mean": float(base.mean())}


@dataclass
class VaeArgs(LoopArgs):
    out_dir: str = "checkpoints/tiny/vae"
    steps: int = 30_000
    batch_size: int = 16
    lr: float = 1e-3
    image_size: int = 64
    latent_channels: int = 8


def main(args: VaeArgs) -> dict:
    cfg = TinyConfig(image_size=args.image_size, latent_channels=args.latent_channels)
    vae = build_vae(cfg)

    def loss_fn(model, rng):
        return vae_loss(model, to_model(random_views(rng, args.batch_size, args.image_size)["rgb"]))

    return train(vae, args, loss_fn, evaluate=lambda step: evaluate_vae(vae, args.image_size), desc="vae")
