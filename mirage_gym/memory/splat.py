"""Z-buffered bilinear forward splatting: the one renderer every memory uses.

A memory is a cloud of world points, each carrying a C-channel feature (a
latent token for the Mirage cache, a colour for the pixel-space baseline). To
see it from a camera, :func:`splat_points` projects the points onto an h x w grid and
spreads each one bilinearly over the four cells whose centres surround it.

Occlusion is resolved deterministically, in three passes:

1. every (point, cell) contribution offers its camera depth z, and
   ``scatter_reduce(amin)`` keeps the smallest per cell among the strong
   contributions (bilinear weight >= STRONG_WEIGHT, 0.75; the smallest of all where a cell
   has none): the front surface. A point that only grazes a cell does not
   get to hide the surface that covers it.
   A minimum does not depend on the order of the writes, so this is exact and
   identical on every run and device (unlike the reference release, whose
   "nearest wins" relied on duplicate-index writes with undefined order);
2. contributions with ``z <= front * (1 + depth_tolerance)`` form the front
   layer (neighbouring tokens of one surface blend smoothly); among the rest,
   the same test finds the next surface behind it, the back layer; anything
   farther is dropped;
3. the layers are composited front to back: the front covers min(1, its
   accumulated weight) of the cell and the back layer only fills the rest.
   A fully covered cell never shows what is behind it. A partly covered one
   does not go half-empty either: with estimated depth, the same wall seen
   from two poses is stored twice at depths 20-30% apart, and at the rim of
   a view a lone nearer duplicate (weight 0.3 in a cell) used to hide the
   full-weight token behind it, dropping the cell below the sampler's pin
   threshold. Measured on the embedded model (`mirage-gym eval --seeds
   1000001 1000002 1000003 1000004 --loops 1 --memories latent`): returned
   view after turning away and back 24.86 -> 25.83 dB, after walking out and
   back 21.85 -> 22.69 dB; reads at poses up to 1 m closer than the writes
   (where the wall behind could bleed through sparse near tokens) were
   unchanged (22.41 vs 22.42 dB on pinned pixels, 8 rooms x 4 headings).

Contributions whose bilinear weight is below ``min_weight`` take no part at
all: a point that projects a hair off its cell centre (floating-point error
when reading at the pose it was written from) would otherwise win the
z-test of a neighbouring cell with a weight of 1e-7 and hide the surface that
really covers that cell.

Outputs (per pose b):

* ``features[b]`` (C, h, w): per layer, the features blended with weights
  ``w ** BLEND_SHARPNESS`` (w: bilinear weight; see the constant), then the
  layers composited; 0 in empty cells;
* ``mask[b]`` (h, w): the composited coverage in [0, 1]. A cell on a
  surface that is densely covered at the target resolution gets ~1 (bilinear
  weights of a regular grid of points sum to one), a cell at the rim of a
  splat or between sparse points with nothing behind gets a fraction, an
  empty cell 0;
* ``depth[b]`` (h, w): the two layers' mean camera z, composited like the
  features, ``inf`` in empty cells.

Determinism: the z-test is exact everywhere. On CPU the accumulation
(``index_add_``) runs in a fixed order, so repeated reads are bitwise equal;
on CUDA the sums use atomics, so the last bit of a blended cell may differ
between runs unless ``torch.use_deterministic_algorithms(True)`` is set.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mirage_gym.geometry import check_intrinsics, check_pose, check_size, invert_pose

__all__ = ["SplatResult", "projection_matrices", "splat_points"]

# A contribution at least this strong can define a cell's front surface (pass 1).
# Estimated depth puts one surface seen from two poses at depths 20-50% apart;
# at a read, the copy that sits on the cell centre (weight ~1) should define the
# surface there, not a nearer copy lying between cells. Embedded model, 1 loop
# (`mirage-gym eval --loops 1 --memories latent rgb`, with the other changes of
# session 5): rooms 1000001-04, walk-out-and-back latent 24.80 / 25.57 / 26.07 dB
# at 0.25 / 0.5 / 0.75 (RGB memory 24.57 / 25.09 / 26.05); rooms 1000101-04
# 28.73 at 0.5, 29.25 at 0.75; leave-and-return unchanged within 0.06 dB.
STRONG_WEIGHT = 0.75
_WEAK_SCALE = float(2**30)
# Blend weights within a layer are bilinear weights to this power (coverage
# stays bilinear). Reading at the very pose a token was written from puts it
# on its cell centre (weight 1); a near-duplicate of the same wall written
# from another view lands there with weight ~0.5 and, blended linearly, took a
# third of the cell (84-115 of 256 cells changed after turning away and back).
# At the 4th power it takes 6%, while tokens that all sit between cell centres
# (a shifted or magnified view) still blend smoothly. Embedded model, 4 held-out
# rooms, 1 loop (`mirage-gym eval --seeds 1000001 1000002 1000003 1000004
# --loops 1 --memories latent`): walk-out-and-back 22.69 -> 24.54 dB (power 1 -> 4;
# 23.22 at 2, 23.99 at 8), leave-and-return 25.83 -> 25.90; reads up to 1 m
# closer than the writes 22.41 -> 22.35 dB.
BLEND_SHARPNESS = 4

# Accumulate channel-first (one flat scatter per row) up to this many
# accumulated rows (C + 3); above it, point-major index_add_ is cheaper.
_CHANNEL_FIRST_MAX = 24


@dataclass
class SplatResult:
    """Output of :func:`splat_points` for a batch of B poses."""

    features: torch.Tensor  # (B, C, h, w) float32, 0 where empty
    mask: torch.Tensor  # (B, h, w) float32 in [0, 1]
    depth: torch.Tensor  # (B, h, w) float32, inf where empty


def splat_points(
    points: torch.Tensor,
    features: torch.Tensor,
    K,
    c2w,
    height: int,
    width: int,
    *,
    near: float = 1e-2,
    depth_tolerance: float = 0.1,
    min_weight: float = 1e-2,
) -> SplatResult:
    """Render world points with features onto an ``height`` x ``width`` grid.

    Args:
        points: (N, 3) float32 world positions.
        features: (N, C) features of any real dtype (converted to float32 only
            for the points inside the view).
        K: (3, 3) intrinsics in pixels of the *target grid* (scale them with
            ``geometry.scale_intrinsics`` for a latent grid).
        c2w: (4, 4) or (B, 4, 4) camera-to-world poses (OpenCV camera).
        height, width: grid size.
        near: points with camera z <= near are dropped (behind the camera).
        depth_tolerance: relative depth band behind the front surface of a
            cell whose contributions still count as "the same surface".
        min_weight: bilinear weights below this are ignored (see module doc);
            must be > 0.

    Returns:
        :class:`SplatResult` with a leading batch dimension B (1 for a single
        4x4 pose).
    """
    h, w = check_size(height, width)
    if not min_weight > 0:
        raise ValueError(f"min_weight must be > 0 (zero-weight corners are how out-of-grid cells are dropped), got {min_weight!r}")
    K = check_intrinsics(K).to(points.device)
    c2w = check_pose(c2w).to(points.device)
    if c2w.ndim == 2:
        c2w = c2w[None]
    if c2w.ndim != 3:
        raise ValueError(f"c2w must be (4, 4) or (B, 4, 4), got shape {tuple(c2w.shape)}")
    if points.ndim != 2 or points.shape[-1] != 3:
        raise ValueError(f"points must be (N, 3), got shape {tuple(points.shape)}")
    if features.ndim != 2 or features.shape[0] != points.shape[0]:
        raise ValueError(f"features must be (N, C) with N = {points.shape[0]}, got shape {tuple(features.shape)}")
    P = projection_matrices(K, c2w)
    args = (h, w, float(near), float(depth_tolerance), float(min_weight))
    if P.shape[0] > 1 and points.device.type == "cpu":
        # On CPU, one pose at a time is about twice as fast as the flat batched
        # form (smaller working set, no transposed copy) and gives the same
        # bits; on a GPU the batched form saves kernel launches.
        parts = [_splat(points, features, P[i:i + 1], *args) for i in range(P.shape[0])]
        return SplatResult(features=torch.cat([r.features for r in parts]), mask=torch.cat([r.mask for r in parts]),
                           depth=torch.cat([r.depth for r in parts]))
    return _splat(points, features, P, *args)


def projection_matrices(K: torch.Tensor, c2w: torch.Tensor) -> torch.Tensor:
    """(B, 3, 4) K [R | t] per validated pose (B, 4, 4): maps a world point straight to (u*z, v*z, z)."""
    return K @ invert_pose(c2w)[:, :3, :]


def _nearest_surface(slot: torch.Tensor, offer: torch.Tensor, cells: int, near: float) -> torch.Tensor:
    """(cells + 1,) depth of the nearest strong contribution per cell (the
    nearest weak one where a cell has no strong one; inf where none). ``slot``
    (4M,) is each contribution's cell (``cells`` = trash); ``offer`` its depth,
    times 2**30 for weak ones (exact, a power of two), so one order-independent
    scatter lets any strong contribution beat every weak one (strong depths are
    < 1e7 m: points beyond the 21-bit voxel range are never stored); cells that
    only got weak ones are scaled back (weak points nearer than 1 cm are not told apart)."""
    nearest = torch.full((cells + 1,), float("inf"), device=offer.device)
    nearest.scatter_reduce_(0, slot, offer, reduce="amin", include_self=True)
    return torch.where(nearest >= _WEAK_SCALE * max(near, 1e-2), nearest / _WEAK_SCALE, nearest)


def _splat(points, features, P, h: int, w: int, near: float, depth_tolerance: float, min_weight: float) -> SplatResult:
    """The kernel, for validated inputs; ``P`` (B, 3, 4) are K [R | t] per pose."""
    B, N, C = P.shape[0], points.shape[0], features.shape[1]
    cells = B * h * w
    dev = points.device

    # --- project. With points stored as a contiguous (3, N) block
    # (points = block.T), (3, 3) @ (3, N) is several times faster on CPU than
    # the (N, 3) @ (3, 3) layout. One product per pose (not one stacked
    # product) so that a batched read is bitwise equal to single reads.
    pts_t = points.T  # (3, N)
    if B == 1:
        uvz = torch.addmm(P[0, :, 3:], P[0, :, :3], pts_t)[None]  # (1, 3, N)
    else:
        uvz = torch.stack([torch.addmm(P[i, :, 3:], P[i, :, :3], pts_t) for i in range(B)])  # (B, 3, N)

    # --- cull: keep points in front of the camera and within half a cell of
    # the grid (NaN/inf from z ~ 0 compare False and are dropped too). A point
    # just beyond the last column still covers that column bilinearly; culling
    # at the grid's edge left every edge cell with about half its coverage, the
    # fill rule then re-wrote each view's rim from the least reliable tokens,
    # and those occluded the first view's own tokens at a return.
    z = uvz[:, 2]  # (B, N) camera z-depth
    uv = uvz[:, :2] / uvz[:, 2:]  # (B, 2, N) pixel coordinates
    u, v = uv[:, 0], uv[:, 1]
    upper = torch.maximum(u, v) < w + 0.5 if h == w else (u < w + 0.5) & (v < h + 0.5)
    inside = (z > near) & (torch.minimum(u, v) >= -0.5) & upper  # (B, N)
    flat = inside.reshape(-1).nonzero().squeeze(1)  # (M,) indices into B*N
    if B == 1:
        b, p = None, flat
        sel = uvz[0].index_select(1, flat)  # (3, M)
    else:
        b = torch.div(flat, N, rounding_mode="floor")
        p = flat - b * N
        sel = uvz.transpose(0, 1).reshape(3, B * N).index_select(1, flat)
    z = sel[2]  # (M,)

    # --- bilinear corners. Cell (i, j) has its centre at (j + 0.5, i + 0.5);
    # a corner outside the grid gets weight 0 and so falls below min_weight.
    xy = sel[:2] / z - 0.5  # (2, M): continuous cell coordinates (x, y)
    lo = torch.floor(xy)
    frac = xy - lo  # weight of the right column / lower row
    lo = lo.long()
    near_w = (1.0 - frac) * (lo >= 0)  # (2, M) weights of corner column x0 / row y0
    far_w = frac * (lo < torch.tensor([[w - 1], [h - 1]], device=dev))  # of x0 + 1 / y0 + 1
    wxy = torch.stack([near_w, far_w])  # (2 near/far, 2 x/y, M)
    weight = (wxy[:, None, 1] * wxy[None, :, 0]).reshape(4, -1)  # (4, M): (y0,x0), (y0,x0+1), (y0+1,x0), (y0+1,x0+1)
    base = lo[1] * w + lo[0] if b is None else (b * h + lo[1]) * w + lo[0]  # (M,) flat index of corner (x0, y0)
    offsets = torch.tensor([[0], [1], [w], [w + 1]], device=dev)
    trash = cells  # one extra cell soaks up every rejected contribution
    cell = torch.where(weight >= min_weight, base + offsets, trash)  # (4, M)
    zz = z.expand(4, -1)  # (4, M)

    # --- pass 1: front depth per cell; a minimum is order-independent. The
    # front is the nearest *strong* contribution (weight >= STRONG_WEIGHT); only
    # cells with none fall back to the nearest of all. A point that merely
    # grazes a cell must not hide the surface that covers it: on a floor or a
    # slanted wall, neighbouring tokens differ in depth by more than the
    # tolerance, and a nearest-of-all front rejected most of a cell's weight
    # (a 15-degree turn left half of a fully seen view "uncovered").
    flat_cell = cell.reshape(-1)  # (4M,)
    zf = zz.reshape(-1)
    offer = torch.where(weight.reshape(-1) < STRONG_WEIGHT, zf * _WEAK_SCALE, zf)  # weak ones offer z * 2**30
    front = _nearest_surface(flat_cell, offer, cells, near)

    # --- pass 2: the front layer, every contribution within depth_tolerance of
    # the front, accumulated as [s * feature, s, s * z, w] per cell: w is the
    # bilinear weight (coverage), s = w ** BLEND_SHARPNESS weighs the blend.
    # (Thresholds are scaled per cell, not per contribution.)
    M = z.shape[0]
    in_front = zf <= (front * (1.0 + depth_tolerance)).index_select(0, flat_cell)  # (4M,)
    flat_w = weight.reshape(-1)
    blend = flat_w * flat_w if BLEND_SHARPNESS == 4 else flat_w ** BLEND_SHARPNESS  # pow is slow on CPU
    if BLEND_SHARPNESS == 4:
        blend = blend * blend
    src = torch.empty(C + 2, M, device=dev)  # [feature, 1, z] per point
    src[:C] = features.index_select(0, p).T
    src[C] = 1.0
    src[C + 1] = z
    # Few channels: channel-first rows, one flat index_add_ pass per row; many
    # channels: point-major rows (index_add_ along dim 0 copies whole rows).
    channel_first = C + 3 <= _CHANNEL_FIRST_MAX
    if not channel_first:
        src = src.T.contiguous()  # (M, C + 2)
    acc = torch.zeros(C + 3, 2 * (cells + 1), device=dev)  # rows [s * feature, s, s * z, w]; columns (layer, cell)
    if channel_first:
        front_rows = torch.empty(C + 3, 4, M, device=dev)
        torch.mul(src[:, None, :], blend.view(1, 4, M), out=front_rows[:C + 2])
        front_rows[C + 2] = weight
        acc.index_add_(1, torch.where(in_front, flat_cell, trash), front_rows.view(C + 3, 4 * M))
    else:
        front_rows = torch.empty(4, M, C + 3, device=dev)
        torch.mul(src[None], blend.view(4, M, 1), out=front_rows[..., :C + 2])
        front_rows[..., C + 2] = weight
        acc_t = torch.zeros(2 * (cells + 1), C + 3, device=dev)
        acc_t.index_add_(0, torch.where(in_front, flat_cell, trash), front_rows.view(4 * M, C + 3))
        acc = acc_t.T

    # --- pass 3: the back layer, only where the front leaves part of a cell
    # uncovered (few cells: a dense memory read covers most cells fully). It is
    # the next surface behind the front, found the same way among the rest.
    partial = acc[C + 2, :cells + 1] < 1.0
    partial[trash] = False
    behind = (~in_front & partial.index_select(0, flat_cell)).nonzero().squeeze(1)  # (J,) into the 4M contributions
    if behind.numel():
        cell_b = flat_cell.index_select(0, behind)
        z_b = zf.index_select(0, behind)
        second = _nearest_surface(cell_b, offer.index_select(0, behind), cells, near)
        back = z_b <= (second * (1.0 + depth_tolerance)).index_select(0, cell_b)
        behind, cell_b, z_b = behind[back], cell_b[back], z_b[back]
        point = behind % M
        s_b = blend.index_select(0, behind)
        if channel_first:
            back_rows = torch.empty(C + 3, behind.shape[0], device=dev)
            back_rows[:C + 2] = src.index_select(1, point) * s_b
            back_rows[C + 2] = flat_w.index_select(0, behind)
            acc.index_add_(1, cell_b + (cells + 1), back_rows)
        else:
            back_rows = torch.empty(behind.shape[0], C + 3, device=dev)
            back_rows[:, :C + 2] = src.index_select(0, point) * s_b[:, None]
            back_rows[:, C + 2] = flat_w.index_select(0, behind)
            acc_t.index_add_(0, cell_b + (cells + 1), back_rows)
    acc = acc.T  # (2 * (cells + 1), C + 3)

    # --- composite front to back. The front surface covers
    # min(1, its weight) of the cell; the back layer fills the rest.
    acc = acc.reshape(2, cells + 1, C + 3)[:, :cells]  # (layer, cells, C + 3)
    ssum = acc[..., C]  # (2, cells) blend normaliser
    mean = acc[..., :C + 2] / torch.where(ssum > 0, ssum, 1.0)[..., None]  # blend-normalised per layer
    alpha = acc[..., C + 2].clamp(max=1.0)  # (2, cells): the share of the cell each layer covers on its own
    alpha = torch.stack([alpha[0], alpha[1] * (1.0 - alpha[0])])  # the back layer fills what the front leaves
    total = alpha.sum(0)  # (cells,) coverage
    covered = total > 0
    out = (mean * alpha[..., None]).sum(0) / torch.where(covered, total, 1.0)[:, None]  # (cells, C + 2)
    out_feat = out[:, :C].reshape(B, h, w, C).permute(0, 3, 1, 2).contiguous()
    out_depth = torch.where(covered, out[:, C + 1], float("inf")).reshape(B, h, w)
    out_mask = total.reshape(B, h, w)
    return SplatResult(features=out_feat, mask=out_mask, depth=out_depth)
