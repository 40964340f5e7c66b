"""Geometry: analytic cases for the pose maths everything else relies on."""

import math

import numpy as np
import pytest
import torch

from mirage_gym import geometry as g


def test_intrinsics_centre_and_scaling_are_exact():
    K = g.intrinsics_from_fov(90.0, 64, 96)
    assert K[0, 2] == 48 and K[1, 2] == 32
    assert K[0, 0] == pytest.approx(48.0)  # tan(45 deg) = 1: f = W / 2
    Kl = g.scale_intrinsics(K, (64, 96), (16, 24))
    assert torch.allclose(Kl, torch.tensor([[12.0, 0, 12.0], [0, 12.0, 8.0], [0, 0, 1]]))


def test_known_point_lands_on_known_pixel():
    K = g.intrinsics_from_fov(90.0, 64, 64)
    c2w = g.pose_from_yaw_pitch([0, 0, 1.5], 0.0, 0.0)  # looking along +x, +z up
    # straight ahead -> image centre; 1 m ahead and 0.5 m to the left (+y) -> left of centre
    uv, z = g.project(torch.tensor([[2.0, 0.0, 1.5], [1.0, 0.5, 1.5], [1.0, 0.0, 1.0]]), K, c2w)
    assert torch.allclose(uv[0], torch.tensor([32.0, 32.0]))
    assert torch.allclose(uv[1], torch.tensor([32.0 - 16.0, 32.0]))  # u = cx - f * 0.5 / 1
    assert torch.allclose(uv[2], torch.tensor([32.0, 32.0 + 16.0]))  # lower point -> larger v (y down)
    assert torch.allclose(z, torch.tensor([2.0, 1.0, 1.0]))


def test_project_backproject_is_identity():
    K = g.intrinsics_from_fov(70.0, 24, 32)
    c2w = g.pose_from_yaw_pitch([1.0, -2.0, 1.4], 0.7, -0.3)
    depth = torch.rand(24, 32) * 4 + 0.5
    points = g.backproject(depth, K, c2w).reshape(-1, 3)
    uv, z = g.project(points, K, c2w)
    assert torch.allclose(uv.reshape(24, 32, 2), g.pixel_centers(24, 32), atol=1e-3)
    assert torch.allclose(z.reshape(24, 32), depth, atol=1e-4)


def test_batched_projection_equals_per_pose():
    K = g.intrinsics_from_fov(90.0, 16, 16)
    poses = torch.stack([g.pose_from_yaw_pitch([0, 0, 1.5], a, 0.1) for a in (0.0, 0.5, 1.0)])
    pts = torch.randn(50, 3) * 2
    uv_b, z_b = g.project(pts, K, poses)
    for i in range(3):
        uv, z = g.project(pts, K, poses[i])
        assert torch.allclose(uv_b[i], uv) and torch.allclose(z_b[i], z)


def test_pose_conventions_and_quaternion_round_trip():
    c2w = g.pose_from_yaw_pitch([0, 0, 0], math.pi / 2, 0.0)  # looking along +y
    assert torch.allclose(c2w[:3, 2], torch.tensor([0.0, 1.0, 0.0]), atol=1e-6)  # z forward
    assert torch.allclose(c2w[:3, 1], torch.tensor([0.0, 0.0, -1.0]), atol=1e-6)  # y down
    assert torch.allclose(torch.det(c2w[:3, :3]), torch.tensor(1.0))
    for yaw, pitch in [(0.3, 0.2), (-2.9, -1.0), (3.1, 0.9)]:
        pose = g.pose_from_yaw_pitch([1, 2, 3], yaw, pitch)
        assert g.yaw_pitch_from_pose(pose) == pytest.approx((yaw, pitch), abs=1e-5)
        assert torch.allclose(g.vec7_to_pose(g.pose_to_vec7(pose)), pose, atol=1e-5)
    la = g.look_at([0, 0, 1], [3, 0, 1])
    assert torch.allclose(la, g.pose_from_yaw_pitch([0, 0, 1], 0.0, 0.0), atol=1e-6)


def test_interpolation_endpoints_exact_and_midpoint():
    a = g.pose_from_yaw_pitch([0, 0, 1.5], 0.0, 0.0)
    b = g.pose_from_yaw_pitch([1, 0, 1.5], math.radians(60), 0.0)
    path = g.interpolate_poses(a, b, torch.tensor([0.0, 0.5, 1.0]))
    assert torch.equal(path[0], a) and torch.equal(path[2], b)
    assert g.yaw_pitch_from_pose(path[1])[0] == pytest.approx(math.radians(30), abs=1e-5)
    assert torch.allclose(path[1, :3, 3], torch.tensor([0.5, 0.0, 1.5]))
    seg = g.camera_path(a, b, 4)
    assert seg.shape == (4, 4, 4) and torch.equal(seg[-1], b)


def test_depth_and_mask_to_grid():
    depth = torch.ones(8, 8)
    depth[:4, :4] = 2.0
    depth[0, 0] = float("inf")  # a corner pixel does not touch the centre ray
    depth[5:7, 5:7] = torch.tensor([[1.01, 1.03], [1.0, 1.02]])  # a slanted plane: the nearest of the centre 2x2
    depth[1, 5] = 3.0
    depth[2, 6] = 1.0  # a depth edge through the centre: the nearest surface, not a point in between
    grid = g.depth_to_grid(depth, 2, 2)
    assert grid[0, 0] == 2.0
    assert grid[1, 1] == 1.0
    assert grid[0, 1] == 1.0
    assert grid[1, 0] == 1.0
    sky = torch.full((4, 4), float("inf"))
    assert torch.isinf(g.depth_to_grid(sky, 1, 1)).all()
    mask = torch.ones(8, 8, dtype=torch.bool)
    mask[7, 7] = False
    assert g.mask_to_grid(mask, 2, 2).tolist() == [[True, True], [True, False]]


@pytest.mark.parametrize("bad", [np.full((4, 4), np.nan), np.eye(3), np.zeros(4)])
def test_bad_poses_raise_value_error(bad):
    with pytest.raises(ValueError):
        g.check_pose(bad)


def test_bad_sizes_and_intrinsics_raise_value_error():
    with pytest.raises(ValueError):
        g.intrinsics_from_fov(90, 0, 64)
    with pytest.raises(ValueError):
        g.intrinsics_from_fov(200, 64, 64)
    with pytest.raises(ValueError):
        g.check_intrinsics(np.eye(4))
    with pytest.raises(ValueError):
        g.check_intrinsics(np.zeros((3, 3)))
