"""Wrappers for what users reach for first, on a stock install.

* :class:`RecordVideo`: every (or every triggered) episode to MP4 on
  imageio-ffmpeg, a dependency already; gymnasium's own ``RecordVideo``
  needs MoviePy, which mirage_gym does not install.
* :class:`ResizeRGB`: resize ``obs["rgb"]`` of the Dict observation
  (gymnasium's ``ResizeObservation`` takes a Box only and needs OpenCV).
* :class:`ContinuousPose`: ``obs["pose"]`` as position + the first two
  columns of the rotation matrix, a rotation feature without jumps (see
  its docstring for why no quaternion convention can be one).

Stacking needs nothing of ours: ``gymnasium.wrappers.FrameStackObservation(env, 4)``
stacks every entry of the Dict (``rgb`` (4, H, W, 3), ``pose`` (4, 7)).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from . import limits
from .data.mp4 import write_video
from .geometry import quaternion_to_matrix
from .images import resize_uint8


class RecordVideo(gym.Wrapper):
    """Write episodes to ``<video_folder>/<name_prefix>-episode-<i>.mp4``.

    A video holds the reset frame and then every frame the world model made
    (``info["frames"]``: ``frames_per_step`` per step), so it plays at the
    env's own fps. An episode is written when it terminates or truncates, or
    at ``close()``. ``episode_trigger(i)`` picks the episodes (default: all).
    """

    def __init__(self, env: gym.Env, video_folder: str | Path, episode_trigger: Callable[[int], bool] | None = None,
                 name_prefix: str = "mirage", scale: int = 1):
        super().__init__(env)
        if not isinstance(env.observation_space, spaces.Dict) or "rgb" not in env.observation_space.spaces:
            raise ValueError("RecordVideo records obs['rgb']: wrap a MirageRoom env (or one keeping its Dict observation)")
        scale = limits.bounded_int("scale", scale, 1, None, "nearest-neighbour upscale")
        self.video_folder = Path(video_folder)
        self.episode_trigger = episode_trigger or (lambda i: True)
        self.name_prefix, self.scale = name_prefix, scale
        self.episode_id = -1
        self.videos: list[Path] = []  # written so far
        self._frames: list[np.ndarray] | None = None

    def reset(self, **kwargs):
        self._flush()
        obs, info = self.env.reset(**kwargs)
        self.episode_id += 1
        self._frames = [obs["rgb"]] if self.episode_trigger(self.episode_id) else None
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        if self._frames is not None:
            frames = info.get("frames")
            self._frames.extend(frames if frames is not None else [obs["rgb"]])
            if terminated or truncated:
                self._flush()
        return obs, reward, terminated, truncated, info

    def close(self):
        self._flush()
        super().close()

    def _flush(self) -> None:
        if self._frames:
            fps = self.env.metadata.get("render_fps", 8)
            path = self.video_folder / f"{self.name_prefix}-episode-{self.episode_id}.mp4"
            self.videos.append(write_video(path, np.stack(self._frames), fps=fps, scale=self.scale))
        self._frames = None


class ResizeRGB(gym.ObservationWrapper):
    """``obs["rgb"]`` resized to ``shape`` (height, width) or a square side, antialiased
    bilinear (:func:`mirage_gym.images.resize_uint8`); other entries unchanged."""

    def __init__(self, env: gym.Env, shape: int | tuple[int, int]):
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, spaces.Dict) or "rgb" not in space.spaces:
            raise ValueError("ResizeRGB resizes obs['rgb'] of a Dict observation; for a Box use gymnasium's ResizeObservation")
        hw = (shape, shape) if isinstance(shape, int) else tuple(shape)
        if len(hw) != 2 or not all(limits.is_int(v, 1) for v in hw):
            raise ValueError(f"shape must be a positive int or (height, width) of them, got {shape!r}")
        self.shape = (int(hw[0]), int(hw[1]))
        self.observation_space = spaces.Dict({**space.spaces, "rgb": spaces.Box(0, 255, (*self.shape, 3), np.uint8)})

    def observation(self, observation: dict) -> dict:
        return {**observation, "rgb": resize_uint8(observation["rgb"], *self.shape)}


class ContinuousPose(gym.ObservationWrapper):
    """``obs["pose"]`` (7,) -> (9,): position xyz, then the rotation's first two
    columns (the camera's right and down axes in world coordinates).

    The env's quaternion is canonical (w >= 0), but any quaternion convention
    jumps once per full turn: a 360-degree turn is a loop of rotations that
    lifts to a path from q to -q, so a sign choice must switch somewhere (at
    w = 0; in a level spin, at heading 270 degrees). Two matrix columns are
    continuous everywhere and determine the rotation (Zhou et al., CVPR 2019).
    """

    def __init__(self, env: gym.Env):
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, spaces.Dict) or space.spaces.get("pose") is None or space["pose"].shape[-1:] != (7,):
            raise ValueError("ContinuousPose maps obs['pose'] (xyz + quaternion wxyz) of a MirageRoom env")
        pose = space["pose"]
        low = np.concatenate([pose.low[..., :3], -np.ones((*pose.shape[:-1], 6), np.float32)], -1)
        high = np.concatenate([pose.high[..., :3], np.ones((*pose.shape[:-1], 6), np.float32)], -1)
        self.observation_space = spaces.Dict({**space.spaces, "pose": spaces.Box(low, high, dtype=np.float32)})

    def observation(self, observation: dict) -> dict:
        pose = np.asarray(observation["pose"], np.float32)
        R = quaternion_to_matrix(pose[..., 3:]).numpy()
        cols = np.concatenate([R[..., :, 0], R[..., :, 1]], -1)
        return {**observation, "pose": np.concatenate([pose[..., :3], cols], -1).astype(np.float32)}
