"""Reference policies for the object-goal task (``MirageRoomObjectGoal*``).

* :class:`ObjectGoalExpert`: privileged. It reads the room, the target and
  the other goal objects from the simulation (``env.unwrapped.sim.episodes[i]``),
  plans the shortest way on a grid that keeps out of the distractors' reach,
  walks it and faces the target. It never looks at the frames: it is the
  ceiling, not a baseline.
* :class:`PoseOnlyPolicy`: blind. It reads only ``obs["pose"]``: it turns to a
  bearing drawn per episode within the start view (the target is somewhere
  in it), walks straight, and when a step is refused turns about 105 degrees
  and walks on (the pose-only policy of issue 20). ``bearing="straight"``
  walks straight ahead instead. What it scores is what a policy can get
  without the frames.

Both follow the discrete :class:`mirage_gym.Action` set and notice a new
episode by themselves (a reset, or a vector env's autoreset).
"""

from __future__ import annotations

import math

import numpy as np

from ..envs.actions import Action, AgentState, action_to_motion, move_body
from ..envs.tasks import heading_error


def _wrap(a: float) -> float:
    return math.remainder(a, 2 * math.pi)


class ObjectGoalExpert:
    """Walk the shortest way to the target and face it (privileged).

    A grid of ``grid_m`` cells over the room's free space (the env's 0.2 m
    body radius plus a margin) leaves out every cell within ``keep_off_m``
    of a distractor's surface; a Dijkstra from the cells within reach of the
    target gives each cell its path length. Each step it turns toward a
    waypoint down that path (the farthest of the next few cells in a straight
    free line) and walks; on a goal cell it turns to face the target. A step
    that would bump into something or reach a distractor (within reach and
    facing it) is replaced by a side step or a turn.

    Args:
        env: a MirageRoom object-goal env (any wrappers) or its vector env.
        index: which episode of a vector env it drives.
    """

    def __init__(self, env, index: int = 0, seed: int | None = None, grid_m: float = 0.1, keep_off_m: float = 0.3):
        base = getattr(env, "unwrapped", env)
        if not hasattr(base, "sim") or base.sim.cfg.task != "objectgoal":
            raise TypeError("ObjectGoalExpert needs an objectgoal MirageRoom env (e.g. MirageRoomObjectGoalOracle64-v0)")
        self.sim, self.index = base.sim, index
        self.turn = math.radians(self.sim.motion.turn_deg)
        self.grid_m, self.keep_off_m = float(grid_m), float(keep_off_m)
        self._key = None
        self.rng = np.random.default_rng(seed)

    def reset(self) -> None:
        self._key = None

    def __call__(self, obs=None) -> int:
        return self.act(obs)

    # ------------------------------------------------------------ the plan

    def _plan(self, ep) -> None:
        """Free cells, and each one's path length (in cells) to the target's reach."""
        scene, task = ep.scene, ep.task
        lo, hi = np.asarray(scene.bounds[0], float), np.asarray(scene.bounds[1], float)
        nx, ny = int((hi[0] - lo[0]) / self.grid_m), int((hi[1] - lo[1]) / self.grid_m)
        xy = lo[:2] + (np.stack(np.meshgrid(np.arange(nx), np.arange(ny), indexing="ij"), -1) + 0.5) * self.grid_m
        pts = xy.reshape(-1, 2)
        free = np.asarray(scene.is_free(np.concatenate([pts, np.full((len(pts), 1), scene.eye_height)], 1), radius=0.22))
        for o in task.objects:
            if o is not task.target:
                free &= o.distance_xy(pts) > self.keep_off_m
        goal = free & (task.target.distance_xy(pts) <= task.radius_m - 0.1)
        free, goal = free.reshape(nx, ny), goal.reshape(nx, ny)
        dist = np.where(goal, 0.0, np.inf)
        pad = np.full((nx + 2, ny + 2), np.inf)
        steps = [(di, dj, math.hypot(di, dj)) for di in (-1, 0, 1) for dj in (-1, 0, 1) if di or dj]
        for _ in range(nx * ny):
            pad[1:-1, 1:-1] = dist
            best = dist.copy()
            for di, dj, w in steps:
                np.minimum(best, pad[1 + di:nx + 1 + di, 1 + dj:ny + 1 + dj] + w, out=best)
            best[~free] = np.inf
            best[goal] = 0.0
            if np.array_equal(best, dist):
                break
            dist = best
        self._lo, self._shape, self._dist, self._xy = lo[:2], (nx, ny), dist, xy

    def _cell(self, x: float, y: float) -> tuple[int, int]:
        i = int(np.clip((x - self._lo[0]) // self.grid_m, 0, self._shape[0] - 1))
        j = int(np.clip((y - self._lo[1]) // self.grid_m, 0, self._shape[1] - 1))
        return i, j

    def _waypoint(self, a) -> np.ndarray | None:
        """Down the distance field from the agent's cell: the farthest of the next 8 cells in straight free sight."""
        i, j = self._cell(a.x, a.y)
        if not np.isfinite(self._dist[i, j]):  # off the grid's free cells (near a wall): the nearest reachable cell
            ok = np.argwhere(np.isfinite(self._dist))
            if not len(ok):
                return None
            k = int(np.argmin(np.hypot(*(self._xy[ok[:, 0], ok[:, 1]] - [a.x, a.y]).T)))
            return self._xy[tuple(ok[k])]
        path = [(i, j)]
        for _ in range(8):
            ci, cj = path[-1]
            nbrs = [(ci + di, cj + dj) for di in (-1, 0, 1) for dj in (-1, 0, 1) if (di or dj)
                    and 0 <= ci + di < self._shape[0] and 0 <= cj + dj < self._shape[1]]
            n = min(nbrs, key=lambda c: self._dist[c])
            if not self._dist[n] < self._dist[ci, cj]:
                break
            path.append(n)
        for c in reversed(path[1:]):
            if self._clear(a.x, a.y, *self._xy[c]):
                return self._xy[c]
        return self._xy[path[1]] if len(path) > 1 else None

    def _clear(self, x0, y0, x1, y1) -> bool:
        n = max(2, int(math.hypot(x1 - x0, y1 - y0) / 0.05) + 1)
        t = np.linspace(0.0, 1.0, n)[:, None]
        pts = np.array([x0, y0]) * (1 - t) + np.array([x1, y1]) * t
        ci = np.clip(((pts[:, 0] - self._lo[0]) // self.grid_m).astype(int), 0, self._shape[0] - 1)
        cj = np.clip(((pts[:, 1] - self._lo[1]) // self.grid_m).astype(int), 0, self._shape[1] - 1)
        return bool(np.isfinite(self._dist[ci, cj]).all())

    # ------------------------------------------------------------ acting

    def _next(self, ep, action: int) -> tuple[AgentState, bool]:
        """The agent state after ``action`` and whether the move is refused (the env's rule)."""
        return move_body(ep.scene, ep.agent, action_to_motion(action, "discrete"), self.sim.motion)

    def _safe(self, ep, state: AgentState) -> bool:
        task = ep.task
        return not any(task.reached(o, state.position, state.yaw) for o in task.objects if o is not task.target)

    def act(self, obs=None) -> int:
        ep = self.sim.episodes[self.index]
        task, a = ep.task, ep.agent
        key = (id(ep.scene), id(task.target), ep.steps == 0)
        if self._key is None or key[:2] != self._key[:2] or (ep.steps == 0 and self._key[2] is False):
            self._plan(ep)
        self._key = key
        if abs(a.pitch) > 1e-6:  # level the camera first
            return int(Action.LOOK_DOWN if a.pitch > 0 else Action.LOOK_UP)
        i, j = self._cell(a.x, a.y)
        at_goal = self._dist[i, j] == 0.0 or task.target.distance_xy(a.position[:2]) <= task.radius_m
        aim = task.target.center[:2] if at_goal else self._waypoint(a)
        if aim is None:
            aim = task.target.center[:2]
        err = _wrap(math.atan2(aim[1] - a.y, aim[0] - a.x) - a.yaw)  # left positive
        turn = Action.TURN_LEFT if err > 0 else Action.TURN_RIGHT
        facing = abs(err) <= self.turn / 2 + 1e-6
        side = [Action.STRAFE_LEFT, Action.STRAFE_RIGHT] if err > 0 else [Action.STRAFE_RIGHT, Action.STRAFE_LEFT]
        if facing and not at_goal:  # walk; if the step is refused, side-step rather than turn away and back
            order = [Action.FORWARD] + side + [turn]
        else:
            order = [turn, Action.FORWARD] + side
        for action in order + [Action.BACKWARD]:
            state, blocked = self._next(ep, int(action))
            if (action not in (Action.TURN_LEFT, Action.TURN_RIGHT) and blocked) or not self._safe(ep, state):
                continue
            return int(action)
        return int(turn)


class PoseOnlyPolicy:
    """A blind policy: reads only ``obs["pose"]`` (see the module docstring).

    Args:
        bearing: ``"random"`` (turn to a whole-turn bearing within +-45 deg,
            drawn per episode) or ``"straight"`` (keep the start heading).
        seed: seeds the bearings and the turn directions.
    """

    def __init__(self, env=None, bearing: str = "random", seed: int | None = None, turn_deg: float = 15.0,
                 half_view_deg: float = 45.0):
        if bearing not in ("random", "straight"):
            raise ValueError(f"bearing must be 'random' or 'straight', got {bearing!r}")
        self.bearing = bearing
        self.rng = np.random.default_rng(seed)
        self.max_turns = int(half_view_deg // turn_deg)
        self.away_turns = int(round(105.0 / turn_deg))
        self._queue: list[int] = []
        self._last_pose: np.ndarray | None = None
        self._last_action: int | None = None

    def reset(self) -> None:
        self._queue, self._last_pose, self._last_action = [], None, None

    def __call__(self, obs) -> int:
        return self.act(obs)

    def _start(self) -> None:
        k = int(self.rng.integers(-self.max_turns, self.max_turns + 1)) if self.bearing == "random" else 0
        self._queue = [int(Action.TURN_LEFT if k > 0 else Action.TURN_RIGHT)] * abs(k)

    def act(self, obs) -> int:
        pose = np.asarray(obs["pose"], dtype=np.float64)
        if self._last_pose is None or self._is_new_episode(pose):
            self._start()
        elif self._last_action == Action.FORWARD and np.allclose(pose[:3], self._last_pose[:3], atol=1e-7) and not self._queue:
            turn = Action.TURN_LEFT if self.rng.uniform() < 0.5 else Action.TURN_RIGHT
            self._queue = [int(turn)] * self.away_turns
        action = self._queue.pop(0) if self._queue else int(Action.FORWARD)
        self._last_pose, self._last_action = pose, action
        return action

    def _is_new_episode(self, pose: np.ndarray) -> bool:
        """A jump in position larger than one move (a reset or an autoreset)."""
        return float(np.linalg.norm(pose[:2] - self._last_pose[:2])) > 0.5


__all__ = ["ObjectGoalExpert", "PoseOnlyPolicy", "heading_error"]
