"""The checks of a snapshot dict (``MirageSimulation.get_state``) before it is
restored: pure functions of the dict and what they compare it with (the env
config, its sizes, the world model's weights digest, the snapshot's room).
Each raises ValueError naming the field and the fix; none changes anything.

:func:`check` runs every check that needs only the dict and the env's
settings; :func:`check_agent`, :func:`check_memory_settings`,
:func:`check_memory_channels` and :func:`check_task` need the room and the
objects rebuilt from the snapshot, and run while ``set_state`` builds them
(inside :func:`restoring`, which turns any error of that phase into one
ValueError).
"""

from __future__ import annotations

import json
import math
from contextlib import contextmanager

import numpy as np
import torch

from .. import limits
from .actions import AgentState
from .config import EnvConfig

# 2: snapshots carry the weights digest and are checked against the env's config
STATE_VERSION = 2
# Config fields a snapshot may differ in from the env it is restored into:
# they change neither the episode nor what comes next (world_model is
# compared by the weights digest instead of its spelling).
STATE_FREE_FIELDS = ("device", "render_size", "return_gt", "world_model", "obs_size")
# The keys of every snapshot (get_state writes exactly these).
STATE_KEYS = frozenset({"version", "config", "weights", "scene_seed", "agent", "time", "steps", "room_episodes", "memory",
                        "coverage", "task", "context_latent", "context_c2w", "last_rgb", "np_rng", "torch_rng"})
UNMODIFIED = "pass the unmodified dict returned by env.unwrapped.get_state()"
FIX = UNMODIFIED + " of an env with the same settings"


def check(state, cfg: EnvConfig, *, latent_shape: tuple, image_size: tuple, native_size: tuple, weights: str) -> None:
    """Every check of ``state`` that needs no room: its keys and version, that
    it comes from an env like this one (memory and task settings, photo or
    room, config, weights), and each value's type, shape and range.
    ``latent_shape``: (C, h, w) of this env's world model; ``image_size``:
    (H, W) of its frames; ``native_size``: the world model's own frame size
    (what an obs_size of None means); ``weights``: its weights digest."""
    check_format(state)
    check_context_latent_shape(state["context_latent"], latent_shape)
    check_settings(state, cfg)
    check_config(state, cfg, image_size, native_size, weights)
    check_tensor(state, "context_latent", latent_shape, limits.LATENT_BOUND)
    check_rigid_pose(check_tensor(state, "context_c2w", (4, 4), limits.POSITION_BOUND))
    check_scalars(state)
    check_last_rgb(state["last_rgb"], image_size)
    check_coverage(state["coverage"])


def check_format(state) -> None:
    """A dict with every snapshot key, of this STATE_VERSION."""
    if not isinstance(state, dict) or not STATE_KEYS <= set(state):
        if isinstance(state, dict) and state.get("version") not in (None, STATE_VERSION):
            raise ValueError(f"snapshot version {state['version']!r} does not match this env's version {STATE_VERSION}; "
                             "take a new snapshot with this version of mirage_gym")
        missing = sorted(STATE_KEYS - set(state)) if isinstance(state, dict) else sorted(STATE_KEYS)
        raise ValueError(f"not a MirageRoom snapshot (missing {missing}); pass the dict returned by env.unwrapped.get_state()")
    if state["version"] != STATE_VERSION:
        raise ValueError(f"snapshot version {state['version']!r} does not match this env's version {STATE_VERSION}")


def check_context_latent_shape(latent, latent_shape: tuple) -> None:
    """A (C, h, w) latent of another world model (or obs_size) is named as such
    (the generic tensor check below names any other bad value)."""
    if isinstance(latent, torch.Tensor) and latent.ndim == 3 and tuple(latent.shape) != tuple(latent_shape):
        raise ValueError(f"snapshot has context latent {tuple(latent.shape)}, this env's world model uses {tuple(latent_shape)}: "
                         "restore a snapshot taken with the same world model and obs_size")


def check_settings(state: dict, cfg: EnvConfig) -> None:
    """Memory or none, explore (coverage) or not, photo or room: as in this env."""
    if (state["memory"] is None) != (cfg.memory == "none") or (state["coverage"] is None) != (cfg.task != "explore"):
        raise ValueError("snapshot was taken with a different memory or task setting than this env's")
    if (state["scene_seed"] is None) != (cfg.scene is not None):
        raise ValueError("snapshot was taken in a photo scene and this env runs procedural rooms, or the other way round")


def check_config(state: dict, cfg: EnvConfig, image_size: tuple, native_size: tuple, weights: str) -> None:
    """The snapshot must come from an env like this one: the same config
    (bar STATE_FREE_FIELDS, with the frame size compared as resolved) and
    the same world-model weights."""
    theirs = state["config"]
    if not isinstance(theirs, dict):
        raise ValueError(f"snapshot 'config' must be the env config dict, got {type(theirs).__name__}; {UNMODIFIED}")

    def plain(value):  # tuples and lists alike, numbers as JSON writes them
        return json.loads(json.dumps(value, default=str))

    ours = cfg.to_dict()
    differ = sorted(k for k in ours if k not in STATE_FREE_FIELDS and plain(theirs.get(k, "<missing>")) != plain(ours[k]))
    try:  # None: the world model's native size (the weights digest below checks it is this model)
        size = EnvConfig(obs_size=theirs.get("obs_size")).image_size or tuple(native_size)
    except (TypeError, ValueError, IndexError):
        size = None
    if size is None or tuple(size) != tuple(image_size):
        differ.append("obs_size")
    if differ:
        shown = ", ".join(f"{k}={theirs.get(k, '<missing>')!r} (this env: {ours[k]!r})" for k in differ[:6])
        raise ValueError(f"snapshot was taken in an env with other settings: {shown}; restore it into an env made "
                         "with the same arguments (the snapshot's 'config' lists them)")
    if state["weights"] != weights:
        raise ValueError(f"snapshot was taken with other world-model weights (digest {str(state['weights'])[:12]}..., "
                         f"this env's {weights[:12]}...); restore it into an env made with the same world_model")


def check_tensor(state: dict, name: str, shape: tuple, bound: float) -> torch.Tensor:
    """``state[name]``: a finite float tensor of ``shape`` within +-``bound``."""
    value = state[name]
    if not isinstance(value, torch.Tensor) or not value.is_floating_point() or tuple(value.shape) != tuple(shape):
        got = f"{type(value).__name__} {tuple(getattr(value, 'shape', ()))}"
        raise ValueError(f"snapshot {name!r} must be a float torch.Tensor of shape {tuple(shape)}, got {got}; {FIX}")
    if not bool(torch.isfinite(value).all()):
        raise ValueError(f"snapshot {name!r} contains NaN or inf; {FIX}")
    if float(value.abs().max()) > bound:
        raise ValueError(f"snapshot {name!r} has values beyond +-{bound:g}; {FIX}")
    return value


def check_rigid_pose(c2w: torch.Tensor) -> None:
    """A (4, 4) camera-to-world matrix: a rotation, a translation and [0, 0, 0, 1]."""
    rotation = c2w[:3, :3].double()
    if not torch.allclose(rotation @ rotation.T, torch.eye(3, dtype=torch.float64), atol=1e-4) or \
            not torch.equal(c2w[3], torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=c2w.dtype)):
        raise ValueError(f"snapshot 'context_c2w' is not a rigid camera-to-world pose; {FIX}")


def check_scalars(state: dict) -> None:
    """scene_seed, time, steps and room_episodes: of their type and in range."""
    seed = state["scene_seed"]
    if seed is not None and not limits.is_int(seed, 0):
        raise ValueError(f"snapshot scene_seed must be a non-negative int, got {seed!r}; {FIX}")
    limits.bounded_float("snapshot 'time'", state["time"], 0.0, limits.MAX_SCENE_TIME, "seconds of scene time")
    limits.bounded_int("snapshot 'steps'", state["steps"], 0, limits.MAX_EPISODE_STEPS, "steps of the episode")
    limits.bounded_int("snapshot 'room_episodes'", state["room_episodes"], 0, limits.MAX_EPISODE_STEPS, "episodes in this room")


def check_last_rgb(rgb, image_size: tuple) -> None:
    """The frame the agent sees: uint8 (H, W, 3)."""
    H, W = image_size
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.shape != (H, W, 3):
        raise ValueError(f"snapshot last_rgb must be a uint8 array of shape {(H, W, 3)}, got "
                         f"{type(rgb).__name__} {getattr(rgb, 'dtype', '')} {getattr(rgb, 'shape', '')}; {FIX}")


def check_coverage(coverage) -> None:
    """None, or {'seen': int64 tensor (N,)} (CoverageMap.load_state_dict checks the rest against the room)."""
    seen = None if coverage is None else (coverage.get("seen") if isinstance(coverage, dict) else None)
    if coverage is not None and not (isinstance(seen, torch.Tensor) and seen.dtype == torch.int64 and seen.ndim == 1):
        raise ValueError(f"snapshot coverage must be {{'seen': int64 tensor (N,)}}; {FIX}")


# ---------------------------------------------------------------- against the rebuilt room and objects

def check_agent(scene, agent, max_pitch_deg: float) -> AgentState:
    """The snapshot's [x, y, z, yaw, pitch] as an AgentState: finite, at the
    room's eye height within the position bound, within max_pitch_deg, and
    in free space of ``scene``."""
    if not isinstance(agent, (list, tuple)) or len(agent) != 5 or \
            not all(isinstance(v, (int, float, np.floating, np.integer)) and not isinstance(v, bool) and math.isfinite(v) for v in agent):
        raise ValueError(f"snapshot agent must be 5 finite numbers [x, y, z, yaw, pitch], got {agent!r}; {UNMODIFIED}")
    x, y, z, yaw, pitch = (float(v) for v in agent)
    if max(abs(x), abs(y)) > limits.POSITION_BOUND or abs(z - scene.eye_height) > 1e-6:
        raise ValueError(f"snapshot agent position {[x, y, z]} is not at eye height ({scene.eye_height} m) within "
                         f"+-{limits.POSITION_BOUND:g} m; {UNMODIFIED}")
    if abs(pitch) > math.radians(max_pitch_deg) + 1e-9:
        raise ValueError(f"snapshot agent pitch {math.degrees(pitch):.1f} deg exceeds max_pitch_deg={max_pitch_deg}; {UNMODIFIED}")
    if not scene.is_free(np.array([x, y, z])):
        raise ValueError(f"snapshot agent position {[x, y]} is not free space in scene {scene.seed} (inside a wall or "
                         f"furniture); {UNMODIFIED}")
    return AgentState(x, y, z, yaw, pitch)


def check_memory_settings(ours: dict, theirs) -> None:
    """The snapshot's memory state has this env's memory settings (``ours``: a fresh memory's ``settings()``)."""
    theirs = theirs if isinstance(theirs, dict) else {}
    differ = [k for k in ours if theirs.get(k, "<missing>") != ours[k]]
    if differ:
        raise ValueError("memory settings differ from this env's: " + ", ".join(
            f"{k}={theirs.get(k, '<missing>')!r} (this env: {ours[k]!r})" for k in differ))


def check_memory_channels(channels, expected: int, model_channels: int) -> None:
    """A loaded memory holds ``expected``-channel features (or none yet)."""
    if channels not in (None, expected):
        raise ValueError(f"memory holds {channels}-channel features, this env's model uses {model_channels}")


def check_task(task, saved) -> None:
    """A task loaded from ``saved`` holds no NaN or inf."""
    if not all(math.isfinite(v) for v in vars(task).values() if isinstance(v, float)):
        raise ValueError(f"task state {saved!r} holds NaN or inf")


@contextmanager
def restoring():
    """Rebuilding the episode from a checked snapshot: any error the builders
    raise (a bad field they read) becomes one ValueError naming it and the fix."""
    try:
        yield
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError, StopIteration) as err:
        detail = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
        raise ValueError(f"snapshot cannot be restored ({detail}); {FIX}") from err
