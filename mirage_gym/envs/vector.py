"""The vectorised twin of MirageRoomEnv: N episodes, one world model, one
batched generate + decode per step. Same maths (MirageSimulation) and one
noise generator per episode, so its outputs equal N single envs reset with
the same seeds: exactly, except a learned model's frames, which differ by
float rounding in batch-size dependent kernels (docs/agents.md, "Vector env")."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import VectorEnv
from gymnasium.vector.utils import batch_space, concatenate, create_empty_array
from gymnasium.vector.vector_env import AutoresetMode

from .. import limits
from .actions import action_space, action_to_motion
from .config import EnvConfig
from .debug_view import debug_view
from .mirage_room import observation_space
from .simulation import MirageSimulation


class MirageRoomVectorEnv(VectorEnv):
    """N MirageRoom episodes in one process, batched through one world model.

    ``autoreset_mode`` is ``NEXT_STEP`` (Gymnasium's default: the step after
    an episode ends returns that sub-env's reset observation) or
    ``SAME_STEP`` (the finished episode's last observation and info move to
    ``info["final_obs"]`` / ``info["final_info"]`` and the reset observation
    is returned at once, as stable-baselines3 expects).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 8, "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int = 1, max_episode_steps: int | None = None, render_mode: str | None = None,
                 autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP, **kwargs: Any):
        num_envs = limits.bounded_int("num_envs", num_envs, 1, None)
        autoreset_mode = AutoresetMode(autoreset_mode)
        if autoreset_mode == AutoresetMode.DISABLED:
            raise ValueError("autoreset_mode DISABLED is not supported; use NextStep or SameStep")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode={render_mode!r} is not supported; use one of {self.metadata['render_modes']} or None")
        self.config = EnvConfig.from_kwargs(**kwargs)
        self.num_envs = num_envs
        self.max_episode_steps = max_episode_steps
        self.render_mode = render_mode
        self.autoreset_mode = autoreset_mode
        self.metadata = {**self.metadata, "autoreset_mode": autoreset_mode, "render_fps": int(self.config.fps)}
        self.sim = MirageSimulation(self.config, num_episodes=num_envs)
        self.single_action_space = action_space(self.config.action_type)
        self.single_observation_space = observation_space(self.sim)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self._rngs = [None] * num_envs
        self._needs_reset = np.ones(num_envs, dtype=bool)  # NEXT_STEP: reset on the coming step
        self._started = False
        self._elapsed = np.zeros(num_envs, dtype=np.int64)
        self._last_obs = [None] * num_envs

    @property
    def world_model(self):
        return self.sim.world_model

    def _stack(self, observations: list[dict]) -> dict:
        out = create_empty_array(self.single_observation_space, n=self.num_envs)
        return concatenate(self.single_observation_space, observations, out)

    def reset(self, *, seed: int | list[int] | None = None, options: dict | None = None):
        """Reset all sub-envs. ``seed`` int s seeds sub-env i with s + i (as
        SyncVectorEnv does), or pass one seed per sub-env. All or nothing: a
        reset that fails in any sub-env leaves every sub-env as it was."""
        self.sim.check_reset_options(options)
        seeds = self._check_seeds(seed)
        saved_rngs = [(rng, None if rng is None else rng.bit_generator.state) for rng in self._rngs]
        observations, infos = [], {}
        i = 0
        try:
            with self.sim.transaction(range(self.num_envs)):
                for i, s in enumerate(seeds):
                    if s is not None or self._rngs[i] is None:
                        self._rngs[i], _ = gym.utils.seeding.np_random(s)
                    obs, info = self.sim.reset_episode(i, self._rngs[i], options)
                    observations.append(obs)
                    infos = self._add_info(infos, info, i)
                super().reset(seed=seeds[0] if isinstance(seed, (int, np.integer)) else None)
        except BaseException as err:
            for j, (rng, state) in enumerate(saved_rngs):
                self._rngs[j] = rng
                if rng is not None:
                    rng.bit_generator.state = state
            if isinstance(err, ValueError) and options and "pose" in options:
                raise ValueError(f"sub-env {i}: {err} (no sub-env was reset: options apply to every sub-env, "
                                 "so the pose must be free in each one's room)") from None
            raise
        self._needs_reset[:] = False
        self._elapsed[:] = 0
        self._started = True
        self._last_obs = observations
        return self._stack(observations), infos

    def _check_seeds(self, seed) -> list:
        """One plain int (or None) per sub-env; numpy integers accepted."""
        def ok(s):
            return s is None or limits.is_int(s, 0)

        if seed is None:
            return [None] * self.num_envs
        if limits.is_int(seed):
            if not ok(seed):
                raise ValueError(f"reset seed must be a non-negative int, got {seed!r}")
            return [int(seed) + i for i in range(self.num_envs)]
        if isinstance(seed, (list, tuple, np.ndarray)):
            seeds = list(seed)
            if len(seeds) != self.num_envs:
                raise ValueError(f"reset got {len(seeds)} seeds for {self.num_envs} sub-envs; pass one per sub-env")
            bad = [s for s in seeds if not ok(s)]
            if bad:
                raise ValueError(f"reset seeds must be non-negative ints or None, got {bad}")
            return [None if s is None else int(s) for s in seeds]
        raise ValueError(f"reset seed must be an int, a list of {self.num_envs} ints, or None; got {seed!r}")

    def step(self, actions):
        """One step of every sub-env, pending autoresets included: a transaction
        (a step that raises leaves every sub-env, counter and RNG as it was)."""
        if not self._started:
            raise RuntimeError("MirageRoomVectorEnv: call reset() before step()")
        try:
            actions = np.asarray(actions) if self.config.action_type == "discrete" else np.asarray(actions, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"step needs one action per sub-env ({self.num_envs}) as an array, got {actions!r}") from None
        if actions.ndim == 0 or actions.shape[0] != self.num_envs:
            got = "a scalar" if actions.ndim == 0 else f"{actions.shape[0]} actions"
            raise ValueError(f"step got {got} for {self.num_envs} sub-envs; pass an array of shape {self.action_space.shape}")
        motions = [action_to_motion(a, self.config.action_type) for a in actions]  # validate all first

        observations = list(self._last_obs)
        elapsed = self._elapsed.copy()
        rewards = np.zeros(self.num_envs, dtype=np.float64)
        terminations = np.zeros(self.num_envs, dtype=bool)
        truncations = np.zeros(self.num_envs, dtype=bool)
        infos: dict = {}
        stepping = [i for i in range(self.num_envs) if not self._needs_reset[i]]
        with self.sim.transaction(range(self.num_envs)):
            for i in range(self.num_envs):
                if self._needs_reset[i]:  # NEXT_STEP autoreset
                    observations[i], info = self.sim.reset_episode(i, self._rngs[i], None)
                    infos = self._add_info(infos, info, i)
                    elapsed[i] = 0
            results = self.sim.step(stepping, [motions[i] for i in stepping]) if stepping else []
            for i, result in zip(stepping, results):
                elapsed[i] += 1
                truncated = self.max_episode_steps is not None and elapsed[i] >= self.max_episode_steps
                rewards[i], terminations[i], truncations[i] = result.reward, result.terminated, truncated and not result.terminated
                observations[i], info = result.obs, result.info
                if self.autoreset_mode == AutoresetMode.SAME_STEP and (terminations[i] or truncations[i]):
                    final_obs, final_info = observations[i], info
                    observations[i], info = self.sim.reset_episode(i, self._rngs[i], None)
                    info = {**info, "final_obs": final_obs, "final_info": final_info}
                    elapsed[i] = 0
                infos = self._add_info(infos, info, i)
            stacked = self._stack(observations)
        # ---- committed: the vector env's own counters change only now
        self._elapsed = elapsed
        self._needs_reset = terminations | truncations if self.autoreset_mode == AutoresetMode.NEXT_STEP \
            else np.zeros(self.num_envs, dtype=bool)
        self._last_obs = observations
        return stacked, rewards, terminations, truncations, infos

    def render(self):
        if self.render_mode is None:
            gym.logger.warn("render() called with render_mode=None; pass render_mode='rgb_array'")
            return None
        views = []
        for i, ep in enumerate(self.sim.episodes):
            tokens = np.zeros((0, 3), np.float32) if ep.memory is None else ep.memory.positions.cpu().numpy()
            views.append(debug_view(ep.last_rgb, self.config.render_size, ep.scene.bounds, tokens,
                                    ep.agent.c2w().numpy(), self.config.fov_deg))
        return np.stack(views)

    def _check_index(self, index) -> int:
        if not limits.is_int(index, 0, self.num_envs - 1):
            raise ValueError(f"sub-env index must be an int in [0, {self.num_envs}), got {index!r}")
        return int(index)

    def get_state(self, index: int) -> dict:
        return self.sim.get_state(self._check_index(index))

    def set_state(self, index: int, state: dict) -> None:
        index = self._check_index(index)
        if self._rngs[index] is not None:
            self.sim.episodes[index].rng = self._rngs[index]
        self.sim.set_state(index, state)
        self._rngs[index] = self.sim.episodes[index].rng
        self._last_obs[index] = self.sim.observation(index)
        self._needs_reset[index] = False
        self._elapsed[index] = int(state["steps"])  # the time limit counts on from the snapshot's step
        self._started = all(ep.agent is not None for ep in self.sim.episodes)

    def current_observation(self, index: int) -> dict:
        """The observation of sub-env ``index`` now (after a step, reset or set_state)."""
        index = self._check_index(index)
        if self._last_obs[index] is None:
            raise RuntimeError("MirageRoomVectorEnv: call reset() or set_state() before current_observation()")
        return self._last_obs[index]
