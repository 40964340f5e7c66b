"""The Mirage cache: a latent spatial memory.

Each latent token of a generated (or encoded) frame is lifted to 3D with its
depth and the intrinsics of the latent grid, and stored with its C-channel
latent vector. Reading projects the tokens straight onto a target camera at
latent resolution (z-buffered bilinear splat), which gives the warped latent,
a validity mask and depth that the generator is conditioned on: no RGB
rendering and no VAE re-encode on the memory path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .point_memory import MemorySettings, MemoryView, PointMemory, check_real_float
from .splat import SplatResult

__all__ = ["LatentSpatialMemory", "LatentView"]


@dataclass
class LatentView(MemoryView):
    """Memory seen from one pose (latent (C, h, w), mask (h, w), depth (h, w))
    or from B poses (each with a leading B). Holes: latent 0, mask 0, depth inf."""

    @property
    def latent(self) -> torch.Tensor:
        """Warped latent, float32: (C, h, w) or (B, C, h, w)."""
        return self.features


class LatentSpatialMemory(PointMemory):
    """Latent tokens in 3D, one per voxel, bounded by ``capacity``.

    Args:
        voxel_size: dedup voxel side in metres. One latent token covers
            ``depth / fx_latent`` metres; a voxel a little smaller than the
            footprint at typical viewing distance keeps every token of a view
            while a revisit overwrites instead of piling up.
        capacity: maximum stored tokens (None: unbounded). Eviction drops the
            least recently written tokens (see ``point_memory``).
        device: where tokens live and reads run.
        feature_dtype: storage dtype of the latents (float16 halves the bytes;
            reads always return float32).
        channels: latent channels C, or None to take them from the first write.
        settings, **fields: splat and write settings, a :class:`MemorySettings`
            and/or its fields as keywords (``update="fill"``, ``align_depth=True``, ...).

    ``write(latent, depth, K, c2w, static_mask=None, *, observed=False)``:
        latent (C, H, W) float, depth (H, W) z-depth in metres at the *latent*
        resolution, K the intrinsics of that latent grid, c2w (4, 4);
        static_mask (H, W) bool, False = do not store (sky, moving objects).
        A leading frame dimension T on latent/depth/c2w/static_mask writes T
        frames in order (later frames win ties). ``observed=True`` marks
        tokens encoded from a real image (``LatentView.observed`` reads their
        share of each cell). Tokens with non-finite or
        non-positive depth are skipped. Each token is back-projected through
        its cell centre, so ``depth`` should be the depth *on that ray*: a
        block median of a full-res depth map put on the centre ray leaves
        tokens off the surface at depth edges and on grazing planes,
        differently from each viewpoint, and the memory then keeps growing
        (scripts/bench_memory.py: +13.7% vs +4.6% from pose 200 to 2,000).
    ``read(K, c2w, height, width)`` -> :class:`LatentView`.
    """

    kind = "latent"

    def __init__(
        self,
        voxel_size: float = 0.1,
        capacity: int | None = None,
        device: str | torch.device = "cpu",
        feature_dtype: torch.dtype = torch.float16,
        *,
        channels: int | None = None,
        settings: MemorySettings | None = None,
        **fields,
    ):
        if feature_dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
            raise ValueError(f"feature_dtype must be a floating-point torch dtype (float16 recommended), got {feature_dtype!r}")
        super().__init__(voxel_size, capacity, device, channels=channels, feature_dtype=feature_dtype, settings=settings, **fields)

    def write(self, latent, depth, K, c2w, static_mask=None, *, observed: bool = False) -> None:
        """Store the tokens of one latent frame (C, H, W) or T frames (T, C, H, W);
        ``observed``: encoded from a real image (True) or generated (False)."""
        self._write(latent, depth, K, c2w, static_mask, observed)

    def read(self, K, c2w, height: int, width: int) -> LatentView:
        """Warp the memory to pose(s) ``c2w`` ((4, 4) or (B, 4, 4)) on a
        ``height`` x ``width`` latent grid with intrinsics ``K`` of that grid."""
        return self._read(K, c2w, height, width)

    # --------------------------------------------------------------- internals

    def _validate_frames(self, latent):
        t = check_real_float(latent, "latent", "latents must be float tensors shaped (C, H, W); cast with .float()").detach()
        if t.ndim not in (3, 4) or min(t.shape) == 0:
            raise ValueError(f"latent must be shaped (C, H, W) or (T, C, H, W), got {tuple(t.shape)}")
        frames = t.shape[0] if t.ndim == 4 else None
        H, W = t.shape[-2:]
        # One reduction checks both: the largest magnitude is NaN or inf iff some
        # value is, and (rounding being monotonic) overflows the storage dtype iff some value does.
        peak = t.abs().max()
        if not math.isfinite(float(peak.to(self.feature_dtype))):  # one test; which problem only on failure
            if not math.isfinite(float(peak)):
                raise ValueError("latent contains NaN or inf; only finite latents can be stored")
            raise ValueError(f"latent values overflow {self.feature_dtype} (|x| > {torch.finfo(self.feature_dtype).max:g}); "
                             "construct the memory with feature_dtype=torch.float32")
        stored = t.to(self.feature_dtype)
        stored = stored.movedim(-3, -1)  # (..., H, W, C)
        if frames is None:
            stored = stored[None]
        return stored, frames, (H, W)

    def _make_view(self, result: SplatResult, observed: torch.Tensor, batched: bool) -> LatentView:
        if batched:
            return LatentView(result.features, result.mask, result.depth, observed)
        return LatentView(result.features[0], result.mask[0], result.depth[0], observed[0])
