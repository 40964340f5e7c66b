"""`mirage-gym bench`: latent spatial memory vs pixel-space (RGB point cloud)
memory, side by side in one run: memory path per frame, cache size over a
long tour, end-to-end frames/s, readout fidelity.

    mirage-gym bench            # full run (minutes; it prints how long it took)
    mirage-gym bench --quick    # CI-sized check (under 2 minutes)

Writes ``runs/bench/bench.json``, ``runs/bench/results.md`` and PNG plots.
Everything runs on one room (a held-out seed), one scripted tour
(``eval.trajectories.room_tour``), ground-truth depth, and one world model
for both memories: the embedded model when its trained weights are
installed, else the oracle world with the embedded VAE architecture (random
weights) as codec. Random weights are used only to measure cost, and every
table says so. See the section modules (``bench_cache``,
``bench_memory_path``, ``bench_e2e``, ``readout``) for exactly what is timed.
"""

from __future__ import annotations

import datetime
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ..models.oracle import PixelUnshuffleCodec
from ..scenes import ProceduralRoom
from . import commandline
from .bench_setup import embedded_world_model, machine_info
from .report import Table, fmt, kib, plot_bars, plot_lines, ratio, write_json
from .trajectories import room_tour, simulate

SECTIONS = ("speed", "cache", "memory_path", "e2e", "readout", "oracle")
TARGETS = {"memory_path_embedded": 50.0, "memory_path_wan": 500.0, "cache_after_5_segments": 55.0, "cache_growth_pct": 10.0}


@dataclass
class BenchArgs:
    quick: bool = False  # CI-sized run (< 2 min): smaller tour, 64x64 Wan VAE timing, no DiT/decode, N = 1, 4
    out: str = "runs/bench"
    sections: list = field(default_factory=lambda: list(SECTIONS))  # any of speed cache memory_path e2e readout oracle
    world_model: str = "auto"  # auto (tiny when its weights exist, else oracle + random AutoencoderTiny) | tiny | oracle
    scene_seed: int = 1_000_003  # a held-out room
    image_size: int = 64  # embedded scale frames
    frames_per_step: int = 4  # K frames per segment (env step)
    voxel_size: float = 0.15  # latent dedup voxel at a 16x16 latent grid (the env default); scaled with the token footprint
    tour_steps: int = 2000  # embedded-scale cache tour (segments)
    flat_from: int = 200  # growth is measured from this step to the end of the tour
    validate_steps: int = 200  # the real RGB memory runs this long (then an exact voxel count; checked equal here)
    wan_vae: str = "real"  # real | test (diffusers test-size configs: NOT a cost measurement) | off
    wan_size: int = 128  # Wan-scale frames (H = W)
    wan_frames: int = 5  # frames per Wan chunk, 1 + 4k
    wan_tour_steps: int = 2000
    wan_validate_steps: int = 100
    wan_repeats: int = 2  # timed Wan VAE encodes per variant
    wan_dit: bool = True  # measure the Wan2.2 DiT per-block cost for the end-to-end projection
    wan_decode: bool = True  # measure the Wan2.2 VAE decode for the projection
    e2e_envs: list = field(default_factory=lambda: [1, 4, 8])
    e2e_frames: int = 128  # frames timed per configuration
    e2e_warmup_steps: int = 2
    e2e_repeats: int = 3  # interleaved rounds of every end-to-end configuration (rows: min / median / max)
    e2e_late_step: int = 250  # the late windows start at this step of a long episode
    startup_repeats: int = 3  # fresh processes per env id for the startup time
    thread_repeats: int = 3  # interleaved windows per thread setting
    repeats: int = 30  # timed segments, embedded memory path
    readout_write_steps: int = 24
    readout_views: int = 8
    threads: int = 1  # torch threads (1: the fairest comparison on a shared CPU)
    oracle_steps: int = 500  # oracle: single oracle env steps per repeat
    oracle_vector_envs: int = 16  # oracle: sub-envs of the native vector oracle env
    oracle_vector_steps: int = 40  # oracle: vector steps per repeat (each steps every sub-env)
    oracle_repeats: int = 5  # oracle: interleaved repeats (oracle) and segment rounds (memory)
    oracle_memory_segments: int = 4  # oracle: memory segments timed per round
    plots: bool = True


QUICK = dict(tour_steps=120, flat_from=40, validate_steps=40, wan_size=64, wan_frames=1, wan_tour_steps=60,
             wan_validate_steps=20, wan_repeats=1, wan_dit=False, wan_decode=False, e2e_envs=[1, 4], e2e_frames=32,
             e2e_warmup_steps=1, e2e_repeats=2, e2e_late_step=30, startup_repeats=2, thread_repeats=2, repeats=10,
             readout_write_steps=12, readout_views=4, oracle_steps=40, oracle_vector_envs=4,
             oracle_vector_steps=5, oracle_repeats=2, oracle_memory_segments=1)


def apply_quick(args: BenchArgs, explicit=None) -> BenchArgs:
    return commandline.apply_quick(args, explicit, QUICK)


def command_line(args: BenchArgs, prog: str = "mirage-gym bench") -> str:
    return commandline.command_line(prog, args, QUICK)


# ---------------------------------------------------------------------- tables


def cache_tables(cache: dict) -> list[Table]:
    s, st = cache["summary"], cache["settings"]
    e = s["embedded"]
    es = st["embedded"]
    rows = []
    for label in ("after_5_segments", "at_flat_from", "at_end"):
        r = e[label]
        rows.append([str(r["step"]), r["latent_tokens"], kib(r["latent_bytes"]), r["rgb_points"], kib(r["rgb_bytes"]),
                     ratio(r["ratio_bytes_rgb_over_latent"]), kib(r["nodedup_latent_bytes"]), kib(r["nodedup_rgb_bytes"]),
                     ratio(r["ratio_bytes_nodedup_rgb_over_latent"])])
    g = e["growth_pct"]
    chk = cache["checks"].get("embedded", {})
    t1 = Table(
        f"Cache after N segments, embedded scale ({es['image_size']}x{es['image_size']} frames, latent {es['latent_grid']}x{es['latent_grid']}x{es['channels']} "
        f"float16 = {es['latent_token_bytes']} B/token, RGB {es['rgb_point_bytes']} B/point; voxels {es['latent_voxel_m']:.3g} m / {es['rgb_voxel_m']:.4g} m)",
        ["step", "latent tokens", "latent", "RGB points", "RGB", "RGB/latent (both dedup)", "latent no-dedup", "RGB no-dedup",
         "RGB no-dedup/latent"], rows,
        [f"growth from step {e['flat_from']} to {e['steps']}: latent {fmt(g['latent'])}%, RGB {fmt(g['rgb'])}%, "
         f"no-dedup (reference release) {fmt(g['nodedup_latent'])}%; latent with the env's token depth "
         f"(geometry.depth_to_grid of the full-res depth instead of the exact ray depth): {fmt(g['latent_with_env_depth'])}%",
         f"RGB sizes after step {chk.get('step')} are exact voxel counts (checked equal to RGBPointCloudMemory at step "
         f"{chk.get('step')}: {chk.get('rgb_memory_points')} vs {chk.get('voxel_count')} points)"])
    tables = [_env_rule_cache_table(s.get("embedded_env_rule"), es), t1] if s.get("embedded_env_rule", {}).get("at_end") else [t1]
    t1.title = t1.title.replace("Cache after N segments, embedded scale",
                                "Cache over the long tour, embedded scale, pure voxel rule (update='oldest': upper bounds for the env)")
    if "wan" in s:
        w = s["wan"]
        ws = st["wan"]
        rows = []
        for name in ("wan2.2", "wan2.1"):
            for label in ("after_5_segments", "at_flat_from", "at_end"):
                r = w[name][label]
                rows.append([name, str(r["step"]), r["latent_tokens"], kib(r["latent_bytes"]), r["rgb_points"], kib(r["rgb_bytes"]),
                             ratio(r["ratio_bytes_rgb_over_latent"]), kib(r["nodedup_latent_bytes"]), kib(r["nodedup_rgb_bytes"]),
                             ratio(r["ratio_bytes_nodedup_rgb_over_latent"])])
        chk = cache["checks"].get("wan", {})
        g22, g21 = w["wan2.2"]["growth_pct"], w["wan2.1"]["growth_pct"]
        tables.append(Table(
            f"Cache after N segments, Wan scale, pure voxel rule, random latents (no shipped model: Wan2.x ships no weights here; "
            f"{ws['image_size']}x{ws['image_size']} frames; one latent frame per 4-frame segment; "
            f"Wan2.2 {ws['wan2.2']['latent_grid']}x{ws['wan2.2']['latent_grid']}x48 = {ws['wan2.2']['latent_token_bytes']} B/token, "
            f"Wan2.1 {ws['wan2.1']['latent_grid']}x{ws['wan2.1']['latent_grid']}x16 = {ws['wan2.1']['latent_token_bytes']} B/token; "
            f"the RGB memory lifts all 4 frames; RGB voxel {ws['rgb_voxel_m']:.4g} m)",
            ["VAE", "step", "latent tokens", "latent", "RGB points", "RGB", "RGB/latent (both dedup)", "latent no-dedup",
             "RGB no-dedup", "RGB no-dedup/latent"], rows,
            [f"growth from step {w['flat_from']} to {w['steps']}: Wan2.2 latent {fmt(g22['latent'])}%, Wan2.1 latent {fmt(g21['latent'])}%, "
             f"RGB {fmt(g22['rgb'])}%, no-dedup {fmt(g22['nodedup_latent'])}%",
             f"if the RGB memory lifted only the latent frames it would hold {fmt(w['rgb_points_if_only_latent_frames_written_at_end'])} "
             f"points at the end instead of {fmt(w['wan2.2']['at_end']['rgb_points'])}",
             f"RGB sizes after step {chk.get('step')} are exact voxel counts (checked equal to RGBPointCloudMemory: "
             f"{chk.get('rgb_memory_points')} vs {chk.get('voxel_count')})"]))
    return tables


def _env_rule_cache_table(fill: dict, es: dict) -> Table:
    rows = [[str(r["step"]), r["latent_tokens"], kib(r["latent_bytes"]), r["rgb_points"], kib(r["rgb_bytes"]),
             ratio(r["ratio_bytes_rgb_over_latent"])] for r in (fill["after_5_segments"], fill["at_end"])]
    return Table(f"Cache under the env's rule (update='{fill['rule']}'), embedded scale, both memories run for real "
                 f"({es['image_size']}x{es['image_size']} frames, latent {es['latent_grid']}x{es['latent_grid']}x{es['channels']})",
                 ["step", "latent tokens", "latent", "RGB points", "RGB", "RGB/latent"], rows,
                 ["the rule MirageRoom uses by default: a write skips what the memory already shows; the memory-path section "
                  "times these memories"])


def memory_path_table(mp: dict, label: str) -> Table:
    rows = []
    e = mp.get("embedded")
    if e:
        b = e["breakdown_ms_per_frame"]
        rows.append([f"embedded {e['image_size']}x{e['image_size']} -> {e['latent_grid']}x{e['latent_grid']}x{e['channels']}",
                     fmt(e["latent_ms_per_frame"]), f"{fmt(b['latent_read'])} + {fmt(b['latent_write'])}",
                     fmt(e["rgb_ms_per_frame"]), f"{fmt(b['rgb_read'])} + {fmt(b['rgb_encode'])} + {fmt(b['rgb_write'])}",
                     ratio(e["ratio"]), f">= {TARGETS['memory_path_embedded']:.0f}x"])
    for name, w in (mp.get("wan") or {}).items():
        b = w["breakdown_ms_per_frame"]
        rows.append([f"{name} VAE {w['image_size']}x{w['image_size']}x{w['frames_per_chunk']}f -> {w['latent_frames_per_chunk']}x"
                     f"{w['latent_grid']}x{w['latent_grid']}x{w['channels']}" + ("" if w["config"] == "real" else " [TEST-SIZE]"),
                     fmt(w["latent_ms_per_frame"]), "-", fmt(w["rgb_ms_per_frame"]),
                     f"{fmt(b['rgb_read'])} + {fmt(b['vae_encode'])} + {fmt(b['rgb_write'])}", ratio(w["ratio"]),
                     f">= {TARGETS['memory_path_wan']:.0f}x"])
    notes = [f"codec at embedded scale: {label}"]
    if e:
        notes.append(f"embedded: memories under the env's rule (update='{e.get('rule', '?')}'); {e['latent_tokens']:,} latent tokens vs {e['rgb_points']:,} RGB points in memory; median of {e['repeats']} "
                     f"segments of {e['frames_per_segment']} frames; RGB path with a free exact codec (pixel-unshuffle): "
                     f"{fmt(e['rgb_exact_codec_ms_per_frame'])} ms/frame = {ratio(e['ratio_without_vae'])} the latent path; the latent "
                     f"path on an empty memory (fixed per-call cost): {fmt(e['latent_floor_ms_per_frame'])} ms/frame")
    if mp.get("wan"):
        notes.append("Wan VAEs (no shipped model): real configurations, random weights (a cost measurement), encoder only materialised; "
                     "memories under the pure voxel rule; "
                     "latent path = read + write of the chunk's latent frames on the Wan latent grid; RGB path writes only the "
                     "latent frames' pixels (favouring it)")
    return Table("Memory path per frame (ms): latent read + write vs RGB render + VAE encode + write",
                 ["scale / grid", "latent", "read + write", "RGB", "render + encode + write", "RGB/latent", "target"], rows, notes)


def e2e_tables(e2e: dict, proj: dict | None, label: str) -> list[Table]:
    rows = []
    for key, by in e2e["summary"].items():
        for phase in ("early", "late"):
            s = by[phase]
            cells = [key.replace("_N", " N="), phase]
            for m in ("latent", "rgb", "none"):
                sp = s[f"spread_{m}"]
                cells.append(f"{fmt(sp['median'])} ({fmt(sp['min'])}-{fmt(sp['max'])})")
            rows.append(cells + [ratio(s["speedup_latent_over_rgb"])])
    out = [Table(f"End-to-end frames/s (measured; embedded scale; median (min-max) of {e2e['repeats']} interleaved rounds)",
                 ["env", "phase", "latent", "rgb", "none", "latent/rgb"], rows,
                 [f"world model: {label}", f"{e2e['frames_budget']} frames timed per window; early: from step {e2e['warmup_steps']} "
                  f"after reset; late: from step {e2e['late_step']} of a long episode (restored with set_state); task='none'; "
                  "gym.make / gym.make_vec(vectorization_mode='vector_entry_point'); the env's default thread policy"])]
    if proj:
        rows = [[k, fmt(proj["s_per_frame"][k]), fmt(proj["memory_path_s_per_frame"][k]), fmt(proj["fps"][k])] for k in ("latent", "rgb", "none")]
        out.append(Table(
            f"Wan2.2 scale end to end: PROJECTION from measured component costs ({proj['image_size']}x{proj['image_size']}, "
            f"{proj['frames_per_chunk']}-frame chunks, {proj['sampling_steps']} sampling steps)",
            ["memory", "s/frame", "of which memory path", "frames/s"], rows,
            [proj["label"], f"generation {fmt(proj['generation_s_per_frame'])} s/frame (DiT 30 blocks + 15-block memory branch), "
             f"VAE decode {fmt(proj['decode_s_per_frame'])} s/frame" + ("" if proj["decode_included"] else " (not measured: excluded)"),
             f"projected speedup latent over rgb: {ratio(proj['speedup_latent_over_rgb'])}; if generation were free: "
             f"{ratio(proj['speedup_if_generation_were_free'])}"]))
    return out


def readout_table(ro: dict) -> Table:
    rows = []
    for name, r in ro["codecs"].items():
        rows.append([name + ("" if r["meaningful"] else " (random weights)"), f"{r['latent_grid']}x{r['latent_grid']}x{r['channels']}",
                     fmt(r["latent_psnr"]), fmt(r["rgb_render_psnr"]), fmt(r["rgb_psnr"]), fmt(r["codec_ceiling_psnr"]),
                     fmt(r["latent_rel"]), fmt(r["rgb_rel"])])
    return Table(f"Readout fidelity at revisited poses ({ro['revisit_views']} views moved {ro['offset_m']} m and turned "
                 f"{ro['yaw_offset_deg']} deg from written ones)",
                 ["codec", "latent grid", "latent readout PSNR", "RGB render PSNR", "RGB after VAE PSNR", "codec ceiling",
                  "latent rel. error", "RGB-path rel. error"], rows,
                 ["PSNR in dB vs ground truth on cells both memories cover; rel. error = latent MSE vs encode(ground truth) / its variance",
                  "pixel-unshuffle is exact (ceiling 100 dB = capped): there the only difference is where the splat resamples",
                  "with random codec weights the decoded PSNRs are meaningless (flagged)"])


def target_lines(res: dict) -> list[str]:
    """Each target: measured value, met or missed, by how much, and why."""
    lines = []
    mp = res.get("memory_path") or {}
    e = mp.get("embedded")
    if e:
        r, t = e["ratio"], TARGETS["memory_path_embedded"]
        b = e["breakdown_ms_per_frame"]
        why = ("" if r >= t else
               f" Why: at {e['image_size']}x{e['image_size']} the pixel path is cheap - the render is "
               f"{fmt(b['rgb_read'])} ms/frame and the embedded-size VAE encode {fmt(b['rgb_encode'])} ms/frame - while the latent "
               f"path still pays {fmt(e['latent_ms_per_frame'])} ms/frame, mostly the memory write ({fmt(b['latent_write'])} ms/frame: "
               "each written frame is merged in O(stored tokens)). Without the VAE the ratio is "
               f"{ratio(e['ratio_without_vae'])}.")
        lines.append(f"Memory path, embedded scale: {ratio(r)} (target >= {t:.0f}x): " + ("met." if r >= t else f"MISSED by {t / r:.1f}x.") + why)
    for name, w in (mp.get("wan") or {}).items():
        r, t = w["ratio"], TARGETS["memory_path_wan"]
        real = w["config"] == "real"
        lines.append(f"Memory path, {name} VAE scale ({w['image_size']}x{w['image_size']}, {w['frames_per_chunk']} frames"
                     + ("" if real else ", TEST-SIZE config: not a cost measurement") + f"): {ratio(r)} (target >= {t:.0f}x): "
                     + ("met." if r >= t else f"MISSED by {t / r:.1f}x (the VAE encode is {fmt(w['breakdown_ms_per_frame']['vae_encode'])} ms/frame at this small size)."))
    cache = res.get("cache")
    if cache:
        e5 = cache["summary"].get("embedded_env_rule", {}).get("after_5_segments") or cache["summary"]["embedded"]["after_5_segments"]
        es = cache["settings"]["embedded"]
        r, t = e5["ratio_bytes_rgb_over_latent"], TARGETS["cache_after_5_segments"]
        bound = es["downsample"] ** 2 * es["rgb_point_bytes"] / es["latent_token_bytes"]
        fill_end = cache["summary"].get("embedded_env_rule", {}).get("at_end")
        lines.append(
            f"Cache after 5 segments, embedded scale, the env's rule (fill), both memories deduplicated: {ratio(r)}"
            + (f" ({ratio(fill_end['ratio_bytes_rgb_over_latent'])} at step {fill_end['step']})" if fill_end else "")
            + f" (target >= {t:.0f}x): "
            + ("met." if r >= t else f"MISSED by {t / r:.1f}x.")
            + f" Why: a latent token stands for {es['downsample']}x{es['downsample']} pixels, so the ratio is about "
            f"{es['downsample'] ** 2} points x {es['rgb_point_bytes']} B / {es['latent_token_bytes']} B per token = {bound:.1f}x; "
            f"xyz (12 B) is most of a {es['channels']}-channel token. Under the pure voxel rule: "
            f"{ratio(cache['summary']['embedded']['after_5_segments']['ratio_bytes_rgb_over_latent'])}; against the no-dedup "
            f"pixel cloud: {ratio(cache['summary']['embedded']['after_5_segments']['ratio_bytes_nodedup_rgb_over_latent'])}.")
        if "wan" in cache["summary"]:
            w5 = cache["summary"]["wan"]["wan2.2"]["after_5_segments"]
            we = cache["summary"]["wan"]["wan2.2"]["at_end"]
            ws = cache["settings"]["wan"]
            r = w5["ratio_bytes_rgb_over_latent"]
            bound = 16 ** 2 * 15 / ws["wan2.2"]["latent_token_bytes"]
            lines.append(
                f"Cache after 5 segments, Wan2.2 scale (no shipped model; pure voxel rule), both deduplicated: {ratio(r)} (target >= {t:.0f}x): "
                + ("met" if r >= t else f"MISSED by {t / r:.1f}x") + f"; at step {we['step']}: {ratio(we['ratio_bytes_rgb_over_latent'])}. "
                f"Per latent frame the bound is 256 points x 15 B / {ws['wan2.2']['latent_token_bytes']} B = {bound:.1f}x; the pixel memory "
                "lifts 4 frames per latent frame, which helps the ratio until its dedup catches up over revisits. "
                f"Against the no-dedup pixel cloud: {ratio(w5['ratio_bytes_nodedup_rgb_over_latent'])} after 5 segments, "
                f"{ratio(we['ratio_bytes_nodedup_rgb_over_latent'])} at step {we['step']}.")
        g = cache["summary"]["embedded"]["growth_pct"]
        fl = cache["summary"]["embedded"]
        t = TARGETS["cache_growth_pct"]
        ok = g["latent"] is not None and g["latent"] <= t
        lines.append(
            f"Latent cache growth from step {fl['flat_from']} to {fl['steps']}: {fmt(g['latent'])}% (target <= +{t:.0f}%): "
            + ("met" if ok else f"MISSED by {fmt(g['latent'] - t)} points") + f"; the reference release's no-dedup cache grows "
            f"{fmt(g['nodedup_latent'])}% over the same steps. Tokens here get the exact depth of their cell-centre ray; with the "
            f"env's reduction of the full-resolution depth (geometry.depth_to_grid) the latent growth is "
            f"{fmt(g['latent_with_env_depth'])}%: any token lifted off its surface lands in a different voxel from each "
            "viewpoint, so revisits keep finding empty voxels.")
        if "wan" in cache["summary"]:
            wg = cache["summary"]["wan"]
            g22 = wg["wan2.2"]["growth_pct"]["latent"]
            lines.append(
                f"Latent cache growth at Wan2.2 scale from step {wg['flat_from']} to {wg['steps']}: {fmt(g22)}% (Wan2.1: "
                f"{fmt(wg['wan2.1']['growth_pct']['latent'])}%; target <= +{t:.0f}%): " + ("met" if g22 <= t else f"MISSED by {fmt(g22 - t)} points")
                + ". With 4x temporal compression the Wan memory writes one latent frame of "
                f"{cache['settings']['wan']['wan2.2']['latent_grid']}x{cache['settings']['wan']['wan2.2']['latent_grid']} tokens per "
                f"segment, a quarter of the embedded memory's writes, so by step {wg['flat_from']} it has sampled the room more sparsely "
                "and keeps filling voxels longer" + _later_growth(cache["curves"]["wan"], "wan2.2_tokens", 2 * wg["flat_from"]) + ".")
    e2e = res.get("e2e")
    if e2e:
        single = e2e["summary"]["single"]
        early, late = single["early"], single["late"]
        lines.append(f"End to end, embedded scale (measured, medians): latent {fmt(early['fps_latent'])} vs rgb "
                     f"{fmt(early['fps_rgb'])} frames/s = {ratio(early['speedup_latent_over_rgb'])} early in an episode, "
                     f"{fmt(late['fps_latent'])} vs {fmt(late['fps_rgb'])} = {ratio(late['speedup_latent_over_rgb'])} from step "
                     f"{e2e['late_step']} (single env; no memory: {fmt(early['fps_none'])} / {fmt(late['fps_none'])}); "
                     f"world model: {res['model']['world_model']}.")
        proj = res.get("wan_projection")
        if proj:
            lines.append(f"End to end, Wan2.2 scale (PROJECTION from measured costs): {ratio(proj['speedup_latent_over_rgb'])} "
                         f"(paper: up to 10.57x). Generation is {fmt(proj['generation_s_per_frame'])} s/frame on this CPU against a "
                         f"pixel memory path of {fmt(proj['memory_path_s_per_frame']['rgb'])} s/frame, so removing the round trip "
                         "saves little here; the paper's figure compares whole systems on a GPU.")
    ro = res.get("readout")
    if ro:
        pu = ro["codecs"].get("pixel-unshuffle")
        learned = [(name, c) for name, c in ro["codecs"].items() if name != "pixel-unshuffle" and c.get("meaningful", True)]
        if pu:
            lines.append(f"Readout (exact pixel-unshuffle codec): latent readout {fmt(pu['latent_psnr'])} dB vs RGB render + round trip "
                         f"{fmt(pu['rgb_psnr'])} dB. With an exact codec the round trip loses nothing, and resampling on the coarse "
                         "latent grid costs detail.")
        for name, c in learned:
            lost = c["rgb_render_psnr"] - c["rgb_psnr"]
            verdict = ("confirmed: the pixel path loses more in its VAE round trip than the latent path loses by resampling"
                       if c["latent_psnr"] > c["rgb_psnr"] else
                       f"not confirmed at this scale: the round trip costs the pixel path {fmt(lost)} dB, but reading the latent memory "
                       "on the coarse latent grid costs more (a bilinear splat of latents decodes as blur)")
            lines.append(f"Readout ({name}): latent readout {fmt(c['latent_psnr'])} dB vs RGB render + VAE round trip "
                         f"{fmt(c['rgb_psnr'])} dB (render alone {fmt(c['rgb_render_psnr'])} dB); the 'pixel round trip is lossy' "
                         f"claim is {verdict}.")
        if not learned and pu:
            lines.append("The 'pixel round trip is lossy' claim needs a trained VAE to test (a learned round trip loses what the VAE loses).")
    return lines


def _later_growth(curve: dict, key: str, start: int) -> str:
    steps = curve.get("step") or []
    if not steps or start >= steps[-1]:
        return ""
    i = min(range(len(steps)), key=lambda j: abs(steps[j] - start))
    g = 100.0 * (curve[key][-1] / max(1, curve[key][i]) - 1.0)
    return f"; from step {steps[i]} to {steps[-1]} it grows {fmt(g)}%"


# ------------------------------------------------------------------------ main


def main(args: BenchArgs, explicit=None) -> dict:
    """Run the benchmark; ``explicit``: names of the fields set on the command
    line (they win over the --quick preset)."""
    args = apply_quick(args, explicit)
    unknown = set(args.sections) - set(SECTIONS)
    if unknown:
        raise SystemExit(f"unknown --sections {sorted(unknown)}; choose from {list(SECTIONS)}")
    if args.wan_vae not in ("real", "test", "off"):
        raise SystemExit(f"--wan-vae must be real, test or off; got {args.wan_vae!r}")
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    log = lambda s: print(s, flush=True)  # noqa: E731
    res: dict = {"args": asdict(args), "command": command_line(args), "machine": machine_info(args.threads),
                 "date": datetime.datetime.now().isoformat(timespec="seconds"), "seconds": {}}
    mut = embedded_world_model(args.world_model, args.image_size)
    res["model"] = mut.describe()
    room = ProceduralRoom(args.scene_seed)
    steps = max(args.tour_steps, args.wan_tour_steps if args.wan_vae != "off" else 0, args.readout_write_steps,
                args.validate_steps + args.repeats + 4)
    log(f"mirage-gym bench{' --quick' if args.quick else ''}: {room}; world model: {mut.label}; codec: {mut.codec_label}")
    log(f"machine: {res['machine']['cpu']}, {res['machine']['logical_cores']} cores, torch {torch.__version__}, "
        f"{args.threads} thread(s), load average {res['machine']['load_average_start']}")
    t = time.perf_counter()
    start, actions = room_tour(room, steps)
    traj = simulate(room, start, actions, args.frames_per_step)
    res["tour"] = {"steps": len(traj), "start_pose": traj.start_pose, "blocked_moves": int(sum(traj.collided))}
    res["seconds"]["tour"] = time.perf_counter() - t
    wan_on = args.wan_vae != "off"
    want = set(args.sections)

    if "speed" in want:
        from .bench_speed import run_startup, run_threads

        log("[speed] startup in fresh processes; frames/s by thread setting")
        t = time.perf_counter()
        res["speed"] = {"startup": run_startup(repeats=args.startup_repeats, log=log)}
        if mut.trained:  # the thread rows time the embedded model
            res["speed"]["threads"] = run_threads(scene_seed=args.scene_seed, frames_per_step=args.frames_per_step,
                                                  vector_envs=8, repeats=args.thread_repeats, log=log)
        res["seconds"]["speed"] = time.perf_counter() - t

    if want & {"cache", "memory_path"}:
        from .bench_cache import run_cache

        log(f"[cache] {args.tour_steps}-step tour, {args.frames_per_step} frames per segment"
            + (f"; Wan scale {args.wan_size}x{args.wan_size} for {args.wan_tour_steps} steps" if wan_on else ""))
        t = time.perf_counter()
        sub = simulate(room, start, actions[:args.tour_steps], args.frames_per_step)
        cache = run_cache(sub, room, image_size=args.image_size, downsample=mut.codec.downsample,
                          channels=mut.codec.latent_channels, voxel_size=args.voxel_size, wan_size=args.wan_size,
                          validate_steps=args.validate_steps, wan_validate_steps=args.wan_validate_steps,
                          wan_steps=args.wan_tour_steps if wan_on else 0, flat_from=args.flat_from, log=log)
        if not wan_on:
            cache["summary"].pop("wan", None)
        res["seconds"]["cache"] = time.perf_counter() - t
        snapshots = cache.pop("snapshots")
        if "cache" in want:
            res["cache"] = cache
        if "memory_path" in want:
            from .bench_memory_path import embedded_memory_path, wan_memory_path

            log("[memory path] per frame, same poses, same depth, same kernel")
            t = time.perf_counter()
            mp = {"embedded": embedded_memory_path(traj, room, snapshots["embedded"], mut.codec, image_size=args.image_size,
                                                   repeats=args.repeats, first_step=min(args.validate_steps, args.tour_steps),
                                                   log=log)}
            if wan_on and "wan" in snapshots:
                mp["wan"] = wan_memory_path(traj, room, snapshots["wan"], image_size=args.wan_size, frames=args.wan_frames,
                                            scale=args.wan_vae, repeats=args.wan_repeats,
                                            first_step=min(args.wan_validate_steps, args.wan_tour_steps), log=log)
            res["memory_path"] = mp
            res["seconds"]["memory_path"] = time.perf_counter() - t

    if "e2e" in want:
        from .bench_e2e import measure_decode, measure_dit, run_e2e, wan_projection

        log("[end to end] frames/s, memory latent / rgb / none")
        t = time.perf_counter()
        res["e2e"] = run_e2e(mut, args.scene_seed, traj.start_pose, actions, image_size=args.image_size,
                             frames_per_step=args.frames_per_step, num_envs=args.e2e_envs, frames_budget=args.e2e_frames,
                             warmup_steps=args.e2e_warmup_steps, repeats=args.e2e_repeats, late_step=args.e2e_late_step,
                             log=log)
        res["seconds"]["e2e"] = time.perf_counter() - t
        if wan_on and args.wan_dit:
            t = time.perf_counter()
            res["wan_dit"] = measure_dit(args.wan_size, args.wan_frames, args.wan_vae, log=log)
            if args.wan_decode:
                res["wan_decode"] = measure_decode(args.wan_size, args.wan_frames, args.wan_vae, log=log)
            res["wan_projection"] = wan_projection((res.get("memory_path") or {}).get("wan"), res["wan_dit"],
                                                   res.get("wan_decode"), args.wan_frames)
            res["seconds"]["wan_projection"] = time.perf_counter() - t

    if "readout" in want:
        from .readout import run_readout

        log("[readout] latent readout vs RGB render + VAE round trip at revisited poses")
        t = time.perf_counter()
        codecs = [("pixel-unshuffle", PixelUnshuffleCodec(mut.codec.downsample), True),
                  ("tiny VAE" if mut.trained else "AutoencoderTiny", mut.codec, mut.trained)]
        res["readout"] = run_readout(room, traj, codecs, image_size=args.image_size, write_steps=args.readout_write_steps,
                                     views=args.readout_views, log=log)
        res["seconds"]["readout"] = time.perf_counter() - t

    if "oracle" in want:
        from .bench_oracle import run_oracle

        log(f"[oracle] oracle steps/s single and vector-{args.oracle_vector_envs}; memory read/write at 5k and 60k tokens")
        t = time.perf_counter()
        res["oracle"] = run_oracle(scene_seed=args.scene_seed, steps=args.oracle_steps, vector_envs=args.oracle_vector_envs,
                                   vector_steps=args.oracle_vector_steps, repeats=args.oracle_repeats,
                                   memory_segments=args.oracle_memory_segments, log=log)
        res["seconds"]["oracle"] = time.perf_counter() - t

    res["seconds"]["total"] = time.perf_counter() - t_start
    res["machine"]["load_average_end"] = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
    res["targets"] = target_lines(res)
    tables = []
    if "speed" in res:
        from .bench_speed import speed_tables, speed_target_lines

        tables += speed_tables(res["speed"])
        res["targets"] = speed_target_lines(res["speed"]) + res["targets"]
    if "memory_path" in res:
        tables.append(memory_path_table(res["memory_path"], mut.codec_label))
    if "cache" in res:
        tables += cache_tables(res["cache"])
    if "e2e" in res:
        tables += e2e_tables(res["e2e"], res.get("wan_projection"), mut.label)
    if "readout" in res:
        tables.append(readout_table(res["readout"]))
    if "oracle" in res:
        from .bench_oracle import oracle_tables

        tables += oracle_tables(res["oracle"])
    print()
    for tb in tables:
        print(tb.text())
        print()
    print("Targets")
    for line in res["targets"]:
        print(" - " + line)
    took = res["seconds"]["total"]
    print(f"\nbench took {took / 60:.1f} min ({took:.0f} s); load average {res['machine']['load_average_start']} -> "
          f"{res['machine']['load_average_end']}")

    files = {"json": out / "bench.json", "markdown": out / "results.md"}
    if args.plots:
        files.update(_plots(res, out))
    res["files"] = {k: str(v) for k, v in files.items()}
    write_json(files["json"], res)
    files["markdown"].write_text(markdown(res, tables))
    print("wrote " + ", ".join(str(v) for v in files.values()))
    return res


def markdown(res: dict, tables: list[Table]) -> str:
    m = res["machine"]
    lines = ["## Benchmark: latent spatial memory vs pixel-space memory", "",
             "```", res["command"], "```", "",
             f"Machine: {m['cpu']}, {m['logical_cores']} logical cores, {m['memory_gib']} GiB RAM, {m['platform']}; "
             f"Python {m['python']}, torch {m['torch']}, diffusers {m['diffusers']}, {m['torch_threads']} torch thread(s); "
             f"load average {m['load_average_start']} -> {m.get('load_average_end')}. Run {res['date']}, took "
             f"{res['seconds']['total'] / 60:.1f} min.", "",
             f"World model: {res['model']['world_model']}. Codec: {res['model']['codec']}.", ""]
    for tb in tables:
        lines.append(tb.markdown())
    lines += ["### Targets", ""] + [f"- {x}" for x in res["targets"]] + [""]
    if res.get("files"):
        pngs = [v for k, v in res["files"].items() if v.endswith(".png")]
        if pngs:
            lines += ["Plots: " + ", ".join(f"`{Path(p).name}`" for p in pngs), ""]
    return "\n".join(lines)


def _plots(res: dict, out: Path) -> dict:
    files = {}
    cache = res.get("cache")
    if cache:
        c = cache["curves"]["embedded"]
        if c["step"]:
            p = out / "cache_embedded.png"
            plot_lines(p, "Cache bytes vs step, embedded scale (log y)", c["step"], {
                "latent (dedup)": (c["lat_bytes"], "C0-"), "RGB point cloud (dedup)": (c["rgb_bytes"], "C1-"),
                "latent, no dedup (reference release)": (c["nodedup_lat_bytes"], "C0--"),
                "RGB, no dedup": (c["nodedup_rgb_bytes"], "C1--")}, "step (segment of 4 frames)", "bytes")
            files["plot_cache_embedded"] = p
        w = cache["curves"]["wan"]
        if w["step"]:
            tb22 = cache["settings"]["wan"]["wan2.2"]["latent_token_bytes"]
            p = out / "cache_wan.png"
            plot_lines(p, "Cache bytes vs step, Wan scale (log y)", w["step"], {
                "Wan2.2 latent (dedup)": (w["wan2.2_bytes"], "C0-"), "Wan2.1 latent (dedup)": (w["wan2.1_bytes"], "C2-"),
                "RGB point cloud (dedup)": (w["rgb_bytes"], "C1-"),
                "Wan2.2 latent, no dedup": ([x * tb22 for x in w["nodedup_wan2.2_tokens"]], "C0--"),
                "RGB, no dedup": ([x * 15 for x in w["nodedup_rgb_points"]], "C1--")}, "step (segment of 4 frames)", "bytes")
            files["plot_cache_wan"] = p
    mp = res.get("memory_path")
    if mp:
        groups, lat, rgb = [], [], []
        if mp.get("embedded"):
            groups.append("embedded")
            lat.append(mp["embedded"]["latent_ms_per_frame"])
            rgb.append(mp["embedded"]["rgb_ms_per_frame"])
        for name, w in (mp.get("wan") or {}).items():
            groups.append(name)
            lat.append(w["latent_ms_per_frame"])
            rgb.append(w["rgb_ms_per_frame"])
        p = out / "memory_path.png"
        plot_bars(p, "Memory path per frame (ms, log)", groups, {"latent read + write": lat, "RGB render + VAE encode + write": rgb},
                  "ms per frame", logy=True)
        files["plot_memory_path"] = p
    e2e = res.get("e2e")
    if e2e:
        keys = list(e2e["summary"])
        p = out / "e2e_fps.png"
        plot_bars(p, f"End-to-end frames/s ({res['model']['world_model'][:60]})", [k.replace("_N", " N=") for k in keys],
                  {f"{m} ({phase})": [e2e["summary"][k][phase][f"fps_{m}"] for k in keys] for m in ("latent", "rgb", "none")
                   for phase in ("early", "late")}, "frames/s (medians)")
        files["plot_e2e"] = p
    return files
