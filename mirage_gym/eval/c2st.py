"""Classifier two-sample test: can a small CNN tell generated frames from real ones?

A distribution distance that does not reward blur and needs no downloaded
network: a 4-layer CNN (batch norm, 16-64 channels) is trained here, on the spot, to label frames as
ground truth (0) or generated (1), and its accuracy on held-out frames is
the figure (0.5: indistinguishable; 1.0: always told apart), with a 95%
Wilson interval, and the training accuracy (a net that did not fit its own
training frames proves nothing about the sets). Frames come in pairs (the generated frame and the truth of
the same pose); a pair, and the block of consecutive steps it sits in, goes
to the training or the test side together, so the test never shows the
classifier a pose it trained on. Seeded and single-threaded friendly: a few
hundred Adam steps on 64x64 frames take seconds on one CPU core.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def wilson_interval(correct: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval of a binomial proportion (``correct`` of ``n``)."""
    if n == 0:
        return (math.nan, math.nan)
    p = correct / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    lo, hi = max(0.0, centre - half), min(1.0, centre + half)
    return (0.0 if correct == 0 else lo, 1.0 if correct == n else hi)  # exact at the ends (rounding leaves 1 - 1e-16)


def _classifier(width: int = 16) -> nn.Module:
    # Batch norm after every conv: without it the same net sat at chance for the first few hundred
    # steps (the suite's codec round trip vs truth: 0.50 after 200 steps, 0.79 after 400; with it, lr 1e-3: 0.97 after 200).
    def block(cin, cout, stride):
        return [nn.Conv2d(cin, cout, 3, stride, 1), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2)]

    return nn.Sequential(*block(3, width, 2), *block(width, 2 * width, 2), *block(2 * width, 4 * width, 2),
                         *block(4 * width, 4 * width, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * width, 1))


def _to_input(x) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(x)) if isinstance(x, np.ndarray) else torch.as_tensor(x)
    if t.dtype != torch.uint8 or t.ndim != 4 or t.shape[-1] != 3:
        raise ValueError(f"c2st takes uint8 frames (N, H, W, 3), got {t.dtype} {tuple(t.shape)}")
    return t.permute(0, 3, 1, 2).float().div(127.5).sub(1)


def split_pairs(groups: np.ndarray, test_fraction: float, seed: int) -> np.ndarray:
    """Boolean (N,) test membership: whole groups, about ``test_fraction`` of them, seeded."""
    uniq = np.unique(groups)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(uniq))
    n_test = max(1, int(round(test_fraction * len(uniq)))) if len(uniq) > 1 else 0
    test_groups = uniq[order[:n_test]]
    return np.isin(groups, test_groups)


def c2st(real, fake, groups=None, seed: int = 0, steps: int = 300, batch: int = 64, test_fraction: float = 0.3,
         lr: float = 1e-3, width: int = 16) -> dict:
    """Train a classifier real (0) vs fake (1) and report held-out accuracy.

    ``real``, ``fake``: uint8 (N, H, W, 3) with the same N: pair i is
    ``real[i]`` and ``fake[i]`` (for independent sets just pass equal
    counts). ``groups`` (N,): pairs with the same id stay on one side of the
    train/test split (default: every pair its own group). Returns accuracy,
    its 95% interval ``ci95``, ``n_train`` / ``n_test`` (frames), ``steps``
    and ``seconds``.
    """
    t0 = time.perf_counter()
    xr, xf = _to_input(real), _to_input(fake)
    if xr.shape != xf.shape:
        raise ValueError(f"real {tuple(xr.shape)} and fake {tuple(xf.shape)} must pair up (same shape)")
    n = xr.shape[0]
    groups = np.arange(n) if groups is None else np.asarray(groups)
    test = split_pairs(groups, test_fraction, seed)
    if test.all() or not test.any():
        raise ValueError(f"c2st needs frames on both sides of the split; got {n} pairs in {len(np.unique(groups))} group(s)")
    tr, te = np.flatnonzero(~test), np.flatnonzero(test)
    x_train = torch.cat([xr[tr], xf[tr]])
    y_train = torch.cat([torch.zeros(len(tr)), torch.ones(len(tr))])
    x_test = torch.cat([xr[te], xf[te]])
    y_test = torch.cat([torch.zeros(len(te)), torch.ones(len(te))])
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        g = torch.Generator().manual_seed(seed)
        net = _classifier(width)
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        net.train()
        for _ in range(steps):
            idx = torch.randint(len(x_train), (min(batch, len(x_train)),), generator=g)
            xb, yb = x_train[idx], y_train[idx]
            flip = torch.rand(len(idx), generator=g) < 0.5  # mirror half the batch: the same for both classes
            xb = torch.where(flip[:, None, None, None], xb.flip(-1), xb)
            loss = F.binary_cross_entropy_with_logits(net(xb)[:, 0], yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            logits = torch.cat([net(x_test[i:i + 256])[:, 0] for i in range(0, len(x_test), 256)])
            train_logits = torch.cat([net(x_train[i:i + 256])[:, 0] for i in range(0, len(x_train), 256)])
    correct = int(((logits > 0).float() == y_test).sum())
    acc = correct / len(y_test)
    lo, hi = wilson_interval(correct, len(y_test))
    return {"accuracy": acc, "ci95": [lo, hi],
            # a classifier that did not fit its own training frames (~0.5 here) says nothing about the sets
            "train_accuracy": float(((train_logits > 0).float() == y_train).float().mean()),
            "n_train": int(len(y_train)), "n_test": int(len(y_test)), "steps": int(steps), "seconds": time.perf_counter() - t0}
