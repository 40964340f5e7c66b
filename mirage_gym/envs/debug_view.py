"""The render() debug view: the current frame beside a top-down map of the
memory, the agent and its view frustum. Pure numpy drawing, no display."""

from __future__ import annotations

import math

import numpy as np

BACKGROUND = np.array([24, 24, 28], np.uint8)
WALL = np.array([90, 90, 100], np.uint8)
AGENT = np.array([255, 80, 60], np.uint8)
FRUSTUM = np.array([255, 200, 60], np.uint8)


def _upscale(image: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour resize of an HxWx3 image to size x size."""
    H, W = image.shape[:2]
    rows = (np.arange(size) * H // size).clip(0, H - 1)
    cols = (np.arange(size) * W // size).clip(0, W - 1)
    return image[rows][:, cols]


def _draw_line(canvas, p0, p1, colour, steps=200):
    t = np.linspace(0.0, 1.0, steps)[:, None]
    pts = np.round(p0[None] * (1 - t) + p1[None] * t).astype(int)
    ok = (pts[:, 0] >= 0) & (pts[:, 0] < canvas.shape[1]) & (pts[:, 1] >= 0) & (pts[:, 1] < canvas.shape[0])
    canvas[pts[ok, 1], pts[ok, 0]] = colour


def top_down_map(size: int, bounds, token_xyz: np.ndarray, c2w: np.ndarray, fov_deg: float) -> np.ndarray:
    """A size x size map of the room from above (+x right, +y up): memory
    tokens coloured by height, the room outline, the agent and its frustum."""
    lo, hi = np.asarray(bounds[0], float), np.asarray(bounds[1], float)
    span = float(max(hi[0] - lo[0], hi[1] - lo[1])) * 1.08
    centre = (lo[:2] + hi[:2]) / 2
    scale = size / span

    def to_px(xy):
        xy = np.atleast_2d(xy)
        px = (xy[:, 0] - centre[0]) * scale + size / 2
        py = size / 2 - (xy[:, 1] - centre[1]) * scale
        return np.stack([px, py], 1)

    canvas = np.tile(BACKGROUND, (size, size, 1))
    if len(token_xyz):
        p = np.round(to_px(token_xyz[:, :2])).astype(int)
        ok = (p[:, 0] >= 0) & (p[:, 0] < size) & (p[:, 1] >= 0) & (p[:, 1] < size)
        height = np.clip((token_xyz[ok, 2] - lo[2]) / max(1e-6, hi[2] - lo[2]), 0, 1)
        # draw high tokens last so walls read over the floor
        order = np.argsort(height)
        colour = np.stack([60 + 60 * height, 110 + 120 * height, 200 - 40 * height], 1).astype(np.uint8)
        canvas[p[ok][order, 1], p[ok][order, 0]] = colour[order]
    corners = to_px(np.array([[lo[0], lo[1]], [hi[0], lo[1]], [hi[0], hi[1]], [lo[0], hi[1]]]))
    for i in range(4):
        _draw_line(canvas, corners[i], corners[(i + 1) % 4], WALL)
    eye = to_px(c2w[:3, 3][:2])[0]
    forward = c2w[:3, 2][:2]
    heading = math.atan2(forward[1], forward[0])
    reach = 1.5 * scale
    for side in (-1, 1):
        a = heading + side * math.radians(fov_deg) / 2
        tip = eye + reach * np.array([math.cos(a), -math.sin(a)])
        _draw_line(canvas, eye, tip, FRUSTUM)
    yy, xx = np.mgrid[-3:4, -3:4]
    disk = (xx**2 + yy**2) <= 9
    ys = (np.round(eye[1]) + yy[disk]).astype(int)
    xs = (np.round(eye[0]) + xx[disk]).astype(int)
    ok = (xs >= 0) & (xs < size) & (ys >= 0) & (ys < size)
    canvas[ys[ok], xs[ok]] = AGENT
    return canvas


def debug_view(frame: np.ndarray, size: int, bounds, token_xyz, c2w, fov_deg) -> np.ndarray:
    """Frame (upscaled to size x size) | top-down memory map: uint8 (size, 2*size, 3)."""
    return np.concatenate([_upscale(frame, size), top_down_map(size, bounds, token_xyz, c2w, fov_deg)], axis=1)
