"""Agent actions and how they move the camera.

The agent is a level camera body at eye height: position (x, y, z), heading
``yaw`` and head ``pitch``. An action changes that body state; the env then
turns the old and new states into a camera path (geometry.camera_path).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import torch
from gymnasium import spaces

from ..geometry import pose_from_yaw_pitch
from ..scenes.procedural import ProceduralRoom


class Action(IntEnum):
    """Discrete actions. Values are stable: datasets store them as ints."""

    STAY = 0
    FORWARD = 1
    BACKWARD = 2
    TURN_LEFT = 3
    TURN_RIGHT = 4
    LOOK_UP = 5
    LOOK_DOWN = 6
    STRAFE_LEFT = 7
    STRAFE_RIGHT = 8


@dataclass(frozen=True)
class MotionConfig:
    """Step sizes of one action (the continuous action scales the same maxima)."""

    move_m: float = 0.25
    turn_deg: float = 15.0
    look_deg: float = 10.0
    max_pitch_deg: float = 60.0


@dataclass(frozen=True)
class AgentState:
    """Where the camera body is. Plain floats: no drift over long episodes.
    Immutable (a move makes a new state), so its pose is built once."""

    x: float
    y: float
    z: float
    yaw: float  # radians, counter-clockwise from +x
    pitch: float = 0.0  # radians, positive looks up

    @property
    def position(self) -> np.ndarray:
        return np.array([self.x, self.y, self.z], dtype=np.float64)

    def c2w(self):
        """Camera-to-world pose (4, 4) float32: a fresh copy of the one built
        on first use (a step asks for it several times)."""
        pose = self.__dict__.get("_c2w")
        if pose is None:
            pose = pose_from_yaw_pitch(self.position, self.yaw, self.pitch)
            object.__setattr__(self, "_c2w", pose)
        return pose.clone()

    def as_list(self) -> list[float]:
        return [self.x, self.y, self.z, self.yaw, self.pitch]


# (forward, strafe-right, yaw-left, pitch-up) in units of the maxima
_DISCRETE_MOTION = {
    Action.STAY: (0, 0, 0, 0),
    Action.FORWARD: (1, 0, 0, 0),
    Action.BACKWARD: (-1, 0, 0, 0),
    Action.TURN_LEFT: (0, 0, 1, 0),
    Action.TURN_RIGHT: (0, 0, -1, 0),
    Action.LOOK_UP: (0, 0, 0, 1),
    Action.LOOK_DOWN: (0, 0, 0, -1),
    Action.STRAFE_LEFT: (0, -1, 0, 0),
    Action.STRAFE_RIGHT: (0, 1, 0, 0),
}


def action_space(action_type: str) -> spaces.Space:
    if action_type == "discrete":
        return spaces.Discrete(len(Action))
    if action_type == "continuous":
        # forward, strafe (right positive), yaw (left positive), pitch (up positive)
        return spaces.Box(-1.0, 1.0, shape=(4,), dtype=np.float32)
    raise ValueError(f"action_type must be 'discrete' or 'continuous', got {action_type!r}")


def _discrete_action(action) -> Action | None:
    """The Action an int-like value names, or None. Accepted: ints, numpy
    integers, 0-d integer arrays and tensors (what policies return), floats
    with an integral value; refused: bools (True would mean FORWARD),
    strings, bytes, fractions, NaN and inf."""
    if isinstance(action, (np.ndarray, torch.Tensor)):  # a 0-d array or tensor holds one python scalar
        if action.ndim != 0:
            return None
        action = action.item()
    if isinstance(action, (bool, np.bool_)):
        return None
    if isinstance(action, numbers.Integral):
        value = int(action)
    elif isinstance(action, (float, np.floating)) and math.isfinite(action) and float(action).is_integer():
        value = int(action)
    else:
        return None
    return Action(value) if value in Action._value2member_map_ else None


def action_to_motion(action, action_type: str) -> np.ndarray:
    """Validate an action and return its (forward, strafe, yaw, pitch) in [-1, 1]."""
    if action_type == "discrete":
        a = _discrete_action(action)
        if a is None:
            valid = ", ".join(f"{m.value}={m.name}" for m in Action)
            raise ValueError(f"invalid discrete action {action!r}; valid actions: {valid} "
                             "(an int, a numpy integer or a 0-d integer array; not a bool, string or fraction)")
        return np.asarray(_DISCRETE_MOTION[a], dtype=np.float64)
    try:
        a = np.asarray(action, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"continuous action must be 4 numbers (forward, strafe, yaw, pitch) in [-1, 1], got {action!r}") from None
    if a.shape != (4,):
        raise ValueError(f"continuous action must have shape (4,) = (forward, strafe, yaw, pitch), got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"continuous action contains NaN or inf: {a.tolist()}")
    if (np.abs(a) > 1.0 + 1e-6).any():
        raise ValueError(f"continuous action must lie in [-1, 1] per component, got {a.tolist()}")
    return np.clip(a, -1.0, 1.0)


def apply_motion(state: AgentState, motion: np.ndarray, cfg: MotionConfig) -> AgentState:
    """The body state after a motion, ignoring collisions (the env checks those)."""
    forward, strafe, turn, look = (float(v) for v in motion)
    yaw = state.yaw + math.radians(cfg.turn_deg) * turn
    yaw = math.atan2(math.sin(yaw), math.cos(yaw))  # keep in (-pi, pi]
    max_pitch = math.radians(cfg.max_pitch_deg)
    pitch = min(max_pitch, max(-max_pitch, state.pitch + math.radians(cfg.look_deg) * look))
    # Moves are horizontal along the heading, whatever the pitch.
    c, s = math.cos(state.yaw), math.sin(state.yaw)
    dx = cfg.move_m * (forward * c + strafe * s)
    dy = cfg.move_m * (forward * s - strafe * c)
    return AgentState(state.x + dx, state.y + dy, state.z, yaw, pitch)


def can_move(scene, start: AgentState, end: AgentState) -> bool:
    """The collision rule, the only one: a move is allowed when its end point
    and its midpoint are free (``scene.is_free`` at its own clearance);
    turning on the spot always is."""
    if start.x == end.x and start.y == end.y:
        return True
    mid = (start.position + end.position) / 2
    if isinstance(scene, ProceduralRoom):  # takes (N, 3): both points in one call (a step's hot path)
        return bool(scene.is_free(np.stack([end.position, mid])).all())
    return bool(scene.is_free(end.position)) and bool(scene.is_free(mid))


def move_body(scene, state: AgentState, motion: np.ndarray, cfg: MotionConfig) -> tuple[AgentState, bool]:
    """The body state after a motion under the collision rule, and whether
    the move was blocked (a blocked move stays put; rotations still apply)."""
    target = apply_motion(state, motion, cfg)
    if can_move(scene, state, target):
        return target, False
    return AgentState(state.x, state.y, state.z, target.yaw, target.pitch), True
