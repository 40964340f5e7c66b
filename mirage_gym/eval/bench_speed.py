"""What an RL user feels first: startup time, and frames/s under thread settings.

* **startup**: wall time of ``import mirage_gym; gym.make(id); env.reset()``
  in a fresh interpreter (its start included), with torch's default threads,
  for each id, fresh processes interleaved over ``repeats``.
* **threads**: embedded-model frames/s of the single env and of the vector
  env, in one fresh process whose thread settings are torch's defaults
  (OMP_NUM_THREADS / MKL_NUM_THREADS unset, as a user has them), for three
  settings interleaved over ``repeats`` windows of the same episodes:
  ``1 thread`` (the process set to one torch thread, env default),
  ``default`` (torch's default threads, env default ``num_threads``: the
  policy of envs/threads.py) and ``num_threads=None`` (the env on torch's
  default threads: the option the policy replaces). A window stops after
  ``window_s`` seconds, so a stalled setting cannot stall the bench.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

THREAD_SETTINGS = ("1 thread", "default", "num_threads=None")
STARTUP_IDS = ("MirageRoom-v0", "MirageRoomOracle64-v0")
STARTUP_TARGET_S = 3.0
NO_COLLAPSE_RATIO = 0.8  # default threads must keep >= this share of the 1-thread frames/s

STARTUP_SCRIPT = """
import time
t0 = time.perf_counter()
import json, sys
import gymnasium as gym, mirage_gym
t1 = time.perf_counter()
env = gym.make(sys.argv[1])
t2 = time.perf_counter()
env.reset(seed=0)
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "make_s": t2 - t1, "reset_s": t3 - t2}))
"""


def user_environment() -> dict:
    """os.environ as a user has it: no thread variables, so torch picks its default."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env.setdefault("HF_HUB_OFFLINE", "1")
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join([here] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return env


def spread(xs: list[float]) -> dict:
    return {"min": min(xs), "median": statistics.median(xs), "max": max(xs), "n": len(xs)}


def run_startup(ids=STARTUP_IDS, repeats: int = 3, timeout_s: float = 300.0, log=print) -> dict:
    """Fresh-process startup per env id: wall (interpreter start to reset done) and its parts."""
    walls = {i: [] for i in ids}
    parts = {i: [] for i in ids}
    for r in range(repeats):
        for env_id in ids:  # interleaved: load changes hit every id alike
            t = time.perf_counter()
            proc = subprocess.run([sys.executable, "-c", STARTUP_SCRIPT, env_id], env=user_environment(), capture_output=True,
                                  text=True, timeout=timeout_s)
            wall = time.perf_counter() - t
            if proc.returncode != 0:
                raise RuntimeError(f"startup of {env_id} failed:\n{proc.stderr[-2000:]}")
            walls[env_id].append(wall)
            parts[env_id].append(json.loads(proc.stdout.strip().splitlines()[-1]))
            log(f"  startup {env_id}: {wall:.2f} s (repeat {r + 1}/{repeats})")
    out = {}
    for env_id in ids:
        med = {k: statistics.median(p[k] for p in parts[env_id]) for k in ("import_s", "make_s", "reset_s")}
        out[env_id] = {"wall_s": spread(walls[env_id]), "median_parts_s": med, "raw_wall_s": walls[env_id]}
    return {"ids": list(ids), "repeats": repeats, "target_s": STARTUP_TARGET_S, "results": out}


# ------------------------------------------------------------------ threads (child)


def _thread_child(cfg: dict) -> dict:
    """Runs in the fresh process: frames/s per (mode, setting), interleaved windows."""
    import gymnasium as gym
    import numpy as np
    import torch

    import mirage_gym  # noqa: F401

    default_threads = torch.get_num_threads()
    K, vec_n = cfg["frames_per_step"], cfg["vector_envs"]
    kw = dict(world_model=cfg["world_model"], frames_per_step=K, task="none")
    options = {"scene_seed": cfg["scene_seed"]}
    envs = {}
    for setting in THREAD_SETTINGS:
        extra = {"num_threads": None} if setting == "num_threads=None" else {}
        envs[("single", setting)] = gym.make("MirageRoom-v0", **kw, **extra)
        envs[("vector", setting)] = gym.make_vec("MirageRoom-v0", num_envs=vec_n, vectorization_mode="vector_entry_point",
                                                 **kw, **extra)
    actions = [1, 1, 3, 1, 4, 1, 1, 3, 3, 1, 4, 4]
    for (mode, _), env in envs.items():
        env.reset(seed=0, options=options)
    fps = {key: [] for key in envs}
    steps_done = {key: 0 for key in envs}
    for r in range(cfg["repeats"] + 1):  # the first round warms up
        for key, env in envs.items():
            mode, setting = key
            torch.set_num_threads(1 if setting == "1 thread" else default_threads)
            n = 1 if mode == "single" else vec_n
            t0 = time.perf_counter()
            done = 0
            while done < cfg["window_steps"][mode] and (done == 0 or time.perf_counter() - t0 < cfg["window_s"]):
                a = actions[steps_done[key] % len(actions)]
                env.step(a if mode == "single" else np.full(n, a))
                steps_done[key] += 1
                done += 1
            dt = time.perf_counter() - t0
            if r > 0:
                fps[key].append(done * n * K / dt)
    torch.set_num_threads(default_threads)
    for env in envs.values():
        env.close()
    return {"default_threads": default_threads, "torch_threads_env": os.environ.get("OMP_NUM_THREADS"),
            "fps": {f"{m}|{s}": v for (m, s), v in fps.items()}}


def run_threads(*, world_model: str = "tiny", scene_seed: int, frames_per_step: int = 4, vector_envs: int = 8,
                repeats: int = 3, window_steps: int = 8, window_s: float = 20.0, timeout_s: float = 1800.0, log=print) -> dict:
    """Frames/s under each thread setting, measured in a fresh process with default threads."""
    cfg = {"world_model": world_model, "scene_seed": int(scene_seed), "frames_per_step": frames_per_step, "vector_envs": vector_envs,
           "repeats": repeats, "window_steps": {"single": window_steps, "vector": max(1, window_steps // 2)},
           "window_s": window_s}
    log(f"  threads: fresh process, torch default threads; single and vector-{vector_envs}, {repeats} interleaved windows")
    proc = subprocess.run([sys.executable, "-m", "mirage_gym.eval.bench_speed", json.dumps(cfg)], env=user_environment(),
                          capture_output=True, text=True, timeout=timeout_s)
    if proc.returncode != 0:
        raise RuntimeError(f"thread measurement failed:\n{proc.stderr[-3000:]}")
    child = json.loads(proc.stdout.strip().splitlines()[-1])
    rows = {}
    for key, values in child["fps"].items():
        mode, setting = key.split("|")
        rows.setdefault(mode, {})[setting] = spread(values)
    for mode, by in rows.items():
        one, dflt = by["1 thread"]["median"], by["default"]["median"]
        by["default_over_1_thread"] = dflt / one
        by["num_threads_none_over_1_thread"] = by["num_threads=None"]["median"] / one
        log(f"  {mode}: 1 thread {one:.1f}, default {dflt:.1f}, num_threads=None {by['num_threads=None']['median']:.1f} frames/s")
    return {"settings": cfg, "default_threads": child["default_threads"], "rows": rows, "world_model": world_model,
            "no_collapse_ratio": NO_COLLAPSE_RATIO}


def speed_tables(speed: dict):
    from .report import Table, fmt, ratio

    tables = []
    st = speed.get("startup")
    if st:
        rows = [[env_id, fmt(r["wall_s"]["median"]), f"{fmt(r['wall_s']['min'])} - {fmt(r['wall_s']['max'])}",
                 fmt(r["median_parts_s"]["import_s"]), fmt(r["median_parts_s"]["make_s"]), fmt(r["median_parts_s"]["reset_s"])]
                for env_id, r in st["results"].items()]
        tables.append(Table(f"Startup: fresh process, import mirage_gym + gym.make + reset (s; {st['repeats']} interleaved processes)",
                            ["env id", "wall median", "min - max", "import", "make", "reset"], rows,
                            ["wall from the interpreter's start to reset() returned, torch's default threads; parts measured "
                             "inside the process (medians)", f"target <= {st['target_s']:.0f} s"]))
    th = speed.get("threads")
    if th:
        rows = []
        for mode, by in th["rows"].items():
            label = "single" if mode == "single" else f"vector N={th['settings']['vector_envs']}"
            cells = [label]
            for setting in THREAD_SETTINGS:
                s = by[setting]
                cells.append(f"{fmt(s['median'])} ({fmt(s['min'])}-{fmt(s['max'])})")
            cells += [ratio(by["default_over_1_thread"]), ratio(by["num_threads_none_over_1_thread"])]
            rows.append(cells)
        tables.append(Table(
            f"Frames/s by thread setting ({th['world_model']}; median (min-max) of {th['settings']['repeats']} interleaved windows)",
            ["env", "1 thread", "default", "num_threads=None", "default / 1 thread", "None / 1 thread"], rows,
            [f"one fresh process, OMP_NUM_THREADS / MKL_NUM_THREADS unset (torch default: {th['default_threads']} threads); "
             "'1 thread': the process on torch.set_num_threads(1); 'default': torch's default threads, the env's default "
             "num_threads (1, restored around each call); 'num_threads=None': the env on torch's default threads",
             f"no collapse: default >= {th['no_collapse_ratio']}x of 1 thread; a window stops after "
             f"{fmt(th['settings']['window_s'])} s"]))
    return tables


def speed_target_lines(speed: dict) -> list[str]:
    lines = []
    st = speed.get("startup")
    if st:
        for env_id, r in st["results"].items():
            m = r["wall_s"]["median"]
            p = r["median_parts_s"]
            lines.append(f"Startup {env_id}: {fmt_s(m)} median wall (target <= {st['target_s']:.0f} s): "
                         + ("met." if m <= st["target_s"] else f"MISSED by {m - st['target_s']:.1f} s") +
                         f" (import {fmt_s(p['import_s'])}, make {fmt_s(p['make_s'])}, reset {fmt_s(p['reset_s'])}; the rest is "
                         "the interpreter's start).")
    th = speed.get("threads")
    if th:
        for mode, by in th["rows"].items():
            r = by["default_over_1_thread"]
            lines.append(f"No collapse, {mode}: default threads {r:.2f}x of 1 thread (target >= {th['no_collapse_ratio']}x): "
                         + ("met" if r >= th["no_collapse_ratio"] else "MISSED") +
                         f"; the env on torch's default threads (num_threads=None): {by['num_threads_none_over_1_thread']:.2f}x.")
    return lines


def fmt_s(x: float) -> str:
    return f"{x:.2f} s"


if __name__ == "__main__":
    print(json.dumps(_thread_child(json.loads(sys.argv[1]))))
