"""Benchmark the procedural raycaster: single-frame ``render`` calls along a
random tour of poses (walk forward, turn, look up/down; time advancing at
15 frames per second so the movers move), at 64x64 and 128x128.

    .venv/bin/python scripts/bench_render.py [--frames 400] [--seeds 0 1 2 3] [--sizes 64 128] [--batch 0]

Reports frames per second as the median over seeds of (frames / wall time);
the first render of each size is a warm-up (it builds the ray cache).
"""

from __future__ import annotations

import argparse
import math
import os
import time

import numpy as np

from mirage_gym.geometry import pose_from_yaw_pitch
from mirage_gym.scenes import ProceduralRoom


def random_tour(room: ProceduralRoom, rng: np.random.Generator, frames: int) -> list:
    """Poses of an agent wandering the room: mostly forward steps, turns
    when a wall or furniture is within a metre or at random, a little pitch."""
    pos = room.sample_position(rng)
    yaw, pitch = float(rng.uniform(-math.pi, math.pi)), 0.0
    poses = []
    for _ in range(frames):
        step = rng.uniform(0.05, 0.25)
        nxt = pos + step * np.array([math.cos(yaw), math.sin(yaw), 0.0])
        ahead = pos + 1.0 * np.array([math.cos(yaw), math.sin(yaw), 0.0])
        if room.is_free(nxt, 0.25) and room.is_free(ahead, 0.25) and rng.uniform() > 0.1:
            pos = nxt
        else:  # blocked (or on a whim): turn, sometimes a lot, as an agent would
            yaw += float(rng.choice([-1, 1]) * rng.uniform(0.3, 2.0))
        pitch = float(np.clip(pitch + rng.normal(0, 0.05), -0.4, 0.4))
        poses.append(pose_from_yaw_pitch(pos, yaw, pitch).numpy())
    return poses


def bench(room: ProceduralRoom, poses: list, size: int, fps_clock: float = 15.0) -> tuple[float, float]:
    """(wall-clock frames/s, CPU-time frames/s). On a shared machine the
    second is what the renderer would do with the cores to itself."""
    K = room.intrinsics(size, size)
    room.render(poses[0], K, size, size)  # warm-up
    t0, c0 = time.perf_counter(), time.process_time()
    for i, c2w in enumerate(poses):
        room.render(c2w, K, size, size, t=i / fps_clock)
    return len(poses) / (time.perf_counter() - t0), len(poses) / (time.process_time() - c0)


def bench_batch(room: ProceduralRoom, poses: list, size: int, batch: int) -> float:
    K = room.intrinsics(size, size)
    stack = np.stack(poses[: (len(poses) // batch) * batch]).reshape(-1, batch, 4, 4)
    room.render_batch(stack[0], K, size, size)
    t0 = time.perf_counter()
    for i, c2w in enumerate(stack):
        room.render_batch(c2w, K, size, size, t=i / 15.0)
    return stack.shape[0] * batch / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=400)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    ap.add_argument("--batch", type=int, default=0, help="also time render_batch with this batch size")
    args = ap.parse_args()
    results = {s: [] for s in args.sizes}
    batch_results = {s: [] for s in args.sizes}
    for seed in args.seeds:
        room = ProceduralRoom(seed)
        poses = random_tour(room, np.random.default_rng(seed), args.frames)
        for size in args.sizes:
            results[size].append(bench(room, poses, size))
            if args.batch:
                batch_results[size].append(bench_batch(room, poses, size, args.batch))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{len(args.seeds)} rooms x {args.frames} frames per size; threads: numpy single-threaded ops; "
          f"load average at the end {load:.2f} on {os.cpu_count()} cores")
    for size in args.sizes:
        r = np.array([w for w, _ in results[size]])
        cpu = np.array([c for _, c in results[size]])
        line = (f"{size}x{size}: {np.median(r):7.1f} frames/s median over seeds (min {r.min():.1f}, max {r.max():.1f}; "
                f"{1000 / np.median(r):.2f} ms/frame); by CPU time {np.median(cpu):.1f} frames/s")
        if args.batch:
            line += f"; render_batch({args.batch}): {np.median(batch_results[size]):.1f} frames/s"
        print(line)


if __name__ == "__main__":
    main()
