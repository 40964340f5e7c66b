"""The Mirage sampling loop on Wan2.2, kept apart from the networks (as
diffusers keeps pipelines apart from models).

One segment, the way Wan2.2 TI2V conditions on an image:

* the latent video has F = 1 + k latent frames (1 + 4k pixel frames); frame 0
  is the *context* (the latest latent of the episode), kept clean: its tokens
  get timestep 0 (``expand_timesteps``: per-token timesteps) and it is
  re-imposed after every scheduler step;
* frames 1..k are denoised from Gaussian noise with a flow-matching scheduler
  (UniPC with flow prediction or FlowMatchEuler), no classifier-free guidance;
* the memory branch sees, per latent frame, the memory warped to that frame's
  pose plus its coverage mask (frame 0: the context itself, mask 1).

Latents crossing this module's API are *normalised*, (z - mean) / std with
the VAE's ``latents_mean`` / ``latents_std``: those are what the transformer
works on and what the memory stores.

Shapes: B batch, C latent channels, F latent frames, h x w latent grid,
T = 1 + 4 (F - 1) pixel frames, H x W pixels.
"""

from __future__ import annotations

import contextlib
from typing import Sequence

import torch

from ..base import randn_per_episode
from .memory_branch import attach_memory_branch


class StreamingVideoDecoder:
    """Decode a latent video chunk by chunk, carrying the Wan VAE decoder's
    causal cache between chunks, so that decoding [z0..z3] then [z4..z7]
    gives the same frames as decoding [z0..z7] at once (and frames are
    available as soon as their latent is).

    ``push`` takes *unnormalised* latents (B, C, f, h, w) and returns the
    new pixel frames (B, 3, t, H, W) in [-1, 1]: 1 frame for the very first
    latent frame, 4 (the temporal factor) for each later one.
    """

    def __init__(self, vae):
        from diffusers.models.autoencoders.autoencoder_kl_wan import WanCausalConv3d, unpatchify

        self.vae = vae
        self._unpatchify = unpatchify
        num_convs = sum(isinstance(m, WanCausalConv3d) for m in vae.decoder.modules())
        self._cache: list = [None] * num_convs  # per causal conv: its last input frames
        self._first = True

    @torch.no_grad()
    def push(self, latents: torch.Tensor) -> torch.Tensor:
        vae = self.vae
        x = vae.post_quant_conv(latents.to(vae.dtype))  # 1x1x1 conv: no temporal state
        outs = []
        for i in range(x.shape[2]):
            out = vae.decoder(x[:, :, i : i + 1], feat_cache=self._cache, feat_idx=[0], first_chunk=self._first)
            self._first = False
            outs.append(out)
        out = torch.cat(outs, dim=2)
        if vae.config.patch_size is not None:
            out = self._unpatchify(out, patch_size=vae.config.patch_size)
        return out.clamp(-1.0, 1.0)


def build_condition(context: torch.Tensor, memory_latent: torch.Tensor, memory_mask: torch.Tensor) -> torch.Tensor:
    """The memory branch input (B, C + 1, 1 + k, h, w).

    context (B, C, h, w); memory_latent (B, k, C, h, w) zeros where empty;
    memory_mask (B, k, h, w) in [0, 1]. Frame 0 carries the context with
    mask 1 (it is known exactly)."""
    B, k, C, h, w = memory_latent.shape
    lat = torch.cat([context[:, None], memory_latent.to(context.dtype)], dim=1)  # (B, 1 + k, C, h, w)
    mask = torch.cat([torch.ones_like(memory_mask[:, :1]), memory_mask], dim=1).to(context.dtype)  # (B, 1 + k, h, w)
    return torch.cat([lat, mask[:, :, None]], dim=2).transpose(1, 2).contiguous()  # (B, C + 1, 1 + k, h, w)


def token_timesteps(frame_timesteps: torch.Tensor, h: int, w: int, patch_size: Sequence[int]) -> torch.Tensor:
    """Per-token timesteps (B, N) from per-latent-frame timesteps (B, F),
    in the DiT's token order (frame-major, then rows, then columns)."""
    pt, ph, pw = patch_size
    B, F = frame_timesteps.shape
    per_frame = (h // ph) * (w // pw)
    return frame_timesteps[:, :: pt].repeat_interleave(per_frame, dim=1)


class WanLatentCodec:
    """The Wan VAE with the normalisation the DiT and the memory use.

    ``patch`` is the transformer's spatial patch: frame sides must be
    multiples of VAE factor x patch (16 x 2 = 32 for Wan2.2 TI2V)."""

    def __init__(self, vae, patch: int = 2):
        self.vae = vae
        self.latent_channels = int(vae.config.z_dim)
        self.spatial_factor = int(vae.config.scale_factor_spatial)
        self.temporal_factor = int(vae.config.scale_factor_temporal)
        self.patch = int(patch)

    def _stats(self, like: torch.Tensor):
        shape = (1, self.latent_channels) + (1,) * (like.ndim - 2)
        mean = torch.tensor(self.vae.config.latents_mean, device=like.device, dtype=torch.float32).view(shape)
        std = torch.tensor(self.vae.config.latents_std, device=like.device, dtype=torch.float32).view(shape)
        return mean, std

    def normalize(self, z: torch.Tensor) -> torch.Tensor:
        """Raw VAE latents (B, C, ...) -> normalised, (z - mean) / std, as the DiT and the memory see them."""
        mean, std = self._stats(z)
        return (z.float() - mean) / std

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        mean, std = self._stats(z)
        return z.float() * std + mean

    def check_size(self, height: int, width: int) -> None:
        m = self.spatial_factor * self.patch
        if height % m or width % m:
            raise ValueError(f"frames of {height}x{width} do not fit Wan2.2: height and width must be multiples of {m} "
                             f"(VAE factor {self.spatial_factor} x transformer patch {self.patch})")

    @torch.no_grad()
    def encode_video(self, video: torch.Tensor) -> torch.Tensor:
        """Video (B, 3, T, H, W) in [-1, 1], T = 1 + 4k -> normalised latents (B, C, 1 + k, h, w)."""
        self.check_size(*video.shape[-2:])
        z = self.vae.encode(video.to(self.vae.device, self.vae.dtype)).latent_dist.mode()
        return self.normalize(z)

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """Images (N, 3, H, W) in [-1, 1] -> normalised latents (N, C, H/16, W/16),
        each encoded as a one-frame video (the TI2V first-frame latent)."""
        return self.encode_video(images[:, :, None])[:, :, 0]

    @torch.no_grad()
    def decode_video(self, latents: torch.Tensor) -> torch.Tensor:
        """Normalised latents (B, C, F, h, w) -> frames (B, 3, 1 + 4 (F - 1), H, W),
        decoded with :class:`StreamingVideoDecoder` one latent frame at a time."""
        return StreamingVideoDecoder(self.vae).push(self.denormalize(latents).to(self.vae.device))


class MirageWanPipeline:
    """VAE + transformer (+ memory branch, + LoRA already loaded) + scheduler.

    Args:
        vae: ``AutoencoderKLWan`` (Wan2.2: 48 channels, 16x spatial, 4x temporal).
        transformer: ``WanTransformer3DModel`` with ``in_channels == out_channels == C``.
        scheduler: ``UniPCMultistepScheduler`` (flow prediction) or ``FlowMatchEulerDiscreteScheduler``.
        branch: a ``WanMemoryBranch``, or None for the base model without memory.
        prompt_embeds: (1, L, text_dim) used for every sample.
    """

    def __init__(self, vae, transformer, scheduler, branch=None, prompt_embeds: torch.Tensor | None = None):
        self.vae, self.transformer, self.scheduler, self.branch = vae, transformer, scheduler, branch
        self.attachment = attach_memory_branch(transformer, branch) if branch is not None else None
        self.patch_size = tuple(transformer.config.patch_size)
        self.codec = WanLatentCodec(vae, self.patch_size[1])
        C = self.codec.latent_channels
        if transformer.config.in_channels != C or transformer.config.out_channels != C:
            raise ValueError(f"transformer has in/out channels {transformer.config.in_channels}/{transformer.config.out_channels}, "
                             f"the VAE {C}: Wan2.2 TI2V needs both equal to the VAE's z_dim")
        self.latent_channels = C
        self.spatial_factor = self.codec.spatial_factor
        self.temporal_factor = self.codec.temporal_factor
        self.prompt_embeds = prompt_embeds if prompt_embeds is not None else torch.zeros(1, 1, transformer.config.text_dim)
        # the codec's methods, for callers that hold the pipeline
        self.normalize, self.denormalize = self.codec.normalize, self.codec.denormalize
        self.check_size, self.encode_images, self.decode_video = self.codec.check_size, self.codec.encode_images, self.codec.decode_video

    @property
    def device(self) -> torch.device:
        return self.transformer.device

    # sampling ----------------------------------------------------------------------

    @torch.no_grad()
    def sample(self, context: torch.Tensor, memory_latent: torch.Tensor, memory_mask: torch.Tensor,
               generators: Sequence[torch.Generator] | None = None, num_inference_steps: int = 20,
               prompt_embeds: torch.Tensor | None = None, use_memory: bool = True) -> torch.Tensor:
        """Generate k new latent frames after ``context``.

        context (B, C, h, w) normalised; memory_latent (B, k, C, h, w) normalised,
        zeros where empty; memory_mask (B, k, h, w). Returns (B, k, C, h, w)
        normalised. Noise for episode b comes from ``generators[b]`` only.
        """
        B, k, C, h, w = memory_latent.shape
        device, dtype = self.device, self.transformer.dtype
        F = 1 + k
        ctx = context.to(device, torch.float32)[:, :, None]  # (B, C, 1, h, w)
        keep = torch.ones(1, 1, F, 1, 1, device=device)  # 1 = generated, 0 = clean context
        keep[:, :, 0] = 0
        noise = randn_per_episode((C, F, h, w), generators, B, device=device)
        latents = (1 - keep) * ctx + keep * noise  # (B, C, F, h, w), float32 for the scheduler
        cond = build_condition(context.to(device, torch.float32), memory_latent.to(device), memory_mask.to(device)).to(dtype)
        embeds = (prompt_embeds if prompt_embeds is not None else self.prompt_embeds).to(device, dtype)
        embeds = embeds.expand(B, -1, -1)
        frame_is_new = keep.view(1, F).expand(B, F)

        self.scheduler.set_timesteps(num_inference_steps, device=device)
        attach = self.attachment.condition(cond if use_memory else None) if self.attachment is not None else contextlib.nullcontext()
        with attach:
            for t in self.scheduler.timesteps:
                timestep = token_timesteps(frame_is_new * t.float(), h, w, self.patch_size)  # (B, N), 0 on context tokens
                velocity = self.transformer(latents.to(dtype), timestep, embeds, return_dict=False)[0]
                latents = self.scheduler.step(velocity.float(), t, latents, return_dict=False)[0]
                latents = (1 - keep) * ctx + keep * latents  # re-impose the clean context
        return latents[:, :, 1:].transpose(1, 2).contiguous()  # (B, k, C, h, w)
