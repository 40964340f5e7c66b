"""The one training loop the three embedded-model trainers share.

Seeded, resumable (safetensors checkpoints every ``checkpoint_every`` steps
and on Ctrl-C), cosine learning rate with warm-up, tqdm progress, and a
JSON-lines log of losses that a later run appends to, and at every
checkpoint the trainer's held-out figures appended to ``eval.jsonl``.
"""

from __future__ import annotations

import json
import math
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from .checkpoint import load_checkpoint, save_checkpoint


@dataclass
class LoopArgs:
    out_dir: str
    steps: int = 20_000
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup: int = 200
    seed: int = 0
    threads: int = 2
    checkpoint_every: int = 200
    log_every: int = 20
    grad_clip: float = 1.0


def cosine_lr(step: int, args: LoopArgs) -> float:
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    progress = min(1.0, (step - args.warmup) / max(1, args.steps - args.warmup))
    return args.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


def train(model: torch.nn.Module, args: LoopArgs, loss_fn: Callable[[torch.nn.Module, np.random.Generator], dict],
          evaluate: Callable[[int], dict] | None = None, score_start: bool = False, desc: str = "train") -> dict:
    """Run ``loss_fn`` (returns a dict with a scalar tensor ``loss`` and floats
    to log) for ``args.steps`` optimizer steps, resuming from ``args.out_dir``.

    ``evaluate(step)`` -> held-out figures, run in eval mode at every
    checkpoint and appended to ``eval.jsonl``; with ``score_start`` also
    before the first step of a new run (the figures to compare with)."""
    torch.set_num_threads(args.threads)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)

    def on_checkpoint(step: int) -> None:
        if evaluate is None:
            return
        model.eval()
        scores = evaluate(step)
        model.train()
        with open(out / "eval.jsonl", "a") as f:
            f.write(json.dumps({"step": step, **scores}) + "\n")

    if score_start and not (out / "eval.jsonl").is_file():
        on_checkpoint(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    state = load_checkpoint(out, model, optimizer) or {"step": 0, "elapsed_s": 0.0}
    step = int(state["step"])
    # Data RNG: a fresh stream per (seed, resume point), so a resumed run sees new data.
    rng = np.random.default_rng([args.seed, step])
    torch.manual_seed(args.seed * 1_000_003 + step)
    log = open(out / "log.jsonl", "a")
    (out / "args.json").write_text(json.dumps(asdict(args), indent=1))
    start, elapsed0 = time.time(), float(state.get("elapsed_s", 0.0))
    model.train()

    saved_at = [None]

    def checkpoint():
        if saved_at[0] == step:
            return
        saved_at[0] = step
        save_checkpoint(out, model, optimizer, {"step": step, "elapsed_s": elapsed0 + time.time() - start, "seed": args.seed})
        on_checkpoint(step)

    # `kill` (SIGTERM) and a background job's SIGINT end the run like Ctrl-C: with a checkpoint.
    def stop(signum, frame):
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    bar = tqdm(total=args.steps, initial=step, desc=desc, dynamic_ncols=True, mininterval=5)
    last = {}
    try:
        while step < args.steps:
            for group in optimizer.param_groups:
                group["lr"] = cosine_lr(step, args)
            stats = loss_fn(model, rng)
            optimizer.zero_grad(set_to_none=True)
            stats["loss"].backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
            optimizer.step()
            step += 1
            last = {k: float(v.detach()) if isinstance(v, torch.Tensor) else float(v) for k, v in stats.items()}
            bar.update(1)
            if step % args.log_every == 0:
                bar.set_postfix({k: f"{v:.4g}" for k, v in last.items()})
                log.write(json.dumps({"step": step, "time_s": round(elapsed0 + time.time() - start, 1), **last}) + "\n")
                log.flush()
            if step % args.checkpoint_every == 0:
                checkpoint()
    except KeyboardInterrupt:
        tqdm.write(f"interrupted at step {step}; saving a checkpoint to resume from")
    finally:
        checkpoint()
        bar.close()
        log.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    model.eval()
    return last
