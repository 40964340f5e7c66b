"""Steps per second of an env id on this machine (a script, not a timed test).

    python scripts/bench_env.py --env-id MirageRoomOracle64-v0 --steps 2000
"""

import argparse
import time

import gymnasium as gym
import numpy as np
import torch

import mirage_gym  # noqa: F401  (registers the ids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--env-id", default="MirageRoomOracle64-v0")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    env = gym.make(args.env_id)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    actions = rng.integers(0, env.action_space.n, args.steps)
    start, cpu = time.perf_counter(), time.process_time()
    for a in actions:
        _, _, terminated, truncated, _ = env.step(int(a))
        if terminated or truncated:
            env.reset()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(f"{args.env_id}: {args.steps / wall:.0f} steps/s wall, {args.steps / cpu:.0f} steps/s per CPU-second "
          f"({args.steps} steps, {args.threads} torch thread(s))")


if __name__ == "__main__":
    main()
