"""``WanWorldModel``: Mirage on Wan2.2-TI2V behind the env's WorldModel interface.

One env step with K = 4k frames (frames_per_step must be a multiple of the
VAE's temporal factor, 4):

1. the memory was read at all K poses; we keep one read per latent frame,
   at the last pixel frame each latent covers: frame_index = 3, 7, ..., K-1;
2. :class:`MirageWanPipeline` samples k latent frames after the context
   latent (clean, timestep 0), conditioned on those reads through the memory
   branch;
3. [context, new latents] are decoded with the VAE's causal cache; the
   context's own frame is dropped, leaving the K new frames;
4. depth for the write-back comes from the depth model on the frames at
   frame_index, scale-aligned to the memory's depth where the memory covers
   them; sky and moving-object cells are marked non-static.

Without a depth model the write-back reuses the memory's own depth where it
covers a cell and writes nothing new elsewhere (a warning says so).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from ...geometry import depth_to_grid
from ...limits import MAX_SAMPLER_STEPS, bounded_int
from ..base import Segment, SegmentRequest, WorldModel

logger = logging.getLogger(__name__)


class WanWorldModel(WorldModel):
    """Mirage on Wan2.2 (diffusers + peft); build with :func:`load_wan_world_model`.

    Args:
        pipeline: a :class:`~mirage_gym.models.wan.pipeline.MirageWanPipeline`.
        depth_estimator: a :class:`~mirage_gym.models.depth.DepthEstimator` or None.
        segmenter: a :class:`~mirage_gym.models.depth.Segmenter` (moving objects, sky) or None.
        image_size: nominal (H, W); generation follows the request's latent size,
            which must be a multiple of 32 pixels per side.
        num_inference_steps: scheduler steps per segment (reference: 20).
        use_memory: False runs the base model (the branch hooks pass through).
        assumed_median_depth: metres, for frames without reference depth and no depth model.
    """

    name = "wan2.2"

    def __init__(self, pipeline, depth_estimator=None, segmenter=None, image_size=(704, 1280),
                 num_inference_steps: int = 20, use_memory: bool = True, assumed_median_depth: float = 3.0,
                 info: dict | None = None):
        self.pipeline = pipeline
        self.depth_estimator = depth_estimator
        self.segmenter = segmenter
        self.latent_channels = pipeline.latent_channels
        self.downsample = pipeline.spatial_factor
        self.frames_per_latent = pipeline.temporal_factor
        self.image_size = (int(image_size[0]), int(image_size[1]))
        pipeline.check_size(*self.image_size)
        self.num_inference_steps = bounded_int("num_inference_steps", num_inference_steps, 1, MAX_SAMPLER_STEPS, "sampler steps per segment")
        self.use_memory = bool(use_memory)
        self.assumed_median_depth = float(assumed_median_depth)
        self.info = dict(info or {})
        self.device = pipeline.device
        self._warned_no_depth = False

    def to(self, device) -> "WanWorldModel":
        device = torch.device(device)
        for m in (self.pipeline.vae, self.pipeline.transformer, self.pipeline.branch):
            if m is not None:
                m.to(device)
        if self.depth_estimator is not None:
            self.depth_estimator.model.to(device)
        self.device = device
        return self

    # latents <-> frames -----------------------------------------------------------

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [-1, 1] -> normalised latents (N, C, H/16, W/16)."""
        return self.pipeline.encode_images(images)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Normalised latents (N, C, h, w), each a one-frame video -> (N, 3, H, W)."""
        video = self.pipeline.decode_video(latents[:, :, None])  # (N, 3, 1, H, W)
        return video[:, :, 0]

    def decode_segment(self, segment: Segment, num_frames: int) -> torch.Tensor:
        if segment.frames is not None:
            return segment.frames
        context = segment.extras.get("context")
        if context is None:
            raise ValueError("this segment has neither frames nor its context latent; Wan decodes a segment after its context")
        video = self.pipeline.decode_video(torch.cat([context[:, None], segment.latents], 1).transpose(1, 2))
        return video[:, :, 1:].transpose(1, 2)[:, :num_frames]  # (B, K, 3, H, W)

    # geometry ---------------------------------------------------------------------

    def _geometry(self, images: torch.Tensor, grid_hw, reference_depth=None, reference_mask=None):
        """Depth (N, h, w) and static probability (N, h, w) for images (N, 3, H, W).

        reference_depth / reference_mask (N, h, w): the memory's depth and
        coverage at the same poses, used to align the depth model's scale."""
        from ..depth import static_probability

        h, w = grid_hw
        masks = self.segmenter(images) if self.segmenter is not None else None
        seg_sky = masks.sky if masks is not None else None
        moving = masks.moving if masks is not None else None
        if self.depth_estimator is not None:
            valid = None
            if reference_depth is not None:
                valid = torch.isfinite(reference_depth)
                if reference_mask is not None:
                    valid = valid & (reference_mask > 0.5)
            pred = self.depth_estimator(images, reference_depth, valid, sky=seg_sky)
            sky = pred.sky.cpu()
            depth = depth_to_grid(pred.depth.cpu(), h, w)  # (N, h, w)
        else:
            if not self._warned_no_depth:
                logger.warning("WanWorldModel has no depth model (add depth/ to the weights folder): memory writes reuse "
                               "the memory's own depth and skip new content; a start frame gets a flat %.1f m plane",
                               self.assumed_median_depth)
                self._warned_no_depth = True
            N, _, H, W = images.shape
            if reference_depth is not None:
                covered = torch.isfinite(reference_depth) & (reference_mask > 0.5 if reference_mask is not None else True)
                depth = torch.where(covered, reference_depth.float(), torch.full_like(reference_depth.float(), float("inf"))).cpu()
            else:
                depth = torch.full((N, h, w), self.assumed_median_depth)
            sky = seg_sky.cpu() if seg_sky is not None else torch.zeros(N, H, W, dtype=torch.bool)
        if seg_sky is not None:
            depth = torch.where(depth_to_grid(seg_sky.float(), h, w) > 0.5, torch.full_like(depth, float("inf")), depth)
        static = static_probability(moving, sky, depth, (h, w))
        return depth.float(), static

    def estimate_geometry(self, latents: torch.Tensor, images: torch.Tensor | None = None):
        """Depth (N, h, w) in metres (inf for sky) and static probability (N, h, w).
        With no reference depth the depth model's scale is an assumption
        (median depth ``assumed_median_depth`` for relative models)."""
        if images is None:
            images = self.decode(latents)
        return self._geometry(images, latents.shape[-2:])

    # generation -------------------------------------------------------------------

    def frame_index(self, num_frames: int) -> torch.Tensor:
        """(k,) index of the last pixel frame of each latent frame among the K."""
        f = self.frames_per_latent
        if num_frames % f:
            raise ValueError(f"Wan2.2 generates {f} frames per latent frame: frames_per_step must be a multiple of {f}, got {num_frames}")
        return torch.arange(num_frames // f) * f + (f - 1)

    @torch.no_grad()
    def generate(self, request: SegmentRequest) -> Segment:
        B, K = request.batch_size, request.num_frames
        idx = self.frame_index(K)  # (k,)
        h, w = request.context_latent.shape[-2:]
        self.pipeline.check_size(h * self.downsample, w * self.downsample)
        mem_latent = request.memory_latent[:, idx]  # (B, k, C, h, w): one read per latent frame
        mem_mask = request.memory_mask[:, idx]  # (B, k, h, w)
        latents = self.pipeline.sample(
            request.context_latent, mem_latent, mem_mask, generators=request.generators,
            num_inference_steps=self.num_inference_steps, use_memory=self.use_memory,
        )  # (B, k, C, h, w) normalised
        video = self.pipeline.decode_video(torch.cat([request.context_latent.to(latents.device)[:, None], latents], 1).transpose(1, 2))
        frames = video[:, :, 1:].transpose(1, 2).float()  # (B, K, 3, H, W): the context's frame is dropped
        key = frames[:, idx].flatten(0, 1)  # (B k, 3, H, W)
        ref_depth = request.memory_depth[:, idx].flatten(0, 1).to(torch.float32)
        ref_mask = mem_mask.flatten(0, 1).float()
        depth, static = self._geometry(key, (h, w), ref_depth, ref_mask)
        return Segment(
            latents=latents.float(), frame_index=idx, depth=depth.unflatten(0, (B, len(idx))),
            static=static.unflatten(0, (B, len(idx))), frames=frames,
            extras={"context": request.context_latent, "num_inference_steps": self.num_inference_steps},
        )

    def describe(self) -> dict:
        d = super().describe()
        d.update(
            backbone="Wan2.2-TI2V (diffusers WanTransformer3DModel + AutoencoderKLWan)",
            num_inference_steps=self.num_inference_steps, use_memory=self.use_memory,
            scheduler=type(self.pipeline.scheduler).__name__,
            depth_model=None if self.depth_estimator is None else type(self.depth_estimator.model).__name__,
            segmenter=None if self.segmenter is None else type(self.segmenter).__name__,
            **self.info,
        )
        return d


def load_wan_world_model(path, device="cpu", dtype=None, prompt: str | None = None, image_size=None,
                         num_inference_steps: int | None = None, use_memory: bool = True, lora_scale: float = 1.0,
                         depth_path=None, segmentation_path=None, segmenter=None, assumed_median_depth: float | None = None,
                         branch_inject_layers=None, **unused) -> WanWorldModel:
    """Load Mirage-on-Wan2.2 from a local weights folder (layout: :mod:`.loading`).

    device / dtype: where and how to run the transformer and branch (dtype
    defaults to bfloat16 on CUDA, float32 otherwise; the VAE and depth model
    stay float32). prompt: encoded once with text_encoder/ + tokenizer/, which
    are then released; without it ``prompt_embeds.safetensors`` (or zeros) is
    used. image_size / num_inference_steps / assumed_median_depth default to
    ``world_model.json`` in the folder, else (704, 1280) / 20 / 3.0.
    depth_path, segmentation_path: local transformers folders overriding
    depth/ and segmentation/; segmenter: any :class:`~mirage_gym.models.depth.Segmenter`.
    """
    from . import loading
    from .pipeline import MirageWanPipeline

    folder = loading.check_weights_folder(path)
    if unused:
        logger.info("load_wan_world_model ignores %s", sorted(unused))
    device = torch.device(device)
    if dtype is None:
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    elif isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    defaults = folder.defaults

    vae = loading.load_vae(folder, device, torch.float32)
    transformer = loading.load_transformer(folder, device, dtype)
    scheduler = loading.load_scheduler(folder)
    branch_kw = {} if branch_inject_layers is None else {"inject_layers": branch_inject_layers}
    branch = loading.load_memory_branch(folder, transformer, device, dtype, **branch_kw)
    if folder.lora is not None:
        loading.load_lora(transformer, folder.lora, scale=lora_scale)
        transformer.requires_grad_(False)
    embeds = loading.load_prompt_embeds(folder, prompt, transformer.config.text_dim, device, dtype)
    pipeline = MirageWanPipeline(vae, transformer, scheduler, branch, embeds)

    median = float(assumed_median_depth if assumed_median_depth is not None else defaults.get("assumed_median_depth", 3.0))
    depth_estimator = None
    depth_dir = Path(depth_path) if depth_path is not None else folder.depth
    if depth_dir is not None:
        from ..depth import DepthEstimator

        depth_estimator = DepthEstimator.from_pretrained(depth_dir, device=device, assumed_median_depth=median,
                                                         **defaults.get("depth", {}))
    seg_dir = Path(segmentation_path) if segmentation_path is not None else folder.segmentation
    if segmenter is None and seg_dir is not None:
        from ..depth import SemanticSegmenter

        segmenter = SemanticSegmenter.from_pretrained(seg_dir, device=device)

    size = image_size if image_size is not None else defaults.get("image_size", (704, 1280))
    if isinstance(size, int):
        size = (size, size)
    info = {
        "weights": str(folder.root),
        "memory_branch": "trained" if folder.memory_branch is not None else "zero-initialised (untrained)",
        "lora": str(folder.lora) if folder.lora is not None else None,
        "prompt": prompt if prompt is not None else ("prompt_embeds.safetensors" if folder.prompt_embeds else "empty"),
    }
    return WanWorldModel(
        pipeline, depth_estimator=depth_estimator, segmenter=segmenter, image_size=size,
        num_inference_steps=num_inference_steps if num_inference_steps is not None else defaults.get("num_inference_steps", 20),
        use_memory=use_memory, assumed_median_depth=median, info=info,
    )
