"""Procedural rooms: determinism, render contract, geometric self-consistency,
free space, movers, bad inputs. All CPU, a few seconds in total."""

import math

import numpy as np
import pytest
import torch

from mirage_gym import geometry as g
from mirage_gym.scenes import HELD_OUT_SEED_START, ProceduralRoom

SEEDS = (0, 1, 7)


@pytest.fixture(scope="module")
def rooms():
    return {s: ProceduralRoom(s) for s in SEEDS}


def _pose_facing(room, eye, target):
    return g.look_at(np.asarray(eye, float), np.asarray(target, float))


# ------------------------------------------------------------------ determinism


def test_same_seed_same_room_bit_for_bit(rooms):
    a, b = rooms[1], ProceduralRoom(1)
    c2w = a.sample_pose(np.random.default_rng(5))
    K = a.intrinsics(48, 64)
    ra, rb = a.render(c2w, K, 48, 64, t=0.7), b.render(c2w, K, 48, 64, t=0.7)
    for k in ("rgb", "depth", "static"):
        assert np.array_equal(ra[k], rb[k]), k
    assert [o.name for o in a.objects] == [o.name for o in b.objects]
    assert a.surface_area == b.surface_area


def test_different_seeds_differ(rooms):
    K = g.intrinsics_from_fov(90.0, 64, 64)
    c2w = g.pose_from_yaw_pitch([0.0, 0.0, 1.5], 0.3, -0.2)  # the room centre is free of walls in every room
    imgs = [rooms[s].render(c2w, K, 64, 64)["rgb"].astype(int) for s in SEEDS]
    assert not np.array_equal(rooms[0].bounds, rooms[1].bounds)
    for i in range(len(imgs)):
        for j in range(i + 1, len(imgs)):
            assert np.abs(imgs[i] - imgs[j]).mean() > 10


def test_held_out_split():
    assert HELD_OUT_SEED_START == 1_000_000
    assert not ProceduralRoom(HELD_OUT_SEED_START - 1).is_held_out
    assert ProceduralRoom(HELD_OUT_SEED_START).is_held_out


# ------------------------------------------------------------------ render contract


def test_shapes_dtypes_and_ranges(rooms):
    room = rooms[0]
    c2w = room.sample_pose(np.random.default_rng(0))
    out = room.render(c2w, room.intrinsics(48, 80), 48, 80, t=0.0)
    assert out["rgb"].shape == (48, 80, 3) and out["rgb"].dtype == np.uint8
    assert out["depth"].shape == (48, 80) and out["depth"].dtype == np.float32
    assert out["static"].shape == (48, 80) and out["static"].dtype == bool
    finite = np.isfinite(out["depth"])
    assert (out["depth"][finite] > 0).all()
    assert out["depth"][finite].max() < np.linalg.norm(room.size) + 1e-3  # nothing beyond the room
    assert out["rgb"].std() > 10  # not a flat image


def test_render_batch_matches_single_renders(rooms):
    room = rooms[7]
    rng = np.random.default_rng(3)
    poses = torch.stack([room.sample_pose(rng) for _ in range(3)])
    K = room.intrinsics(32, 32)
    batch = room.render_batch(poses, K, 32, 32, t=[0.0, 0.5, 0.5])
    for i in range(3):
        one = room.render(poses[i], K, 32, 32, t=[0.0, 0.5, 0.5][i])
        for k in ("rgb", "depth", "static"):
            assert np.array_equal(batch[k][i], one[k]), k


def test_depth_is_z_depth_of_an_axis_aligned_wall():
    """Looking straight at a wall: every pixel that sees the bare wall has the
    same z-depth (ray length would grow toward the corners)."""
    room = ProceduralRoom(2)
    lo, hi = room.bounds
    eye = np.array([0.5 * (lo[0] + hi[0]), 0.5 * (lo[1] + hi[1]), 1.5])
    c2w = g.pose_from_yaw_pitch(eye, 0.0, 0.0)  # facing +x: the wall x = hi
    out = room.render(c2w, g.intrinsics_from_fov(60.0, 32, 32), 32, 32)
    d = out["depth"]
    want = hi[0] - eye[0]
    assert np.isclose(np.median(d[np.isfinite(d)]), want, rtol=1e-4)


def _interp_depth(depth, u, v):
    """Depth at continuous pixel coordinates (pixel centres at +0.5) by
    bilinear interpolation of 1 / depth, exact on a plane. Also returns
    where the four neighbours exist and lie on one surface."""
    H, W = depth.shape
    x, y = u - 0.5, v - 0.5
    j0, i0 = np.floor(x).astype(int), np.floor(y).astype(int)
    ok = (j0 >= 0) & (i0 >= 0) & (j0 < W - 1) & (i0 < H - 1)
    j0, i0, fx, fy = np.clip(j0, 0, W - 2), np.clip(i0, 0, H - 2), x - np.floor(x), y - np.floor(y)
    q = np.stack([1.0 / depth[i0, j0], 1.0 / depth[i0, j0 + 1], 1.0 / depth[i0 + 1, j0], 1.0 / depth[i0 + 1, j0 + 1]])
    inv = (1 - fy) * ((1 - fx) * q[0] + fx * q[1]) + fy * ((1 - fx) * q[2] + fx * q[3])
    with np.errstate(invalid="ignore", divide="ignore"):
        same_surface = q.max(0) / q.min(0) < 1.2
    return 1.0 / inv, ok & np.isfinite(inv) & same_surface


def test_reprojection_self_consistency(rooms):
    """Back-project view A's depth (geometry.backproject), project into a
    nearby view B (geometry.project): agrees with B's depth on co-visible
    static pixels. Nearest pixel: median relative error < 1% (the rest is the
    depth gradient across a pixel). Interpolated at the exact projected
    position: < 1e-4, which would catch a half-pixel convention slip."""
    for seed, room in rooms.items():
        rng = np.random.default_rng(seed + 100)
        H = W = 64
        K = room.intrinsics(H, W)
        a = room.sample_pose(rng)
        yaw, _ = g.yaw_pitch_from_pose(a)
        pos = a[:3, 3].numpy() + 0.2 * np.array([math.cos(yaw), math.sin(yaw), 0.0])
        b = g.pose_from_yaw_pitch(pos, yaw + 0.1, -0.05)
        ra, rb = room.render(a, K, H, W), room.render(b, K, H, W)
        pts = g.backproject(torch.from_numpy(ra["depth"]), K, a)  # (H, W, 3)
        keep = torch.from_numpy(ra["static"] & np.isfinite(ra["depth"])).reshape(-1)
        uv, z = g.project(pts.reshape(-1, 3)[keep], K, b)
        uv, z = uv.numpy(), z.numpy()
        j, i = np.floor(uv[:, 0]).astype(int), np.floor(uv[:, 1]).astype(int)
        inside = (z > 0) & (i >= 0) & (i < H) & (j >= 0) & (j < W)
        i, j, zi = i[inside], j[inside], z[inside]
        ok = rb["static"][i, j] & np.isfinite(rb["depth"][i, j])
        rel = np.abs(zi[ok] - rb["depth"][i, j][ok]) / rb["depth"][i, j][ok]
        assert ok.sum() > 0.5 * H * W
        assert np.median(rel) < 0.01, (seed, np.median(rel))
        assert (rel < 0.05).mean() > 0.8  # the rest: occlusion edges
        depth_b = np.where(rb["static"], rb["depth"], np.nan)
        zb, ok = _interp_depth(depth_b, uv[:, 0], uv[:, 1])
        ok &= z > 0
        assert ok.sum() > 0.3 * H * W
        assert np.median(np.abs(z[ok] - zb[ok]) / zb[ok]) < 1e-4, seed


def test_sky_through_windows_is_inf_and_not_static(rooms):
    found = 0
    for room in rooms.values():
        for fx in room.fixtures:
            if fx.kind != "window":
                continue
            eye = fx.center + 0.8 * fx.normal
            eye[2] = fx.center[2]
            out = room.render(_pose_facing(room, eye, fx.center), g.intrinsics_from_fov(60.0, 32, 32), 32, 32)
            sky = np.isinf(out["depth"])
            assert sky.mean() > 0.2  # the panes fill much of the view
            assert not out["static"][sky].any()
            assert (out["depth"][~sky] < 1.0).all()  # the rest is the wall and frame, right there
            found += 1
    assert found > 0


def test_every_room_has_a_window():
    for seed in range(12):
        assert any(f.kind == "window" for f in ProceduralRoom(seed).fixtures), seed


# ------------------------------------------------------------------ moving objects


def test_movers_are_not_static_and_move_with_t(rooms):
    checked = 0
    for room in rooms.values():
        assert 1 <= len(room.movers) <= 3
        for m in room.movers:
            t = 0.4
            c = m.center_at(t)
            assert not np.allclose(c, m.center_at(t + 0.5))
            look = c.copy()
            look[2] = c[2] if m.kind == "ball" else 0.6 * m.height
            # stand 1.2 m away, in some direction with free space all the way
            for a in np.linspace(0, 2 * np.pi, 16, endpoint=False):
                way = np.array([math.cos(a), math.sin(a)])
                line = np.array([[c[0] + s * way[0], c[1] + s * way[1], 1.0] for s in np.linspace(0.3, 1.2, 10)])
                if room.is_free(line, radius=0.05).all():
                    break
            else:
                continue
            eye = np.array([c[0] + 1.2 * way[0], c[1] + 1.2 * way[1], look[2] + 0.3])
            c2w = _pose_facing(room, eye, look)
            K = g.intrinsics_from_fov(60.0, 33, 33)
            now = room.render(c2w, K, 33, 33, t=t)
            assert not now["static"][16, 16], m.name
            assert np.isfinite(now["depth"][16, 16])
            later = room.render(c2w, K, 33, 33, t=t + m.period / 2)
            assert not np.array_equal(now["static"], later["static"])
            checked += 1
    assert checked >= len(rooms)


def test_mover_paths_stay_in_free_space(rooms):
    for room in rooms.values():
        for m in room.movers:
            ts = np.linspace(0.0, m.period, 50)
            xy = m.xy_at(ts)
            pts = np.concatenate([xy, np.full((50, 1), 0.5)], 1)
            assert room.is_free(pts, radius=m.radius).all(), m.name


# ------------------------------------------------------------------ free space and poses


def test_is_free(rooms):
    for room in rooms.values():
        lo, hi = room.bounds
        assert not room.is_free(lo - 0.5)
        assert not room.is_free(np.array([hi[0] + 1.0, 0.0, 1.5]))
        assert not room.is_free(np.array([lo[0] + 0.05, 0.0, 1.5]), radius=0.2)  # too close to a wall
        for obj in room.objects:
            assert not room.is_free(np.array([obj.center[0], obj.center[1], 1.5])), obj.name
        pts = np.stack([room.sample_position(np.random.default_rng(i)) for i in range(5)])
        assert room.is_free(pts).all()
        assert room.is_free(pts).shape == (5,)


def test_sample_pose_is_free_level_and_seeded(rooms):
    for room in rooms.values():
        for i in range(10):
            c2w = room.sample_pose(np.random.default_rng(i))
            assert c2w.shape == (4, 4) and c2w.dtype == torch.float32
            assert room.is_free(c2w[:3, 3].numpy(), radius=0.25)
            assert c2w[2, 3] == pytest.approx(room.eye_height)
            assert abs(float(c2w[2, 2])) < 1e-6  # forward axis horizontal: pitch 0
            assert torch.allclose(c2w[:3, :3] @ c2w[:3, :3].T, torch.eye(3), atol=1e-5)
        r1 = room.sample_pose(np.random.default_rng(42))
        r2 = room.sample_pose(np.random.default_rng(42))
        assert torch.equal(r1, r2)


def test_objects_are_named_inside_and_apart(rooms):
    for room in rooms.values():
        names = [o.name for o in room.objects] + [m.name for m in room.movers]
        assert len(set(names)) == len(names)
        assert 3 <= len(room.objects) <= 8
        lo, hi = room.bounds
        for o in room.objects:
            assert (o.center - o.size / 2 >= lo - 1e-6).all() and (o.center + o.size / 2 <= hi + 1e-6).all()
            assert room.object_named(o.name) is o
        for i, a in enumerate(room.objects):
            for b in room.objects[i + 1:]:
                gap = np.abs(a.center[:2] - b.center[:2]) - (a.size[:2] + b.size[:2]) / 2
                assert gap.max() > 0, (a.name, b.name)  # footprints do not overlap
        assert room.surface_area > 2 * room.size[0] * room.size[1]


# ------------------------------------------------------------------ bad input


def test_bad_inputs_raise_value_error(rooms):
    room = rooms[0]
    c2w = room.sample_pose(np.random.default_rng(0))
    K = room.intrinsics(32, 32)
    bad_pose = c2w.clone()
    bad_pose[0, 3] = float("nan")
    cases = [
        lambda: room.render(bad_pose, K, 32, 32),
        lambda: room.render(c2w[:3], K, 32, 32),
        lambda: room.render(torch.stack([c2w, c2w]), K, 32, 32),
        lambda: room.render_batch(c2w, K, 32, 32),
        lambda: room.render(c2w, K[:2], 32, 32),
        lambda: room.render(c2w, -K, 32, 32),
        lambda: room.render(c2w, K, 0, 32),
        lambda: room.render(c2w, K, 32, -4),
        lambda: room.render(c2w, K, 32.5, 32),
        lambda: room.render(c2w, K, 32, 32, t=float("inf")),
        lambda: room.render(c2w, K, 32, 32, supersample=0),
        lambda: room.render_batch(torch.stack([c2w, c2w]), K, 32, 32, t=[0.0]),
        lambda: room.is_free(np.zeros(2)),
        lambda: room.is_free(np.full(3, np.nan)),
        lambda: room.sample_pose(0),
        lambda: ProceduralRoom(-1),
        lambda: ProceduralRoom(1.5),
    ]
    for i, case in enumerate(cases):
        with pytest.raises(ValueError):
            case()
        assert i >= 0


def test_supersampling_keeps_depth_and_shapes(rooms):
    room = rooms[1]
    c2w = room.sample_pose(np.random.default_rng(1))
    K = room.intrinsics(24, 24)
    plain = room.render(c2w, K, 24, 24)
    smooth = room.render(c2w, K, 24, 24, supersample=2)
    assert smooth["rgb"].shape == plain["rgb"].shape
    assert np.array_equal(smooth["depth"], plain["depth"])
    assert np.abs(smooth["rgb"].astype(int) - plain["rgb"].astype(int)).mean() < 25
