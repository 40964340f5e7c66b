"""``load_policy(spec, env)``: a callable obs -> action from a short name.

* ``"explorer"`` (or ``"explorer:leave_and_return"``): :class:`ScriptedExplorer`;
* ``"random"``: :class:`RandomPolicy`;
* a path to a stable-baselines3 ``.zip`` (PPO, A2C, DQN ...): its deterministic
  ``predict``.
"""

from __future__ import annotations

from pathlib import Path

from .explorer import RandomPolicy, ScriptedExplorer

SB3_ALGOS = ("PPO", "A2C", "DQN", "SAC", "TD3", "DDPG")


class SB3Policy:
    """Deterministic actions from a saved stable-baselines3 model."""

    def __init__(self, path: str | Path, algo: str | None = None, device: str = "cpu"):
        import zipfile

        import stable_baselines3 as sb3

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no SB3 model at {path}")
        if algo is None:
            algo = "PPO"
            with zipfile.ZipFile(path) as z:  # SB3 zips carry the class name in their JSON header
                data = z.read("data").decode("utf-8", "replace") if "data" in z.namelist() else ""
            for name in SB3_ALGOS:
                if f"stable_baselines3.{name.lower()}." in data:
                    algo = name
                    break
        self.model = getattr(sb3, algo).load(str(path), device=device)

    def reset(self) -> None:
        pass

    def __call__(self, obs):
        return self.act(obs)

    def act(self, obs):
        action, _ = self.model.predict(obs, deterministic=True)
        return int(action) if getattr(action, "ndim", 1) == 0 else action


def load_policy(spec: str, env, seed: int | None = None, index: int = 0):
    """A policy object with ``act(obs)`` and ``reset()`` for ``env`` from ``spec``
    ("explorer", "explorer:leave_and_return", "random" or a path to an SB3 zip)."""
    if spec == "explorer" or spec.startswith("explorer:"):
        tour = spec.split(":", 1)[1] if ":" in spec else "explore"
        return ScriptedExplorer(env, index=index, tour=tour, seed=seed)
    if spec == "random":
        n = getattr(env.action_space, "n", None)
        if n is None:
            raise ValueError("policy 'random' here draws discrete actions; make the env with action_type='discrete'")
        return RandomPolicy(seed=seed, num_actions=int(n))
    if spec.endswith(".zip") or Path(spec).is_file():
        return SB3Policy(spec)
    raise ValueError(f"unknown policy {spec!r}: use 'explorer', 'explorer:leave_and_return', 'random' or a path to an SB3 .zip")
