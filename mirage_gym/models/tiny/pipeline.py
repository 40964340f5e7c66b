"""The sampling loop of the embedded model, kept apart from the networks.

Rectified flow on a *residual over the warped memory*: the clean latent is
x0 = base + r with base = mask * memory (plus the hole prefill below), and
the UNet denoises r. Where memory is empty
(mask 0) the model generates the content from context; at the rim of what
memory covers it blends.

Pinning: where the memory covers a cell (mask >= ``pin``, 0.5 by default:
the read is a weight-normalised token, whole even where the splat is
sparse), the sampler returns the memory token itself and drops r. The residual there was
trained to undo warp blur, but measured on held-out rooms it did not beat
the plain memory read (22.0 vs 22.5 dB on covered pixels) and, fed back as
context and memory over a rollout, its small errors compound: revisited
content drifted to mush within one 180-degree turn. Pinned, a revisited
surface decodes from the very tokens first written for it.

Hole prefill (``prefill=True``, off by default): where the memory is empty
the residual is taken over a *prefill* instead of over zero: each empty
cell copies the token of the nearest covered cell in its row (the nearest
covered row where the row has none), which for a level camera turning into
unseen space continues the ceiling, wall and floor bands of what it saw.
Over zero, a small model's best guess in a hole is the room's mean colour,
and fed back as context and memory over a drive into unseen space that wash
takes over the frame within ~10 steps. A fine-tune over the prefill did not
change that (model card, session 6), so the shipped weights keep zero.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import FlowMatchEulerDiscreteScheduler, UNet2DModel

NUM_TRAIN_TIMESTEPS = 1000


def make_scheduler() -> FlowMatchEulerDiscreteScheduler:
    return FlowMatchEulerDiscreteScheduler(num_train_timesteps=NUM_TRAIN_TIMESTEPS, shift=1.0)


def denoiser_input(noisy: torch.Tensor, context: torch.Tensor, base: torch.Tensor, mask: torch.Tensor,
                   plucker: torch.Tensor) -> torch.Tensor:
    """Stack the UNet's input channels: (N, 3C + 1 + 6, h, w); ``base`` is :func:`residual_base`'s."""
    return torch.cat([noisy, context, base, mask[:, None], plucker], dim=1)


def _nearest_along(x: torch.Tensor, covered: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Copy every uncovered cell of x (N, C, h, w) from the nearest covered
    cell along ``dim`` of covered (N, h, w) (1: columns, 2: rows; a tie takes
    the lower index). Returns the filled x and where a source existed."""
    n = covered.shape[dim]
    shape = [1, 1, 1]
    shape[dim] = n
    index = torch.arange(n, device=x.device).view(shape).expand_as(covered)
    before = torch.where(covered, index, torch.full_like(index, -1)).cummax(dim).values
    after = torch.where(covered, index, torch.full_like(index, n)).flip(dim).cummin(dim).values.flip(dim)
    use_before = (before >= 0) & ((after >= n) | (index - before <= after - index))
    source = torch.where(use_before, before, after).clamp(0, n - 1)
    found = (before >= 0) | (after < n)
    filled = torch.gather(x, dim + 1, source[:, None].expand_as(x))
    return torch.where(found[:, None], filled, x), found


def prefill_holes(memory: torch.Tensor, mask: torch.Tensor, pin: float) -> torch.Tensor:
    """Each cell copies the nearest covered (mask >= pin) token in its row; a
    row with none copies the filled row nearest to it; with nothing covered
    at all, zeros. memory (N, C, h, w), mask (N, h, w) -> (N, C, h, w)."""
    covered = mask >= pin
    rows, row_found = _nearest_along(memory, covered, dim=2)
    filled, found = _nearest_along(rows, row_found, dim=1)
    return torch.where(found[:, None], filled, torch.zeros_like(filled))


def residual_base(memory: torch.Tensor, mask: torch.Tensor, pin: float, prefill: bool) -> torch.Tensor:
    """What the residual is taken over: the memory where it covers a cell,
    blended by coverage with the hole prefill (or zero) where it does not."""
    m = mask[:, None]
    if not prefill:
        return memory * m
    return memory * m + (1 - m) * prefill_holes(memory, mask, pin)


def condition(memory: torch.Tensor, mask: torch.Tensor, pin: float, gap_support: float | None,
              prefill: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The sampler's conditioning, shared with training: gaps closed, then
    the residual base. Returns (memory, mask, base)."""
    if gap_support is not None:
        memory, mask = close_gaps(memory, mask, pin, gap_support)
    return memory, mask, residual_base(memory, mask, pin, prefill)


def close_gaps(memory: torch.Tensor, mask: torch.Tensor, pin: float, min_support: float = 1.5) -> tuple[torch.Tensor, torch.Tensor]:
    """Fill cells between sparse memory tokens from their neighbours.

    Walking up to a surface spreads its stored tokens apart, so cells between
    them read as uncovered (mask < pin) although the surface around them is
    known; generated there, they came out as blur that the memory then kept.
    A cell below ``pin`` whose 3x3 neighbourhood holds at least
    ``min_support`` of coverage takes the coverage-weighted mean of it and
    counts as covered. Real holes (unseen space) have no such support and stay.
    memory (N, C, h, w), mask (N, h, w) -> the same shapes.
    """
    m = mask[:, None]
    support = F.avg_pool2d(m, 3, stride=1, padding=1, count_include_pad=False) * 9  # (N, 1, h, w) coverage summed over 3x3
    mean = F.avg_pool2d(memory * m, 3, stride=1, padding=1, count_include_pad=False) * 9 / support.clamp(min=1e-6)
    gap = (m < pin) & (support >= min_support)
    return torch.where(gap, mean, memory), torch.where(gap[:, 0], torch.ones_like(mask), mask)


class ResidualFlowSampler:
    """Few-step Euler sampling of the residual over memory (4 steps by default)."""

    def __init__(self, denoiser: UNet2DModel, steps: int = 4, pin: float = 0.5, gap_support: float | None = None,
                 prefill: bool = False):
        self.denoiser = denoiser
        self.prefill = prefill  # residual over the hole prefill (prefill_holes) instead of over zero
        self.scheduler = make_scheduler()
        self.steps = steps
        self.pin = pin
        self.gap_support = gap_support  # None: leave gaps between memory tokens to the denoiser

    @torch.no_grad()
    def __call__(self, context, memory, mask, plucker, noise, steps: int | None = None) -> torch.Tensor:
        """All inputs (N, ...) at latent resolution; returns the clean latent (N, C, h, w)."""
        steps = int(steps or self.steps)
        if steps < 1:
            raise ValueError(f"denoise_steps must be >= 1, got {steps}")
        memory, mask, base = condition(memory, mask, self.pin, self.gap_support, self.prefill)
        self.scheduler.set_timesteps(steps, device=noise.device)
        x = noise
        for t in self.scheduler.timesteps:
            inp = denoiser_input(x, context, base, mask, plucker)
            velocity = self.denoiser(inp, t.expand(x.shape[0])).sample
            x = self.scheduler.step(velocity, t, x).prev_sample
        m = mask[:, None]
        return torch.where(m >= self.pin, memory, base + x)
