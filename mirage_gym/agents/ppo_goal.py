"""The PPO agent of the object-goal task (stable-baselines3), shared by
``mirage-gym score`` and anything else that trains on ``MirageRoomObjectGoal*``.

* :class:`GoalMapCNN`: the features extractor, a small goal-conditioned
  CNN over the 64x64 frame that scores where across the view the goal is
  (the pose is not read).
* :class:`NavigationActions`: a VecEnv wrapper that lets the agent choose
  among FORWARD, TURN_LEFT, TURN_RIGHT (the moves the task needs) instead of
  all nine actions.
* :func:`make_ppo`: the PPO with the hyperparameters used by the score.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.vec_env import VecEnvWrapper
from torch import nn

from ..envs.actions import Action

NAV_ACTIONS = (Action.FORWARD, Action.TURN_LEFT, Action.TURN_RIGHT)


class NavigationActions(VecEnvWrapper):
    """Discrete(3) -> FORWARD, TURN_LEFT, TURN_RIGHT of the wrapped VecEnv."""

    def __init__(self, venv):
        super().__init__(venv, action_space=spaces.Discrete(len(NAV_ACTIONS)))
        self._map = np.array([int(a) for a in NAV_ACTIONS])

    def step_async(self, actions):
        self.venv.step_async(self._map[np.asarray(actions, dtype=np.int64).reshape(-1)])

    def step_wait(self):
        return self.venv.step_wait()

    def reset(self):
        return self.venv.reset()


def env_action(action: int) -> int:
    """The env's action for the agent's action index."""
    return int(NAV_ACTIONS[int(action)])


class GoalMapCNN(BaseFeaturesExtractor):
    """Frame + goal -> features. Two feature maps at 32 x 32: colour features
    of each cell (a 1x1 conv of the 2x2-averaged frame) and shape features (a
    5x5 then a 3x3 conv); the goal (SB3 one-hot encodes the MultiDiscrete)
    weights their channels, which scores every cell: how much it looks like
    the goal. The scores' soft maximum down each column, as a softmax across
    the 32 columns, says where across the view the goal-like thing is; with
    the best score and the goal itself it is what the policy reads. The pose
    is not read."""

    def __init__(self, observation_space: spaces.Dict, features_dim: int = 64, channels: int = 32):
        super().__init__(observation_space, features_dim)
        c = observation_space["rgb"].shape[0]  # SB3 hands images channels-first
        n_goal = int(np.sum(observation_space["goal"].nvec))
        self.colour = nn.Sequential(nn.AvgPool2d(2), nn.Conv2d(c, 16, 1), nn.ReLU())  # 64 -> 32
        self.shape = nn.Sequential(nn.Conv2d(c, 16, 5, stride=2, padding=2), nn.ReLU(),
                                   nn.Conv2d(16, channels, 3, padding=1), nn.ReLU())  # 64 -> 32
        self.query = nn.Linear(n_goal, 16 + channels)
        self.bias = nn.Linear(n_goal, 1)
        width = observation_space["rgb"].shape[2] // 2
        self.head = nn.Sequential(nn.Linear(width + 1 + n_goal, features_dim), nn.ReLU())

    def forward(self, obs: dict) -> torch.Tensor:
        goal = obs["goal"].float()
        rgb = obs["rgb"]
        f = torch.cat([self.colour(rgb), self.shape(rgb)], 1)
        score = torch.einsum("bchw,bc->bhw", f, self.query(goal)) + self.bias(goal)[:, :, None]
        columns = torch.logsumexp(score, 1)  # (B, w): soft maximum down each column
        where = torch.softmax(columns, 1) * columns.shape[1] - 1.0
        best = columns.amax(1, keepdim=True).tanh()
        return self.head(torch.cat([where, best, goal], 1))


@dataclass
class PPOConfig:
    """PPO hyperparameters of the score (short episodes, dense shaping: gamma 0.9)."""

    num_envs: int = 16  # episodes batched in one vector env (one world-model call per step)
    n_steps: int = 32  # rollout length per env: 512 transitions per update
    batch_size: int = 128
    n_epochs: int = 8
    learning_rate: float = 7e-4
    gamma: float = 0.9
    gae_lambda: float = 0.8
    ent_coef: float = 0.01
    clip_range: float = 0.2
    features_dim: int = 64


def make_ppo(venv, cfg: PPOConfig, seed: int):
    from stable_baselines3 import PPO

    return PPO("MultiInputPolicy", venv, n_steps=cfg.n_steps, batch_size=cfg.batch_size, n_epochs=cfg.n_epochs,
               learning_rate=cfg.learning_rate, gamma=cfg.gamma, gae_lambda=cfg.gae_lambda, ent_coef=cfg.ent_coef,
               clip_range=cfg.clip_range, seed=seed, device="cpu", verbose=0,
               policy_kwargs={"features_extractor_class": GoalMapCNN,
                              "features_extractor_kwargs": {"features_dim": cfg.features_dim},
                              "net_arch": {"pi": [64], "vf": [64]}})
