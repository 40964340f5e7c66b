"""A room prior for the cells the memory does not cover.

Into unseen space the generator used to start from nothing (a zero base and
the context frame), and 200 free-running steps turned it into room-coloured
fog. Rooms are boxes: a ray that points down meets the floor, one that points
up the ceiling, the rest a wall at some height. The prior gives every ray the
memory's *observed* tokens (those written from real images) at about the
height where it meets the room, weighted toward the same compass direction:

    z_hit  = camera height + t * d_z, with t the nearest of the floor
             (z = 0), the ceiling (the observed points' top) and a wall at
             the observed points' median horizontal distance
    weight = exp(-(z_point - z_hit)^2 / (2 bandwidth^2))
             * exp(kappa * (cos(azimuth_point - azimuth_ray) - 1))
    prior  = weighted mean of the observed tokens

Only observed tokens feed it, so it never drifts with the model's own frames.
The sampler uses it as the residual base where the memory is empty
(``pipeline.condition``). On held-out rooms, decoding the start frame's
memory with the prior in its holes puts the 8x8 layout of unseen pixels 1.3
dB above a flat frame of the start colour (a zero fill is 0.7 dB below it).
"""

from __future__ import annotations

import torch

from ..geometry import ray_directions

BANDWIDTH_M = 0.25  # height kernel (m)
KAPPA = 3.0  # azimuth kernel concentration (0: any direction)
MIN_WALL_M = 0.5  # the wall distance never drops below this
CEILING_QUANTILE = 0.99


def room_prior(points: torch.Tensor, tokens: torch.Tensor, K, c2w: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The prior of ``tokens`` (N, C) stored at world ``points`` (N, 3), seen
    by cameras ``c2w`` (B, 4, 4) with intrinsics ``K`` of the h x w grid:
    (B, C, h, w). Zeros when there are no points."""
    B = c2w.shape[0]
    if points.shape[0] == 0:
        return torch.zeros(B, tokens.shape[1], height, width, device=c2w.device)
    points, tokens, c2w = points.float(), tokens.float(), c2w.float()
    d = ray_directions(K, c2w, height, width).flatten(1, 2)  # (B, hw, 3) world directions
    eye = c2w[:, :3, 3]  # (B, 3)
    z = points[:, 2]
    top = torch.maximum(torch.quantile(z, CEILING_QUANTILE), eye[:, 2] + 0.3)[:, None]  # (B, 1)
    offset = points[None, :, :2] - eye[:, None, :2]  # (B, N, 2)
    wall = offset.norm(dim=-1).median(dim=1).values.clamp(min=MIN_WALL_M)[:, None]  # (B, 1)
    eye_z, dz, dxy = eye[:, 2:3], d[..., 2], d[..., :2].norm(dim=-1)
    far = torch.full_like(dz, float("inf"))
    t_floor = torch.where(dz < -1e-4, eye_z / (-dz).clamp(min=1e-4), far)
    t_ceiling = torch.where(dz > 1e-4, (top - eye_z) / dz.clamp(min=1e-4), far)
    t = torch.minimum(torch.minimum(t_floor, t_ceiling), wall / dxy.clamp(min=1e-4))
    z_hit = torch.minimum((eye_z + t * dz).clamp(min=0), top)  # (B, hw)
    log_w = -(z[None, None, :] - z_hit[..., None]) ** 2 / (2 * BANDWIDTH_M ** 2)  # (B, hw, N)
    azimuth_point = torch.atan2(offset[..., 1], offset[..., 0])  # (B, N)
    azimuth_ray = torch.atan2(d[..., 1], d[..., 0])  # (B, hw)
    log_w = log_w + KAPPA * (torch.cos(azimuth_ray[..., None] - azimuth_point[:, None, :]) - 1)
    prior = torch.softmax(log_w, dim=-1) @ tokens  # (B, hw, C)
    return prior.transpose(1, 2).reshape(B, -1, height, width)


def memory_prior(memory, K, c2w: torch.Tensor, height: int, width: int, max_points: int = 1024) -> torch.Tensor:
    """:func:`room_prior` of a :class:`PointMemory`'s observed points (all of
    them if none is observed), evenly thinned to ``max_points``, in the
    model's values (an RGB memory's in [-1, 1]); ``c2w`` (4, 4) gives
    (C, h, w), (B, 4, 4) gives (B, C, h, w)."""
    single = c2w.ndim == 2
    c2w = c2w[None] if single else c2w
    if len(memory) == 0:
        prior = torch.zeros(c2w.shape[0], memory.channels or 0, height, width)
    else:
        keep = memory.observed
        if not bool(keep.any()):
            keep = torch.ones_like(keep)
        index = keep.nonzero()[:, 0]
        index = index[torch.linspace(0, len(index) - 1, min(len(index), max_points)).long()]
        prior = memory.model_values(room_prior(memory.positions[index], memory.features[index], K, c2w.to(memory.device), height, width))
    return prior[0] if single else prior
