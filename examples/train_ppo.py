"""Train PPO (stable-baselines3) on MirageRoom's explore task, in ~40 lines.

    python examples/train_ppo.py                 # oracle world, 64x64, a few minutes on a CPU
    python examples/train_ppo.py --world-model tiny --timesteps 20000

The batched vector env (one world-model call for all N episodes) is handed
to SB3 through ``MirageSB3VecEnv``. The full script with a reward curve and
an evaluation against the scripted explorer is examples/ppo_explore.py.
"""

import argparse

import gymnasium as gym
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecMonitor

import mirage_gym  # noqa: F401  (registers the env ids)
from mirage_gym.agents.sb3_vec import MirageSB3VecEnv

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--world-model", default="oracle", help="oracle | tiny | a path")
parser.add_argument("--timesteps", type=int, default=8192)
parser.add_argument("--num-envs", type=int, default=8)
parser.add_argument("--episode-steps", type=int, default=100)
parser.add_argument("--out", default="runs/example_ppo.zip")
args = parser.parse_args()
torch.set_num_threads(1)

# N episodes in one process, batched through one world model; SB3 sees a VecEnv.
venv = VecMonitor(MirageSB3VecEnv("MirageRoomOracle64-v0", num_envs=args.num_envs, world_model=args.world_model,
                                  max_episode_steps=args.episode_steps))
# SB3's default NatureCNN needs frames >= 36 px; MirageRoomOracle64-v0 gives 64x64 (rgb) + a 7-d pose.
model = PPO("MultiInputPolicy", venv, n_steps=128, batch_size=256, n_epochs=4, ent_coef=0.01, verbose=1, device="cpu")
model.learn(total_timesteps=args.timesteps)
model.save(args.out)
venv.close()

# Roll the trained policy out in a held-out room.
env = gym.make("MirageRoomOracle64-v0", world_model=args.world_model, scene_seeds="eval",
               max_episode_steps=args.episode_steps)
obs, info = env.reset(seed=0)
total, done = 0.0, False
while not done:
    action, _ = model.predict(obs, deterministic=True)
    obs, reward, terminated, truncated, info = env.step(int(action))
    total, done = total + reward, terminated or truncated
print(f"saved {args.out}; held-out episode return (fraction of the room seen): {total:.3f}")
