"""Spatial memories: analytic answers for the splat, dedup, eviction, snapshots
and input validation. Small grids, CPU, seconds."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from mirage_gym.geometry import intrinsics_from_fov, pose_from_yaw_pitch
from mirage_gym.memory import LatentSpatialMemory, RGBPointCloudMemory, splat_points
from mirage_gym.memory.splat import BLEND_SHARPNESS

H = W = 16
K16 = intrinsics_from_fov(90.0, H, W)  # fx = fy = 8, principal point (8, 8)
EYE = torch.tensor([0.0, 0.0, 1.5])


def pose(offset=(0.0, 0.0, 0.0), yaw=0.0, pitch=0.0):
    """Camera at EYE + offset looking along +x (yaw 0): right = -y, down = -z."""
    return pose_from_yaw_pitch(EYE + torch.tensor(offset), yaw, pitch)


def latent(C=4, seed=0, h=H, w=W):
    return torch.randn(C, h, w, generator=torch.Generator().manual_seed(seed))


def plane(d, h=H, w=W):
    return torch.full((h, w), float(d))


def snapshot(mem):
    return {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in mem.state_dict().items()}


def assert_same_state(a, b):
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], torch.Tensor):
            assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k
        else:
            assert a[k] == b[k], k


# ----------------------------------------------------------------------- the splat


def test_splat_bilinear_weights_are_analytic():
    # One point at z = 2 projecting to u = 2.75 + 0.5, v = 4.5: x = 2.75 -> cells j = 2 (w 0.25), j = 3 (w 0.75).
    K = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    c2w = torch.eye(4)
    z = 2.0
    pt = torch.tensor([[3.25 * z, 4.5 * z, z]])
    f = torch.tensor([[7.0, -3.0]])
    out = splat_points(pt, f, K, c2w, 8, 8)
    mask = out.mask[0]
    assert mask[4, 2] == pytest.approx(0.25) and mask[4, 3] == pytest.approx(0.75)
    assert float(mask.sum()) == pytest.approx(1.0)
    assert torch.allclose(out.features[0, :, 4, 2], f[0]) and torch.allclose(out.features[0, :, 4, 3], f[0])
    assert out.depth[0, 4, 3] == pytest.approx(z) and math.isinf(float(out.depth[0, 0, 0]))
    assert float(out.features[0, :, 0, 0].abs().sum()) == 0.0


def test_a_point_that_grazes_a_cell_does_not_hide_the_surface_covering_it():
    K = torch.eye(3)
    # A surface point at z = 4 exactly on the centre of cell (4, 3): weight 1 there.
    wall = torch.tensor([[3.5 * 4.0, 4.5 * 4.0, 4.0]])
    # A nearer point (z = 1) at u = 2.6 (cell coordinate 2.1): weight 0.9 in cell (4, 2), 0.1 in cell (4, 3).
    grazer = torch.tensor([[2.6 * 1.0, 4.5 * 1.0, 1.0]])
    out = splat_points(torch.cat([wall, grazer]), torch.tensor([[1.0], [-1.0]]), K, torch.eye(4), 8, 8)
    assert float(out.mask[0, 4, 3]) == pytest.approx(1.0)  # the wall's full weight survives, the grazer adds 0.1 (clamped)
    s = 0.1**BLEND_SHARPNESS  # blend weight of the grazer (bilinear weight 0.1)
    assert float(out.features[0, 0, 4, 3]) == pytest.approx((1.0 - s) / (1.0 + s))  # blended, not replaced
    assert float(out.features[0, 0, 4, 2]) == pytest.approx(-1.0)  # where the grazer is strong it is the front
    # A strong nearer point (weight 0.75 in the cell) is the front there; the wall
    # behind it fills only the quarter of the cell the occluder leaves uncovered.
    occluder = torch.tensor([[3.25 * 1.0, 4.5 * 1.0, 1.0]])
    out = splat_points(torch.cat([wall, occluder]), torch.tensor([[1.0], [-1.0]]), K, torch.eye(4), 8, 8)
    assert float(out.features[0, 0, 4, 3]) == pytest.approx(0.75 * -1.0 + 0.25 * 1.0)
    assert float(out.mask[0, 4, 3]) == pytest.approx(1.0)
    assert float(out.depth[0, 4, 3]) == pytest.approx(0.75 * 1.0 + 0.25 * 4.0)
    # An occluder covering the whole cell hides the wall completely, and a third
    # surface behind the wall never shows.
    full = torch.tensor([[3.5 * 1.0, 4.5 * 1.0, 1.0]])
    farther = torch.tensor([[3.5 * 9.0, 4.5 * 9.0, 9.0]])
    out = splat_points(torch.cat([wall, full, farther]), torch.tensor([[1.0], [-1.0], [5.0]]), K, torch.eye(4), 8, 8)
    assert float(out.features[0, 0, 4, 3]) == pytest.approx(-1.0) and float(out.depth[0, 4, 3]) == pytest.approx(1.0)
    out = splat_points(torch.cat([occluder, wall, farther]), torch.tensor([[-1.0], [1.0], [5.0]]), K, torch.eye(4), 8, 8)
    assert float(out.features[0, 0, 4, 3]) == pytest.approx(-0.5)  # front and back layer only


def test_a_partial_nearer_duplicate_does_not_empty_the_cell():
    """Estimated depth stores one wall twice, 20-30% apart. A lone nearer
    duplicate covering 0.3 of a cell must not drop the cell's coverage to 0.3
    (below the sampler's pin threshold): the full-weight token behind fills the rest."""
    K = torch.eye(3)
    token = torch.tensor([[3.5 * 3.2, 4.5 * 3.2, 3.2]])  # weight 1 in cell (4, 3)
    duplicate = torch.tensor([[(2.5 + 0.3) * 2.5, (4.5) * 2.5, 2.5]])  # x = 2.3 in cell coordinates: 0.3 in cell (4, 3)
    out = splat_points(torch.cat([token, duplicate]), torch.tensor([[2.0], [1.0]]), K, torch.eye(4), 8, 8)
    assert float(out.mask[0, 4, 3]) == pytest.approx(1.0)
    # Too weak to define the front (< STRONG_WEIGHT), the duplicate joins the
    # token's layer and the exact hit dominates the blend.
    s = 0.3**BLEND_SHARPNESS
    assert float(out.features[0, 0, 4, 3]) == pytest.approx((2.0 + s * 1.0) / (1.0 + s))


def test_an_exact_hit_outweighs_a_partial_one_of_the_same_surface():
    """A token on its cell centre (weight 1) and a near-duplicate within the
    depth tolerance (weight 0.5): the blend follows weight ** BLEND_SHARPNESS,
    so the exact hit dominates; coverage stays the plain bilinear sum."""
    K = torch.eye(3)
    hit = torch.tensor([[3.5 * 2.0, 4.5 * 2.0, 2.0]])
    duplicate = torch.tensor([[3.0 * 2.1, 4.5 * 2.1, 2.1]])  # x = 2.5 in cell coordinates: 0.5 in cells (4, 2) and (4, 3)
    out = splat_points(torch.cat([hit, duplicate]), torch.tensor([[1.0], [0.0]]), K, torch.eye(4), 8, 8)
    s = 0.5**BLEND_SHARPNESS
    assert float(out.features[0, 0, 4, 3]) == pytest.approx(1.0 / (1.0 + s))
    assert float(out.mask[0, 4, 3]) == pytest.approx(1.0) and float(out.mask[0, 4, 2]) == pytest.approx(0.5)
    assert float(out.features[0, 0, 4, 2]) == pytest.approx(0.0)  # the duplicate alone there


def test_a_point_just_outside_the_grid_still_covers_the_edge_cell():
    """A point projecting half a cell beyond the last column covers that column
    bilinearly; culling it left edge cells half-covered, so the fill rule re-wrote
    the rim of every view from the least reliable tokens."""
    K = torch.eye(3)
    z = 2.0
    right = torch.tensor([[8.25 * z, 4.5 * z, z]])  # u = 8.25 on an 8-wide grid: weight 0.25 in column 7
    left = torch.tensor([[-0.25 * z, 2.5 * z, z]])  # u = -0.25: weight 0.25 in column 0
    out = splat_points(torch.cat([right, left]), torch.tensor([[1.0], [2.0]]), K, torch.eye(4), 8, 8)
    assert float(out.mask[0, 4, 7]) == pytest.approx(0.25) and float(out.mask[0, 2, 0]) == pytest.approx(0.25)
    assert float(out.features[0, 0, 4, 7]) == pytest.approx(1.0) and float(out.features[0, 0, 2, 0]) == pytest.approx(2.0)
    assert float(out.mask.sum()) == pytest.approx(0.5)  # nothing lands in a wrapped-around cell
    beyond = torch.tensor([[8.6 * z, 4.5 * z, z]])  # more than half a cell out: no cell centre within reach
    assert float(splat_points(beyond, torch.ones(1, 1), K, torch.eye(4), 8, 8).mask.sum()) == 0.0


def test_writes_are_scale_aligned_to_the_surface_the_memory_shows():
    """Estimated depth drifts in scale from frame to frame; a write is rescaled by
    the median depth ratio where it overlaps what the memory shows, so a revisit
    lands on the stored surface instead of a nearer copy of it."""
    for align, expected in ((True, 2.0), (False, 1.4)):
        mem = LatentSpatialMemory(voxel_size=0.02, update="newest", align_depth=align)
        mem.write(latent(seed=1), plane(2.0), K16, pose())
        depth = plane(1.4)  # the same wall estimated 30% nearer...
        depth[:4] = 0.5  # ...with a nearer object in the top rows (outside the 2x window: not counted)
        mem.write(latent(seed=2), depth, K16, pose())
        x = mem.positions[-H * W:, 0] - float(EYE[0])  # the second write; the camera looks along +x: x offset = z-depth
        assert float(x.max()) == pytest.approx(expected, rel=1e-4)
        assert float(x.min()) == pytest.approx(0.5 * expected / 1.4, rel=1e-4)
    # Too little overlap (a view turned away from everything stored): left as estimated.
    mem = LatentSpatialMemory(voxel_size=0.02, update="newest")
    mem.write(latent(seed=1), plane(2.0), K16, pose())
    mem.write(latent(seed=2), plane(1.4), K16, pose(yaw=math.pi))
    assert float(mem.positions[-1, 0]) == pytest.approx(float(EYE[0]) - 1.4, rel=1e-4)


def test_splat_drops_points_behind_camera_and_outside_grid():
    K = intrinsics_from_fov(90.0, 8, 8)
    pts = torch.tensor([[0.0, 0.0, -1.0], [0.0, 0.0, 0.001], [100.0, 0.0, 1.0], [0.0, -100.0, 1.0]])
    out = splat_points(pts, torch.ones(4, 1), K, torch.eye(4), 8, 8)
    assert float(out.mask.sum()) == 0.0 and torch.isinf(out.depth).all()


def test_flat_batched_kernel_equals_per_pose_kernel():
    # The flat (B*h*w) form that GPUs use, checked on CPU against the per-pose loop CPUs use.
    from mirage_gym.geometry import invert_pose
    from mirage_gym.memory.splat import _splat

    g = torch.Generator().manual_seed(11)
    pts = torch.rand(3000, 3, generator=g) * torch.tensor([4.0, 4.0, 3.0]) - torch.tensor([2.0, 2.0, 0.0])
    feats = torch.randn(3000, 5, generator=g).half()
    poses = torch.stack([pose((0.0, 0.1 * k, 0.0), yaw=1.3 * k) for k in range(5)])
    P = K16 @ invert_pose(poses)[:, :3, :]
    flat = _splat(pts, feats, P, H, W, 1e-2, 0.1, 1e-2)
    for k in range(5):
        one = _splat(pts, feats, P[k:k + 1], H, W, 1e-2, 0.1, 1e-2)
        assert torch.equal(flat.features[k], one.features[0]) and torch.equal(flat.mask[k], one.mask[0])
        assert torch.equal(flat.depth[k], one.depth[0])
    assert float(flat.mask.sum()) > 0


# --------------------------------------------------------------- latent memory


def test_read_at_write_pose_returns_the_latent():
    lat = latent(C=8)
    # A slanted, non-constant depth (a wall seen obliquely) to exercise real geometry.
    depth = 2.0 + 0.1 * torch.arange(W).float()[None, :].expand(H, W) + 0.05 * torch.arange(H).float()[:, None]
    mem = LatentSpatialMemory(voxel_size=0.02)
    mem.write(lat, depth, K16, pose())
    assert mem.num_tokens == H * W and mem.channels == 8
    view = mem.read(K16, pose(), H, W)
    assert view.latent.shape == (8, H, W) and view.latent.dtype == torch.float32
    assert view.mask.shape == (H, W) and view.depth.shape == (H, W)
    assert (view.mask > 0.999).all()
    torch.testing.assert_close(view.latent, lat.half().float(), atol=1e-3, rtol=0)
    torch.testing.assert_close(view.depth, depth, atol=1e-4, rtol=1e-5)


def test_sideways_translation_shifts_by_fx_baseline_over_depth():
    # fx = 8, depth 2, baseline 0.5 m to the right -> the image moves 8 * 0.5 / 2 = 2 cells left.
    fx, d, baseline = float(K16[0, 0]), 2.0, 0.5
    shift = fx * baseline / d
    assert shift == 2.0
    lat = latent(C=4, seed=1)
    mem = LatentSpatialMemory(voxel_size=0.02)
    mem.write(lat, plane(d), K16, pose())
    right = pose()[:3, 0] * baseline  # the camera's x axis in the world
    view = mem.read(K16, pose(tuple(right.tolist())), H, W)
    s = int(shift)
    torch.testing.assert_close(view.latent[:, :, : W - s], lat.half().float()[:, :, s:], atol=1e-3, rtol=0)
    assert (view.mask[:, : W - s] > 0.999).all()
    assert (view.mask[:, W - s:] == 0).all() and torch.isinf(view.depth[:, W - s:]).all()
    assert (view.latent[:, :, W - s:] == 0).all()


def test_occluder_wins_identically_every_run():
    far = torch.full((4, H, W), -1.0)
    near = torch.full((4, H, W), 1.0)
    inner = torch.zeros(H, W, dtype=torch.bool)
    inner[4:12, 4:12] = True
    results = []
    for order in ("far_first", "near_first"):
        # "oldest": both surfaces are stored whatever the order ("fill" would skip the wall hidden behind
        # an occluder written first), so this tests the splat's z-test alone.
        mem = LatentSpatialMemory(voxel_size=0.02, update="oldest")
        writes = [(far, plane(4.0), None), (near, plane(2.0), inner)]
        if order == "near_first":
            writes.reverse()
        for lat, depth, mask in writes:
            mem.write(lat, depth, K16, pose(), static_mask=mask)
        # A read from a slightly shifted pose, so near and far tokens land between cells.
        c2w = pose((0.0, -0.07, 0.03), yaw=0.02)
        views = [mem.read(K16, c2w, H, W) for _ in range(20)]
        for v in views[1:]:
            assert torch.equal(v.latent, views[0].latent) and torch.equal(v.mask, views[0].mask)
            assert torch.equal(v.depth, views[0].depth)
        results.append(views[0])
        # The front surface wins: the occluder's interior shows +1 and its depth, up
        # to the few per cent of a cell its shifted, magnified samples leave uncovered.
        centre = views[0].latent[:, 6:10, 6:10]
        assert (centre > 0.95).all()
        assert (views[0].depth[6:10, 6:10] < 2.1).all()
        # Far from the occluder the wall is seen.
        assert torch.equal(views[0].latent[:, 0, 0], torch.full((4,), -1.0))
    # The winner does not depend on the order the surfaces were written.
    torch.testing.assert_close(results[0].latent, results[1].latent, atol=1e-6, rtol=0)
    torch.testing.assert_close(results[0].mask, results[1].mask, atol=1e-6, rtol=0)


def test_rewriting_the_same_view_does_not_grow():
    mem = LatentSpatialMemory(voxel_size=0.05)
    lat, depth = latent(), 2.0 + torch.rand(H, W, generator=torch.Generator().manual_seed(3))
    mem.write(lat, depth, K16, pose())
    n, nbytes = mem.num_tokens, mem.nbytes
    for _ in range(100):
        mem.write(lat, depth, K16, pose())
    assert mem.num_tokens == n and mem.nbytes == nbytes and mem.num_writes == 101
    assert nbytes == n * (3 * 4 + (4 + 1) * 2)  # float32 xyz + float16 latent and provenance, nothing else


def test_oldest_keeps_a_voxels_first_observation():
    mem = LatentSpatialMemory(voxel_size=0.05, update="oldest")
    first = latent(seed=1)
    mem.write(first, plane(2.0), K16, pose())
    mem.write(latent(seed=2), plane(2.0), K16, pose())
    assert mem.num_tokens == H * W
    torch.testing.assert_close(mem.read(K16, pose(), H, W).latent, first.half().float(), atol=1e-3, rtol=0)


def test_update_newest_replaces_a_voxel():
    mem = LatentSpatialMemory(voxel_size=0.05, update="newest")
    mem.write(latent(seed=1), plane(2.0), K16, pose())
    second = latent(seed=2)
    mem.write(second, plane(2.0), K16, pose())
    assert mem.num_tokens == H * W
    torch.testing.assert_close(mem.read(K16, pose(), H, W).latent, second.half().float(), atol=1e-3, rtol=0)


@pytest.mark.parametrize("rule", ["fill", "oldest"])
def test_keeping_rules_still_add_the_unseen_part_of_a_write(rule):
    mem = LatentSpatialMemory(voxel_size=0.05, update=rule)
    first = latent(seed=1)
    depth = plane(2.0)
    depth[:, W // 2:] = math.inf  # only the left half is seen at first
    mem.write(first, depth, K16, pose())
    second = latent(seed=2)
    mem.write(second, plane(2.0), K16, pose())
    view = mem.read(K16, pose(), H, W).latent
    assert mem.num_tokens == H * W
    torch.testing.assert_close(view[:, :, : W // 2], first[:, :, : W // 2].half().float(), atol=1e-3, rtol=0)
    torch.testing.assert_close(view[:, :, W // 2:], second[:, :, W // 2:].half().float(), atol=1e-3, rtol=0)


def test_fill_skips_what_the_memory_already_shows_and_keeps_nearer_surfaces():
    mem = LatentSpatialMemory(voxel_size=0.02)  # fine voxels: dedup alone would keep both walls
    assert mem.update == "fill"
    first = latent(seed=1)
    mem.write(first, plane(2.0), K16, pose())
    n = mem.num_tokens
    mem.write(latent(seed=2), plane(2.3), K16, pose())  # the same wall re-estimated 15% farther
    mem.write(latent(seed=3), plane(1.0), K16, pose())  # ... and 50% nearer (estimated depth of generated frames is that bad)
    assert mem.num_tokens == n
    torch.testing.assert_close(mem.read(K16, pose(), H, W).latent, first.half().float(), atol=1e-3, rtol=0)
    # A surface at less than a quarter of the distance (fill_tolerance 0.75) is new: written, and it occludes.
    assert mem.fill_tolerance == 0.75
    depth = plane(2.0)
    depth[:, :8] = 0.45
    front = latent(seed=4)
    mem.write(front, depth, K16, pose())
    assert mem.num_tokens == n + 8 * H
    view = mem.read(K16, pose(), H, W).latent
    torch.testing.assert_close(view[:, :, :7], front[:, :, :7].half().float(), atol=1e-3, rtol=0)
    torch.testing.assert_close(view[:, :, 9:], first[:, :, 9:].half().float(), atol=1e-3, rtol=0)


def test_within_a_write_the_nearest_token_wins_a_voxel():
    mem = LatentSpatialMemory(voxel_size=1000.0)  # every token falls in one voxel
    depth = 3.0 + torch.rand(H, W, generator=torch.Generator().manual_seed(4))
    depth[5, 9] = 1.0  # the unique nearest
    lat = latent()
    mem.write(lat, depth, K16, pose())
    assert mem.num_tokens == 1
    torch.testing.assert_close(mem.features[0].float(), lat[:, 5, 9].half().float())
    # Its position is that pixel's back-projection: z-depth 1 along +x (the camera's forward).
    assert float(mem.positions[0, 0]) == pytest.approx(1.0, abs=1e-5)


def test_static_mask_false_is_never_stored():
    lat, depth = latent(), plane(2.0)
    static = torch.ones(H, W, dtype=torch.bool)
    static[:, :5] = False  # left columns: a moving object
    depth[0, 10] = math.inf  # sky
    depth[1, 10] = math.nan
    depth[2, 10] = 0.0
    depth[3, 10] = -1.0
    mem = LatentSpatialMemory(voxel_size=0.02)
    mem.write(lat, depth, K16, pose(), static_mask=static)
    assert mem.num_tokens == int(static.sum()) - 4
    view = mem.read(K16, pose(), H, W)
    assert (view.mask[:, :4] == 0).all()  # column 4 gets a bilinear sliver from column 5 at most
    assert (view.mask[:, 6:] > 0.999).sum() == H * (W - 6) - 4
    # No stored point projects into the masked columns.
    u = 8.0 * (-mem.positions[:, 1]) / mem.positions[:, 0] + 8.0
    assert (u >= 5.0).all()


def test_batched_read_equals_per_pose_reads():
    mem = LatentSpatialMemory(voxel_size=0.05)
    g = torch.Generator().manual_seed(5)
    for k in range(3):
        mem.write(latent(seed=k), 2.0 + torch.rand(H, W, generator=g), K16, pose(yaw=0.5 * k))
    poses = torch.stack([pose((0.1 * k, 0.05 * k, 0.0), yaw=0.3 * k - 0.2) for k in range(4)])
    batch = mem.read(K16, poses, H, W)
    assert batch.latent.shape == (4, 4, H, W) and batch.mask.shape == (4, H, W) and batch.depth.shape == (4, H, W)
    for k in range(4):
        one = mem.read(K16, poses[k], H, W)
        assert torch.equal(batch.latent[k], one.latent) and torch.equal(batch.mask[k], one.mask)
        assert torch.equal(batch.depth[k], one.depth)


def test_batched_write_equals_sequential_writes():
    g = torch.Generator().manual_seed(6)
    lats = torch.randn(3, 4, H, W, generator=g)
    depths = 2.0 + torch.rand(3, H, W, generator=g)
    poses = torch.stack([pose(yaw=0.2 * k) for k in range(3)])
    a, b = LatentSpatialMemory(voxel_size=0.1, capacity=500), LatentSpatialMemory(voxel_size=0.1, capacity=500)
    a.write(lats, depths, K16, poses)
    for k in range(3):
        b.write(lats[k], depths[k], K16, poses[k])
    assert_same_state(a.state_dict(), b.state_dict())


def test_state_dict_round_trip_is_exact(tmp_path):
    from safetensors.torch import load_file, save_file

    mem = LatentSpatialMemory(voxel_size=0.07, capacity=600)
    g = torch.Generator().manual_seed(7)
    for k in range(4):
        mem.write(latent(seed=k), 2.0 + torch.rand(H, W, generator=g), K16, pose(yaw=0.4 * k))
    state = mem.state_dict()
    # Through safetensors: tensors as tensors, everything else as JSON metadata.
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    meta = {k: v for k, v in state.items() if not isinstance(v, torch.Tensor)}
    save_file(tensors, tmp_path / "mem.safetensors", metadata={"memory": json.dumps(meta)})
    loaded = dict(load_file(tmp_path / "mem.safetensors"))
    loaded.update(json.loads(__import__("safetensors").safe_open(tmp_path / "mem.safetensors", "pt").metadata()["memory"]))
    other = LatentSpatialMemory(voxel_size=1.0)  # different settings: the snapshot carries its own
    other.load_state_dict(loaded)
    assert_same_state(other.state_dict(), state)
    c2w = pose((0.2, 0.1, 0.0), yaw=0.3)
    a, b = mem.read(K16, c2w, H, W), other.read(K16, c2w, H, W)
    assert torch.equal(a.latent, b.latent) and torch.equal(a.mask, b.mask) and torch.equal(a.depth, b.depth)
    # Both continue identically (same eviction order).
    for m in (mem, other):
        m.write(latent(seed=9), plane(3.0), K16, pose(yaw=2.0))
    assert_same_state(mem.state_dict(), other.state_dict())
    # A snapshot is a copy: later writes do not change it.
    before = snapshot(mem)
    state2 = mem.state_dict()
    mem.write(latent(seed=10), plane(2.5), K16, pose(yaw=-1.0))
    assert_same_state(state2, before)


def test_reads_return_the_observed_share_of_each_cell_and_snapshots_keep_it():
    """Points written from a real image (observed=True) and from generated
    frames are told apart at a read, cell by cell, for both memories; a
    snapshot carries the flags, and one written before they existed loads
    with every point counted as generated."""
    for mem, frame in ((LatentSpatialMemory(voxel_size=0.05), latent()),
                       (RGBPointCloudMemory(voxel_size=0.05), np.full((H, W, 3), 200, dtype=np.uint8))):
        mem.write(frame, plane(2.0), K16, pose(), observed=True)  # the view ahead: observed
        mem.write(frame, plane(2.0), K16, pose(yaw=math.pi / 2))  # a quarter turn: generated
        assert int(mem.observed.sum()) == H * W and mem.observed.shape == (mem.num_tokens,)
        ahead, side = mem.read(K16, pose(), H, W), mem.read(K16, pose(yaw=math.pi / 2), H, W)
        assert torch.equal(ahead.observed, torch.ones(H, W)) and torch.equal(side.observed, torch.zeros(H, W))
        between = mem.read(K16, pose(yaw=math.pi / 4), H, W)  # half of each view
        shown = between.observed[between.mask > 0.5]
        assert float(shown.min()) == 0.0 and float(shown.max()) == 1.0
        other = type(mem)(voxel_size=1.0)
        other.load_state_dict(mem.state_dict())
        assert torch.equal(other.observed, mem.observed)
        old = {**mem.state_dict(), "format": "mirage_gym.memory/1"}
        del old["observed"]
        other.load_state_dict(old)
        assert not other.observed.any() and torch.equal(other.features, mem.features)
        with pytest.raises(ValueError, match="observed"):
            other.load_state_dict({**mem.state_dict(), "observed": mem.observed[1:]})
        with pytest.raises(ValueError, match="observed must be True"):
            mem.write(frame, plane(2.0), K16, pose(), observed=1)


def test_capacity_evicts_least_recently_written_farthest_first():
    cap = 300
    mem = LatentSpatialMemory(voxel_size=0.02, capacity=cap, update="newest")
    g = torch.Generator().manual_seed(8)
    depth_a = 2.0 + torch.rand(H, W, generator=g)  # distinct depths: a strict farthest-first order
    lat_a = latent(seed=1)
    mem.write(lat_a, depth_a, K16, pose(yaw=0.0))
    mem.write(latent(seed=2), plane(2.0), K16, pose(yaw=math.pi))  # view B, behind
    assert mem.num_tokens == cap
    # All of B is kept (newest); of A only its 44 nearest tokens survive.
    kept_a = cap - H * W
    view_a = mem.read(K16, pose(yaw=0.0), H, W)
    survivors = view_a.mask > 0.5
    nearest = depth_a.flatten().argsort()[:kept_a]
    expect = torch.zeros(H * W, dtype=torch.bool)
    expect[nearest] = True
    expect = expect.view(H, W)
    assert torch.equal(survivors, expect)
    # Rewriting A refreshes it; now B is the oldest and loses its farthest tokens.
    mem.write(lat_a, depth_a, K16, pose(yaw=0.0))
    assert mem.num_tokens == cap
    assert (mem.read(K16, pose(yaw=0.0), H, W).mask > 0.999).all()
    assert int((mem.read(K16, pose(yaw=math.pi), H, W).mask > 0.5).sum()) == cap - H * W
    # A single write larger than the capacity keeps its nearest tokens.
    small = LatentSpatialMemory(voxel_size=0.02, capacity=10)
    small.write(lat_a, depth_a, K16, pose())
    z = small.positions[:, 0]  # depth along +x
    assert small.num_tokens == 10
    torch.testing.assert_close(z.sort().values, depth_a.flatten().sort().values[:10], atol=1e-5, rtol=0)


def test_reset_and_empty_reads():
    mem = LatentSpatialMemory(voxel_size=0.05, channels=4)
    view = mem.read(K16, pose(), H, W)
    assert (view.latent == 0).all() and (view.mask == 0).all() and torch.isinf(view.depth).all()
    mem.write(latent(), plane(2.0), K16, pose())
    mem.reset()
    assert mem.num_tokens == 0 and mem.nbytes == 0 and mem.num_writes == 0
    with pytest.raises(ValueError, match="channel"):
        LatentSpatialMemory(voxel_size=0.05).read(K16, pose(), H, W)


def test_nbytes_counts_positions_and_features():
    for dtype, size in ((torch.float16, 2), (torch.float32, 4)):
        mem = LatentSpatialMemory(voxel_size=0.02, feature_dtype=dtype)
        mem.write(latent(C=16), plane(2.0), K16, pose())
        assert mem.nbytes == H * W * (12 + (16 + 1) * size)  # + the provenance column


# ------------------------------------------------------------------ validation


BAD_LATENT_WRITES = [
    ("latent", dict(latent=torch.randint(0, 5, (4, H, W)))),
    ("latent", dict(latent=torch.randn(4, H, W, dtype=torch.complex64))),
    ("latent", dict(latent=torch.randn(H, W))),
    ("NaN", dict(latent=torch.full((4, H, W), float("nan")))),
    ("overflow", dict(latent=torch.full((4, H, W), 1e6))),
    ("4-channel", dict(latent=torch.randn(5, H, W))),
    ("depth", dict(depth=torch.ones(H, W, dtype=torch.bool))),
    ("depth", dict(depth=torch.ones(H, W, dtype=torch.complex64))),
    ("depth", dict(depth=torch.ones(H, W + 1))),
    ("c2w", dict(c2w=torch.full((4, 4), float("nan")))),
    ("c2w", dict(c2w=torch.eye(3))),
    ("K", dict(K=torch.eye(4))),
    ("static_mask", dict(static_mask=torch.ones(H, W))),
    ("static_mask", dict(static_mask=torch.ones(H, W - 1, dtype=torch.bool))),
    ("c2w", dict(latent=torch.randn(2, 4, H, W), depth=torch.ones(2, H, W))),  # batched frames need (2, 4, 4) poses
]


@pytest.mark.parametrize("word,bad", BAD_LATENT_WRITES)
def test_bad_writes_raise_and_leave_memory_unchanged(word, bad):
    mem = LatentSpatialMemory(voxel_size=0.05, capacity=1000)
    mem.write(latent(), plane(2.0), K16, pose())
    before = snapshot(mem)
    args = dict(latent=latent(seed=3), depth=plane(3.0), K=K16, c2w=pose(yaw=1.0), static_mask=None)
    args.update(bad)
    with pytest.raises(ValueError, match=word):
        mem.write(args["latent"], args["depth"], args["K"], args["c2w"], static_mask=args["static_mask"])
    assert_same_state(mem.state_dict(), before)
    assert mem.num_writes == 1


def test_float64_and_numpy_inputs_are_accepted():
    mem = LatentSpatialMemory(voxel_size=0.05)
    mem.write(latent().double().numpy(), plane(2.0).double().numpy(), K16.numpy(), pose().numpy(),
              static_mask=np.ones((H, W), dtype=bool))
    assert mem.num_tokens == H * W


def test_bad_reads_and_settings_raise():
    mem = LatentSpatialMemory(voxel_size=0.05)
    mem.write(latent(), plane(2.0), K16, pose())
    with pytest.raises(ValueError, match="c2w"):
        mem.read(K16, torch.full((4, 4), float("inf")), H, W)
    with pytest.raises(ValueError, match="height"):
        mem.read(K16, pose(), 0, W)
    with pytest.raises(ValueError, match="K"):
        mem.read(torch.eye(2), pose(), H, W)
    for bad in (dict(voxel_size=0.0), dict(voxel_size=float("nan")), dict(capacity=0), dict(capacity=2.5)):
        with pytest.raises(ValueError):
            LatentSpatialMemory(**{"voxel_size": 0.1, **bad})
    with pytest.raises(ValueError, match="update"):
        LatentSpatialMemory(update="mean")
    with pytest.raises(ValueError, match="kind"):
        RGBPointCloudMemory().load_state_dict(mem.state_dict())


# ------------------------------------------------------------------ RGB memory


def test_rgb_memory_renders_its_own_image():
    Hi = Wi = 32
    K = intrinsics_from_fov(60.0, Hi, Wi)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(Hi, Wi, 3), dtype=np.uint8)
    depth = 3.0 + torch.linspace(0, 1, Wi)[None, :].expand(Hi, Wi)
    mem = RGBPointCloudMemory(voxel_size=0.01)
    mem.write(image, depth, K, pose())
    assert mem.num_tokens == Hi * Wi and mem.nbytes == Hi * Wi * (12 + 3 + 1) and mem.channels == 3
    view = mem.read(K, pose(), Hi, Wi)
    assert view.rgb.shape == (3, Hi, Wi) and view.rgb.dtype == torch.float32
    assert (view.mask > 0.999).all() and float(view.rgb.abs().max()) <= 1.0
    np.testing.assert_array_equal(view.to_uint8(), image)
    # The float model format gives the same memory.
    other = RGBPointCloudMemory(voxel_size=0.01)
    other.write(torch.from_numpy(image).permute(2, 0, 1).float() / 127.5 - 1.0, depth, K, pose())
    assert_same_state(other.state_dict(), mem.state_dict())
    # Batched read.
    both = mem.read(K, torch.stack([pose(), pose(yaw=math.pi)]), Hi, Wi)
    assert both.rgb.shape == (2, 3, Hi, Wi) and both.to_uint8().shape == (2, Hi, Wi, 3)
    assert (both.mask[1] == 0).all() and (both.rgb[1] == 0).all()


@pytest.mark.parametrize("bad", [
    np.zeros((8, 8, 3), dtype=np.int64),      # not uint8
    np.zeros((8, 8, 4), dtype=np.uint8),      # 4 channels
    torch.zeros(8, 8, 3),                      # float must be (3, H, W)
    torch.zeros(8, 8, 3, dtype=torch.bool),
])
def test_rgb_memory_rejects_bad_images(bad):
    mem = RGBPointCloudMemory(voxel_size=0.01)
    mem.write(np.zeros((8, 8, 3), dtype=np.uint8), plane(2.0, 8, 8), intrinsics_from_fov(60.0, 8, 8), pose())
    before = snapshot(mem)
    with pytest.raises(ValueError, match="rgb"):
        mem.write(bad, plane(2.0, 8, 8), intrinsics_from_fov(60.0, 8, 8), pose(yaw=1.0))
    assert_same_state(mem.state_dict(), before)


def test_rgb_and_latent_memories_share_density_rule():
    # Same scene, RGB at 8x the resolution with voxel / 8: point count ~ 64x the token count.
    f = 8
    lat_mem = LatentSpatialMemory(voxel_size=0.1)
    rgb_mem = RGBPointCloudMemory(voxel_size=0.1 / f)
    lat_mem.write(latent(), plane(2.0), K16, pose())
    K = intrinsics_from_fov(90.0, H * f, W * f)
    rgb_mem.write(np.zeros((H * f, W * f, 3), dtype=np.uint8), plane(2.0, H * f, W * f), K, pose())
    assert rgb_mem.num_tokens == f * f * lat_mem.num_tokens
