"""Drive into unseen space for 200 steps and check the frames stay room-like.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/forward_run.py [--steps 200] [--seed 0] [--out runs/forward]

(`mirage-gym eval` measures this and more, on several rooms and policies,
beside baselines: its "explore" part. This script stays for a quick look at
one room.) ``--seed`` seeds the env and the explorer, so two runs of the same
command give the same frames.

The scripted explorer (exploration only: it heads for what it has not
seen) drives MirageRoom-v0 through a held-out room. Every step's last frame
is compared with the ground-truth render of the same pose, and a PNG strip
(model over ground truth, every ``--every`` steps) is written for a person
to look at. "Collapse" is measured, not guessed: per frame, the pixel
standard deviation (a frame gone flat grey or to a single colour has ~0)
and the high-frequency energy (mean absolute difference of neighbouring
pixels, which white noise drives far above a real image's), each against
the ground truth's own values.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from PIL import Image

import mirage_gym  # noqa: F401
from mirage_gym.agents.explorer import ScriptedExplorer
from mirage_gym.eval.metrics import psnr


def texture(img: np.ndarray) -> tuple[float, float]:
    """(pixel std, mean |horizontal + vertical neighbour difference|) of a uint8 image, in 0-255 units."""
    x = img.astype(np.float32)
    hf = (np.abs(np.diff(x, axis=0)).mean() + np.abs(np.diff(x, axis=1)).mean()) / 2
    return float(x.std()), float(hf)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--scene-seed", type=int, default=1_000_011)
    ap.add_argument("--world-model", default="tiny")
    ap.add_argument("--memory", default="latent", help="latent | rgb | none")
    ap.add_argument("--every", type=int, default=20)
    ap.add_argument("--denoise-steps", type=int, default=None, help="sampler steps (default: the model's)")
    ap.add_argument("--seed", type=int, default=0, help="seeds the env (generator noise) and the explorer")
    ap.add_argument("--out", default="runs/forward")
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env = gym.make("MirageRoom-v0", world_model=args.world_model, memory=args.memory, task="none", return_gt=True,
                   max_episode_steps=args.steps + 1,
                   model_kwargs={"denoise_steps": args.denoise_steps} if args.denoise_steps else {})
    obs, info = env.reset(seed=args.seed, options={"scene_seed": args.scene_seed})
    explorer = ScriptedExplorer(env, seed=args.seed)
    rows, cols = [], []
    for step in range(1, args.steps + 1):
        obs, _, terminated, truncated, info = env.step(explorer.act(obs))
        frame, truth = obs["rgb"], info["gt_rgb"]
        (s_m, h_m), (s_t, h_t) = texture(frame), texture(truth)
        rows.append({"step": step, "psnr": float(psnr(frame[None], truth[None])[0]), "std": s_m, "std_gt": s_t,
                     "hf": h_m, "hf_gt": h_t, "tokens": int(info["memory_tokens"])})
        if step % args.every == 0:
            cols.append(np.concatenate([frame, truth], 0))
        if terminated or truncated:
            break
    env.close()
    strip = np.concatenate(cols, 1)
    Image.fromarray(strip).resize((strip.shape[1] * 2, strip.shape[0] * 2), Image.NEAREST).save(out / "forward_strip.png")
    arr = {k: np.array([r[k] for r in rows]) for k in rows[0]}
    n = len(rows)
    halves = {"first": slice(0, n // 2), "second": slice(n // 2, n)}
    summary = {"steps": n, "scene_seed": args.scene_seed, "seed": args.seed, "world_model": args.world_model, "memory": args.memory}
    for name, sl in halves.items():
        summary[name] = {k: round(float(arr[k][sl].mean()), 2) for k in ("psnr", "std", "std_gt", "hf", "hf_gt")}
    summary["min_std_ratio"] = round(float((arr["std"] / np.maximum(arr["std_gt"], 1e-3)).min()), 3)
    summary["max_hf_ratio"] = round(float((arr["hf"] / np.maximum(arr["hf_gt"], 1e-3)).max()), 3)
    (out / "forward.json").write_text(json.dumps({"summary": summary, "per_step": rows}, indent=1))
    print(json.dumps(summary, indent=1))
    print(f"wrote {out / 'forward_strip.png'} (model over ground truth, every {args.every} steps) and {out / 'forward.json'}")


if __name__ == "__main__":
    main()
