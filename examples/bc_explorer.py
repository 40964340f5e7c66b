"""Behaviour cloning of the scripted explorer on MirageRoom, scored against it.

    python examples/bc_explorer.py                                   # collect expert data, train, evaluate (~6 min)
    python examples/bc_explorer.py --dataset runs/data               # train on a `mirage-gym collect` folder (npz or minari)
    python examples/bc_explorer.py --world-model tiny                # the learned world model

1. Data: ``--dataset`` (a folder written by ``mirage-gym collect``, format npz
   or minari), or, if empty, ``expert_episodes`` episodes of the scripted
   explorer collected now into ``<out>/expert`` (npz, via mirage_gym.data).
2. Model: a small CNN over the frame, an MLP over the pose and the previous
   action (the expert plans over many steps; the previous action is the
   one piece of that state the student can know), a linear head over the 9
   actions; cross-entropy on (observation, expert action) pairs.
3. Evaluation: the BC policy, the expert and a random policy, each for
   ``eval_episodes`` episodes in held-out rooms (scene seeds >= 1,000,000),
   same horizon; the score is the explore return (fraction of the room seen).
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
    max_episode_steps: int = 100  # episode length for collection and evaluation
    dataset: str = ""  # a `mirage-gym collect` folder; "" = collect expert data now
    expert_episodes: int = 16  # when collecting now
    workers: int = 1  # collection processes
    train_steps: int = 1500  # gradient steps
    batch_size: int = 64
    learning_rate: float = 3e-4
    weight_decay: float = 1e-4
    val_fraction: float = 0.1  # episodes held out to report action accuracy
    prev_action: bool = True  # feed the previous action to the policy
    sample: bool = True  # act by sampling the policy's softmax (else argmax)
    eval_episodes: int = 6
    seed: int = 0
    threads: int = 1
    out: str = "runs/bc"


def parse_args(argv=None) -> Args:
    import argparse

    from mirage_gym.cli import add_dataclass_args, from_namespace

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_dataclass_args(parser, Args)
    return from_namespace(Args, parser.parse_args(argv))


def load_pairs(folder: Path):
    """(rgb uint8 (N,H,W,3), pose (N,7), prev_action (N,), action (N,), episode index (N,)) from a collect folder."""
    import numpy as np

    rgb, pose, prev, act, epi = [], [], [], [], []

    def add(e, obs_rgb, obs_pose, actions):
        T = len(actions)
        rgb.append(obs_rgb[:T])
        pose.append(obs_pose[:T])
        act.append(actions.astype(np.int64))
        prev.append(np.concatenate([[0], actions[:-1]]).astype(np.int64))  # 0 = STAY before the first step
        epi.append(np.full(T, e))

    if (folder / "npz").is_dir():
        from mirage_gym.data import npz

        for e, ep in enumerate(npz.load_dataset(folder)):
            add(e, ep["rgb"], ep["pose"], ep["actions"])
    elif (folder / "minari").is_dir():
        from mirage_gym.data import minari_io

        dataset = minari_io.load(folder)
        for e, ep in enumerate(dataset.iterate_episodes()):
            add(e, ep.observations["rgb"], ep.observations["pose"], ep.actions)
    else:
        raise FileNotFoundError(f"{folder} has neither npz/ nor minari/: pass a `mirage-gym collect` output folder")
    return tuple(np.concatenate(x) for x in (rgb, pose, prev, act, epi))


def main(args: Args) -> dict:
    import gymnasium as gym
    import numpy as np
    import torch
    import torch.nn.functional as F
    from torch import nn

    import mirage_gym  # noqa: F401
    from mirage_gym import Action
    from mirage_gym.agents import RandomPolicy, ScriptedExplorer
    from mirage_gym.data import CollectArgs, collect_dataset

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env_kwargs = {"obs_size": args.obs_size}
    if args.world_model:
        env_kwargs["world_model"] = args.world_model
    n_actions = len(Action)

    # --- 1. data: the explorer's episodes (collected through the same code path as `mirage-gym collect`)
    t0 = time.perf_counter()
    folder = Path(args.dataset) if args.dataset else out / "expert"
    if not args.dataset:
        collect_dataset(CollectArgs(env_id=args.env_id, episodes=args.expert_episodes, policy="explorer", format="npz",
                                    out=str(folder), workers=args.workers, seed=args.seed, world_model=args.world_model,
                                    obs_size=args.obs_size, max_episode_steps=args.max_episode_steps, threads=args.threads))
    collect_s = time.perf_counter() - t0
    rgb, pose, prev, act, epi = load_pairs(folder)
    n_ep = int(epi.max()) + 1
    val_eps = set(range(n_ep - max(1, int(round(n_ep * args.val_fraction))), n_ep)) if n_ep > 1 and args.val_fraction > 0 else set()
    val = np.isin(epi, list(val_eps))
    train = ~val
    print(f"{len(act)} (observation, action) pairs from {n_ep} episodes; "
          f"action histogram {np.bincount(act, minlength=n_actions).tolist()}")

    # --- 2. the policy network
    class BCPolicy(nn.Module):
        def __init__(self):
            super().__init__()
            self.cnn = nn.Sequential(
                nn.Conv2d(3, 32, 5, stride=2, padding=2), nn.ReLU(),
                nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),
                nn.Conv2d(64, 64, 3, stride=2, padding=1), nn.ReLU(),
                nn.AdaptiveAvgPool2d(4), nn.Flatten())
            extra = 7 + (n_actions if args.prev_action else 0)
            self.state = nn.Sequential(nn.Linear(extra, 64), nn.ReLU())
            self.head = nn.Sequential(nn.Linear(64 * 16 + 64, 256), nn.ReLU(), nn.Linear(256, n_actions))

        def forward(self, rgb_u8, pose_f, prev_a):
            x = rgb_u8.permute(0, 3, 1, 2).float() / 255.0
            state = [pose_f]
            if args.prev_action:
                state.append(F.one_hot(prev_a, n_actions).float())
            return self.head(torch.cat([self.cnn(x), self.state(torch.cat(state, 1))], 1))

    policy = BCPolicy()
    optim = torch.optim.AdamW(policy.parameters(), lr=args.learning_rate, weight_decay=args.weight_decay)
    tensors = [torch.from_numpy(x) for x in (rgb, pose.astype(np.float32), prev, act)]
    idx_train = np.flatnonzero(train)
    rng = np.random.default_rng(args.seed)

    # --- 3. training loop
    t0 = time.perf_counter()
    log = []
    for step in range(1, args.train_steps + 1):
        b = torch.from_numpy(rng.choice(idx_train, size=min(args.batch_size, len(idx_train)), replace=False))
        logits = policy(tensors[0][b], tensors[1][b], tensors[2][b])
        loss = F.cross_entropy(logits, tensors[3][b])
        optim.zero_grad()
        loss.backward()
        optim.step()
        if step % max(1, args.train_steps // 10) == 0 or step == args.train_steps:
            with torch.no_grad():
                acc_train = (logits.argmax(1) == tensors[3][b]).float().mean().item()
                acc_val = None
                if val.any():
                    v = torch.from_numpy(np.flatnonzero(val))
                    acc_val = (policy(tensors[0][v], tensors[1][v], tensors[2][v]).argmax(1) == tensors[3][v]).float().mean().item()
            log.append({"step": step, "loss": round(loss.item(), 4), "acc_batch": round(acc_train, 3),
                        "acc_val": None if acc_val is None else round(acc_val, 3)})
            print(log[-1])
    train_s = time.perf_counter() - t0
    torch.save(policy.state_dict(), out / "bc_policy.pt")

    # --- 4. evaluation in held-out rooms: BC vs the expert it imitates vs random
    class BCAgent:
        def __init__(self, seed):
            self.prev = 0
            self.gen = torch.Generator().manual_seed(seed)

        def __call__(self, obs):
            with torch.no_grad():
                logits = policy(torch.from_numpy(obs["rgb"][None]), torch.from_numpy(obs["pose"][None]),
                                torch.tensor([self.prev]))
            a = int(torch.multinomial(logits.softmax(1)[0], 1, generator=self.gen)) if args.sample else int(logits.argmax())
            self.prev = a
            return a

    def evaluate(make_policy) -> list[float]:
        env = gym.make(args.env_id, scene_seeds="eval", max_episode_steps=args.max_episode_steps, **env_kwargs)
        returns = []
        for e in range(args.eval_episodes):
            obs, _ = env.reset(seed=20_000 + e)
            act_fn = make_policy(env, e)
            total, done = 0.0, False
            while not done:
                obs, reward, terminated, truncated, _ = env.step(act_fn(obs))
                total += reward
                done = terminated or truncated
            returns.append(round(float(total), 4))
        env.close()
        return returns

    t0 = time.perf_counter()
    policy.eval()
    scores = {
        "bc": evaluate(lambda env, e: BCAgent(e)),
        "expert": evaluate(lambda env, e: ScriptedExplorer(env, seed=e)),
        "random": evaluate(lambda env, e: RandomPolicy(seed=e)),
    } if args.eval_episodes > 0 else {}
    eval_s = time.perf_counter() - t0
    means = {k: round(float(np.mean(v)), 4) for k, v in scores.items()}
    summary = {
        "args": asdict(args), "pairs": int(len(act)), "episodes": n_ep, "train_log": log,
        "eval_returns": scores, "eval_mean": means,
        "bc_over_expert": round(means["bc"] / means["expert"], 3) if scores and means["expert"] > 0 else None,
        "seconds": {"collect": round(collect_s, 1), "train": round(train_s, 1), "eval": round(eval_s, 1)},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps({k: summary[k] for k in ("pairs", "eval_mean", "bc_over_expert", "seconds")}, indent=1))
    return summary


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main(parse_args())
