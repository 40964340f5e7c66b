"""`mirage-gym bench` section ``oracle``: the oracle twin and memory scaling, as an RL user feels them on a CPU.

* **Oracle steps/s**: ``gym.make("MirageRoomOracle64-v0")`` and
  ``gym.make_vec(..., num_envs=N, vectorization_mode="vector_entry_point")``
  stepping a seeded random policy (resets at episode ends included), timed
  in interleaved repeats (single, vector, single, ...) after warm-up steps;
  min / median / max of wall-clock steps/s and of steps per CPU-second of
  this process (the second is less sensitive to other jobs on a shared
  machine). The vector figure counts every sub-env's steps.
* **Memory read/write at 5k and 60k stored tokens, same view**: the memory
  of a tour of one room (about 5k tokens, pixel-unshuffle latents with the
  oracle's 48 channels, ground-truth depth at the token centres), and the
  same memory below copies of the room stacked 40 m above each other, filled
  to 60k (the env's capacity; the room's own tokens are the newest); the
  copies are out of view of the tour's poses (pitch at most 30 degrees up),
  so both memories show the same view (tests/test_bench_oracle.py). Both then continue the tour (revisits): per
  segment a read at its 4 poses on the latent grid, then a write of its 4
  frames under the env's rule (``fill``) and the oracle's (``oldest``), each
  memory kind and rule running its own copy; interleaved, medians.
"""

from __future__ import annotations

import statistics
import time

import gymnasium as gym
import numpy as np
import torch

from ..geometry import intrinsics_from_fov, scale_intrinsics
from ..images import to_model
from ..memory import LatentSpatialMemory
from ..models.oracle import PixelUnshuffleCodec
from .bench_setup import render_segment
from .report import Table, fmt, ratio
from .trajectories import room_tour, simulate

ORACLE_ID = "MirageRoomOracle64-v0"
STACK_M = 40.0  # vertical spacing of the copies: above the top of the view (45 deg half-angle) at the tour's pitch (<= 30 deg)
RULES = ("fill", "oldest")


def _spread(xs) -> dict:
    return {"min": min(xs), "median": statistics.median(xs), "max": max(xs), "n": len(xs)}


def _timed(fn) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def oracle_steps(*, steps: int, vector_envs: int, vector_steps: int, repeats: int, warmup: int = 20, seed: int = 0,
                 log=print) -> dict:
    """Steps/s of the single oracle env and of its native vector env, interleaved repeats."""
    rng = np.random.default_rng(seed)
    single = gym.make(ORACLE_ID)
    vec = gym.make_vec(ORACLE_ID, num_envs=vector_envs, vectorization_mode="vector_entry_point")
    single.reset(seed=seed)
    vec.reset(seed=seed)
    ended = [0]

    def run_single(n):
        for a in rng.integers(0, 9, size=n):
            _, _, terminated, truncated, _ = single.step(int(a))
            if terminated or truncated:
                single.reset()
                ended[0] += 1

    def run_vector(n):
        for a in rng.integers(0, 9, size=(n, vector_envs)):
            vec.step(a)

    run_single(warmup)
    run_vector(max(2, warmup // 4))
    out = {"single": {"wall": [], "cpu": []}, "vector": {"wall": [], "cpu": []}}
    for _ in range(repeats):
        for key, fn, n in (("single", lambda: run_single(steps), steps), ("vector", lambda: run_vector(vector_steps),
                                                                           vector_steps * vector_envs)):
            wall, cpu = _timed(fn)
            out[key]["wall"].append(n / wall)
            out[key]["cpu"].append(n / cpu)
    single.close()
    vec.close()
    res = {"env_id": ORACLE_ID, "steps_per_repeat": steps, "vector_envs": vector_envs, "vector_steps_per_repeat": vector_steps,
           "repeats": repeats, "single_resets": ended[0],
           **{k: {m: _spread(v[m]) for m in v} for k, v in out.items()}}
    res["vector_over_single"] = res["vector"]["cpu"]["median"] / res["single"]["cpu"]["median"]
    log(f"  oracle: single {res['single']['wall']['median']:.0f} steps/s ({res['single']['cpu']['median']:.0f} per CPU-s), "
        f"vector-{vector_envs} {res['vector']['wall']['median']:.0f} ({res['vector']['cpu']['median']:.0f} per CPU-s): "
        f"{res['vector_over_single']:.2f}x per CPU-s")
    return res


def _stacked(state: dict, total: int) -> dict:
    """``state`` below copies of itself stacked STACK_M apart in z, oldest first, trimmed to ``total`` rows."""
    pos, feat = state["positions"], state["features"]
    copies = -(-max(0, total - pos.shape[0]) // max(1, pos.shape[0]))
    lift = torch.tensor([0.0, 0.0, STACK_M])
    positions = torch.cat([pos + lift * (k + 1) for k in reversed(range(copies))] + [pos])[-total:]
    features = torch.cat([feat] * (copies + 1))[-total:]
    observed = torch.cat([state["observed"]] * (copies + 1))[-total:]
    return {**state, "positions": positions.contiguous(), "features": features.contiguous(), "observed": observed,
            "num_writes": state["num_writes"] * (copies + 1)}


def memory_scaling(*, scene_seed: int, tokens=(5000, 60000), segments: int, repeats: int, image_size: int = 64,
                   voxel_size: float = 0.15, capacity: int = 60000, max_tour: int = 800, log=print) -> dict:
    """Read and write ms at ``tokens`` stored tokens, same view (see the module docstring)."""
    from ..scenes import ProceduralRoom

    room = ProceduralRoom.cached(scene_seed)
    S, f = image_size, 4
    h = S // f
    codec = PixelUnshuffleCodec(f)
    K = intrinsics_from_fov(room.fov_deg, S, S)
    K_lat = scale_intrinsics(K, (S, S), (h, h))
    start, actions = room_tour(room, max_tour + segments * repeats)
    traj = simulate(room, start, actions, 4)

    def segment(i):
        r = render_segment(room, traj.paths[i], traj.times[i], S, K, grid=h, K_latent=K_lat)
        return traj.paths[i], codec.encode(to_model(r.rgb)), r.depth_latent, r.static_latent

    base = LatentSpatialMemory(voxel_size, capacity=capacity, update="oldest", align_depth=False)
    step = 0
    with torch.inference_mode():
        while base.num_tokens < tokens[0] and step < max_tour:
            poses, lat, depth, static = segment(step)
            base.write(lat, depth, K_lat, poses, static_mask=static)
            step += 1
        if base.num_tokens > tokens[0]:  # the newest tokens_0 rows: what the room tour left
            state = base.state_dict()
            base = LatentSpatialMemory(voxel_size)
            base.load_state_dict({**state, **{k: state[k][-tokens[0]:] for k in ("positions", "features", "observed")}})
        states = {n: base.state_dict() if n <= base.num_tokens else _stacked(base.state_dict(), n) for n in tokens}
        mems = {}
        for n, st in states.items():
            for rule in RULES:
                m = LatentSpatialMemory(voxel_size)
                m.load_state_dict({**st, "update": rule})
                mems[n, rule] = m
        stored = {n: mems[n, RULES[0]].num_tokens for n in tokens}
        log(f"  memory: {step} tour segments -> {stored[tokens[0]]} tokens; stacked copies -> {stored[tokens[-1]]} tokens")
        inputs = [segment(step + i) for i in range(segments * repeats)]  # revisits of the room, prepared untimed
        times = {(n, rule, op): [] for n in tokens for rule in RULES for op in ("read", "write")}
        for poses, lat, depth, static in inputs:
            for rule in RULES:
                for n in tokens:  # interleaved: the same segment on every memory back to back
                    m = mems[n, rule]
                    t0 = time.perf_counter()
                    m.read(K_lat, poses, h, h)
                    t1 = time.perf_counter()
                    m.write(lat, depth, K_lat, poses, static_mask=static)
                    t2 = time.perf_counter()
                    times[n, rule, "read"].append(1e3 * (t1 - t0))
                    times[n, rule, "write"].append(1e3 * (t2 - t1))
    lo, hi = tokens[0], tokens[-1]
    rows = {}
    for rule in RULES:
        for op in ("read", "write"):
            a, b = (statistics.median(times[n, rule, op][1:] or times[n, rule, op]) for n in (lo, hi))  # first call warms caches
            rows[f"{op} ({rule})"] = {"ms": {str(lo): a, str(hi): b}, "ratio": b / a}
    res = {"scene_seed": scene_seed, "tokens": {str(n): stored[n] for n in tokens}, "channels": codec.latent_channels,
           "latent_grid": h, "poses_per_read": int(traj.paths.shape[1]), "segments_timed": len(inputs), "rows": rows,
           "raw_ms": {f"{n}/{rule}/{op}": v for (n, rule, op), v in times.items()}}
    log("  memory: " + ", ".join(f"{k} {v['ms'][str(lo)]:.2f} -> {v['ms'][str(hi)]:.2f} ms ({v['ratio']:.2f}x)" for k, v in rows.items()))
    return res


def run_oracle(*, scene_seed: int, steps: int, vector_envs: int, vector_steps: int, repeats: int, memory_segments: int,
              log=print) -> dict:
    return {"oracle": oracle_steps(steps=steps, vector_envs=vector_envs, vector_steps=vector_steps, repeats=repeats, log=log),
            "memory": memory_scaling(scene_seed=scene_seed, segments=memory_segments, repeats=repeats, log=log)}


def oracle_tables(res: dict) -> list[Table]:
    o, m = res["oracle"], res["memory"]
    row = lambda name, r: [name] + [fmt(r[k][s]) for k in ("wall", "cpu") for s in ("min", "median", "max")]  # noqa: E731
    oracle = Table(f"Oracle env steps/s ({o['env_id']}; {o['repeats']} interleaved repeats, min / median / max)",
                   ["env", "wall min", "wall median", "wall max", "per CPU-s min", "per CPU-s median", "per CPU-s max"],
                   [row("single", o["single"]), row(f"vector-{o['vector_envs']} (all sub-envs)", o["vector"])],
                   [f"{o['steps_per_repeat']} single steps / {o['vector_steps_per_repeat']} vector steps per repeat, seeded random "
                    f"actions, episode resets included; vector / single per CPU-s: {ratio(o['vector_over_single'])}",
                    "targets (issue 22): single >= 1,500 steps/s; vector-16 >= 3x single"])
    lo, hi = m["tokens"].values()
    (klo, khi) = m["tokens"].keys()
    memory = Table(f"Memory read / write ms at the same view: {lo:,} vs {hi:,} stored tokens",
                   ["call", f"{lo:,} tokens", f"{hi:,} tokens", "ratio"],
                   [[k, fmt(v["ms"][klo]), fmt(v["ms"][khi]), ratio(v["ratio"])] for k, v in m["rows"].items()],
                   [f"one segment: read at {m['poses_per_read']} poses on the {m['latent_grid']}x{m['latent_grid']} latent grid, "
                    f"write of its {m['poses_per_read']} frames ({m['channels']} channels); medians of {m['segments_timed']} segments",
                    f"the {hi:,}-token memory is the room's own tokens below copies of the room stacked {STACK_M:.0f} m apart "
                    "(out of view of these poses): what differs is only what is stored, not what is seen",
                    "target (issue 22): 60k within 2x of 5k"])
    return [oracle, memory]
