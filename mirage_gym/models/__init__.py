"""World models and the registry that builds them by name.

``load_world_model`` accepts:

* ``"tiny"``: the embedded model whose weights ship in the package (default);
* ``"oracle"``: ground-truth rendering (see :mod:`.oracle`);
* ``"wan2.2"`` with ``path=...``: Mirage on Wan2.2 from a local folder;
* a path to a folder saved by a world model (its ``world_model.json`` names the kind);
* a dict ``{"name": ..., **kwargs}`` (JSON-friendly, for YAML configs and Minari);
* a :class:`WorldModel` instance, returned as is.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .. import limits
from .base import Segment, SegmentRequest, WorldModel, randn_per_episode
from .safe_loading import check_folder_files

WORLD_MODEL_NAMES = ("tiny", "oracle", "wan2.2")


def _load_tiny(**kw):
    from .tiny import load_tiny_world_model

    return load_tiny_world_model(**kw)


def _load_oracle(path=None, **kw):
    if path is not None:
        raise ValueError(f"{path}: the oracle world model has no weights, so a folder cannot hold one; "
                         "use world_model='oracle' (and model_kwargs for its options)")
    limits.bounded_int("the oracle's downsample (pixels per latent cell)", kw.get("downsample", 4), 1, None,
                       "e.g. model_kwargs={'downsample': 4}")
    from .oracle import OracleWorldModel

    if kw.get("image_size", 0) is None:  # no size asked for: the oracle's default
        del kw["image_size"]
    return OracleWorldModel(**kw)


def _load_wan(path=None, **kw):
    if path is None:
        raise ValueError("world model 'wan2.2' needs path=<local folder with the Wan2.2 weights>; see README 'Running Mirage on Wan2.2 (GPU)'")
    from .wan import check_weights_folder, load_wan_world_model

    check_weights_folder(path)  # the layout, listing every problem (pickled component files included)
    check_folder_files(path)  # and every file by content (safetensors or text only), before any weights are read

    return load_wan_world_model(path, **kw)


_LOADERS = {"tiny": _load_tiny, "oracle": _load_oracle, "wan2.2": _load_wan}


def load_world_model(name_or_path="tiny", **kwargs) -> WorldModel:
    """Build a world model from a name, a folder, a config dict or an instance."""
    if isinstance(name_or_path, WorldModel):
        return name_or_path
    if isinstance(name_or_path, dict):
        spec = dict(name_or_path)
        if "name" not in spec:
            raise ValueError(f"a world_model dict needs a 'name' key, one of {WORLD_MODEL_NAMES}; got keys {sorted(spec)}")
        name = spec.pop("name")
        return load_world_model(name, **{**spec, **kwargs})
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise ValueError(f"world_model must be a name {WORLD_MODEL_NAMES}, a folder path, a dict or a WorldModel; got {type(name_or_path).__name__}")
    name = str(name_or_path)
    if name in _LOADERS:
        return _LOADERS[name](**kwargs)
    folder = Path(name).expanduser()
    if folder.is_dir():
        # every loader below refuses pickle files before it reads any weights
        marker = folder / "world_model.json"
        if marker.is_file():
            try:
                meta = json.loads(marker.read_text())
            except (ValueError, UnicodeDecodeError) as err:
                raise ValueError(f"{marker} is not valid JSON ({err}); it should be an object such as "
                                 '{"kind": "tiny", ...} as written by the model\'s save function') from None
            if not isinstance(meta, dict):
                raise ValueError(f"{marker} must hold a JSON object with a 'kind' key, got {type(meta).__name__}")
            kind = meta.get("kind")
            if kind not in _LOADERS:
                raise ValueError(f"{marker} names kind {kind!r}; expected one of {WORLD_MODEL_NAMES}")
            return _LOADERS[kind](path=str(folder), **kwargs)
        # A folder laid out like a diffusers Wan checkpoint.
        if (folder / "transformer").is_dir() and (folder / "vae").is_dir():
            return _load_wan(path=str(folder), **kwargs)
        raise ValueError(f"{folder} is not a world-model folder: it has neither world_model.json nor vae/ + transformer/ subfolders")
    if folder.exists():
        raise ValueError(f"world model path {folder} is a file; pass the folder that holds world_model.json "
                         "(or vae/ + transformer/ for Wan2.2), not a weights file")
    if any(sep in name for sep in ("/", "\\")) or name.startswith((".", "~")):
        raise FileNotFoundError(f"world model folder {folder} does not exist; check the path, or use one of {WORLD_MODEL_NAMES}")
    raise ValueError(f"unknown world model {name!r}: use one of {WORLD_MODEL_NAMES}, an existing folder, or a WorldModel instance")


__all__ = ["WorldModel", "Segment", "SegmentRequest", "load_world_model", "randn_per_episode", "WORLD_MODEL_NAMES"]
