"""The env's torch thread policy: its work runs on ``num_threads`` intra-op
threads, set before each call into the env and restored after it.

Why one thread by default: torch's own default (one OpenMP thread per core)
stalls in two ways an RL user cannot see. On a shared CPU the threads spin
waiting for each other while other jobs hold the cores, and a step can take
50x longer; and GNU OpenMP is not fork-safe, so a sub-env forked by
``gym.make_vec(..., vectorization_mode="async")`` from a parent that has run
a parallel region hangs in its own first one. With one thread torch never
opens a parallel region, so neither can happen. Setting and restoring around
each call (not once, process-wide) leaves the user's own torch code on
whatever threads it chose. Measurements: docs/results.md (bench).
"""

from __future__ import annotations

import functools
from contextlib import contextmanager

import torch

from .. import limits

DEFAULT_NUM_THREADS = 1


def check_num_threads(value) -> None:
    """``num_threads`` is a positive int, or None (use torch's current setting)."""
    if value is not None and not limits.is_int(value, 1):
        raise ValueError(f"num_threads must be a positive integer (torch intra-op threads for the env's work) or None "
                         f"(leave torch's own setting), got {value!r}")


@contextmanager
def intra_op_threads(num_threads: int | None):
    """Run the block on ``num_threads`` torch intra-op threads, then restore
    the caller's setting (None: change nothing)."""
    previous = torch.get_num_threads()
    if num_threads is None or num_threads == previous:
        yield
        return
    torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def env_threads(method):
    """Decorate a method of an object with ``cfg.num_threads``: the method runs
    under :func:`intra_op_threads` (nested calls change nothing)."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with intra_op_threads(self.cfg.num_threads):
            return method(self, *args, **kwargs)

    return wrapper
