"""Image metrics on uint8 images or [-1, 1] tensors: PSNR, SSIM (masked too)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def _as_float01(x) -> torch.Tensor:
    """uint8 (..., H, W, 3) numpy -> float (N, 3, H, W) in [0, 1]; [-1,1] tensors pass through rescaled."""
    if isinstance(x, np.ndarray):
        t = torch.from_numpy(x)
        t = t.reshape(-1, *t.shape[-3:]).permute(0, 3, 1, 2)
        return t.float() / 255.0 if x.dtype == np.uint8 else t.float()
    return (x.float().reshape(-1, *x.shape[-3:]) + 1) / 2


def psnr(a, b, mask=None) -> torch.Tensor:
    """Per-image PSNR in dB (N,); ``mask`` (N, H, W) restricts it to those pixels."""
    a, b = _as_float01(a), _as_float01(b)
    err = (a - b) ** 2
    if mask is None:
        mse = err.mean(dim=(1, 2, 3))
    else:
        m = torch.as_tensor(np.asarray(mask) if not isinstance(mask, torch.Tensor) else mask).float().reshape(a.shape[0], 1, *a.shape[-2:])
        mse = (err * m).sum(dim=(1, 2, 3)) / (3 * m.sum(dim=(1, 2, 3))).clamp(min=1)
    return 10 * torch.log10(1.0 / mse.clamp(min=1e-10))


def ssim(a, b, mask=None, window: int = 7) -> torch.Tensor:
    """Per-image SSIM (N,) with a uniform window (grey-level, C1/C2 of Wang et al.)."""
    a, b = _as_float01(a).mean(1, keepdim=True), _as_float01(b).mean(1, keepdim=True)
    pad = window // 2
    mu_a = F.avg_pool2d(a, window, 1, pad, count_include_pad=False)
    mu_b = F.avg_pool2d(b, window, 1, pad, count_include_pad=False)
    var_a = F.avg_pool2d(a * a, window, 1, pad, count_include_pad=False) - mu_a**2
    var_b = F.avg_pool2d(b * b, window, 1, pad, count_include_pad=False) - mu_b**2
    cov = F.avg_pool2d(a * b, window, 1, pad, count_include_pad=False) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    if mask is None:
        return s.mean(dim=(1, 2, 3))
    m = torch.as_tensor(np.asarray(mask) if not isinstance(mask, torch.Tensor) else mask).float().reshape(s.shape)
    return (s * m).sum(dim=(1, 2, 3)) / m.sum(dim=(1, 2, 3)).clamp(min=1)
