"""The oracle world model: ground truth instead of generation.

It renders the procedural scene at each requested pose and time, so an env
built on it is exact and fast. It still produces latents (the env writes them
to memory, so memory observations, coverage and the benchmarks work), either
from a learned VAE (``latent="vae"``, the embedded model's encoder) or, by
default, an exact invertible "pixel-unshuffle" latent: each f x f pixel block
becomes 3 f^2 channels of one latent cell.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..geometry import depth_to_grid, mask_to_grid
from ..images import to_model
from .base import Segment, SegmentRequest, WorldModel


class PixelUnshuffleCodec:
    """An exact, parameter-free latent: (N,3,H,W) <-> (N, 3 f^2, H/f, W/f)."""

    def __init__(self, downsample: int):
        self.downsample = int(downsample)
        self.latent_channels = 3 * self.downsample**2

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return F.pixel_unshuffle(images, self.downsample)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(latents, self.downsample)

    def encode_uint8(self, images: np.ndarray, device=None) -> torch.Tensor:
        """``encode(to_model(images))`` for uint8 (..., H, W, 3) images, bit for bit: the
        latent is a permutation of the pixels, so permute first and convert only once."""
        t = torch.from_numpy(np.ascontiguousarray(images)).to(device=device)
        t = F.pixel_unshuffle(t.reshape(-1, *t.shape[-3:]).permute(0, 3, 1, 2), self.downsample)
        return t.float().div_(127.5).sub_(1.0)  # to_model's conversion


class OracleWorldModel(WorldModel):
    """Renders ground truth at every pose; see the module docstring."""

    name = "oracle"
    needs_scene = True

    def __init__(self, image_size=(64, 64), downsample: int = 4, codec=None, device="cpu", reads_memory: bool = False):
        # generate() ignores the memory, so by default the env does not read it;
        # reads_memory=True makes the env pay for the read every step anyway, as
        # it would for a real generator (benchmarks that stand the oracle in for one).
        self.reads_memory = bool(reads_memory)
        H, W = int(image_size[0]), int(image_size[1])
        self.codec = codec if codec is not None else PixelUnshuffleCodec(downsample)
        self.downsample = self.codec.downsample
        if H % self.downsample or W % self.downsample:
            raise ValueError(f"obs_size {H}x{W} must be divisible by the latent downsample factor {self.downsample}")
        self.image_size = (H, W)
        self.latent_channels = self.codec.latent_channels
        self.device = torch.device(device)

    @property
    def codec_name(self) -> str:
        return "pixel-unshuffle" if isinstance(self.codec, PixelUnshuffleCodec) else "vae"

    @torch.no_grad()
    def encode(self, images):
        return self.codec.encode(images.to(self.device))

    @torch.no_grad()
    def decode(self, latents):
        return self.codec.decode(latents.to(self.device))

    def decode_segment(self, segment: Segment, num_frames: int) -> torch.Tensor:
        """The rendered frames as model images (B, K, 3, H, W)."""
        if segment.frames is None and segment.rgb is not None:
            return to_model(segment.rgb, device=self.device).unflatten(0, segment.rgb.shape[:2])
        return super().decode_segment(segment, num_frames)

    def estimate_geometry(self, latents, images=None):
        raise NotImplementedError("the oracle has no depth head: use the scene's ground-truth depth (depth_source='scene')")

    def render_ground_truth(self, scenes, c2w: torch.Tensor, times: torch.Tensor, K: torch.Tensor, geometry=None):
        """Render (B, K) poses. Returns rgb uint8 (B,K,H,W,3), depth (B,K,H,W), static (B,K,H,W), and with
        ``geometry`` (K, h, w) that view of each episode's last frame, (depth (B,h,w), static (B,h,w)) (else None)."""
        H, W = self.image_size
        B, T = c2w.shape[:2]
        if B * T == 1:  # one env, one frame per step: the render's own arrays, no copies
            out = scenes[0].render(c2w[0, 0], K, H, W, t=float(times[0, 0]), geometry=geometry)
            geo = None if geometry is None else (out["geometry_depth"][None], out["geometry_static"][None])
            return (out["rgb"][None, None], torch.from_numpy(out["depth"][None, None]),
                    torch.from_numpy(out["static"][None, None]), geo)
        rgb = np.empty((B, T, H, W, 3), np.uint8)
        depth = np.empty((B, T, H, W), np.float32)
        static = np.empty((B, T, H, W), bool)
        geo = None if geometry is None else (np.empty((B, *geometry[1:]), np.float32), np.empty((B, *geometry[1:]), bool))
        for b in range(B):
            for k in range(T):
                last = geometry is not None and k == T - 1
                out = scenes[b].render(c2w[b, k], K, H, W, t=float(times[b, k]), geometry=geometry if last else None)
                rgb[b, k], depth[b, k], static[b, k] = out["rgb"], out["depth"], out["static"]
                if last:
                    geo[0][b], geo[1][b] = out["geometry_depth"], out["geometry_static"]
        return rgb, torch.from_numpy(depth), torch.from_numpy(static), geo

    @torch.no_grad()
    def generate(self, request: SegmentRequest) -> Segment:
        if request.scenes is None:
            raise ValueError("the oracle world model needs ground-truth scenes (procedural rooms); it cannot run on a photo")
        B, K = request.batch_size, request.num_frames
        rgb, depth, static, geometry = self.render_ground_truth(request.scenes, request.c2w, request.times, request.K,
                                                               request.geometry_view)
        if isinstance(self.codec, PixelUnshuffleCodec):  # float frames only if asked for (decode_segment)
            frames, latents = None, self.codec.encode_uint8(rgb, self.device).unflatten(0, (B, K))
        else:
            frames = to_model(rgb, device=self.device).unflatten(0, (B, K))  # (B, K, 3, H, W)
            latents = self.encode(frames.flatten(0, 1)).unflatten(0, (B, K))
        h, w = self.latent_size
        return Segment(
            latents=latents,
            frame_index=torch.arange(K),
            depth=depth_to_grid(depth, h, w),
            static=mask_to_grid(static, h, w).float(),
            frames=frames,
            rgb=rgb,  # exact: to_uint8(to_model(rgb)) == rgb
            geometry=geometry,
        )
