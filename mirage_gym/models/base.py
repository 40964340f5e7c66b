"""The world-model interface every backend implements.

One step of the env (docs/design.md, "A step"):

    action -> camera path (K poses)
           -> memory.read(K poses)                 -> SegmentRequest.memory_*
           -> world_model.generate(request)        -> Segment (latents, depth, static)
           -> world_model.decode(segment)          -> K frames
           -> memory.write(segment latents, depth, static filter)

A world model works for a batch of B episodes at once (the vector env calls
it once per step for all of them); the single env is the B = 1 case.

Shapes: B episodes, K frames per segment, L latent frames per segment (K for
per-frame models, fewer for models with temporal compression such as Wan),
C latent channels, h x w latent grid, H x W frames.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

import numpy as np
import torch


@dataclass
class SegmentRequest:
    """What the env gives the world model to generate one segment."""

    c2w: torch.Tensor  # (B, K, 4, 4) camera-to-world poses of the K new frames
    K: torch.Tensor  # (3, 3) intrinsics at frame resolution (H x W)
    context_latent: torch.Tensor  # (B, C, h, w) latent of the latest frame
    context_c2w: torch.Tensor  # (B, 4, 4) its pose
    # The memory warped to each target pose; these (and memory_observed) are None for a model
    # whose ``reads_memory`` is False (the env skips the read).
    memory_latent: torch.Tensor | None  # (B, K, C, h, w) (zeros where empty)
    memory_mask: torch.Tensor | None  # (B, K, h, w) in [0, 1]: how much of each cell the memory covers
    memory_depth: torch.Tensor | None  # (B, K, h, w) depth of the warped memory, inf where empty
    times: torch.Tensor  # (B, K) scene time of each frame in seconds (moving objects)
    #: (B, K, h, w) in [0, 1]: the share of each cell's memory content written from
    #: an observed (real) frame rather than a generated one (None: all generated)
    memory_observed: torch.Tensor | None = None
    scenes: Sequence[Any] | None = None  # ground-truth scenes, only for the oracle
    #: one generator per episode: episode b's noise comes only from generators[b], so
    #: a batched step equals B single steps and a snapshot restores the exact stream
    generators: Sequence[torch.Generator] | None = None
    #: (K, h, w) of the env's ground-truth coverage view: a model that renders
    #: the scene anyway (the oracle) returns that view of each episode's last
    #: frame in ``Segment.geometry``, traced in the same pass; others ignore it
    geometry_view: tuple | None = None
    #: (B, K, C, h, w): the memory's room prior at each target pose (memory/room_prior.py),
    #: given to a model whose ``uses_room_prior`` is True; None otherwise
    memory_prior: torch.Tensor | None = None

    @property
    def batch_size(self) -> int:
        return self.c2w.shape[0]

    @property
    def num_frames(self) -> int:
        return self.c2w.shape[1]


@dataclass
class Segment:
    """What the world model returns for one segment."""

    latents: torch.Tensor  # (B, L, C, h, w) generated latents, the ones written to memory
    frame_index: torch.Tensor  # (L,) long: which of the K frames each latent frame shows
    depth: torch.Tensor | None = None  # (B, L, h, w) predicted z-depth, inf for sky; None: model has none
    static: torch.Tensor | None = None  # (B, L, h, w) probability the token is static (not sky, not moving)
    frames: torch.Tensor | None = None  # (B, K, 3, H, W) in [-1, 1] when the model already has pixels
    extras: dict = field(default_factory=dict)
    #: (B, K, H, W, 3) uint8 numpy: the frames as images, when the model has them
    #: exactly (the oracle's renders); the env then skips converting ``frames`` back
    rgb: np.ndarray | None = None
    #: (depth (B, h, w) float32, static (B, h, w) bool) numpy: ``request.geometry_view``, if the model rendered it
    geometry: tuple | None = None

    def with_frames(self, frames: torch.Tensor) -> "Segment":
        return replace(self, frames=frames, rgb=None)


class WorldModel(ABC):
    """A video world model with latent spatial memory, behind one interface.

    Subclasses set ``name``, ``latent_channels``, ``downsample`` (pixels per
    latent cell), ``image_size`` (H, W) and ``frames_per_latent``, and
    implement :meth:`encode`, :meth:`decode`, :meth:`generate`, and
    :meth:`estimate_geometry` (depth + static probability for memory writes).
    """

    name: str = "world-model"
    latent_channels: int
    downsample: int
    image_size: tuple[int, int]
    frames_per_latent: int = 1
    #: True if generate() needs request.scenes (the oracle renders ground truth)
    needs_scene: bool = False
    #: False if generate() never looks at request.memory_*: the env then skips
    #: the memory read of every step (the oracle renders ground truth instead)
    reads_memory: bool = True
    uses_room_prior: bool = False  # the env adds SegmentRequest.memory_prior

    device: torch.device = torch.device("cpu")

    @property
    def latent_size(self) -> tuple[int, int]:
        H, W = self.image_size
        return H // self.downsample, W // self.downsample

    def to(self, device) -> "WorldModel":
        self.device = torch.device(device)
        return self

    @abstractmethod
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images (N, 3, H, W) in [-1, 1] -> latents (N, C, h, w), as stored in memory."""

    @abstractmethod
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents (N, C, h, w) -> images (N, 3, H, W) in [-1, 1]."""

    def decode_segment(self, segment: Segment, num_frames: int) -> torch.Tensor:
        """All K frames of a segment, (B, K, 3, H, W). Per-frame models decode
        each latent; models with temporal compression override this."""
        if segment.frames is not None:
            return segment.frames
        B, L = segment.latents.shape[:2]
        if L != num_frames:
            raise NotImplementedError(f"{type(self).__name__} must override decode_segment for L={L} != K={num_frames}")
        frames = self.decode(segment.latents.flatten(0, 1))
        return frames.unflatten(0, (B, L))

    @abstractmethod
    def estimate_geometry(self, latents: torch.Tensor, images: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Depth (N, h, w), inf for sky, and static probability (N, h, w) for
        latents (N, C, h, w) and, when the model works in pixels, the decoded
        images (N, 3, H, W). Used to write the start frame and by models whose
        generate() does not already return depth."""

    @abstractmethod
    def generate(self, request: SegmentRequest) -> Segment:
        """Generate the next segment for every episode of the batch."""

    def weights_digest(self) -> str:
        """SHA-256 of what makes this model's output: its class, :meth:`describe`,
        any ``cfg`` it holds, and the bytes of every parameter and buffer of
        the torch modules and tensors among its attributes. Snapshots carry it,
        so a state is never restored into another model of the same shapes.
        Computed once (the env never changes its model's weights)."""
        cached = self.__dict__.get("_weights_digest")
        if cached is not None:
            return cached
        h = hashlib.sha256(f"{type(self).__module__}.{type(self).__qualname__}".encode())
        h.update(json.dumps(self.describe(), sort_keys=True, default=str).encode())
        cfg = getattr(self, "cfg", None)
        if hasattr(cfg, "to_dict"):
            h.update(json.dumps(cfg.to_dict(), sort_keys=True, default=str).encode())

        def feed(name: str, t: torch.Tensor) -> None:
            t = t.detach().cpu().contiguous()
            h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
            if t.numel():
                h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())

        for attr, value in sorted(vars(self).items()):
            if isinstance(value, torch.nn.Module):
                for key, t in sorted(value.state_dict().items()):
                    feed(f"{attr}.{key}", t)
            elif isinstance(value, torch.Tensor):
                feed(attr, value)
        self._weights_digest = h.hexdigest()
        return self._weights_digest

    def describe(self) -> dict:
        """Plain facts for logs and model cards."""
        return {
            "name": self.name,
            "latent_channels": self.latent_channels,
            "downsample": self.downsample,
            "image_size": list(self.image_size),
            "frames_per_latent": self.frames_per_latent,
        }


def randn_per_episode(shape: Sequence[int], generators: Sequence[torch.Generator] | None, batch_size: int,
                      device=None, dtype=torch.float32) -> torch.Tensor:
    """Gaussian noise (B, *shape) where row b is drawn from ``generators[b]``
    alone, so episode b's frames do not depend on what else is in the batch."""
    if generators is None:
        return torch.randn(batch_size, *shape, device=device, dtype=dtype)
    if len(generators) != batch_size:
        raise ValueError(f"need one generator per episode: got {len(generators)} for a batch of {batch_size}")
    rows = [torch.randn(*shape, generator=g, device=g.device, dtype=dtype) for g in generators]
    return torch.stack(rows).to(device)
