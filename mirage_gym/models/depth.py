"""Monocular depth for memory writes and for starting from a photo, plus the
hook that keeps sky and moving objects out of memory.

Depth comes from any transformers ``AutoModelForDepthEstimation`` saved in a
local folder (Depth Anything, DPT, ZoeDepth, ...). Monocular depth is only
known up to scale (and, for "relative" models, up to an affine map of
*inverse* depth), so before a write it is aligned to the depth the memory
already has where the two overlap:

* ``kind="disparity"`` (relative models: Depth Anything "relative", DPT):
  the output d is affine-invariant inverse depth, so we fit s, t by least
  squares on inverse depth, min sum (s d + t - 1 / z_ref)^2 over overlapping
  valid cells (the MiDaS convention), and use z = 1 / (s d + t). Fits that
  are degenerate (too few cells, s <= 0) fall back to a scale-only fit
  s = median(z_ref * d) (t = 0).
* ``kind="metric"`` (metric models): z is already metres up to a global
  error; we fit one scale s = median(z_ref / z) (robust to outliers).
* Without reference depth (the first frame, a photo), relative outputs get
  the scale that puts the median depth at ``assumed_median_depth`` metres
  (an assumption the caller should state), metric outputs are used as is.

Sky is "no depth" (``inf``): for disparity models, pixels whose disparity is
below ``sky_threshold`` times the image's 98th-percentile disparity; for
metric models, depth at or beyond ``far_depth``; and whatever a segmenter
labels sky. Moving objects (people, cars, animals) are not depth's business:
a :class:`Segmenter` marks them so the memory write skips them.

Images enter as float (N, 3, H, W) in [-1, 1]; depth leaves as float32
(N, H, W) z-depth in metres, ``inf`` for sky.
"""

from __future__ import annotations

import json
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence, runtime_checkable

import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# ----------------------------------------------------------------------- alignment


def _resize_to(x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """(N, H, W) -> (N, h, w): block median when the grid divides the image
    (a cell on an edge keeps one surface), bilinear otherwise."""
    from ..geometry import depth_to_grid

    H, W = x.shape[-2:]
    h, w = hw
    if (H, W) == (h, w):
        return x
    if H % h == 0 and W % w == 0:
        return depth_to_grid(x, h, w)
    return F.interpolate(x[:, None], size=hw, mode="bilinear", align_corners=False)[:, 0]


def fit_inverse_depth(disparity: torch.Tensor, ref_depth: torch.Tensor, valid: torch.Tensor,
                      min_overlap: int = 16) -> tuple[float, float] | None:
    """Least squares s, t with s * disparity + t ~ 1 / ref_depth on ``valid``
    (all 1-D or same-shaped tensors). None if there is too little overlap or
    the fit is degenerate (s <= 0)."""
    valid = valid & torch.isfinite(ref_depth) & (ref_depth > 0) & torch.isfinite(disparity)
    n = int(valid.sum())
    if n < min_overlap:
        return None
    d = disparity[valid].double()
    y = 1.0 / ref_depth[valid].double()
    A = torch.stack([d, torch.ones_like(d)], dim=1)
    sol = torch.linalg.lstsq(A, y[:, None]).solution[:, 0]
    s, t = float(sol[0]), float(sol[1])
    if not s > 0 or d.std() < 1e-8:
        # scale only: median of ref_inverse / disparity over cells with disparity > 0
        pos = d > 1e-8
        if int(pos.sum()) < min_overlap:
            return None
        s = float((y[pos] / d[pos]).median())
        return (s, 0.0) if s > 0 else None
    return s, t


def fit_depth_scale(depth: torch.Tensor, ref_depth: torch.Tensor, valid: torch.Tensor, min_overlap: int = 16) -> float | None:
    """Median ratio ref_depth / depth on ``valid`` cells with both finite and positive."""
    valid = valid & torch.isfinite(ref_depth) & (ref_depth > 0) & torch.isfinite(depth) & (depth > 0)
    if int(valid.sum()) < min_overlap:
        return None
    return float((ref_depth[valid] / depth[valid]).median())


# ------------------------------------------------------------------------ estimator


@contextmanager
def _quiet_loading():
    """transformers draws a "Loading weights" progress bar on every load; an env
    that loads a local depth model at make or reset should not print one."""
    from transformers.utils import logging as hf_logging

    shown = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if shown:
            hf_logging.enable_progress_bar()


def preprocessor_options(path: Path) -> dict:
    """mean, std and input_size from a transformers preprocessor_config.json, if present."""
    opts: dict = {}
    pre = Path(path) / "preprocessor_config.json"
    if pre.is_file():
        p = json.loads(pre.read_text())
        if "image_mean" in p:
            opts["mean"], opts["std"] = p["image_mean"], p["image_std"]
        size = p.get("size")
        if isinstance(size, dict):
            size = size.get("height") or size.get("shortest_edge")
        if size:
            opts["input_size"] = int(size)
    return opts


@dataclass
class DepthPrediction:
    depth: torch.Tensor  # (N, H, W) float32 metres, inf for sky
    sky: torch.Tensor  # (N, H, W) bool
    scale: torch.Tensor  # (N,) fitted scale s
    shift: torch.Tensor  # (N,) fitted shift t (disparity models), 0 otherwise
    aligned: torch.Tensor  # (N,) bool: True where the scale came from reference depth, False: assumed


class DepthEstimator:
    """A transformers depth model plus scale alignment and sky handling.

    Args:
        model: an ``AutoModelForDepthEstimation`` instance (eval mode).
        kind: "disparity" (relative inverse depth) or "metric" (metres).
        input_size: the short side the model sees (rounded to ``multiple``).
        multiple: input sides are rounded to a multiple of this (the ViT patch).
        mean, std: input normalisation.
        sky_threshold: disparity models: disparity below this fraction of the
            98th percentile is sky.
        far_depth: metric models: depth at or beyond this is sky.
        assumed_median_depth: metres; the scale used when no reference depth overlaps.
        min_overlap: fewer overlapping cells than this and alignment falls back to the assumption.
    """

    def __init__(self, model, kind: str = "disparity", input_size: int = 518, multiple: int = 14,
                 mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                 sky_threshold: float = 0.02, far_depth: float = float("inf"), assumed_median_depth: float = 3.0,
                 min_overlap: int = 16):
        if kind not in ("disparity", "metric"):
            raise ValueError(f"kind must be 'disparity' or 'metric', got {kind!r}")
        self.model, self.kind = model, kind
        self.input_size, self.multiple = int(input_size), int(multiple)
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        self.sky_threshold, self.far_depth = float(sky_threshold), float(far_depth)
        self.assumed_median_depth, self.min_overlap = float(assumed_median_depth), int(min_overlap)

    @classmethod
    def from_pretrained(cls, path, device="cpu", dtype=torch.float32, kind: str = "auto", **kwargs) -> "DepthEstimator":
        """Load from a local folder (config.json + model.safetensors, optional
        preprocessor_config.json for mean/std/size). ``kind="auto"``: metric
        if the config says so (Depth Anything ``depth_estimation_type="metric"``,
        ZoeDepth, Depth Pro), else disparity."""
        from transformers import AutoModelForDepthEstimation

        path = Path(path)
        with _quiet_loading():
            model = AutoModelForDepthEstimation.from_pretrained(str(path), local_files_only=True, use_safetensors=True, dtype=dtype)
        model = model.to(device).eval().requires_grad_(False)
        cfg = model.config
        if kind == "auto":
            metric = getattr(cfg, "depth_estimation_type", "relative") == "metric" or cfg.model_type in ("zoedepth", "depth_pro")
            kind = "metric" if metric else "disparity"
        backbone = getattr(cfg, "backbone_config", None)
        patch = getattr(backbone, "patch_size", None) or getattr(cfg, "patch_size", None) or 14
        patch = patch[0] if isinstance(patch, (list, tuple)) else patch
        opts = dict(kind=kind, multiple=int(patch))
        opts.update(preprocessor_options(path))
        if kind == "metric" and getattr(cfg, "max_depth", None):
            opts["far_depth"] = 0.98 * float(cfg.max_depth)
        opts.update(kwargs)
        return cls(model, **opts)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def predict_raw(self, images: torch.Tensor) -> torch.Tensor:
        """The model's raw output (N, H, W) at the images' resolution:
        disparity (relative) or metres (metric)."""
        N, _, H, W = images.shape
        scale = self.input_size / min(H, W)
        h = max(self.multiple, round(H * scale / self.multiple) * self.multiple)
        w = max(self.multiple, round(W * scale / self.multiple) * self.multiple)
        x = (images.float().to(self.device) + 1.0) / 2.0
        x = F.interpolate(x, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)
        x = (x - self.mean.to(x.device)) / self.std.to(x.device)
        dtype = next(self.model.parameters()).dtype
        out = self.model(pixel_values=x.to(dtype)).predicted_depth.float()  # (N, h', w')
        return F.interpolate(out[:, None], size=(H, W), mode="bilinear", align_corners=False)[:, 0]

    def sky_mask(self, raw: torch.Tensor) -> torch.Tensor:
        if self.kind == "metric":
            return raw >= self.far_depth
        top = torch.quantile(raw.flatten(1), 0.98, dim=1).clamp_min(1e-12)  # (N,)
        return raw <= self.sky_threshold * top[:, None, None]

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, reference_depth: torch.Tensor | None = None,
                 reference_valid: torch.Tensor | None = None, sky: torch.Tensor | None = None) -> DepthPrediction:
        """Metric z-depth (N, H, W) for images (N, 3, H, W) in [-1, 1].

        reference_depth (N, h, w), any grid the image size divides or not: the
        depth already known (e.g. the memory warped to these poses, inf where
        empty); reference_valid (N, h, w) bool: where to trust it. sky (N, H, W)
        bool: extra sky pixels (from a segmenter)."""
        raw = self.predict_raw(images)  # (N, H, W)
        sky_px = self.sky_mask(raw)
        if sky is not None:
            sky_px = sky_px | sky.to(sky_px.device)
        N = raw.shape[0]
        scales, shifts, aligned = torch.ones(N), torch.zeros(N), torch.zeros(N, dtype=torch.bool)
        depth = torch.empty_like(raw)
        for n in range(N):
            fit = None
            if reference_depth is not None:
                ref = reference_depth[n].float().to(raw.device)
                valid = torch.isfinite(ref) if reference_valid is None else reference_valid[n].to(raw.device).bool()
                small = _resize_to(raw[n][None], tuple(ref.shape))[0]
                small_sky = _resize_to(sky_px[n][None].float(), tuple(ref.shape))[0] > 0.5
                valid = valid & ~small_sky
                # small grids (tests, thumbnails) cannot offer min_overlap cells: ask for a quarter of them
                need = min(self.min_overlap, max(3, ref.numel() // 4))
                if self.kind == "disparity":
                    fit = fit_inverse_depth(small, ref, valid, need)
                else:
                    s = fit_depth_scale(small, ref, valid, need)
                    fit = None if s is None else (s, 0.0)
            if fit is not None:
                aligned[n] = True
            else:
                fit = self._assumed_fit(raw[n], sky_px[n])
            s, t = fit
            scales[n], shifts[n] = s, t
            if self.kind == "disparity":
                inv = s * raw[n] + t
                depth[n] = torch.where(inv > 1e-6, 1.0 / inv.clamp_min(1e-6), torch.full_like(inv, float("inf")))
            else:
                depth[n] = s * raw[n]
        depth = torch.where(sky_px | ~(depth > 0), torch.full_like(depth, float("inf")), depth)
        return DepthPrediction(depth=depth.float(), sky=sky_px | torch.isinf(depth), scale=scales, shift=shifts, aligned=aligned)

    def _assumed_fit(self, raw: torch.Tensor, sky: torch.Tensor) -> tuple[float, float]:
        """Scale without reference: relative models get median depth =
        ``assumed_median_depth``; metric models are trusted (s = 1)."""
        if self.kind == "metric":
            return 1.0, 0.0
        vals = raw[~sky & (raw > 0)]
        if vals.numel() == 0:
            return 1.0, 0.0
        return 1.0 / (self.assumed_median_depth * float(vals.median())), 0.0


# --------------------------------------------------------------------- segmentation


@dataclass
class SegmentationMasks:
    moving: torch.Tensor | None = None  # (N, H, W) bool: pixels of objects that may move
    sky: torch.Tensor | None = None  # (N, H, W) bool


@runtime_checkable
class Segmenter(Protocol):
    """The segmentation hook: anything callable on images (N, 3, H, W) in
    [-1, 1] that returns :class:`SegmentationMasks`. Memory writes skip
    moving pixels; sky pixels get no depth."""

    def __call__(self, images: torch.Tensor) -> SegmentationMasks: ...


MOVING_CLASSES = ("person", "people", "rider", "car", "bus", "truck", "train", "bicycle", "motorcycle", "motorbike",
                  "vehicle", "boat", "airplane", "animal", "dog", "cat", "bird", "horse", "sheep", "cow")
SKY_CLASSES = ("sky",)


def _label_words(name: str) -> set[str]:
    return {w for w in re.split(r"[^a-z]+", name.lower()) if w}


class SemanticSegmenter:
    """A :class:`Segmenter` from a transformers semantic-segmentation model
    (``AutoModelForSemanticSegmentation``, e.g. SegFormer on ADE20K), with
    classes picked by name from its ``id2label``: a label is moving (or sky)
    if one of its words is in ``moving_classes`` (``sky_classes``)."""

    def __init__(self, model, moving_classes: Sequence[str] = MOVING_CLASSES, sky_classes: Sequence[str] = SKY_CLASSES,
                 input_size: int = 512, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD):
        self.model = model
        id2label = {int(k): v for k, v in model.config.id2label.items()}
        self.moving_ids = sorted(i for i, n in id2label.items() if _label_words(n) & set(moving_classes))
        self.sky_ids = sorted(i for i, n in id2label.items() if _label_words(n) & set(sky_classes))
        self.input_size = int(input_size)
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)

    @classmethod
    def from_pretrained(cls, path, device="cpu", **kwargs) -> "SemanticSegmenter":
        from transformers import AutoModelForSemanticSegmentation

        path = Path(path)
        with _quiet_loading():
            model = AutoModelForSemanticSegmentation.from_pretrained(str(path), local_files_only=True, use_safetensors=True)
        opts = {}
        opts.update(preprocessor_options(path))
        opts.update(kwargs)
        return cls(model.to(device).eval().requires_grad_(False), **opts)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> SegmentationMasks:
        N, _, H, W = images.shape
        device = next(self.model.parameters()).device
        x = (images.float().to(device) + 1.0) / 2.0
        x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        x = (x - self.mean.to(device)) / self.std.to(device)
        logits = self.model(pixel_values=x).logits  # (N, classes, h', w')
        labels = F.interpolate(logits.float(), size=(H, W), mode="bilinear", align_corners=False).argmax(1)  # (N, H, W)
        moving = torch.isin(labels, torch.tensor(self.moving_ids, device=device, dtype=labels.dtype))
        sky = torch.isin(labels, torch.tensor(self.sky_ids, device=device, dtype=labels.dtype))
        return SegmentationMasks(moving=moving.cpu(), sky=sky.cpu())


def static_probability(moving: torch.Tensor | None, sky: torch.Tensor, depth_grid: torch.Tensor,
                       grid_hw: tuple[int, int]) -> torch.Tensor:
    """Static probability per latent cell (N, h, w) from pixel masks (N, H, W):
    1 where every pixel of the cell is neither moving nor sky and the cell
    has finite depth, else 0 (one moving pixel keeps the whole token out)."""
    from ..geometry import mask_to_grid

    keep = ~sky.bool()
    if moving is not None:
        keep = keep & ~moving.bool().to(keep.device)
    h, w = grid_hw
    cell = mask_to_grid(keep, h, w)
    return (cell.to(depth_grid.device) & torch.isfinite(depth_grid)).float()
