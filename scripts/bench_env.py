"""Steps per second of an env id on this machine (a script, not a timed test).

    python scripts/bench_env.py --env-id MirageRoomOracle64-v0 --steps 2000
    python scripts/bench_env.py --breakdown     # where a step's CPU time goes

``--breakdown`` (single env) times the run, runs it again recording its
ground-truth renders and memory writes, and times those alone on the same
inputs (each write into a copy of the memory as it was before it); a reset
(a new room: its build and its visible-surface sweep) is spread over the
run's episode length. "Everything else" is the step's remainder: coverage,
the oracle's latents and grids, collisions, observations, info.
"""

import argparse
import copy
import time

import gymnasium as gym
import numpy as np
import torch

import mirage_gym  # noqa: F401  (registers the ids)


def run(env, actions) -> tuple[float, float, int]:
    """(wall s, CPU s, episodes ended) of stepping ``actions``, resetting at episode ends."""
    ended = 0
    start, cpu = time.perf_counter(), time.process_time()
    for a in actions:
        _, _, terminated, truncated, _ = env.step(int(a))
        if terminated or truncated:
            env.reset()
            ended += 1
    return time.perf_counter() - start, time.process_time() - cpu, ended


def cpu_ms(fn, calls) -> float:
    """Mean CPU milliseconds of ``fn(*args)`` over ``calls``."""
    t = time.process_time()
    for args in calls:
        fn(*args)
    return (time.process_time() - t) / max(1, len(calls)) * 1e3


def breakdown(env, actions) -> None:
    """Record one run's renders and memory writes, then time each alone on the same inputs."""
    from mirage_gym.scenes import ProceduralRoom

    env.reset(seed=0)
    _, cpu, ended = run(env, actions)  # the timed run; below, the same run again, recorded
    env.reset(seed=0)
    sim = env.unwrapped.sim
    renders, writes = [], []
    render, write = ProceduralRoom.render, sim._write

    def recording_render(scene, *args, **kwargs):
        renders.append((scene, args, kwargs))
        return render(scene, *args, **kwargs)

    def recording_write(ep, *args):
        writes.append((copy.deepcopy(ep.memory), args))  # the memory as it was just before this write
        return write(ep, *args)

    ProceduralRoom.render, sim._write = recording_render, recording_write
    try:
        run(env, actions)
    finally:
        ProceduralRoom.render, sim._write = render, write
    n = len(actions)
    step_ms = cpu / n * 1e3
    render_ms = cpu_ms(lambda scene, args, kwargs: render(scene, *args, **kwargs), renders) * len(renders) / n

    class Episode:  # what Simulation._write reads of an episode
        memory = None

    def replay(memory, args):
        Episode.memory = memory
        write(Episode, *args)

    with torch.inference_mode():  # as in the env's step
        write_ms = cpu_ms(replay, writes) * len(writes) / n
    steps_per_episode = n / ended if ended else (env.spec.max_episode_steps or n)
    t = time.process_time()
    for i in range(5):
        env.reset(seed=1000 + i)
    reset_ms = (time.process_time() - t) / 5 * 1e3
    reset_per_step = reset_ms / steps_per_episode
    rest = step_ms - render_ms - write_ms - reset_per_step
    print(f"CPU ms per step: {step_ms:.2f} in all ({1e3 / step_ms:.0f} steps per CPU-second, {n} steps)")
    print(f"  ground-truth renders {render_ms:.2f}  ({len(renders) / n:.2f} per step, resets' start frames included)")
    print(f"  memory writes        {write_ms:.2f}  ({len(writes) / n:.2f} per step)")
    print(f"  resets (new rooms)   {reset_per_step:.2f}  ({reset_ms:.0f} ms each, one per {steps_per_episode:.0f} steps)")
    print(f"  everything else      {rest:.2f}  (coverage, the oracle's latents and grids, collisions, obs, info)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env-id", default="MirageRoomOracle64-v0")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--breakdown", action="store_true", help="time the step's parts alone (see above)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    env = gym.make(args.env_id)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    actions = rng.integers(0, env.action_space.n, args.steps)
    if args.breakdown:
        breakdown(env, actions)
        return
    wall, cpu, _ = run(env, actions)
    print(f"{args.env_id}: {args.steps / wall:.0f} steps/s wall, {args.steps / cpu:.0f} steps/s per CPU-second "
          f"({args.steps} steps, {args.threads} torch thread(s))")


if __name__ == "__main__":
    main()
