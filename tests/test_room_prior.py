"""The room prior (memory/room_prior.py): floor, wall and ceiling tokens land
where a box room puts them, only observed tokens feed it, and the sampler
uses it as the residual base where the memory is empty. CPU, seconds."""

from __future__ import annotations

import numpy as np
import torch

from mirage_gym.geometry import intrinsics_from_fov, pose_from_yaw_pitch
from mirage_gym.memory import LatentSpatialMemory, RGBPointCloudMemory, memory_prior, room_prior
from mirage_gym.models.tiny.pipeline import condition

H = W = 16
K16 = intrinsics_from_fov(90.0, H, W)
EYE = torch.tensor([0.0, 0.0, 1.5])
FLOOR, WALL, CEILING = torch.eye(3)  # one-hot tokens, C = 3


def box_room_points(half: float = 3.0, top: float = 2.5, n: int = 12):
    """Points on the floor, the four walls and the ceiling of a box around the origin, with their tokens."""
    g = torch.linspace(-half, half, n)
    gx, gy = torch.meshgrid(g, g, indexing="ij")
    flat = lambda z: torch.stack([gx.flatten(), gy.flatten(), torch.full((n * n,), z)], -1)
    heights = torch.linspace(0.3, top - 0.3, n)
    side, hz = torch.meshgrid(g, heights, indexing="ij")
    walls = [torch.stack([torch.full_like(side, s), side, hz], -1).reshape(-1, 3) for s in (-half, half)]
    walls += [torch.stack([side, torch.full_like(side, s), hz], -1).reshape(-1, 3) for s in (-half, half)]
    walls = torch.cat(walls)
    points = torch.cat([flat(0.0), walls, flat(top)])
    tokens = torch.cat([FLOOR.expand(n * n, 3), WALL.expand(len(walls), 3), CEILING.expand(n * n, 3)])
    return points, tokens


def test_floor_walls_and_ceiling_land_where_a_box_room_puts_them():
    points, tokens = box_room_points()
    prior = room_prior(points, tokens, K16, pose_from_yaw_pitch(EYE, 0.3, 0.0)[None], H, W)[0]  # (3, H, W)
    kind = prior.argmax(0)  # which surface dominates each cell
    assert (kind[-2:] == 0).all(), "the bottom rows look at the floor"
    assert (kind[7:9] == 1).all(), "the horizon rows look at a wall"
    assert (kind[:2] == 2).all(), "the top rows look at the ceiling"
    assert torch.allclose(prior.sum(0), torch.ones(H, W), atol=1e-5), "a weighted mean of the tokens"


def test_only_observed_tokens_feed_the_prior():
    memory = LatentSpatialMemory(voxel_size=0.05)
    depth = torch.full((H, W), 2.0)
    c2w = pose_from_yaw_pitch(EYE, 0.0, 0.0)
    memory.write(torch.ones(4, H, W), depth, K16, c2w, observed=True)
    before = memory_prior(memory, K16, pose_from_yaw_pitch(EYE, 2.0, 0.0), H, W)
    memory.write(torch.full((4, H, W), -5.0), depth * 2, K16, pose_from_yaw_pitch(EYE, 2.0, 0.0))  # generated elsewhere
    after = memory_prior(memory, K16, pose_from_yaw_pitch(EYE, 2.0, 0.0), H, W)
    assert torch.allclose(before, torch.ones(4, H, W)) and torch.equal(before, after)
    assert memory_prior(LatentSpatialMemory(channels=4), K16, c2w[None], H, W).shape == (1, 4, H, W)


def test_an_rgb_memory_gives_its_prior_in_the_models_range():
    memory = RGBPointCloudMemory()
    image = np.zeros((H, W, 3), np.uint8)
    image[..., 0] = 255  # pure red
    memory.write(image, np.full((H, W), 2.0, np.float32), K16, pose_from_yaw_pitch(EYE, 0.0, 0.0), observed=True)
    prior = memory_prior(memory, K16, pose_from_yaw_pitch(EYE, 1.0, 0.0), H, W)
    assert torch.allclose(prior[0], torch.ones(H, W), atol=1e-4) and torch.allclose(prior[1:], -torch.ones(2, H, W), atol=1e-4)


def test_the_prior_is_the_base_only_where_the_memory_is_empty():
    memory, prior = torch.randn(2, 3, H, W), torch.randn(2, 3, H, W)
    mask = torch.zeros(2, H, W)
    mask[:, :8] = 1.0  # the top half covered
    _, _, _, base = condition(memory, mask, torch.ones_like(mask), None, prior)
    assert torch.equal(base[:, :, :8], memory[:, :, :8]) and torch.equal(base[:, :, 8:], prior[:, :, 8:])
    _, _, _, plain = condition(memory, mask, torch.ones_like(mask), None)
    assert (plain[:, :, 8:] == 0).all()
