"""Train the denoiser: next frame from context, warped memory and camera motion.

    mirage-gym train denoiser --steps 40000

Training samples are built exactly as the env builds a step: a trajectory of
the env's actions through a training room, each action a segment of K in
{1, 2, 4} frames on the interpolated camera path, frames encoded by the
frozen VAE, depth and static filter from the frozen geometry head (ground
truth if it is not trained yet), the memory written after every segment and
read at each target pose with the same LatentSpatialMemory, every frame of a
segment conditioned on the last frame of the previous one.
Latents written after the start frame get a little noise and context
latents more, because at run time they are generated, not encoded (the
model's own context drifts further from an encoding than its memory does,
since pinned cells are copied from memory). One sample in ten has its
memory dropped, so ``memory="none"`` is in-distribution.

Objective: rectified flow on the residual r = x0 - mask * memory, velocity
target (noise - r), noise levels drawn half from the 4 inference levels and
half uniformly. The loss counts only the cells the sampler does not pin to
memory (mask < ``cfg.memory_pin``): what it predicts on pinned cells is
thrown away at run time.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..envs.config import EnvConfig
from ..eval.metrics import psnr
from ..geometry import camera_path, depth_to_grid, intrinsics_from_fov, mask_to_grid, plucker_rays, relative_pose, scale_intrinsics
from ..images import to_model, to_uint8
from ..memory import LatentSpatialMemory
from ..models.tiny.config import TinyConfig
from ..models.tiny.networks import build_denoiser
from ..models.tiny.pipeline import NUM_TRAIN_TIMESTEPS, ResidualFlowSampler, close_gaps, denoiser_input
from .data import random_scene, render_views, trajectory
from .frozen import load_or_measure_stats, load_trained_geometry, load_trained_vae
from .loop import LoopArgs, train

GENERATED_NOISE = 0.05  # on latents written to memory after the start frame
CONTEXT_NOISE = 0.15  # on the context latent of every segment but the first
MEMORY_DROPOUT = 0.1
INFERENCE_SIGMAS = torch.tensor([1.0, 0.75, 0.5, 0.25])


@dataclass
class DenoiserArgs(LoopArgs):
    out_dir: str = "checkpoints/tiny/denoiser"
    vae_dir: str = "checkpoints/tiny/vae"
    geometry_dir: str = "checkpoints/tiny/geometry"
    steps: int = 40_000
    batch_size: int = 32
    lr: float = 5e-4
    trajectory_length: int = 24
    pool_size: int = 4000


class SampleMaker:
    """Turns trajectories through rooms into (context, memory, mask, plucker, target) samples."""

    def __init__(self, vae, geometry, cfg: TinyConfig, env_cfg: EnvConfig = EnvConfig()):
        self.vae, self.geometry, self.cfg, self.env_cfg = vae, geometry, cfg, env_cfg
        size, grid = cfg.image_size, cfg.latent_size
        self.K_image = intrinsics_from_fov(env_cfg.fov_deg, size, size)
        self.K_latent = scale_intrinsics(self.K_image, (size, size), (grid, grid))
        self.mean = torch.tensor(cfg.latent_mean).view(1, -1, 1, 1)
        self.std = torch.tensor(cfg.latent_std).view(1, -1, 1, 1)

    @torch.no_grad()
    def __call__(self, rng: np.random.Generator, length: int, held_out: bool = False, noise: bool = True) -> dict:
        """Samples from one trajectory of ``length`` actions, each split into a
        segment of K in {1, 2, 4} frames exactly as the env does."""
        cfg, grid = self.cfg, self.cfg.latent_size
        scene = random_scene(rng, held_out)
        states = trajectory(scene, rng, length)
        K = int(rng.choice([1, 2, 4]))
        segments = [camera_path(a.c2w(), b.c2w(), K) for a, b in zip(states[:-1], states[1:])]
        poses = torch.cat([states[0].c2w()[None]] + segments)  # (1 + length*K, 4, 4): start frame, then segments
        times = np.arange(len(poses)) / self.env_cfg.fps + rng.uniform(0, 30)
        views = render_views(scene, poses, self.K_image, cfg.image_size, times)
        latents = (self.vae.encode(to_model(views["rgb"])).latents - self.mean) / self.std
        if self.geometry is not None:
            log_depth, logit = self.geometry(latents)
            depth, static = log_depth.exp().clamp(max=cfg.max_depth_m), logit > 0
        else:
            depth = depth_to_grid(torch.from_numpy(views["depth"]), grid, grid)
            static = mask_to_grid(torch.from_numpy(views["static"]), grid, grid)
        generated = latents + (GENERATED_NOISE * torch.randn_like(latents) if noise else 0)
        generated[0] = latents[0]  # the start frame is a real image in the env too
        memory = LatentSpatialMemory(voxel_size=self.env_cfg.voxel_size, capacity=self.env_cfg.memory_capacity,
                                     update=self.env_cfg.memory_update)
        memory.write(latents[0], depth[0], self.K_latent, poses[0], static_mask=static[0])
        out = {k: [] for k in ("context", "memory", "mask", "plucker", "target", "index")}
        context_index = 0
        for s in range(length):
            frames = list(range(1 + s * K, 1 + (s + 1) * K))
            view = memory.read(self.K_latent, poses[frames], grid, grid)
            rel = relative_pose(poses[context_index][None].expand(K, 4, 4), poses[frames])
            context = generated[context_index]
            if noise and context_index > 0:
                context = latents[context_index] + CONTEXT_NOISE * torch.randn_like(context)
            out["context"].append(context[None].expand(K, -1, -1, -1))
            out["memory"].append(view.latent)
            out["mask"].append(view.mask)
            out["plucker"].append(plucker_rays(self.K_latent, rel, grid, grid))
            out["target"].append(latents[frames])
            out["index"].append(torch.tensor(frames))
            for k in frames:
                memory.write(generated[k], depth[k], self.K_latent, poses[k], static_mask=static[k])
            context_index = frames[-1]
        samples = {k: torch.cat(v) for k, v in out.items()}
        samples["rgb"] = views["rgb"]
        return samples


def flow_loss(unet, batch: dict, rng: np.random.Generator, pin: float = 0.5, gap_support: float | None = None) -> dict:
    n = batch["target"].shape[0]
    mask = batch["mask"].clone()
    drop = torch.from_numpy(rng.random(n) < MEMORY_DROPOUT)
    mask[drop] = 0
    memory = batch["memory"]
    if gap_support is not None:  # the sampler's conditioning, exactly
        memory, mask = close_gaps(memory, mask, pin, gap_support)
    residual = batch["target"] - memory * mask[:, None]
    pick = torch.from_numpy(rng.random(n) < 0.5)
    sigma = torch.where(pick, INFERENCE_SIGMAS[torch.from_numpy(rng.integers(0, 4, n))], torch.from_numpy(rng.random(n)).float())
    noise = torch.randn_like(residual)
    s = sigma.view(-1, 1, 1, 1)
    noisy = (1 - s) * residual + s * noise
    velocity = unet(denoiser_input(noisy, batch["context"], memory, mask, batch["plucker"]), sigma * NUM_TRAIN_TIMESTEPS).sample
    weight = (mask < pin).float()[:, None]  # (n, 1, h, w): cells the sampler does not pin
    loss = ((velocity - (noise - residual)) ** 2 * weight).sum() / (weight.sum() * residual.shape[1]).clamp(min=1)
    return {"loss": loss, "residual_rms": residual.pow(2).mean().sqrt().detach()}


@torch.no_grad()
def evaluate_denoiser(unet, maker: SampleMaker, count: int = 6) -> dict:
    """Held-out rooms: PSNR of generated frames (4 steps) against ground truth,
    over all pixels and over pixels the memory covers (mask > 0.9)."""
    sampler = ResidualFlowSampler(unet, steps=4, pin=maker.cfg.memory_pin, gap_support=maker.cfg.gap_support)
    rng = np.random.default_rng(2024)
    all_scores, seen_scores = [], []
    g = torch.Generator().manual_seed(0)
    for _ in range(count):
        s = maker(rng, 24, held_out=True, noise=False)
        noise = torch.randn(s["target"].shape, generator=g)
        x0 = sampler(s["context"], s["memory"], s["mask"], s["plucker"], noise)
        vae_scale = (maker.std, maker.mean)
        frames = to_uint8(maker.vae.decode(x0 * vae_scale[0] + vae_scale[1]).sample.clamp(-1, 1))
        truth = s["rgb"][s["index"].numpy()]
        all_scores.append(psnr(frames, truth))
        seen = F.interpolate(s["mask"][:, None], scale_factor=maker.cfg.downsample, mode="nearest")[:, 0] > 0.9
        seen_scores.append(psnr(frames, truth, mask=seen))
    return {"psnr_all": float(torch.cat(all_scores).mean()), "psnr_seen": float(torch.cat(seen_scores).mean())}


def main(args: DenoiserArgs) -> dict:
    cfg = TinyConfig()
    vae = load_trained_vae(args.vae_dir, cfg)
    cfg = load_or_measure_stats(Path(args.vae_dir).parent, vae, cfg)
    geometry = load_trained_geometry(args.geometry_dir, cfg)
    maker = SampleMaker(vae, geometry, cfg)
    unet = build_denoiser(cfg)
    pool: deque = deque(maxlen=args.pool_size)
    out = Path(args.out_dir)

    def refill(rng):
        s = maker(rng, args.trajectory_length)
        for i in range(s["target"].shape[0]):
            pool.append({k: s[k][i] for k in ("context", "memory", "mask", "plucker", "target")})

    def loss_fn(model, rng):
        while len(pool) < min(args.pool_size, 40 * args.trajectory_length):
            refill(rng)
        refill(rng)
        idx = rng.integers(0, len(pool), args.batch_size)
        batch = {k: torch.stack([pool[i][k] for i in idx]) for k in pool[0]}
        return flow_loss(model, batch, rng, pin=cfg.memory_pin, gap_support=cfg.gap_support)

    def on_checkpoint(step):
        unet.eval()
        scores = evaluate_denoiser(unet, maker)
        unet.train()
        with open(out / "eval.jsonl", "a") as f:
            f.write(json.dumps({"step": step, **scores}) + "\n")

    return train(unet, args, loss_fn, on_checkpoint=on_checkpoint, desc="denoiser")
