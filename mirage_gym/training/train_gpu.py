"""Train the embedded model's denoiser on one CUDA GPU, in runs of minutes.

    mirage-gym train gpu --out-dir /path/out --budget-s 540          # first run
    mirage-gym train gpu --out-dir /path/out --budget-s 540          # second run resumes

The same objective as ``mirage-gym train denoiser`` (:func:`train_denoiser.denoiser_loss`,
the critic included), sized for a GPU: bf16 autocast, large batches, and
samples rendered by ``workers`` CPU processes (the renderer is numpy), which
also roll out a shared CPU copy of the UNet that the trainer refreshes, so
rollout samples come from the current model. Each run stops itself before
``budget_s``, leaving time to checkpoint, export ``out_dir/weights`` (fp16
safetensors, the folder the env loads) and write ``out_dir/eval.json``
(:func:`train_denoiser.evaluate_denoiser` on held-out rooms). A later run
resumes from ``out_dir/checkpoint`` with its optimizer and step count.

On a CPU it runs too (device ``cpu``, fp32), which is how its test runs it.
"""

from __future__ import annotations

import json
import math
import queue
import time
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.multiprocessing as mp

from ..models.tiny.networks import build_denoiser
from ..models.tiny.world_model import DEFAULT_WEIGHTS, make_sampler
from .checkpoint import load_checkpoint, save_checkpoint
from .frozen import denoiser_state_dict, load_frozen_codec
from .train_denoiser import SAMPLE_KEYS, DenoiserWithCritic, LatentCritic, SampleMaker, denoiser_loss, evaluate_denoiser, run_config



@dataclass
class GpuArgs:
    out_dir: str = "runs/gpu"
    vae_dir: str = str(DEFAULT_WEIGHTS)  # frozen VAE, geometry head and latent statistics (a weights folder)
    init_from: str = str(DEFAULT_WEIGHTS)  # the UNet a fresh run starts from (empty: a fresh one; ignored when resuming)
    budget_s: float = 540.0  # wall-clock seconds this run may take, start-up to the written weights
    reserve_s: float = 90.0  # of the budget, kept for the checkpoint, export and evaluation
    device: str = "cuda"
    batch_size: int = 256
    lr: float = 6e-4
    warmup: int = 200
    total_steps: int = 20_000  # the cosine schedule's length over all runs
    run_steps: int = 0  # stop this run after so many optimizer steps (0: only the budget stops it)
    workers: int = 14  # CPU processes rendering samples
    trajectory_length: int = 24
    pool_size: int = 60_000
    rollout_fraction: float = 0.25
    adversarial_weight: float = 0.05
    refresh_every: int = 100  # optimizer steps between copies of the UNet to the workers' rollout model
    eval_trajectories: int = 6
    memory_pin: float = 0.5  # cells the sampler takes from memory, in training and in the exported weights (pipeline.PINNING_OFF: none)
    unet_channels: tuple = (32, 64, 96)  # the UNet's width per level (another size: --init-from "" starts it fresh)
    unet_layers_per_block: int = 1
    room_prior: bool = False  # the memory's room prior as the residual base in empty cells (memory/room_prior.py)
    seed: int = 0


def _worker(rank: int, args: GpuArgs, shared_unet, out: mp.Queue, stop) -> None:
    """Render trajectories forever; put their samples on ``out`` (CPU tensors)."""
    torch.set_num_threads(1)
    vae, geometry, cfg = load_frozen_codec(args.vae_dir, "", run_config(args))
    maker = SampleMaker(vae, geometry, cfg)
    rollout = make_sampler(shared_unet, cfg)
    rng = np.random.default_rng([args.seed, rank, int(time.time())])
    while not stop.is_set():
        own = rng.random() < args.rollout_fraction
        s = maker(rng, args.trajectory_length, rollout=rollout if own else None)
        try:
            out.put({k: s[k] for k in SAMPLE_KEYS}, timeout=5)
        except queue.Full:
            continue


def _lr(step: int, args: GpuArgs) -> float:
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    progress = min(1.0, (step - args.warmup) / max(1, args.total_steps - args.warmup))
    return args.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


def main(args: GpuArgs) -> dict:
    started = time.time()
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "args.json").write_text(json.dumps(asdict(args), indent=1))
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda but torch sees no CUDA GPU; pass --device cpu to run on the CPU")
    vae, geometry, cfg = load_frozen_codec(args.vae_dir, "", run_config(args))
    unet = build_denoiser(cfg)
    model = DenoiserWithCritic(unet, LatentCritic(cfg.denoiser_in_channels) if args.adversarial_weight > 0 else None)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    state = load_checkpoint(out / "checkpoint", model, optimizer)
    if state is None:
        if args.init_from:  # empty: a fresh UNet (another size than the shipped one)
            unet.load_state_dict(denoiser_state_dict(args.init_from))
        state = {"step": 0, "elapsed_s": 0.0, "samples_seen": 0}
    model.to(device)
    for group in optimizer.state.values():  # moments restored on the CPU follow the model
        for k, v in group.items():
            if isinstance(v, torch.Tensor) and k != "step":
                group[k] = v.to(device)

    shared_unet = build_denoiser(cfg).eval().requires_grad_(False)
    shared_unet.load_state_dict(unet.state_dict())
    shared_unet.share_memory()
    ctx = mp.get_context("spawn")
    samples: mp.Queue = ctx.Queue(maxsize=4 * args.workers)
    stop = ctx.Event()
    workers = [ctx.Process(target=_worker, args=(r, args, shared_unet, samples, stop), daemon=True) for r in range(args.workers)]
    for w in workers:
        w.start()

    pool: deque = deque(maxlen=args.pool_size)
    rng = np.random.default_rng([args.seed, int(state["step"])])
    torch.manual_seed(args.seed * 1_000_003 + int(state["step"]))
    step, rendered, log = int(state["step"]), 0, open(out / "log.jsonl", "a")
    last_step = step + args.run_steps if args.run_steps > 0 else float("inf")
    run_start = time.time()
    amp = torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    try:
        while time.time() - started < args.budget_s - args.reserve_s and step < last_step:
            while True:  # drain what the workers made, without waiting once the pool can serve a batch
                try:
                    s = samples.get(timeout=0.0 if len(pool) >= args.batch_size else 10.0)
                except queue.Empty:
                    break
                rendered += s["target"].shape[0]
                pool.extend({k: s[k][i] for k in SAMPLE_KEYS} for i in range(s["target"].shape[0]))
            if len(pool) < args.batch_size:
                continue
            idx = rng.integers(0, len(pool), args.batch_size)
            batch = {k: torch.stack([pool[i][k] for i in idx]).to(device, non_blocking=True) for k in SAMPLE_KEYS}
            for group in optimizer.param_groups:
                group["lr"] = _lr(step, args)
            with amp:
                stats = denoiser_loss(model, batch, rng, cfg, args.adversarial_weight)
            optimizer.zero_grad(set_to_none=True)
            stats["loss"].backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            step += 1
            if step % args.refresh_every == 0:
                shared_unet.load_state_dict({k: v.detach().float().cpu() for k, v in unet.state_dict().items()})
            if step % 20 == 0:
                row = {"step": step, "time_s": round(time.time() - run_start, 1), "rendered": rendered, "pool": len(pool),
                       **{k: round(float(v.detach()), 5) for k, v in stats.items()}}
                log.write(json.dumps(row) + "\n")
                log.flush()
    finally:
        stop.set()
        for w in workers:
            w.join(timeout=10)
            if w.is_alive():
                w.terminate()
        log.close()
    model.to("cpu").float()
    elapsed = float(state.get("elapsed_s", 0.0)) + time.time() - run_start
    save_checkpoint(out / "checkpoint", model, optimizer, {"step": step, "elapsed_s": elapsed,
                                                            "samples_seen": int(state.get("samples_seen", 0)) + rendered})
    from ..models.tiny.world_model import save_weights_folder

    unet.eval()
    if geometry is None:
        raise RuntimeError(f"{args.vae_dir} has no trained geometry head; pass a weights folder as --vae-dir")
    scores = evaluate_denoiser(unet, SampleMaker(vae, geometry, cfg), count=args.eval_trajectories)
    record = {"denoiser": {"steps": step, "train_time_s": round(elapsed), "device": args.device}}
    nets = {"vae": vae, "geometry": geometry, "denoiser": unet}
    save_weights_folder(out / "weights", cfg, {k: _copy(v) for k, v in nets.items()}, training=record, half=True)
    result = {"step": step, "run_s": round(time.time() - started, 1), "rendered_this_run": rendered, **scores}
    (out / "eval.json").write_text(json.dumps(result, indent=1))
    return result


def _copy(net):
    import copy

    return copy.deepcopy(net)
