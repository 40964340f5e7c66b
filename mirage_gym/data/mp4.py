"""Episodes as MP4 videos (H.264 through imageio-ffmpeg), written atomically.

Each episode becomes ``episode_000042.mp4`` (the start frame, then every
generated frame, at the env's fps) and a small ``episode_000042.json``
beside it with the per-step actions, rewards and camera poses.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from .records import EpisodeRecord


def upscale(frames: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour upscale of (N, H, W, 3) frames by an integer factor."""
    if scale <= 1:
        return frames
    return frames.repeat(scale, axis=1).repeat(scale, axis=2)


def write_video(path: str | Path, frames: np.ndarray, fps: float, scale: int = 1, quality: int = 8) -> Path:
    """Write uint8 (N, H, W, 3) frames to ``path`` atomically (temp file, then rename)."""
    import imageio.v2 as imageio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = upscale(np.asarray(frames, np.uint8), int(scale))
    fd, tmp = tempfile.mkstemp(suffix=".mp4", prefix=f".{path.stem}.", dir=path.parent)
    os.close(fd)
    try:
        writer = imageio.get_writer(tmp, fps=float(fps), codec="libx264", quality=quality, macro_block_size=16,
                                    ffmpeg_log_level="error")
        try:
            for frame in frames:
                writer.append_data(frame)
        finally:
            writer.close()
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def episode_bytes(record: EpisodeRecord, fps: float, scale: int = 1) -> bytes:
    """The episode's video as MP4 bytes (encoded in a temp dir)."""
    with tempfile.TemporaryDirectory(prefix="mirage-mp4-") as tmp:
        path = write_video(Path(tmp) / "episode.mp4", record.video_frames(), fps=fps, scale=scale)
        return path.read_bytes()


def sidecar_bytes(record: EpisodeRecord) -> bytes:
    """Per-step data that goes with the video: actions, rewards, poses (JSON)."""
    arrays = record.arrays()
    data = {
        "meta": record.meta,
        "frames_per_step": int(record.meta.get("frames_per_step", 1)),
        "actions": arrays["actions"].tolist(),
        "rewards": [round(float(r), 6) for r in arrays["rewards"]],
        "terminations": arrays["terminations"].tolist(),
        "truncations": arrays["truncations"].tolist(),
        "pose": np.round(arrays["pose"], 6).tolist(),
        "coverage": [round(float(c), 6) for c in arrays["coverage"]],
    }
    return json.dumps(data).encode()


def read_video(path: str | Path) -> np.ndarray:
    """All frames of an MP4 as uint8 (N, H, W, 3)."""
    import imageio.v2 as imageio

    reader = imageio.get_reader(str(path))
    try:
        return np.stack([np.asarray(f) for f in reader])
    finally:
        reader.close()
