"""Frustum culling before the splat (memory/cull.py): a culled read or write
gives exactly the bits of the unculled one, and does skip what is out of view."""

from __future__ import annotations

import math

import pytest
import torch

from mirage_gym.geometry import intrinsics_from_fov, pose_from_yaw_pitch
from mirage_gym.memory import LatentSpatialMemory, cull, splat_points
from mirage_gym.memory.splat import projection_matrices

H = W = 16
K16 = intrinsics_from_fov(90.0, H, W)


def _views(centre, n, seed):
    """n views around ``centre``: poses, latents (C=4) and uneven depth."""
    g = torch.Generator().manual_seed(seed)
    for i in range(n):
        yaw = 2 * math.pi * i / n + float(torch.rand(1, generator=g))
        c2w = pose_from_yaw_pitch(torch.tensor(centre) + torch.randn(3, generator=g) * 0.3, yaw, 0.3 * float(torch.randn(1, generator=g)))
        depth = 1.0 + 3.0 * torch.rand(H, W, generator=g)
        depth[torch.rand(H, W, generator=g) < 0.05] = math.inf  # sky
        yield c2w, torch.randn(4, H, W, generator=g), depth


def _memory(update="fill"):
    """Views at the origin, then far-away places (beside, behind, above, below), then the origin again."""
    mem = LatentSpatialMemory(voxel_size=0.05, update=update)
    places = [(0.0, 0.0, 1.5), (-60.0, 5.0, 1.5), (0.0, 60.0, 1.5), (0.0, 0.0, 61.5), (3.0, -40.0, -30.0)]
    for k, centre in enumerate(places + places[:1]):
        for c2w, lat, depth in _views(centre, 12, seed=k):
            mem.write(lat, depth, K16, c2w)
    return mem


def _unculled(mem, K, c2w, h, w):
    return splat_points(mem.positions, mem.features, K, c2w, h, w, near=mem.near, depth_tolerance=mem.depth_tolerance,
                        min_weight=mem.min_weight)


@pytest.fixture
def cull_always(monkeypatch):
    monkeypatch.setattr(cull, "MIN_ROWS", 0)  # the test memories are small: cull them anyway


def test_culled_read_equals_unculled_read_and_skips_far_blocks(cull_always):
    mem = _memory()
    assert mem.num_tokens > 8 * cull.BLOCK
    # four poses at the origin looking along +x (yaw 0 +- 20 degrees): every far place is out of their view
    poses = torch.stack([pose_from_yaw_pitch(torch.tensor([0.2 * i, 0.1, 1.5]), math.radians(20 * i - 30), 0.1 * i) for i in range(4)])
    for c2w in (poses, poses[0]):  # a batch of 4 and a single pose
        for size, K in ((H, K16), (32, intrinsics_from_fov(90.0, 32, 32))):
            view = mem.read(K, c2w, size, size)
            ref = _unculled(mem, K, c2w, size, size)
            want = (ref.features, ref.mask, ref.depth) if c2w.ndim == 3 else (ref.features[0], ref.mask[0], ref.depth[0])
            for got, exp in zip((view.latent, view.mask, view.depth), want):
                assert torch.equal(got, exp)
            assert float(view.mask.sum()) > 0
    # the test means something: the far places' blocks were skipped
    rows = cull.rows_in_view(cull.block_bounds(mem.positions.T.contiguous()), projection_matrices(K16, poses), mem.num_tokens, H, W,
                             mem.near)
    assert rows is not None and rows.numel() < mem.num_tokens / 2


def test_nothing_in_view_reads_an_empty_view(cull_always):
    mem = _memory()
    away = pose_from_yaw_pitch(torch.tensor([500.0, 500.0, 1.5]), 0.0, 0.0)  # looks at empty space
    view = mem.read(K16, away, H, W)
    assert float(view.mask.sum()) == 0 and torch.isinf(view.depth).all()
    ref = _unculled(mem, K16, away, H, W)
    assert torch.equal(view.latent, ref.features[0]) and torch.equal(view.mask, ref.mask[0])


@pytest.mark.parametrize("update", ["fill", "oldest"])
def test_culled_writes_store_the_same_memory(update, monkeypatch):
    """The fill rule splats the memory at each written frame, and every write searches the
    stored rows near it for its voxels: culled or not, the same memory results."""
    monkeypatch.setattr(cull, "MIN_ROWS", 0)
    culled = _memory(update)
    monkeypatch.setattr(cull, "MIN_ROWS", 10**9)  # culling off
    plain = _memory(update)
    a, b = culled.state_dict(), plain.state_dict()
    assert torch.equal(a["positions"], b["positions"]) and torch.equal(a["features"], b["features"])


@pytest.mark.parametrize("update", ["fill", "oldest", "newest"])
def test_kept_voxel_keys_match_a_restored_memory(update, cull_always):
    """Voxel keys are kept with the storage across writes, evictions and reorders; a memory
    restored from a snapshot recomputes them: both must go on identically."""
    mem = LatentSpatialMemory(voxel_size=0.05, update=update, capacity=1500)
    views = list(_views((0.0, 0.0, 1.5), 30, seed=5))
    for c2w, lat, depth in views[:20]:
        mem.write(lat, depth, K16, c2w)
    restored = LatentSpatialMemory(voxel_size=0.05)
    restored.load_state_dict(mem.state_dict())
    for c2w, lat, depth in views[20:] + views[:5]:  # revisits rewrite voxels; capacity evicts
        mem.write(lat, depth, K16, c2w)
        restored.write(lat, depth, K16, c2w)
    assert mem.num_tokens == 1500  # eviction happened
    a, b = mem.state_dict(), restored.state_dict()
    assert torch.equal(a["positions"], b["positions"]) and torch.equal(a["features"], b["features"])


@pytest.mark.parametrize("update", ["fill", "oldest", "newest"])
def test_writes_replace_the_storage_and_cached_keys_follow_it(update, cull_always):
    """A write never writes into the storage tensors it replaces (references to them are
    snapshots: the env's transactions put them back), and the voxel keys and block bounds
    cached beside them follow whatever storage is put back."""
    mem = LatentSpatialMemory(voxel_size=0.05, update=update, capacity=1500)
    views = list(_views((0.0, 0.0, 1.5), 24, seed=3))
    for c2w, lat, depth in views[:12]:
        mem.write(lat, depth, K16, c2w)
    xyz, feat = mem._xyz, mem._features
    kept = (xyz.clone(), feat.clone())
    for c2w, lat, depth in views[12:] + views[:4]:  # rewrites and eviction
        mem.write(lat, depth, K16, c2w)
    assert torch.equal(xyz, kept[0]) and torch.equal(feat, kept[1])  # never written into
    after = mem.state_dict()
    mem._xyz, mem._features = xyz, feat  # put the old storage back, as a rollback does
    again = LatentSpatialMemory(voxel_size=0.05)
    again.load_state_dict(mem.state_dict())
    for c2w, lat, depth in views[12:] + views[:4]:  # both go on identically: the cached keys were not stale
        mem.write(lat, depth, K16, c2w)
        again.write(lat, depth, K16, c2w)
    assert torch.equal(mem.state_dict()["positions"], after["positions"])
    assert torch.equal(mem.state_dict()["features"], again.state_dict()["features"])


@pytest.mark.parametrize("update", ["fill", "oldest", "newest"])
@pytest.mark.parametrize("capacity", [None, 1200])
def test_a_batched_write_equals_its_frames_written_one_by_one(update, capacity, cull_always):
    """A write of T frames gathers the features once (memory/point_memory.py, _insert): the
    same memory as T single-frame writes, through rewrites, moves and eviction."""
    views = list(_views((0.0, 0.0, 1.5), 16, seed=8))
    one = LatentSpatialMemory(voxel_size=0.05, update=update, capacity=capacity)
    many = LatentSpatialMemory(voxel_size=0.05, update=update, capacity=capacity)
    for chunk in (views[:4], views[4:10], views[10:], views[2:8]):  # the last chunk revisits
        for c2w, lat, depth in chunk:
            one.write(lat, depth, K16, c2w)
        many.write(torch.stack([v[1] for v in chunk]), torch.stack([v[2] for v in chunk]), K16, torch.stack([v[0] for v in chunk]))
        a, b = one.state_dict(), many.state_dict()
        assert torch.equal(a["positions"], b["positions"]) and torch.equal(a["features"], b["features"])
    if capacity:
        assert one.num_tokens == capacity
