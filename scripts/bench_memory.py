"""Benchmark the spatial memories: read speed and bytes over a room tour.

    .venv/bin/python scripts/bench_memory.py                    # both parts (~5 min)
    .venv/bin/python scripts/bench_memory.py --parts reads      # read speed only (~1 min)
    .venv/bin/python scripts/bench_memory.py --parts tour --voxel-size 0.25

(a) reads: a LatentSpatialMemory filled to exactly ``read_tokens`` tokens by
    touring the room with a small voxel and capacity = read_tokens, read on a
    16x16 grid at tour poses: median, 10th and 90th percentile milliseconds
    over ``read_repeats`` reads. About a fifth of the tokens are in view at
    any pose (frustum culling cannot know about walls), so a read really
    splats ~10k tokens, many per cell. Also: a batch of 8 poses (one env
    segment), and the memory the latent tour leaves at the env's voxel.
(b) tour: ``poses`` poses through a ProceduralRoom (a spin in place at three
    pitches, a loop 1 m inside the walls, then a walk between random
    waypoints). Each pose writes a C-channel latent (random values: only the
    bytes matter) with depth reduced to the latent grid
    (geometry.depth_to_grid) into a LatentSpatialMemory, and the full-res RGB
    + depth into an RGBPointCloudMemory with voxel = latent voxel / f. Sky and
    moving objects are kept out by the static mask. At each checkpoint:
    tokens and bytes of both, their ratio, and what the reference release
    would hold (every token with a finite depth appended, no dedup).

The machine this runs on may be shared: the load average is printed next to
the timings; ``--threads 1`` avoids thread-pool stalls when cores are busy.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, fields

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from mirage_gym.geometry import (  # noqa: E402
    depth_to_grid, interpolate_poses, mask_to_grid, pose_from_yaw_pitch, project, scale_intrinsics,
)
from mirage_gym.memory import LatentSpatialMemory, RGBPointCloudMemory  # noqa: E402
from mirage_gym.scenes import ProceduralRoom  # noqa: E402


@dataclass
class Args:
    parts: str = "tour,reads"  # which benchmarks to run
    seed: int = 0  # ProceduralRoom seed (also the tour's waypoints and the random latents)
    poses: int = 2000  # length of the tour
    image_size: int = 128  # rendered H = W
    downsample: int = 8  # latent grid = image_size / downsample
    channels: str = "4,8,16"  # latent channels for the bytes benchmark
    voxel_size: float = 0.15  # latent dedup voxel (the env default); rgb uses voxel / downsample
    update: str = "fill"  # the memories' update rule (fill, the env default | oldest | newest)
    checkpoints: str = "200,2000"
    read_tokens: int = 50_000
    read_voxel: float = 0.02  # small voxel so the tour fills read_tokens
    read_channels: str = "4,16,48"
    read_repeats: int = 1000
    threads: int = 2  # torch threads for the reads (the tour's bytes do not depend on it; it runs on 1)
    dt: float = 0.125  # scene time per pose (movers move; the static mask keeps them out)
    json_out: str = ""  # also write the results here


def parse_args() -> Args:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for f in fields(Args):
        p.add_argument("--" + f.name.replace("_", "-"), type=type(f.default), default=f.default)
    return Args(**vars(p.parse_args()))


def ints(s: str) -> list[int]:
    return [int(x) for x in s.split(",") if x]


# ------------------------------------------------------------------------ the tour


def room_tour(room: ProceduralRoom, n: int, seed: int) -> torch.Tensor:
    """(n, 4, 4) camera poses: spin in place, loop along the walls, then wander."""
    lo, hi = room.bounds
    centre = np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, room.eye_height])
    poses = []
    # 1. Spin at the centre: 16 headings x 3 pitches (level, floor, ceiling).
    for pitch in (0.0, -0.6, 0.6):
        for k in range(16):
            poses.append(pose_from_yaw_pitch(free_near(room, centre), 2 * math.pi * k / 16, pitch))
    # 2. A loop 1 m inside the walls, looking inwards and along the path.
    inset = 1.0
    corners = [(lo[0] + inset, lo[1] + inset), (hi[0] - inset, lo[1] + inset),
               (hi[0] - inset, hi[1] - inset), (lo[0] + inset, hi[1] - inset)]
    for k in range(152):
        s = 4 * k / 152
        (ax, ay), (bx, by) = corners[int(s) % 4], corners[(int(s) + 1) % 4]
        f = s - int(s)
        pos = free_near(room, np.array([ax + f * (bx - ax), ay + f * (by - ay), room.eye_height]))
        to_centre = math.atan2(centre[1] - pos[1], centre[0] - pos[0])
        poses.append(pose_from_yaw_pitch(pos, to_centre + 1.2 * math.sin(2 * math.pi * k / 19),
                                         0.45 * math.sin(2 * math.pi * k / 13)))
    # 3. Walk between random free waypoints, 20 poses per leg.
    rng = np.random.default_rng(seed)
    prev = poses[-1]
    while len(poses) < n:
        way = room.sample_pose(rng)
        nxt = pose_from_yaw_pitch(way[:3, 3], math.atan2(float(way[1, 2]), float(way[0, 2])), float(rng.uniform(-0.5, 0.5)))
        poses.extend(interpolate_poses(prev, nxt, torch.arange(1, 21) / 20.0).unbind(0))
        prev = nxt
    return torch.stack(poses[:n])


def free_near(room, pos: np.ndarray) -> np.ndarray:
    """``pos`` if free, else the nearest free point on a small spiral around it."""
    if room.is_free(pos):
        return pos
    for r in np.arange(0.1, 2.0, 0.1):
        for a in np.linspace(0, 2 * math.pi, 16, endpoint=False):
            q = pos + np.array([r * math.cos(a), r * math.sin(a), 0.0])
            if room.is_free(q):
                return q
    return pos


class TourFrames:
    """Renders tour poses (full res) and their latent-grid depth/static."""

    def __init__(self, room, args: Args):
        self.room, self.S, self.dt = room, args.image_size, args.dt
        self.h = args.image_size // args.downsample
        self.K = room.intrinsics(self.S, self.S)
        self.K_lat = scale_intrinsics(self.K, (self.S, self.S), (self.h, self.h))

    def __call__(self, i: int, c2w):
        out = self.room.render(c2w, self.K, self.S, self.S, t=i * self.dt)
        depth, static = torch.from_numpy(out["depth"]), torch.from_numpy(out["static"])
        d_lat = depth_to_grid(depth, self.h, self.h)
        return out["rgb"], depth, static, d_lat, mask_to_grid(static, self.h, self.h)


# ---------------------------------------------------------------------- benchmarks


def bench_tour(args: Args, frames: TourFrames, poses, with_rgb: bool = True):
    """Write the tour into latent memories (one per C) and the RGB memory."""
    h, f = frames.h, args.downsample
    chans = ints(args.channels)
    checkpoints = set(ints(args.checkpoints))
    latents = {C: LatentSpatialMemory(voxel_size=args.voxel_size, update=args.update) for C in chans}
    rgb_mem = RGBPointCloudMemory(voxel_size=args.voxel_size / f, update=args.update) if with_rgb else None
    g = torch.Generator().manual_seed(args.seed)
    written = 0  # tokens the reference release would hold (finite depth, appended, no dedup)
    rows, t0 = [], time.perf_counter()
    for i, c2w in enumerate(poses, start=1):
        rgb, depth, static, d_lat, s_lat = frames(i, c2w)
        written += int((torch.isfinite(d_lat) & (d_lat > 0)).sum())
        for C, mem in latents.items():
            mem.write(torch.randn(C, h, h, generator=g), d_lat, frames.K_lat, c2w, static_mask=s_lat)
        if rgb_mem is not None:
            rgb_mem.write(rgb, depth, frames.K, c2w, static_mask=static)
        if with_rgb and i in checkpoints:
            row = {"pose": i, "latent_tokens": latents[chans[0]].num_tokens, "rgb_points": rgb_mem.num_tokens,
                   "rgb_bytes": rgb_mem.nbytes, "no_dedup_tokens": written, "elapsed_s": round(time.perf_counter() - t0, 1)}
            for C, mem in latents.items():
                row[f"latent_bytes_C{C}"] = mem.nbytes
                row[f"no_dedup_bytes_C{C}"] = written * (12 + 2 * C)
            rows.append(row)
            print(f"  pose {i:5d}: latent {row['latent_tokens']:6d} tokens, rgb {row['rgb_points']:7d} points, "
                  f"no-dedup {written:7d} tokens  ({row['elapsed_s']} s)", flush=True)
    return rows, latents, rgb_mem


def report_tour(args: Args, rows: list[dict]) -> None:
    for C in ints(args.channels):
        print(f"  C={C:2d} ({12 + 2 * C} B/token vs 15 B/point): " + "; ".join(
            f"pose {r['pose']}: latent {r[f'latent_bytes_C{C}'] / 1024:.1f} KiB, rgb {r['rgb_bytes'] / 1024:.0f} KiB "
            f"= {r['rgb_bytes'] / r[f'latent_bytes_C{C}']:.1f}x; no-dedup latent {r[f'no_dedup_bytes_C{C}'] / 1024:.0f} KiB"
            for r in rows))
    if len(rows) >= 2:
        a, b = rows[0], rows[-1]
        pct = lambda k: 100 * (b[k] / a[k] - 1)  # noqa: E731
        print(f"  growth pose {a['pose']} -> {b['pose']}: latent {pct('latent_tokens'):+.1f}%, rgb {pct('rgb_points'):+.1f}%, "
              f"no-dedup {pct('no_dedup_tokens'):+.1f}%; rgb points per latent token {b['rgb_points'] / b['latent_tokens']:.1f}")


def time_reads(mem, K, poses, size: int, repeats: int) -> dict:
    """Median/p10/p90 milliseconds of reads cycling over ``poses``."""
    for i in range(20):
        mem.read(K, poses[i % len(poses)], size, size)
    ts = []
    for i in range(repeats):
        c2w = poses[i % len(poses)]
        t = time.perf_counter()
        mem.read(K, c2w, size, size)
        ts.append(time.perf_counter() - t)
    ts = np.array(ts) * 1e3
    return {"median_ms": round(float(np.median(ts)), 3), "p10_ms": round(float(np.percentile(ts, 10)), 3),
            "p90_ms": round(float(np.percentile(ts, 90)), 3)}


def in_view(mem, K, poses, size: int) -> int:
    """Mean number of stored points inside the view frustum: the work of a read."""
    counts = []
    for c2w in poses:
        uv, z = project(mem.positions, K, c2w)
        counts.append(int(((z > mem.near) & (uv >= 0).all(-1) & (uv < size).all(-1)).sum()))
    return round(float(np.mean(counts)))


def bench_reads(args: Args, frames: TourFrames, poses, tour_memory=None) -> dict:
    h = frames.h
    read_poses = list(poses[:: max(1, len(poses) // 100)][:100])
    results = {}
    for C in ints(args.read_channels):
        mem = LatentSpatialMemory(voxel_size=args.read_voxel, capacity=args.read_tokens, update="oldest")  # fills up to capacity
        g = torch.Generator().manual_seed(args.seed)
        for i, c2w in enumerate(poses):  # tour until full
            _, _, _, d_lat, s_lat = frames(i, c2w)
            mem.write(torch.randn(C, h, h, generator=g), d_lat, frames.K_lat, c2w, static_mask=s_lat)
            if mem.num_tokens >= args.read_tokens:
                break
        r = time_reads(mem, frames.K_lat, read_poses, h, args.read_repeats)
        tb = time_reads(mem, frames.K_lat, [torch.stack(read_poses[:8])], h, max(20, args.read_repeats // 8))
        r.update({"tokens": mem.num_tokens, "in_view": in_view(mem, frames.K_lat, read_poses, h),
                  "batch8_median_ms": tb["median_ms"]})
        results[f"C{C}"] = r
        print(f"  C={C:2d}: {mem.num_tokens} tokens, ~{r['in_view']} in view: 16x16 read median {r['median_ms']} ms "
              f"(p10 {r['p10_ms']}, p90 {r['p90_ms']}); 8 poses in one read {tb['median_ms']} ms", flush=True)
    if tour_memory is not None:
        C = tour_memory.channels
        r = time_reads(tour_memory, frames.K_lat, read_poses, h, args.read_repeats)
        r.update({"tokens": tour_memory.num_tokens, "in_view": in_view(tour_memory, frames.K_lat, read_poses, h)})
        results[f"tour_voxel_{args.voxel_size}_C{C}"] = r
        print(f"  the tour's memory at voxel {args.voxel_size} (C={C}): {r['tokens']} tokens, ~{r['in_view']} in view: "
              f"16x16 read median {r['median_ms']} ms (p10 {r['p10_ms']}, p90 {r['p90_ms']})", flush=True)
    return results


def main() -> None:
    args = parse_args()
    parts = set(args.parts.split(","))
    torch.set_num_threads(args.threads)
    room = ProceduralRoom(args.seed)
    poses = room_tour(room, args.poses, args.seed)
    frames = TourFrames(room, args)
    print(f"{room}; {len(poses)} poses; torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"load average {os.getloadavg()[0]:.2f}")
    result = {"args": asdict(args), "torch": torch.__version__, "scene": repr(room)}

    print(f"(b) tour: {args.image_size}^2 images, latent {frames.h}^2 (depth: geometry.depth_to_grid), update {args.update}, latent voxel "
          f"{args.voxel_size} m, rgb voxel {args.voxel_size / args.downsample:.5f} m")
    torch.set_num_threads(1)  # bytes are thread-independent; one thread never stalls on a busy machine
    rows, latents, rgb_mem = bench_tour(args, frames, poses, with_rgb="tour" in parts)
    torch.set_num_threads(args.threads)
    if rows:
        report_tour(args, rows)
        result["tour"] = rows

    if "reads" in parts:
        print(f"(a) reads: {args.read_tokens}-token memory (voxel {args.read_voxel} m) on a 16x16 grid, "
              f"{args.read_repeats} reads; load average {os.getloadavg()[0]:.2f}")
        result["reads"] = bench_reads(args, frames, poses, latents[max(latents)])
        if rgb_mem is not None:
            rr = time_reads(rgb_mem, frames.K, list(poses[:: max(1, len(poses) // 20)]), args.image_size, 20)
            result["reads"]["rgb_render"] = {**rr, "points": rgb_mem.num_tokens}
            print(f"  rgb memory, {args.image_size}^2 render from {rgb_mem.num_tokens} points: median {rr['median_ms']} ms "
                  f"(and the pixel path must still VAE-encode it)")
        print(f"  load average after: {os.getloadavg()[0]:.2f}")
    if args.json_out:
        with open(args.json_out, "w") as fh:
            json.dump(result, fh, indent=1)


if __name__ == "__main__":
    main()
