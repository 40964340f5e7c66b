"""Train Mirage's memory branch, then a LoRA, on Wan2.2-TI2V (GPU), with a CPU smoke mode.

    python -m mirage_gym.training.wan_train --weights /data/Wan2.2-TI2V-5B-Diffusers --data clips/ --out runs/mirage
    python -m mirage_gym.training.wan_train --make-data clips/ --weights ... --episodes 2000   # clips from procedural rooms
    python -m mirage_gym.training.wan_train --smoke        # CPU, tiny random model, a minute

The recipe follows the Mirage reference: flow matching (x_t = (1 - s) x0 +
s eps, the DiT predicts eps - x0), an independent noise level per latent
frame, the first latent frame kept clean (timestep 0, no loss), AdamW,
stage 1 trains only the memory branch (DiT frozen), stage 2 freezes the
branch and trains a LoRA on the DiT's attention (q, k, v, o) and FFN.

A clip file (``*.safetensors`` in ``--data``) holds normalised Wan latents:
``latents`` (F, C, h, w) of a 1 + 4(F-1) frame video (frame 0 is the
context), ``memory_latent`` (F-1, C, h, w) the memory warped to the pose of
the last pixel frame of latent frames 1..F-1 (zeros where empty),
``memory_mask`` (F-1, h, w), and optionally ``prompt_embeds`` (L, text_dim).
Outputs: ``<out>/memory_branch/`` and ``<out>/lora/``; copy them into the
weights folder to use them.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from dataclasses import dataclass, fields
from pathlib import Path

import torch


@dataclass
class Args:
    weights: str = ""  # Wan2.2 weights folder (docs/wan.md); --smoke builds a tiny one
    data: str = ""  # folder of clip .safetensors (module docstring)
    out: str = "runs/wan_mirage"  # writes memory_branch/ and lora/ here
    stage: str = "both"  # "branch" | "lora" | "both" (branch, then LoRA)
    steps_branch: int = 2000
    steps_lora: int = 2000
    lr_branch: float = 1e-5  # the reference: AdamW 1e-5
    lr_lora: float = 1e-5
    weight_decay: float = 0.01
    lora_rank: int = 32  # the reference: r = 32
    lora_alpha: float | None = None  # default: equal to the rank
    batch_size: int = 1
    branch_every: int = 2  # one branch block per this many DiT layers (reference: 2 -> 15 of 30)
    gradient_checkpointing: bool = True
    dtype: str = "bfloat16"  # transformer/branch weights; the VAE stays float32
    device: str = "cuda"
    seed: int = 0
    log_every: int = 10
    save_every: int = 500
    # data making (procedural rooms)
    make_data: str = ""  # write clips here instead of training
    episodes: int = 100
    frames: int = 33  # pixel frames per clip, 1 + 4k (reference: 33)
    history_frames: int = 8  # frames written to memory before the clip starts
    image_height: int = 352
    image_width: int = 640
    fov_deg: float = 90.0
    # smoke test
    smoke: bool = False


# ------------------------------------------------------------------------------ data


class ClipFolder(torch.utils.data.Dataset):
    """Clip files (module docstring), read with safetensors (never unpickled)."""

    def __init__(self, folder):
        self.files = sorted(Path(folder).glob("*.safetensors"))
        if not self.files:
            raise FileNotFoundError(f"no clip .safetensors files in {folder}; make some with --make-data")

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        from safetensors.torch import load_file

        return load_file(str(self.files[i]))


def synthetic_clips(n: int, channels: int, frames: int, h: int, w: int, text_dim: int, seed: int = 0) -> list[dict]:
    """Clips for the smoke test: smooth random latent videos whose memory is the
    clip itself, partly masked out, so the branch has something to learn (copy
    what memory shows)."""
    g = torch.Generator().manual_seed(seed)
    clips = []
    for _ in range(n):
        base = torch.randn(1, channels, h, w, generator=g)
        drift = 0.3 * torch.randn(frames, channels, h, w, generator=g)
        latents = base + drift.cumsum(0)  # (F, C, h, w)
        mask = (torch.rand(frames - 1, h, w, generator=g) > 0.3).float()
        clips.append({
            "latents": latents,
            "memory_latent": latents[1:] * mask[:, None],
            "memory_mask": mask,
            "prompt_embeds": torch.randn(4, text_dim, generator=g),
        })
    return clips


def collate(items: list[dict], device, dtype):
    """Stack clips: x0 (B, C, F, h, w), condition (B, C+1, F, h, w), embeds (B, L, D)."""
    from ..models.wan.pipeline import build_condition

    x0 = torch.stack([it["latents"] for it in items]).to(device, torch.float32)  # (B, F, C, h, w)
    cond = build_condition(x0[:, 0], torch.stack([it["memory_latent"] for it in items]).to(device, torch.float32),
                           torch.stack([it["memory_mask"] for it in items]).to(device, torch.float32))
    if all("prompt_embeds" in it for it in items):
        L = max(it["prompt_embeds"].shape[0] for it in items)
        embeds = torch.stack([torch.cat([it["prompt_embeds"], it["prompt_embeds"].new_zeros(L - it["prompt_embeds"].shape[0],
                                                                                            it["prompt_embeds"].shape[1])]) for it in items])
    else:
        embeds = None
    return x0.transpose(1, 2).contiguous(), cond.to(dtype), embeds


# ------------------------------------------------------------------------------ loss


def sample_sigmas(batch: int, frames: int, shift: float, generator=None, device="cpu") -> torch.Tensor:
    """Noise levels (B, F): logit-normal per latent frame, shifted like the
    sampler's schedule (s' = shift s / (1 + (shift - 1) s)); frame 0 clean."""
    s = torch.sigmoid(torch.randn(batch, frames, generator=generator)).to(device)
    s = shift * s / (1 + (shift - 1) * s)
    s[:, 0] = 0.0
    return s


def flow_matching_loss(transformer, attachment, x0, cond, embeds, sigmas, noise, num_train_timesteps: int = 1000):
    """MSE between the DiT's velocity and eps - x0 on latent frames 1..F-1.

    x0, noise (B, C, F, h, w); sigmas (B, F) with sigmas[:, 0] = 0; cond (B, C+1, F, h, w)."""
    from ..models.wan.pipeline import token_timesteps

    B, C, F, h, w = x0.shape
    s = sigmas[:, None, :, None, None]
    xt = (1 - s) * x0 + s * noise
    timestep = token_timesteps(sigmas * num_train_timesteps, h, w, transformer.config.patch_size)  # (B, N)
    dtype = transformer.dtype
    # The frozen DiT runs in its dtype (bf16 on GPU); trainable weights are float32
    # masters, so autocast runs their matmuls in the DiT's dtype too.
    with torch.autocast(x0.device.type, dtype=dtype, enabled=dtype != torch.float32), attachment.condition(cond):
        velocity = transformer(xt.to(dtype), timestep, embeds.to(dtype), return_dict=False)[0]
    target = noise - x0
    return ((velocity.float() - target) ** 2)[:, :, 1:].mean()


# ----------------------------------------------------------------------------- stages


def build(args: Args):
    """Load the frozen DiT, the branch (trained one if the folder has it) and the scheduler facts."""
    from ..models.wan import loading
    from ..models.wan.memory_branch import WanMemoryBranch, attach_memory_branch

    folder = loading.check_weights_folder(args.weights)
    dtype = getattr(torch, args.dtype)
    device = torch.device(args.device)
    transformer = loading.load_transformer(folder, device, dtype)
    if folder.memory_branch is not None:
        branch = WanMemoryBranch.from_pretrained(folder.memory_branch, local_files_only=True, use_safetensors=True, torch_dtype=dtype).to(device)
    else:
        branch = WanMemoryBranch.from_transformer(transformer, every=args.branch_every)
    branch = branch.float()  # trained in float32: lr 1e-5 steps vanish in bf16 weights
    scheduler = loading.load_scheduler(folder)
    cfg = scheduler.config
    shift = float(cfg.get("flow_shift", cfg.get("shift", 1.0)))
    embeds = loading.load_prompt_embeds(folder, None, transformer.config.text_dim, device, dtype)
    if args.gradient_checkpointing:
        transformer.enable_gradient_checkpointing()
        branch.enable_gradient_checkpointing()
    attachment = attach_memory_branch(transformer, branch)
    return folder, transformer, branch, attachment, shift, int(cfg.get("num_train_timesteps", 1000)), embeds


def train_stage(name, params, steps, lr, args, transformer, attachment, batches, shift, T, default_embeds, save, log=print) -> list[float]:
    """One stage: AdamW on ``params`` for ``steps`` batches of (x0, cond, embeds)
    from ``batches``, fresh noise levels and noise each step; ``save()`` every
    ``args.save_every`` steps and at the end. Returns the losses."""
    params = [p for p in params if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=args.weight_decay)
    g = torch.Generator().manual_seed(args.seed)
    device = next(transformer.parameters()).device
    losses = []
    t0 = time.time()
    for step in range(1, steps + 1):
        x0, cond, embeds = next(batches)
        embeds = default_embeds.expand(x0.shape[0], -1, -1) if embeds is None else embeds.to(device)
        sigmas = sample_sigmas(x0.shape[0], x0.shape[2], shift, g, device)
        noise = torch.randn(x0.shape, generator=g).to(device)
        loss = flow_matching_loss(transformer, attachment, x0, cond, embeds, sigmas, noise, T)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        losses.append(float(loss.detach()))
        if step % args.log_every == 0 or step == steps:
            log(f"[{name}] step {step}/{steps} loss {sum(losses[-args.log_every:]) / len(losses[-args.log_every:]):.4f} "
                f"({(time.time() - t0) / step:.2f} s/step)")
        if step % args.save_every == 0 or step == steps:
            save()
    return losses


@torch.no_grad()
def eval_loss(transformer, attachment, eval_batch, T) -> float:
    """Loss on a fixed batch with fixed noise levels and noise, (x0, cond, embeds,
    sigmas, noise): comparable before and after a stage (the smoke test's yardstick)."""
    x0, cond, embeds, sigmas, noise = eval_batch
    return float(flow_matching_loss(transformer, attachment, x0, cond, embeds, sigmas, noise, T))


def cycle(loader):
    while True:
        yield from loader


def train(args: Args, log=print) -> dict:
    """Run the stages in ``args.stage``; save memory_branch/ and lora/ under ``args.out``.
    Returns a summary with per-stage losses and fixed-batch losses before/after."""
    from peft import LoraConfig

    from ..models.wan.loading import ADAPTER_NAME, save_lora
    from ..models.wan.tiny import LORA_TARGETS

    if args.stage not in ("branch", "lora", "both"):
        raise ValueError(f"stage must be 'branch', 'lora' or 'both', got {args.stage!r}")
    torch.manual_seed(args.seed)
    _, transformer, branch, attachment, shift, T, default_embeds = build(args)
    device, dtype = transformer.device, transformer.dtype
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    if args.smoke:
        tr = transformer.config
        clips = synthetic_clips(4, tr.in_channels, 3, 4, 4, tr.text_dim, seed=args.seed)
    else:
        clips = ClipFolder(args.data)
    loader = torch.utils.data.DataLoader(clips, batch_size=args.batch_size, shuffle=True, collate_fn=lambda items: collate(items, device, dtype),
                                         generator=torch.Generator().manual_seed(args.seed), drop_last=True)
    batches = cycle(loader)
    # a fixed batch with fixed noise: its loss before/after each stage is comparable
    ex0, econd, eembeds = collate([clips[i] for i in range(min(len(clips), max(args.batch_size, 2)))], device, dtype)
    eembeds = default_embeds.expand(ex0.shape[0], -1, -1) if eembeds is None else eembeds.to(device)
    ge = torch.Generator().manual_seed(args.seed + 1)
    eval_batch = (ex0, econd, eembeds, sample_sigmas(ex0.shape[0], ex0.shape[2], shift, ge, device),
                  torch.randn(ex0.shape, generator=ge).to(device))
    summary = {"eval_loss_start": eval_loss(transformer, attachment, eval_batch, T)}
    log(f"fixed-batch loss at start: {summary['eval_loss_start']:.4f}")

    transformer.train()
    if args.stage in ("branch", "both"):
        transformer.requires_grad_(False)
        branch.requires_grad_(True).train()
        summary["branch_losses"] = train_stage(
            "branch", branch.parameters(), args.steps_branch, args.lr_branch, args, transformer, attachment, batches, shift, T,
            default_embeds, save=lambda: branch.save_pretrained(out / "memory_branch", safe_serialization=True), log=log)
        branch.eval()
        summary["eval_loss_after_branch"] = eval_loss(transformer, attachment, eval_batch, T)
        log(f"fixed-batch loss after the branch stage: {summary['eval_loss_after_branch']:.4f}")
    if args.stage in ("lora", "both"):
        branch.requires_grad_(False)
        transformer.requires_grad_(False)
        transformer.add_adapter(LoraConfig(r=args.lora_rank, lora_alpha=args.lora_alpha or args.lora_rank,
                                           target_modules=LORA_TARGETS, init_lora_weights=True), adapter_name=ADAPTER_NAME)
        lora_params = [p for n, p in transformer.named_parameters() if "lora_" in n]
        for p in lora_params:
            p.data = p.data.float()  # train adapters in float32 even on a bf16 DiT
            p.requires_grad_(True)
        summary["lora_losses"] = train_stage(
            "lora", lora_params, args.steps_lora, args.lr_lora, args, transformer, attachment, batches, shift, T,
            default_embeds, save=lambda: save_lora(transformer, out / "lora"), log=log)
        summary["eval_loss_after_lora"] = eval_loss(transformer, attachment, eval_batch, T)
        log(f"fixed-batch loss after the LoRA stage: {summary['eval_loss_after_lora']:.4f}")
    transformer.eval()
    summary["out"] = str(out)
    return summary


def smoke(out: str | None = None, steps: int = 40, log=print) -> dict:
    """CPU smoke run: build a tiny random Wan folder, train both stages on a
    tiny synthetic batch, check the fixed-batch loss went down."""
    root = Path(out) if out else Path(tempfile.mkdtemp(prefix="wan_smoke_"))
    from ..models.wan.tiny import build_tiny_wan_folder

    weights = build_tiny_wan_folder(root / "weights", depth=False)
    args = Args(weights=str(weights), out=str(root / "trained"), stage="both", steps_branch=steps, steps_lora=steps,
                lr_branch=3e-3, lr_lora=3e-3, lora_rank=4, batch_size=2, dtype="float32", device="cpu",
                log_every=max(1, steps // 4), gradient_checkpointing=True, smoke=True)
    summary = train(args, log=log)
    ok = summary["eval_loss_after_branch"] < summary["eval_loss_start"] and summary["eval_loss_after_lora"] < summary["eval_loss_after_branch"]
    summary["ok"] = bool(ok)
    log(f"smoke: tiny weights in {weights}, trained branch and LoRA in {args.out}")
    log(f"smoke: loss {summary['eval_loss_start']:.4f} -> {summary['eval_loss_after_branch']:.4f} (branch) -> "
        f"{summary['eval_loss_after_lora']:.4f} (LoRA): {'OK' if ok else 'DID NOT DECREASE'}")
    return summary


# ------------------------------------------------------------------------ data making


def make_clips(args: Args, log=print) -> list[Path]:
    """Clips from procedural rooms: a random walk of ``history_frames`` views is
    written to a LatentSpatialMemory (ground-truth depth, static mask), then a
    ``frames``-frame clip continues the walk; its video latents and the memory
    read at each latent frame's pose are saved. Needs the VAE on ``device``."""
    import numpy as np
    from safetensors.torch import save_file

    from ..geometry import (as_tensor, camera_path, depth_to_grid, intrinsics_from_fov, mask_to_grid, pose_from_yaw_pitch,
                            scale_intrinsics, yaw_pitch_from_pose)
    from ..memory import LatentSpatialMemory
    from ..models.wan import loading
    from ..models.wan.pipeline import WanLatentCodec
    from ..images import to_model
    from ..scenes import ProceduralRoom

    if (args.frames - 1) % 4:
        raise ValueError(f"frames must be 1 + 4k, got {args.frames}")
    folder = loading.check_weights_folder(args.weights)
    device = torch.device(args.device)
    vae = loading.load_vae(folder, device)
    codec = WanLatentCodec(vae)
    H, W = args.image_height, args.image_width
    codec.check_size(H, W)
    h, w = H // codec.spatial_factor, W // codec.spatial_factor
    K = intrinsics_from_fov(args.fov_deg, H, W)
    K_lat = scale_intrinsics(K, (H, W), (h, w))
    out = Path(args.make_data)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    written = []
    for ep in range(args.episodes):
        scene = ProceduralRoom(int(rng.integers(0, 1_000_000)))  # training seeds only
        c2w = as_tensor(scene.sample_pose(rng))
        pos, (yaw, _) = c2w[:3, 3].clone(), yaw_pitch_from_pose(c2w)
        poses = [c2w]
        n_keys = (args.history_frames + args.frames + 3) // 4
        for _ in range(n_keys):  # random walk of key poses, 4 frames apart
            yaw += float(rng.uniform(-0.5, 0.5))
            step = torch.tensor([math.cos(yaw), math.sin(yaw), 0.0]) * float(rng.uniform(0.0, 0.5))
            if scene.is_free((pos + step).numpy()):
                pos = pos + step
            nxt = pose_from_yaw_pitch(pos, yaw, 0.0)
            poses.extend(camera_path(poses[-1], nxt, 4))
        poses = torch.stack(poses)
        hist, clip = poses[: args.history_frames], poses[args.history_frames : args.history_frames + args.frames]
        memory = LatentSpatialMemory(voxel_size=0.1, capacity=200_000, device=device)
        for p in hist:
            r = scene.render(p, K, H, W)
            lat = codec.encode_images(to_model(r["rgb"], device=device))[0]
            memory.write(lat, depth_to_grid(torch.from_numpy(r["depth"]), h, w), K_lat, p,
                         static_mask=mask_to_grid(torch.from_numpy(r["static"]), h, w))
        renders = [scene.render(p, K, H, W, t=i / 8.0) for i, p in enumerate(clip)]
        video = to_model(np.stack([r["rgb"] for r in renders]), device=device).transpose(0, 1)[None]  # (1, 3, T, H, W)
        z = codec.encode_video(video)[0].transpose(0, 1)  # (F, C, h, w) normalised
        keys = clip[torch.arange(1, z.shape[0]) * 4]  # last pixel frame of latent frames 1..F-1
        view = memory.read(K_lat, keys, h, w)
        path = out / f"clip_{ep:06d}.safetensors"
        save_file({"latents": z.cpu().contiguous(), "memory_latent": view.latent.cpu().contiguous().float(),
                   "memory_mask": view.mask.cpu().contiguous().float()}, str(path))
        written.append(path)
        if (ep + 1) % args.log_every == 0:
            log(f"clips: {ep + 1}/{args.episodes}")
    return written


# ---------------------------------------------------------------------------------- CLI


def parse_args(argv=None) -> Args:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    for f in fields(Args):
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool", bool):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default)
        else:
            kind = {"int": int, "float": float, "str": str}.get(str(f.type).split(" ")[0], str)
            p.add_argument(flag, type=kind if f.default is not None else float, default=f.default)
    return Args(**vars(p.parse_args(argv)))


def main(argv=None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args = parse_args(argv)
    if args.smoke:
        return 0 if smoke(args.out if args.out != Args.out else None)["ok"] else 1
    if args.make_data:
        make_clips(args)
        return 0
    if not args.weights or not args.data:
        raise SystemExit("--weights and --data are required (or --smoke, or --make-data)")
    train(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
