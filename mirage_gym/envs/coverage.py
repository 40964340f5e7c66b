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


_PACK = np.array([1 << 42, 1 << 21, 1], np.int64)  # the three 21-bit fields are disjoint: a sum is the bitwise packing


def voxel_keys(points: torch.Tensor, voxel_size: float) -> torch.Tensor:
    """Pack (N, 3) world points into int64 voxel keys (21 bits per axis)."""
    keys = torch.from_numpy(_voxel_keys_np(points.detach().cpu().numpy(), voxel_size))
    return keys if points.device.type == "cpu" else keys.to(points.device)


def _voxel_keys_np(points: np.ndarray, voxel_size: float) -> np.ndarray:
    """:func:`voxel_keys` on numpy points. Coverage lives on the CPU and a
    step looks up a few hundred points, where numpy's ops cost a fraction of
    torch's dispatch (the same roundings: one division in the points' dtype, a floor)."""
    idx = np.floor(points / voxel_size).astype(np.int64)
    idx += 1 << 20
    idx *= _PACK
    return idx.sum(-1)


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
    # One rotation per (heading, pitch), then every eye: the poses pose_from_yaw_pitch
    # gives at each eye (its position column is the eye in float32), without ~600 calls.
    turns = torch.stack([pose_from_yaw_pitch((0.0, 0.0, 0.0), 2 * math.pi * i / SWEEP_YAWS, math.radians(pitch))
                         for i in range(SWEEP_YAWS) for pitch in SWEEP_PITCHES_DEG])  # (V, 4, 4)
    poses = turns.repeat(len(eyes), 1, 1)  # eye-major, like the loops eye / heading / pitch
    poses[:, :3, 3] = torch.from_numpy(eyes.astype(np.float32)).repeat_interleave(len(turns), dim=0)
    out = scene.render_batch(poses, K, SWEEP_SIZE, SWEEP_SIZE, t=0.0, rgb=False)  # geometry only
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
    """Seen surface voxels of one episode and their fraction of the visible total.

    Held as one flag per visible surface voxel (``surface`` is sorted), so an
    update is a lookup and a flag write rather than a merge of key sets."""

    def __init__(self, scene, voxel_size: float):
        self.voxel_size = float(voxel_size)
        self.surface = visible_surface_keys(scene, voxel_size)
        self._flags = torch.zeros(self.surface.numel(), dtype=torch.bool)
        self._count = 0

    @property
    def seen(self) -> torch.Tensor:
        """Sorted keys of the surface voxels seen so far."""
        return self.surface[self._flags]

    @property
    def fraction(self) -> float:
        return self._count / max(1, self.surface.numel())

    def update(self, depth: torch.Tensor, K: torch.Tensor, c2w: torch.Tensor) -> float:
        """Add one frame's depth (static pixels only, others inf); return the newly covered fraction."""
        before = self._count
        if self.surface.numel():
            # numpy views of the (CPU) tensors: a few hundred points per step
            points = backproject(depth, K, c2w).reshape(-1, 3).cpu().numpy()
            finite = np.isfinite(depth.detach().cpu().numpy()).reshape(-1)
            keys = _voxel_keys_np(points[finite], self.voxel_size)
            # only voxels of the visible surface count (guards against depth noise off the surface)
            surface, flags = self.surface.numpy(), self._flags.numpy()  # flags: a view, written in place
            pos = np.searchsorted(surface, keys)
            np.minimum(pos, surface.shape[0] - 1, out=pos)
            flags[pos[surface[pos] == keys]] = True
            self._count = int(np.count_nonzero(flags))
        return (self._count - before) / max(1, self.surface.numel())

    def checkpoint(self) -> tuple:
        """A copy of the flags (an update writes them in place) for :meth:`rollback`."""
        return self._flags.clone(), self._count

    def rollback(self, checkpoint: tuple) -> None:
        flags, self._count = checkpoint
        self._flags = flags.clone()

    def state_dict(self) -> dict:
        return {"seen": self.seen}

    def load_state_dict(self, state: dict) -> None:
        seen = state["seen"].long()
        flags = torch.zeros_like(self._flags)
        if seen.numel():
            pos = torch.searchsorted(self.surface, seen).clamp_(max=max(0, self.surface.numel() - 1))
            if not self.surface.numel() or not bool((self.surface[pos] == seen).all()):
                raise ValueError("coverage snapshot holds voxels that are not on this room's visible surface; "
                                 "restore it into an episode of the same room")
            flags[pos] = True
        self._flags, self._count = flags, int(flags.sum())
