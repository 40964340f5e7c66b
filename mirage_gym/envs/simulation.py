"""The maths of MirageRoom for a batch of episodes, shared by the single env
and its vector twin (the single env is a batch of one).

One step, for every stepped episode at once (docs/design.md):

    action -> camera path (K poses)            actions.move_body, geometry.camera_path
           -> memory read at the K poses       warped latents + masks + depth
           -> world_model.generate             K new latents (+ depth, static prob)
           -> world_model.decode_segment       K frames
           -> memory write (static filter)     the generated latents themselves
           -> task: reward, terminated         ground-truth coverage / distance
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..geometry import (camera_path, depth_to_grid, intrinsics_from_fov, mask_to_grid, pose_to_vec7, scale_intrinsics,
                        yaw_pitch_from_pose)
from .. import limits
from ..images import to_model, to_uint8
from ..memory import LatentSpatialMemory, RGBPointCloudMemory, memory_prior
from ..models import SegmentRequest, load_world_model
from ..models.safe_loading import refuse_pickles
from ..scenes import HELD_OUT_SEED_START, NoSpaceForGoals, ProceduralRoom
from .actions import AgentState, MotionConfig, move_body
from .config import EnvConfig
from .coverage import CoverageMap
from . import snapshot
from .tasks import Task, make_task
from .threads import env_threads, intra_op_threads

# Coverage (the explore reward) is counted on its own ground-truth view, one ray
# per COVERAGE_STRIDE x COVERAGE_STRIDE pixels of the observation, rendered from
# the scene at the step's last pose and time. It never reads what the world
# model made (its frames, depth or latent grid), so the same actions from the
# same seed give the same rewards in every world model and memory setting.
COVERAGE_STRIDE = 4
# objectgoal: a drawn room without space for the goal objects (about one
# room in six) is skipped for another draw, at most this many times
MAX_ROOM_DRAWS = 64


@dataclass
class Episode:
    """Everything that changes during one episode (a snapshot copies all of it)."""

    rng: np.random.Generator
    generator: torch.Generator
    scene: object = None
    agent: AgentState = None
    time: float = 0.0
    steps: int = 0
    memory: object = None
    coverage: CoverageMap = None
    task: Task = None
    room_episodes: int = 0  # objectgoal: episodes run in the current room (see EnvConfig.room_episodes)
    context_latent: torch.Tensor = None  # (C, h, w)
    context_c2w: torch.Tensor = None  # (4, 4)
    last_rgb: np.ndarray = None  # (H, W, 3) the frame the agent sees now


@dataclass
class StepResult:
    obs: dict
    reward: float
    terminated: bool
    info: dict


class MirageSimulation:
    """Holds the world model (shared) and B episodes (each with its own memory)."""

    def __init__(self, cfg: EnvConfig, num_episodes: int):
        self.cfg = cfg
        self.device = torch.device(cfg.device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device={cfg.device!r} but this torch build sees no CUDA GPU (torch.cuda.is_available() is False); "
                             "use device='cpu', or install a CUDA build of torch on a machine with a GPU")
        size = cfg.image_size  # None: the world model's native size
        with intra_op_threads(cfg.num_threads):
            self.world_model = load_world_model(cfg.world_model, image_size=size, device=cfg.device, **cfg.model_kwargs)
        H, W = size or (int(v) for v in self.world_model.image_size)
        if tuple(self.world_model.image_size) != (H, W):
            raise ValueError(f"world model {self.world_model.name!r} makes {self.world_model.image_size} frames but obs_size is {(H, W)}; "
                             f"set obs_size={list(self.world_model.image_size)}")
        self.image_size = (H, W)
        self.latent_size = self.world_model.latent_size
        self.K_image = intrinsics_from_fov(cfg.fov_deg, H, W)
        self.K_latent = scale_intrinsics(self.K_image, (H, W), self.latent_size)
        self.coverage_size = (max(1, round(H / COVERAGE_STRIDE)), max(1, round(W / COVERAGE_STRIDE)))
        self.K_coverage = scale_intrinsics(self.K_image, (H, W), self.coverage_size)
        self.motion = MotionConfig(cfg.move_m, cfg.turn_deg, cfg.look_deg, cfg.max_pitch_deg)
        self._frame_times = torch.arange(1, cfg.frames_per_step + 1, dtype=torch.float32) / cfg.fps  # (K,) after the step's start
        if cfg.depth_source == "auto":
            self.depth_from_scene = self.world_model.needs_scene
        else:
            self.depth_from_scene = cfg.depth_source == "scene"
        if self.depth_from_scene and cfg.scene is not None:
            raise ValueError("depth_source='scene' needs a procedural room; a photo has no ground-truth depth beyond its first view")
        self._photo = None
        self.episodes = [Episode(rng=np.random.default_rng(i), generator=torch.Generator(device=self.device).manual_seed(i))
                         for i in range(num_episodes)]

    # ------------------------------------------------------------------ helpers

    @property
    def latent_channels(self) -> int:
        return self.world_model.latent_channels

    def _new_memory(self):
        f = self.world_model.downsample
        if self.cfg.memory == "latent":
            return LatentSpatialMemory(voxel_size=self.cfg.voxel_size, capacity=self.cfg.memory_capacity, device=self.device,
                                       update=self.cfg.memory_update, align_depth=not self.depth_from_scene)
        if self.cfg.memory == "rgb":
            return RGBPointCloudMemory(voxel_size=self.cfg.voxel_size / f, capacity=self.cfg.memory_capacity * f * f, device=self.device,
                                       update=self.cfg.memory_update, align_depth=not self.depth_from_scene)
        return None

    def _scene(self, current, seed):
        """The episode's world: the photo (built once), or the procedural room
        of ``seed`` (built once per process: ProceduralRoom.cached).
        The objectgoal task's rooms also hold its goal objects (a room without
        space for them raises NoSpaceForGoals)."""
        if self.cfg.scene is not None:
            if self._photo is None:
                from ..scenes.photo import PhotoScene

                self._photo = PhotoScene(self.cfg.scene, fov_deg=self.cfg.fov_deg, depth_estimator=self._photo_depth())
            return self._photo
        if current is not None and current.seed == seed:
            return current
        return ProceduralRoom.cached(seed, goal_objects=self.cfg.goal_objects if self.cfg.task == "objectgoal" else 0)

    def _photo_depth(self):
        """The photo's depth model: ``depth_model``'s folder, else the world model's own (Wan has one), else None
        (PhotoScene then assumes a flat wall and warns)."""
        if self.cfg.depth_model is None:
            return getattr(self.world_model, "depth_estimator", None)
        from pathlib import Path

        from ..models.depth import DepthEstimator

        folder = Path(self.cfg.depth_model).expanduser()
        if not (folder / "config.json").is_file():
            raise ValueError(f"depth_model {str(folder)!r} is not a transformers model folder (no config.json); download one "
                             "once, e.g. `hf download depth-anything/Depth-Anything-V2-Small-hf --local-dir <folder>`")
        refuse_pickles(folder)
        return DepthEstimator.from_pretrained(folder, device=self.device)

    def _draw_scene(self, current, rng: np.random.Generator, options: dict):
        """The episode's room: options' scene_seed, or a draw from scene_seeds
        (objectgoal: drawn again while a room has no space for the goal objects)."""
        if self.cfg.scene is not None:
            return self._scene(current, None)
        for _ in range(MAX_ROOM_DRAWS):
            seed = self._scene_seed(rng, options)
            try:
                return self._scene(current, seed)
            except NoSpaceForGoals:
                if "scene_seed" in options:
                    raise ValueError(f"room {seed} has no space for {self.cfg.goal_objects} goal objects in view "
                                     "(about one room in six); pick another scene_seed, or omit it") from None
                if limits.is_int(self.cfg.scene_seeds):
                    raise ValueError(f"scene_seeds={seed}: that room has no space for {self.cfg.goal_objects} goal objects "
                                     "in view; pick another seed") from None
        raise ValueError(f"no room among {MAX_ROOM_DRAWS} draws from scene_seeds={self.cfg.scene_seeds!r} has space for "
                         f"{self.cfg.goal_objects} goal objects; use more seeds or fewer goal_objects")

    @staticmethod
    def check_reset_options(options) -> dict:
        """Validate ``reset(options=...)`` without touching any episode; return it as a dict."""
        if options is None:
            return {}
        if not isinstance(options, Mapping):
            raise ValueError(f"reset options must be a dict such as {{'scene_seed': 3, 'pose': [x, y, yaw_deg]}} or None, "
                             f"got {type(options).__name__}")
        options = dict(options)
        unknown = set(options) - {"scene_seed", "pose"}
        if unknown:
            raise ValueError(f"unknown reset option(s) {sorted(unknown, key=str)}; valid options: 'scene_seed', 'pose' ([x, y, yaw_deg])")
        if "scene_seed" in options:
            seed = options["scene_seed"]
            limits.bounded_int("options['scene_seed']", seed, 0, None)
        if "pose" in options:
            try:
                pose = np.asarray(options["pose"], dtype=np.float64)
            except (TypeError, ValueError):
                pose = None
            if pose is None or pose.shape != (3,) or not np.isfinite(pose).all():
                raise ValueError(f"options['pose'] must be [x, y, yaw_deg] (finite), got {options['pose']!r}")
        return options

    def _scene_seed(self, rng: np.random.Generator, options: dict) -> int:
        if "scene_seed" in options:
            return int(options["scene_seed"])
        spec = self.cfg.scene_seeds
        if spec == "train":
            return int(rng.integers(0, HELD_OUT_SEED_START))
        if spec == "eval":
            return int(rng.integers(HELD_OUT_SEED_START, 2 * HELD_OUT_SEED_START))
        if isinstance(spec, (list, tuple)):
            return int(spec[int(rng.integers(len(spec)))])
        return int(spec)

    def _render_truth(self, scene, c2w, t: float, size=None, K=None):
        H, W = size or self.image_size
        return scene.render(c2w, self.K_image if K is None else K, H, W, t=t)

    def _static_depth(self, depth: torch.Tensor, static: torch.Tensor) -> torch.Tensor:
        return torch.where(static.bool(), depth, torch.full_like(depth, math.inf))

    def _update_coverage(self, ep, c2w, t: float, view=None) -> float:
        """Count what the ground-truth camera at ``c2w`` (time ``t``) sees; return the newly covered fraction.
        The one coverage path for every world model (see COVERAGE_STRIDE). ``view``: that render's
        (depth, static) when it was already traced along with the frame (the same values)."""
        if view is None:
            h, w = self.coverage_size
            r = ep.scene.render_batch(torch.as_tensor(c2w)[None], self.K_coverage, h, w, t=float(t), rgb=False)  # geometry only
            view = r["depth"][0], r["static"][0]
        depth = self._static_depth(torch.from_numpy(view[0]), torch.from_numpy(view[1]))
        return ep.coverage.update(depth, self.K_coverage, c2w)

    # ------------------------------------------------------------------ transactions

    def _checkpoint(self, ep: Episode) -> tuple:
        """Everything a step or a reset may change in ``ep``, cheaply: the
        fields by reference (a reset replaces the objects it changes), the
        RNG states, the memory's storage references, the coverage flags and
        the task's scalars (the objects a step changes in place)."""
        task = None if ep.task is None else (ep.task, dict(vars(ep.task)))
        coverage = None if ep.coverage is None else (ep.coverage, ep.coverage.checkpoint())
        return (dict(vars(ep)), None if ep.rng is None else ep.rng.bit_generator.state, ep.generator.get_state(),
                None if ep.memory is None else (ep.memory, ep.memory.checkpoint()), coverage, task)

    @staticmethod
    def _rollback(ep: Episode, checkpoint: tuple) -> None:
        fields, rng_state, torch_state, memory, coverage, task = checkpoint
        vars(ep).update(fields)
        if ep.rng is not None:
            ep.rng.bit_generator.state = rng_state
        ep.generator.set_state(torch_state)
        if memory is not None:
            memory[0].rollback(memory[1])
        if coverage is not None:
            coverage[0].rollback(coverage[1])
        if task is not None:
            vars(task[0]).clear()
            vars(task[0]).update(task[1])

    @contextmanager
    def transaction(self, indices):
        """Changes to episodes ``indices`` inside the block are all or nothing:
        on any exception (KeyboardInterrupt included) they are put back as
        they were, RNG states included, and the exception propagates."""
        saved = [(self.episodes[i], self._checkpoint(self.episodes[i])) for i in indices]
        try:
            yield
        except BaseException:
            for ep, checkpoint in saved:
                self._rollback(ep, checkpoint)
            raise

    @property
    def coverage_view(self) -> tuple:
        """(K, h, w) of the coverage render, for a renderer that traces it along with a frame."""
        return (self.K_coverage, *self.coverage_size)

    # ------------------------------------------------------------------ reset

    def reset_episode(self, index: int, rng: np.random.Generator, options: dict | None = None) -> tuple[dict, dict]:
        """Start episode ``index`` with the env's seeded ``rng``: a transaction
        (on failure the episode and ``rng`` are as before, so a rejected reset leaves no trace)."""
        options = self.check_reset_options(options)
        rng_state = rng.bit_generator.state
        try:
            with self.transaction([index]):
                return self._reset_episode(index, rng, options)
        except BaseException:
            rng.bit_generator.state = rng_state
            raise

    # inference_mode rather than no_grad: nothing the env makes is ever
    # differentiated, and skipping autograd's version counters and view
    # tracking makes each of a step's few hundred small torch ops cheaper
    # (oracle env, same-process A/B: 273-282 -> 311-342 steps per CPU-second,
    # identical frames).
    @env_threads
    @torch.inference_mode()
    def _reset_episode(self, index: int, rng: np.random.Generator, options: dict) -> tuple[dict, dict]:
        ep = self.episodes[index]
        # Everything that can fail on user input happens before the episode changes.
        reuse = False
        if self.cfg.task == "objectgoal":  # the room's draw can repeat: the generator's seed comes after it
            reuse = (ep.scene is not None and 0 < ep.room_episodes < self.cfg.room_episodes
                     and ep.room_episodes < len(ep.scene.object_goal.objects) and "scene_seed" not in options)
            scene = ep.scene if reuse else self._draw_scene(ep.scene, rng, options)
            generator = torch.Generator(device=self.device).manual_seed(int(rng.integers(0, 2**62)))
        else:
            seed = None if self.cfg.scene is not None else self._scene_seed(rng, options)
            generator = torch.Generator(device=self.device).manual_seed(int(rng.integers(0, 2**62)))
            scene = self._scene(ep.scene, seed)
        if "pose" in options:
            pose = np.asarray(options["pose"], dtype=np.float64)
            if not scene.is_free(np.array([pose[0], pose[1], scene.eye_height])):
                raise ValueError(f"options['pose'] position {pose[:2].tolist()} is not free space in scene {seed}; "
                                 "pick a point inside the room away from furniture (scene.is_free tells), or omit 'pose'")
            agent = AgentState(float(pose[0]), float(pose[1]), float(scene.eye_height), math.radians(pose[2]), 0.0)
        elif self.cfg.task == "objectgoal":  # the room fixes the start: every goal object is in its view
            x, y, yaw = scene.object_goal.start
            agent = AgentState(float(x), float(y), float(scene.eye_height), float(yaw), 0.0)
        else:
            c2w = scene.sample_pose(rng)
            yaw, pitch = yaw_pitch_from_pose(c2w)
            x, y, z = (float(v) for v in np.asarray(c2w)[:3, 3])
            agent = AgentState(x, y, z, yaw, pitch)
        ep.rng, ep.generator, ep.scene, ep.agent = rng, generator, scene, agent
        ep.time, ep.steps = 0.0, 0
        ep.memory = self._new_memory()
        ep.coverage = CoverageMap(scene, self.cfg.voxel_size) if self.cfg.task == "explore" else None
        ep.task = make_task(self.cfg)
        if self.cfg.task == "objectgoal":  # the room's own target first, then its other objects in turn
            ep.room_episodes = ep.room_episodes + 1 if reuse else 1
            goal = scene.object_goal
            ep.task.target_index = (goal.target + ep.room_episodes - 1) % len(goal.objects)
        task_info = ep.task.reset(scene, ep.agent.position, rng, yaw=ep.agent.yaw)

        # The start image is a real render of the room, as Mirage starts from a real image.
        c2w = ep.agent.c2w()
        fused = ep.coverage is not None and isinstance(scene, ProceduralRoom)  # the coverage view in the same trace
        truth = scene.render(c2w, self.K_image, *self.image_size, t=0.0, geometry=self.coverage_view) if fused else \
            self._render_truth(scene, c2w, 0.0)
        image = to_model(truth["rgb"], device=self.device)  # (1, 3, H, W)
        latent = self.world_model.encode(image)[0]
        depth_full = torch.from_numpy(truth["depth"])
        static_full = torch.from_numpy(truth["static"])
        h, w = self.latent_size
        write_depth_full, write_static_full = depth_full, static_full
        if self.depth_from_scene or not scene.has_ground_truth:  # a photo's own (estimated) depth seeds the memory
            depth, static = depth_to_grid(depth_full, h, w), mask_to_grid(static_full, h, w)
        else:
            depth, static_prob = self.world_model.estimate_geometry(latent[None], image)
            depth, static = depth[0].cpu(), static_prob[0].cpu() > 0.5
            # Both memories write the same estimate: the pixel baseline must not get
            # ground-truth geometry for the start frame while the latent memory does not.
            write_depth_full, write_static_full = self._full_resolution(depth, static)
        self._write(ep, latent, depth, static, c2w, truth["rgb"], write_depth_full, write_static_full, observed=True)
        ep.context_latent, ep.context_c2w = latent, c2w
        if ep.coverage is not None:
            self._update_coverage(ep, c2w, 0.0, (truth["geometry_depth"], truth["geometry_static"]) if fused else None)
        info = self._info(ep, truth["rgb"][None], collided=False)
        info.update(task_info)
        if self.cfg.return_gt:
            info["gt_rgb"] = truth["rgb"]
        return self._obs(ep, truth["rgb"]), info

    # ------------------------------------------------------------------ step

    @env_threads
    def step(self, indices: list[int], motions: list[np.ndarray]) -> list[StepResult]:
        """Advance episodes ``indices`` by one action each, in one batched model
        call: a transaction (a step that raises leaves every episode as it was)."""
        with self.transaction(indices):
            return self._step(indices, motions)

    @torch.inference_mode()
    def _step(self, indices: list[int], motions: list[np.ndarray]) -> list[StepResult]:
        cfg, K = self.cfg, self.cfg.frames_per_step
        eps = [self.episodes[i] for i in indices]
        collided, paths, times = [], [], []
        for ep, motion in zip(eps, motions):
            target, blocked = move_body(ep.scene, ep.agent, motion, self.motion)
            collided.append(blocked)
            paths.append(camera_path(ep.agent.c2w(), target.c2w(), K))
            times.append(ep.time + self._frame_times)
            ep.agent = target
        paths_t = torch.stack(paths)  # (B, K, 4, 4)
        times_t = torch.stack(times)  # (B, K)
        if self.world_model.reads_memory:
            mem_latent, mem_mask, mem_depth, mem_observed = self._read_batch(eps, paths_t)
        else:  # nobody would look at the read (the oracle renders ground truth)
            mem_latent = mem_mask = mem_depth = mem_observed = None
        prior = self._prior_batch(eps, paths_t) if self.world_model.uses_room_prior else None
        request = SegmentRequest(
            c2w=paths_t.to(self.device), K=self.K_image, context_latent=torch.stack([ep.context_latent for ep in eps]),
            context_c2w=torch.stack([ep.context_c2w for ep in eps]).to(self.device),
            memory_latent=mem_latent, memory_mask=mem_mask, memory_depth=mem_depth, memory_observed=mem_observed, times=times_t,
            scenes=[ep.scene for ep in eps], generators=[ep.generator for ep in eps],
            geometry_view=self.coverage_view if any(ep.coverage is not None for ep in eps) else None, memory_prior=prior,
        )
        segment = self.world_model.generate(request)
        # (B, K, 3, H, W) float frames, only where they are read: to make uint8 frames, or a model's depth estimate
        needs_float = segment.rgb is None or self._geometry_source(segment) == "estimate"
        frames_f = self.world_model.decode_segment(segment, K) if needs_float else None
        if segment.rgb is not None:  # the model's exact images (the oracle's renders)
            frames = segment.rgb
        else:
            frames = to_uint8(frames_f.flatten(0, 1)).reshape(len(eps), K, *self.image_size, 3)
        depth, static, depth_full, static_full = self._write_geometry(eps, segment, paths_t, times_t, frames_f)

        results = []
        lat_index = segment.frame_index
        for b, ep in enumerate(eps):
            for l in range(lat_index.numel()):
                k = int(lat_index[l])
                self._write(ep, segment.latents[b, l], depth[b, l], static[b, l], paths_t[b, k], frames[b, k],
                            None if depth_full is None else depth_full[b, l], None if static_full is None else static_full[b, l],
                            observed=False)
            ep.context_latent, ep.context_c2w = segment.latents[b, -1], paths_t[b, int(lat_index[-1])]
            ep.time = float(times_t[b, -1])
            ep.steps += 1
            gain = 0.0
            if ep.coverage is not None:
                view = None if segment.geometry is None else (segment.geometry[0][b], segment.geometry[1][b])
                gain = self._update_coverage(ep, paths_t[b, -1], float(times_t[b, -1]), view)
            reward, terminated, task_info = ep.task.step(ep.agent.position, self.coverage(ep), gain, yaw=ep.agent.yaw)
            info = self._info(ep, frames[b], collided[b])
            info.update(task_info)
            if cfg.return_gt:
                info["gt_rgb"] = frames[b, -1] if self.world_model.needs_scene else \
                    self._render_truth(ep.scene, paths_t[b, -1], ep.time)["rgb"]
            results.append(StepResult(self._obs(ep, frames[b, -1]), reward, terminated, info))
        return results

    def _prior_batch(self, eps, paths):
        """The room prior of each episode's memory at every target pose (memory/room_prior.py),
        latent (B, K, C, h, w): zeros without a memory; the pixel memory's prior is made on
        the latent grid in RGB, upsampled and encoded."""
        B, K = paths.shape[:2]
        h, w = self.latent_size
        if self.cfg.memory == "none":
            return torch.zeros(B, K, self.latent_channels, h, w, device=self.device)
        priors = torch.stack([memory_prior(ep.memory, self.K_latent, paths[b], h, w) for b, ep in enumerate(eps)]).to(self.device)
        if self.cfg.memory == "latent":
            return priors
        images = F.interpolate(priors.flatten(0, 1), size=self.image_size, mode="bilinear", align_corners=False)
        with torch.no_grad():
            return self.world_model.encode(images).unflatten(0, (B, K))

    def _read_batch(self, eps, paths):
        """Memory warped to every target pose: latent (B,K,C,h,w), then mask,
        depth and the observed share of each cell, each (B,K,h,w)."""
        B, K = paths.shape[:2]
        h, w = self.latent_size
        C = self.latent_channels
        if self.cfg.memory == "none":
            empty = torch.zeros(B, K, h, w, device=self.device)
            return torch.zeros(B, K, C, h, w, device=self.device), empty, torch.full((B, K, h, w), math.inf, device=self.device), empty
        if self.cfg.memory == "latent":
            views = [ep.memory.read(self.K_latent, paths[b], h, w) for b, ep in enumerate(eps)]
            return tuple(torch.stack([getattr(v, name) for v in views]).to(self.device)
                         for name in ("latent", "mask", "depth", "observed"))
        # Pixel-space baseline: render RGB at full resolution, then VAE-encode every render (batched).
        H, W = self.image_size
        views = [ep.memory.read(self.K_image, paths[b], H, W) for b, ep in enumerate(eps)]
        images = torch.stack([v.rgb for v in views]).flatten(0, 1).to(self.device)  # (B*K, 3, H, W)
        with torch.no_grad():
            latent = self.world_model.encode(images).unflatten(0, (B, K))
        f = self.world_model.downsample
        full_mask = torch.stack([v.mask for v in views]).flatten(0, 1)[:, None].float()  # (B*K, 1, H, W)
        full_observed = torch.stack([v.observed for v in views]).flatten(0, 1)[:, None]
        mask = F.avg_pool2d(full_mask, f)
        observed = F.avg_pool2d(full_observed * full_mask, f) / mask.clamp(min=1e-6)  # share of each cell's content
        depth = depth_to_grid(torch.stack([v.depth for v in views]), h, w)
        return latent, mask[:, 0].unflatten(0, (B, K)).to(self.device), depth.to(self.device), \
            observed[:, 0].unflatten(0, (B, K)).to(self.device)

    def _geometry_source(self, segment) -> str:
        """Where the depth and static mask of a step's writes come from (one decision):

        * ``"segment"``: the world model's own output for the segment. With
          ``depth_source='scene'`` only from a model that draws the scene
          (its depth is then the scene's truth on the latent grid), and not
          for the pixel memory, which needs the truth at full resolution.
        * ``"scene"``: the scene's ground truth at each written frame's pose and
          time (``depth_source='scene'`` otherwise).
        * ``"estimate"``: the world model's geometry head on the generated
          latents and their decoded frames (a model without depth output).
        """
        if self.depth_from_scene:
            from_model = segment.depth is not None and self.world_model.needs_scene and self.cfg.memory != "rgb"
            return "segment" if from_model else "scene"
        return "segment" if segment.depth is not None else "estimate"

    def _write_geometry(self, eps, segment, paths, times, frames_f):
        """Depth and static mask (B, L, h, w) for each written latent frame, and
        at full resolution (B, L, H, W) for the pixel memory (else None), from
        the source :meth:`_geometry_source` names."""
        source = self._geometry_source(segment)
        if source == "scene":
            return self._scene_geometry(eps, paths, times, segment.frame_index)
        if source == "segment":
            depth, static = segment.depth.cpu(), segment.static.cpu() > 0.5
        else:
            depth, static = self._estimated_geometry(segment, frames_f)
        depth_full, static_full = self._full_resolution(depth, static) if self.cfg.memory == "rgb" else (None, None)
        return depth, static, depth_full, static_full

    def _scene_geometry(self, eps, paths, times, lat_index):
        """The scene's ground truth at the written frames' poses: rendered at
        full resolution, and pooled onto the latent grid."""
        h, w = self.latent_size
        renders = [[self._render_truth(ep.scene, paths[b, int(k)], float(times[b, int(k)])) for k in lat_index]
                   for b, ep in enumerate(eps)]
        depth_full = torch.stack([torch.stack([torch.from_numpy(r["depth"]) for r in row]) for row in renders])
        static_full = torch.stack([torch.stack([torch.from_numpy(r["static"]) for r in row]) for row in renders])
        return depth_to_grid(depth_full, h, w), mask_to_grid(static_full, h, w), depth_full, static_full

    def _estimated_geometry(self, segment, frames_f):
        """The world model's geometry head on the written latents and their decoded frames."""
        B, L = segment.latents.shape[:2]
        lat = segment.latents.flatten(0, 1)
        imgs = frames_f[:, segment.frame_index].flatten(0, 1)
        d, s = self.world_model.estimate_geometry(lat, imgs)
        return d.cpu().unflatten(0, (B, L)), (s.cpu() > 0.5).unflatten(0, (B, L))

    def _full_resolution(self, depth: torch.Tensor, static: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A latent-grid estimate (..., h, w) spread over its pixels (..., H, W),
        for the pixel-space memory (each pixel takes its token's value)."""
        f = self.world_model.downsample
        return (depth.repeat_interleave(f, -2).repeat_interleave(f, -1),
                static.repeat_interleave(f, -2).repeat_interleave(f, -1))

    def _write(self, ep, latent, depth, static, c2w, rgb, depth_full, static_full, observed: bool):
        """Store one frame in the episode's memory; ``observed``: a real image (the start frame), not a generated one."""
        if self.cfg.memory == "latent":
            ep.memory.write(latent, depth, self.K_latent, c2w, static_mask=static, observed=observed)
        elif self.cfg.memory == "rgb":
            ep.memory.write(rgb, depth_full, self.K_image, c2w, static_mask=static_full, observed=observed)

    # ------------------------------------------------------------------ observations

    def coverage(self, ep) -> float:
        return ep.coverage.fraction if ep.coverage is not None else 0.0

    def memory_observation(self, ep) -> np.ndarray:
        """Warped latent + mask at the current pose: float32 (C+1, h, w)."""
        paths = ep.agent.c2w()[None, None]
        latent, mask, _, _ = self._read_batch([ep], paths)
        return torch.cat([latent[0, 0], mask[0, 0][None]]).float().cpu().numpy()

    @env_threads
    def observation(self, index: int) -> dict:
        """The current observation of episode ``index`` (after a reset or set_state)."""
        ep = self.episodes[index]
        return self._obs(ep, ep.last_rgb)

    def _obs(self, ep, rgb: np.ndarray) -> dict:
        ep.last_rgb = rgb
        obs = {"rgb": np.ascontiguousarray(rgb), "pose": pose_to_vec7(ep.agent.c2w()).numpy().astype(np.float32)}
        if self.cfg.observes_goal:
            obs["goal"] = ep.task.goal_observation()
        if self.cfg.memory_obs:
            obs["memory"] = self.memory_observation(ep)
        return obs

    def _info(self, ep, frames: np.ndarray, collided: bool) -> dict:
        mem = ep.memory
        return {
            "frames": frames,
            "c2w": ep.agent.c2w().numpy(),
            "memory_tokens": 0 if mem is None else int(mem.num_tokens),
            "memory_bytes": 0 if mem is None else int(mem.nbytes),
            "coverage": self.coverage(ep),
            "collided": bool(collided),
            "scene_seed": ep.scene.seed,
            "time": float(ep.time),
        }

    # ------------------------------------------------------------------ snapshots

    @env_threads
    def get_state(self, index: int) -> dict:
        ep = self.episodes[index]
        if ep.agent is None:
            raise RuntimeError("get_state() before reset(): there is no episode to snapshot")
        return copy.deepcopy({
            "version": snapshot.STATE_VERSION,
            "config": self.cfg.to_dict(),
            "weights": self.world_model.weights_digest(),
            "scene_seed": ep.scene.seed,
            "agent": ep.agent.as_list(),
            "time": ep.time,
            "steps": ep.steps,
            "room_episodes": ep.room_episodes,
            "memory": None if ep.memory is None else ep.memory.state_dict(),
            "coverage": None if ep.coverage is None else ep.coverage.state_dict(),
            "task": ep.task.state_dict(),
            "context_latent": ep.context_latent.cpu(),
            "context_c2w": ep.context_c2w.cpu(),
            "last_rgb": ep.last_rgb,
            "np_rng": ep.rng.bit_generator.state,
            "torch_rng": ep.generator.get_state(),
        })

    @env_threads
    def set_state(self, index: int, state: dict) -> None:
        """Restore a snapshot from get_state(). Validate fully, then apply:
        the snapshot must come from an env with the same config and weights,
        and every value is checked (types, shapes, finite, in range, the agent
        in free space; :mod:`.snapshot`) and every object rebuilt first; on any
        problem it raises ValueError and the episode is unchanged."""
        snapshot.check(state, self.cfg, latent_shape=(self.latent_channels, *self.latent_size), image_size=self.image_size,
                       native_size=tuple(self.world_model.image_size), weights=self.world_model.weights_digest())
        state = copy.deepcopy(state)
        ep = self.episodes[index]
        with snapshot.restoring():
            scene = self._scene(ep.scene, state["scene_seed"])
            agent = snapshot.check_agent(scene, state["agent"], self.cfg.max_pitch_deg)
            memory = self._restore_memory(state["memory"])
            coverage = None
            if state["coverage"] is not None:
                coverage = CoverageMap(scene, self.cfg.voxel_size)
                coverage.load_state_dict(state["coverage"])
            task = make_task(self.cfg)
            task.load_state_dict(state["task"], scene)
            snapshot.check_task(task, state["task"])
            rng = np.random.default_rng()
            rng.bit_generator.state = state["np_rng"]
            generator = torch.Generator(device=self.device)
            generator.set_state(state["torch_rng"])
        # ---- all checked and built; nothing below can fail
        ep.scene, ep.memory, ep.coverage, ep.task, ep.agent = scene, memory, coverage, task, agent
        ep.time, ep.steps, ep.room_episodes = float(state["time"]), int(state["steps"]), int(state["room_episodes"])
        ep.context_latent = state["context_latent"].to(self.device)
        ep.context_c2w = state["context_c2w"]
        ep.last_rgb = state["last_rgb"]
        ep.rng.bit_generator.state = rng.bit_generator.state
        ep.generator = generator

    def _restore_memory(self, saved):
        """A new memory of this env's settings holding the snapshot's ``saved`` state (None: no memory)."""
        memory = self._new_memory()
        if memory is None:
            return None
        snapshot.check_memory_settings(memory.settings(), saved)
        memory.load_state_dict(saved)
        snapshot.check_memory_channels(memory.channels, self.latent_channels if self.cfg.memory == "latent" else 3,
                                       self.latent_channels)
        return memory
