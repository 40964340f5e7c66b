"""Training data, generated on the fly from procedural rooms (seeds < 1,000,000).

Camera motion uses the env's own action set and step sizes (envs.actions),
with collisions, and mixes random exploration with the two patterns the
memory exists for: turn away and come back, walk out and come back.
"""

from __future__ import annotations

import math

import numpy as np

from ..envs.actions import Action, AgentState, MotionConfig, action_to_motion, move_body
from ..geometry import intrinsics_from_fov, pose_from_yaw_pitch
from ..scenes import HELD_OUT_SEED_START, ProceduralRoom

RANDOM_ACTIONS = [Action.FORWARD] * 5 + [Action.TURN_LEFT, Action.TURN_RIGHT] * 2 + [
    Action.BACKWARD, Action.LOOK_UP, Action.LOOK_DOWN, Action.STRAFE_LEFT, Action.STRAFE_RIGHT, Action.STAY]
OPPOSITE = {Action.TURN_LEFT: Action.TURN_RIGHT, Action.TURN_RIGHT: Action.TURN_LEFT,
            Action.FORWARD: Action.BACKWARD, Action.BACKWARD: Action.FORWARD}


def random_scene(rng: np.random.Generator, held_out: bool = False) -> ProceduralRoom:
    """A room from the training seeds, or from the held-out ones for evaluation."""
    lo = HELD_OUT_SEED_START if held_out else 0
    return ProceduralRoom(int(rng.integers(lo, lo + HELD_OUT_SEED_START)))


def action_plan(rng: np.random.Generator, length: int) -> list[Action]:
    """A mix of random runs and leave-and-return excursions."""
    plan: list[Action] = []
    while len(plan) < length:
        kind = rng.random()
        if kind < 0.3:  # turn away >= 120 degrees (8+ turns of 15) and come back
            a = Action.TURN_LEFT if rng.random() < 0.5 else Action.TURN_RIGHT
            n = int(rng.integers(8, 13))
            plan += [a] * n + [OPPOSITE[a]] * n
        elif kind < 0.5:  # walk out and back
            n = int(rng.integers(3, 9))
            plan += [Action.FORWARD] * n + [Action.BACKWARD] * n
        else:  # random run with persistence
            a = RANDOM_ACTIONS[int(rng.integers(len(RANDOM_ACTIONS)))]
            plan += [a] * int(rng.integers(1, 5))
    return plan[:length]


def trajectory(scene, rng: np.random.Generator, length: int, motion: MotionConfig = MotionConfig()) -> list[AgentState]:
    """``length`` + 1 agent states from a random start, following an action plan."""
    c2w = scene.sample_pose(rng)
    fwd = np.asarray(c2w)[:3, 2]
    x, y, z = (float(v) for v in np.asarray(c2w)[:3, 3])
    state = AgentState(x, y, z, math.atan2(fwd[1], fwd[0]), 0.0)
    states = [state]
    for a in action_plan(rng, length):
        nxt, _ = move_body(scene, state, action_to_motion(a, "discrete"), motion)
        states.append(nxt)
        state = nxt
    return states


def render_views(scene, poses, K, size: int, times) -> dict:
    """Render poses (list of 4x4) at ``times``: rgb uint8 (N,H,W,3), depth (N,H,W), static (N,H,W)."""
    outs = [scene.render(c2w, K, size, size, t=float(t)) for c2w, t in zip(poses, times)]
    return {k: np.stack([o[k] for o in outs]) for k in ("rgb", "depth", "static")}


def random_views(rng: np.random.Generator, count: int, size: int, fov_deg: float = 90.0, held_out: bool = False) -> dict:
    """Independent random views of random rooms (for the VAE and geometry head)."""
    K = intrinsics_from_fov(fov_deg, size, size)
    scene = random_scene(rng, held_out)
    poses, times = [], []
    for i in range(count):
        if i and rng.random() < 0.25:
            scene = random_scene(rng, held_out)
        c2w = scene.sample_pose(rng)
        pos = np.asarray(c2w)[:3, 3]
        yaw = rng.uniform(-math.pi, math.pi)
        pitch = math.radians(rng.uniform(-45, 45))
        poses.append((scene, pose_from_yaw_pitch(pos, yaw, pitch)))
        times.append(rng.uniform(0, 60))
    outs = [s.render(c2w, K, size, size, t=float(t)) for (s, c2w), t in zip(poses, times)]
    return {k: np.stack([o[k] for o in outs]) for k in ("rgb", "depth", "static")}
