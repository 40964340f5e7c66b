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
    denoise_steps: int = 3
    # Noise levels the sampler walks (pipeline.NoiseLevels): Karras schedule from
    # sigma_max to sigma_min, then zero.
    sigma_max: float = 10.0
    sigma_min: float = 0.1
    # Cells the warped memory covers at least this much with *observed* tokens
    # (written from a real image) are returned as the memory token itself; the
    # model refines every other cell. > 1 (pipeline.PINNING_OFF): it refines all.
    memory_pin: float = 0.5
    # Cells between sparse memory tokens with at least this much coverage in
    # their 3x3 neighbourhood are filled from it (pipeline.close_gaps); None: off.
    gap_support: float | None = 1.5
    # Where the memory is empty the residual's base is the memory's room prior
    # (memory/room_prior.py) instead of zero. Weights trained without it keep False.
    room_prior: bool = False
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
        """A config from a weights folder's ``world_model.json``, checked
        (the sizes bounded, so a typo cannot divide by zero or run forever)."""
        d = dict(d)
        d["unet_channels"] = tuple(d.get("unet_channels", cls.unet_channels))
        cfg = cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})
        cfg.validate()
        return cfg

    def validate(self) -> None:
        from ...limits import MAX_DOWNSAMPLE, MAX_OBS_SIZE, MAX_SAMPLER_STEPS, bounded_int

        bounded_int("downsample", self.downsample, 1, MAX_DOWNSAMPLE, "pixels per latent cell")
        bounded_int("image_size", self.image_size, 8, MAX_OBS_SIZE, "pixels per side")
        if self.image_size % self.downsample:
            raise ValueError(f"image_size {self.image_size} must be a multiple of downsample {self.downsample}")
        bounded_int("denoise_steps", self.denoise_steps, 1, MAX_SAMPLER_STEPS, "sampler steps per frame")
        bounded_int("latent_channels", self.latent_channels, 1, 1024)
        if not isinstance(self.room_prior, bool):
            raise ValueError(f"room_prior must be true or false, got {self.room_prior!r}")
        for name in ("latent_mean", "latent_std"):
            values = getattr(self, name)
            if not isinstance(values, list) or len(values) != self.latent_channels:
                raise ValueError(f"{name} must be a list of latent_channels={self.latent_channels} numbers, got {values!r}")
