"""Spatial memories of a video world model.

* :class:`LatentSpatialMemory` - the Mirage cache: latent tokens lifted to 3D,
  read by splatting them straight onto a target camera at latent resolution.
* :class:`RGBPointCloudMemory` - the pixel-space baseline (Voyager, Gen3C,
  Spatia, VMem): full-resolution coloured points, rendered then VAE-encoded.
* :func:`splat_points` (module ``splat``) - the z-buffered bilinear splat both use.
* :func:`memory_prior` (module ``room_prior``) - what a box room's floor, walls
  and ceiling would show where the memory is empty, from its observed points.

Both share one implementation of storage, voxel dedup (one point per voxel,
newest wins), capacity with least-recently-written eviction and exact
``state_dict`` snapshots (:class:`PointMemory`).
"""

from .latent import LatentSpatialMemory, LatentView
from .point_memory import MemorySettings, MemoryView, PointMemory
from .rgb import RGBPointCloudMemory, RGBView
from .room_prior import memory_prior, room_prior
from .splat import SplatResult, splat_points

__all__ = [
    "LatentSpatialMemory",
    "LatentView",
    "MemorySettings",
    "MemoryView",
    "PointMemory",
    "RGBPointCloudMemory",
    "RGBView",
    "memory_prior",
    "room_prior",
    "SplatResult",
    "splat_points",
]
