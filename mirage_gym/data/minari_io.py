"""Minari datasets of MirageRoom episodes.

Episodes are recorded by Minari's own :class:`minari.DataCollector`, one
small *shard* dataset per episode (so collection can run in many processes
or machines, resume after a failure, and never leaves a half-written
dataset behind). When every episode is in, the shards are assembled into
one dataset with Minari's storage API (what ``minari.combine_datasets``
does, but keeping lossless frames and our metadata)::

    MINARI_DATASETS_PATH=runs/data/minari python -c "import minari; print(minari.load_dataset('mirage_gym/MirageRoom/explorer-v0'))"
    dataset = mirage_gym.data.minari_io.load(\"runs/data\")      # the same, without the env variable
    env = dataset.recover_environment()                          # gym.make from the recorded EnvSpec

Observations are the env's (``rgb``, ``pose``, and ``memory`` with
``memory_obs=True``), stored raw (no JPEG). Infos are recorded filtered to
small per-step values (``INFO_KEYS``): the ``frames`` array of every step
would multiply the size; use the npz or mp4 format for all frames.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import json
import os
import shutil
import tarfile
import warnings
from pathlib import Path

import numpy as np

INFO_KEYS = {"c2w": np.float32, "coverage": np.float32, "memory_tokens": np.int64, "collided": np.bool_, "scene_seed": np.int64}
SHARD_NAMESPACE = "shards"


def shard_id(episode_id: int) -> str:
    return f"{SHARD_NAMESPACE}/episode_{episode_id:06d}-v0"


@contextlib.contextmanager
def minari_root(path: str | Path):
    """Point Minari's local storage (MINARI_DATASETS_PATH) at ``path`` for the block."""
    old = os.environ.get("MINARI_DATASETS_PATH")
    Path(path).mkdir(parents=True, exist_ok=True)
    os.environ["MINARI_DATASETS_PATH"] = str(Path(path).resolve())
    try:
        yield Path(path)
    finally:
        if old is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = old


def _step_data_callback():
    from minari.data_collector.callbacks import StepDataCallback

    class MirageStepData(StepDataCallback):
        """Keep only the small per-step info values (same keys and types every step)."""

        def __call__(self, env, **kwargs):
            data = super().__call__(env, **kwargs)
            info = data.get("info") or {}
            data["info"] = {k: np.asarray(info[k], dtype=t) for k, t in INFO_KEYS.items() if info.get(k) is not None}
            return data

    return MirageStepData


def make_collector(env, record_infos: bool = True):
    """Wrap ``env`` in a :class:`minari.DataCollector` recording lossless frames
    and the filtered infos. Call inside :func:`minari_root`."""
    import minari

    kwargs = {"step_data_callback": _step_data_callback(), "record_infos": record_infos, "data_format": "hdf5"}
    if "jpeg_encoding" in inspect.signature(minari.DataCollector.__init__).parameters:
        kwargs["jpeg_encoding"] = False
    return minari.DataCollector(env, **kwargs)


def shard_bytes(collector, episode_id: int, root: str | Path, algorithm: str) -> bytes:
    """Write the collector's finished episode as a one-episode Minari dataset
    under ``root`` (the current MINARI_DATASETS_PATH), return it as tar bytes
    and delete it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # shard metadata is provisional; the assembled dataset carries the real one
        collector.create_dataset(dataset_id=shard_id(episode_id), algorithm_name=algorithm, author="mirage_gym",
                                 author_email="n/a", code_permalink="https://github.com/mirage-gym/mirage_gym",
                                 description=f"shard of episode {episode_id}")
    folder = Path(root) / shard_id(episode_id)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(folder, arcname=".")
    shutil.rmtree(folder)
    return buf.getvalue()


def extract_shard(data: bytes, folder: str | Path) -> Path:
    """Unpack shard tar bytes into ``folder`` (which must not exist yet)."""
    folder = Path(folder)
    folder.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
        members = tar.getmembers()
        for m in members:
            if m.name.startswith("/") or ".." in Path(m.name).parts or not (m.isfile() or m.isdir()):
                raise ValueError(f"refusing unsafe path {m.name!r} in a shard archive")
        tar.extractall(folder, members=members)
    return folder


def assemble(shard_folders: list[Path], dataset_folder: Path, dataset_id: str, metadata: dict) -> Path:
    """Combine one-episode shard datasets (in order) into one dataset at
    ``dataset_folder`` (``<root>/<dataset_id>``), built beside it and renamed
    into place at the end."""
    import minari
    from minari.dataset.minari_dataset import parse_dataset_id
    from minari.dataset.minari_storage import MinariStorage

    parse_dataset_id(dataset_id)  # validates
    if not shard_folders:
        raise ValueError("no episodes to assemble")
    shards = [minari.MinariDataset(Path(f) / "data") for f in shard_folders]
    first = shards[0]
    tmp = dataset_folder.parent / f".{dataset_folder.name}.assembling"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        kwargs = {"jpeg_encoding": False} if "jpeg_encoding" in inspect.signature(MinariStorage.new).parameters else {}
        storage = MinariStorage.new(tmp / "data", observation_space=first.observation_space, action_space=first.action_space,
                                    env_spec=first.spec.env_spec, data_format=first.storage.FORMAT, **kwargs)
        meta = {"dataset_id": dataset_id, "minari_version": minari.__version__, "author": {"mirage_gym"}, "author_email": {"n/a"}}
        meta.update(metadata)
        storage.update_metadata(meta)
        for shard in shards:
            storage.update_from_storage(shard.storage)
        if dataset_folder.exists():  # replace an older assembly atomically enough: move it aside first
            old = dataset_folder.parent / f".{dataset_folder.name}.old"
            os.replace(dataset_folder, old)
            os.replace(tmp, dataset_folder)
            shutil.rmtree(old)
        else:
            os.replace(tmp, dataset_folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dataset_folder


def load(root: str | Path, dataset_id: str | None = None):
    """The :class:`minari.MinariDataset` collected into ``root`` (the --out folder)."""
    import minari

    root = Path(root)
    if dataset_id is None:
        manifest = root / "manifest.json"
        if not manifest.is_file():
            raise FileNotFoundError(f"{manifest} not found: is {root} a finished `mirage-gym collect --format minari` folder?")
        dataset_id = json.loads(manifest.read_text())["config"]["dataset_id"]
    data = root / "minari" / dataset_id / "data"
    if not data.is_dir():
        raise FileNotFoundError(f"no Minari dataset {dataset_id!r} under {root / 'minari'}")
    return minari.MinariDataset(data)
