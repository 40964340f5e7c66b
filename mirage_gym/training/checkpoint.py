"""Resumable training checkpoints, in safetensors (no pickles anywhere).

A checkpoint folder holds ``model.safetensors`` (the network),
``optimizer.safetensors`` (AdamW moments, flattened) and ``state.json``
(step, optimizer hyper-parameters, RNG seeds, losses so far). Writes go to a
temporary file first and are renamed into place, so a training run killed
mid-save never leaves a corrupt checkpoint.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


def _atomic_save_tensors(tensors: dict, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp))
    os.replace(tmp, path)


def _atomic_write_text(text: str, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def save_checkpoint(folder, model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _atomic_save_tensors(model.state_dict(), folder / "model.safetensors")
    opt = optimizer.state_dict()
    flat = {f"{idx}.{key}": value for idx, entries in opt["state"].items() for key, value in entries.items()
            if isinstance(value, torch.Tensor)}
    _atomic_save_tensors(flat, folder / "optimizer.safetensors")
    _atomic_write_text(json.dumps({**state, "param_groups": opt["param_groups"]}, indent=1), folder / "state.json")


def load_checkpoint(folder, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None) -> dict | None:
    """Restore ``model`` (and ``optimizer``) from ``folder``; return the saved
    state dict, or None when there is no checkpoint yet."""
    folder = Path(folder)
    if not (folder / "state.json").is_file():
        return None
    state = json.loads((folder / "state.json").read_text())
    model.load_state_dict(load_file(str(folder / "model.safetensors")))
    if optimizer is not None and (folder / "optimizer.safetensors").is_file():
        flat = load_file(str(folder / "optimizer.safetensors"))
        entries: dict = {}
        for name, value in flat.items():
            idx, key = name.split(".", 1)
            entries.setdefault(int(idx), {})[key] = value
        optimizer.load_state_dict({"state": entries, "param_groups": state["param_groups"]})
    return state
