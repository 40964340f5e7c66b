"""`mirage-gym bench --sections oracle`: its figures come from what they claim."""

import torch

from mirage_gym.eval import bench_oracle
from mirage_gym.memory import LatentSpatialMemory
from mirage_gym.geometry import intrinsics_from_fov, pose_from_yaw_pitch


def _memory():
    mem = LatentSpatialMemory(voxel_size=0.1, update="oldest", align_depth=False)
    K = intrinsics_from_fov(90.0, 16, 16)
    g = torch.Generator().manual_seed(0)
    for i in range(8):
        c2w = pose_from_yaw_pitch(torch.tensor([0.0, 0.0, 1.5]), 0.8 * i, 0.0)
        mem.write(torch.randn(4, 16, 16, generator=g), 1.0 + 2.0 * torch.rand(16, 16, generator=g), K, c2w)
    return mem, K


def test_stacked_copies_are_out_of_view_so_the_view_is_the_same():
    mem, K = _memory()
    big = LatentSpatialMemory(voxel_size=0.1)
    big.load_state_dict(bench_oracle._stacked(mem.state_dict(), 5 * mem.num_tokens + 7))
    assert big.num_tokens == 5 * mem.num_tokens + 7
    assert torch.equal(big.positions[-mem.num_tokens:], mem.positions)  # the room's own tokens are the newest
    for pitch in (-1.0, 0.0, 0.5):  # looking down, level, up as far as the tour looks (30 deg; the copies are 40 m above)
        c2w = pose_from_yaw_pitch(torch.tensor([0.1, 0.2, 1.5]), 0.3, pitch)
        a, b = mem.read(K, c2w, 16, 16), big.read(K, c2w, 16, 16)
        assert torch.equal(a.latent, b.latent) and torch.equal(a.mask, b.mask) and float(a.mask.sum()) > 0


def test_oracle_section_runs_and_reports_what_it_measured():
    res = bench_oracle.run_oracle(scene_seed=1_000_003, steps=6, vector_envs=2, vector_steps=2, repeats=1, memory_segments=2,
                                log=lambda s: None)
    o, m = res["oracle"], res["memory"]
    assert o["single"]["wall"]["median"] > 0 and o["vector"]["cpu"]["median"] > 0 and o["vector_envs"] == 2
    assert m["tokens"] == {"5000": 5000, "60000": 60000}
    assert set(m["rows"]) == {"read (fill)", "write (fill)", "read (oldest)", "write (oldest)"}
    assert all(v["ms"]["5000"] > 0 and v["ms"]["60000"] > 0 for v in m["rows"].values())
    titles = [t.title for t in bench_oracle.oracle_tables(res)]
    assert any("Oracle env steps/s" in t for t in titles) and any("5,000 vs 60,000" in t for t in titles)
