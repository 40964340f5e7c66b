"""Sizes of the embedded world model, in one plain dataclass."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class TinyConfig:
    image_size: int = 64  # frames are image_size x image_size
    latent_channels: int = 8
    downsample: int = 4  # the VAE's spatial factor: 64x64 frames -> 16x16 latents
    vae_width: int = 32  # channels at every AutoencoderTiny stage
    geometry_width: int = 64
    unet_channels: tuple = (32, 64, 96)  # sized for >= 20 frames/s on a 2-core CPU
    unet_layers_per_block: int = 1
    denoise_steps: int = 4
    # Cells the warped memory covers at least this much are taken from memory
    # verbatim (the residual is dropped there); > 1 disables pinning. 0.5 beat
    # 0.9 on held-out walk-out-and-back (21.3 vs 19.8 dB) and tied on
    # leave-and-return (24.7 vs 24.6): `mirage-gym eval --seeds 1000001 1000002 --loops 2`.
    memory_pin: float = 0.5
    # Cells between sparse memory tokens with at least this much coverage in
    # their 3x3 neighbourhood are filled from it (pipeline.close_gaps); None: off.
    gap_support: float | None = 1.5
    # Take the residual in cells memory does not cover over a copy of the
    # nearest covered token in the row (pipeline.prefill_holes) instead of over
    # zero. Tried in session 6, not shipped (model card); weights must be
    # trained with the same setting (`mirage-gym train denoiser --prefill-holes`).
    prefill_holes: bool = False
    # Per-channel statistics of the VAE's raw latents (measured after VAE training);
    # memory, denoiser and geometry head all work on normalised latents.
    latent_mean: list = field(default_factory=lambda: [0.0] * 8)
    latent_std: list = field(default_factory=lambda: [1.0] * 8)
    max_depth_m: float = 20.0

    @property
    def latent_size(self) -> int:
        return self.image_size // self.downsample

    @property
    def denoiser_in_channels(self) -> int:
        # noisy residual + context latent + warped memory latent + memory mask + Plücker rays
        return 3 * self.latent_channels + 1 + 6

    def to_dict(self) -> dict:
        d = asdict(self)
        d["unet_channels"] = list(self.unet_channels)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TinyConfig":
        d = dict(d)
        d["unet_channels"] = tuple(d.get("unet_channels", cls.unet_channels))
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})
