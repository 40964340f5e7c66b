"""What every benchmark section shares: the world model and codecs under
test, the Wan VAE / DiT cost models, ground-truth rendering of a segment,
timing, and a description of the machine.

Which world model (``embedded_world_model``):

* the embedded model (``"tiny"``) when its trained weights are installed:
  its own VAE is the codec of both memory paths;
* otherwise the *oracle* world (ground-truth rendering stands in for
  generation) with a ``diffusers.AutoencoderTiny`` built with the embedded
  model's exact configuration (``models.tiny.networks.build_vae``) and
  **random weights** as the codec, so that the pixel-space path really pays a
  VAE encode of the embedded model's size. Its latents are meaningless; its
  cost is the real cost. Every report says which one ran.

Wan VAEs are built at their real configurations (Wan2.1: diffusers'
``AutoencoderKLWan`` defaults, z_dim 16, 8x spatial, 4x temporal; Wan2.2
TI2V-5B: z_dim 48, 16x spatial, 4x temporal) with random weights - never
downloaded - and only the part being timed is materialised (the rest stays on
PyTorch's "meta" device): the cost of an encode does not depend on the values
of the weights.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import time
from dataclasses import dataclass

import numpy as np
import torch

from ..geometry import depth_to_grid, mask_to_grid, scale_intrinsics

# ------------------------------------------------------------------ codecs


class VaeCodec:
    """``diffusers.AutoencoderTiny`` behind the oracle's codec interface
    (``encode``, ``decode``, ``downsample``, ``latent_channels``)."""

    def __init__(self, vae, downsample: int, latent_channels: int, label: str):
        self.vae = vae.eval()
        self.downsample = int(downsample)
        self.latent_channels = int(latent_channels)
        self.label = label

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return self.vae.encode(images).latents

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(latents).sample.clamp(-1, 1)


def random_tiny_codec(image_size: int = 64, seed: int = 0) -> VaeCodec:
    """The embedded model's VAE architecture with random weights (a cost stand-in)."""
    from ..models.tiny import TinyConfig
    from ..models.tiny.networks import build_vae

    cfg = TinyConfig(image_size=image_size)
    torch.manual_seed(seed)
    return VaeCodec(build_vae(cfg), cfg.downsample, cfg.latent_channels,
                    f"AutoencoderTiny (embedded config, {cfg.downsample}x, {cfg.latent_channels} ch), RANDOM weights: cost stand-in")


@dataclass
class ModelUnderTest:
    """The world model every section uses, and how to describe it."""

    world_model: object
    codec: object  # .encode / .decode / .downsample / .latent_channels
    label: str
    codec_label: str
    trained: bool  # True only for the embedded model with its trained weights

    def describe(self) -> dict:
        return {"world_model": self.label, "codec": self.codec_label, "trained_weights": self.trained,
                "latent_channels": int(self.codec.latent_channels), "downsample": int(self.codec.downsample)}


def resolve_world_model(choice: str) -> str:
    """The one meaning of ``--world-model auto`` (bench and eval): "tiny" when
    the embedded model's trained weights are installed, else "oracle". Any
    other choice is returned as given."""
    if choice != "auto":
        return choice
    from ..models.tiny import weights_available

    return "tiny" if weights_available() else "oracle"


def embedded_world_model(choice: str = "auto", image_size: int = 64) -> ModelUnderTest:
    """``choice``: "auto" (:func:`resolve_world_model`: tiny when its weights
    exist, else oracle + random AutoencoderTiny), "tiny", or "oracle" (always
    the stand-in)."""
    if choice not in ("auto", "tiny", "oracle"):
        raise ValueError(f"world_model must be 'auto', 'tiny' or 'oracle', got {choice!r}")
    if resolve_world_model(choice) == "tiny":
        from ..models import load_world_model

        wm = load_world_model("tiny")
        return ModelUnderTest(wm, wm, "tiny (embedded model, trained weights)",
                              f"tiny VAE (trained, {wm.downsample}x, {wm.latent_channels} ch)", True)
    from ..models.oracle import OracleWorldModel

    codec = random_tiny_codec(image_size)
    # reads_memory: the env reads the memory every step, as it would for the real generator this stands in for
    wm = OracleWorldModel(image_size=(image_size, image_size), codec=codec, reads_memory=True)
    return ModelUnderTest(wm, codec, "oracle world (ground-truth render stands in for generation; tiny weights not installed)",
                          codec.label, False)


# ------------------------------------------------------------- Wan models

WAN_VAE_CONFIGS = {
    # diffusers AutoencoderKLWan defaults = the Wan2.1 VAE
    "wan2.1": dict(base_dim=96, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, temperal_downsample=[False, True, True]),
    # Wan-AI/Wan2.2-TI2V-5B-Diffusers vae/config.json (architecture fields)
    "wan2.2": dict(base_dim=160, decoder_base_dim=256, z_dim=48, in_channels=12, out_channels=12, is_residual=True,
                   patch_size=2, scale_factor_spatial=16, scale_factor_temporal=4, dim_mult=[1, 2, 4, 4],
                   num_res_blocks=2, temperal_downsample=[False, True, True]),
}
# diffusers' own test-sized configs (for tests only: not a cost measurement)
WAN_VAE_TEST_CONFIGS = {
    "wan2.1": dict(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True]),
    "wan2.2": dict(base_dim=3, z_dim=48, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True],
                   in_channels=12, out_channels=12, is_residual=True, patch_size=2, scale_factor_spatial=16,
                   scale_factor_temporal=4),
}
WAN_VAE_FACTORS = {"wan2.1": (8, 4, 16), "wan2.2": (16, 4, 48)}  # spatial, temporal, channels
# Wan2.2-TI2V-5B DiT (30 blocks, dim 3072, 24 heads of 128, ffn 14336, text 4096)
WAN22_DIT = dict(patch_size=(1, 2, 2), num_attention_heads=24, attention_head_dim=128, in_channels=48, out_channels=48,
                 text_dim=4096, freq_dim=256, ffn_dim=14336, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
                 eps=1e-6, rope_max_seq_len=1024)
WAN22_DIT_BLOCKS = 30
MIRAGE_BRANCH_BLOCKS = 15  # the reference's memory side network: 15 DiT blocks
WAN22_TEXT_TOKENS = 512
WAN22_SAMPLING_STEPS = 20  # the reference release: UniPC, 20 steps, no CFG


def _materialise(module: torch.nn.Module, seed: int = 0) -> None:
    """Allocate a meta-device module on the CPU with random weights
    (fan-in scaled normal for matrices/kernels, 1 for scales, 0 for biases)."""
    module.to_empty(device="cpu")
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.ndim >= 2:
                p.normal_(0.0, 1.0 / math.sqrt(max(1, p[0].numel())), generator=g)
            elif name.endswith(("gamma", "weight", "scale")):
                p.fill_(1.0)
            else:
                p.zero_()
        for _, b in module.named_buffers():
            b.zero_()


def build_wan_vae(variant: str, scale: str = "real", parts=("encoder",)):
    """An ``AutoencoderKLWan`` of ``variant`` ("wan2.1" | "wan2.2") with random
    weights; only ``parts`` ("encoder", "decoder") are materialised."""
    from diffusers import AutoencoderKLWan

    configs = WAN_VAE_CONFIGS if scale == "real" else WAN_VAE_TEST_CONFIGS
    if variant not in configs:
        raise ValueError(f"unknown Wan VAE {variant!r}; choose one of {sorted(configs)}")
    with torch.device("meta"):
        vae = AutoencoderKLWan(**configs[variant])
    if "encoder" in parts:
        _materialise(vae.encoder, 1)
        _materialise(vae.quant_conv, 2)
    if "decoder" in parts:
        _materialise(vae.decoder, 3)
        _materialise(vae.post_quant_conv, 4)
    return vae.eval()


def build_wan_dit(num_layers: int = 2, scale: str = "real"):
    """A Wan2.2-TI2V-5B-shaped DiT with ``num_layers`` blocks, random weights."""
    from diffusers import WanTransformer3DModel

    if scale == "real":
        cfg = WAN22_DIT
    else:
        from ..models.wan.tiny import TINY_TRANSFORMER

        cfg = {k: v for k, v in TINY_TRANSFORMER.items() if k != "num_layers"}
    with torch.device("meta"):
        model = WanTransformer3DModel(num_layers=num_layers, **cfg)
    _materialise(model, 5)
    return model.eval(), cfg


# -------------------------------------------------------------- rendering


@dataclass
class SegmentRender:
    """Ground truth of the frames of one segment."""

    rgb: np.ndarray  # (T, H, W, 3) uint8
    depth: torch.Tensor  # (T, H, W) float32, inf on sky
    static: torch.Tensor  # (T, H, W) bool
    depth_latent: torch.Tensor | None = None  # (T, h, w) depth at latent-cell centres
    static_latent: torch.Tensor | None = None  # (T, h, w) every pixel of the cell static


def render_segment(room, poses, times, size: int, K, grid: int | None = None, K_latent=None,
                   latent_depth: str = "centre") -> SegmentRender:
    """Render poses (T, 4, 4) at times (T,) at ``size`` x ``size``; with
    ``grid``, also the depth of each latent token: ``"centre"`` = exact depth
    along the ray through the cell centre (a render at latent resolution),
    ``"env"`` = ``geometry.depth_to_grid`` of the full-res depth (the
    env's reduction)."""
    outs = [room.render(poses[k], K, size, size, t=float(times[k])) for k in range(len(poses))]
    r = SegmentRender(np.stack([o["rgb"] for o in outs]), torch.from_numpy(np.stack([o["depth"] for o in outs])),
                      torch.from_numpy(np.stack([o["static"] for o in outs])))
    if grid is not None:
        r.static_latent = mask_to_grid(r.static, grid, grid)
        if latent_depth == "centre":
            if K_latent is None:
                K_latent = scale_intrinsics(K, (size, size), (grid, grid))
            lo = [room.render(poses[k], K_latent, grid, grid, t=float(times[k]))["depth"] for k in range(len(poses))]
            r.depth_latent = torch.from_numpy(np.stack(lo))
        elif latent_depth == "env":
            r.depth_latent = depth_to_grid(r.depth, grid, grid)
        else:
            raise ValueError(f"latent_depth must be 'centre' or 'env', got {latent_depth!r}")
    return r


# ----------------------------------------------------------------- timing


def time_calls(fn, repeats: int, warmup: int = 1, setup=None) -> dict:
    """Run ``fn(i)`` ``warmup`` + ``repeats`` times; wall-clock milliseconds
    (median, p10, p90, mean, n). ``setup(i)``, if given, runs untimed first."""
    ts = []
    for i in range(warmup + repeats):
        if setup is not None:
            setup(i)
        t = time.perf_counter()
        fn(i)
        dt = time.perf_counter() - t
        if i >= warmup:
            ts.append(dt * 1e3)
    ts_sorted = sorted(ts)
    q = lambda f: ts_sorted[min(len(ts_sorted) - 1, int(f * (len(ts_sorted) - 1) + 0.5))]  # noqa: E731
    return {"median_ms": statistics.median(ts), "p10_ms": q(0.1), "p90_ms": q(0.9), "mean_ms": statistics.fmean(ts), "n": len(ts)}


def machine_info(threads: int) -> dict:
    """Where the numbers came from."""
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_gib = None
    try:
        mem_gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    import diffusers

    return {
        "cpu": cpu, "logical_cores": os.cpu_count(), "memory_gib": mem_gib, "platform": platform.platform(),
        "python": platform.python_version(), "torch": torch.__version__, "diffusers": diffusers.__version__,
        "torch_threads": threads, "cuda": torch.cuda.is_available(),
        "load_average_start": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }
