"""End-to-end frames per second, and the Wan-scale projection.

Measured: ``gym.make("MirageRoom-v0", ...)`` and
``gym.make_vec(..., vectorization_mode="vector_entry_point")`` stepping the
same tour actions from the same start pose in the same room, with
``memory="latent" | "rgb" | "none"`` and one shared world-model instance
(the embedded model, or the oracle world with the embedded VAE architecture
as codec when the trained weights are not installed). frames/s counts every
generated frame of every sub-env.

Projected (Wan scale): the per-frame cost of generation with the Wan2.2
TI2V-5B DiT (30 blocks, plus the reference's 15-block memory branch,
``WAN22_SAMPLING_STEPS`` sampling steps, no CFG) and of the Wan2.2 VAE
decode, both *measured* on this machine at the benchmark's resolution with
random weights (the DiT from a 2-block model: per-block cost = t(2) - t(1)),
added to the measured memory path of each memory kind. It is labelled a
projection: the full 5B model is not run.
"""

from __future__ import annotations

import math
import statistics
import time

import gymnasium as gym
import numpy as np
import torch

from .bench_setup import (MIRAGE_BRANCH_BLOCKS, WAN22_DIT_BLOCKS, WAN22_SAMPLING_STEPS, WAN22_TEXT_TOKENS, build_wan_dit,
                          build_wan_vae)

MEMORY_KINDS = ("latent", "rgb", "none")


def _env_kwargs(mut, memory: str, image_size: int, frames_per_step: int) -> dict:
    return dict(world_model=mut.world_model, memory=memory, task="none", obs_size=image_size, frames_per_step=frames_per_step)


def run_e2e(mut, scene_seed: int, start_pose, actions, *, image_size: int, frames_per_step: int, num_envs=(1, 4, 8),
            frames_budget: int = 128, warmup_steps: int = 4, repeats: int = 3, late_step: int = 250, log=print) -> dict:
    """Frames/s of every (env, memory) configuration, early and late in an episode.

    Early: the windows right after ``reset`` (its first ``warmup_steps`` steps
    untimed). Late: the windows from step ``late_step`` of one long episode per
    memory kind, run once and restored with ``set_state`` (into every sub-env of
    a vector env) before each window. Every configuration is timed once per
    round, in the same order, for ``repeats`` rounds: load changes on a shared
    machine hit them alike; rows give min / median / max over the rounds."""
    options = {"scene_seed": int(scene_seed), "pose": list(start_pose)}
    configs = [("single", 1)] + [("vector", int(n)) for n in num_envs]
    acts = [int(a) for a in actions]

    def action(i):
        return acts[i % len(acts)]

    late_states = {}
    for memory in MEMORY_KINDS:  # one long episode per memory kind, for the late windows
        env = gym.make("MirageRoom-v0", **_env_kwargs(mut, memory, image_size, frames_per_step))
        env.reset(seed=0, options=options)
        t0 = time.perf_counter()
        for i in range(late_step):
            env.step(action(i))
        late_states[memory] = env.unwrapped.get_state()
        log(f"  {memory}: episode run to step {late_step} for the late windows ({time.perf_counter() - t0:.0f} s)")
        env.close()

    envs = {}
    for mode, n in configs:
        for memory in MEMORY_KINDS:
            kw = _env_kwargs(mut, memory, image_size, frames_per_step)
            envs[(mode, n, memory)] = (gym.make("MirageRoom-v0", **kw) if mode == "single" else
                                       gym.make_vec("MirageRoom-v0", num_envs=n, vectorization_mode="vector_entry_point", **kw))

    def window(env, mode, n, memory, phase) -> tuple[float, dict]:
        steps = max(2, math.ceil(frames_budget / (n * frames_per_step)))
        first = 0
        if phase == "early":
            env.reset(seed=0, options=options)
            for i in range(warmup_steps):
                _step(env, mode, n, action(i))
            first = warmup_steps
        else:
            if mode == "single":
                env.unwrapped.set_state(late_states[memory])
            else:
                for i in range(n):
                    env.unwrapped.set_state(i, late_states[memory])
            first = late_step
        t0 = time.perf_counter()
        for i in range(first, first + steps):
            out = _step(env, mode, n, action(i))
        dt = time.perf_counter() - t0
        return steps * n * frames_per_step / dt, out[-1]

    fps = {(mode, n, memory, phase): [] for (mode, n, memory) in envs for phase in PHASES}
    last_info = {}
    for r in range(repeats):
        for (mode, n, memory), env in envs.items():
            for phase in PHASES:
                f, info = window(env, mode, n, memory, phase)
                fps[(mode, n, memory, phase)].append(f)
                last_info[(mode, n, memory, phase)] = info
        log(f"  round {r + 1}/{repeats}: " + ", ".join(f"{mode}{n if mode == 'vector' else ''} {memory} "
                                                      f"{fps[(mode, n, memory, 'early')][-1]:.0f}/{fps[(mode, n, memory, 'late')][-1]:.0f}"
                                                      for (mode, n, memory) in envs) + " frames/s (early/late)")
    for env in envs.values():
        env.close()

    rows, summary = [], {}
    for (mode, n, memory, phase), values in fps.items():
        mem_bytes = last_info[(mode, n, memory, phase)].get("memory_bytes")
        rows.append({"mode": mode, "num_envs": n, "memory": memory, "phase": phase, "fps": _spread(values), "raw_fps": values,
                     "memory_bytes_end": None if mem_bytes is None else int(np.max(mem_bytes))})
    for mode, n in configs:
        key = "single" if mode == "single" else f"vector_N{n}"
        summary[key] = {}
        for phase in PHASES:
            med = {m: statistics.median(fps[(mode, n, m, phase)]) for m in MEMORY_KINDS}
            summary[key][phase] = {**{f"fps_{m}": med[m] for m in MEMORY_KINDS},
                                   **{f"spread_{m}": _spread(fps[(mode, n, m, phase)]) for m in MEMORY_KINDS},
                                   "speedup_latent_over_rgb": med["latent"] / med["rgb"]}
    return {"rows": rows, "summary": summary, "warmup_steps": warmup_steps, "frames_budget": frames_budget, "repeats": repeats,
            "late_step": late_step, "scene_seed": scene_seed, "start_pose": list(start_pose)}


PHASES = ("early", "late")


def _step(env, mode, n, a):
    return env.step(a) if mode == "single" else env.step(np.full(n, a, dtype=np.int64))


def _spread(xs) -> dict:
    return {"min": float(min(xs)), "median": float(statistics.median(xs)), "max": float(max(xs))}


# ----------------------------------------------------------------- Wan projection


@torch.no_grad()
def measure_dit(image_size: int, frames: int, scale: str = "real", repeats: int = 2, log=print) -> dict:
    """Seconds per DiT call of the Wan2.2 TI2V-5B architecture at ``image_size``
    and ``frames``, from a 2-block model (random weights)."""
    g = image_size // 16
    L = 1 + (frames - 1) // 4
    t0 = time.perf_counter()
    model, cfg = build_wan_dit(2, scale)
    build_s = time.perf_counter() - t0
    x = torch.randn(1, cfg["in_channels"], L, g, g)
    text = torch.randn(1, WAN22_TEXT_TOKENS if scale == "real" else 16, cfg["text_dim"])
    ts = torch.tensor([500])

    def timed(blocks) -> float:
        model.blocks = blocks
        model(x, ts, text, return_dict=False)  # warm-up
        best = []
        for _ in range(repeats):
            t = time.perf_counter()
            model(x, ts, text, return_dict=False)
            best.append(time.perf_counter() - t)
        return float(np.median(best))

    blocks = model.blocks
    t2 = timed(blocks)
    t1 = timed(torch.nn.ModuleList(list(blocks)[:1]))
    per_block = max(0.0, t2 - t1)
    call = t1 + (WAN22_DIT_BLOCKS - 1) * per_block
    out = {"config": "Wan2.2-TI2V-5B DiT (real dims)" if scale == "real" else "diffusers test-size DiT (NOT a cost measurement)",
           "image_size": image_size, "frames": frames, "latent_frames": L, "tokens": L * (g // 2) ** 2,
           "text_tokens": text.shape[1], "build_s": build_s, "one_block_model_s": t1, "two_block_model_s": t2,
           "per_block_s": per_block, "call_s_30_blocks": call,
           "call_s_with_memory_branch": call + MIRAGE_BRANCH_BLOCKS * per_block}
    log(f"  Wan2.2 DiT at {image_size}x{image_size}, {frames} frames ({out['tokens']} tokens): {per_block:.2f} s/block "
        f"-> {call:.1f} s per call (30 blocks), {out['call_s_with_memory_branch']:.1f} s with the 15-block memory branch")
    del model
    return out


@torch.no_grad()
def measure_decode(image_size: int, frames: int, scale: str = "real", log=print) -> dict:
    """Seconds for the Wan2.2 VAE to decode a ``frames``-frame chunk (random weights)."""
    g = image_size // 16
    L = 1 + (frames - 1) // 4
    t0 = time.perf_counter()
    vae = build_wan_vae("wan2.2", scale, parts=("decoder",))
    build_s = time.perf_counter() - t0
    z = torch.randn(1, 48, L, g, g)
    t = time.perf_counter()
    vae.decode(z)
    dt = time.perf_counter() - t
    log(f"  Wan2.2 VAE decode at {image_size}x{image_size}, {frames} frames: {dt:.1f} s")
    del vae
    return {"image_size": image_size, "frames": frames, "build_s": build_s, "decode_s": dt,
            "config": "real" if scale == "real" else "test-size (NOT a cost measurement)"}


def wan_projection(memory_path: dict, dit: dict | None, decode: dict | None, frames: int,
                   sampling_steps: int = WAN22_SAMPLING_STEPS) -> dict | None:
    """Projected seconds per frame at Wan2.2 scale for memory latent / rgb / none."""
    mp = memory_path.get("wan2.2") if memory_path else None
    if mp is None or dit is None:
        return None
    gen = sampling_steps * dit["call_s_with_memory_branch"] / frames
    dec = decode["decode_s"] / frames if decode else 0.0
    lat, rgb = mp["latent_ms_per_frame"] / 1e3, mp["rgb_ms_per_frame"] / 1e3
    rows = {"latent": gen + dec + lat, "rgb": gen + dec + rgb, "none": gen + dec}
    return {
        "label": "PROJECTION from measured component costs (random weights, this CPU), not a run of the full model",
        "image_size": mp["image_size"], "frames_per_chunk": frames, "sampling_steps": sampling_steps,
        "generation_s_per_frame": gen, "decode_s_per_frame": dec if decode else None,
        "memory_path_s_per_frame": {"latent": lat, "rgb": rgb, "none": 0.0},
        "s_per_frame": rows, "fps": {k: 1.0 / v for k, v in rows.items()},
        "speedup_latent_over_rgb": rows["rgb"] / rows["latent"],
        "speedup_if_generation_were_free": (dec + rgb) / (dec + lat) if (dec + lat) > 0 else None,
        "decode_included": decode is not None,
    }
