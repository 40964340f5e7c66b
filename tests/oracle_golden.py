"""Digests of the oracle envs' outputs, to keep speed work bit-identical.

``traces()`` runs fixed seeds and action sequences through the single and the
vector oracle env and hashes, per step, the frame, the rest of the step's
outputs (pose, reward, terminated, truncated, info) and, every few steps, a
complete ``get_state`` snapshot. ``python tests/oracle_golden.py`` writes them
to ``tests/data/oracle_golden.json`` (done once, on the code before the speed
work: main at 3495c3f); ``test_oracle_golden.py`` recomputes and compares them.
A change meant to alter these outputs (a new snapshot format, say) regenerates
the file on the code before the change, then checks the change against it
(re-recorded on the provenance column of memory points: only
``info["memory_bytes"]`` and the snapshots changed, +1 feature column per point).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import torch

GOLDEN = Path(__file__).resolve().parent / "data" / "oracle_golden.json"
SNAPSHOT_EVERY = 5


def digest(value) -> str:
    """sha256 of a nested structure of dicts, lists, arrays, tensors and scalars (exact bits)."""
    h = hashlib.sha256()
    _feed(h, value)
    return h.hexdigest()[:20]


def _feed(h, v) -> None:
    if isinstance(v, dict):
        h.update(b"{")
        for k in sorted(v, key=str):
            h.update(str(k).encode() + b":")
            _feed(h, v[k])
        h.update(b"}")
    elif isinstance(v, (list, tuple)):
        h.update(b"[")
        for x in v:
            _feed(h, x)
        h.update(b"]")
    elif isinstance(v, torch.Tensor):
        _feed(h, v.detach().cpu().contiguous().numpy() if v.dtype != torch.bfloat16 else v.float().numpy())
    elif isinstance(v, np.ndarray) and v.dtype == object:  # tobytes() would hash pointers
        h.update(f"nd{v.shape}".encode())
        _feed(h, v.ravel().tolist())
    elif isinstance(v, np.ndarray):
        h.update(f"nd{v.dtype}{v.shape}".encode())
        h.update(np.ascontiguousarray(v).tobytes())
    elif isinstance(v, (float, np.floating)):
        h.update(float(v).hex().encode())
    else:
        h.update(repr(v).encode())


def _actions(seed: int, n: int) -> list[int]:
    """Forward-heavy (walls get hit), with turns, looks and strafes."""
    rng = np.random.default_rng(seed)
    return [int(a) for a in rng.choice(9, size=n, p=[.04, .36, .08, .14, .14, .06, .06, .06, .06])]


def _step_record(obs, reward, terminated, truncated, info) -> dict:
    rest = {"obs": {k: v for k, v in obs.items() if k != "rgb"}, "reward": reward, "terminated": terminated,
            "truncated": truncated, "info": info}
    return {"rgb": digest(obs["rgb"]), "rest": digest(rest)}


def single_trace(env_id: str, seed: int, steps: int, resets: int = 2, **kwargs) -> dict:
    """``resets`` episodes (the first seeded) of ``steps`` steps each."""
    import gymnasium as gym

    import mirage_gym  # noqa: F401  (registers the ids)

    env = gym.make(env_id, **kwargs)
    records, snapshots = [], []
    actions = _actions(seed, steps * resets)
    for e in range(resets):
        obs, info = env.reset(seed=seed if e == 0 else None)
        records.append(_step_record(obs, 0.0, False, False, info))
        snapshots.append(digest(env.unwrapped.get_state()))
        for t in range(steps):
            out = env.step(actions[e * steps + t])
            records.append(_step_record(*out))
            if (t + 1) % SNAPSHOT_EVERY == 0:
                snapshots.append(digest(env.unwrapped.get_state()))
            if out[2] or out[3]:
                break
    env.close()
    return {"steps": records, "snapshots": snapshots}


def vector_trace(env_id: str, num_envs: int, seed: int, steps: int, max_episode_steps: int, **kwargs) -> dict:
    """The native vector env with short episodes, so autoresets happen."""
    from mirage_gym.envs.vector import MirageRoomVectorEnv
    from mirage_gym.registration import CONFIG_DIR, load_env_config

    spec = load_env_config(CONFIG_DIR / f"{env_id}.yaml")
    env = MirageRoomVectorEnv(num_envs=num_envs, max_episode_steps=max_episode_steps, **{**spec["kwargs"], **kwargs})
    acts = np.array([_actions(seed + i, steps) for i in range(num_envs)]).T  # (steps, N)
    obs, info = env.reset(seed=seed)
    records = [{"rgb": digest(obs["rgb"]), "rest": digest({"obs": {k: v for k, v in obs.items() if k != "rgb"}, "info": info})}]
    snapshots = [digest([env.get_state(i) for i in range(num_envs)])]
    for t in range(steps):
        obs, reward, terminated, truncated, info = env.step(acts[t])
        rest = {"obs": {k: v for k, v in obs.items() if k != "rgb"}, "reward": reward, "terminated": terminated,
                "truncated": truncated, "info": info}
        records.append({"rgb": digest(obs["rgb"]), "rest": digest(rest)})
        if (t + 1) % SNAPSHOT_EVERY == 0:
            snapshots.append(digest([env.get_state(i) for i in range(num_envs)]))
    env.close()
    return {"steps": records, "snapshots": snapshots}


# name -> (function, kwargs): small enough to run in a few seconds in total
CASES = {
    "oracle64_seed0": (single_trace, dict(env_id="MirageRoomOracle64-v0", seed=0, steps=40)),
    "oracle64_seed7": (single_trace, dict(env_id="MirageRoomOracle64-v0", seed=7, steps=40)),
    "oracle64_memory_obs_seed3": (single_trace, dict(env_id="MirageRoomOracle64-v0", seed=3, steps=20, memory_obs=True)),
    "oracle64_fill_seed5": (single_trace, dict(env_id="MirageRoomOracle64-v0", seed=5, steps=20, memory_update="fill",
                                               frames_per_step=2)),
    "objectgoal_oracle64_seed1": (single_trace, dict(env_id="MirageRoomObjectGoalOracle64-v0", seed=1, steps=20, resets=3)),
    "oracle_seed2": (single_trace, dict(env_id="MirageRoomOracle-v0", seed=2, steps=8)),
    "vector4_oracle64_seed11": (vector_trace, dict(env_id="MirageRoomOracle64-v0", num_envs=4, seed=11, steps=30,
                                                    max_episode_steps=12)),
    "vector3_objectgoal_seed4": (vector_trace, dict(env_id="MirageRoomObjectGoalOracle64-v0", num_envs=3, seed=4, steps=16,
                                                     max_episode_steps=7)),
}


def traces(names=None) -> dict:
    torch.set_num_threads(1)
    return {name: fn(**kw) for name, (fn, kw) in CASES.items() if names is None or name in names}


if __name__ == "__main__":
    if "--check" in sys.argv:
        golden = json.loads(GOLDEN.read_text())
        now = traces()
        bad = [n for n in golden if golden[n] != now[n]]
        print("identical" if not bad else f"DIFFERENT: {bad}")
        sys.exit(1 if bad else 0)
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(json.dumps(traces(), indent=0) + "\n")
    print(f"wrote {GOLDEN}")
