"""The three networks of the embedded world model, built from diffusers blocks.

* VAE: diffusers ``AutoencoderTiny``, 4x down (64x64 RGB -> 8 x 16 x 16).
* Geometry head: ``ResnetBlock2D`` stack on a latent -> per-token log-depth
  and static logit (sky and moving objects are "not static").
* Denoiser: diffusers ``UNet2DModel`` on [noisy residual, context latent,
  warped memory latent, memory mask, Plücker rays of the target camera].
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderTiny, UNet2DModel
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.resnet import ResnetBlock2D
from torch import nn

from .config import TinyConfig


def build_vae(cfg: TinyConfig) -> AutoencoderTiny:
    stages = {4: 3, 8: 4}.get(cfg.downsample)
    if stages is None:
        raise ValueError(f"downsample must be 4 or 8, got {cfg.downsample}")
    enc_blocks = (1,) + (3,) * (stages - 1)
    return AutoencoderTiny(
        encoder_block_out_channels=(cfg.vae_width,) * stages,
        decoder_block_out_channels=(cfg.vae_width,) * stages,
        num_encoder_blocks=enc_blocks,
        num_decoder_blocks=tuple(reversed(enc_blocks)),
        latent_channels=cfg.latent_channels,
    )


def build_denoiser(cfg: TinyConfig) -> UNet2DModel:
    n = len(cfg.unet_channels)
    return UNet2DModel(
        sample_size=cfg.latent_size,
        in_channels=cfg.denoiser_in_channels,
        out_channels=cfg.latent_channels,
        block_out_channels=tuple(cfg.unet_channels),
        down_block_types=("DownBlock2D",) * (n - 1) + ("AttnDownBlock2D",),
        up_block_types=("AttnUpBlock2D",) + ("UpBlock2D",) * (n - 1),
        layers_per_block=cfg.unet_layers_per_block,
        attention_head_dim=32,
        norm_num_groups=16,
    )


class GeometryHead(ModelMixin, ConfigMixin):
    """Normalised latent (B, C, h, w) -> log-depth (B, h, w) and static logit (B, h, w).

    Lets the env write generated latents to memory with no ground truth."""

    @register_to_config
    def __init__(self, latent_channels: int = 8, width: int = 64, num_blocks: int = 4):
        super().__init__()
        self.conv_in = nn.Conv2d(latent_channels, width, 3, padding=1)
        self.blocks = nn.ModuleList(
            [ResnetBlock2D(in_channels=width, out_channels=width, temb_channels=None, groups=8) for _ in range(num_blocks)]
        )
        self.norm_out = nn.GroupNorm(8, width)
        self.conv_out = nn.Conv2d(width, 2, 3, padding=1)

    def forward(self, latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.conv_in(latent)
        for block in self.blocks:
            x = block(x, None)
        out = self.conv_out(nn.functional.silu(self.norm_out(x)))
        return out[:, 0], out[:, 1]
