"""How much of a room's visible surface an episode has seen.

Coverage is counted on a voxel grid over surface points: a voxel counts as
seen once a depth sample of some frame lands in it. The denominator is the
set of surface voxels visible from anywhere in the room's free space,
gathered once per scene by a sweep of low-resolution renders (so surfaces no
camera can ever see, such as the undersides of furniture, never count).
"""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
import torch

from ..geometry import backproject, intrinsics_from_fov, pose_from_yaw_pitch

SWEEP_SIZE = 24  # pixels per side of the sweep renders
SWEEP_SPACING_M = 1.0
SWEEP_YAWS = 8
SWEEP_PITCHES_DEG = (-35.0, 0.0, 35.0)


def voxel_keys(points: torch.Tensor, voxel_size: float) -> torch.Tensor:
    """Pack (N, 3) world points into int64 voxel keys (21 bits per axis)."""
    idx = torch.floor(points / voxel_size).long() + (1 << 20)
    return (idx[:, 0] << 42) | (idx[:, 1] << 21) | idx[:, 2]


def depth_keys(depth: torch.Tensor, K: torch.Tensor, c2w: torch.Tensor, voxel_size: float) -> torch.Tensor:
    """Unique voxel keys hit by the finite pixels of one depth map (h, w)."""
    points = backproject(depth, K, c2w).reshape(-1, 3)
    points = points[torch.isfinite(depth).reshape(-1)]
    return torch.unique(voxel_keys(points, voxel_size))


def _sweep_surface_keys(scene, voxel_size: float) -> torch.Tensor:
    """Render a sweep of views (every free grid position, 8 headings, 3
    pitches) in one batched call and collect the static surface voxels."""
    K = intrinsics_from_fov(90.0, SWEEP_SIZE, SWEEP_SIZE)
    lo, hi = np.asarray(scene.bounds[0], float), np.asarray(scene.bounds[1], float)
    xs = np.arange(lo[0] + SWEEP_SPACING_M / 2, hi[0], SWEEP_SPACING_M)
    ys = np.arange(lo[1] + SWEEP_SPACING_M / 2, hi[1], SWEEP_SPACING_M)
    grid = np.stack(np.meshgrid(xs, ys, indexing="ij"), -1).reshape(-1, 2)
    eyes = np.concatenate([grid, np.full((len(grid), 1), scene.eye_height)], 1)
    eyes = eyes[np.asarray(scene.is_free(eyes), bool)]
    if len(eyes) == 0:
        return torch.zeros(0, dtype=torch.long)
    poses = torch.stack([pose_from_yaw_pitch(eye, 2 * math.pi * i / SWEEP_YAWS, math.radians(pitch))
                         for eye in eyes for i in range(SWEEP_YAWS) for pitch in SWEEP_PITCHES_DEG])
    out = scene.render_batch(poses, K, SWEEP_SIZE, SWEEP_SIZE, t=0.0)
    depth = torch.from_numpy(out["depth"])
    depth[~torch.from_numpy(out["static"])] = float("inf")
    points = backproject(depth, K, poses).reshape(-1, 3)
    points = points[torch.isfinite(depth).reshape(-1)]
    return torch.unique(voxel_keys(points, voxel_size))


_SURFACE_CACHE: "OrderedDict[tuple, torch.Tensor]" = OrderedDict()
_SURFACE_CACHE_SIZE = 64


def visible_surface_keys(scene, voxel_size: float) -> torch.Tensor:
    """Sorted voxel keys of every static surface visible from the room's free
    space. Cached per (scene seed, voxel size): rooms are deterministic."""
    key = (type(scene).__name__, scene.seed, float(voxel_size))
    if key not in _SURFACE_CACHE:
        _SURFACE_CACHE[key] = _sweep_surface_keys(scene, float(voxel_size))
        while len(_SURFACE_CACHE) > _SURFACE_CACHE_SIZE:
            _SURFACE_CACHE.popitem(last=False)
    _SURFACE_CACHE.move_to_end(key)
    return _SURFACE_CACHE[key]


class CoverageMap:
    """Seen surface voxels of one episode and their fraction of the visible total."""

    def __init__(self, scene, voxel_size: float):
        self.voxel_size = float(voxel_size)
        self.surface = visible_surface_keys(scene, voxel_size)
        self.seen = torch.zeros(0, dtype=torch.long)

    @property
    def fraction(self) -> float:
        return float(self.seen.numel()) / max(1, self.surface.numel())

    def update(self, depth: torch.Tensor, K: torch.Tensor, c2w: torch.Tensor) -> float:
        """Add one frame's depth (static pixels only, others inf); return the newly covered fraction."""
        before = self.seen.numel()
        keys = depth_keys(depth, K, c2w, self.voxel_size)
        # only voxels of the visible surface count (guards against depth noise off the surface)
        pos = torch.searchsorted(self.surface, keys).clamp(max=max(0, self.surface.numel() - 1))
        keys = keys[self.surface[pos] == keys] if self.surface.numel() else keys[:0]
        self.seen = torch.unique(torch.cat([self.seen, keys]))
        return (self.seen.numel() - before) / max(1, self.surface.numel())

    def state_dict(self) -> dict:
        return {"seen": self.seen.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.seen = state["seen"].clone().long()
