"""Tasks: what earns reward in a MirageRoom episode.

* ``explore``: reward is the fraction of the room's visible surface newly
  seen this step (so an episode's rewards add up to its final coverage);
  the episode terminates when coverage reaches ``coverage_target``.
* ``goal``: a target object is drawn at reset and named in
  ``info["target"]``; reward is the decrease of the distance to it (dense
  progress, in metres) minus a small step cost, plus ``goal_bonus`` on
  reaching ``goal_radius_m`` of its surface, which terminates the episode.
* ``objectgoal``: "go to the <colour> <kind>". The room holds
  ``goal_objects`` plain objects (cube, sphere or pillar; each its own
  colour of red, green, blue, yellow; :mod:`mirage_gym.scenes.layout`), all
  in view of the start pose, which the room also fixes; the target is named
  by ``obs["goal"]`` (colour index, kind index) and ``info["target"]``. The
  furniture comes in the same palette, so a red table may stand beside the
  red cube. An object is *reached* when the agent is within
  ``goal_radius_m`` of its surface and facing it (its centre within
  ``goal_facing_deg`` of the heading). The first goal object reached ends
  the episode: success (``info["is_success"]``, plus ``goal_bonus``) if it
  is the target, a failure (minus WRONG_COST) otherwise. Shaping: the
  decrease of the distance to the target (m) plus the decrease of the
  heading error to it (rad), minus STEP_COST.
* ``none``: no reward, never terminates (free roaming, photos).

Every task's reward and termination are functions of the room and the
agent's poses only (never of the frames a world model draws), so the same
actions from the same seed score the same in every world model.
"""

from __future__ import annotations

import math

import numpy as np
from gymnasium import spaces

from ..scenes.layout import FURNITURE_KINDS, GOAL_COLORS, GOAL_KINDS
from ..scenes.textures import PALETTE

STEP_COST = 0.01
WRONG_COST = 1.0  # objectgoal: reaching a distractor
FACING_WEIGHT = 1.0  # objectgoal shaping: metres of progress per radian of heading error removed
GOAL_TASK_COLORS = tuple(PALETTE)  # the goal task's targets are furniture: any palette colour, any furniture kind


class Task:
    name = "none"

    def reset(self, scene, position: np.ndarray, rng: np.random.Generator, yaw: float = 0.0) -> dict:
        return {}

    def step(self, position: np.ndarray, coverage: float, coverage_gain: float, yaw: float = 0.0) -> tuple[float, bool, dict]:
        return 0.0, False, {}

    def goal_observation(self) -> np.ndarray:
        """The target as (colour index, kind index), for ``obs["goal"]``."""
        raise NotImplementedError(f"task {self.name!r} has no goal to observe")

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict, scene) -> None:
        """Restore :meth:`state_dict` in ``scene``, the room the snapshot was
        taken in (a task with targets looks them up there; the others ignore it)."""


class ExploreTask(Task):
    name = "explore"

    def __init__(self, coverage_target: float):
        self.coverage_target = float(coverage_target)

    def step(self, position, coverage, coverage_gain, yaw=0.0):
        return float(coverage_gain), coverage >= self.coverage_target, {}


class GoalTask(Task):
    name = "goal"

    def __init__(self, radius_m: float, bonus: float):
        self.radius_m = float(radius_m)
        self.bonus = float(bonus)
        self.target = None
        self.distance = 0.0

    def reset(self, scene, position, rng, yaw=0.0):
        objects = list(scene.objects)  # static furniture; moving objects make poor goals
        if not objects:
            raise RuntimeError(f"scene {scene.seed} has no static object to use as a goal")
        self.target = objects[int(rng.integers(len(objects)))]
        self.distance = float(self.target.distance_xy(position[:2]))
        return {"target": self.target.name}

    def step(self, position, coverage, coverage_gain, yaw=0.0):
        distance = float(self.target.distance_xy(position[:2]))
        reward = (self.distance - distance) - STEP_COST
        self.distance = distance
        success = distance <= self.radius_m
        if success:
            reward += self.bonus
        return float(reward), bool(success), {"target": self.target.name, "distance": float(distance), "is_success": bool(success)}

    def goal_observation(self):
        return np.array([GOAL_TASK_COLORS.index(self.target.color), FURNITURE_KINDS.index(self.target.kind)], np.int64)

    def state_dict(self):
        return {"target": None if self.target is None else self.target.name, "distance": self.distance}

    def load_state_dict(self, state, scene):
        self.distance = float(state["distance"])
        if state["target"] is not None:
            target = next((o for o in scene.objects if o.name == state["target"]), None)
            if target is None:
                raise ValueError(f"goal target {state['target']!r} is not an object of scene {scene.seed}; "
                                 "restore a snapshot taken in the same room")
            self.target = target


def heading_error(obj, position, yaw: float) -> float:
    """Angle (rad, in [0, pi]) between the heading ``yaw`` and the direction to the centre of ``obj``."""
    d = obj.center[:2] - np.asarray(position, dtype=np.float64)[:2]
    return abs(math.remainder(math.atan2(d[1], d[0]) - yaw, 2 * math.pi))


class ObjectGoalTask(Task):
    name = "objectgoal"

    def __init__(self, radius_m: float, facing_deg: float, bonus: float):
        self.radius_m = float(radius_m)
        self.facing = math.radians(float(facing_deg))
        self.bonus = float(bonus)
        self.objects: tuple = ()
        self.target = None
        self.target_index: int | None = None  # None: the room's own target
        self.potential = 0.0

    def _bind(self, scene) -> None:
        goal = getattr(scene, "object_goal", None)
        if goal is None:
            raise ValueError(f"scene {getattr(scene, 'seed', '?')} has no goal objects; the objectgoal task needs "
                             "ProceduralRoom(seed, goal_objects=N)")
        self.objects = goal.objects
        self.target = goal.objects[goal.target if self.target_index is None else self.target_index]

    def _potential(self, position, yaw) -> float:
        return -(float(self.target.distance_xy(position[:2])) + FACING_WEIGHT * heading_error(self.target, position, yaw))

    def reached(self, obj, position, yaw) -> bool:
        """Within reach of ``obj``'s surface and facing it."""
        return bool(obj.distance_xy(position[:2]) <= self.radius_m) and heading_error(obj, position, yaw) <= self.facing

    def reset(self, scene, position, rng, yaw=0.0):
        self._bind(scene)
        self.potential = self._potential(position, yaw)
        return {"target": self.target.name}

    def step(self, position, coverage, coverage_gain, yaw=0.0):
        potential = self._potential(position, yaw)
        reward = potential - self.potential - STEP_COST
        self.potential = potential
        success = self.reached(self.target, position, yaw)
        wrong = None if success else next((o for o in self.objects if o is not self.target and self.reached(o, position, yaw)), None)
        if success:
            reward += self.bonus
        elif wrong is not None:
            reward -= WRONG_COST
        info = {"target": self.target.name, "distance": float(self.target.distance_xy(position[:2])),
                "heading_error_deg": math.degrees(heading_error(self.target, position, yaw)),
                "reached": self.target.name if success else (None if wrong is None else wrong.name),
                "is_success": bool(success)}
        return float(reward), bool(success or wrong is not None), info

    def goal_observation(self):
        return np.array([GOAL_COLORS.index(self.target.color), GOAL_KINDS.index(self.target.kind)], np.int64)

    def state_dict(self):
        return {"target": None if self.target is None else self.target.name, "potential": self.potential}

    def load_state_dict(self, state, scene):
        self.potential = float(state["potential"])
        self._bind(scene)
        names = [o.name for o in self.objects]
        if state["target"] not in names:
            raise ValueError(f"objectgoal target {state['target']!r} is not a goal object of scene {scene.seed}; "
                             "restore a snapshot taken in the same room")
        self.target_index = names.index(state["target"])
        self.target = self.objects[self.target_index]


def goal_space(task: str) -> spaces.MultiDiscrete:
    """The space of ``obs["goal"]``: (colour index, kind index) of the target."""
    if task == "objectgoal":
        return spaces.MultiDiscrete([len(GOAL_COLORS), len(GOAL_KINDS)])
    if task == "goal":
        return spaces.MultiDiscrete([len(GOAL_TASK_COLORS), len(FURNITURE_KINDS)])
    raise ValueError(f"task {task!r} has no goal observation")


def make_task(cfg) -> Task:
    if cfg.task == "explore":
        return ExploreTask(cfg.coverage_target)
    if cfg.task == "goal":
        return GoalTask(cfg.goal_radius_m, cfg.goal_bonus)
    if cfg.task == "objectgoal":
        return ObjectGoalTask(cfg.goal_radius_m, cfg.goal_facing_deg, cfg.goal_bonus)
    return Task()
