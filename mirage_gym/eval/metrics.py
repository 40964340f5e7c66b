"""Image metrics on uint8 images or [-1, 1] tensors: PSNR, SSIM (masked too), and the batched
sharpness and layout scores of ``frame_scores`` (edge-energy and pixel-std ratios, 8x8 layout PSNR,
row-profile correlation), split by a seen-in-start mask."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def _as_float01(x) -> torch.Tensor:
    """uint8 (..., H, W, 3) numpy or tensor -> float (N, 3, H, W) in [0, 1]; [-1,1] float tensors pass through rescaled."""
    if isinstance(x, np.ndarray):
        t = torch.from_numpy(x)
        t = t.reshape(-1, *t.shape[-3:]).permute(0, 3, 1, 2)
        return t.float() / 255.0 if x.dtype == np.uint8 else t.float()
    if x.dtype == torch.uint8:  # uint8 (..., H, W, 3) tensor
        return x.reshape(-1, *x.shape[-3:]).permute(0, 3, 1, 2).float() / 255.0
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


# --------------------------------------------------------------- frame scores
#
# Figures that do not reward blur: sharpness (edge energy and pixel spread
# against the truth's own) and layout (coarse colour placement and the
# floor / wall / ceiling row profile), each over all pixels and, given a mask
# of pixels whose surface the start frame showed, over those ("seen") and the
# rest ("unseen"). Batched torch; a few ms for a few hundred 64x64 frames.

SCORE_NAMES = ("psnr", "ssim", "edge_ratio", "std_ratio", "layout_psnr", "row_corr")
LAYOUT_GRID = 8  # layout_psnr pools each frame to an 8 x 8 grid of cell means


def _as_mask(mask, like: torch.Tensor) -> torch.Tensor:
    """(N, H, W) bool-ish numpy/tensor -> float (N, 1, H, W) on ``like``'s device."""
    m = mask if isinstance(mask, torch.Tensor) else torch.from_numpy(np.asarray(mask))
    return m.to(like.device).float().reshape(like.shape[0], 1, *like.shape[-2:])


def _psnr_from_mse(mse: torch.Tensor) -> torch.Tensor:
    return 10 * torch.log10(1.0 / mse.clamp(min=1e-10))


def _ssim_map(a: torch.Tensor, b: torch.Tensor, window: int = 7) -> torch.Tensor:
    """SSIM map (N, 1, H, W) of float01 (N, 3, H, W) images, grey-level, uniform window (as ``ssim``)."""
    a, b = a.mean(1, keepdim=True), b.mean(1, keepdim=True)
    pad = window // 2
    # the five window means in one separable pass (a box mean with edge counts factors by axis)
    x = torch.cat([a, b, a * a, b * b, a * b], 1)
    x = F.avg_pool2d(x, (window, 1), 1, (pad, 0), count_include_pad=False)
    x = F.avg_pool2d(x, (1, window), 1, (0, pad), count_include_pad=False)
    mu_a, mu_b, ea2, eb2, eab = x.split(1, 1)
    var_a, var_b = ea2 - mu_a**2, eb2 - mu_b**2
    cov = eab - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))


def edge_energy(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of horizontally and vertically neighbouring
    pixels (all channels, 0-1 units) over neighbour pairs with both pixels in
    ``m``: (N,). NaN where no pair is in the mask. A flat image gives 0."""
    dh, dv = (x[..., :, 1:] - x[..., :, :-1]).abs(), (x[..., 1:, :] - x[..., :-1, :]).abs()
    mh, mv = m[..., :, 1:] * m[..., :, :-1], m[..., 1:, :] * m[..., :-1, :]
    num = (dh * mh).sum(dim=(1, 2, 3)) + (dv * mv).sum(dim=(1, 2, 3))
    den = x.shape[1] * (mh.sum(dim=(1, 2, 3)) + mv.sum(dim=(1, 2, 3)))
    return torch.where(den > 0, num / den.clamp(min=1), torch.full_like(num, math.nan))


def pixel_std(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Per-channel standard deviation over the pixels in ``m``, averaged over channels: (N,). NaN under 2 pixels."""
    n = m.sum(dim=(1, 2, 3))
    mean = (x * m).sum(dim=(2, 3), keepdim=True) / n.clamp(min=1)[:, None, None, None]
    var = (((x - mean) ** 2) * m).sum(dim=(2, 3)) / n.clamp(min=1)[:, None]
    s = var.clamp(min=0).sqrt().mean(1)
    return torch.where(n >= 2, s, torch.full_like(s, math.nan))


def _ratio(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """a / b, NaN where b is (near) zero or either is NaN."""
    return torch.where(b > eps, a / b.clamp(min=eps), torch.full_like(a, math.nan))


def layout_psnr(a: torch.Tensor, b: torch.Tensor, m: torch.Tensor, grid: int = LAYOUT_GRID) -> torch.Tensor:
    """PSNR of the ``grid`` x ``grid`` cell means (over the cell's pixels in
    ``m``), cells weighted by how many of their pixels are in ``m``: (N,)."""
    w = F.adaptive_avg_pool2d(m, grid)  # (N, 1, g, g): share of the cell in the mask
    pa = F.adaptive_avg_pool2d(a * m, grid) / w.clamp(min=1e-12)
    pb = F.adaptive_avg_pool2d(b * m, grid) / w.clamp(min=1e-12)
    mse = (((pa - pb) ** 2).mean(1, keepdim=True) * w).sum(dim=(1, 2, 3)) / w.sum(dim=(1, 2, 3)).clamp(min=1e-12)
    out = _psnr_from_mse(mse)
    return torch.where(w.sum(dim=(1, 2, 3)) > 0, out, torch.full_like(out, math.nan))


def row_profile_corr(a: torch.Tensor, b: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of the two images' row profiles (grey level averaged
    along each row, over the row's pixels in ``m``; rows with none left out):
    (N,). The floor / wall / ceiling bands of a level view show up here. NaN
    where fewer than 3 rows count or the truth ``b``'s profile is flat; 0 where
    only ``a``'s is (a flat frame has no profile to correlate)."""
    ga, gb, mm = a.mean(1), b.mean(1), m[:, 0]  # (N, H, W)
    cnt = mm.sum(2)  # (N, H)
    valid = (cnt > 0).float()
    ra, rb = (ga * mm).sum(2) / cnt.clamp(min=1), (gb * mm).sum(2) / cnt.clamp(min=1)
    nrow = valid.sum(1)
    mean_a = (ra * valid).sum(1, keepdim=True) / nrow.clamp(min=1)[:, None]
    mean_b = (rb * valid).sum(1, keepdim=True) / nrow.clamp(min=1)[:, None]
    da, db = (ra - mean_a) * valid, (rb - mean_b) * valid
    va, vb = (da**2).sum(1), (db**2).sum(1)
    r = (da * db).sum(1) / (va * vb).clamp(min=1e-20).sqrt()
    r = torch.where(va > 1e-12, r, torch.zeros_like(r))
    return torch.where((nrow >= 3) & (vb > 1e-12), r, torch.full_like(r, math.nan))


def _frame_scores_on(a: torch.Tensor, b: torch.Tensor, m: torch.Tensor, ssim_map: torch.Tensor) -> dict:
    n = m.sum(dim=(1, 2, 3))
    nan = torch.full_like(n, math.nan)
    mse = (((a - b) ** 2) * m).sum(dim=(1, 2, 3)) / (3 * n).clamp(min=1)
    return {
        "psnr": torch.where(n > 0, _psnr_from_mse(mse), nan),
        "ssim": torch.where(n > 0, (ssim_map * m).sum(dim=(1, 2, 3)) / n.clamp(min=1), nan),
        "edge_ratio": _ratio(edge_energy(a, m), edge_energy(b, m)),
        "std_ratio": _ratio(pixel_std(a, m), pixel_std(b, m)),
        "layout_psnr": layout_psnr(a, b, m),
        "row_corr": row_profile_corr(a, b, m),
    }


@torch.no_grad()
def frame_scores(frames, truth, visible_mask=None) -> dict[str, torch.Tensor]:
    """Per-frame scores of ``frames`` against ``truth``, batched: a dict of (N,) float tensors.

    ``frames``, ``truth``: uint8 (N, H, W, 3) numpy arrays or tensors, or
    float (N, 3, H, W) tensors in [-1, 1] (the VAE's range). Keys
    (``SCORE_NAMES``): ``psnr`` (dB, capped at 100: identical), ``ssim``
    (grey, 7x7 uniform window; the map averaged over the pixels scored),
    ``edge_ratio`` (edge energy, the mean absolute neighbour difference, over
    the truth's: 1 = as sharp, 0 = flat), ``std_ratio`` (pixel standard
    deviation over the truth's), ``layout_psnr`` (PSNR of 8 x 8 cell means)
    and ``row_corr`` (correlation of the row profiles). With
    ``visible_mask`` (N, H, W) bool (pixels whose surface the start frame
    showed, e.g. ``eval.consistency.revisit_mask``) every key also comes as
    ``<key>_seen`` (those pixels only) and ``<key>_unseen`` (the rest). NaN
    where a figure is undefined (empty split, a flat truth); average with
    ``torch.nanmean``.
    """
    a, b = _as_float01(frames), _as_float01(truth)
    if a.shape != b.shape:
        raise ValueError(f"frames {tuple(a.shape)} and truth {tuple(b.shape)} must have the same shape")
    smap = _ssim_map(a, b)
    ones = torch.ones(a.shape[0], 1, *a.shape[-2:], device=a.device)
    out = _frame_scores_on(a, b, ones, smap)
    if visible_mask is not None:
        m = _as_mask(visible_mask, a)
        for suffix, mm in (("_seen", m), ("_unseen", 1 - m)):
            out.update({k + suffix: v for k, v in _frame_scores_on(a, b, mm, smap).items()})
    return out
