"""The memory path per frame: latent read + write vs RGB render + VAE encode + write.

Same room, same poses, same ground-truth depth, same splatting kernel and
dedup (both memories are :class:`PointMemory` subclasses), memories filled by
the same tour; at embedded scale under the env's own write rule (``fill``:
each write also reads what the memory shows at the written pose), at Wan
scale under the pure voxel rule. Both paths are timed as a well-optimised implementation would
run them: all K poses of a segment in one batched read, all frames of a
segment in one write call, the renders VAE-encoded in one batch.

* **embedded scale** (per segment of K frames, all latent frames):
  latent = ``read`` at the K poses on the latent grid + ``write`` of the K
  generated latents; RGB = ``read`` at the K poses at full resolution +
  VAE encode of the K renders + ``write`` of the K full-resolution frames.
  Also timed: the RGB path with an exact, free codec (pixel-unshuffle), i.e.
  what remains of the pixel path if the VAE encode cost nothing.
* **Wan scale** (per video chunk of T = 1 + 4k frames, L = 1 + k latent
  frames): latent = ``read`` at the L latent-frame poses on the Wan latent
  grid (48 or 16 channels) + ``write`` of L latent frames; RGB = ``read`` at
  all T poses at full resolution + Wan VAE encode of the T-frame render video
  (real configuration, random weights: a cost measurement) + ``write`` of the
  L latent frames' pixels (favouring the baseline: it could write all T).
"""

from __future__ import annotations

import statistics
import time

import torch

from ..geometry import intrinsics_from_fov, mask_to_grid, scale_intrinsics
from ..images import to_model
from ..memory import LatentSpatialMemory
from ..models.oracle import PixelUnshuffleCodec
from .bench_setup import WAN_VAE_FACTORS, build_wan_vae, render_segment, time_calls


def _restore_latent(state: dict) -> LatentSpatialMemory:
    mem = LatentSpatialMemory(state["voxel_size"])
    mem.load_state_dict(state)
    return mem


def _copy_rgb(mem):
    out = type(mem)(mem.voxel_size)
    out.load_state_dict(mem.state_dict())
    return out


def embedded_memory_path(traj, room, snapshot: dict, codec, *, image_size: int, repeats: int, first_step: int, log=print) -> dict:
    """Time both paths on segments ``first_step, first_step + 1, ...`` of
    ``traj`` (revisits of an already-seen room), starting each path from the
    memories in ``snapshot`` (the cache tour's state at its validation step)."""
    S, f = image_size, codec.downsample
    h = S // f
    C = codec.latent_channels
    K_img = intrinsics_from_fov(room.fov_deg, S, S)
    K_lat = scale_intrinsics(K_img, (S, S), (h, h))
    n = len(traj)
    idx = [(first_step + i) % n for i in range(repeats + 2)]
    # Inputs prepared untimed: ground truth of each segment, and the latents
    # the generator would hand to the latent memory (the codec's encodes).
    segs = []
    for i in idx:
        r = render_segment(room, traj.paths[i], traj.times[i], S, K_img, grid=h, K_latent=K_lat)
        with torch.no_grad():
            lat = codec.encode(to_model(r.rgb))
        segs.append((traj.paths[i], r, lat))
    K_frames = traj.paths.shape[1]
    exact = PixelUnshuffleCodec(f)
    mems = {"latent": _restore_latent(snapshot["lat"]), "rgb": _copy_rgb(snapshot["rgb"]), "rgb_exact": _copy_rgb(snapshot["rgb"])}
    poses0, r0, lat0 = segs[0]
    empty = LatentSpatialMemory(mems["latent"].voxel_size)
    n_lat, n_rgb = mems["latent"].num_tokens, mems["rgb"].num_tokens
    times = {k: [] for k in ("latent", "latent_read", "latent_write", "rgb", "rgb_read", "rgb_encode", "rgb_write",
                             "rgb_exact", "latent_floor")}

    def latent_step(j):
        poses, r, lat = segs[j]
        t0 = time.perf_counter()
        mems["latent"].read(K_lat, poses, h, h)
        t1 = time.perf_counter()
        mems["latent"].write(lat, r.depth_latent, K_lat, poses, static_mask=r.static_latent)
        t2 = time.perf_counter()
        return {"latent": t2 - t0, "latent_read": t1 - t0, "latent_write": t2 - t1}

    def rgb_step(j, key, enc):
        poses, r, _ = segs[j]
        mem = mems[key]
        t0 = time.perf_counter()
        view = mem.read(K_img, poses, S, S)
        t1 = time.perf_counter()
        with torch.no_grad():
            enc.encode(view.rgb)
        t2 = time.perf_counter()
        mem.write(r.rgb, r.depth, K_img, poses, static_mask=r.static)
        t3 = time.perf_counter()
        if key == "rgb_exact":
            return {key: t3 - t0}
        return {key: t3 - t0, "rgb_read": t1 - t0, "rgb_encode": t2 - t1, "rgb_write": t3 - t2}

    def floor_step(j):
        # the same calls on an empty memory: the fixed per-call cost, whatever the memory holds
        empty.reset()
        t0 = time.perf_counter()
        empty.write(lat0, r0.depth_latent, K_lat, poses0, static_mask=r0.static_latent)
        empty.read(K_lat, poses0, h, h)
        return {"latent_floor": time.perf_counter() - t0}

    log(f"  embedded: {n_lat} latent tokens, {n_rgb} RGB points in memory; {repeats} segments of {K_frames} frames")
    # Interleaved: every segment is timed on every path back to back, so load changes on a shared
    # machine hit all paths alike; medians over the segments.
    for j in range(repeats + 2):
        for step in (latent_step, lambda j: rgb_step(j, "rgb", codec), lambda j: rgb_step(j, "rgb_exact", exact), floor_step):
            got = step(j)
            if j >= 2:  # two warm-up segments
                for k, v in got.items():
                    times[k].append(v)
    per = lambda k: 1e3 * statistics.median(times[k]) / K_frames  # noqa: E731
    out = {
        "scale": "embedded", "rule": snapshot.get("rule", "oldest"), "image_size": S, "latent_grid": h, "channels": C, "frames_per_segment": K_frames,
        "latent_tokens": n_lat, "rgb_points": n_rgb, "repeats": repeats,
        "latent_ms_per_frame": per("latent"), "rgb_ms_per_frame": per("rgb"), "rgb_exact_codec_ms_per_frame": per("rgb_exact"),
        "ratio": per("rgb") / per("latent"), "ratio_without_vae": per("rgb_exact") / per("latent"),
        "breakdown_ms_per_frame": {k: per(k) for k in ("latent_read", "latent_write", "rgb_read", "rgb_encode", "rgb_write")},
        "latent_floor_ms_per_frame": per("latent_floor"),
        "raw_ms_per_segment": {k: [1e3 * x for x in v] for k, v in times.items()},
    }
    log(f"  embedded: latent {out['latent_ms_per_frame']:.3f} ms/frame, RGB {out['rgb_ms_per_frame']:.2f} ms/frame "
        f"-> {out['ratio']:.1f}x (without the VAE encode: {out['ratio_without_vae']:.1f}x)")
    return out


def wan_memory_path(traj, room, snapshot: dict, *, image_size: int, frames: int, scale: str, repeats: int,
                    first_step: int, variants=("wan2.1", "wan2.2"), log=print) -> dict:
    """Per-frame memory path at Wan scale for each VAE variant (see module doc)."""
    if (frames - 1) % 4:
        raise ValueError(f"Wan videos have 1 + 4k frames; got wan_frames={frames}")
    S = image_size
    K_img = intrinsics_from_fov(room.fov_deg, S, S)
    L = 1 + (frames - 1) // 4
    # T consecutive frame poses of the tour from first_step on (segments are K = 4 frames)
    flat_poses = traj.paths.reshape(-1, 4, 4)
    flat_times = traj.times.reshape(-1)
    K_seg = traj.paths.shape[1]
    starts = [((first_step + j) * K_seg) % max(1, flat_poses.shape[0] - frames) for j in range(repeats + 1)]
    chunks = []
    for s0 in starts:
        poses, times = flat_poses[s0:s0 + frames], flat_times[s0:s0 + frames]
        lat_idx = torch.tensor([0] + [4 * k for k in range(1, L)])
        r = render_segment(room, poses, times, S, K_img)
        chunks.append((poses, times, lat_idx, r))
    results = {}
    for variant in variants:
        fs, ft, C = WAN_VAE_FACTORS[variant]
        g = S // fs
        K_lat = scale_intrinsics(K_img, (S, S), (g, g))
        t0 = time.perf_counter()
        vae = build_wan_vae(variant, scale)
        build_s = time.perf_counter() - t0
        lat_mem = _restore_latent(snapshot[variant])
        rgb_mem = _copy_rgb(snapshot["rgb"])
        gen = torch.Generator().manual_seed(0)
        inputs = []
        for poses, times, lat_idx, r in chunks:
            d = render_segment(room, poses[lat_idx], times[lat_idx], g, K_lat).depth
            st = mask_to_grid(r.static[lat_idx], g, g)
            inputs.append((poses, lat_idx, r, torch.randn(L, C, g, g, generator=gen), d, st))

        def latent_chunk(j):
            poses, lat_idx, r, z, d, st = inputs[j]
            lat_mem.read(K_lat, poses[lat_idx], g, g)
            lat_mem.write(z, d, K_lat, poses[lat_idx], static_mask=st)

        rgb_parts = {"read": [], "encode": [], "write": []}

        def rgb_chunk(j):
            poses, lat_idx, r, _, _, _ = inputs[j]
            a = time.perf_counter()
            view = rgb_mem.read(K_img, poses, S, S)
            b = time.perf_counter()
            with torch.no_grad():
                vae.encode(view.rgb.permute(1, 0, 2, 3)[None]).latent_dist.mode()  # (1, 3, T, S, S)
            c = time.perf_counter()
            rgb_mem.write(r.rgb[lat_idx.numpy()], r.depth[lat_idx], K_img, poses[lat_idx], static_mask=r.static[lat_idx])
            rgb_parts["read"].append(b - a)
            rgb_parts["encode"].append(c - b)
            rgb_parts["write"].append(time.perf_counter() - c)

        # latent chunks are cheap: time many (cycling over the prepared chunks)
        lat_runs = max(10, 10 * repeats)
        lat_t = time_calls(lambda j: latent_chunk(j % len(inputs)), lat_runs, warmup=2)
        rgb_t = time_calls(rgb_chunk, repeats, warmup=0)
        med = lambda xs: 1e3 * statistics.median(xs) / frames  # noqa: E731
        res = {
            "variant": variant, "config": "real" if scale == "real" else "diffusers test-size (NOT a cost measurement)",
            "weights": "random (cost measurement only)", "image_size": S, "frames_per_chunk": frames, "latent_frames_per_chunk": L,
            "spatial_factor": fs, "temporal_factor": ft, "latent_grid": g, "channels": C, "build_s": build_s,
            "latent_tokens": lat_mem.num_tokens, "rgb_points": rgb_mem.num_tokens,
            "latent_ms_per_frame": lat_t["median_ms"] / frames, "rgb_ms_per_frame": rgb_t["median_ms"] / frames,
            "ratio": rgb_t["median_ms"] / lat_t["median_ms"],
            "breakdown_ms_per_frame": {"rgb_read": med(rgb_parts["read"]), "vae_encode": med(rgb_parts["encode"]),
                                       "rgb_write": med(rgb_parts["write"])},
            "raw": {"latent": lat_t, "rgb": rgb_t},
        }
        results[variant] = res
        log(f"  {variant}: {S}x{S}, {frames} frames -> latent {L}x{C}x{g}x{g}; latent {res['latent_ms_per_frame']:.3f} ms/frame, "
            f"RGB {res['rgb_ms_per_frame']:.0f} ms/frame (VAE encode {res['breakdown_ms_per_frame']['vae_encode']:.0f}) "
            f"-> {res['ratio']:.0f}x")
        del vae
    return results
