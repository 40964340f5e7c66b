"""Register one Gymnasium id per YAML file in envs_configs/ (plain and
namespaced ``mirage_gym/<id>``). A new env id is a new YAML file, not code."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from gymnasium.envs.registration import register, registry

from . import limits

CONFIG_DIR = Path(__file__).resolve().parent / "envs_configs"
ENTRY_POINT = "mirage_gym.envs.mirage_room:MirageRoomEnv"
VECTOR_ENTRY_POINT = "mirage_gym.envs.vector:MirageRoomVectorEnv"
NAMESPACE = "mirage_gym"


ID_PATTERN = re.compile(r"^[A-Za-z][\w.-]*-v\d+$")


def load_env_config(path: Path) -> dict:
    """Read and check one env YAML. Every problem raises ValueError naming the
    file. Loaded with ``yaml.safe_load``: Python tags (``!!python/...``) are
    refused, so a config can never construct objects or run code."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            spec = yaml.safe_load(f)
    except yaml.constructor.ConstructorError as err:
        raise ValueError(f"{path}: refused tag in YAML ({err.problem}); env configs are plain data loaded with "
                         "yaml.safe_load, so Python tags such as !!python/object are not allowed") from None
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not valid YAML ({err}); see envs_configs/MirageRoom-v0.yaml for the format") from None
    if not isinstance(spec, dict) or "id" not in spec:
        raise ValueError(f"{path}: an env config needs an 'id' and 'kwargs' mapping")
    unknown = set(spec) - {"id", "max_episode_steps", "kwargs"}
    if unknown:
        raise ValueError(f"{path}: unknown top-level key(s) {sorted(map(str, unknown))}; allowed: id, max_episode_steps, kwargs")
    if not isinstance(spec["id"], str) or not ID_PATTERN.match(spec["id"]):
        raise ValueError(f"{path}: id must be a Gymnasium id such as 'MirageRoomFoo-v0' (name, '-v', version), got {spec['id']!r}")
    steps = spec.get("max_episode_steps")
    if steps is not None and not limits.is_int(steps, 1):
        raise ValueError(f"{path}: max_episode_steps must be a positive integer or null, got {steps!r}")
    kwargs = spec.get("kwargs") or {}
    if not isinstance(kwargs, dict):
        raise ValueError(f"{path}: kwargs must be a mapping of MirageRoom arguments (name: value), got {type(kwargs).__name__}")
    from .envs.config import EnvConfig

    try:
        EnvConfig.from_kwargs(**kwargs)  # fail at import, not at make()
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: {err}") from None
    return spec


def register_envs(config_dir: Path = CONFIG_DIR) -> list[str]:
    """Register every YAML in ``config_dir``. All files are checked first, so a
    bad file registers nothing (no half-registered set of ids)."""
    specs, seen = [], {}
    for path in sorted(Path(config_dir).glob("*.yaml")):
        spec = load_env_config(path)
        if spec["id"] in seen:
            raise ValueError(f"{path}: id {spec['id']!r} is already defined in {seen[spec['id']]}; "
                             "a new variant needs a new id (or version suffix)")
        seen[spec["id"]] = path.name
        specs.append(spec)
    ids = []
    for spec in specs:
        for env_id in (spec["id"], f"{NAMESPACE}/{spec['id']}"):
            if env_id in registry:
                continue
            register(id=env_id, entry_point=ENTRY_POINT, vector_entry_point=VECTOR_ENTRY_POINT,
                     max_episode_steps=spec.get("max_episode_steps"), kwargs=dict(spec.get("kwargs") or {}))
            ids.append(env_id)
    return ids
