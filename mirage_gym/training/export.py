"""Assemble the shipped weights folder from training checkpoints (fp16, safetensors).

    mirage-gym train export --out mirage_gym/weights/tiny
    mirage-gym train export --denoiser-dir checkpoints/tiny/denoiser_rollout --out /tmp/candidate

Writes ``vae/``, ``geometry/``, ``denoiser/`` (diffusers save_pretrained:
config.json + diffusion_pytorch_model.safetensors) and ``world_model.json``
(kind, config with latent statistics, and the training record).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from safetensors.torch import load_file

from ..models.tiny.config import TinyConfig
from ..models.tiny.world_model import DEFAULT_WEIGHTS, build_networks, save_weights_folder
from .frozen import load_or_measure_stats, run_args, trained_with_prefill


@dataclass
class ExportArgs:
    checkpoints: str = "checkpoints/tiny"
    out: str = str(DEFAULT_WEIGHTS)
    # Each network's checkpoint folder; empty: <checkpoints>/<network>. Lets a
    # candidate (e.g. a fine-tuned denoiser) be exported beside the others.
    vae_dir: str = ""
    geometry_dir: str = ""
    denoiser_dir: str = ""


def _last_line(path: Path) -> dict:
    if not path.is_file():
        return {}
    lines = [l for l in path.read_text().splitlines() if l.strip()]
    return json.loads(lines[-1]) if lines else {}


def _init_record(folder: Path) -> dict:
    """Steps and time of the checkpoint a run started from (``--init-from``), or {}."""
    init = run_args(folder).get("init_from", "")
    state_file = Path(init) / "state.json" if init else None
    if state_file is None or not state_file.is_file():
        return {}
    state = json.loads(state_file.read_text())
    return {"folder": init, "steps": state["step"], "train_time_s": round(state.get("elapsed_s", 0.0))}


def main(args: ExportArgs) -> Path:
    root, out = Path(args.checkpoints), Path(args.out)
    cfg = TinyConfig()
    nets = build_networks(cfg)
    record = {}
    for name, net in nets.items():
        folder = Path(getattr(args, f"{name}_dir") or root / name)
        ckpt = folder / "model.safetensors"
        if not ckpt.is_file():
            raise FileNotFoundError(f"missing checkpoint {ckpt}: train it with `mirage-gym train {name}`")
        net.load_state_dict(load_file(str(ckpt)))
        state = json.loads((folder / "state.json").read_text())
        record[name] = {"steps": state["step"], "train_time_s": round(state.get("elapsed_s", 0.0)),
                        "last_eval": _last_line(folder / "eval.jsonl")}
        base = _init_record(folder)
        if base:  # a fine-tuned network: say what it started from
            record[name]["init_from"] = base
        if name == "denoiser":  # sampled as it was trained
            cfg.prefill_holes = trained_with_prefill(folder)
    cfg = load_or_measure_stats(root, nets["vae"], cfg)
    return save_weights_folder(out, cfg, nets, training=record, half=True)
