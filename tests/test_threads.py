"""The env's thread policy (envs/threads.py): its work runs on ``num_threads``
torch threads and the caller's setting is restored; the async vector env
with the default start method (fork) and default threads does not hang.

The no-hang tests run in a fresh interpreter with OMP_NUM_THREADS and
MKL_NUM_THREADS unset (the hang needs torch's default thread count) under a
timeout: a hang fails the test instead of stalling the suite.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import mirage_gym  # noqa: F401  (registers the ids)
from mirage_gym.envs.config import EnvConfig
from mirage_gym.envs.threads import intra_op_threads

ROOT = Path(__file__).resolve().parents[1]
ORACLE = dict(world_model="oracle", obs_size=32, frames_per_step=2)
HANG_TIMEOUT_S = 240  # a healthy run takes 5-20 s on a loaded 2-core box; fork + OpenMP hangs forever


@pytest.fixture
def user_threads():
    """The test plays a user whose torch runs on 2 threads (conftest sets 1)."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield 2
    torch.set_num_threads(before)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_num_threads_must_be_positive_int_or_none(bad):
    with pytest.raises(ValueError, match="num_threads must be a positive integer"):
        EnvConfig.from_kwargs(num_threads=bad)
    EnvConfig.from_kwargs(num_threads=None)
    EnvConfig.from_kwargs(num_threads=3)


def test_intra_op_threads_restores_after_an_error(user_threads):
    with pytest.raises(RuntimeError):
        with intra_op_threads(1):
            assert torch.get_num_threads() == 1
            raise RuntimeError("boom")
    assert torch.get_num_threads() == user_threads
    with intra_op_threads(None):
        assert torch.get_num_threads() == user_threads


def _record_threads(world_model, seen: list):
    generate, encode = world_model.generate, world_model.encode

    def gen(request):
        seen.append(("generate", torch.get_num_threads()))
        return generate(request)

    def enc(images):
        seen.append(("encode", torch.get_num_threads()))
        return encode(images)

    world_model.generate, world_model.encode = gen, enc


@pytest.mark.parametrize("num_threads,expected", [(None, 2), (1, 1), (3, 3)])
def test_env_work_runs_on_num_threads_and_user_setting_is_restored(user_threads, num_threads, expected):
    env = gym.make("MirageRoom-v0", num_threads=num_threads, **ORACLE)
    assert torch.get_num_threads() == user_threads  # make() restored it too
    seen = []
    _record_threads(env.unwrapped.world_model, seen)
    env.reset(seed=0)
    assert torch.get_num_threads() == user_threads
    env.step(1)
    state = env.unwrapped.get_state()
    env.unwrapped.set_state(state)
    assert torch.get_num_threads() == user_threads
    assert {name for name, _ in seen} == {"encode", "generate"}
    assert all(n == expected for _, n in seen), seen
    env.close()


def test_vector_env_work_runs_on_one_thread_by_default(user_threads):
    vec = gym.make_vec("MirageRoom-v0", num_envs=2, vectorization_mode="vector_entry_point", **ORACLE)
    seen = []
    _record_threads(vec.unwrapped.world_model, seen)
    vec.reset(seed=0)
    vec.step(np.array([1, 3]))
    assert seen and all(n == 1 for _, n in seen), seen
    assert torch.get_num_threads() == user_threads
    vec.close()


@pytest.mark.parametrize("world", ["oracle", "tiny"])
def test_frames_do_not_depend_on_the_callers_threads(user_threads, world, tiny_weights_or_skip):
    """The env's default policy fixes its thread count, so a caller's setting cannot change its output:
    frames and the generated latents, bit for bit (with num_threads=None the learned model's float
    reductions split differently on 2 threads: its latents differ by ~1e-6)."""
    if world == "tiny":
        tiny_weights_or_skip()
    kwargs = ORACLE if world == "oracle" else dict(world_model="tiny", frames_per_step=2)
    frames, latents = [], []
    for caller in (1, user_threads):
        torch.set_num_threads(caller)
        env = gym.make("MirageRoom-v0", **kwargs)
        obs, _ = env.reset(seed=5)
        out = [obs["rgb"]] + [env.step(a)[0]["rgb"] for a in (1, 3, 1)]
        frames.append(np.stack(out))
        latents.append(env.unwrapped.get_state()["context_latent"])
        env.close()
    np.testing.assert_array_equal(frames[0], frames[1])
    assert torch.equal(latents[0], latents[1])


ASYNC_FORK_SCRIPT = textwrap.dedent("""
    import sys, time
    import numpy as np, torch
    import gymnasium as gym, mirage_gym
    threads = torch.get_num_threads()
    # a user's own torch work at default threads first: the parent's OpenMP pool is live when gym forks
    a = torch.randn(512, 512)
    for _ in range(5):
        a = torch.tanh(a @ a)
    kwargs = dict(world_model=sys.argv[1], frames_per_step=2)
    if sys.argv[1] == "oracle":
        kwargs["obs_size"] = 32
    t = time.perf_counter()
    vec = gym.make_vec("MirageRoom-v0", num_envs=2, vectorization_mode="async", **kwargs)  # default context: fork
    obs, _ = vec.reset(seed=0)
    for action in ([1, 3], [4, 1]):
        obs, reward, term, trunc, info = vec.step(np.array(action))
    vec.close()
    assert obs["rgb"].shape[0] == 2
    assert torch.get_num_threads() == threads, (torch.get_num_threads(), threads)
    print(f"ok threads={threads} seconds={time.perf_counter() - t:.1f}", flush=True)
""")


def run_default_threads(script: str, *args: str, timeout: float = HANG_TIMEOUT_S) -> str:
    """Run ``script`` in a fresh interpreter with torch's default threads (no
    OMP_NUM_THREADS / MKL_NUM_THREADS); fail the test if it runs past ``timeout``."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env["HF_HUB_OFFLINE"] = "1"
    try:
        proc = subprocess.run([sys.executable, "-c", script, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"hung: still running after {timeout:.0f} s with default threads ({' '.join(args)})")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_async_vector_env_fork_default_threads_does_not_hang_oracle():
    out = run_default_threads(ASYNC_FORK_SCRIPT, "oracle")
    assert out.startswith("ok"), out


def test_async_vector_env_fork_default_threads_does_not_hang_tiny(tiny_weights_or_skip):
    tiny_weights_or_skip()
    out = run_default_threads(ASYNC_FORK_SCRIPT, "tiny")
    assert out.startswith("ok"), out
