"""The scripted explorer (mirage_gym.agents.ScriptedExplorer) against a random policy.

    python examples/explorer_vs_random.py                              # oracle world, 6 held-out rooms, 100 steps each
    python examples/explorer_vs_random.py --tour leave_and_return --video runs/explorer/episode.mp4
    python examples/explorer_vs_random.py --world-model tiny           # the learned world model

The explorer is the expert for imitation data (``mirage-gym collect --policy
explorer``). It plans next-best views from privileged simulator state (free
space, the room's visible surface, the coverage map); see its docstring.
The score is the explore return: the fraction of the room's visible surface
seen within ``max_episode_steps`` steps.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass
class Args:
    env_id: str = "MirageRoomOracle64-v0"
    world_model: str = ""  # override the id's world model: oracle | tiny | a path ("" = the id's)
    obs_size: int = 64
    max_episode_steps: int = 100
    episodes: int = 6  # per policy, in held-out rooms
    tour: str = "explore"  # explore | leave_and_return
    seed: int = 0
    video: str = ""  # write the explorer's first episode here (mp4)
    out: str = "runs/explorer"


def parse_args(argv=None) -> Args:
    import argparse

    from mirage_gym.cli import add_dataclass_args, from_namespace

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_dataclass_args(parser, Args)
    return from_namespace(Args, parser.parse_args(argv))


def main(args: Args) -> dict:
    import gymnasium as gym
    import numpy as np
    import torch

    import mirage_gym  # noqa: F401
    from mirage_gym.agents import RandomPolicy, ScriptedExplorer
    from mirage_gym.data.mp4 import write_video

    torch.set_num_threads(1)
    kwargs = {"obs_size": args.obs_size, "max_episode_steps": args.max_episode_steps, "scene_seeds": "eval"}
    if args.world_model:
        kwargs["world_model"] = args.world_model
    env = gym.make(args.env_id, **kwargs)
    results = {}
    for name in ("explorer", "random"):
        returns, steps, start = [], 0, time.perf_counter()
        for e in range(args.episodes):
            obs, info = env.reset(seed=args.seed + e)
            policy = ScriptedExplorer(env, tour=args.tour, seed=e) if name == "explorer" else RandomPolicy(seed=e)
            frames, total, done = [obs["rgb"]], 0.0, False
            while not done:
                obs, reward, terminated, truncated, info = env.step(policy.act(obs))
                total += reward
                steps += 1
                done = terminated or truncated
                if args.video and name == "explorer" and e == 0:
                    frames.extend(info["frames"])
            returns.append(round(float(total), 4))
            if args.video and name == "explorer" and e == 0:
                write_video(args.video, np.stack(frames), fps=env.unwrapped.config.fps, scale=4)
        results[name] = {"returns": returns, "mean": round(float(np.mean(returns)), 4),
                         "steps_per_s": round(steps / (time.perf_counter() - start), 1)}
        print(f"{name:>9}: mean return {results[name]['mean']:.3f}  {returns}  ({results[name]['steps_per_s']} steps/s)")
    env.close()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = {"args": asdict(args), **results}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main(parse_args())
