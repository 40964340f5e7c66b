"""The env's configuration: one dataclass, filled from gym.make kwargs or a YAML file.

Every field is JSON-serialisable so Minari can rebuild an env from its spec.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, field
from typing import Any

from .. import limits
from ..limits import MAX_OBS_SIZE
from ..memory.point_memory import UPDATE_RULES
from .threads import DEFAULT_NUM_THREADS, check_num_threads

MEMORY_KINDS = ("latent", "rgb", "none")
TASKS = ("explore", "goal", "objectgoal", "none")
DEPTH_SOURCES = ("auto", "model", "scene")
SCENE_SPLITS = ("train", "eval")


def _is_number(v) -> bool:
    """A real number that is not a bool (YAML and numpy numbers included)."""
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


@dataclass
class EnvConfig:
    """All knobs of MirageRoom; see MirageRoomEnv's docstring for their meaning."""

    world_model: Any = "tiny"  # "tiny" | "oracle" | path | {"name": ..., ...} | WorldModel
    memory: str = "latent"  # "latent" (Mirage) | "rgb" (pixel-space baseline) | "none"
    frames_per_step: int = 4  # K frames generated per action
    obs_size: Any = None  # int or [H, W]; None: the world model's native size (tiny, oracle: 64; Wan: its folder's)
    memory_obs: bool = False  # add obs["memory"]: warped latent + mask at the current pose
    action_type: str = "discrete"  # "discrete" | "continuous"
    task: str = "explore"  # "explore" | "goal" | "objectgoal" | "none"
    return_gt: bool = False  # add info["gt_rgb"]
    device: str = "cpu"
    depth_source: str = "auto"  # depth for memory writes: "model" head, "scene" ground truth, "auto"
    scene: Any = None  # None: procedural rooms; a path to an image: start from a photo
    depth_model: Any = None  # photo start: a local transformers depth folder (AutoModelForDepthEstimation)
    scene_seeds: Any = "train"  # "train" (< 1e6) | "eval" (>= 1e6) | int | list of ints
    fov_deg: float = 90.0  # horizontal field of view
    fps: float = 8.0  # scene time per generated frame is 1 / fps seconds
    voxel_size: float = 0.15  # latent memory dedup voxel (m); the rgb memory uses voxel_size / downsample
    memory_capacity: int = 60_000  # tokens (latent) or points x downsample^2 (rgb)
    memory_update: str = "fill"  # what a write does where memory already holds the surface: fill | oldest | newest
    move_m: float = 0.25
    turn_deg: float = 15.0
    look_deg: float = 10.0
    max_pitch_deg: float = 60.0
    coverage_target: float = 0.8  # explore: episode ends at this coverage
    goal_radius_m: float = 0.75  # goal: success within this distance of the target's surface; objectgoal: reach
    goal_bonus: float = 10.0
    goal_objects: int = 4  # objectgoal: coloured objects in view at the start (the target and its distractors), 3-4
    goal_facing_deg: float = 30.0  # objectgoal: an object within reach counts when its centre is this close to the heading
    room_episodes: int = 1  # objectgoal: a sub-env's consecutive episodes in one room, each aiming at another of its objects
    goal_obs: Any = None  # add obs["goal"] (target colour, kind indices): None = for objectgoal only; true also for goal
    render_size: int = 256  # height of the render() debug view
    model_kwargs: dict = field(default_factory=dict)  # extra kwargs for load_world_model
    num_threads: Any = DEFAULT_NUM_THREADS  # torch intra-op threads for the env's work (restored after each call); None: torch's setting

    @classmethod
    def from_kwargs(cls, **kwargs) -> "EnvConfig":
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(kwargs) - set(names))
        if unknown:
            raise TypeError(f"MirageRoom got unknown argument(s) {unknown}; valid arguments: {', '.join(names)}")
        cfg = cls(**kwargs)
        cfg.validate()
        return cfg

    @property
    def observes_goal(self) -> bool:
        """Whether observations carry ``goal`` (see goal_obs)."""
        return self.task == "objectgoal" or (self.task == "goal" and self.goal_obs is True)

    @property
    def image_size(self) -> tuple[int, int] | None:
        """(H, W), or None for the world model's native size."""
        s = self.obs_size
        if s is None:
            return None
        return (int(s), int(s)) if isinstance(s, (int, float)) else (int(s[0]), int(s[1]))

    def validate(self) -> None:
        def choice(name, value, options):
            if value not in options:
                raise ValueError(f"{name}={value!r} is not valid; choose one of {list(options)}")

        choice("memory", self.memory, MEMORY_KINDS)
        choice("task", self.task, TASKS)
        choice("depth_source", self.depth_source, DEPTH_SOURCES)
        choice("memory_update", self.memory_update, UPDATE_RULES)
        choice("action_type", self.action_type, ("discrete", "continuous"))
        self.frames_per_step = limits.bounded_int("frames_per_step", self.frames_per_step, 1, limits.MAX_FRAMES_PER_STEP,
                                                  "frames generated per action; mirage_gym.limits says why")
        s = self.obs_size
        sizes = [64] if s is None else [s] if _is_number(s) else list(s) if isinstance(s, (list, tuple)) else None
        if not sizes or len(sizes) != (2 if isinstance(s, (list, tuple)) else 1) or \
                not all(_is_number(v) and math.isfinite(v) and int(v) == v and 8 <= v <= MAX_OBS_SIZE for v in sizes):
            raise ValueError(f"obs_size must be an integer in [8, {MAX_OBS_SIZE}], [height, width] of such integers, "
                             f"or None (the world model's native size), got {s!r}")
        if s is not None:  # numpy numbers become plain (JSON) ints
            self.obs_size = int(s) if _is_number(s) else [int(v) for v in sizes]
        if self.goal_obs is not None and not isinstance(self.goal_obs, bool):
            raise ValueError(f"goal_obs must be true, false or null, got {self.goal_obs!r}")
        if self.goal_obs is True and self.task not in ("goal", "objectgoal"):
            raise ValueError(f"goal_obs=True needs a task with a target ('goal' or 'objectgoal'), not task={self.task!r}")
        if self.goal_obs is False and self.task == "objectgoal":
            raise ValueError("the objectgoal task always observes its goal (obs['goal']); leave goal_obs unset")
        if not limits.is_int(self.goal_objects, 3, 4):
            raise ValueError(f"goal_objects must be an integer from 3 to 4, got {self.goal_objects!r}")
        if not limits.is_int(self.room_episodes, 1):
            raise ValueError(f"room_episodes must be a positive integer, got {self.room_episodes!r}")
        if not (_is_number(self.goal_facing_deg) and 0.0 < self.goal_facing_deg <= 180.0):
            raise ValueError(f"goal_facing_deg must be a number in (0, 180], got {self.goal_facing_deg!r}")
        for name in ("memory_obs", "return_gt"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r} "
                                 "(in YAML write true/false unquoted: a quoted 'false' is a non-empty string)")
        self._validate_device()
        check_num_threads(self.num_threads)
        if not isinstance(self.model_kwargs, dict) or not all(isinstance(k, str) for k in self.model_kwargs):
            raise ValueError(f"model_kwargs must be a mapping of keyword arguments for the world model, got {self.model_kwargs!r}")
        self.render_size = limits.bounded_int("render_size", self.render_size, 16, limits.MAX_RENDER_SIZE, "pixels of the render() view")
        if isinstance(self.scene_seeds, str):
            choice("scene_seeds", self.scene_seeds, SCENE_SPLITS)
        elif isinstance(self.scene_seeds, (list, tuple)):
            if not self.scene_seeds or not all(limits.is_int(v, 0) for v in self.scene_seeds):
                raise ValueError(f"scene_seeds list must hold non-negative ints, got {self.scene_seeds!r}")
        elif not limits.is_int(self.scene_seeds, 0):
            raise ValueError(f"scene_seeds must be 'train', 'eval', a non-negative int or a list of them, got {self.scene_seeds!r}")
        for name in ("fov_deg", "fps", "voxel_size", "move_m", "turn_deg", "look_deg", "max_pitch_deg", "goal_radius_m"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0 or v != v or v == float("inf"):
                raise ValueError(f"{name} must be a positive finite number, got {v!r}")
        self.fps = limits.bounded_float("fps", self.fps, limits.MIN_FPS, limits.MAX_FPS, "frames per second of scene time")
        self.max_pitch_deg = limits.bounded_float("max_pitch_deg", self.max_pitch_deg, 0.0, limits.MAX_PITCH_DEG,
                                                  "beyond 89 degrees the camera turns upside down", low_open=True)
        if not 0.0 < self.fov_deg < 170.0:
            raise ValueError(f"fov_deg must be in (0, 170), got {self.fov_deg!r}")
        if not (_is_number(self.coverage_target) and 0.0 < self.coverage_target <= 1.0):
            raise ValueError(f"coverage_target must be a number in (0, 1], got {self.coverage_target!r}")
        if not (_is_number(self.goal_bonus) and math.isfinite(self.goal_bonus)):
            raise ValueError(f"goal_bonus must be a finite number, got {self.goal_bonus!r}")
        self.memory_capacity = limits.bounded_int("memory_capacity", self.memory_capacity, 1, None)
        if self.depth_model is not None:
            if not isinstance(self.depth_model, str) or not self.depth_model:
                raise ValueError(f"depth_model must be the path of a local depth model folder, got {self.depth_model!r}")
            if self.scene is None:
                raise ValueError("depth_model gives a photo start its depth; it needs scene=<path to an image> "
                                 "(procedural rooms have exact depth)")
        if self.scene is not None and self.return_gt:
            raise ValueError("return_gt=True needs ground truth at every pose; a photo scene has it only at its first view")
        if self.scene is not None and self.task != "none":
            raise ValueError(f"task={self.task!r} needs the ground truth of a procedural room, which a photo scene lacks; use task='none'")

    def _validate_device(self) -> None:
        """The device must parse as a torch device; whether it exists is checked
        when the env is built (a YAML naming cuda must still import on a laptop)."""
        import torch

        if not isinstance(self.device, (str, torch.device)):
            raise ValueError(f"device must be a string such as 'cpu' or 'cuda', got {self.device!r}")
        try:
            torch.device(self.device)
        except (RuntimeError, ValueError, TypeError):
            raise ValueError(f"device={self.device!r} is not a torch device; use 'cpu', 'cuda' or 'cuda:N'") from None

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        if not isinstance(self.world_model, (str, dict)):
            d["world_model"] = getattr(self.world_model, "name", type(self.world_model).__name__)
        return d
