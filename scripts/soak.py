"""Soak test: run MirageRoom for a long time, as a training loop does, and
watch for leaks, blow-ups and slow-downs.

    python scripts/soak.py --oracle-steps 10000 --tiny-steps 1000

Two parts, one env each, driven by the scripted explorer (or, with
``--policy random``, half FORWARD and the rest uniform) across episode
boundaries (termination at 80% coverage or TimeLimit truncation, then
reset, as an RL loop does), so both long-lived memories and many resets
(new rooms, new caches) are exercised:

* oracle: ``MirageRoomOracle64-v0`` (ground-truth world, 64x64, one frame per step);
* tiny: ``MirageRoom-v0`` (the embedded learned world model). Skipped, with a
  message, while its weights are not installed (``weights_available()``);
  ``--tiny-path DIR`` uses another weights folder, ``--tiny-random-weights``
  builds a randomly initialised one (speed, memory and NaN plumbing only:
  the frames mean nothing).

Per window of ``--window`` steps it prints steps/s, memory tokens (now and
the most seen), memory bytes, process RSS (psutil if installed, else
/proc/self/status VmRSS), raw and after gc + glibc ``malloc_trim`` (live
memory: glibc keeps freed pages for reuse, so raw RSS climbs to a plateau
even without a leak) and whether any NaN/inf showed up in an
observation, a reward, the pose or the memory itself (checked every
``--memory-check-every`` steps). At the end: verdicts on RSS growth, token
bound and steps/s trend, and everything in ``<out>/soak.json``.

Not part of the test suite (minutes, not seconds). Exit status 1 if a check fails.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--oracle-steps", type=int, default=10_000, help="steps with the oracle world (0: skip)")
    p.add_argument("--tiny-steps", type=int, default=1_000, help="steps with the embedded model (0: skip)")
    p.add_argument("--window", type=int, default=1_000, help="steps per reported window")
    p.add_argument("--oracle-env", default="MirageRoomOracle64-v0")
    p.add_argument("--tiny-env", default="MirageRoom-v0")
    p.add_argument("--episode-steps", type=int, default=2_000, help="TimeLimit per episode (then reset, as in training)")
    p.add_argument("--policy", default="explorer", help="explorer (scripted, sweeps rooms, ends episodes at 80%% coverage) "
                   "or random (half FORWARD)")
    p.add_argument("--memory-capacity", type=int, default=0, help="override the memory's token capacity (0: the env's)")
    p.add_argument("--memory-obs", action=argparse.BooleanOptionalAction, default=True, help="also check obs['memory']")
    p.add_argument("--memory-check-every", type=int, default=10, help="scan the whole memory for NaN/inf every N steps")
    p.add_argument("--tiny-path", default="", help="weights folder for the tiny part (default: the shipped weights)")
    p.add_argument("--tiny-random-weights", action="store_true",
                   help="build a randomly initialised tiny model (plumbing figures only) if no weights are installed")
    p.add_argument("--trim", action=argparse.BooleanOptionalAction, default=True,
                   help="at each window end, also read RSS after gc + malloc_trim(0) (live memory; the check uses it)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (pinned; 1 is fastest for these sizes)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-rss-growth-mb", type=float, default=64.0, help="fail if RSS grows more than this after window 1")
    p.add_argument("--min-speed-ratio", type=float, default=0.7,
                   help="fail if the second half's mean steps/s is below this fraction of the first half's (noisy on a shared box)")
    p.add_argument("--out", default="runs/soak")
    return p.parse_args(argv)


# ------------------------------------------------------------------ probes


def rss_mb() -> float:
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except ImportError:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    return float("nan")


def trim_heap() -> bool:
    """gc + glibc malloc_trim(0): hand freed heap pages back to the OS, so that
    RSS shows live memory rather than what the allocator keeps for reuse.
    False where there is no glibc."""
    import ctypes
    import gc

    gc.collect()
    try:
        return bool(ctypes.CDLL("libc.so.6").malloc_trim(0) or True)
    except (OSError, AttributeError):
        return False


def finite_obs(obs: dict) -> bool:
    ok = bool(np.isfinite(obs["pose"]).all())
    if "memory" in obs:
        ok &= bool(np.isfinite(obs["memory"]).all())
    return ok  # obs["rgb"] is uint8: it cannot hold NaN (but a NaN latent decodes to garbage, caught in the memory)


def finite_memory(memory) -> bool:
    if memory is None or memory.num_tokens == 0:
        return True
    return bool(torch.isfinite(memory.positions).all()) and bool(torch.isfinite(memory.features.float()).all())


def random_weights_folder() -> Path:
    """A randomly initialised embedded model saved as the shipped one is (safetensors)."""
    from mirage_gym.models.tiny.config import TinyConfig
    from mirage_gym.models.tiny.world_model import build_networks, save_weights_folder

    torch.manual_seed(0)
    cfg = TinyConfig()
    return save_weights_folder(Path(tempfile.mkdtemp(prefix="soak-tiny-")) / "weights", cfg, build_networks(cfg))


# ------------------------------------------------------------------ the loop


def soak(name: str, env_id: str, steps: int, args, **env_kwargs) -> dict:
    import gymnasium as gym

    import mirage_gym  # noqa: F401

    if args.memory_capacity:
        env_kwargs = {**env_kwargs, "memory_capacity": args.memory_capacity}
    env = gym.make(env_id, max_episode_steps=args.episode_steps, memory_obs=args.memory_obs, **env_kwargs)
    unwrapped = env.unwrapped
    rng = np.random.default_rng(args.seed)
    n_actions = env.action_space.n
    policy = None
    if args.policy != "random":
        from mirage_gym.agents import load_policy

        policy = load_policy(args.policy, env, seed=args.seed)
    print(f"\n== {name}: {env_id} {env_kwargs or ''} world={unwrapped.world_model.name} policy={args.policy} "
          f"obs={unwrapped.config.image_size} K={unwrapped.config.frames_per_step} capacity={unwrapped.config.memory_capacity} "
          f"steps={steps} threads={torch.get_num_threads()}", flush=True)
    header = (f"{'steps':>7} {'steps/s':>8} {'tokens':>7} {'max tok':>7} {'mem MB':>7} {'RSS MB':>7} {'trimmed':>7} "
              f"{'episodes':>8} {'NaN/inf':>7}")
    print(header)
    print("-" * len(header))

    t0 = time.perf_counter()
    obs, info = env.reset(seed=args.seed)
    if policy is not None:
        policy.reset()
    reset_s = time.perf_counter() - t0
    rss_start = rss_mb()
    windows, episodes, bad, bad_where = [], 1, 0, []
    max_tokens = info["memory_tokens"]
    win_start, win_max = time.perf_counter(), 0
    for step in range(1, steps + 1):
        action = policy.act(obs) if policy is not None else 1 if rng.random() < 0.5 else int(rng.integers(n_actions))
        obs, reward, terminated, truncated, info = env.step(action)
        ok = finite_obs(obs) and math.isfinite(reward) and bool(np.isfinite(info["c2w"]).all())
        if step % args.memory_check_every == 0:
            ok &= finite_memory(unwrapped.memory)
        if not ok:
            bad += 1
            bad_where.append(step)
        win_max = max(win_max, info["memory_tokens"])
        if terminated or truncated:
            obs, info = env.reset()
            if policy is not None:
                policy.reset()
            episodes += 1
        if step % args.window == 0 or step == steps:
            elapsed = time.perf_counter() - win_start
            n = step - (windows[-1]["step"] if windows else 0)
            raw = rss_mb()
            trimmed = rss_mb() if args.trim and trim_heap() else raw
            row = {"step": step, "steps_per_s": round(n / elapsed, 2), "tokens": int(info["memory_tokens"]),
                   "max_tokens": int(win_max), "memory_mb": round(info["memory_bytes"] / 2**20, 3), "rss_mb": round(raw, 1),
                   "rss_trimmed_mb": round(trimmed, 1), "episodes": episodes, "nonfinite": bad}
            windows.append(row)
            max_tokens = max(max_tokens, win_max)
            print(f"{row['step']:>7} {row['steps_per_s']:>8.1f} {row['tokens']:>7} {row['max_tokens']:>7} {row['memory_mb']:>7.2f} "
                  f"{row['rss_mb']:>7.1f} {row['rss_trimmed_mb']:>7.1f} {row['episodes']:>8} {row['nonfinite']:>7}", flush=True)
            win_start, win_max = time.perf_counter(), 0
    total_s = time.perf_counter() - t0
    env.close()

    speeds = [w["steps_per_s"] for w in windows]
    first, last = speeds[0], speeds[-1]
    # trend: second half of the windows against the first half (single windows are noisy: resets, a shared CPU)
    k = max(1, len(speeds) // 2)
    early, late = float(np.mean(speeds[:k])), float(np.mean(speeds[-k:]))
    live = "rss_trimmed_mb"  # live memory; raw RSS also counts freed pages glibc keeps for reuse (docs/hardening.md)
    rss_after_first = windows[0][live]
    rss_growth = max(w[live] for w in windows) - rss_after_first
    half = windows[len(windows) // 2:]
    slope = (np.polyfit([w["step"] for w in half], [w[live] for w in half], 1)[0] * 1000) if len(half) >= 2 else 0.0
    capacity = unwrapped.config.memory_capacity
    checks = {
        "no_nonfinite": bad == 0,
        "tokens_within_capacity": max_tokens <= capacity,
        "rss_bounded": rss_growth <= args.max_rss_growth_mb,
        "speed_not_degraded": late >= args.min_speed_ratio * early,
    }
    summary = {
        "env_id": env_id, "env_kwargs": {k: str(v) for k, v in env_kwargs.items()}, "policy": args.policy, "steps": steps,
        "episodes": episodes, "episode_steps_limit": args.episode_steps,
        "seconds": round(total_s, 1), "reset_s": round(reset_s, 3), "mean_steps_per_s": round(steps / total_s, 2),
        "first_window_steps_per_s": first, "last_window_steps_per_s": last, "first_half_steps_per_s": round(early, 2),
        "second_half_steps_per_s": round(late, 2), "speed_ratio_second_first_half": round(late / early, 3),
        "max_tokens": int(max_tokens), "capacity": capacity, "rss_start_mb": round(rss_start, 1),
        "rss_raw_end_mb": windows[-1]["rss_mb"], "rss_raw_max_mb": max(w["rss_mb"] for w in windows),
        "rss_live_after_first_window_mb": rss_after_first, "rss_live_growth_after_first_window_mb": round(rss_growth, 1),
        "rss_live_slope_second_half_mb_per_1000_steps": round(float(slope), 2), "trimmed": bool(args.trim),
        "nonfinite_steps": bad, "nonfinite_at": bad_where[:20], "checks": checks, "passed": all(checks.values()), "windows": windows,
    }
    print(f"-- {name}: {steps} steps in {total_s:.1f} s ({summary['mean_steps_per_s']} steps/s), {episodes} episodes; "
          f"max tokens {max_tokens}/{capacity}; RSS {rss_start:.0f} MB at start, {windows[-1]['rss_mb']:.0f} MB raw / "
          f"{windows[-1][live]:.0f} MB live at the end (live +{rss_growth:.1f} MB after window 1, "
          f"{slope:+.2f} MB per 1,000 steps over the second half); steps/s {early:.1f} (first half) -> {late:.1f} (second half); "
          f"non-finite steps {bad}; {'PASS' if summary['passed'] else 'FAIL ' + str([k for k, v in checks.items() if not v])}")
    return summary


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    started = time.strftime("%Y-%m-%dT%H:%M:%S")
    report = {
        "command": " ".join([Path(sys.argv[0]).as_posix(), *(argv if argv is not None else sys.argv[1:])]),
        "started": started, "python": platform.python_version(), "torch": torch.__version__, "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(), "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
        "rss_reader": "psutil" if _has_psutil() else "/proc/self/status VmRSS",
    }
    if args.oracle_steps > 0:
        report["oracle"] = soak("oracle", args.oracle_env, args.oracle_steps, args)
    if args.tiny_steps > 0:
        from mirage_gym.models.tiny import weights_available

        path, note = None, None
        if args.tiny_path:
            path = args.tiny_path
        elif not weights_available():
            if args.tiny_random_weights:
                path, note = str(random_weights_folder()), "randomly initialised weights: speed/memory/NaN plumbing only"
            else:
                reason = ("the embedded model's weights are not installed (mirage_gym/weights/tiny is missing): "
                          "train and export them (`mirage-gym train vae|geometry|denoiser`, `mirage-gym train export`), "
                          "pass --tiny-path DIR, or --tiny-random-weights for plumbing figures")
                print(f"\n== tiny: SKIPPED: {reason}")
                report["tiny"] = {"skipped": reason}
        if "tiny" not in report:
            kwargs = {"world_model": path} if path else {}
            try:
                report["tiny"] = soak("tiny" + (" (random weights)" if note else ""), args.tiny_env, args.tiny_steps, args, **kwargs)
            finally:
                if note:  # the temporary random-weights folder
                    shutil.rmtree(Path(path).parent, ignore_errors=True)
            if note:
                report["tiny"]["note"] = note
    report["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    parts = [v for v in (report.get("oracle"), report.get("tiny")) if isinstance(v, dict) and "passed" in v]
    report["passed"] = all(p["passed"] for p in parts)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "soak.json").write_text(json.dumps(report, indent=1))
    print(f"\nwrote {out / 'soak.json'}; {'all checks passed' if report['passed'] else 'SOME CHECKS FAILED'}")
    return 0 if report["passed"] else 1


def _has_psutil() -> bool:
    try:
        import psutil  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
