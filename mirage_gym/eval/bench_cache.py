"""Cache size over a long room tour: latent memory vs RGB point cloud, with
dedup, against the no-dedup growth of the reference release.

One tour (``trajectories.room_tour``), one room, one camera path, ground-truth
depth, every step a segment of K frames. Two scales:

* **embedded**: 64x64 frames, 4x VAE, 8 channels (the embedded model); a
  per-frame model, so all K frames are latent frames and both memories
  write all of them.
* **Wan**: ``wan_size`` frames; Wan2.2 TI2V (16x spatial, 4x temporal, 48
  channels) and Wan2.1 (8x, 4x, 16 channels). One latent frame per K = 4
  frames (the segment's last), written to the latent memories; the pixel
  memory writes every frame, as pixel-space methods lift every frame they
  render.

Latent features are random (bytes do not depend on their values); latents
are stored float16 (12 B xyz + 2 C B per token), RGB points as uint8 (12 B
xyz + 3 B). Latent tokens get the exact depth of the ray through their cell
centre; the env's reduction of the full-resolution depth
(``geometry.depth_to_grid``) is run beside it as a diagnostic ("lat_env_depth"
in the curves): a token lifted slightly off its surface lands in different
voxels from different viewpoints, which shows as growth over revisits.

Dedup voxels: the latent voxel is ``voxel_size`` at a 16x16 latent grid and
scales with the token footprint (``voxel_size * 16 / grid``); the RGB voxel is
the latent voxel / spatial factor (same density relative to the samples).

Update rule: the env's rule, ``"fill"`` (a write skips what the memory
already shows), runs for real on both embedded-scale memories for the first
``validate_steps`` steps: those are the sizes and the ratio the env has, and
the memories the memory-path section times. The long-tour curves use
``update="oldest"``, the pure voxel rule (one point per voxel, no capacity),
so a memory's size is exactly the number of distinct voxels written and the
pixel memory can be counted past ``validate_steps`` without running it:
``fill`` stores a subset of these voxels, so the long-tour sizes are upper
bounds for the env, for both memories.

Counting: the real :class:`RGBPointCloudMemory` runs for the first
``validate_steps`` steps; for the rest of the tour its size is the exact
number of distinct voxels written, counted with the memory's own ``voxel_keys`` in a
hash set - the real memory's O(N) merge per write would take many minutes on
a CPU at millions of points. The two counts are checked equal at
``validate_steps`` and the check is reported.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from ..geometry import backproject, depth_to_grid, intrinsics_from_fov, mask_to_grid, scale_intrinsics
from ..memory import LatentSpatialMemory, RGBPointCloudMemory
from .bench_setup import WAN_VAE_FACTORS, render_segment

XYZ_BYTES = 12
RGB_POINT_BYTES = XYZ_BYTES + 3


def latent_token_bytes(channels: int) -> int:
    return XYZ_BYTES + 2 * channels  # float16 latents


ENV_RULE = "fill"  # the env's default MirageRoom memory_update
RULE = "oldest"  # the pure voxel rule (and ground-truth depth written as is): sizes are exact voxel counts (see the module docstring)

class VoxelCounter:
    """How many points a capacity-free PointMemory with this voxel holds after
    the same writes: the number of distinct voxels written (one point per
    voxel, newest wins). Voxel coordinates are computed exactly as the memory
    computes them (float32 ``floor(p / voxel + 0.5)``); occupancy is a dense
    boolean grid over ``bounds`` (+ a margin), so each write costs O(pixels),
    not O(stored points); points outside the grid go to a hash set."""

    def __init__(self, voxel_size: float, bounds=None, margin_m: float = 1.0):
        self.voxel = float(voxel_size)
        self.outside: set[tuple[int, int, int]] = set()
        self.inside = 0
        self.written = 0  # points written (no dedup)
        if bounds is not None:
            lo = np.floor((np.asarray(bounds[0], float) - margin_m) / self.voxel).astype(np.int64)
            hi = np.ceil((np.asarray(bounds[1], float) + margin_m) / self.voxel).astype(np.int64) + 1
            self.lo, self.shape = lo, tuple(int(v) for v in hi - lo)
            self.occupied = np.zeros(int(np.prod(self.shape)), dtype=bool)
        else:
            self.lo, self.shape, self.occupied = np.zeros(3, np.int64), (0, 0, 0), np.zeros(0, bool)

    def add(self, depth, K, c2w, static) -> None:
        """Frames (T, H, W) with poses (T, 4, 4), in order."""
        valid = torch.isfinite(depth) & (depth > 0) & static
        # one frame at a time: geometry.backproject is much slower with batched poses
        pts = torch.cat([backproject(depth[t], K, c2w[t])[valid[t]] for t in range(depth.shape[0])])
        self.written += int(pts.shape[0])
        g = torch.floor(pts.T / self.voxel + 0.5).to(torch.int64).numpy() - self.lo[:, None]  # (3, M)
        ok = np.all((g >= 0) & (g < np.asarray(self.shape)[:, None]), axis=0)
        if not ok.all():
            self.outside.update(map(tuple, (g[:, ~ok] + self.lo[:, None]).T.tolist()))
            g = g[:, ok]
        idx = np.ravel_multi_index((g[0], g[1], g[2]), self.shape) if g.shape[1] else np.zeros(0, np.int64)
        fresh = idx[~self.occupied[idx]]
        if fresh.size:
            fresh = np.unique(fresh)
            self.occupied[fresh] = True
            self.inside += int(fresh.size)

    @property
    def count(self) -> int:
        return self.inside + len(self.outside)


def _valid(depth, static) -> int:
    return int((torch.isfinite(depth) & (depth > 0) & static).sum())


def run_cache(traj, room, *, image_size: int, downsample: int, channels: int, voxel_size: float,
              wan_size: int, validate_steps: int, wan_validate_steps: int, wan_steps: int, flat_from: int = 200,
              log=print) -> dict:
    """Drive the memories along ``traj``; returns per-step curves, a summary,
    and the memories at the validation step (for the memory-path timing)."""
    n = len(traj)
    K = traj.paths.shape[1]
    g = torch.Generator().manual_seed(0)
    # ---- embedded scale
    S, f, C = image_size, downsample, channels
    grid = S // f
    K_img = intrinsics_from_fov(room.fov_deg, S, S)
    K_lat = scale_intrinsics(K_img, (S, S), (grid, grid))
    vox = voxel_size * 16 / grid
    emb = {"lat": LatentSpatialMemory(vox, update=RULE, align_depth=False), "lat_env_depth": LatentSpatialMemory(vox, update=RULE),
           "rgb": RGBPointCloudMemory(vox / f, update=RULE, align_depth=False),
           "counter": VoxelCounter(vox / f, room.bounds), "nodedup_lat": 0, "nodedup_rgb": 0,
           "lat_fill": LatentSpatialMemory(vox, update=ENV_RULE, align_depth=False),
           "rgb_fill": RGBPointCloudMemory(vox / f, update=ENV_RULE, align_depth=False)}
    # ---- Wan scale
    wan_steps = min(wan_steps, n)
    Sw = wan_size
    K_w = intrinsics_from_fov(room.fov_deg, Sw, Sw)
    wan = {}
    for name, (fs, ft, cz) in WAN_VAE_FACTORS.items():
        gw = Sw // fs
        wan[name] = {"grid": gw, "channels": cz, "K_lat": scale_intrinsics(K_w, (Sw, Sw), (gw, gw)),
                     "voxel": voxel_size * 16 / gw, "lat": LatentSpatialMemory(voxel_size * 16 / gw, update=RULE, align_depth=False), "nodedup_lat": 0,
                     "temporal": ft}
    rgb_vox_w = wan["wan2.2"]["voxel"] / WAN_VAE_FACTORS["wan2.2"][0]
    wan_rgb = {"rgb": RGBPointCloudMemory(rgb_vox_w, update=RULE, align_depth=False), "counter": VoxelCounter(rgb_vox_w, room.bounds),
               "counter_latent_frames": VoxelCounter(rgb_vox_w, room.bounds)}

    curves = {k: [] for k in ("step", "lat_tokens", "lat_bytes", "rgb_points", "rgb_bytes", "nodedup_lat_tokens",
                              "nodedup_lat_bytes", "nodedup_rgb_points", "nodedup_rgb_bytes", "lat_env_depth_tokens")}
    fill = {k: [] for k in ("step", "lat_tokens", "lat_bytes", "rgb_points", "rgb_bytes")}  # the env's rule, first validate_steps
    wcurves = {k: [] for k in ("step", "wan2.2_tokens", "wan2.2_bytes", "wan2.1_tokens", "wan2.1_bytes", "rgb_points",
                               "rgb_bytes", "rgb_latent_frames_only_points", "nodedup_wan2.2_tokens",
                               "nodedup_wan2.1_tokens", "nodedup_rgb_points")}
    snapshots, checks = {}, {}
    t0 = time.perf_counter()
    for i in range(n):
        poses, times = traj.paths[i], traj.times[i]
        # embedded: every frame is a latent frame
        r = render_segment(room, poses, times, S, K_img, grid=grid, K_latent=K_lat)
        latents = torch.randn(K, C, grid, grid, generator=g)
        emb["lat"].write(latents, r.depth_latent, K_lat, poses, static_mask=r.static_latent)
        env_depth = depth_to_grid(r.depth, grid, grid)
        emb["lat_env_depth"].write(latents, env_depth, K_lat, poses, static_mask=r.static_latent)
        emb["nodedup_lat"] += _valid(r.depth_latent, r.static_latent)
        if i < validate_steps:
            emb["rgb"].write(r.rgb, r.depth, K_img, poses, static_mask=r.static)
            emb["lat_fill"].write(latents, r.depth_latent, K_lat, poses, static_mask=r.static_latent)
            emb["rgb_fill"].write(r.rgb, r.depth, K_img, poses, static_mask=r.static)
            fill["step"].append(i + 1)
            for name, key in (("lat", "lat_fill"), ("rgb", "rgb_fill")):
                fill[f"{name}_{'tokens' if name == 'lat' else 'points'}"].append(emb[key].num_tokens)
                fill[f"{name}_bytes"].append(emb[key].nbytes)
        emb["counter"].add(r.depth, K_img, poses, r.static)
        emb["nodedup_rgb"] += _valid(r.depth, r.static)
        step = i + 1
        rgb_pts = emb["rgb"].num_tokens if step <= validate_steps else emb["counter"].count
        curves["step"].append(step)
        curves["lat_tokens"].append(emb["lat"].num_tokens)
        curves["lat_bytes"].append(emb["lat"].nbytes)
        curves["rgb_points"].append(rgb_pts)
        curves["rgb_bytes"].append(emb["rgb"].nbytes if step <= validate_steps else rgb_pts * RGB_POINT_BYTES)
        curves["nodedup_lat_tokens"].append(emb["nodedup_lat"])
        curves["nodedup_lat_bytes"].append(emb["nodedup_lat"] * latent_token_bytes(C))
        curves["nodedup_rgb_points"].append(emb["nodedup_rgb"])
        curves["nodedup_rgb_bytes"].append(emb["nodedup_rgb"] * RGB_POINT_BYTES)
        curves["lat_env_depth_tokens"].append(emb["lat_env_depth"].num_tokens)
        if step == min(validate_steps, n):
            checks["embedded"] = {"step": step, "rgb_memory_points": emb["rgb"].num_tokens, "voxel_count": emb["counter"].count,
                                  "equal": emb["rgb"].num_tokens == emb["counter"].count,
                                  "rgb_bytes_per_point": emb["rgb"].nbytes / max(1, emb["rgb"].num_tokens)}
            snapshots["embedded"] = {"lat": emb["lat_fill"].state_dict(), "rgb": emb["rgb_fill"], "rule": ENV_RULE}
        # Wan: one latent frame (the segment's last) per segment; pixels: every frame
        if i < wan_steps:
            rw = render_segment(room, poses, times, Sw, K_w)
            last = slice(K - 1, K)
            for name, w in wan.items():
                d = render_segment(room, poses[last], times[last], w["grid"], w["K_lat"])  # exact centre depth
                st = mask_to_grid(rw.static[last], w["grid"], w["grid"])
                w["lat"].write(torch.randn(1, w["channels"], w["grid"], w["grid"], generator=g), d.depth, w["K_lat"], poses[last],
                               static_mask=st)
                w["nodedup_lat"] += _valid(d.depth, st)
            if i < wan_validate_steps:
                wan_rgb["rgb"].write(rw.rgb, rw.depth, K_w, poses, static_mask=rw.static)
            wan_rgb["counter"].add(rw.depth, K_w, poses, rw.static)
            wan_rgb["counter_latent_frames"].add(rw.depth[last], K_w, poses[last], rw.static[last])
            wrgb = wan_rgb["rgb"].num_tokens if step <= wan_validate_steps else wan_rgb["counter"].count
            wcurves["step"].append(step)
            for name, w in wan.items():
                wcurves[f"{name}_tokens"].append(w["lat"].num_tokens)
                wcurves[f"{name}_bytes"].append(w["lat"].nbytes)
                wcurves[f"nodedup_{name}_tokens"].append(w["nodedup_lat"])
            wcurves["rgb_points"].append(wrgb)
            wcurves["rgb_bytes"].append(wrgb * RGB_POINT_BYTES)
            wcurves["rgb_latent_frames_only_points"].append(wan_rgb["counter_latent_frames"].count)
            wcurves["nodedup_rgb_points"].append(wan_rgb["counter"].written)
            if step == min(wan_validate_steps, wan_steps):
                checks["wan"] = {"step": step, "rgb_memory_points": wan_rgb["rgb"].num_tokens,
                                 "voxel_count": wan_rgb["counter"].count,
                                 "equal": wan_rgb["rgb"].num_tokens == wan_rgb["counter"].count}
                snapshots["wan"] = {"rgb": wan_rgb["rgb"], **{name: w["lat"].state_dict() for name, w in wan.items()}}
        if step % max(1, n // 10) == 0 or step == n:
            log(f"  step {step:5d}/{n}: latent {emb['lat'].num_tokens} tokens, rgb {rgb_pts} points"
                + (f"; Wan2.2 {wan['wan2.2']['lat'].num_tokens} tokens, rgb {wcurves['rgb_points'][-1]} points" if i < wan_steps else "")
                + f"  ({time.perf_counter() - t0:.0f} s)")
    settings = {
        "embedded": {"image_size": S, "downsample": f, "latent_grid": grid, "channels": C, "latent_voxel_m": vox,
                     "rgb_voxel_m": vox / f, "latent_token_bytes": latent_token_bytes(C), "rgb_point_bytes": RGB_POINT_BYTES,
                     "frames_per_segment": K, "latent_frames_per_segment": K, "rgb_frames_per_segment": K,
                     "validate_steps": min(validate_steps, n)},
        "wan": {"image_size": Sw, "rgb_voxel_m": rgb_vox_w, "frames_per_segment": K, "latent_frames_per_segment": 1,
                "rgb_frames_per_segment": K, "steps": wan_steps, "validate_steps": min(wan_validate_steps, wan_steps),
                **{name: {"latent_grid": w["grid"], "channels": w["channels"], "latent_voxel_m": w["voxel"],
                          "latent_token_bytes": latent_token_bytes(w["channels"])} for name, w in wan.items()}},
    }
    summary = summarise_cache(curves, wcurves, settings, flat_from)
    summary["embedded_env_rule"] = summarise_fill(fill)
    return {"settings": settings, "curves": {"embedded": curves, "wan": wcurves, "embedded_env_rule": fill}, "checks": checks,
            "summary": summary,
            "snapshots": snapshots, "seconds": time.perf_counter() - t0}


def summarise_fill(fill: dict) -> dict:
    """Sizes and the RGB/latent byte ratio under the env's rule, after 5 segments and at the last step run."""
    out = {"rule": ENV_RULE}
    if not fill["step"]:
        return out
    for label, step in (("after_5_segments", min(5, fill["step"][-1])), ("at_end", fill["step"][-1])):
        lb, rb = _at(fill, "lat_bytes", step), _at(fill, "rgb_bytes", step)
        out[label] = {"step": step, "latent_tokens": _at(fill, "lat_tokens", step), "latent_bytes": lb,
                      "rgb_points": _at(fill, "rgb_points", step), "rgb_bytes": rb,
                      "ratio_bytes_rgb_over_latent": rb / lb if lb else None}
    return out


def _at(curve: dict, key: str, step: int):
    steps = curve["step"]
    if not steps:
        return None
    i = min(range(len(steps)), key=lambda j: abs(steps[j] - step))
    return curve[key][i]


def summarise_cache(curves: dict, wcurves: dict, settings: dict, flat_from: int) -> dict:
    """Ratios after 5 segments, at ``flat_from`` and at the end; growth from ``flat_from`` to the end."""
    out = {}
    n = curves["step"][-1] if curves["step"] else 0
    s5 = min(5, n)
    a = min(flat_from, n)

    def growth(curve, key, lo, hi):
        x0, x1 = _at(curve, key, lo), _at(curve, key, hi)
        return None if not x0 else 100.0 * (x1 / x0 - 1.0)

    emb = {"steps": n, "flat_from": a}
    for label, step in (("after_5_segments", s5), ("at_flat_from", a), ("at_end", n)):
        lb, rb = _at(curves, "lat_bytes", step), _at(curves, "rgb_bytes", step)
        emb[label] = {
            "step": step, "latent_tokens": _at(curves, "lat_tokens", step), "latent_bytes": lb,
            "rgb_points": _at(curves, "rgb_points", step), "rgb_bytes": rb, "ratio_bytes_rgb_over_latent": rb / lb if lb else None,
            "ratio_tokens": _at(curves, "rgb_points", step) / max(1, _at(curves, "lat_tokens", step)),
            "nodedup_latent_bytes": _at(curves, "nodedup_lat_bytes", step), "nodedup_rgb_bytes": _at(curves, "nodedup_rgb_bytes", step),
            "ratio_bytes_nodedup_rgb_over_latent": _at(curves, "nodedup_rgb_bytes", step) / lb if lb else None,
        }
    emb["growth_pct"] = {"latent": growth(curves, "lat_tokens", a, n), "rgb": growth(curves, "rgb_points", a, n),
                         "nodedup_latent": growth(curves, "nodedup_lat_tokens", a, n),
                         "latent_with_env_depth": growth(curves, "lat_env_depth_tokens", a, n)}
    out["embedded"] = emb
    if wcurves["step"]:
        nw = wcurves["step"][-1]
        aw = min(flat_from, nw)
        wan = {"steps": nw, "flat_from": aw}
        for name in ("wan2.2", "wan2.1"):
            tb = settings["wan"][name]["latent_token_bytes"]
            rows = {}
            for label, step in (("after_5_segments", min(5, nw)), ("at_flat_from", aw), ("at_end", nw)):
                lb, rb = _at(wcurves, f"{name}_bytes", step), _at(wcurves, "rgb_bytes", step)
                nd_rgb = _at(wcurves, "nodedup_rgb_points", step) * RGB_POINT_BYTES
                rows[label] = {"step": step, "latent_tokens": _at(wcurves, f"{name}_tokens", step), "latent_bytes": lb,
                               "rgb_points": _at(wcurves, "rgb_points", step), "rgb_bytes": rb,
                               "ratio_bytes_rgb_over_latent": rb / lb if lb else None,
                               "nodedup_latent_bytes": _at(wcurves, f"nodedup_{name}_tokens", step) * tb,
                               "nodedup_rgb_bytes": nd_rgb, "ratio_bytes_nodedup_rgb_over_latent": nd_rgb / lb if lb else None}
            rows["growth_pct"] = {"latent": growth(wcurves, f"{name}_tokens", aw, nw), "rgb": growth(wcurves, "rgb_points", aw, nw),
                                  "nodedup_latent": growth(wcurves, f"nodedup_{name}_tokens", aw, nw)}
            wan[name] = rows
        wan["rgb_points_if_only_latent_frames_written_at_end"] = wcurves["rgb_latent_frames_only_points"][-1]
        out["wan"] = wan
    return out
