"""TinyWorldModel: the embedded Mirage-style world model (CPU, weights shipped)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ...geometry import plucker_rays, relative_pose, scale_intrinsics
from ...limits import MAX_SAMPLER_STEPS, bounded_int
from ..base import Segment, SegmentRequest, WorldModel, randn_per_episode
from .config import TinyConfig
from .pipeline import MemoryResidualSampler, NoiseLevels

if TYPE_CHECKING:
    from .networks import GeometryHead

DEFAULT_WEIGHTS = Path(__file__).resolve().parents[2] / "weights" / "tiny"
MARKER = "world_model.json"


class TinyWorldModel(WorldModel):
    """VAE + geometry head + memory-residual UNet (see :meth:`generate`)."""

    name = "tiny"

    def __init__(self, cfg: TinyConfig, vae, denoiser, geometry: GeometryHead, device="cpu", denoise_steps: int | None = None):
        self.cfg = cfg
        self.device = torch.device(device)
        # channels_last: the VAE's full-resolution 3x3 convs run 1.4x faster in it
        # on CPU (decoder, batches of 4 and 32, 1 thread), the geometry head's
        # 64-channel convs 1.1-1.2x (a batch of 4) and 1.2-1.4x (32) over two runs; the UNet gains ~4%
        # on a 16x16 grid, within noise, so it keeps the default layout.
        self.vae = vae.to(self.device).float().eval().to(memory_format=torch.channels_last)
        self.denoiser = denoiser.to(self.device).float().eval()
        self.geometry = geometry.to(self.device).float().eval().to(memory_format=torch.channels_last)
        self.latent_channels = cfg.latent_channels
        self.downsample = cfg.downsample
        self.image_size = (cfg.image_size, cfg.image_size)
        if denoise_steps is not None:
            denoise_steps = bounded_int("denoise_steps", denoise_steps, 1, MAX_SAMPLER_STEPS, "sampler steps per frame")
        self.sampler = make_sampler(self.denoiser, cfg, steps=denoise_steps)
        self._mean = torch.tensor(cfg.latent_mean, device=self.device).view(1, -1, 1, 1)
        self._std = torch.tensor(cfg.latent_std, device=self.device).view(1, -1, 1, 1)

    @property
    def uses_room_prior(self) -> bool:
        return self.cfg.room_prior

    @property
    def denoise_steps(self) -> int:
        return self.sampler.steps

    @denoise_steps.setter
    def denoise_steps(self, steps: int) -> None:
        self.sampler.steps = bounded_int("denoise_steps", steps, 1, MAX_SAMPLER_STEPS, "sampler steps per frame")

    def to(self, device):
        self.device = torch.device(device)
        for net in (self.vae, self.denoiser, self.geometry):
            net.to(self.device)  # keeps each parameter's memory format
        self._mean, self._std = self._mean.to(self.device), self._std.to(self.device)
        return self

    # -- codec ---------------------------------------------------------------

    @torch.no_grad()
    def encode(self, images):
        raw = self.vae.encode(images.to(self.device)).latents
        return (raw - self._mean) / self._std

    @torch.no_grad()
    def decode(self, latents):
        raw = latents.to(self.device) * self._std + self._mean
        return self.vae.decode(raw).sample.clamp(-1, 1)

    @torch.no_grad()
    def estimate_geometry(self, latents, images=None):
        log_depth, static_logit = self.geometry(latents.to(self.device))
        depth = log_depth.exp().clamp(max=self.cfg.max_depth_m)
        return depth, torch.sigmoid(static_logit)

    # -- generation ----------------------------------------------------------

    @torch.no_grad()
    def generate(self, request: SegmentRequest) -> Segment:
        """All K frames of a segment in one batched sampling run, as a video
        model generates a chunk: every frame is conditioned on the segment's
        context frame, the memory warped to its own pose (and, for weights
        trained with it, the memory's room prior where the warp is empty) and
        its camera motion relative to the context camera. The K frames share one noise draw (from
        their episode's generator, a new draw each segment), which keeps
        content the memory does not pin down consistent across the segment."""
        B, K = request.batch_size, request.num_frames
        h, w = self.latent_size
        C = self.latent_channels
        K_latent = scale_intrinsics(request.K, self.image_size, (h, w))
        context_c2w = request.context_c2w.to(self.device)  # (B, 4, 4)
        target_c2w = request.c2w.to(self.device)  # (B, K, 4, 4)
        rel = relative_pose(context_c2w[:, None].expand(B, K, 4, 4), target_c2w)
        plucker = plucker_rays(K_latent, rel.flatten(0, 1), h, w)  # (B*K, 6, h, w)
        context = request.context_latent.to(self.device)[:, None].expand(B, K, C, h, w).flatten(0, 1)
        noise = randn_per_episode((C, h, w), request.generators, B, device=self.device)[:, None].expand(B, K, C, h, w)
        mask = request.memory_mask.to(self.device).flatten(0, 1)
        observed = torch.zeros_like(mask) if request.memory_observed is None else request.memory_observed.to(self.device).flatten(0, 1)
        prior = None if request.memory_prior is None else request.memory_prior.to(self.device).flatten(0, 1)
        latents = self.sampler(context, request.memory_latent.to(self.device).flatten(0, 1), mask, plucker, noise.flatten(0, 1),
                               observed=observed, prior=prior)
        depth, static = self.estimate_geometry(latents)
        return Segment(latents=latents.unflatten(0, (B, K)), frame_index=torch.arange(K), depth=depth.unflatten(0, (B, K)),
                       static=static.unflatten(0, (B, K)))


def make_sampler(denoiser, cfg: TinyConfig, steps: int | None = None) -> MemoryResidualSampler:
    """The sampler ``cfg`` describes, around ``denoiser`` (the env's, the trainers' and the evaluation's)."""
    return MemoryResidualSampler(denoiser, steps=steps or cfg.denoise_steps, pin=cfg.memory_pin, gap_support=cfg.gap_support,
                                 levels=NoiseLevels(sigma_max=cfg.sigma_max, sigma_min=cfg.sigma_min))


def build_networks(cfg: TinyConfig) -> dict:
    """The three networks of a tiny world model, freshly initialised (seed torch first)."""
    from .networks import GeometryHead, build_denoiser, build_vae

    return {"vae": build_vae(cfg), "geometry": GeometryHead(latent_channels=cfg.latent_channels, width=cfg.geometry_width),
            "denoiser": build_denoiser(cfg)}


def save_weights_folder(out, cfg: TinyConfig, nets: dict, training: dict | None = None, half: bool = False) -> Path:
    """Write the folder :func:`load_tiny_world_model` reads: one safetensors
    subfolder per network and ``world_model.json`` (kind, config, training record)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name, net in nets.items():
        (net.half() if half else net).save_pretrained(out / name, safe_serialization=True)
    _drop_unused_config_keys(out / "vae" / "config.json")
    meta = {"kind": "tiny", "config": cfg.to_dict()}
    if training is not None:
        meta["training"] = training
    (out / MARKER).write_text(json.dumps(meta, indent=1))
    return out


def _drop_unused_config_keys(config_file: Path) -> None:
    """AutoencoderTiny records ``block_out_channels`` in its config but does not
    take it back, so every load of the folder warned; the folder leaves it out."""
    if config_file.is_file():
        config = json.loads(config_file.read_text())
        config.pop("block_out_channels", None)
        config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def weights_available(path: Path = DEFAULT_WEIGHTS) -> bool:
    return (Path(path) / MARKER).is_file()


def load_tiny_world_model(path=None, image_size=None, device="cpu", denoise_steps: int | None = None) -> TinyWorldModel:
    """Load the embedded model from ``path`` (default: the weights shipped in the package)."""
    from ..safe_loading import check_weights_folder

    folder = Path(path) if path is not None else DEFAULT_WEIGHTS
    check_weights_folder(folder, required=[MARKER, "vae", "denoiser", "geometry"],
                         hint="train them with `mirage-gym train vae|geometry|denoiser` or reinstall the package")
    try:
        meta = json.loads((folder / MARKER).read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{folder / MARKER} is not valid JSON ({err}); re-export the folder with `mirage-gym train export`") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("config"), dict):
        raise ValueError(f"{folder / MARKER} has no \"config\" object (the model sizes and latent statistics); "
                         "re-export the folder with `mirage-gym train export`")
    try:
        cfg = TinyConfig.from_dict(meta["config"])
    except (TypeError, ValueError) as err:
        raise ValueError(f"{folder / MARKER}: {err}; re-export the folder with `mirage-gym train export`") from None
    if image_size is not None and tuple(image_size) != (cfg.image_size, cfg.image_size):
        raise ValueError(f"the tiny world model at {folder} makes {cfg.image_size}x{cfg.image_size} frames; "
                         f"got obs_size {list(image_size)}: use obs_size={cfg.image_size}")
    from .inference import load_networks

    nets = load_networks(folder)  # no diffusers import: seconds of startup (models/tiny/inference.py)
    if nets is None:  # a configuration the inference modules do not implement, or a tensor missing
        nets = _load_with_diffusers(folder)
    for name, net in nets.items():
        state = net.state_dict()
        missing = [key for key, t in state.items() if t.is_meta]  # diffusers leaves a tensor the file lacks on the meta device
        if missing:
            raise ValueError(f"{folder / name} does not load: the weights file lacks {', '.join(missing[:3])}"
                             f"{' ...' if len(missing) > 3 else ''} (a tensor is missing or its shape does not match config.json); "
                             "re-export the folder with `mirage-gym train export`")
        bad = [key for key, t in state.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]
        if bad:
            raise ValueError(f"{folder / name} holds NaN or inf weights ({', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''}), "
                             "which make black or garbage frames; re-export the folder from a healthy checkpoint")
    return TinyWorldModel(cfg, nets["vae"], nets["denoiser"], nets["geometry"], device=device, denoise_steps=denoise_steps)


def _load_with_diffusers(folder: Path) -> dict:
    """The three networks through diffusers' safetensors-only loader, with a clear error for a folder that does not load."""
    from diffusers import AutoencoderTiny, UNet2DModel  # importing diffusers takes seconds

    from .networks import GeometryHead

    kw = dict(use_safetensors=True, local_files_only=True, torch_dtype=torch.float32)
    nets = {}
    for name, cls in (("vae", AutoencoderTiny), ("denoiser", UNet2DModel), ("geometry", GeometryHead)):
        try:
            nets[name] = cls.from_pretrained(folder / name, **kw)
        except (OSError, ValueError, RuntimeError, NotImplementedError, KeyError, TypeError) as err:
            raise ValueError(f"{folder / name} does not load ({type(err).__name__}: {str(err)[:300]}); a tensor is missing or "
                             "its shape does not match config.json: re-export the folder with `mirage-gym train export`") from None
    return nets
