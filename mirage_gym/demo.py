"""`mirage-gym demo`: one episode, written as a video a person can watch.

The scripted explorer drives a leave-and-return tour (turn 180 degrees away
and back, walk out and back to the start pose), then explores, so the
world model has to regenerate places it saw before from its memory.
Panels: generated frame | ground truth at the same pose | top-down memory
map, with step, pose and memory size overlaid. Also a contact-sheet PNG and
a printed summary (steps, frames/s, memory, revisit PSNR: generated frame
vs the start frame whenever the agent is back at the start pose).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import imageio.v2 as imageio
import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

from .agents.explorer import ScriptedExplorer
from .envs.debug_view import _upscale, top_down_map
from .eval.metrics import psnr


@dataclass
class DemoArgs:
    world_model: str = "tiny"
    steps: int = 96
    seed: int = 0
    scene_seed: int = 1_000_007  # a held-out room the model never trained on
    out: str = "runs/demo"
    panel: int = 256
    threads: int = 1  # torch threads: the tiny model gains little from more, and a busy core stalls a thread pool


def _label(panel: np.ndarray, text: str) -> np.ndarray:
    img = Image.fromarray(panel)
    draw = ImageDraw.Draw(img)
    draw.rectangle([0, 0, img.width, 14], fill=(0, 0, 0))
    draw.text((4, 2), text, fill=(255, 255, 255))
    return np.asarray(img)


def main(args: DemoArgs) -> dict:
    import torch

    from .models.tiny import weights_available

    torch.set_num_threads(max(1, args.threads))

    world_model = args.world_model
    if world_model == "tiny" and not weights_available():
        print("note: the embedded model's weights are not in this install; showing the oracle world instead")
        world_model = "oracle"
    env = gym.make("MirageRoom-v0", world_model=world_model, return_gt=True, render_mode="rgb_array")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    obs, info = env.reset(seed=args.seed, options={"scene_seed": args.scene_seed})
    sim = env.unwrapped.sim
    ep = sim.episodes[0]
    first_rgb, first_pose = obs["rgb"], obs["pose"]
    explorer = ScriptedExplorer(env, tour="leave_and_return", seed=args.seed)
    video = imageio.get_writer(out / "episode.mp4", fps=sim.cfg.fps, codec="libx264", quality=8, macro_block_size=16,
                               ffmpeg_log_level="error")
    sheet, revisit = [], []
    start = time.perf_counter()
    frames_generated = 0
    for step in tqdm(range(args.steps), desc=f"demo ({world_model} world)", unit="step", dynamic_ncols=True):
        obs, reward, terminated, truncated, info = env.step(explorer.act(obs))
        frames_generated += len(info["frames"])
        tokens = ep.memory.positions.cpu().numpy() if ep.memory is not None else np.zeros((0, 3))
        pos = obs["pose"][:3]
        gen = _label(_upscale(obs["rgb"], args.panel), f"generated  step {step + 1}")
        yaw = np.degrees(np.arctan2(info["c2w"][1, 2], info["c2w"][0, 2]))
        gt = _label(_upscale(info["gt_rgb"], args.panel), f"ground truth  ({pos[0]:.1f}, {pos[1]:.1f}) m  {yaw:+.0f} deg")
        top = _label(top_down_map(args.panel, ep.scene.bounds, tokens, info["c2w"], sim.cfg.fov_deg),
                     f"memory {info['memory_tokens']} tok, {info['memory_bytes'] / 1024:.0f} KiB")
        panel = np.concatenate([gen, gt, top], axis=1)
        video.append_data(panel)
        if step % max(1, args.steps // 16) == 0 and len(sheet) < 16:
            sheet.append(panel)
        if np.allclose(obs["pose"], first_pose, atol=1e-4):
            revisit.append(float(psnr(obs["rgb"], first_rgb)[0]))
        if terminated or truncated:
            break
    elapsed = time.perf_counter() - start
    video.close()
    rows = [np.concatenate(sheet[i:i + 2], axis=1) for i in range(0, len(sheet) - 1, 2)]
    Image.fromarray(np.concatenate(rows, axis=0)).save(out / "contact_sheet.png")
    summary = {
        "world_model": world_model, "scene_seed": args.scene_seed, "steps": step + 1,
        "frames_per_s": round(frames_generated / elapsed, 2),
        "memory_tokens": info["memory_tokens"], "memory_bytes": info["memory_bytes"],
        "coverage": round(info["coverage"], 3),
        "revisits": len(revisit),
        "revisit_psnr_db": round(float(np.mean(revisit)), 2) if revisit else None,
        "video": str(out / "episode.mp4"), "contact_sheet": str(out / "contact_sheet.png"),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    for k, v in summary.items():
        print(f"{k:>16}: {v}")
    env.close()
    return summary
