"""Readout fidelity: is the pixel round trip lossy, and is the latent one better?

One room; the memories hold the views of the first ``write_steps`` segments
of the tour (ground truth, ground-truth depth). Revisit cameras are those
views moved sideways by ``offset_m`` and turned by half a turn step, so a
readout has to resample, not copy. At each revisit:

* **latent path**: the latent memory (written with ``codec.encode`` of the
  ground-truth frames, exact depth at the token centres) is read on the
  latent grid. Compared with ``codec.encode`` of the ground truth at the
  revisit pose (latent MSE, and relative to the latents' variance), and
  decoded and compared with the ground-truth image (PSNR).
* **RGB path**: the RGB point cloud (full resolution) is rendered at the
  revisit pose, VAE-encoded (the round trip Mirage removes), and compared the
  same ways; the PSNR of the raw render (before the encode) separates the
  splat's error from the codec's.

Only cells covered by both memories (mask > 0.5), on static ground truth,
are compared. ``codec ceiling`` is decode(encode(ground truth)) vs ground
truth: no readout can beat it. With random codec weights decoded PSNRs are
meaningless (reported, flagged); the exact pixel-unshuffle codec makes the
check meaningful until trained weights exist: then the only difference is
where the resampling happens (latent grid vs full resolution).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ..geometry import intrinsics_from_fov, pose_from_yaw_pitch, scale_intrinsics, yaw_pitch_from_pose
from ..images import to_model
from ..memory import LatentSpatialMemory, RGBPointCloudMemory
from .bench_setup import render_segment
from .metrics import psnr


def _revisit_poses(room, traj, write_steps: int, views: int, offset_m: float) -> list[torch.Tensor]:
    flat = traj.paths[:write_steps].reshape(-1, 4, 4)
    picks = np.linspace(0, flat.shape[0] - 1, views).round().astype(int)
    out = []
    for i in picks:
        c2w = flat[i]
        yaw, pitch = yaw_pitch_from_pose(c2w)
        pos = c2w[:3, 3].double().numpy()
        right = np.array([math.sin(yaw), -math.cos(yaw), 0.0])
        for sign in (1, -1):
            q = pos + sign * offset_m * right
            if room.is_free(q):
                out.append(pose_from_yaw_pitch(q, yaw + sign * math.radians(7.5), pitch))
                break
    return out


def _masked_mse(a, b, mask) -> float:
    m = mask.float()[:, None]
    return float(((a - b) ** 2 * m).sum() / (m.sum() * a.shape[1]).clamp(min=1))


@torch.no_grad()
def run_readout(room, traj, codecs, *, image_size: int, write_steps: int = 24, views: int = 8, offset_m: float = 0.25,
                log=print) -> dict:
    """``codecs``: list of (name, codec, meaningful: bool)."""
    S = image_size
    K_img = intrinsics_from_fov(room.fov_deg, S, S)
    write_steps = min(write_steps, len(traj))
    revisit = _revisit_poses(room, traj, write_steps, views, offset_m)
    truths = [room.render(c2w, K_img, S, S, t=0.0) for c2w in revisit]
    results = {}
    for name, codec, meaningful in codecs:
        f = codec.downsample
        h = S // f
        K_lat = scale_intrinsics(K_img, (S, S), (h, h))
        lat_mem = LatentSpatialMemory(0.15 * 16 / h)  # float16 tokens, as in the env
        rgb_mem = RGBPointCloudMemory(0.15 * 16 / h / f)
        for i in range(write_steps):
            r = render_segment(room, traj.paths[i], traj.times[i], S, K_img, grid=h, K_latent=K_lat)
            lat_mem.write(codec.encode(to_model(r.rgb)), r.depth_latent, K_lat, traj.paths[i], static_mask=r.static_latent)
            rgb_mem.write(r.rgb, r.depth, K_img, traj.paths[i], static_mask=r.static)
        acc = {k: [] for k in ("latent_mse", "rgb_mse", "latent_rel", "rgb_rel", "latent_psnr", "rgb_psnr", "rgb_render_psnr",
                               "codec_ceiling_psnr", "cells_compared")}
        for c2w, gt in zip(revisit, truths):
            gt_img = to_model(gt["rgb"])  # (1, 3, S, S)
            static = torch.from_numpy(gt["static"])[None]
            z_gt = codec.encode(gt_img)
            lv = lat_mem.read(K_lat, c2w, h, h)
            rv = rgb_mem.read(K_img, c2w, S, S)
            z_rgb = codec.encode(rv.rgb[None])
            rgb_cov = F.avg_pool2d(rv.mask[None, None].float(), f)[0]  # (1, h, w)
            static_cells = F.avg_pool2d(static[:, None].float(), f)[:, 0] > 0.999
            cells = (lv.mask[None] > 0.5) & (rgb_cov > 0.5) & static_cells  # (1, h, w)
            if int(cells.sum()) == 0:
                continue
            var = float(((z_gt - (z_gt * cells[:, None]).sum((2, 3), keepdim=True) / cells.sum()) ** 2 * cells[:, None]).sum()
                        / (cells.sum() * z_gt.shape[1]))
            lm, rm = _masked_mse(lv.latent[None], z_gt, cells), _masked_mse(z_rgb, z_gt, cells)
            pix = cells.repeat_interleave(f, -2).repeat_interleave(f, -1) & static
            img_lat, img_rgb = codec.decode(lv.latent[None]), codec.decode(z_rgb)
            acc["latent_mse"].append(lm)
            acc["rgb_mse"].append(rm)
            acc["latent_rel"].append(lm / max(var, 1e-12))
            acc["rgb_rel"].append(rm / max(var, 1e-12))
            acc["latent_psnr"].append(float(psnr(img_lat, gt_img, pix)[0]))
            acc["rgb_psnr"].append(float(psnr(img_rgb, gt_img, pix)[0]))
            acc["rgb_render_psnr"].append(float(psnr(rv.rgb[None], gt_img, pix)[0]))
            acc["codec_ceiling_psnr"].append(float(psnr(codec.decode(z_gt), gt_img, pix)[0]))
            acc["cells_compared"].append(int(cells.sum()))
        mean = {k: (float(np.mean(v)) if v else None) for k, v in acc.items()}
        res = {"codec": getattr(codec, "label", name), "meaningful": meaningful, "views": len(acc["latent_mse"]),
               "latent_grid": h, "channels": int(codec.latent_channels), **mean}
        if not meaningful:
            res["note"] = "random codec weights: decoded PSNRs are meaningless; latent errors compare the two paths in the same (random) latent space"
        results[name] = res
        log(f"  {name}: latent readout PSNR {mean['latent_psnr']:.2f} dB (latent MSE {mean['latent_mse']:.4g}, rel {mean['latent_rel']:.3f}) | "
            f"RGB render {mean['rgb_render_psnr']:.2f} dB -> after VAE round trip {mean['rgb_psnr']:.2f} dB "
            f"(latent MSE {mean['rgb_mse']:.4g}, rel {mean['rgb_rel']:.3f}) | codec ceiling {mean['codec_ceiling_psnr']:.2f} dB"
            + ("" if meaningful else "  [random weights: PSNRs meaningless]"))
    return {"image_size": S, "write_steps": write_steps, "revisit_views": len(revisit), "offset_m": offset_m,
            "yaw_offset_deg": 7.5, "codecs": results}
