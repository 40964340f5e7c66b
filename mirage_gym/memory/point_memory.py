"""Shared machinery of the spatial memories: storage, voxel dedup, capacity,
eviction, snapshots. :class:`LatentSpatialMemory` (latent tokens) and
:class:`RGBPointCloudMemory` (full-resolution colours) differ only in what a
point carries and how it is converted; everything else lives here once.

Storage
    ``positions`` (N, 3) float32 world xyz and ``features`` (N, C) in the
    subclass's storage dtype (float16 latents, uint8 colours), plus one
    *provenance* column: 1 for a point written from an observed frame (a real
    image, such as the env's start frame), 0 for a generated one. It rides in
    the feature storage so that every read splats it with the features and
    returns the observed share of each cell (``MemoryView.observed``): a
    generator can keep what was seen and refine what it made. Positions are
    held as a contiguous (3, N) block (``positions`` is its transposed view)
    because projecting (3, 3) @ (3, N) is several times faster on CPU than
    (N, 3) @ (3, 3). Nothing else is stored per point: voxel keys are
    recomputed from the positions when a write needs them (cheap, and every
    stored byte stays useful), and the order of the rows *is* the recency
    order, oldest first, so eviction needs no timestamps. ``nbytes`` counts
    exactly these two tensors: 12 + (C + 1) * itemsize bytes per point. A write
    replaces these tensors and never writes into them, so a reference to them
    is a snapshot (the voxel keys and block bounds cached beside them are
    tied to the positions tensor they were computed from).

Dedup: one point per voxel
    Space is cut into cubes of side ``voxel_size`` centred on the lattice
    points ``k * voxel_size`` (centred rather than cornered so that the floor
    at z = 0 and walls at round coordinates fall mid-voxel: with corners there,
    depth noise of 1e-7 m would split such a plane into two layers of voxels).
    A voxel key packs the three integer voxel coordinates into one int64,
    21 bits per axis, so the range is +-2**20 voxels per axis (+-105 km at
    0.1 m); points outside it are not stored.

    * Within one write, several points falling in one voxel resolve to the
      one *nearest to the camera* (smallest z-depth; ties to the lowest pixel
      index): it is the best-sampled observation and lies on the visible
      surface.
    * Across writes, ``update`` picks the rule (``"fill"`` by default):

      ``"fill"``: a write only fills what the memory does not already show.
      Before a frame is lifted, the memory is splatted at that frame's own
      camera, and a point is skipped where that view is covered (mask >=
      ``FILL_COVERAGE``, 0.1: a seen surface viewed obliquely or at the rim
      of a stored view splats sparser than the grid, so its coverage sums
      below 1) unless the point is nearer than the
      surface shown by more than ``fill_tolerance`` (relative): a static
      surface the memory never saw in front of one it did (walking around
      a chair) is still written, while the same wall re-estimated a little
      nearer is not. Voxels already held keep their point, as with
      ``"oldest"``.
      ``"oldest"``: a point whose voxel is held is dropped (the voxel's
      first observation stays); everything else is written.
      ``"newest"``: the new point replaces whatever its voxel held.

      Why fill is the default: the env writes the generator's own output
      back, and a re-generated view of a surface the memory already holds
      is a copy of that memory with the generator's error added. Replacing
      tokens (newest) lets that error compound on every revisit; keeping
      voxels (oldest) is not enough either, because depth is *estimated*:
      the same wall seen from two poses lands in different voxels, the
      memory grows a second, shifted layer of it and reads blend the two.
      Measured alone (`mirage-gym eval --memory-update RULE --memories
      latent --seeds 1000001 1000002 --loops 2`, the session-1 model, before
      pinning): returned view vs first view after turning away and back
      16.3 dB newest, 17.8 oldest, 18.0 fill; walking out and back 13.2,
      13.3, 14.0. With pinning and the strong-contribution z-test on top,
      fill reaches 24.7 / 21.3 dB.
      Moving objects never reach the memory (static filter), so a static
      world loses nothing; detail still accrues where the memory is sparse
      (walking up to a wall uncovers cells between its distant tokens).
      ``"newest"`` suits memories written from real observations, where
      later is better. A running mean is not offered: latents are not
      colours, and averaging two tokens blurs the decoded image.

Capacity and eviction: least recently written first
    With ``capacity`` set, after every write the oldest rows are dropped until
    ``num_tokens <= capacity``. A written point (new or overwriting) moves to
    the end (with ``update="oldest"`` a rewritten point keeps its features
    but still moves to the end), so what goes first is what has not been
    seen for the longest time (with ``"fill"``, a point skipped because the
    memory already shows its surface does not refresh anything: recency then
    tracks the last write that touched a voxel): the far side of the world
    the agent left behind, not the room it is in. Within one write the
    points are stored farthest-from-camera first, so if a single write must
    be trimmed (or the oldest write is partly evicted) the farthest,
    coarsest points go first. Everything is a stable sort, so eviction is
    deterministic.

Validation
    Every public method checks all of its inputs before it changes anything,
    and raises ``ValueError`` naming the problem and the fix; a failed call
    leaves the memory exactly as it was.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch

from mirage_gym import limits
from mirage_gym.geometry import backproject, check_intrinsics, check_pose, check_size

from . import cull
from .splat import SplatResult, projection_matrices, splat_points

__all__ = ["MemorySettings", "MemoryView", "PointMemory"]

_AXIS_BITS = 21
_AXIS_OFFSET = 1 << (_AXIS_BITS - 1)  # voxel coordinates in [-2**20, 2**20)
_PACK_WEIGHTS = torch.tensor([[1 << (2 * _AXIS_BITS)], [1 << _AXIS_BITS], [1]])  # (3, 1) int64
_PACKED_OFFSET = _AXIS_OFFSET * ((1 << (2 * _AXIS_BITS)) + (1 << _AXIS_BITS) + 1)
_STATE_FORMAT = "mirage_gym.memory/2"
_FORMAT_BEFORE_PROVENANCE = "mirage_gym.memory/1"  # loads with every point counted as generated
UPDATE_RULES = ("fill", "oldest", "newest")
# "fill": a pixel counts as already shown where the memory covers at least this
# much of it. At 0.25, cells at the rim of a stored view (partly covered) were
# re-written from every later frame, with depth estimated 20-50% nearer, and
# occluded the first view's own tokens at a return (29% of the returned view's
# cells held such tokens after turning 180 degrees away and back).
FILL_COVERAGE = 0.1
# Depth alignment: ratios of stored to estimated depth farther than this factor
# from 1 are not the same surface (an occluder, a missed wall) and not counted.
ALIGN_MAX_RATIO = 2.0
ALIGN_MIN_OVERLAP = 0.1  # share of the frame that must overlap the memory to align it
_REAL_FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


@dataclass(frozen=True)
class MemorySettings:
    """How a memory splats and writes: the settings a memory is constructed
    with, carries in its snapshots (:meth:`PointMemory.settings`) and must
    agree on with an env that restores it. Constructing one checks every
    field (ValueError naming the field and what it must be) and stores the
    numbers as floats, so an instance is always valid.

    ``near``, ``depth_tolerance``, ``min_weight``: splat settings (see
    :func:`mirage_gym.memory.splat.splat_points`). ``update``,
    ``fill_tolerance``: the rule for voxels a write meets again (module
    docstring). ``align_depth``: rescale each written frame's depth onto the
    surface the memory already shows there (:meth:`PointMemory._aligned`);
    for estimated depth, ground-truth depth needs none.
    """

    near: float = 1e-2
    depth_tolerance: float = 0.1
    min_weight: float = 1e-2
    update: str = "fill"
    fill_tolerance: float = 0.75
    align_depth: bool = True

    def __post_init__(self):
        if self.update not in UPDATE_RULES:
            raise ValueError(f"update must be one of {UPDATE_RULES}, got {self.update!r}")
        if not isinstance(self.align_depth, bool):
            raise ValueError(f"align_depth must be True or False, got {self.align_depth!r}")
        for name in ("near", "depth_tolerance", "fill_tolerance"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if isinstance(self.min_weight, bool) or not isinstance(self.min_weight, (int, float)) or not 0 < self.min_weight <= 1:
            raise ValueError(f"min_weight must be in (0, 1], got {self.min_weight!r}")
        for name in ("near", "depth_tolerance", "min_weight", "fill_tolerance"):
            object.__setattr__(self, name, float(getattr(self, name)))

    def as_dict(self) -> dict:
        """The fields as a plain dict, in declaration order (the snapshot keys)."""
        return dataclasses.asdict(self)


# What a snapshot from before an option existed was written with, so loads as.
_SETTINGS_BEFORE_OPTIONS = {
    "update": "newest",  # snapshots from before the option replaced stored points
    "align_depth": False,  # snapshots from before the option wrote depth as estimated
}


@dataclass
class MemoryView:
    """What a memory looks like from one or more cameras.

    ``features`` is (C, h, w) for a single 4x4 pose, (B, C, h, w) for a batch
    of B poses; ``mask`` and ``depth`` are (h, w) or (B, h, w). ``mask`` is
    the splat coverage in [0, 1] (0 = hole), ``depth`` the camera z-depth of
    the surface seen (inf in holes). Subclasses add a telling alias
    (``.latent``, ``.rgb``) for ``features``.
    """

    features: torch.Tensor
    mask: torch.Tensor
    depth: torch.Tensor
    #: (h, w) or (B, h, w) in [0, 1]: the share of each cell's content that
    #: comes from points written with ``observed=True`` (0 in holes)
    observed: torch.Tensor

    @property
    def coverage(self) -> float:
        """Mean of the mask: the fraction of the view the memory covers."""
        return float(self.mask.float().mean())


# ----------------------------------------------------------------------- helpers


def _to_tensor(x, name: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(x))
    raise ValueError(f"{name} must be a torch.Tensor or numpy array, got {type(x).__name__}")


def check_real_float(x, name: str, fix: str) -> torch.Tensor:
    """Return ``x`` as a tensor if it holds real floating-point values, else a
    ValueError that names ``name`` and suggests ``fix``."""
    t = _to_tensor(x, name)
    if t.dtype not in _REAL_FLOATS:
        raise ValueError(f"{name} must be a real floating-point array (float16/32/64), got dtype {t.dtype}; {fix}")
    return t


def check_depth(depth, shape: tuple[int, ...], name: str = "depth") -> torch.Tensor:
    """z-depth of a frame (H, W) or frames (T, H, W) as float32; inf/NaN/<= 0
    are allowed and mean "nothing here" (the pixel is not stored)."""
    d = check_real_float(depth, name, "convert it with .float() (integer depth in mm: divide by 1000 first)")
    if tuple(d.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)} to match the image/latent grid, got {tuple(d.shape)}")
    return d.detach().float()


def check_static_mask(mask, shape: tuple[int, ...], name: str = "static_mask") -> torch.Tensor:
    """Boolean keep-mask (True = static, store it) of the given shape."""
    m = _to_tensor(mask, name)
    if m.dtype != torch.bool:
        raise ValueError(f"{name} must be a boolean array (True = static, keep), got dtype {m.dtype}; use mask > 0.5 or mask.astype(bool)")
    if tuple(m.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)} to match depth, got {tuple(m.shape)}")
    return m


def check_poses(c2w, frames: int | None, name: str = "c2w") -> torch.Tensor:
    """A write pose: (4, 4) for one frame, (T, 4, 4) for T frames."""
    c2w = check_pose(c2w, name)
    want = (4, 4) if frames is None else (frames, 4, 4)
    if tuple(c2w.shape) != want:
        raise ValueError(f"{name} must have shape {want} (one camera-to-world pose per written frame), got {tuple(c2w.shape)}")
    return c2w


# ------------------------------------------------------------------------ the base


class PointMemory:
    """A voxel-deduplicated, capacity-bounded cloud of points with features.

    Subclasses define ``kind``, the storage dtype and channel count, how
    write inputs become (N, C) storage features (``_validate_frames``) and how
    a splat becomes a view (``_make_view``). See the module docstring for the
    dedup and eviction rules.

    Args:
        voxel_size: side of a dedup voxel in metres (> 0). Choose it relative
            to the footprint of one stored sample: a latent token covers
            ``f`` image pixels, so an RGB memory with the same density
            relative to its samples uses ``voxel_size / f``.
        capacity: maximum number of stored points, or None for unbounded.
        device: where the points live and splatting runs.
        settings: a :class:`MemorySettings` (splat and write settings);
            its fields can also be given as keywords, which override it.
    """

    kind = "points"

    def __init__(
        self,
        voxel_size: float,
        capacity: int | None = None,
        device: str | torch.device = "cpu",
        *,
        channels: int | None = None,
        feature_dtype: torch.dtype = torch.float32,
        settings: MemorySettings | None = None,
        **fields,
    ):
        if settings is not None and not isinstance(settings, MemorySettings):
            raise ValueError(f"settings must be a MemorySettings, got {type(settings).__name__}")
        self._settings = dataclasses.replace(settings or MemorySettings(), **fields)
        self._voxel_size = self._check_voxel_size(voxel_size)
        self._capacity = self._check_capacity(capacity)
        self._fixed_channels = self._check_channels(channels)
        if not isinstance(feature_dtype, torch.dtype):
            raise ValueError(f"feature_dtype must be a torch.dtype, got {feature_dtype!r}")
        self.device = torch.device(device)
        self.feature_dtype = feature_dtype
        self.reset()

    # ------------------------------------------------------------- properties

    @property
    def memory_settings(self) -> MemorySettings:
        """The splat and write settings (read-only; a snapshot load replaces them)."""
        return self._settings

    near = property(lambda self: self._settings.near, doc="Splat near plane (:class:`MemorySettings`).")
    depth_tolerance = property(lambda self: self._settings.depth_tolerance, doc="Splat depth tolerance (:class:`MemorySettings`).")
    min_weight = property(lambda self: self._settings.min_weight, doc="Splat minimum weight (:class:`MemorySettings`).")
    update = property(lambda self: self._settings.update, doc="Rule for voxels a write meets again (:class:`MemorySettings`).")
    fill_tolerance = property(lambda self: self._settings.fill_tolerance, doc="Relative nearness the fill rule writes through (:class:`MemorySettings`).")
    align_depth = property(lambda self: self._settings.align_depth, doc="Whether written depth is aligned to the memory (:class:`MemorySettings`).")

    @property
    def voxel_size(self) -> float:
        return self._voxel_size

    @property
    def capacity(self) -> int | None:
        return self._capacity

    @property
    def channels(self) -> int | None:
        """Feature channels: fixed at construction, or by the first write."""
        return self._channels

    @property
    def num_tokens(self) -> int:
        return int(self._xyz.shape[1])

    def __len__(self) -> int:
        return self.num_tokens

    @property
    def num_writes(self) -> int:
        """Frames written since construction or the last reset."""
        return self._num_writes

    @property
    def nbytes(self) -> int:
        """Bytes actually held: positions (12 per point) + features."""
        return int(self._xyz.numel() * self._xyz.element_size() + self._features.numel() * self._features.element_size())

    @property
    def positions(self) -> torch.Tensor:
        """(N, 3) float32 world positions, oldest write first (read-only view)."""
        return self._xyz.T

    @property
    def features(self) -> torch.Tensor:
        """(N, C) stored features, same order as :attr:`positions` (read-only view)."""
        return self._features[:, :-1]

    @property
    def observed(self) -> torch.Tensor:
        """(N,) bool: which points were written from observed frames (``write(..., observed=True)``)."""
        return self._features[:, -1] > 0

    def __repr__(self) -> str:
        cap = "unbounded" if self._capacity is None else self._capacity
        return (f"{type(self).__name__}(voxel_size={self._voxel_size}, capacity={cap}, channels={self._channels}, "
                f"num_tokens={self.num_tokens}, nbytes={self.nbytes}, device={self.device})")

    # ----------------------------------------------------------------- basics

    def reset(self) -> None:
        """Forget every point (channels fall back to the constructor's)."""
        self._channels = self._fixed_channels
        c = 0 if self._channels is None else self._channels
        self._xyz = torch.zeros(3, 0, dtype=torch.float32, device=self.device)  # (3, N)
        self._features = torch.zeros(0, c + 1, dtype=self.feature_dtype, device=self.device)  # features + provenance
        self._num_writes = 0
        self._bounds = None  # (positions tensor, its cull.block_bounds)
        self._keys = None  # (positions tensor, the voxel keys of its rows): _stored_keys

    # ----------------------------------------------------------- subclass API

    def _validate_frames(self, data):
        """Check one or a batch of input frames. Return (features (T, H, W, C)
        already in the storage dtype, T or None if unbatched, (H, W))."""
        raise NotImplementedError

    @staticmethod
    def model_values(features: torch.Tensor) -> torch.Tensor:
        """Stored features (or an average of them) in the values the model works on (subclasses that quantise map back)."""
        return features

    def _make_view(self, result: SplatResult, observed: torch.Tensor, batched: bool) -> MemoryView:
        """A view from a splat of the C feature channels and the observed share (B, h, w)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ write

    def _write(self, data, depth, K, c2w, static_mask, observed: bool) -> None:
        """Validate everything, then lift and insert frame by frame."""
        if not isinstance(observed, bool):
            raise ValueError(f"observed must be True (a real image) or False (a generated frame), got {observed!r}")
        feats, frames, (H, W) = self._validate_frames(data)
        shape = (H, W) if frames is None else (frames, H, W)
        depth = check_depth(depth, shape)
        K = check_intrinsics(K)
        c2w = check_poses(c2w, frames)
        static = None if static_mask is None else check_static_mask(static_mask, shape)
        if frames is None:  # make everything (T, ...) with T = 1
            depth, c2w = depth[None], c2w[None]
            static = None if static is None else static[None]
        C = feats.shape[-1]
        if self._channels is not None and C != self._channels:
            raise ValueError(f"this memory holds {self._channels}-channel features but got {C} channels; "
                             "use a separate memory for each feature size (or reset() this one first)")
        # ---- nothing above mutates; below cannot fail on user input.
        dev = self.device
        depth, c2w, K, feats = depth.to(dev), c2w.to(dev), K.to(dev), feats.to(dev)
        static = None if static is None else static.to(dev)
        self._channels = C
        if self._features.shape[1] != C + 1:  # empty memory learning its channel count
            self._features = self._features.new_zeros(0, C + 1)
        feats = torch.cat([feats, feats.new_full((*feats.shape[:-1], 1), 1 if observed else 0)], dim=-1)  # + provenance
        # The frames' features are gathered into new storage once per call, not once per frame:
        # meanwhile the rows are indices into [old features, frame 1's, frame 2's, ...] (_insert).
        self._parts, self._lo, self._src, self._prefix = [self._features], 0, None, self._features.shape[0]
        try:
            for t in range(depth.shape[0]):
                self._write_frame(feats[t], depth[t], K, c2w[t], None if static is None else static[t])
        finally:  # a new tensor, never written into: a reference to the old one is a snapshot of the memory
            self._features = self._gather_features().contiguous()
            self._parts = self._src = None

    def _gather_features(self) -> torch.Tensor:
        """The features of the rows after this call's frames (see _insert): the
        leading rows no frame moved are copied as one block, the rest gathered."""
        old, lo, src = self._parts[0], self._lo, self._src
        if src is None:
            return (old if len(self._parts) == 1 else torch.cat(self._parts))[lo:]
        p = self._prefix  # rows [0, p) are old rows lo, lo + 1, ... in order
        out = old.new_empty(src.shape[0], old.shape[1])
        out[:p] = old[lo:lo + p]
        tail, rest = src[p:], out[p:]
        is_old = tail < old.shape[0]
        at_old, at_new = is_old.nonzero().squeeze(1), (~is_old).nonzero().squeeze(1)
        rest.index_copy_(0, at_old, old.index_select(0, tail.index_select(0, at_old)))
        if at_new.shape[0]:
            rest.index_copy_(0, at_new, torch.cat(self._parts[1:]).index_select(0, tail.index_select(0, at_new) - old.shape[0]))
        return out

    def _write_frame(self, feats, depth, K, c2w, static) -> None:
        """Lift one validated frame (feats (H, W, C), depth (H, W)) and merge it."""
        valid = (depth > 0) & (depth < float("inf"))  # finite and positive (NaN fails both)
        if static is not None:
            valid &= static
        if self.num_tokens and (self.align_depth or self.update == "fill"):
            mask, front = self._own_view(depth.shape, K, c2w)
            if self.align_depth:
                depth = self._aligned(depth, valid, mask, front)
            if self.update == "fill":  # skip what the memory already shows, unless much nearer
                valid &= ~((mask >= FILL_COVERAGE) & (depth >= (1.0 - self.fill_tolerance) * front))
        pixel = valid.reshape(-1).nonzero().squeeze(1)  # (M,) flat pixel index, ascending
        # index_select rather than tensor[index]: the same gather at half the dispatch cost
        points = backproject(depth, K, c2w).reshape(-1, 3).index_select(0, pixel)  # (M, 3)
        z = depth.reshape(-1).index_select(0, pixel)
        feats = feats.reshape(-1, feats.shape[-1]).index_select(0, pixel)
        self._insert(points, feats, z)
        self._num_writes += 1

    def _own_view(self, shape, K, c2w) -> tuple[torch.Tensor, torch.Tensor]:
        """The memory seen from the frame's own camera: coverage and front depth, (H, W) each."""
        seen = self._splat(self._xyz.new_empty(self.num_tokens, 0), K, c2w, *shape)  # (mid-write: only the rows count)
        return seen.mask[0], seen.depth[0]

    def _splat(self, features, K, c2w, height: int, width: int) -> SplatResult:
        """splat_points of the stored points with ``features`` (rows of the
        storage), looking only at the blocks in view (``cull``: the same bits)."""
        xyz = self._xyz
        if xyz.shape[1] >= cull.MIN_ROWS:
            bounds = self._block_bounds()
            P = projection_matrices(check_intrinsics(K).to(xyz.device), check_pose(c2w).to(xyz.device).reshape(-1, 4, 4))
            rows = cull.rows_in_view(bounds, P, xyz.shape[1], height, width, self.near)
            if rows is not None:
                xyz, features = xyz.index_select(1, rows), features.index_select(0, rows)
        return splat_points(xyz.T, features, K, c2w, height, width, near=self.near,
                            depth_tolerance=self.depth_tolerance, min_weight=self.min_weight)

    @staticmethod
    def _aligned(depth, valid, mask, front) -> torch.Tensor:
        """``depth`` rescaled onto the surface the memory shows: the median of
        stored / estimated depth over the well-covered pixels of the frame
        (ratios beyond ALIGN_MAX_RATIO left out). Estimated depth wanders in
        scale from frame to frame; unaligned, a revisit stores a second copy
        of a wall at another depth, and reads at the first pose blend or
        occlude the first copy. Needs ALIGN_MIN_OVERLAP of the frame to
        agree; otherwise (a new part of the world) the estimate stands."""
        overlap = valid & (mask >= 0.5) & torch.isfinite(front)
        log_ratio = (front[overlap] / depth[overlap]).log()
        log_ratio = log_ratio[log_ratio.abs() < math.log(ALIGN_MAX_RATIO)]
        if log_ratio.numel() < ALIGN_MIN_OVERLAP * depth.numel():
            return depth
        return depth * float(log_ratio.median().exp())

    def voxel_keys(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """int64 voxel keys of world points (M, 3), and a mask of the points
        whose voxel is inside the representable range (+-2**20 per axis), or
        None when all are (the common case: one reduction instead of the mask's ops)."""
        g = torch.floor(points.T / self._voxel_size + 0.5)  # (3, M) lattice-centred voxel coordinates
        if points.shape[0] and float(g.abs().max()) < _AXIS_OFFSET:  # NaN fails too
            return self._pack(g), None
        in_range = (g.abs() < _AXIS_OFFSET).all(dim=0)  # NaN compares False
        return self._pack(torch.where(in_range, g, 0.0)), in_range

    def _stored_keys(self) -> torch.Tensor:
        """Keys of the stored points, row for row (always in range: checked when
        written); kept with the storage, so a write does not recompute all N.
        Cached with the positions tensor they belong to: storage put back by
        any other path (a snapshot, a rollback) gets its keys recomputed."""
        if self._keys is None or self._keys[0] is not self._xyz:
            self._keys = (self._xyz, self._pack(torch.floor(self._xyz / self._voxel_size + 0.5)))
        return self._keys[1]

    def _block_bounds(self) -> torch.Tensor:
        """cull.block_bounds of the stored positions, cached with the positions tensor (as the keys)."""
        if self._bounds is None or self._bounds[0] is not self._xyz:
            self._bounds = (self._xyz, cull.block_bounds(self._xyz))
        return self._bounds[1]

    @staticmethod
    def _pack(g: torch.Tensor) -> torch.Tensor:
        """(3, M) integral float voxel coordinates -> (M,) int64 keys, 21 bits per axis."""
        # (q + offset) . (2**42, 2**21, 1) with q + offset in [0, 2**21): the three
        # fields occupy disjoint bits, so the sum is the bitwise packing (exact in int64).
        return (g.long() * _PACK_WEIGHTS.to(g.device)).sum(0) + _PACKED_OFFSET

    def _insert(self, points: torch.Tensor, feats: torch.Tensor, z: torch.Tensor) -> None:
        """Merge M new points into storage (dedup, newest wins) and evict."""
        keys, ok = self.voxel_keys(points)
        if ok is not None:
            points, feats, z, keys = points[ok], feats[ok], z[ok], keys[ok]
        if points.shape[0] == 0:
            return
        # Within the write: nearest to the camera wins, ties to the lower index.
        by_depth = torch.argsort(z, stable=True)
        sorted_keys, perm = torch.sort(keys.index_select(0, by_depth), stable=True)
        first = torch.ones_like(sorted_keys, dtype=torch.bool)
        torch.ne(sorted_keys[1:], sorted_keys[:-1], out=first[1:])
        first = first.nonzero().squeeze(1)  # where each voxel's run starts
        winners = by_depth.index_select(0, perm.index_select(0, first))  # (U,) one per voxel, in key order
        new_keys = sorted_keys.index_select(0, first)  # (U,) sorted, unique
        # Store the write farthest-first so that eviction trims its coarsest points first.
        order = torch.argsort(z.index_select(0, winners), descending=True, stable=True)  # key-order positions

        # Across writes: an occupied voxel keeps its point ("oldest") or takes the new one ("newest");
        # either way it becomes the most recently written. Stored rows that can share a voxel with
        # this write lie in the blocks near it (cull.rows_near); only those are searched, and rows
        # before the first one hit stay where they are (a write costs what it touches).
        n = self.num_tokens
        first, moved = n, None  # storage: rows [:first] in place, then rows `moved`, then the new ones
        if n:
            old_keys = self._stored_keys()
            rows = None
            if n >= cull.MIN_ROWS:
                rows = cull.rows_near(self._block_bounds(), points.amin(0), points.amax(0), 2.0 * self._voxel_size, n)
            cand = old_keys if rows is None else old_keys.index_select(0, rows)
            at = torch.searchsorted(new_keys, cand).clamp_(max=new_keys.shape[0] - 1)
            hit = (new_keys.index_select(0, at) == cand).nonzero().squeeze(1)  # positions in cand of the rewritten rows
            hit_rows = hit if rows is None else rows.index_select(0, hit)  # ascending
            if hit_rows.shape[0]:
                first = int(hit_rows[0])
                untouched = torch.ones(n - first, dtype=torch.bool, device=hit_rows.device)
                untouched.index_fill_(0, hit_rows - first, False)
                untouched = untouched.nonzero().squeeze(1) + first  # rows after the first hit that this write leaves alone
                if self.update == "newest":
                    moved = untouched  # the hit rows are replaced by the new points
                else:
                    fresh = torch.ones(new_keys.shape[0], dtype=torch.bool, device=new_keys.device)
                    fresh.index_fill_(0, at.index_select(0, hit), False)  # voxels of this write already stored
                    order = order.masked_select(fresh.index_select(0, order))
                    moved = torch.cat([untouched, hit_rows])  # untouched first, then the refreshed ones
        farthest_first = winners.index_select(0, order)
        new_pos, new_feat = points.index_select(0, farthest_first), feats.index_select(0, farthest_first)
        written_keys = new_keys.index_select(0, order)
        if not n:
            xyz, stored_keys = new_pos.T, written_keys
        elif moved is None:  # nothing rewritten: append
            xyz = torch.cat([self._xyz, new_pos.T], dim=1)
            stored_keys = torch.cat([self._stored_keys(), written_keys])
        else:
            # positions: gather into a contiguous block, then append (index_select
            # into the strided slice xyz[:, :n] of a (3, N') block is ~10x slower)
            xyz = torch.cat([self._xyz[:, :first], self._xyz.index_select(1, moved), new_pos.T], dim=1)  # (3, N')
            stored_keys = torch.cat([old_keys[:first], old_keys.index_select(0, moved), written_keys])
        # Features (gathered by _write at the end of the call): row i is source row src[i] of
        # cat(self._parts); src None means the rows are source rows lo, lo + 1, ... in order;
        # either way the first `_prefix` rows are old rows lo, lo + 1, ... (no frame moved them).
        total = sum(p.shape[0] for p in self._parts)
        if moved is not None:
            self._prefix = min(self._prefix, first)
            src = torch.arange(self._lo, total, device=self.device) if self._src is None else self._src
            self._src = torch.cat([src[:first], src.index_select(0, moved), torch.arange(total, total + new_feat.shape[0], device=self.device)])
        elif self._src is not None:
            self._src = torch.cat([self._src, torch.arange(total, total + new_feat.shape[0], device=self.device)])
        self._parts.append(new_feat)
        if self._capacity is not None and xyz.shape[1] > self._capacity:
            xyz = xyz[:, -self._capacity:]  # least recently written go first
            stored_keys = stored_keys[-self._capacity:]
            drop = total + new_feat.shape[0] - self._lo - self._capacity if self._src is None else self._src.shape[0] - self._capacity
            self._lo, self._prefix = self._lo + drop, max(0, self._prefix - drop)
            if self._src is not None:
                self._src = self._src[drop:]
        self._xyz = xyz.contiguous()  # a new tensor, never written into
        self._keys = (self._xyz, stored_keys.contiguous())

    # ------------------------------------------------------------------- read

    def _read(self, K, c2w, height: int, width: int) -> MemoryView:
        h, w = check_size(height, width)
        K = check_intrinsics(K)
        c2w = check_pose(c2w)
        if c2w.ndim not in (2, 3) or c2w.shape[0] == 0:
            raise ValueError(f"c2w must be (4, 4) or (B, 4, 4) with B >= 1, got shape {tuple(c2w.shape)}")
        if self._channels is None:
            raise ValueError("the memory does not know its channel count yet: write a frame first, "
                             "or construct it with channels=C")
        batched = c2w.ndim == 3
        result = self._splat(self._features, K.to(self.device), c2w.to(self.device), h, w)
        C = self._channels
        colour = SplatResult(features=result.features[:, :C], mask=result.mask, depth=result.depth)
        return self._make_view(colour, result.features[:, C], batched)

    # -------------------------------------------------------------- snapshots

    def state_dict(self) -> dict:
        """A complete snapshot: tensors plus plain python values (no custom
        objects), so it fits safetensors (tensors + string metadata) or any
        pickle-free format. ``load_state_dict`` restores it exactly."""
        return {
            "format": _STATE_FORMAT,
            "kind": self.kind,
            "positions": self._xyz.T.detach().clone(memory_format=torch.contiguous_format),  # (N, 3)
            "features": self.features.detach().clone(memory_format=torch.contiguous_format),
            "observed": self.observed.detach().clone(),
            "channels": self._channels,
            "num_writes": self._num_writes,
            **self.settings(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore a snapshot from :meth:`state_dict` (settings included).
        Every field is checked first (types, shapes, finite values, the count
        within capacity, positions within the voxel range); on any problem
        it raises ValueError and the memory is unchanged."""
        if not isinstance(state, dict):
            raise ValueError(f"state must be a dict from state_dict(), got {type(state).__name__}")
        required = {"format", "kind", "positions", "features", "voxel_size", "capacity", "channels", "feature_dtype", "num_writes"}
        missing = sorted(required - set(state))
        if missing:
            raise ValueError(f"memory state is missing {missing}; pass the dict returned by state_dict()")
        if state["format"] not in (_STATE_FORMAT, _FORMAT_BEFORE_PROVENANCE) or state["kind"] != self.kind:
            raise ValueError(f"state is a {state['kind']!r} memory snapshot in format {state['format']!r}; "
                             f"this {type(self).__name__} loads kind {self.kind!r}, format {_STATE_FORMAT!r}")
        dtype = getattr(torch, str(state["feature_dtype"]), None)
        if not isinstance(dtype, torch.dtype):
            raise ValueError(f"state feature_dtype {state['feature_dtype']!r} is not a torch dtype")
        pos, feat = state["positions"], state["features"]
        if not isinstance(pos, torch.Tensor) or pos.dtype != torch.float32 or pos.ndim != 2 or pos.shape[1] != 3:
            raise ValueError("state positions must be a float32 tensor (N, 3)")
        if not isinstance(feat, torch.Tensor) or feat.dtype != dtype or feat.ndim != 2 or feat.shape[0] != pos.shape[0]:
            raise ValueError(f"state features must be a {dtype} tensor (N, C) with N = {pos.shape[0]}")
        observed = state.get("observed") if state["format"] == _STATE_FORMAT else torch.zeros(pos.shape[0], dtype=torch.bool)
        if not isinstance(observed, torch.Tensor) or observed.dtype != torch.bool or observed.shape != (pos.shape[0],):
            raise ValueError(f"state observed must be a bool tensor (N,) with N = {pos.shape[0]}; pass the dict returned by state_dict()")
        channels = self._check_channels(state["channels"])
        if channels is not None and feat.shape[1] != channels:
            raise ValueError(f"state features have {feat.shape[1]} channels but the state says channels={channels}")
        voxel_size = self._check_voxel_size(state["voxel_size"])
        capacity = self._check_capacity(state["capacity"])
        if capacity is not None and pos.shape[0] > capacity:
            raise ValueError(f"state holds {pos.shape[0]} points, more than its capacity {capacity}; "
                             "pass the unmodified dict returned by state_dict()")
        if pos.numel() and not bool(torch.isfinite(pos).all()):
            raise ValueError("state positions contain NaN or inf; pass the unmodified dict returned by state_dict()")
        if pos.numel() and float(pos.abs().max()) / voxel_size >= _AXIS_OFFSET - 1:
            raise ValueError(f"state positions lie outside the voxel range (+-{(_AXIS_OFFSET - 1) * voxel_size:g} m at "
                             f"voxel_size {voxel_size:g}); pass the unmodified dict returned by state_dict()")
        if feat.numel() and feat.is_floating_point() and not bool(torch.isfinite(feat).all()):
            raise ValueError("state features contain NaN or inf; pass the unmodified dict returned by state_dict()")
        num_writes = state["num_writes"]
        if not limits.is_int(num_writes, 0):
            raise ValueError(f"state num_writes must be an integer >= 0, got {num_writes!r}")
        fixed_channels = self._check_channels(state.get("fixed_channels", self._fixed_channels))
        # Keys missing from older snapshots: what they were written with, else this memory's own.
        fields = {**self._settings.as_dict(), **_SETTINGS_BEFORE_OPTIONS}
        fields.update((k, state[k]) for k in fields if k in state)
        try:
            settings = MemorySettings(**fields)
        except ValueError as e:
            raise ValueError(f"state {e}") from None
        xyz = pos.detach().to(self.device).T.clone(memory_format=torch.contiguous_format)  # (3, N), a copy
        features = torch.cat([feat.detach(), observed[:, None].to(dtype)], dim=1).to(self.device).contiguous()
        # ---- all checked and copied; now replace.
        self._voxel_size, self._capacity, self._channels, self._fixed_channels = voxel_size, capacity, channels, fixed_channels
        self.feature_dtype = dtype
        self._num_writes = int(num_writes)
        self._settings = settings
        self._xyz, self._features = xyz, features

    def settings(self) -> dict:
        """The settings a snapshot carries besides the points: what a memory
        restored into an env must agree on with the env's own."""
        return {
            "voxel_size": self._voxel_size,
            "capacity": self._capacity,
            "fixed_channels": self._fixed_channels,
            "feature_dtype": str(self.feature_dtype).removeprefix("torch."),
            **self._settings.as_dict(),
        }

    def checkpoint(self) -> tuple:
        """What :meth:`rollback` needs to undo every later write: references to
        the storage, free to take, because a write replaces the storage
        tensors and never changes them in place (the env's steps are
        transactions built on this)."""
        return self._xyz, self._features, self._num_writes, self._channels

    def rollback(self, checkpoint: tuple) -> None:
        """Put the memory back as it was at :meth:`checkpoint`."""
        self._xyz, self._features, self._num_writes, self._channels = checkpoint

    # ----------------------------------------------------------------- checks

    @staticmethod
    def _check_voxel_size(voxel_size) -> float:
        if isinstance(voxel_size, bool) or not isinstance(voxel_size, (int, float, np.floating, np.integer)) \
                or not np.isfinite(voxel_size) or voxel_size <= 0:
            raise ValueError(f"voxel_size must be a positive number of metres, got {voxel_size!r}")
        return float(voxel_size)

    @staticmethod
    def _check_capacity(capacity) -> int | None:
        if capacity is None:
            return None
        if not limits.is_int(capacity, 1):
            raise ValueError(f"capacity must be a positive integer number of points, or None for unbounded; got {capacity!r}")
        return int(capacity)

    @staticmethod
    def _check_channels(channels) -> int | None:
        if channels is None:
            return None
        if not limits.is_int(channels, 1):
            raise ValueError(f"channels must be a positive integer or None, got {channels!r}")
        return int(channels)
