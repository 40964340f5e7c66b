"""The pixel-space baseline: a full-resolution RGB point cloud.

This is what Voyager, Gen3C, Spatia and VMem keep instead of latents: every
pixel with a depth becomes a coloured 3D point. Reading renders an RGB image
at full resolution, which the caller must VAE-encode before the generator can
use it: the round trip the latent memory removes. It shares storage, dedup,
eviction and the splat kernel with :class:`LatentSpatialMemory`, so the two
can be swapped and compared byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .point_memory import MemorySettings, MemoryView, PointMemory, _to_tensor
from .splat import SplatResult

__all__ = ["RGBPointCloudMemory", "RGBView"]


@dataclass
class RGBView(MemoryView):
    """Memory rendered at one pose (rgb (3, H, W), mask (H, W), depth (H, W))
    or at B poses (leading B). Colours are float32 in [-1, 1]; holes are 0
    (mid grey) with mask 0 and depth inf."""

    @property
    def rgb(self) -> torch.Tensor:
        """Rendered image(s), float32 in [-1, 1]: (3, H, W) or (B, 3, H, W)."""
        return self.features

    def to_uint8(self) -> np.ndarray:
        """The render as uint8 (H, W, 3) or (B, H, W, 3) numpy."""
        x = self.features.detach().float().clamp(-1.0, 1.0).add(1.0).mul(127.5).round().to(torch.uint8)
        return x.movedim(-3, -1).cpu().numpy()


class RGBPointCloudMemory(PointMemory):
    """Coloured points in 3D, one per voxel, bounded by ``capacity``.

    Args:
        voxel_size: dedup voxel side in metres; for the same density as a
            latent memory with downsample factor f, use latent voxel / f.
        capacity: maximum stored points (None: unbounded); least recently
            written are evicted first.
        device: where points live and renders run.
        settings, **fields: splat and write settings, a :class:`MemorySettings`
            and/or its fields as keywords (``update="fill"``, ``align_depth=True``, ...).

    ``write(rgb, depth, K, c2w, static_mask=None)``: ``rgb`` is either uint8
    (H, W, 3) (numpy or tensor, the public image format) or a float tensor
    (3, H, W) in [-1, 1] (the model format; clamped, then quantised to uint8).
    A leading frame dimension T writes T frames in order. depth (H, W), K at
    the image resolution, c2w (4, 4), static_mask (H, W) bool as for the
    latent memory. Colours are stored as uint8 (3 bytes per point).
    ``read(K, c2w, height, width)`` -> :class:`RGBView`.
    """

    kind = "rgb"

    def __init__(
        self,
        voxel_size: float = 0.0125,
        capacity: int | None = None,
        device: str | torch.device = "cpu",
        *,
        settings: MemorySettings | None = None,
        **fields,
    ):
        super().__init__(voxel_size, capacity, device, channels=3, feature_dtype=torch.uint8, settings=settings, **fields)

    def write(self, rgb, depth, K, c2w, static_mask=None, *, observed: bool = False) -> None:
        """Store the pixels of one image or T images (see class docstring);
        ``observed``: a real image (True) or a generated frame (False)."""
        self._write(rgb, depth, K, c2w, static_mask, observed)

    def read(self, K, c2w, height: int, width: int) -> RGBView:
        """Render the point cloud at pose(s) ``c2w`` ((4, 4) or (B, 4, 4)) on a
        ``height`` x ``width`` image with intrinsics ``K`` of that image."""
        return self._read(K, c2w, height, width)

    # --------------------------------------------------------------- internals

    def _validate_frames(self, rgb):
        t = _to_tensor(rgb, "rgb").detach()
        if t.dtype == torch.uint8:
            if t.ndim not in (3, 4) or t.shape[-1] != 3 or min(t.shape) == 0:
                raise ValueError(f"uint8 rgb must be shaped (H, W, 3) or (T, H, W, 3), got {tuple(t.shape)}")
            stored = t  # (..., H, W, 3)
        elif t.dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
            if t.ndim not in (3, 4) or t.shape[-3] != 3 or min(t.shape) == 0:
                raise ValueError(f"float rgb must be a tensor shaped (3, H, W) or (T, 3, H, W) in [-1, 1], got {tuple(t.shape)}; "
                                 "uint8 images are shaped (H, W, 3)")
            if not bool(torch.isfinite(t).all()):
                raise ValueError("rgb contains NaN or inf")
            stored = t.float().clamp(-1.0, 1.0).add(1.0).mul(127.5).round().to(torch.uint8).movedim(-3, -1)
        else:
            raise ValueError(f"rgb must be uint8 (H, W, 3) or float (3, H, W) in [-1, 1], got dtype {t.dtype}; "
                             "cast integer images with .astype(np.uint8)")
        frames = stored.shape[0] if stored.ndim == 4 else None
        H, W = stored.shape[-3:-1]
        if frames is None:
            stored = stored[None]
        return stored, frames, (H, W)

    @staticmethod
    def model_values(features: torch.Tensor) -> torch.Tensor:
        """Stored 0..255 values (or any average of them) in the model's [-1, 1]."""
        return features / 127.5 - 1.0

    def _make_view(self, result: SplatResult, observed: torch.Tensor, batched: bool) -> RGBView:
        # Splatting averages the stored 0..255 values; map to [-1, 1] where covered
        # (an affine map commutes with the normalised average), keep holes at 0.
        covered = (result.mask > 0).unsqueeze(1)
        rgb = torch.where(covered, self.model_values(result.features), 0.0)
        if batched:
            return RGBView(rgb, result.mask, result.depth, observed)
        return RGBView(rgb[0], result.mask[0], result.depth[0], observed[0])
