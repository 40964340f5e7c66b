"""Episodes as compressed ``.npz`` files: frames, poses, actions, rewards.

One file per episode (``episode_000042.npz``), readable with plain numpy::

    ep = np.load("runs/data/npz/episode_000000.npz")
    ep["rgb"]        # uint8 (T+1, H, W, 3)  observation frames (reset + every step)
    ep["frames"]     # uint8 (T, K, H, W, 3) every generated frame (K per step)
    ep["pose"]       # float32 (T+1, 7)      observed pose: xyz + quaternion wxyz
    ep["c2w"]        # float32 (T+1, 4, 4)   camera-to-world of each observation
    ep["actions"]    # int64 (T,) discrete actions, or float32 (T, 4) continuous
    ep["rewards"], ep["terminations"], ep["truncations"]   # (T,)
    ep["coverage"], ep["memory_tokens"], ep["memory_bytes"]  # (T+1,)
    ep["collided"]   # bool (T,)
    ep["memory"]     # float32 (T+1, C+1, h, w), only if recorded with memory_obs=True
    json.loads(str(ep["meta"]))  # env id, kwargs, seed, scene seed, policy ...

:func:`recover_environment` rebuilds the env from ``meta``; resetting it
with ``meta["seed"]`` and replaying ``actions`` repeats the episode.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from .records import EpisodeRecord

FORMAT_VERSION = 1


def episode_bytes(record: EpisodeRecord) -> bytes:
    """The episode as the bytes of a compressed .npz file."""
    arrays = record.arrays()
    meta = dict(record.meta, format="mirage_gym.npz", format_version=FORMAT_VERSION)
    buf = io.BytesIO()
    np.savez_compressed(buf, meta=np.array(json.dumps(meta)), **arrays)
    return buf.getvalue()


def load_episode(path: str | Path) -> dict:
    """All arrays of one episode file, plus ``meta`` decoded from JSON."""
    with np.load(path, allow_pickle=False) as z:
        out = {k: z[k] for k in z.files if k != "meta"}
        out["meta"] = json.loads(str(z["meta"]))
    return out


def episode_paths(root: str | Path) -> list[Path]:
    """Episode files of a collected dataset (``root`` is the --out folder or its npz/ folder)."""
    root = Path(root)
    folder = root / "npz" if (root / "npz").is_dir() else root
    paths = sorted(folder.glob("episode_*.npz"))
    if not paths:
        raise FileNotFoundError(f"no episode_*.npz files in {folder}")
    return paths


def load_dataset(root: str | Path):
    """Iterate over the episodes of a collected npz dataset, in episode order."""
    for path in episode_paths(root):
        yield load_episode(path)


def recover_environment(source, **kwargs):
    """``gym.make`` the env an episode was recorded in (``source``: an episode
    file, a loaded episode dict or its ``meta``); ``kwargs`` override."""
    import gymnasium as gym

    import mirage_gym  # noqa: F401  (registers the ids)

    if isinstance(source, (str, Path)):
        source = Path(source)
        if source.is_dir():
            source = episode_paths(source)[0]
        source = load_episode(source)
    meta = source.get("meta", source)
    make_kwargs = dict(meta["env_kwargs"])
    if meta.get("max_episode_steps") is not None:
        make_kwargs["max_episode_steps"] = meta["max_episode_steps"]
    make_kwargs.update(kwargs)
    return gym.make(meta["env_id"], **make_kwargs)
