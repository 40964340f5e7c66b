"""A scripted explorer for MirageRoom: the expert behind imitation data.

It plans *next-best views* on a coarse top-down grid of the room. The
surface it still has to see is the room's visible surface (the voxels the
explore task counts) minus what the episode has seen so far (the coverage
map, or, for tasks without one, the voxels the latent memory holds). For
every free grid cell reachable from the agent and every heading it can
reach in whole turns, it counts the unseen voxels inside the camera's
horizontal field of view and range, divides by the number of actions it
takes to get there and turn (a Dijkstra path over free space plus turns),
and walks to the best one: turn toward the next waypoint, step forward,
turn to the planned heading on arrival, replan. Collisions (the env refuses
the move) trigger a short unstick manoeuvre and a replan.

``tour="leave_and_return"`` first runs a fixed tour that revisits the start
pose exactly twice, the moments at which a world model's memory is put to
the test: turn 180 degrees away and back in place; then turn to the free
heading at least 120 degrees from the start view with the longest straight
run (any heading if those are all blocked), walk out up to ``walk_steps`` steps, turn around, walk back the same
number of steps and turn to the start heading. Then it explores.

**Privileged information.** The explorer reads the simulation behind the
env (``env.unwrapped.sim.episodes[i]``): the room's free space
(``scene.is_free``), its visible-surface voxels, the coverage map and the
agent's exact pose. That is fine for an expert that generates imitation
data or a reference score; a learned agent sees only its observations.

Usage::

    env = gym.make("MirageRoomOracle64-v0")
    obs, info = env.reset(seed=0)
    explorer = ScriptedExplorer(env)               # or ScriptedExplorer(vector_env, index=i)
    while True:
        obs, reward, terminated, truncated, info = env.step(explorer.act(obs))
        if terminated or truncated:
            break

The explorer notices a new episode by itself (reset, or an autoreset of a
vector env), so one instance can drive many episodes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..envs.actions import Action
from ..envs.coverage import visible_surface_keys, voxel_keys

TOURS = ("explore", "leave_and_return")
_OFFSET = 1 << 20
_MASK = (1 << 21) - 1
_NEIGHBOURS = [(-1, 0, 1.0), (1, 0, 1.0), (0, -1, 1.0), (0, 1, 1.0),
               (-1, -1, math.sqrt(2)), (-1, 1, math.sqrt(2)), (1, -1, math.sqrt(2)), (1, 1, math.sqrt(2))]


def decode_voxel_keys(keys: np.ndarray, voxel_size: float) -> np.ndarray:
    """Inverse of :func:`mirage_gym.envs.coverage.voxel_keys`: voxel centres (N, 3)."""
    keys = np.asarray(keys, dtype=np.int64)
    idx = np.stack([(keys >> 42) & _MASK, (keys >> 21) & _MASK, keys & _MASK], 1) - _OFFSET
    return (idx.astype(np.float64) + 0.5) * voxel_size


def wrap_angle(a):
    """Angle(s) in radians wrapped to (-pi, pi]."""
    return np.arctan2(np.sin(a), np.cos(a))


@dataclass
class _Plan:
    cell: int  # index into the free-cell list
    yaw: float  # heading to face on arrival (radians, a whole number of turns from the current one)
    score: float
    age: int = 0
    to_goal: np.ndarray | None = None  # path lengths to the target cell (computed on first use)


@dataclass
class _EpisodeState:
    scene: object = None
    steps: int = -1
    cells: np.ndarray = None  # (F, 2) xy of free grid cells
    cell_index: dict = field(default_factory=dict)  # (i, j) -> cell
    ij: np.ndarray = None  # (F, 2) integer grid coordinates
    free_grid: np.ndarray = None  # (nx, ny) bool
    surface_keys: np.ndarray = None  # sorted int64 keys of visible surface voxels
    surface_xyz: np.ndarray = None  # (S, 3)
    plan: _Plan | None = None
    queue: list = field(default_factory=list)  # scripted actions still to run (tour, unstick)
    tour_phase: str = "done"
    tour_data: dict = field(default_factory=dict)
    yaw0: float = 0.0  # start heading: every reachable heading is yaw0 + k * turn
    visited: np.ndarray = None  # (F, n_headings) how often the agent stood in a cell facing a heading
    last_action: int | None = None
    last_xy: np.ndarray | None = None
    stuck: int = 0


class ScriptedExplorer:
    """Next-best-view explorer over the env's discrete actions (see module docstring).

    Args:
        env: a MirageRoom env (any wrappers) or a MirageRoomVectorEnv.
        index: which episode of the (vector) env this explorer drives.
        tour: ``"explore"`` or ``"leave_and_return"`` (fixed revisit tour first).
        seed: seeds the tie-breaking and unstick choices.
        grid_m: planning grid cell size (m); one FORWARD moves ``move_m`` (0.25 m).
        clearance_m: free-space margin of planning cells (the env itself refuses moves closer than 0.2 m).
        view_range_m: unseen voxels farther than this do not count for a view.
        replan_every: re-pick the target view after this many steps even if not reached.
        walk_steps: steps walked out (and back) by the leave-and-return tour.
        max_points: unseen voxels considered per plan (subsampled beyond that, for speed).
        view_stride: candidate views stand on every ``view_stride``-th grid cell (and the current one).
    """

    ARRIVE = 0.6  # a target cell counts as reached within this many move lengths

    def __init__(self, env, index: int = 0, tour: str = "explore", seed: int | None = None, grid_m: float = 0.25,
                 clearance_m: float = 0.3, view_range_m: float = 6.0, replan_every: int = 8, walk_steps: int = 8,
                 max_points: int = 1200, view_stride: int = 2):
        if tour not in TOURS:
            raise ValueError(f"tour must be one of {TOURS}, got {tour!r}")
        self.env = env
        base = getattr(env, "unwrapped", env)
        if not hasattr(base, "sim"):
            raise TypeError("ScriptedExplorer needs a MirageRoom env (gym.make('MirageRoom...')) or its vector env")
        self.sim = base.sim
        if self.sim.cfg.action_type != "discrete":
            raise ValueError("ScriptedExplorer acts through the discrete Action set; make the env with action_type='discrete'")
        if not 0 <= index < len(self.sim.episodes):
            raise IndexError(f"index {index} out of range for {len(self.sim.episodes)} episode(s)")
        self.index = index
        self.tour = tour
        self.grid_m = float(grid_m)
        self.clearance_m = float(clearance_m)
        self.view_range_m = float(view_range_m)
        self.replan_every = int(replan_every)
        self.walk_steps = int(walk_steps)
        self.max_points = int(max_points)
        self.view_stride = int(view_stride)
        self.rng = np.random.default_rng(seed)
        motion = self.sim.motion
        self.turn = math.radians(motion.turn_deg)
        self.move = motion.move_m
        self.half_fov = math.radians(self.sim.cfg.fov_deg) / 2
        H, W = self.sim.image_size
        self.half_vfov = math.atan(math.tan(self.half_fov) * H / W)
        self.n_head = int(round(2 * math.pi / self.turn))
        self._state = _EpisodeState()

    # ------------------------------------------------------------------ public

    def reset(self) -> None:
        """Forget the current episode (the next act() starts afresh). Optional:
        a new episode is also detected automatically."""
        self._state = _EpisodeState()

    def __call__(self, obs=None) -> int:
        return self.act(obs)

    def act(self, obs=None) -> int:
        """The next action (an int of :class:`mirage_gym.Action`) for the episode's current state."""
        ep = self.sim.episodes[self.index]
        if ep.agent is None:
            raise RuntimeError("reset the env before asking the explorer for an action")
        st = self._state
        if st.scene is not ep.scene or ep.steps < st.steps or (ep.steps == 0 and st.steps != 0):
            st = self._state = self._new_episode(ep)
        self._observe_outcome(ep, st)
        action = self._choose(ep, st)
        st.steps = ep.steps
        st.last_action = int(action)
        st.last_xy = np.array([ep.agent.x, ep.agent.y])
        return int(action)

    # ------------------------------------------------------------------ episode set-up

    def _new_episode(self, ep) -> _EpisodeState:
        scene = ep.scene
        if not getattr(scene, "has_ground_truth", False) or not hasattr(scene, "is_free"):
            raise ValueError("ScriptedExplorer plans over a procedural room's free space and geometry; "
                             f"{type(scene).__name__} has none (use the random policy, or a procedural room)")
        st = _EpisodeState(scene=scene, steps=ep.steps)
        lo, hi = np.asarray(scene.bounds[0], float), np.asarray(scene.bounds[1], float)
        self._origin = lo[:2]
        nx = int(math.floor((hi[0] - lo[0]) / self.grid_m))
        ny = int(math.floor((hi[1] - lo[1]) / self.grid_m))
        ii, jj = np.meshgrid(np.arange(nx), np.arange(ny), indexing="ij")
        ij = np.stack([ii.ravel(), jj.ravel()], 1)
        xy = lo[:2] + (ij + 0.5) * self.grid_m
        free = np.asarray(scene.is_free(np.concatenate([xy, np.full((len(xy), 1), scene.eye_height)], 1), radius=self.clearance_m), bool)
        st.ij, st.cells = ij[free], xy[free]
        st.free_grid = free.reshape(nx, ny)
        st.yaw0 = float(ep.agent.yaw)
        st.visited = np.zeros((len(st.cells), self.n_head))
        st.cell_index = {(int(a), int(b)): k for k, (a, b) in enumerate(st.ij)}
        keys = visible_surface_keys(scene, self.sim.cfg.voxel_size).cpu().numpy()
        st.surface_keys = keys
        st.surface_xyz = decode_voxel_keys(keys, self.sim.cfg.voxel_size)
        if self.tour == "leave_and_return":
            st.tour_phase = "turn_away"
            a = ep.agent
            st.tour_data = {"x": a.x, "y": a.y, "yaw": a.yaw}
            half = int(round(math.pi / self.turn))  # 180 degrees away, then back
            st.queue = [Action.TURN_LEFT] * half + [Action.TURN_RIGHT] * half
        return st

    # ------------------------------------------------------------------ feedback

    def _observe_outcome(self, ep, st: _EpisodeState) -> None:
        """Notice a refused move (the position did not change)."""
        if st.last_action in (Action.FORWARD, Action.BACKWARD, Action.STRAFE_LEFT, Action.STRAFE_RIGHT) and st.last_xy is not None:
            moved = not np.allclose(st.last_xy, [ep.agent.x, ep.agent.y], atol=1e-9)
            if st.tour_phase in ("walk_out", "walk_back") and st.last_action == Action.FORWARD:
                if moved:
                    st.tour_data["walked"] = st.tour_data.get("walked", 0) + (1 if st.tour_phase == "walk_out" else -1)
            if not moved:
                st.stuck += 1
                if st.tour_phase in ("walk_out",):
                    st.queue = []  # stop walking out here; the walk back retraces what was walked
                elif st.tour_phase == "walk_back":
                    st.tour_phase, st.queue = "done", []
                else:
                    turn = Action.TURN_LEFT if self.rng.uniform() < 0.5 else Action.TURN_RIGHT
                    st.queue = [turn] * int(self.rng.integers(2, 6))
                    st.plan = None
            else:
                st.stuck = 0

    # ------------------------------------------------------------------ policy

    def _choose(self, ep, st: _EpisodeState) -> int:
        if not st.queue and st.tour_phase != "done":
            self._advance_tour(ep, st)
        if st.queue:
            return st.queue.pop(0)
        return self._explore(ep, st)

    def _advance_tour(self, ep, st: _EpisodeState) -> None:
        """Queue the next phase of the leave-and-return tour."""
        a, d = ep.agent, st.tour_data
        if st.tour_phase == "turn_away":
            # walk out along the free heading >= 120 deg from the start view with the longest straight
            # run; if all of those are blocked within half the walk, along the longest run of any heading
            runs = {k: self._free_run(ep.scene, a.x, a.y, a.yaw + k * self.turn, self.walk_steps) for k in range(-11, 13)}
            away = [k for k in runs if abs(float(wrap_angle(k * self.turn))) >= math.radians(120) - 1e-6]
            pool = away if max(runs[k] for k in away) * 2 >= self.walk_steps else list(runs)
            k = max(pool, key=lambda k: (runs[k], abs(float(wrap_angle(k * self.turn)))))
            best = ((runs[k], 0), k)
            (run, _), k = best
            d["out_turns"], d["walked"] = k, 0
            st.queue = self._turns(k) + [Action.FORWARD] * run
            st.tour_phase = "walk_out"
        elif st.tour_phase == "walk_out":
            half = int(round(math.pi / self.turn))
            st.queue = [Action.TURN_LEFT] * half + [Action.FORWARD] * d.get("walked", 0)
            st.tour_phase = "walk_back"
        elif st.tour_phase == "walk_back":
            # facing out_turns + 180 deg from the start heading: turn back to it the short way
            half = int(round(math.pi / self.turn))
            k = -(d["out_turns"] + half)
            k = (k + half) % (2 * half) - half
            st.queue = self._turns(k)
            st.tour_phase = "done"
        if not st.queue:
            st.tour_phase = "done"

    def _free_run(self, scene, x, y, yaw, max_steps, radius: float = 0.45) -> int:
        """How many FORWARD steps along ``yaw`` stay ``radius`` clear of walls and
        furniture from (x, y) (the env itself refuses moves closer than 0.2 m)."""
        c, s = math.cos(yaw), math.sin(yaw)
        z = scene.eye_height
        for n in range(max_steps):
            end = np.array([x + (n + 1) * self.move * c, y + (n + 1) * self.move * s, z])
            mid = np.array([x + (n + 0.5) * self.move * c, y + (n + 0.5) * self.move * s, z])
            if not (scene.is_free(end, radius=radius) and scene.is_free(mid, radius=radius)):
                return n
        return max_steps

    @staticmethod
    def _turns(k: int) -> list:
        return [Action.TURN_LEFT] * k if k >= 0 else [Action.TURN_RIGHT] * (-k)

    # ------------------------------------------------------------------ next-best view

    def _unseen(self, ep, st: _EpisodeState) -> np.ndarray:
        keys = st.surface_keys
        if len(keys) == 0:
            return np.zeros((0, 3))
        if ep.coverage is not None:
            seen = ep.coverage.seen.cpu().numpy()
        elif ep.memory is not None and ep.memory.num_tokens:  # no coverage map (goal / none task): what memory holds
            seen = np.unique(voxel_keys(ep.memory.positions.detach().float().cpu(), self.sim.cfg.voxel_size).numpy())
        else:
            seen = np.zeros(0, np.int64)
        unseen = ~np.isin(keys, seen, assume_unique=True)
        pts = st.surface_xyz[unseen]
        if len(pts) > self.max_points:
            pts = pts[self.rng.choice(len(pts), self.max_points, replace=False)]
        return pts

    def _distances_from(self, st: _EpisodeState, start: int) -> np.ndarray:
        """Shortest 8-connected path length (in grid cells) from cell ``start`` to
        every free cell: Bellman-Ford relaxation on the grid, vectorised."""
        free = st.free_grid
        dist = np.full(free.shape, np.inf)
        dist[tuple(st.ij[start])] = 0.0
        padded = np.full((free.shape[0] + 2, free.shape[1] + 2), np.inf)
        for _ in range(free.size):
            padded[1:-1, 1:-1] = dist
            best = dist.copy()
            for di, dj, w in _NEIGHBOURS:
                np.minimum(best, padded[1 + di:padded.shape[0] - 1 + di, 1 + dj:padded.shape[1] - 1 + dj] + w, out=best)
            best[~free] = np.inf
            if np.array_equal(best, dist):
                break
            dist = best
        return dist[st.ij[:, 0], st.ij[:, 1]]

    def _nearest_cell(self, st: _EpisodeState, x: float, y: float) -> int | None:
        if len(st.cells) == 0:
            return None
        return int(np.argmin(np.sum((st.cells - [x, y]) ** 2, 1)))

    def _heading_index(self, st: _EpisodeState, yaw: float) -> int:
        return int(round(float(wrap_angle(yaw - st.yaw0)) / self.turn)) % self.n_head

    def _view_gains(self, st: _EpisodeState, pts: np.ndarray, cells: np.ndarray, eye: float) -> np.ndarray:
        """(len(cells), n_headings) count of unseen points in view from each cell at
        each heading yaw0 + k * turn (no occlusion test: the room's visible
        surface is already restricted to what free space can see)."""
        n_head = self.n_head
        gains = np.zeros((len(cells), n_head), np.float32)
        if len(pts) == 0 or len(cells) == 0:
            return gains
        pts = pts.astype(np.float32)
        d = pts[None, :, :2] - st.cells[cells].astype(np.float32)[:, None, :]  # (C, P, 2)
        r = np.hypot(d[..., 0], d[..., 1])
        ok = (r > 0.3) & (r < self.view_range_m) & (np.abs(pts[None, :, 2] - eye) < r * (math.tan(self.half_vfov) * 0.95))
        # bearing bins relative to yaw0; the modulo wraps, so no explicit angle wrap is needed
        b = np.rint((np.arctan2(d[..., 1], d[..., 0]) - st.yaw0) / self.turn).astype(np.int64) % n_head
        flat = (np.arange(len(cells))[:, None] * n_head + b)[ok]
        hist = np.bincount(flat, minlength=len(cells) * n_head).reshape(len(cells), n_head).astype(np.float32)
        # a heading sees the bins within the field of view (a half-bin margin at the edges)
        reach = max(0, int(math.floor(self.half_fov / self.turn - 0.5)))
        for k in range(-reach, reach + 1):
            gains += np.roll(hist, -k, axis=1)
        return gains

    def _plan(self, ep, st: _EpisodeState, start: int) -> _Plan | None:
        pts = self._unseen(ep, st)
        if len(pts) == 0:
            return None
        dist = self._distances_from(st, start)
        # candidate views: reachable cells on a lattice of every `view_stride`-th cell, and the current cell
        lattice = (st.ij[:, 0] % self.view_stride == 0) & (st.ij[:, 1] % self.view_stride == 0)
        lattice[start] = True
        reach = np.flatnonzero(np.isfinite(dist) & lattice)
        a = ep.agent
        # gains per (cell, heading yaw0 + k*turn), discounted where the agent already stood and looked
        gains = self._view_gains(st, pts, reach, a.z) * 0.5 ** st.visited[reach]
        n_head = self.n_head
        # headings relative to the current one (index 0 = facing as now)
        k_now = self._heading_index(st, a.yaw)
        gains = np.roll(gains, -k_now, axis=1)
        head = np.arange(n_head)
        turns_here = np.minimum(head, n_head - head)
        # cost to a cell: its path length in moves, turns to face the path, turns on arrival
        to_cell = st.cells[reach] - [a.x, a.y]
        bearing = np.round(wrap_angle(np.arctan2(to_cell[:, 1], to_cell[:, 0]) - a.yaw) / self.turn).astype(int) % n_head
        moves = dist[reach] * self.grid_m / self.move
        turn_out = np.minimum(bearing, n_head - bearing)
        arrive = np.abs(((head[None, :] - bearing[:, None]) + n_head // 2) % n_head - n_head // 2)
        here = dist[reach] == 0
        cost = np.where(here[:, None], turns_here[None, :], moves[:, None] + turn_out[:, None] + arrive)
        score = gains / (cost + 1.0)
        # a view the agent already has (this spot, this heading) is never a plan
        arrived = here | (np.hypot(to_cell[:, 0], to_cell[:, 1]) < self.ARRIVE * self.move)
        score[arrived, 0] = -np.inf
        best = np.unravel_index(int(np.argmax(score)), score.shape)
        if not gains[best] > 0:
            return None
        return _Plan(cell=int(reach[best[0]]), yaw=float(wrap_angle(a.yaw + best[1] * self.turn)), score=float(score[best]))

    def _explore(self, ep, st: _EpisodeState, depth: int = 0) -> int:
        a = ep.agent
        here = self._nearest_cell(st, a.x, a.y)
        if here is None or depth > 1:
            return Action.TURN_LEFT
        if depth == 0:
            # every cell the agent counts as "arrived at" gets this view marked, not only the nearest:
            # otherwise a plan for a neighbouring cell within the arrival radius never loses its gain and
            # the agent ping-pongs between two headings there (scene 396751 did for 2,000 steps)
            near = np.hypot(*(st.cells - [a.x, a.y]).T) < self.ARRIVE * self.move
            near[here] = True
            st.visited[near, self._heading_index(st, a.yaw)] += 1
        if st.plan is None or st.plan.age >= self.replan_every:
            st.plan = self._plan(ep, st, here)
        if st.plan is None:  # nothing left to see (or nowhere to go): scan in place
            return Action.TURN_LEFT
        st.plan.age += 1
        target = st.cells[st.plan.cell]
        offset = target - [a.x, a.y]
        if np.hypot(*offset) < self.ARRIVE * self.move or here == st.plan.cell:
            # arrived: face the planned heading
            dyaw = float(wrap_angle(st.plan.yaw - a.yaw))
            if abs(dyaw) < self.turn / 2:
                st.plan = None
                return self._explore(ep, st, depth + 1)  # replan from here
            return Action.TURN_LEFT if dyaw > 0 else Action.TURN_RIGHT
        waypoint = self._waypoint(ep, st, here, st.plan.cell)
        dyaw = float(wrap_angle(math.atan2(waypoint[1] - a.y, waypoint[0] - a.x) - a.yaw))
        if abs(dyaw) > self.turn / 2 + 1e-9:
            return Action.TURN_LEFT if dyaw > 0 else Action.TURN_RIGHT
        return Action.FORWARD

    def _waypoint(self, ep, st: _EpisodeState, here: int, goal: int) -> np.ndarray:
        """The farthest cell, up to 4 cells down the path, in straight free sight."""
        if st.plan is not None and st.plan.cell == goal:
            if st.plan.to_goal is None:
                st.plan.to_goal = self._distances_from(st, goal)
            dist = st.plan.to_goal
        else:
            dist = self._distances_from(st, goal)
        path = [here]
        c = here
        for _ in range(4):
            i, j = st.ij[c]
            nbrs = [st.cell_index.get((int(i + di), int(j + dj))) for di, dj, _ in _NEIGHBOURS]
            nbrs = [n for n in nbrs if n is not None]
            if not nbrs:
                break
            n = min(nbrs, key=lambda n: dist[n])
            if dist[n] >= dist[c]:
                break
            path.append(n)
            c = n
            if c == goal:
                break
        a = ep.agent
        for c in reversed(path[1:]):
            if self._clear_line(ep.scene, a.x, a.y, *st.cells[c]):
                return st.cells[c]
        return st.cells[path[1]] if len(path) > 1 else st.cells[goal]

    def _clear_line(self, scene, x0, y0, x1, y1) -> bool:
        n = max(2, int(math.hypot(x1 - x0, y1 - y0) / 0.1) + 1)
        t = np.linspace(0.0, 1.0, n)[:, None]
        pts = np.concatenate([np.array([x0, y0]) * (1 - t) + np.array([x1, y1]) * t, np.full((n, 1), scene.eye_height)], 1)
        return bool(np.all(scene.is_free(pts, radius=0.22)))


class RandomPolicy:
    """Uniform random discrete actions (the baseline), seeded."""

    def __init__(self, env=None, seed: int | None = None, num_actions: int = len(Action)):
        self.rng = np.random.default_rng(seed)
        self.num_actions = num_actions

    def reset(self) -> None:
        pass

    def __call__(self, obs=None) -> int:
        return self.act(obs)

    def act(self, obs=None) -> int:
        return int(self.rng.integers(self.num_actions))
