"""Scripted camera trajectories, shared by ``mirage-gym bench`` and ``mirage-gym eval``.

Everything here is expressed as env *actions* (:class:`mirage_gym.Action`)
and turned into camera poses by :func:`simulate`, which moves a camera body
exactly as the env does (``envs.actions.move_body``, the one collision
rule; the K frames of a step
follow ``geometry.camera_path``). So a benchmark that drives the memories
directly and one that steps the env see the same camera paths.

* :func:`room_tour` - a long tour: spins at the room centre (level, looking
  down, looking up), then walks to each corner of the room and spins there,
  then keeps walking between random free waypoints with a spin at each. The
  whole room is in view well within the first ~200 steps; afterwards the
  tour only revisits (the cache benchmark checks that memory stays flat).
* :func:`leave_and_return` - turn away by ``turn_steps`` x 15 degrees and
  turn back: the camera returns to the exact start pose.
* :func:`walk_out_and_back` - walk ``walk_steps`` x 0.25 m forward, turn
  180 degrees, walk back, turn 180 degrees: the start pose again. The start
  heading is chosen so that no move is blocked.
* :func:`near_actions` - small moves and turns around the start pose (the
  agent never gets more than 30 degrees, 10 degrees of pitch or 0.5 m away).
* :func:`forward_biased_actions` - a seeded random policy that mostly walks
  forward and turns away when a move is blocked.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np
import torch

from ..envs.actions import Action, AgentState, MotionConfig, action_to_motion, move_body
from ..geometry import camera_path

__all__ = [
    "Trajectory",
    "simulate",
    "centre_start",
    "room_tour",
    "leave_and_return",
    "walk_out_and_back",
    "loop_actions",
    "near_actions",
    "forward_biased_actions",
    "TRAJECTORIES",
]

FREE_RADIUS = 0.2  # the env's collision radius (ProceduralRoom.is_free default)


@dataclass
class Trajectory:
    """Camera poses of an action sequence.

    ``states[i]`` is the camera body before action ``i`` (``states[-1]`` after
    the last); ``paths[i]`` (K, 4, 4) the K frame poses of step ``i``;
    ``times[i]`` (K,) their scene times; ``collided[i]`` whether the move was
    blocked."""

    actions: list[Action]
    states: list[AgentState]
    paths: torch.Tensor  # (n, K, 4, 4)
    times: torch.Tensor  # (n, K)
    collided: list[bool]

    def __len__(self) -> int:
        return len(self.actions)

    @property
    def start_pose(self) -> list[float]:
        """``[x, y, yaw_deg]``: the env's ``reset(options={"pose": ...})`` form."""
        s = self.states[0]
        return [s.x, s.y, math.degrees(s.yaw)]


def step_state(room, state: AgentState, action, motion: MotionConfig = MotionConfig()) -> tuple[AgentState, bool]:
    """The body state after one discrete action, and whether it was blocked."""
    return move_body(room, state, action_to_motion(action, "discrete"), motion)


def final_state(room, start: AgentState, actions, motion: MotionConfig = MotionConfig()) -> AgentState:
    """Where ``actions`` leave the camera body (no poses computed)."""
    state = start
    for action in actions:
        state, _ = step_state(room, state, action, motion)
    return state


def simulate(room, start: AgentState, actions, frames_per_step: int = 4, fps: float = 8.0,
             motion: MotionConfig = MotionConfig()) -> Trajectory:
    """Poses of ``actions`` from ``start``, exactly as the env would move."""
    states, paths, times, collided = [start], [], [], []
    state, t = start, 0.0
    for action in actions:
        nxt, blocked = step_state(room, state, action, motion)
        paths.append(camera_path(state.c2w(), nxt.c2w(), frames_per_step))
        times.append(t + torch.arange(1, frames_per_step + 1, dtype=torch.float32) / fps)
        t = float(times[-1][-1])
        collided.append(blocked)
        states.append(nxt)
        state = nxt
    n = len(paths)
    return Trajectory(list(actions), states,
                      torch.stack(paths) if n else torch.zeros(0, frames_per_step, 4, 4),
                      torch.stack(times) if n else torch.zeros(0, frames_per_step), collided)


# ------------------------------------------------------------------- starts


def _nearest_free(room, xy) -> np.ndarray | None:
    z = room.eye_height
    p = np.array([xy[0], xy[1], z])
    if room.is_free(p, FREE_RADIUS + 0.05):
        return p
    for r in np.arange(0.1, 3.0, 0.1):
        for a in np.linspace(0, 2 * math.pi, 24, endpoint=False):
            q = p + np.array([r * math.cos(a), r * math.sin(a), 0.0])
            if room.is_free(q, FREE_RADIUS + 0.05):
                return q
    return None


def centre_start(room, yaw_deg: float = 0.0) -> AgentState:
    """A free level camera near the room centre (the nearest free point to it)."""
    lo, hi = room.bounds
    p = _nearest_free(room, ((lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2))
    if p is None:
        p = room.sample_position(np.random.default_rng(0))
    return AgentState(float(p[0]), float(p[1]), float(room.eye_height), math.radians(yaw_deg), 0.0)


# --------------------------------------------------------------------- tour


def _spin(pitch_steps: int = 0) -> list[Action]:
    """A full turn (24 x 15 deg) at a pitch of ``pitch_steps`` x 10 deg, then level again."""
    look = Action.LOOK_UP if pitch_steps > 0 else Action.LOOK_DOWN
    back = Action.LOOK_DOWN if pitch_steps > 0 else Action.LOOK_UP
    n = abs(pitch_steps)
    return [look] * n + [Action.TURN_LEFT] * 24 + [back] * n


class _Planner:
    """Walks a camera body to waypoints on a 0.25 m grid of free cells (BFS),
    aiming at the farthest path cell in straight-line sight."""

    def __init__(self, room, cell: float = 0.25):
        self.room, self.cell = room, cell
        lo, hi = room.bounds
        self.lo = np.asarray(lo[:2], dtype=np.float64)
        nx, ny = (int(math.ceil((hi[i] - lo[i]) / cell)) for i in range(2))
        xs, ys = self.lo[0] + (np.arange(nx) + 0.5) * cell, self.lo[1] + (np.arange(ny) + 0.5) * cell
        gx, gy = np.meshgrid(xs, ys, indexing="ij")
        pts = np.stack([gx.ravel(), gy.ravel(), np.full(gx.size, room.eye_height)], 1)
        self.free = room.is_free(pts, FREE_RADIUS + 0.05).reshape(nx, ny)
        self.centres = np.stack([gx, gy], -1)

    def _cell(self, xy) -> tuple[int, int]:
        i, j = ((np.asarray(xy[:2]) - self.lo) / self.cell).astype(int)
        return (int(np.clip(i, 0, self.free.shape[0] - 1)), int(np.clip(j, 0, self.free.shape[1] - 1)))

    def _free_cell_near(self, xy) -> tuple[int, int] | None:
        c = self._cell(xy)
        if self.free[c]:
            return c
        ij = np.argwhere(self.free)
        if not len(ij):
            return None
        d = np.linalg.norm(self.centres[ij[:, 0], ij[:, 1]] - np.asarray(xy[:2]), axis=1)
        return tuple(int(v) for v in ij[int(np.argmin(d))])

    def path(self, a, b) -> list[np.ndarray]:
        start, goal = self._free_cell_near(a), self._free_cell_near(b)
        if start is None or goal is None:
            return []
        prev = {start: None}
        queue = deque([start])
        while queue:
            c = queue.popleft()
            if c == goal:
                break
            for di in (-1, 0, 1):
                for dj in (-1, 0, 1):
                    n = (c[0] + di, c[1] + dj)
                    if n in prev or not (0 <= n[0] < self.free.shape[0] and 0 <= n[1] < self.free.shape[1]):
                        continue
                    if self.free[n]:
                        prev[n] = c
                        queue.append(n)
        if goal not in prev:
            return []
        cells, c = [], goal
        while c is not None:
            cells.append(self.centres[c])
            c = prev[c]
        return cells[::-1]

    def line_free(self, a, b) -> bool:
        a, b = np.asarray(a[:2], float), np.asarray(b[:2], float)
        n = max(2, int(np.linalg.norm(b - a) / 0.1) + 1)
        t = np.linspace(0, 1, n)[:, None]
        pts = a + t * (b - a)
        pts = np.concatenate([pts, np.full((n, 1), self.room.eye_height)], 1)
        return bool(np.all(self.room.is_free(pts, FREE_RADIUS)))

    def walk(self, state: AgentState, goal, max_steps: int = 80) -> tuple[list[Action], AgentState]:
        """Actions that bring ``state`` within 0.3 m of ``goal`` (or give up)."""
        actions: list[Action] = []
        route = self.path(state.position, goal)
        if not route:
            return actions, state
        goal = route[-1]  # the reachable free cell nearest the requested goal
        blocked_in_a_row = blocked_total = 0
        while len(actions) < max_steps and blocked_total < 6:
            pos = state.position[:2]
            if np.linalg.norm(pos - np.asarray(goal[:2])) < 0.3:
                break
            aim = np.asarray(goal[:2], float)
            if route and not self.line_free(pos, aim):
                # drop path cells already reached, then aim at the farthest one in sight (of the next 12)
                near = [i for i, c in enumerate(route) if np.linalg.norm(c - pos) < 0.2]
                if near:
                    route = route[near[-1] + 1:] or route[-1:]
                aim = route[0]
                for c in reversed(route[:12]):
                    if self.line_free(pos, c):
                        aim = c
                        break
            want = math.atan2(aim[1] - pos[1], aim[0] - pos[0])
            err = math.atan2(math.sin(want - state.yaw), math.cos(want - state.yaw))
            if abs(err) > math.radians(7.5):
                action = Action.TURN_LEFT if err > 0 else Action.TURN_RIGHT
            else:
                action = Action.FORWARD
            state, blocked = step_state(self.room, state, action)
            actions.append(action)
            blocked_in_a_row = blocked_in_a_row + 1 if blocked else 0
            blocked_total += int(blocked)
            if blocked_in_a_row >= 2:  # side-step and re-plan
                side, _ = step_state(self.room, state, Action.STRAFE_LEFT)
                state = side
                actions.append(Action.STRAFE_LEFT)
                route = self.path(state.position, goal)
                blocked_in_a_row = 0
        return actions, state


def room_tour(room, num_steps: int, start: AgentState | None = None, seed: int = 0) -> tuple[AgentState, list[Action]]:
    """A ``num_steps``-action tour of ``room`` (see module docstring).

    Returns the start state (near the centre, unless given) and the actions."""
    start = start or centre_start(room)
    planner = _Planner(room)
    actions = _spin(0) + _spin(-3) + _spin(3)
    state = final_state(room, start, actions)
    lo, hi = room.bounds
    inset = 0.9
    corners = [(lo[0] + inset, lo[1] + inset), (hi[0] - inset, lo[1] + inset),
               (hi[0] - inset, hi[1] - inset), (lo[0] + inset, hi[1] - inset)]
    rng = np.random.default_rng(seed)
    waypoints = [_nearest_free(room, c) for c in corners]
    k = 0
    while len(actions) < num_steps:
        if k < len(waypoints):
            goal = waypoints[k]
        else:
            goal = room.sample_position(rng)
        k += 1
        if goal is None:
            continue
        walk, state = planner.walk(state, goal)
        spin = _spin(0) if k % 2 else _spin(-2)
        actions += walk + spin
        state = final_state(room, state, spin)
    return start, actions[:num_steps]


# ---------------------------------------------------------- revisit loops


def leave_and_return(turn_steps: int = 12) -> list[Action]:
    """Turn left ``turn_steps`` x 15 deg, then back: ends at the start pose."""
    return [Action.TURN_LEFT] * turn_steps + [Action.TURN_RIGHT] * turn_steps


def walk_out_and_back(room, start: AgentState, walk_steps: int = 6) -> tuple[AgentState, list[Action]]:
    """Walk out ``walk_steps`` moves, turn around, walk back, turn around.

    Returns the start state (``start`` turned, in 15 degree increments, to the
    first heading along which every move is free) and the actions; the loop
    ends at the returned start pose."""
    half_turn = [Action.TURN_LEFT] * 12
    plan = [Action.FORWARD] * walk_steps + half_turn + [Action.FORWARD] * walk_steps + half_turn
    best, best_blocked = None, None
    for k in range(24):
        s = AgentState(start.x, start.y, start.z, start.yaw + math.radians(15 * k), start.pitch)
        blocked = sum(simulate(room, s, plan, frames_per_step=1).collided)
        if best is None or blocked < best_blocked:
            best, best_blocked = s, blocked
        if blocked == 0:
            break
    return best, plan


def loop_actions(kind: str, room=None, start: AgentState | None = None, size: int | None = None) -> tuple[AgentState | None, list[Action]]:
    """One loop of trajectory ``kind`` ("leave_and_return" | "walk_out_and_back")."""
    if kind == "leave_and_return":
        return start, leave_and_return(size or 12)
    if kind == "walk_out_and_back":
        if room is None or start is None:
            raise ValueError("walk_out_and_back needs the room and a start state")
        return walk_out_and_back(room, start, size or 6)
    raise ValueError(f"unknown trajectory {kind!r}; choose one of {TRAJECTORIES}")


TRAJECTORIES = ("leave_and_return", "walk_out_and_back")


# ------------------------------------------------------ agent trajectories

_L, _R, _F, _B, _SL, _SR, _U, _D = (Action.TURN_LEFT, Action.TURN_RIGHT, Action.FORWARD, Action.BACKWARD,
                                    Action.STRAFE_LEFT, Action.STRAFE_RIGHT, Action.LOOK_UP, Action.LOOK_DOWN)
# Small moves and turns around the start pose: +-30 degrees of turn, +-10 of
# pitch, 0.5 m forward and 0.25 m to either side; back at the start pose
# after steps 4, 8, 12, 14, 16, 18 and 20 (7 of the 20 frames re-show the start view).
NEAR = [_L, _L, _R, _R, _R, _R, _L, _L, _F, _F, _B, _B, _SR, _SL, _SL, _SR, _U, _D, _D, _U]


def near_actions(steps: int = len(NEAR)) -> list[Action]:
    """The first ``steps`` actions of ``NEAR`` (repeated if longer)."""
    return [NEAR[i % len(NEAR)] for i in range(steps)]


# forward-biased random policy: action probabilities while walking freely
_RANDOM_ACTIONS = [_F, _L, _R, _SL, _SR, _B]
_RANDOM_P = [0.6, 0.15, 0.15, 0.04, 0.04, 0.02]


def forward_biased_actions(room, start: AgentState, steps: int, seed: int,
                           motion: MotionConfig = MotionConfig()) -> list[Action]:
    """A seeded random walk that mostly moves forward (``_RANDOM_P``); after a
    blocked move it turns 3-8 steps one way (chosen at random) before drawing
    again. Planned against the room's free space with the env's motion rule,
    so the same seed gives the same actions every time."""
    rng = np.random.default_rng(seed)
    state, actions, queue = start, [], []
    while len(actions) < steps:
        if queue:
            action = queue.pop(0)
        else:
            action = _RANDOM_ACTIONS[int(rng.choice(len(_RANDOM_ACTIONS), p=_RANDOM_P))]
        state, blocked = step_state(room, state, action, motion)
        actions.append(action)
        if blocked and not queue:
            queue = [_L if rng.uniform() < 0.5 else _R] * int(rng.integers(3, 9))
    return actions
