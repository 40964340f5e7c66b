"""The pool of training samples the embedded-model trainers draw batches from.

Rendering a trajectory (and, for rollouts, generating it with the model)
costs more than an optimizer step uses, so each trainer keeps a bounded
pool of samples, fills it once, then adds ``refill`` trajectories per step
(a fraction accumulates: 0.1 adds one every tenth step), and draws each
batch uniformly from what the pool holds. A sample is a dict of tensors.
"""

from __future__ import annotations

from collections import deque
from typing import Callable, Iterable

import numpy as np
import torch


class SamplePool:
    """``make(rng)`` -> the samples of one new trajectory (an iterable of dicts).

    ``size``: the most samples kept (the oldest go first); ``warm``: samples
    made before the first batch is drawn; ``refill``: trajectories added per
    :meth:`batch` call after that."""

    def __init__(self, make: Callable[[np.random.Generator], Iterable[dict]], size: int, warm: int, refill: float):
        if size < 1 or refill < 0:
            raise ValueError(f"pool size must be >= 1 and refill >= 0, got size={size}, refill={refill}")
        self.make, self.warm, self.refill = make, min(warm, size), refill
        self.items: deque = deque(maxlen=size)
        self._owed = 0.0

    def __len__(self) -> int:
        return len(self.items)

    def add(self, rng: np.random.Generator) -> None:
        """Make one trajectory and keep its samples."""
        self.items.extend(self.make(rng))

    def batch(self, rng: np.random.Generator, n: int) -> dict:
        """``n`` samples drawn with replacement, stacked key by key."""
        while len(self.items) < max(1, self.warm):
            self.add(rng)
        self._owed += self.refill
        while self._owed >= 1:
            self._owed -= 1
            self.add(rng)
        idx = rng.integers(0, len(self.items), n)
        return {k: torch.stack([self.items[i][k] for i in idx]) for k in self.items[0]}
