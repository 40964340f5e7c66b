"""Mirage on Wan2.2-TI2V-5B through diffusers + peft (GPU backend).

Nothing here imports diffusers until used, so ``import mirage_gym`` stays light.

* :func:`load_wan_world_model` (path, device=...) -> :class:`WanWorldModel`
* :class:`WanMemoryBranch`, :func:`attach_memory_branch`: the ControlNet-style memory branch
* :class:`MirageWanPipeline`, :class:`StreamingVideoDecoder`: the sampling loop and causal decode
* :func:`check_weights_folder`, :class:`WeightsFolderError`: the folder layout (see :mod:`.loading`)
* :func:`build_tiny_wan_folder`: a tiny random folder for tests and CPU smoke runs
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "load_wan_world_model": "world_model",
    "WanWorldModel": "world_model",
    "WanMemoryBranch": "memory_branch",
    "MemoryBranchAttachment": "memory_branch",
    "attach_memory_branch": "memory_branch",
    "MirageWanPipeline": "pipeline",
    "StreamingVideoDecoder": "pipeline",
    "check_weights_folder": "loading",
    "WeightsFolderError": "loading",
    "WanFolder": "loading",
    "build_tiny_wan_folder": "tiny",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
