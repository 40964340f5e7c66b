"""Register one Gymnasium id per YAML file in envs_configs/ (plain and
namespaced ``mirage_gym/<id>``). A new env id is a new YAML file, not code."""

from __future__ import annotations

from pathlib import Path

import yaml
from gymnasium.envs.registration import register, registry

CONFIG_DIR = Path(__file__).resolve().parent / "envs_configs"
ENTRY_POINT = "mirage_gym.envs.mirage_room:MirageRoomEnv"
VECTOR_ENTRY_POINT = "mirage_gym.envs.vector:MirageRoomVectorEnv"
NAMESPACE = "mirage_gym"


def load_env_config(path: Path) -> dict:
    with open(path) as f:
        spec = yaml.safe_load(f)
    if not isinstance(spec, dict) or "id" not in spec:
        raise ValueError(f"{path}: an env config needs an 'id' and 'kwargs' mapping")
    unknown = set(spec) - {"id", "max_episode_steps", "kwargs"}
    if unknown:
        raise ValueError(f"{path}: unknown top-level key(s) {sorted(unknown)}; allowed: id, max_episode_steps, kwargs")
    from .envs.config import EnvConfig

    EnvConfig.from_kwargs(**(spec.get("kwargs") or {}))  # fail at import, not at make()
    return spec


def register_envs(config_dir: Path = CONFIG_DIR) -> list[str]:
    ids = []
    for path in sorted(config_dir.glob("*.yaml")):
        spec = load_env_config(path)
        for env_id in (spec["id"], f"{NAMESPACE}/{spec['id']}"):
            if env_id in registry:
                continue
            register(id=env_id, entry_point=ENTRY_POINT, vector_entry_point=VECTOR_ENTRY_POINT,
                     max_episode_steps=spec.get("max_episode_steps"), kwargs=dict(spec.get("kwargs") or {}))
            ids.append(env_id)
    return ids
