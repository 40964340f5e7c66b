"""Faults inside a step, and snapshots forked into other envs (issue 24, issue 23.6).

A step is a transaction: a failure injected inside the world model (or in the
memory write, or a KeyboardInterrupt) leaves the env exactly as before, and
retrying the step gives what an env that never failed gives, single and
vector, pending autoresets and RNGs included.
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from test_bad_input import digest
from test_tiny_model import random_tiny_model

import mirage_gym
from mirage_gym import Action
from mirage_gym.memory import LatentSpatialMemory

ACTIONS = [Action.FORWARD, Action.TURN_LEFT, Action.FORWARD, Action.STRAFE_RIGHT, Action.TURN_RIGHT, Action.FORWARD]
FAIL_AT = 2


@pytest.fixture(scope="module")
def model():
    return random_tiny_model()


class Injected(Exception):
    pass


def fail_once(monkeypatch, owner, name, exc=Injected, at_call=1):
    """Make the ``at_call``-th call of ``owner.name`` do its work (RNG drawn,
    memory read or written) and then raise ``exc``; every other call works."""
    original = getattr(owner, name)
    fired, calls = [], []

    def failing(*args, **kwargs):
        result = original(*args, **kwargs)
        calls.append(True)
        if len(calls) == at_call:
            fired.append(True)
            raise exc("injected failure")
        return result

    monkeypatch.setattr(owner, name, failing)
    return fired


def full_state(env):
    base = env.unwrapped
    return digest({"state": base.get_state(), "np_random": base.np_random.bit_generator.state})


def injection_points(model):
    return {
        "generate": (model, "generate", Injected),
        "generate-ctrl-c": (model, "generate", KeyboardInterrupt),
        "decode": (model, "decode_segment", Injected),
        "memory-write": (LatentSpatialMemory, "write", Injected),  # after the first of 4 frames is written
    }


@pytest.mark.parametrize("where", ["generate", "generate-ctrl-c", "decode", "memory-write"])
def test_single_env_step_retried_after_a_failure_equals_a_never_failed_env(model, monkeypatch, where):
    make = lambda: gym.make("MirageRoom-v0", world_model=model, memory_obs=True, max_episode_steps=50)  # noqa: E731
    ref, env = make(), make()
    ref.reset(seed=11)
    env.reset(seed=11)
    want = [ref.step(a) for a in ACTIONS]
    for a in ACTIONS[:FAIL_AT]:
        env.step(a)
    before = full_state(env)
    owner, name, exc = injection_points(model)[where]
    with monkeypatch.context() as mp:
        fired = fail_once(mp, owner, name, exc)
        with pytest.raises(exc, match="injected"):
            env.step(ACTIONS[FAIL_AT])
        assert fired
        assert full_state(env) == before, "a step that raised changed the env"
        got = [env.step(a) for a in ACTIONS[FAIL_AT:]]  # retry, then carry on
    for (o1, r1, t1, u1, i1), (o2, r2, t2, u2, i2) in zip(want[FAIL_AT:], got):
        assert np.array_equal(o1["rgb"], o2["rgb"]) and np.array_equal(o1["memory"], o2["memory"])
        assert np.array_equal(o1["pose"], o2["pose"]) and np.array_equal(i1["frames"], i2["frames"])
        assert (r1, t1, u1) == (r2, t2, u2)
    assert full_state(env) == full_state(ref)


def vec_state(vec):
    return digest({"states": [vec.get_state(i) for i in range(vec.num_envs)],
                   "rngs": [r.bit_generator.state for r in vec._rngs], "elapsed": vec._elapsed,
                   "needs_reset": vec._needs_reset, "last": [o["rgb"] for o in vec._last_obs]})


@pytest.mark.parametrize("mode", ["NextStep", "SameStep"])
def test_vector_step_retried_after_a_failure_equals_a_never_failed_vector_env(model, monkeypatch, mode):
    """The failing step carries pending autoresets (NextStep: the failure hits
    sub-env 1's reset, after sub-env 0's) or steps, ends the episodes and resets
    them at once (SameStep: the failure hits generate, then a reset): no
    reset may be consumed."""
    make = lambda: gym.make_vec("MirageRoom-v0", num_envs=2, vectorization_mode="vector_entry_point",  # noqa: E731
                                world_model=model, max_episode_steps=2, autoreset_mode=mode)
    ref, vec = make(), make()
    ref.reset(seed=[3, 4])
    vec.reset(seed=[3, 4])
    actions = [[Action.FORWARD, Action.TURN_LEFT], [Action.TURN_RIGHT, Action.FORWARD], [Action.FORWARD, Action.FORWARD],
               [Action.TURN_LEFT, Action.STRAFE_LEFT]]
    fail_at = 2 if mode == "NextStep" else 1  # NextStep: step 2 autoresets both; SameStep: step 1 truncates and resets
    want = [ref.step(a) for a in actions]
    for a in actions[:fail_at]:
        vec.step(a)
    before = vec_state(vec)
    if mode == "NextStep":
        fired = fail_once(monkeypatch, model, "encode", at_call=2)
    else:
        fired = fail_once(monkeypatch, model, "generate")
    with pytest.raises(Injected):
        vec.step(actions[fail_at])
    if mode == "SameStep":  # and once more, in the same-step reset of sub-env 1
        fired = fail_once(monkeypatch, model, "encode", at_call=2)
        with pytest.raises(Injected):
            vec.step(actions[fail_at])
    assert fired and vec_state(vec) == before, "a vector step that raised changed a sub-env, a counter or an RNG"
    got = [vec.step(a) for a in actions[fail_at:]]
    for w, g in zip(want[fail_at:], got):
        assert np.array_equal(w[0]["rgb"], g[0]["rgb"]) and np.array_equal(w[0]["pose"], g[0]["pose"])
        for x, y in zip(w[1:4], g[1:4]):
            assert np.array_equal(x, y)
    assert vec_state(vec) == vec_state(ref)


ORACLE = dict(world_model="oracle", obs_size=32, frames_per_step=1)


def test_vector_reset_takes_numpy_seeds_and_a_failed_reset_changes_nothing(monkeypatch):
    make = lambda: gym.make_vec("MirageRoom-v0", num_envs=2, vectorization_mode="vector_entry_point", **ORACLE)  # noqa: E731
    a, b = make(), make()
    obs_a, _ = a.reset(seed=[0, np.int64(1)])  # numpy seeds reset every sub-env (issue 24 finding 7)
    obs_b, _ = b.reset(seed=[0, 1])
    assert np.array_equal(obs_a["rgb"], obs_b["rgb"])
    assert np.array_equal(a.reset(seed=np.int64(5))[0]["rgb"], b.reset(seed=5)[0]["rgb"])
    a.step([Action.FORWARD, Action.TURN_LEFT])
    before = vec_state(a)
    fail_once(monkeypatch, a.unwrapped.sim.world_model, "encode")  # sub-env 0 resets, then the failure hits it
    with pytest.raises(Injected):
        a.reset(seed=[7, 8])
    assert vec_state(a) == before, "a reset that failed left some sub-envs reset"


# ------------------------------------------------------------------ fork and replay


def test_fork_into_a_freshly_made_env_replays_and_truncates_at_the_same_step(model):
    """set_state needs no throwaway reset, restores the TimeLimit counter, and
    the restored observation is public (issue 23.6)."""
    make = lambda: gym.make("MirageRoom-v0", world_model=model, max_episode_steps=6, memory_obs=True)  # noqa: E731
    env = make()
    env.reset(seed=2)
    for a in ACTIONS[:3]:
        env.step(a)
    state = env.unwrapped.get_state()
    current = env.unwrapped.current_observation()
    fork = make()  # never reset
    obs = mirage_gym.restore_state(fork, state)
    assert np.array_equal(obs["rgb"], current["rgb"]) and np.array_equal(obs["memory"], current["memory"])
    assert np.array_equal(fork.unwrapped.current_observation()["pose"], current["pose"])
    for a in ACTIONS[3:]:
        o1, r1, t1, u1, _ = env.step(a)
        o2, r2, t2, u2, _ = fork.step(a)
        assert np.array_equal(o1["rgb"], o2["rgb"]) and (r1, t1, u1) == (r2, t2, u2)
    assert u1 and u2, "both episodes end at max_episode_steps=6 (3 steps before the fork, 3 after)"


def test_vector_fork_counts_the_time_limit_from_the_snapshot():
    single = gym.make("MirageRoom-v0", max_episode_steps=3, **ORACLE)
    single.reset(seed=1)
    single.step(Action.FORWARD)
    single.step(Action.TURN_LEFT)
    vec = gym.make_vec("MirageRoom-v0", num_envs=1, vectorization_mode="vector_entry_point", max_episode_steps=3, **ORACLE)
    vec.set_state(0, single.unwrapped.get_state())  # a fresh vector env, never reset
    assert np.array_equal(vec.current_observation(0)["rgb"], single.unwrapped.current_observation()["rgb"])
    _, _, _, truncated, _ = vec.step([Action.FORWARD])
    assert truncated[0], "the snapshot had 2 of 3 steps: the next one truncates"


def test_snapshot_from_other_weights_of_the_same_shapes_is_refused(model):
    other = random_tiny_model()
    with torch.no_grad():
        next(other.denoiser.parameters()).add_(1e-3)  # same shapes, other weights
    env = gym.make("MirageRoom-v0", world_model=model)
    env.reset(seed=0)
    target = gym.make("MirageRoom-v0", world_model=other)
    target.reset(seed=0)
    before = full_state(target)
    with pytest.raises(ValueError, match=r"other world-model weights .*same world_model"):
        target.unwrapped.set_state(env.unwrapped.get_state())
    assert full_state(target) == before


def test_numpy_sizes_are_accepted_as_plain_ints():
    env = gym.make("MirageRoom-v0", world_model="oracle", obs_size=np.int64(32), frames_per_step=np.int64(2))
    cfg = env.unwrapped.config
    assert cfg.obs_size == 32 and type(cfg.obs_size) is int and cfg.frames_per_step == 2 and type(cfg.frames_per_step) is int
    obs, _ = env.reset(seed=0)
    assert obs["rgb"].shape == (32, 32, 3)
    assert env.step(np.int64(Action.FORWARD))[4]["frames"].shape == (2, 32, 32, 3)


def test_photo_loading_scales_16_bit_and_names_a_file_that_is_no_image(tmp_path):
    import imageio.v3 as iio

    from mirage_gym.scenes.photo import load_image

    grey16 = np.linspace(0, 65535, 32 * 32).reshape(32, 32).astype(np.uint16)
    iio.imwrite(tmp_path / "grey16.png", grey16)
    img = load_image(tmp_path / "grey16.png")
    assert img.dtype == np.uint8 and img.shape == (32, 32, 3)
    assert img.min() == 0 and img.max() == 255 and abs(float(img.mean()) - 127.5) < 1.0, "16-bit grey saturated"
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(ValueError, match=r"notes\.png is not an image file that can be read .*pass a PNG or JPEG"):
        load_image(tmp_path / "notes.png")


@pytest.mark.parametrize("update", ["fill", "oldest", "newest"])
def test_memory_writes_never_change_the_storage_a_checkpoint_holds(update):
    """The contract step transactions rest on (PointMemory.checkpoint): a write
    replaces the storage tensors and never writes into them, so a checkpoint
    of references is enough to roll back. A storage that grows in place must
    make checkpoint() copy what a write can overwrite."""
    from mirage_gym.geometry import intrinsics_from_fov

    g = torch.Generator().manual_seed(0)
    mem = LatentSpatialMemory(voxel_size=0.1, capacity=150, update=update)
    K = intrinsics_from_fov(90.0, 8, 8)
    yaw = torch.eye(4)
    for step in range(6):  # overlapping views (rewrites, moves to the end) and eviction at capacity
        checkpoint = mem.checkpoint()
        copies = [t.clone() if isinstance(t, torch.Tensor) else t for t in checkpoint]
        before = (mem.positions.clone(), mem.features.clone(), mem.observed.clone(), mem.num_writes)
        yaw[:3, :3] = torch.tensor([[math.cos(step * 0.3), 0, math.sin(step * 0.3)], [0, 1, 0],
                                    [-math.sin(step * 0.3), 0, math.cos(step * 0.3)]])
        mem.write(torch.randn(8, 8, 8, generator=g), 1.0 + torch.rand(8, 8, generator=g), K, yaw, observed=step % 2 == 0)
        for held, copy in zip(checkpoint, copies):
            assert (torch.equal(held, copy) if isinstance(held, torch.Tensor) else held == copy), "a write changed stored tensors in place"
        written = mem.checkpoint()
        mem.rollback(checkpoint)  # back to before the write, exactly
        after = (mem.positions, mem.features, mem.observed, mem.num_writes)
        assert all(torch.equal(a, b) if isinstance(a, torch.Tensor) else a == b for a, b in zip(after, before))
        mem.rollback(written)  # and forward again, to keep writing
