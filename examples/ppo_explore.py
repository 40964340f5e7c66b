"""PPO (stable-baselines3, MultiInputPolicy) on MirageRoom's explore task.

    python examples/ppo_explore.py                                  # oracle world, ~7 min on one CPU core
    python examples/ppo_explore.py --world-model tiny               # the same script on MirageRoom-v0 (the learned world)
    python examples/ppo_explore.py --total-timesteps 512 --num-envs 2 --n-steps 64 --obs-size 32   # smoke test
    python examples/ppo_explore.py --load runs/ppo/ppo_mirage.zip --total-timesteps 0   # evaluate a saved model, redraw

One batched MirageRoomVectorEnv (N episodes, one world-model call per step)
is adapted to SB3 by ``MirageSB3VecEnv``. Episodes are ``max_episode_steps``
long, so an episode's return is the fraction of the room's visible surface
seen in that many steps; the reward curve (return vs env steps, with the
random policy and the scripted explorer as reference lines) is written to
``<out>/reward_curve.png`` and ``.csv``.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass
class Args:
    env_id: str = ""  # "" = the id of --world-model (MirageRoom-v0 for tiny or a weights folder), else MirageRoomOracle64-v0
    world_model: str = ""  # "oracle", "tiny", a weights folder ("" = the id's own)
    obs_size: int = 64  # SB3's NatureCNN needs >= 36; our small CNN below works from 16
    max_episode_steps: int = 100  # return = coverage reached in this many steps
    total_timesteps: int = 24_000
    num_envs: int = 8  # episodes batched in one vector env
    n_steps: int = 128  # rollout length per env (rollout = num_envs * n_steps)
    batch_size: int = 256
    n_epochs: int = 4
    learning_rate: float = 3e-4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    ent_coef: float = 0.01
    clip_range: float = 0.2
    features_dim: int = 256
    seed: int = 1
    threads: int = 1  # torch threads (keep 1 on a shared CPU)
    eval_episodes: int = 6  # after training: PPO (sampled and greedy) vs random vs explorer on held-out rooms
    load: str = ""  # start from this saved model (with --total-timesteps 0: just evaluate it and redraw the curve)
    out: str = "runs/ppo"
    curve_png: str = ""  # also copy the reward curve here (e.g. docs/ppo_reward_curve.png)


def parse_args(argv=None) -> Args:
    import argparse

    from mirage_gym.cli import add_dataclass_args, from_namespace

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_dataclass_args(parser, Args)
    return from_namespace(Args, parser.parse_args(argv))


def main(args: Args) -> dict:
    import numpy as np
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
    from stable_baselines3.common.vec_env import VecMonitor, VecNormalize
    from torch import nn

    import mirage_gym  # noqa: F401  (registers the env ids)
    from mirage_gym.agents import RandomPolicy, ScriptedExplorer
    from mirage_gym.agents.sb3_vec import MirageSB3VecEnv

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    args.env_id, env_kwargs = resolve_env(args)

    # --- a small CNN for the frame + an MLP for the pose (works for any frame size >= 16)
    class RoomFeatures(BaseFeaturesExtractor):
        def __init__(self, observation_space, features_dim: int = 256):
            super().__init__(observation_space, features_dim)
            c = observation_space["rgb"].shape[0]  # SB3 transposes images to channels-first
            self.cnn = nn.Sequential(
                nn.Conv2d(c, 32, 5, stride=2, padding=2), nn.ReLU(),
                nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),
                nn.Conv2d(64, 64, 3, stride=2, padding=1), nn.ReLU(),
                nn.AdaptiveAvgPool2d(4), nn.Flatten())
            self.pose = nn.Sequential(nn.Linear(observation_space["pose"].shape[0], 64), nn.ReLU())
            self.head = nn.Sequential(nn.Linear(64 * 16 + 64, features_dim), nn.ReLU())

        def forward(self, obs):
            return self.head(torch.cat([self.cnn(obs["rgb"]), self.pose(obs["pose"])], 1))

    # --- logging every finished episode's return (VecMonitor puts it in info["episode"])
    class CurveLogger(BaseCallback):
        def __init__(self):
            super().__init__()
            self.rows: list[tuple[int, float, float]] = []  # (env steps, return, wall seconds)
            self.start = time.perf_counter()

        def _on_step(self) -> bool:
            for info in self.locals["infos"]:
                if "episode" in info:
                    self.rows.append((self.num_timesteps, float(info["episode"]["r"]), time.perf_counter() - self.start))
            return True

    venv = MirageSB3VecEnv(args.env_id, num_envs=args.num_envs, **env_kwargs)
    venv.seed(args.seed)
    venv = VecMonitor(venv)  # raw returns for the curve
    venv = VecNormalize(venv, norm_obs=False, norm_reward=True, gamma=args.gamma)  # rewards are ~1e-3 per step

    if args.load:
        model = PPO.load(args.load, env=venv, device="cpu")
    else:
        model = PPO(
            "MultiInputPolicy", venv, n_steps=args.n_steps, batch_size=args.batch_size, n_epochs=args.n_epochs,
            learning_rate=args.learning_rate, gamma=args.gamma, gae_lambda=args.gae_lambda, ent_coef=args.ent_coef,
            clip_range=args.clip_range, seed=args.seed, device="cpu", verbose=0,
            policy_kwargs={"features_extractor_class": RoomFeatures, "features_extractor_kwargs": {"features_dim": args.features_dim}},
        )
    logger = CurveLogger()
    t0 = time.perf_counter()
    if args.total_timesteps > 0:
        model.learn(total_timesteps=args.total_timesteps, callback=logger, progress_bar=_has_progress_bar())
        model.save(out / "ppo_mirage.zip")
    train_s = time.perf_counter() - t0
    venv.close()

    # --- evaluation on held-out rooms: PPO (deterministic) vs the random policy vs the scripted explorer
    import gymnasium as gym

    def evaluate(make_policy, episodes: int) -> list[float]:
        env = gym.make(args.env_id, scene_seeds="eval", **env_kwargs)
        returns = []
        for e in range(episodes):
            obs, _ = env.reset(seed=10_000 + e)
            policy = make_policy(env, e)
            total, done = 0.0, False
            while not done:
                obs, reward, terminated, truncated, _ = env.step(policy(obs))
                total += reward
                done = terminated or truncated
            returns.append(total)
        env.close()
        return returns

    def ppo_policy(deterministic: bool):
        return lambda env, e: (lambda obs: int(model.predict(obs, deterministic=deterministic)[0]))

    scores = {}
    if args.eval_episodes > 0:
        model.set_random_seed(args.seed)
        scores = {
            "ppo": evaluate(ppo_policy(False), args.eval_episodes),  # sampled actions, as in training
            "ppo_greedy": evaluate(ppo_policy(True), args.eval_episodes),
            "random": evaluate(lambda env, e: RandomPolicy(seed=e), args.eval_episodes),
            "explorer": evaluate(lambda env, e: ScriptedExplorer(env, seed=e), args.eval_episodes),
        }

    # --- the reward curve (a run that only evaluates a loaded model redraws the saved curve)
    rows = logger.rows
    if not rows and (out / "reward_curve.csv").is_file():
        with open(out / "reward_curve.csv") as f:
            rows = [(int(r[0]), float(r[1]), float(r[2])) for r in list(csv.reader(f))[1:]]
    with open(out / "reward_curve.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["env_steps", "episode_return", "wall_s"])
        w.writerows(rows)
    curve = _plot_curve(rows, scores, args, out / "reward_curve.png")
    if args.curve_png:
        Path(args.curve_png).parent.mkdir(parents=True, exist_ok=True)
        Path(args.curve_png).write_bytes((out / "reward_curve.png").read_bytes())

    summary = {
        "args": asdict(args), "train_s": round(train_s, 1), "env_steps": int(model.num_timesteps),
        "steps_per_s": round(args.total_timesteps / train_s, 1) if args.total_timesteps > 0 else None,
        "episodes": len(rows), "curve": curve,
        "eval_mean": {k: round(float(np.mean(v)), 3) for k, v in scores.items()},
        "eval_returns": {k: [round(float(x), 3) for x in v] for k, v in scores.items()},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps({k: summary[k] for k in ("train_s", "env_steps", "steps_per_s", "episodes", "curve", "eval_mean")}, indent=1))
    return summary


# The id whose configuration each world model is trained and evaluated with: the
# oracle's fast 64x64 one-frame variant; every learned model MirageRoom-v0's
# (4 frames per step, the fill memory rule).
ORACLE_ENV_ID, LEARNED_ENV_ID = "MirageRoomOracle64-v0", "MirageRoom-v0"


def resolve_env(args: Args) -> tuple[str, dict]:
    """The env id and gym.make kwargs for ``args``; prints every setting the
    script overrides, so a run never silently differs from its id."""
    from gymnasium.envs.registration import registry

    import mirage_gym  # noqa: F401  (registers the env ids)
    from mirage_gym.envs.config import EnvConfig

    env_id = args.env_id or (ORACLE_ENV_ID if args.world_model in ("", "oracle") else LEARNED_ENV_ID)
    if env_id not in registry:
        raise SystemExit(f"--env-id {env_id!r} is not registered; use one of the MirageRoom ids (mirage_gym/envs_configs/)")
    spec = registry[env_id]
    env_kwargs = {"obs_size": args.obs_size, "max_episode_steps": args.max_episode_steps}
    if args.world_model and args.world_model != spec.kwargs.get("world_model"):
        env_kwargs["world_model"] = args.world_model
    own = {**EnvConfig.from_kwargs(**spec.kwargs).to_dict(), "max_episode_steps": spec.max_episode_steps}
    own["obs_size"] = own["obs_size"] or "native"
    changed = [f"{k} {own.get(k)!r} -> {v!r}" for k, v in env_kwargs.items() if own.get(k) != v]
    kept = {k: own[k] for k in ("world_model", "frames_per_step", "memory_update")}
    print(f"ppo.py: env {env_id} {kept}; overridden: {', '.join(changed) or 'nothing'}", flush=True)
    if "world_model" in env_kwargs and (spec.kwargs.get("world_model") == "oracle") != (args.world_model == "oracle"):
        print(f"ppo.py: WARNING: {env_id} is configured for world_model={spec.kwargs.get('world_model')!r}; running "
              f"{args.world_model!r} with that id's other settings (pass --env-id {LEARNED_ENV_ID} for the learned "
              "world's configuration)", file=sys.stderr, flush=True)
    return env_id, env_kwargs


def _has_progress_bar() -> bool:
    try:
        import rich  # noqa: F401  (SB3's progress bar needs tqdm and rich)
        import tqdm  # noqa: F401
    except ImportError:
        return False
    return sys.stderr.isatty()


def _plot_curve(rows, scores, args: Args, path: Path) -> dict:
    """Episode returns (dots) and their running mean vs env steps; reference lines for baselines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    summary = {}
    if rows:
        steps = np.array([r[0] for r in rows])
        rets = np.array([r[1] for r in rows])
        k = max(1, min(len(rets) // 6, 4 * args.num_envs))
        smooth = np.convolve(rets, np.ones(k) / k, mode="valid")
        ax.scatter(steps, rets, s=6, alpha=0.3, color="tab:blue", label="PPO training episodes (train rooms)")
        ax.plot(steps[k - 1:], smooth, color="tab:blue", lw=2, label=f"PPO, running mean of {k}")
        first, last = rets[:k].mean(), rets[-k:].mean()
        summary = {"first_mean": round(float(first), 3), "last_mean": round(float(last), 3), "window": int(k)}
    lines = {"explorer": ("scripted explorer", "--", "tab:green"), "ppo": ("PPO, sampled", "-.", "tab:blue"),
             "ppo_greedy": ("PPO, greedy", ":", "tab:purple"), "random": ("random", "--", "tab:gray")}
    for name, (label, style, colour) in lines.items():
        if name in scores:
            ax.axhline(np.mean(scores[name]), ls=style, color=colour, lw=1.2,
                       label=f"{label}, {len(scores[name])} held-out rooms: {np.mean(scores[name]):.2f}")
    world = args.world_model or args.env_id
    ax.set_title(f"PPO on MirageRoom explore ({world}, {args.obs_size}px, {args.max_episode_steps}-step episodes)", fontsize=9)
    ax.set_xlabel("env steps")
    ax.set_ylabel("episode return (fraction of room seen)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return summary


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main(parse_args())
