"""One episode in memory, recorded step by step, then written by the format
writers (npz, mp4, the Minari shards are recorded by Minari's DataCollector)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class EpisodeRecord:
    """Everything a rollout produces; ``arrays()`` stacks it for saving."""

    meta: dict
    record_frames: bool = True
    rgb: list = field(default_factory=list)
    pose: list = field(default_factory=list)
    memory: list = field(default_factory=list)
    c2w: list = field(default_factory=list)
    coverage: list = field(default_factory=list)
    memory_tokens: list = field(default_factory=list)
    memory_bytes: list = field(default_factory=list)
    frames: list = field(default_factory=list)
    actions: list = field(default_factory=list)
    rewards: list = field(default_factory=list)
    terminations: list = field(default_factory=list)
    truncations: list = field(default_factory=list)
    collided: list = field(default_factory=list)

    def add_observation(self, obs: dict, info: dict) -> None:
        self.rgb.append(obs["rgb"])
        self.pose.append(obs["pose"])
        if "memory" in obs:
            self.memory.append(obs["memory"])
        self.c2w.append(np.asarray(info["c2w"], np.float32))
        self.coverage.append(float(info.get("coverage", 0.0)))
        self.memory_tokens.append(int(info.get("memory_tokens", 0)))
        self.memory_bytes.append(int(info.get("memory_bytes", 0)))

    def add_step(self, action, obs: dict, reward: float, terminated: bool, truncated: bool, info: dict) -> None:
        self.actions.append(np.asarray(action))
        self.rewards.append(float(reward))
        self.terminations.append(bool(terminated))
        self.truncations.append(bool(truncated))
        self.collided.append(bool(info.get("collided", False)))
        if self.record_frames:
            self.frames.append(info["frames"])
        self.add_observation(obs, info)

    @property
    def num_steps(self) -> int:
        return len(self.actions)

    @property
    def episode_return(self) -> float:
        return float(np.sum(self.rewards))

    def arrays(self) -> dict:
        out = {
            "rgb": np.stack(self.rgb).astype(np.uint8),
            "pose": np.stack(self.pose).astype(np.float32),
            "c2w": np.stack(self.c2w).astype(np.float32),
            "coverage": np.asarray(self.coverage, np.float32),
            "memory_tokens": np.asarray(self.memory_tokens, np.int64),
            "memory_bytes": np.asarray(self.memory_bytes, np.int64),
            "actions": np.stack(self.actions) if self.actions else np.zeros(0, np.int64),
            "rewards": np.asarray(self.rewards, np.float32),
            "terminations": np.asarray(self.terminations, bool),
            "truncations": np.asarray(self.truncations, bool),
            "collided": np.asarray(self.collided, bool),
        }
        if out["actions"].dtype.kind in "iu":
            out["actions"] = out["actions"].astype(np.int64)
        else:
            out["actions"] = out["actions"].astype(np.float32)
        if self.memory:
            out["memory"] = np.stack(self.memory).astype(np.float32)
        if self.record_frames and self.frames:
            out["frames"] = np.stack(self.frames).astype(np.uint8)
        return out

    def video_frames(self) -> np.ndarray:
        """The episode as one clip: the start frame, then every generated frame."""
        if self.frames:
            return np.concatenate([self.rgb[0][None]] + list(self.frames)).astype(np.uint8)
        return np.stack(self.rgb).astype(np.uint8)
