"""Image conversions, in one place.

Public APIs pass images as uint8 HxWx3 numpy arrays (or stacks ...xHxWx3);
models take float tensors in [-1, 1] shaped Bx3xHxW.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def to_model(images, device=None) -> torch.Tensor:
    """uint8 (..., H, W, 3) numpy/tensor -> float32 (N, 3, H, W) in [-1, 1]."""
    t = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images)
    if t.dtype != torch.uint8:
        raise ValueError(f"images must be uint8 HxWx3, got dtype {t.dtype}")
    if t.ndim < 3 or t.shape[-1] != 3:
        raise ValueError(f"images must be shaped (..., H, W, 3), got {tuple(t.shape)}")
    t = t.reshape(-1, *t.shape[-3:]).to(device=device)
    return t.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """float (N, 3, H, W) in [-1, 1] -> uint8 (N, H, W, 3) numpy, rounded and clipped."""
    x = images.detach().float().clamp(-1.0, 1.0).add(1.0).mul(127.5).round()
    return x.to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def resize_uint8(images, height: int, width: int) -> np.ndarray:
    """uint8 (..., H, W, 3) -> uint8 (..., height, width, 3), antialiased
    bilinear (a downscale averages, it does not alias)."""
    arr = np.asarray(images)
    if arr.dtype != np.uint8 or arr.ndim < 3 or arr.shape[-1] != 3:
        raise ValueError(f"images must be uint8 (..., H, W, 3), got {arr.dtype} {arr.shape}")
    if arr.shape[-3:-1] == (height, width):
        return arr.copy()
    t = torch.from_numpy(np.ascontiguousarray(arr)).reshape(-1, *arr.shape[-3:]).permute(0, 3, 1, 2).float()
    t = F.interpolate(t, size=(int(height), int(width)), mode="bilinear", antialias=True, align_corners=False)
    out = t.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return out.reshape(*arr.shape[:-3], int(height), int(width), 3)
