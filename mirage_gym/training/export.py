"""Assemble the shipped weights folder from training checkpoints (fp16, safetensors).

    mirage-gym train export --out mirage_gym/weights/tiny
    mirage-gym train export --vae-dir mirage_gym/weights/tiny --geometry-dir mirage_gym/weights/tiny \
        --denoiser-dir checkpoints/tiny/denoiser --out /tmp/candidate

Writes ``vae/``, ``geometry/``, ``denoiser/`` (diffusers save_pretrained:
config.json + diffusion_pytorch_model.safetensors) and ``world_model.json``
(kind, config with latent statistics, and the training record). Each
network comes from a training checkpoint or from another weights folder
(e.g. the shipped codec beside a newly trained denoiser).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from safetensors.torch import load_file

from ..models.tiny.config import TinyConfig
from ..models.tiny.world_model import DEFAULT_WEIGHTS, build_networks, save_weights_folder
from .frozen import denoiser_state_dict, is_weights_folder, load_or_measure_stats, run_args, weights_config


@dataclass
class ExportArgs:
    checkpoints: str = "checkpoints/tiny"
    out: str = str(DEFAULT_WEIGHTS)
    # Each network's checkpoint folder or a weights folder holding it; empty:
    # <checkpoints>/<network>. Lets a candidate be exported beside the others.
    vae_dir: str = ""
    geometry_dir: str = ""
    denoiser_dir: str = ""
    memory_pin: float = -1.0  # the sampler's pin threshold to ship (pipeline.PINNING_OFF: none); < 0: the one the denoiser trained with


def _last_line(path: Path) -> dict:
    if not path.is_file():
        return {}
    lines = [l for l in path.read_text().splitlines() if l.strip()]
    return json.loads(lines[-1]) if lines else {}


def _init_record(folder: Path, name: str) -> dict:
    """Steps and time of what a run started from (``--init-from``: a checkpoint,
    or a weights folder whose own record, with its history, comes along), or {}."""
    init = run_args(folder).get("init_from", "")
    if not init:
        return {}
    if is_weights_folder(Path(init)):
        prior = json.loads((Path(init) / "world_model.json").read_text()).get("training", {}).get(name, {})
        return {"folder": init, **{k: prior[k] for k in ("steps", "train_time_s", "init_from") if k in prior}}
    state_file = Path(init) / "state.json"
    if not state_file.is_file():
        return {}
    state = json.loads(state_file.read_text())
    return {"folder": init, "steps": state["step"], "train_time_s": round(state.get("elapsed_s", 0.0))}


def _trained_setting(folder: Path, name: str, default):
    """A sampler setting (``memory_pin``, ``room_prior``) a denoiser was trained with: its run's args, or its weights folder's config."""
    if is_weights_folder(folder):
        return getattr(weights_config(folder), name)
    return type(default)(run_args(folder).get(name, default))


def _load_network(name: str, net, folder: Path) -> dict:
    """Load ``net`` from a checkpoint or a weights folder; return its training record."""
    if is_weights_folder(folder):
        if name == "denoiser":
            net.load_state_dict(denoiser_state_dict(folder))
        else:
            net.load_state_dict({k: v.float() for k, v in load_file(str(folder / name / "diffusion_pytorch_model.safetensors")).items()})
        return json.loads((folder / "world_model.json").read_text()).get("training", {}).get(name, {})
    ckpt = folder / "model.safetensors"
    if not ckpt.is_file():
        raise FileNotFoundError(f"missing checkpoint {ckpt}: train it with `mirage-gym train {name}`")
    net.load_state_dict(denoiser_state_dict(folder) if name == "denoiser" else load_file(str(ckpt)))
    state = json.loads((folder / "state.json").read_text())
    record = {"steps": state["step"], "train_time_s": round(state.get("elapsed_s", 0.0)),
              "last_eval": _last_line(folder / "eval.jsonl")}
    base = _init_record(folder, name)
    if base:  # a fine-tuned network: say what it started from
        record["init_from"] = base
    return record


def _denoiser_sizes(folder: Path) -> dict:
    """The UNet sizes a denoiser was trained at: its weights folder's config or its run's args."""
    if is_weights_folder(folder):
        cfg = weights_config(folder)
        return {"unet_channels": tuple(cfg.unet_channels), "unet_layers_per_block": cfg.unet_layers_per_block}
    saved = run_args(folder)
    return {k: tuple(saved[k]) if k == "unet_channels" else saved[k] for k in ("unet_channels", "unet_layers_per_block") if k in saved}


def main(args: ExportArgs) -> Path:
    root, out = Path(args.checkpoints), Path(args.out)
    folders = {name: Path(getattr(args, f"{name}_dir") or root / name) for name in ("vae", "geometry", "denoiser")}
    cfg = TinyConfig(**_denoiser_sizes(folders["denoiser"]))
    nets = build_networks(cfg)
    cfg.memory_pin = args.memory_pin if args.memory_pin >= 0 else _trained_setting(folders["denoiser"], "memory_pin", cfg.memory_pin)
    cfg.room_prior = _trained_setting(folders["denoiser"], "room_prior", cfg.room_prior)  # the UNet only knows the base it trained on
    record = {name: _load_network(name, net, folders[name]) for name, net in nets.items()}
    if is_weights_folder(folders["vae"]):  # the latent statistics travel with the VAE
        saved = weights_config(folders["vae"])
        cfg.latent_mean, cfg.latent_std = saved.latent_mean, saved.latent_std
    else:
        cfg = load_or_measure_stats(folders["vae"].parent, nets["vae"], cfg)
    return save_weights_folder(out, cfg, nets, training=record, half=True)
