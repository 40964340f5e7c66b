"""The sampling loop of the embedded model, kept apart from the networks.

The UNet denoises the *residual over the warped memory*: the clean latent is
x0 = base + r with base = mask * memory (+ (1 - mask) * the room prior, for
weights trained with it), so where the memory shows a surface the model only
corrects the read (resampling blur, the seam between tokens written from
different poses) and where it is empty it makes the content from the prior,
the context frame and the camera motion.

Noise levels and preconditioning (one home, shared by sampler and loss):

* the sampler walks a Karras schedule of ``steps`` noise levels from
  ``sigma_max`` to ``sigma_min`` (EDM's rho = 7) and then to zero with
  Euler steps; training draws half its levels from exactly these values and
  half from EDM's log-normal, so every level the sampler visits is trained;
* the network sees ``c_in * x`` and the level as ``c_noise`` and its output
  F gives the denoised residual ``c_skip * x + c_out * F``. The coefficients
  are EDM's form with rectified-flow values (c_in = c_skip = 1 / (1 + sigma),
  c_out = -sigma / (1 + sigma), c_noise = 1000 sigma / (1 + sigma)): the
  input is then the flow interpolant (1 - t) r + t n at t = sigma / (1 + sigma)
  and F its velocity n - r, so the loss has unit weight at every level and
  weights trained with the earlier flow objective start in place.

Pinning keeps what was seen and refines what was made: a cell the memory
covers at least ``pin`` *with observed tokens* (written from a real image,
such as the env's start frame; ``observed`` >= 0.5 of its content) is
returned as the memory token itself; every other cell, including those the
memory shows from the model's own earlier frames, is the model's
refinement. With ``pin`` > 1 (PINNING_OFF) the model refines every cell.
"""

from __future__ import annotations

from dataclasses import dataclass

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:  # annotations only: importing diffusers costs seconds of the env's startup
    from diffusers import UNet2DModel

NUM_TRAIN_TIMESTEPS = 1000  # c_noise's scale: the UNet's timestep embedding was trained on [0, 1000]
PINNING_OFF = 1.01  # a pin threshold no coverage reaches
COVERED = 0.5  # coverage at which a cell counts as shown by the memory (gap closing)
OBSERVED = 0.5  # observed share of a cell's memory content at which it may be pinned


@dataclass(frozen=True)
class NoiseLevels:
    """Where the sampler walks and what training draws (module docstring)."""

    sigma_max: float = 10.0
    sigma_min: float = 0.1
    rho: float = 7.0
    train_log_mean: float = -0.4  # EDM's log-normal of training levels
    train_log_std: float = 1.2

    def schedule(self, steps: int) -> torch.Tensor:
        """``steps`` decreasing levels (Karras et al.), then 0: (steps + 1,)."""
        if steps == 1:
            levels = torch.tensor([self.sigma_max])
        else:
            ramp = torch.linspace(0, 1, steps)
            lo, hi = self.sigma_min ** (1 / self.rho), self.sigma_max ** (1 / self.rho)
            levels = (hi + ramp * (lo - hi)) ** self.rho
        return torch.cat([levels, torch.zeros(1)])

    def draw_training(self, n: int, steps: int, rng) -> torch.Tensor:
        """n training levels: half the sampler's own (for ``steps``), half log-normal."""
        own = self.schedule(steps)[:-1]
        pick_own = torch.from_numpy(rng.random(n) < 0.5)
        own_levels = own[torch.from_numpy(rng.integers(0, len(own), n))]
        log_normal = torch.from_numpy(rng.normal(self.train_log_mean, self.train_log_std, n)).float().exp()
        return torch.where(pick_own, own_levels, log_normal.clamp(max=self.sigma_max * 2))


def precondition(sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(c_in, c_skip, c_out, c_noise) for levels ``sigma`` (N,); the first three shaped (N, 1, 1, 1)."""
    s = sigma.view(-1, 1, 1, 1)
    c_in = 1 / (1 + s)
    return c_in, c_in, -s / (1 + s), NUM_TRAIN_TIMESTEPS * sigma / (1 + sigma)


def denoiser_input(noisy: torch.Tensor, context: torch.Tensor, base: torch.Tensor, mask: torch.Tensor,
                   plucker: torch.Tensor) -> torch.Tensor:
    """Stack the UNet's input channels: (N, 3C + 1 + 6, h, w); ``noisy`` already scaled by c_in."""
    return torch.cat([noisy, context, base, mask[:, None], plucker], dim=1)


def denoise(unet: UNet2DModel, x: torch.Tensor, sigma: torch.Tensor, context, base, mask, plucker) -> torch.Tensor:
    """The denoised residual D(x; sigma) for a noisy residual x (N, C, h, w) at levels sigma (N,)."""
    c_in, c_skip, c_out, c_noise = precondition(sigma)
    out = unet(denoiser_input(c_in * x, context, base, mask, plucker), c_noise).sample
    return c_skip * x + c_out * out


def condition(memory: torch.Tensor, mask: torch.Tensor, observed: torch.Tensor, gap_support: float | None,
              prior: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The conditioning shared by sampler and loss: gaps closed (the observed
    share with the memory), then the residual base mask * memory, plus
    (1 - mask) * prior where a room prior is given (memory/room_prior.py).
    memory and prior (N, C, h, w), mask and observed (N, h, w). Returns (memory, mask, observed, base)."""
    if gap_support is not None:
        both, mask = close_gaps(torch.cat([memory, observed[:, None]], dim=1), mask, COVERED, gap_support)
        memory, observed = both[:, :-1], both[:, -1]
    base = memory * mask[:, None]
    if prior is not None:
        base = base + prior * (1 - mask[:, None])
    return memory, mask, observed, base


def pinned_cells(mask: torch.Tensor, observed: torch.Tensor, pin: float) -> torch.Tensor:
    """(N, h, w) bool: the cells returned as the memory token (module docstring), after :func:`condition`."""
    return (mask >= pin) & (observed >= OBSERVED)


def close_gaps(memory: torch.Tensor, mask: torch.Tensor, pin: float, min_support: float = 1.5) -> tuple[torch.Tensor, torch.Tensor]:
    """Fill cells between sparse memory tokens from their neighbours.

    Walking up to a surface spreads its stored tokens apart, so cells between
    them read as uncovered (mask < pin) although the surface around them is
    known. A cell below ``pin`` whose 3x3 neighbourhood holds at least
    ``min_support`` of coverage takes the coverage-weighted mean of it and
    counts as covered. Real holes (unseen space) have no such support and stay.
    memory (N, C, h, w), mask (N, h, w) -> the same shapes.
    """
    m = mask[:, None]
    support = F.avg_pool2d(m, 3, stride=1, padding=1, count_include_pad=False) * 9  # (N, 1, h, w) coverage summed over 3x3
    mean = F.avg_pool2d(memory * m, 3, stride=1, padding=1, count_include_pad=False) * 9 / support.clamp(min=1e-6)
    gap = (m < pin) & (support >= min_support)
    return torch.where(gap, mean, memory), torch.where(gap[:, 0], torch.ones_like(mask), mask)


class MemoryResidualSampler:
    """Few-step Euler sampling of the residual over memory (module docstring)."""

    def __init__(self, denoiser: UNet2DModel, steps: int = 3, pin: float = PINNING_OFF, gap_support: float | None = None,
                 levels: NoiseLevels = NoiseLevels()):
        self.denoiser = denoiser
        self.steps = steps
        self.pin = pin
        self.gap_support = gap_support  # None: leave gaps between memory tokens to the denoiser
        self.levels = levels

    @torch.no_grad()
    def __call__(self, context, memory, mask, plucker, noise, *, observed, prior=None, steps: int | None = None) -> torch.Tensor:
        """All inputs (N, ...) at latent resolution, ``noise`` standard normal,
        ``observed`` (N, h, w) the observed share of the memory, ``prior`` the
        room prior or None (module docstring); returns the clean latent (N, C, h, w)."""
        steps = int(steps or self.steps)
        if steps < 1:
            raise ValueError(f"denoise_steps must be >= 1, got {steps}")
        memory, mask, observed, base = condition(memory, mask, observed, self.gap_support, prior)
        sigmas = self.levels.schedule(steps).to(noise.device)
        x = noise * sigmas[0]
        for sigma, next_sigma in zip(sigmas[:-1], sigmas[1:]):
            denoised = denoise(self.denoiser, x, sigma.expand(x.shape[0]), context, base, mask, plucker)
            x = denoised + (next_sigma / sigma) * (x - denoised)  # Euler step of dx/dsigma = (x - D) / sigma
        return torch.where(pinned_cells(mask, observed, self.pin)[:, None], memory, base + x)
