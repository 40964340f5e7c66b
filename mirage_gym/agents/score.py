"""The transfer score: is a world model worth training a policy in?

    mirage-gym score                     # the default protocol (below); about 45 min on one CPU core
    mirage-gym score --quick             # smoke size: a minute
    mirage-gym score --model path/to/weights --worlds tiny oracle   # score other weights of the learned model

Protocol (DIAMOND's: a policy trained only inside the model, scored in the
real environment):

1. Train the same PPO (stable-baselines3; mirage_gym.agents.ppo_goal) on the
   object-goal task in each world of ``--worlds`` for the same number of
   env steps, ``--seeds`` training seeds each:
   ``tiny`` = MirageRoomObjectGoal-v0 (the learned model, latent memory),
   ``tiny-none`` = the same with ``memory="none"``, ``oracle`` =
   MirageRoomObjectGoalOracle64-v0 (exact renders), ``tiny-rgb`` = the
   pixel-space memory. Training rooms are the training seeds (< 1,000,000);
   a room serves ``--room-episodes`` consecutive episodes, each aimed at
   another of its objects (rooms take ~0.1-0.3 s to build).
2. Evaluate every policy in the *oracle* world on the same held-out
   episodes (rooms from seed 1,000,000 up; episode e resets with seed
   ``EVAL_SEED + e``), with sampled actions (seeded per episode).
3. Report success rate and return, mean over training seeds with a 95%
   t-interval over seeds; the transfer ratio (success trained-in-world /
   success trained-in-oracle, 95% bootstrap interval over seeds); and, on
   the same episodes, the random policy (over the agent's three moves and
   over all nine actions), the blind pose-only policy and the privileged
   expert, with 95% intervals over episodes (Wilson for success, t for
   return).

Writes ``<out>/score.json`` (everything, per episode), ``score.md`` (the
table), ``score.png`` (bar chart), the trained models and training curves.
A rerun into the same ``--out`` with the same training settings keeps the
policies already trained there (``models/<world>_seed<n>.zip`` + ``.json``),
so an interrupted score resumes at the next training run.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

WORLDS = {  # name -> (env id, env kwargs)
    "tiny": ("MirageRoomObjectGoal-v0", {}),
    "tiny-none": ("MirageRoomObjectGoal-v0", {"memory": "none"}),
    "tiny-rgb": ("MirageRoomObjectGoal-v0", {"memory": "rgb"}),
    "oracle": ("MirageRoomObjectGoalOracle64-v0", {}),
}
EVAL_ID = "MirageRoomObjectGoalOracle64-v0"
EVAL_SEED = 0  # held-out episode e: env.reset(seed=EVAL_SEED + e) in scene_seeds="eval"


@dataclass
class ScoreArgs:
    worlds: list = field(default_factory=lambda: ["tiny", "tiny-none", "oracle"])  # worlds to train in (tiny, tiny-none, tiny-rgb, oracle)
    model: str = ""  # weights of the learned world (a path for world_model); "" = the shipped tiny model
    train_steps: int = 12_288  # env steps of PPO training per world and seed
    seeds: int = 2  # training seeds per world (the intervals of PPO rows are over these)
    eval_episodes: int = 100  # held-out episodes, the same for every policy
    num_envs: int = 16  # episodes batched per training vector env (one world-model call per step)
    n_steps: int = 32  # PPO rollout length per env (num_envs x n_steps transitions per update)
    room_episodes: int = 4  # training episodes per room (each aimed at another of its objects)
    threads: int = 1  # torch threads (keep 1 on a shared CPU)
    out: str = "runs/score"
    quick: bool = False  # smoke size: 2 seeds x 256 steps, 4 episodes, 2 envs


QUICK = {"train_steps": 256, "seeds": 2, "eval_episodes": 4, "num_envs": 4, "n_steps": 32}


def world_env(name: str, model: str = "") -> tuple[str, dict]:
    if name not in WORLDS:
        raise ValueError(f"unknown world {name!r}; choose from {sorted(WORLDS)}")
    env_id, kwargs = WORLDS[name]
    kwargs = dict(kwargs)
    if model and name != "oracle":
        kwargs["world_model"] = model
    return env_id, kwargs


# ----------------------------------------------------------------------------- training


def train(world: str, seed: int, args: ScoreArgs, out: Path) -> dict:
    """PPO in ``world`` for ``args.train_steps`` env steps; returns the model path, time and training curve."""
    import torch
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.vec_env import VecMonitor, VecNormalize

    from .ppo_goal import NavigationActions, PPOConfig, make_ppo
    from .sb3_vec import MirageSB3VecEnv

    torch.set_num_threads(args.threads)
    env_id, kwargs = world_env(world, args.model)
    cfg = PPOConfig(num_envs=args.num_envs, n_steps=args.n_steps)
    venv = MirageSB3VecEnv(env_id, num_envs=cfg.num_envs, room_episodes=args.room_episodes, **kwargs)
    venv.seed(seed)
    venv = VecNormalize(NavigationActions(VecMonitor(venv)), norm_obs=False, norm_reward=True, gamma=cfg.gamma)
    model = make_ppo(venv, cfg, seed)

    class Curve(BaseCallback):
        def __init__(self):
            super().__init__()
            self.rows = []  # (env steps, success, return)

        def _on_step(self):
            for info in self.locals["infos"]:
                if "episode" in info:
                    self.rows.append((self.num_timesteps, bool(info.get("is_success", False)), float(info["episode"]["r"])))
            return True

    curve = Curve()
    t0 = time.perf_counter()
    model.learn(total_timesteps=args.train_steps, callback=curve)
    seconds = time.perf_counter() - t0
    path = out / "models" / f"{world}_seed{seed}.zip"
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    venv.close()
    return {"world": world, "seed": seed, "model": str(path), "train_s": round(seconds, 1),
            "env_steps": int(model.num_timesteps), "curve": curve.rows}


def _training_args(args: ScoreArgs) -> dict:
    """What a trained policy depends on: a rerun with these unchanged reuses it."""
    return {k: getattr(args, k) for k in ("model", "train_steps", "num_envs", "n_steps", "room_episodes")}


def finished_run(world: str, seed: int, args: ScoreArgs, out: Path) -> dict | None:
    """The record of a policy an interrupted or earlier run of the same
    protocol trained into ``out`` (so a long score resumes), else None."""
    record, model = out / "models" / f"{world}_seed{seed}.json", out / "models" / f"{world}_seed{seed}.zip"
    if not (record.is_file() and model.is_file()):
        return None
    run = json.loads(record.read_text())
    return run if run.pop("args", None) == _training_args(args) else None


# ----------------------------------------------------------------------------- evaluation


class PPOAgent:
    """A trained policy acting in the eval env: sampled actions, mapped to the env's moves."""

    def __init__(self, path: str, seed: int):
        from stable_baselines3 import PPO

        self.model = PPO.load(path, device="cpu")
        self.seed = seed

    def start(self, episode: int) -> None:
        self.model.set_random_seed(self.seed * 100_003 + episode)

    def __call__(self, obs) -> int:
        from .ppo_goal import env_action

        action, _ = self.model.predict(obs, deterministic=False)
        return env_action(int(action))


def baselines(env) -> dict:
    """name -> factory(episode) of a callable obs -> action."""
    from .explorer import RandomPolicy
    from .objectgoal import ObjectGoalExpert, PoseOnlyPolicy
    from .ppo_goal import NAV_ACTIONS

    class RandomMoves:
        def __init__(self, seed):
            self.rng = np.random.default_rng(seed)

        def __call__(self, obs):
            return int(NAV_ACTIONS[int(self.rng.integers(len(NAV_ACTIONS)))])

    return {
        "random (3 moves)": lambda e: RandomMoves(e),
        "random (9 actions)": lambda e: RandomPolicy(seed=e),
        "pose-only (blind)": lambda e: PoseOnlyPolicy(bearing="random", seed=e),
        "pose-only, straight ahead": lambda e: PoseOnlyPolicy(bearing="straight", seed=e),
        "expert (privileged)": lambda e: ObjectGoalExpert(env),
    }


def evaluate(policies: dict, episodes: int) -> dict:
    """Run every policy on the same held-out episodes in the oracle world.
    Episodes outer, policies inner: each room is built once."""
    import gymnasium as gym

    import mirage_gym  # noqa: F401

    env = gym.make(EVAL_ID, scene_seeds="eval")
    makers = {**policies, **baselines(env)}
    results = {name: {"success": [], "return": [], "steps": []} for name in makers}
    for e in range(episodes):
        for name, make in makers.items():
            obs, _ = env.reset(seed=EVAL_SEED + e)
            policy = make(e)
            if hasattr(policy, "start"):
                policy.start(e)
            total, done, steps, info = 0.0, False, 0, {}
            while not done:
                obs, reward, terminated, truncated, info = env.step(policy(obs))
                total, steps, done = total + reward, steps + 1, terminated or truncated
            results[name]["success"].append(bool(info.get("is_success", False)))
            results[name]["return"].append(round(float(total), 4))
            results[name]["steps"].append(steps)
    env.close()
    return results


# ----------------------------------------------------------------------------- statistics


def t_interval(values) -> tuple[float, float, float]:
    """Mean and 95% t-interval (Student's t with n - 1 degrees of freedom)."""
    from scipy import stats

    x = np.asarray(values, dtype=float)
    m = float(x.mean())
    if len(x) < 2:
        return m, float("nan"), float("nan")
    h = float(stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return m, m - h, m + h


def wilson(successes: int, n: int) -> tuple[float, float, float]:
    """Success rate and its 95% Wilson score interval."""
    z = 1.959964
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return p, max(0.0, centre - half), min(1.0, centre + half)


def _clip01(v: tuple) -> tuple:
    """A rate's interval kept within [0, 1] (a t-interval over few seeds can step outside)."""
    m, lo, hi = v
    return (m, max(0.0, lo), min(1.0, hi)) if math.isfinite(lo) else v


def bootstrap_ratio(num, den, draws: int = 4000, seed: int = 0) -> tuple[float, float, float]:
    """mean(num) / mean(den) and a 95% percentile interval, resampling the seeds of each side."""
    num, den = np.asarray(num, float), np.asarray(den, float)
    ratio = float(num.mean() / den.mean()) if den.mean() > 0 else float("nan")
    rng = np.random.default_rng(seed)
    a = num[rng.integers(len(num), size=(draws, len(num)))].mean(1)
    b = den[rng.integers(len(den), size=(draws, len(den)))].mean(1)
    ok = b > 0
    if not ok.any():
        return ratio, float("nan"), float("nan")
    lo, hi = np.percentile(a[ok] / b[ok], [2.5, 97.5])
    return ratio, float(lo), float(hi)


def summarise(args: ScoreArgs, runs: list, results: dict) -> dict:
    rows = []
    per_seed = {}
    for world in args.worlds:
        mine = [r for r in runs if r["world"] == world]
        succ = [float(np.mean(results[f"ppo:{world}:{r['seed']}"]["success"])) for r in mine]
        ret = [float(np.mean(results[f"ppo:{world}:{r['seed']}"]["return"])) for r in mine]
        per_seed[world] = {"success": succ, "return": ret}
        rows.append({"policy": f"PPO trained in {world}", "kind": "trained", "world": world,
                     "success": _clip01(t_interval(succ)), "return": t_interval(ret), "per_seed_success": succ,
                     "train_s": [r["train_s"] for r in mine]})
    for name in baselines(None):
        s, ret = results[name]["success"], results[name]["return"]
        rows.append({"policy": name, "kind": "baseline", "success": wilson(int(np.sum(s)), len(s)), "return": t_interval(ret)})
    ratios = {}
    if "oracle" in per_seed:
        for world in args.worlds:
            if world != "oracle":
                ratios[world] = bootstrap_ratio(per_seed[world]["success"], per_seed["oracle"]["success"])
    return {"rows": rows, "transfer_ratio": ratios}


# ----------------------------------------------------------------------------- reports


def markdown(args: ScoreArgs, summary: dict, meta: dict) -> str:
    def fmt(v):
        m, lo, hi = v
        return f"{m:.2f} [{lo:.2f}, {hi:.2f}]" if math.isfinite(lo) else f"{m:.2f}"

    lines = [f"Object goal, evaluated in the oracle world on {args.eval_episodes} held-out episodes "
             f"(`{EVAL_ID}`, rooms from seed 1,000,000). PPO: {args.train_steps:,} env steps per world and seed, "
             f"{args.seeds} training seeds; [95% interval] over seeds for PPO, over episodes for the baselines.", "",
             "| policy | success | return | transfer ratio |", "|---|---:|---:|---:|"]
    for row in summary["rows"]:
        ratio = ""
        if row["kind"] == "trained":
            ratio = "1 (reference)" if row["world"] == "oracle" else (fmt(summary["transfer_ratio"][row["world"]])
                                                                      if row["world"] in summary["transfer_ratio"] else "")
        lines.append(f"| {row['policy']} | {fmt(row['success'])} | {fmt(row['return'])} | {ratio} |")
    lines += ["", f"Transfer ratio: success of PPO trained in the world / success of PPO trained in the oracle "
                  f"(95% bootstrap interval over training seeds). Wall time {meta['wall_min']:.1f} min "
                  f"(training {meta['train_min']:.1f} min, evaluation {meta['eval_min']:.1f} min)."]
    return "\n".join(lines) + "\n"


def bar_chart(args: ScoreArgs, summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = summary["rows"]
    fig, ax = plt.subplots(figsize=(8.5, 4.2), dpi=110)
    colours = {"trained": "tab:blue", "baseline": "tab:gray"}
    for i, row in enumerate(rows):
        m, lo, hi = row["success"]
        colour = "tab:green" if row["policy"].startswith("expert") else colours[row["kind"]]
        if row.get("world") == "oracle":
            colour = "tab:orange"
        err = None if not math.isfinite(lo) else [[max(0.0, m - lo)], [max(0.0, hi - m)]]
        ax.bar(i, m, color=colour, yerr=err, capsize=4)
        ax.text(i, m + 0.02, f"{m:.2f}", ha="center", fontsize=8)
        if row["kind"] == "trained":
            ax.scatter([i] * len(row["per_seed_success"]), row["per_seed_success"], color="k", s=10, zorder=3)
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([r["policy"].replace("PPO trained in ", "PPO in ") for r in rows], rotation=25, ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("success rate (oracle world, held-out rooms)")
    ax.set_title(f"Transfer score: PPO {args.train_steps:,} steps x {args.seeds} seeds per world, "
                 f"{args.eval_episodes} held-out episodes (bars: 95% interval; dots: seeds)", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# ----------------------------------------------------------------------------- main


def main(args: ScoreArgs, given: set | None = None) -> dict:
    import torch

    if args.quick:  # the smoke size, unless a flag was given explicitly
        for k, v in QUICK.items():
            if given is None or k not in given:
                setattr(args, k, v)
    for w in args.worlds:
        world_env(w)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    runs = []
    for world in args.worlds:
        for seed in range(args.seeds):
            run = finished_run(world, seed, args, out)
            if run is None:
                run = train(world, seed, args, out)
                (out / "models" / f"{world}_seed{seed}.json").write_text(json.dumps({"args": _training_args(args), **run}))
                print(f"trained in {world}, seed {seed}: {run['env_steps']} steps in {run['train_s']:.0f} s", flush=True)
            else:
                print(f"kept the policy trained in {world}, seed {seed} by an earlier run ({run['model']})", flush=True)
            runs.append(run)
    t1 = time.perf_counter()
    policies = {f"ppo:{r['world']}:{r['seed']}": (lambda e, r=r: PPOAgent(r["model"], r["seed"])) for r in runs}
    results = evaluate(policies, args.eval_episodes)
    t2 = time.perf_counter()
    summary = summarise(args, runs, results)
    meta = {"wall_min": (t2 - t0) / 60, "train_min": (t1 - t0) / 60, "eval_min": (t2 - t1) / 60}
    report = {"args": asdict(args), "eval_env": EVAL_ID, "eval_seed": EVAL_SEED, "meta": meta,
              "summary": summary, "runs": runs, "episodes": results}
    (out / "score.json").write_text(json.dumps(report, indent=1))
    table = markdown(args, summary, meta)
    (out / "score.md").write_text(table)
    bar_chart(args, summary, out / "score.png")
    print(table)
    return report


if __name__ == "__main__":
    import argparse

    from mirage_gym.cli import _add_args_tracking_explicit, _explicit_namespace

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_args_tracking_explicit(parser, ScoreArgs)
    main(*_explicit_namespace(ScoreArgs, parser.parse_args()))
