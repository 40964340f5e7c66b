"""The oracle env does only the work a step needs, with the same results:
the coverage view traced with the frame, rooms built once per seed."""

import numpy as np
import pytest

from mirage_gym.geometry import intrinsics_from_fov, pose_from_yaw_pitch, scale_intrinsics
from mirage_gym.scenes import ProceduralRoom


@pytest.mark.parametrize("size, grid", [(64, 16), (128, 32)])
def test_geometry_traced_with_the_frame_equals_separate_renders(size, grid):
    room = ProceduralRoom.cached(3)
    K = intrinsics_from_fov(90.0, size, size)
    Kg = scale_intrinsics(K, (size, size), (grid, grid))
    rng = np.random.default_rng(0)
    for i in range(6):
        c2w = room.sample_pose(rng)
        if i % 2:  # tilted and turned, so the frustum culling sees other furniture
            c2w = pose_from_yaw_pitch(c2w[:3, 3], float(rng.uniform(-3, 3)), float(rng.uniform(-1, 1)))
        fused = room.render(c2w, K, size, size, t=0.3 * i, geometry=(Kg, grid, grid))
        alone = room.render(c2w, K, size, size, t=0.3 * i)
        geo = room.render_batch(c2w[None], Kg, grid, grid, t=0.3 * i, rgb=False)
        for k in ("rgb", "depth", "static"):
            assert np.array_equal(fused[k], alone[k]), k
        assert np.array_equal(fused["geometry_depth"], geo["depth"][0])
        assert np.array_equal(fused["geometry_static"], geo["static"][0])


def test_geometry_view_needs_supersample_one():
    room = ProceduralRoom.cached(3)
    K = intrinsics_from_fov(90.0, 16, 16)
    with pytest.raises(ValueError, match="supersample"):
        room.render(room.sample_pose(np.random.default_rng(0)), K, 16, 16, supersample=2, geometry=(K, 16, 16))


def test_rooms_are_built_once_per_seed_and_render_like_a_fresh_build():
    a = ProceduralRoom.cached(11)
    assert ProceduralRoom.cached(12) is not a and ProceduralRoom.cached(11) is a
    fresh = ProceduralRoom(11)
    c2w = fresh.sample_pose(np.random.default_rng(1))
    K = intrinsics_from_fov(90.0, 32, 32)
    assert np.array_equal(a.render(c2w, K, 32, 32, t=1.0)["rgb"], fresh.render(c2w, K, 32, 32, t=1.0)["rgb"])
    for s in range(100, 100 + ProceduralRoom.CACHE_SIZE):  # least recently used goes first
        ProceduralRoom.cached(s)
    assert ProceduralRoom.cached(11) is not a


def test_env_resets_reuse_the_rooms_of_its_seeds():
    import gymnasium as gym

    import mirage_gym  # noqa: F401

    env = gym.make("MirageRoomOracle64-v0", scene_seeds=[21, 22])
    rooms = {}
    env.reset(seed=0)
    for _ in range(8):
        ep = env.unwrapped.sim.episodes[0]
        assert rooms.setdefault(ep.scene.seed, ep.scene) is ep.scene  # the same object each time the seed comes back
        env.reset()
    assert set(rooms) == {21, 22}


def test_oracle_latents_from_uint8_equal_encoding_the_model_images():
    import torch

    from mirage_gym.images import to_model
    from mirage_gym.models.oracle import PixelUnshuffleCodec

    rgb = np.random.default_rng(0).integers(0, 256, size=(2, 3, 16, 24, 3), dtype=np.uint8)
    for f in (2, 4, 8):
        codec = PixelUnshuffleCodec(f)
        assert torch.equal(codec.encode_uint8(rgb), codec.encode(to_model(rgb)))
