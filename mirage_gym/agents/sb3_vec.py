"""stable-baselines3 on the batched MirageRoom vector env.

SB3 steps a ``VecEnv`` (its own API: ``step`` returns ``dones`` and a list of
info dicts, the terminal observation travels in ``info["terminal_observation"]``
and the env resets itself). :class:`MirageSB3VecEnv` adapts
:class:`mirage_gym.envs.vector.MirageRoomVectorEnv` (``autoreset_mode``
SAME_STEP) to it, so SB3 gets N episodes from one batched world-model call
per step instead of N processes each holding a model::

    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecMonitor
    from mirage_gym.agents.sb3_vec import MirageSB3VecEnv

    venv = VecMonitor(MirageSB3VecEnv("MirageRoomOracle64-v0", num_envs=8))
    PPO("MultiInputPolicy", venv).learn(10_000)

Large per-step arrays of the env's info (``frames``, ``gt_rgb``) are dropped
from the SB3 infos unless ``keep_info_keys`` names them.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import gymnasium as gym
import numpy as np
from gymnasium.vector.vector_env import AutoresetMode
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices

DROPPED_INFO_KEYS = ("frames", "gt_rgb")


class MirageSB3VecEnv(VecEnv):
    """SB3 ``VecEnv`` over one :class:`MirageRoomVectorEnv`.

    Args:
        env: an env id (made with ``gym.make_vec(..., vectorization_mode="vector_entry_point",
            autoreset_mode=SAME_STEP)``) or an existing MirageRoomVectorEnv made with
            ``autoreset_mode="SameStep"``.
        num_envs: sub-envs when ``env`` is an id.
        keep_info_keys: info keys to pass on despite their size (default: drop frames, gt_rgb).
        **kwargs: env kwargs when ``env`` is an id (``world_model``, ``obs_size``, ``max_episode_steps`` ...).
    """

    def __init__(self, env: str | Any = "MirageRoomOracle64-v0", num_envs: int = 4,
                 keep_info_keys: Iterable[str] = (), **kwargs: Any):
        if isinstance(env, str):
            import mirage_gym  # noqa: F401  (registers the ids)

            env = gym.make_vec(env, num_envs=num_envs, vectorization_mode="vector_entry_point",
                               autoreset_mode=AutoresetMode.SAME_STEP, **kwargs)
        elif kwargs:
            raise TypeError("env kwargs can only be given with an env id")
        mode = getattr(env, "autoreset_mode", None) or env.metadata.get("autoreset_mode")
        if AutoresetMode(mode) != AutoresetMode.SAME_STEP:
            raise ValueError("MirageSB3VecEnv needs a vector env made with autoreset_mode='SameStep' "
                             "(SB3 expects the reset observation in the same step that ends an episode)")
        self.venv = env
        self.drop = tuple(k for k in DROPPED_INFO_KEYS if k not in set(keep_info_keys))
        super().__init__(env.num_envs, env.single_observation_space, env.single_action_space)
        self.render_mode = getattr(env, "render_mode", None)
        self._actions: np.ndarray | None = None

    # ------------------------------------------------------------------ infos

    def _split_infos(self, infos: dict, drop: bool = True) -> list[dict]:
        """Gymnasium's dict-of-arrays infos (``_key`` masks, nested dicts such as
        ``final_info`` / ``final_obs`` split the same way) -> one dict per sub-env."""
        out: list[dict] = [{} for _ in range(self.num_envs)]
        for key, value in infos.items():
            if key.startswith("_") or (drop and key in self.drop):
                continue
            mask = infos.get("_" + key)
            parts = self._split_infos(value, drop=key != "final_obs") if isinstance(value, dict) else None
            for i in range(self.num_envs):
                if mask is None or mask[i]:
                    out[i][key] = parts[i] if parts is not None else value[i]
        return out

    # ------------------------------------------------------------------ VecEnv API

    def reset(self):
        seeds = self._seeds
        seed = None if all(s is None for s in seeds) else [int(s) if s is not None else None for s in seeds]
        if seed is not None and any(s is None for s in seed):
            raise ValueError("seed all sub-envs or none (VecEnv.seed(n) seeds them all)")
        options = self._options[0] if self._options and self._options[0] else None
        obs, infos = self.venv.reset(seed=seed, options=options)
        self.reset_infos = self._split_infos(infos)
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self):
        obs, rewards, terminated, truncated, infos = self.venv.step(self._actions)
        dones = terminated | truncated
        out = self._split_infos(infos)
        for i in np.flatnonzero(dones):
            info = out[i]
            final_obs = info.pop("final_obs", None)
            final_info = info.pop("final_info", None) or {}
            # SB3 convention: the info of the finished step, plus its last observation
            merged = {**final_info, "terminal_observation": final_obs,
                      "TimeLimit.truncated": bool(truncated[i] and not terminated[i])}
            self.reset_infos[i] = info  # the new episode's reset info
            out[i] = merged
        for i in np.flatnonzero(~dones):
            out[i]["TimeLimit.truncated"] = False
        return obs, rewards.astype(np.float32), dones, out

    def close(self) -> None:
        self.venv.close()

    def get_images(self) -> Sequence[np.ndarray | None]:
        if self.venv.render_mode != "rgb_array":
            return [None] * self.num_envs
        return list(self.venv.render())

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        value = getattr(self.venv, attr_name)
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        setattr(self.venv, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices: VecEnvIndices = None, **method_kwargs) -> list[Any]:
        if method_name in ("get_state", "set_state", "current_observation"):  # per sub-env
            return [getattr(self.venv, method_name)(i, *method_args, **method_kwargs) for i in self._get_indices(indices)]
        result = getattr(self.venv, method_name)(*method_args, **method_kwargs)
        return [result for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]

    @property
    def sim(self):
        """The batched simulation (episodes, world model), e.g. for a ScriptedExplorer per sub-env."""
        return self.venv.sim
