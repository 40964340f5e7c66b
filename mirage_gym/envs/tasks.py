"""Tasks: what earns reward in a MirageRoom episode.

* ``explore``: reward is the fraction of the room's visible surface newly
  seen this step (so an episode's rewards add up to its final coverage);
  the episode terminates when coverage reaches ``coverage_target``.
* ``goal``: a target object is drawn at reset and named in
  ``info["target"]``; reward is the decrease of the distance to it (dense
  progress, in metres) minus a small step cost, plus ``goal_bonus`` on
  reaching ``goal_radius_m`` of its surface, which terminates the episode.
* ``none``: no reward, never terminates (free roaming, photos).
"""

from __future__ import annotations

import numpy as np

STEP_COST = 0.01


class Task:
    name = "none"

    def reset(self, scene, position: np.ndarray, rng: np.random.Generator) -> dict:
        return {}

    def step(self, position: np.ndarray, coverage: float, coverage_gain: float) -> tuple[float, bool, dict]:
        return 0.0, False, {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class ExploreTask(Task):
    name = "explore"

    def __init__(self, coverage_target: float):
        self.coverage_target = float(coverage_target)

    def step(self, position, coverage, coverage_gain):
        return float(coverage_gain), coverage >= self.coverage_target, {}


class GoalTask(Task):
    name = "goal"

    def __init__(self, radius_m: float, bonus: float):
        self.radius_m = float(radius_m)
        self.bonus = float(bonus)
        self.target = None
        self.distance = 0.0

    def reset(self, scene, position, rng):
        objects = list(scene.objects)  # static furniture; moving objects make poor goals
        if not objects:
            raise RuntimeError(f"scene {scene.seed} has no static object to use as a goal")
        self.target = objects[int(rng.integers(len(objects)))]
        self.distance = float(self.target.distance_xy(position[:2]))
        return {"target": self.target.name}

    def step(self, position, coverage, coverage_gain):
        distance = float(self.target.distance_xy(position[:2]))
        reward = (self.distance - distance) - STEP_COST
        self.distance = distance
        success = distance <= self.radius_m
        if success:
            reward += self.bonus
        return float(reward), bool(success), {"target": self.target.name, "distance": float(distance), "is_success": bool(success)}

    def state_dict(self):
        return {"target": None if self.target is None else self.target.name, "distance": self.distance}

    def load_state_dict(self, state, scene=None):
        self.distance = float(state["distance"])
        if scene is not None and state["target"] is not None:
            target = next((o for o in scene.objects if o.name == state["target"]), None)
            if target is None:
                raise ValueError(f"goal target {state['target']!r} is not an object of scene {scene.seed}; "
                                 "restore a snapshot taken in the same room")
            self.target = target


def make_task(cfg) -> Task:
    if cfg.task == "explore":
        return ExploreTask(cfg.coverage_target)
    if cfg.task == "goal":
        return GoalTask(cfg.goal_radius_m, cfg.goal_bonus)
    return Task()
