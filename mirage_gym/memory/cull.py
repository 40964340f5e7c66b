"""Frustum culling before the splat, so a read costs what is in view.

A memory's rows are in write order, and one write is one view's tokens, so
a run of consecutive rows lies close together in space. The rows are cut
into blocks of ``BLOCK`` rows; a block whose bounding box lies wholly
outside a camera's view (behind it, or beyond a side of the grid, with a
margin) cannot contribute to that camera's splat and is skipped. The splat
kernel (``splat.py``) then sees the rows of the kept blocks, in their
original order; it drops out-of-view points itself, so culling changes
which points it *looks at*, never which it uses: the view is bit-identical
(its projection is per point, and every reduction runs over the in-view
points in row order).

The block bounds cost two reductions over the stored positions (cached
until the memory changes); the test is per block, not per point.
"""

from __future__ import annotations

import torch

__all__ = ["BLOCK", "MIN_ROWS", "block_bounds", "rows_in_view", "rows_near"]

BLOCK = 256  # rows per block: about one written view of a 16x16 latent grid
# Below this many rows the block test's fixed cost (a dozen small ops) is more than
# it saves: the splat's own per-point cull and a full key search are cheap there.
MIN_ROWS = 32 * BLOCK
MARGIN_CELLS = 1.0  # the side planes are pushed out by this many grid cells: rounding never culls a visible point


def block_bounds(xyz: torch.Tensor, block: int = BLOCK) -> torch.Tensor:
    """(nb, 2, 3) float64 min and max corner of each run of ``block`` rows of ``xyz`` (3, N)."""
    n = xyz.shape[1]
    full = n // block * block
    parts_lo, parts_hi = [], []
    if full:
        blocks = xyz[:, :full].reshape(3, -1, block)
        parts_lo.append(blocks.amin(-1))
        parts_hi.append(blocks.amax(-1))
    if full < n:
        parts_lo.append(xyz[:, full:].amin(-1, keepdim=True))
        parts_hi.append(xyz[:, full:].amax(-1, keepdim=True))
    lo, hi = torch.cat(parts_lo, 1), torch.cat(parts_hi, 1)  # (3, nb)
    return torch.stack([lo.T, hi.T], 1).double()


def rows_in_view(bounds: torch.Tensor, P: torch.Tensor, n: int, height: int, width: int, near: float,
                 block: int = BLOCK) -> torch.Tensor | None:
    """Row indices (ascending) of the blocks that some camera ``P`` (B, 3, 4)
    (K [R | t] of the grid, as the splat uses) may see; None when every
    block may be seen (nothing to cull)."""
    P = P.double().to(bounds.device)
    m = MARGIN_CELLS + 0.5
    u, v, z = P[:, 0], P[:, 1], P[:, 2]  # (B, 4) rows: u z, v z, z as linear functions of (x, y, z, 1)
    # In view: z > near and -m <= u, v and u < width + m, v < height + m (u = uz / z); each a half-space a . X + b >= 0.
    planes = torch.stack([z - torch.tensor([0.0, 0.0, 0.0, 0.5 * near], dtype=P.dtype, device=P.device),
                          u + m * z, (width + m) * z - u, v + m * z, (height + m) * z - v], 1)  # (B, 5, 4)
    a, b = planes[..., :3], planes[..., 3]  # (B, 5, 3), (B, 5)
    lo, hi = bounds[:, 0], bounds[:, 1]  # (nb, 3)
    # the largest value of a . X + b over each box: per axis the corner that favours the plane
    best = torch.maximum(a[:, :, None] * lo, a[:, :, None] * hi).sum(-1) + b[..., None]  # (B, 5, nb)
    seen = (best >= 0).all(1).any(0)  # (nb,) inside every plane of some camera
    return _rows(seen, n, block)


def _rows(kept_blocks: torch.Tensor, n: int, block: int) -> torch.Tensor | None:
    """Ascending row indices of the kept blocks (n rows in all); None when all are kept."""
    if bool(kept_blocks.all()):
        return None
    if not bool(kept_blocks.any()):
        return torch.zeros(0, dtype=torch.long, device=kept_blocks.device)
    kept = kept_blocks.nonzero().squeeze(1)
    rows = (kept[:, None] * block + torch.arange(block, device=kept.device)).reshape(-1)
    return rows[rows < n] if bool(kept[-1] == kept_blocks.shape[0] - 1) else rows


def rows_near(bounds: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, margin: float, n: int,
              block: int = BLOCK) -> torch.Tensor | None:
    """Row indices (ascending) of the blocks whose box comes within ``margin``
    of the box [lo, hi] (3,) (a write's points: only rows there can share a
    voxel with them); None when that is every block."""
    lo = lo.double().to(bounds.device) - margin
    hi = hi.double().to(bounds.device) + margin
    near = ((bounds[:, 0] <= hi) & (bounds[:, 1] >= lo)).all(1)  # (nb,)
    return _rows(near, n, block)
