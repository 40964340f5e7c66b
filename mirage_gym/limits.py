"""The one home of the bounds on values that size work or memory.

One typed number (a typo, a YAML slip) must fail with a clear error at
``gym.make`` or at load time, never as minutes of work, gigabytes of memory
or a step that does not return. Each bound sits far above what any model or
env id uses and far below what would hurt; docs/hardening.md lists them with
the figures that set them. It is also the one home of what counts as an
integer argument (:func:`is_int`, used by :func:`bounded_int` and by every
integer check of the package).
"""

from __future__ import annotations

import math
import numbers

# Pixels per side of an observation. The largest real use is Wan2.2 at
# 704 x 1280; 4096 keeps one uint8 frame under 50 MB.
MAX_OBS_SIZE = 4096
# Frames generated per action. Env ids use 1 and 4, Wan2.2 examples 8 (its
# clips are at most 81 frames); 128 frames of the largest obs are 6 GB of
# uint8, the most a step may ask for. 10**9 took 7.9 GB at make, 10**6 a step
# that did not return in 100 s.
MAX_FRAMES_PER_STEP = 128
# Sampler (denoising) steps per segment: the embedded model uses 3, Wan2.2 20;
# 1000 is the full DDPM schedule, beyond which no sampler gains anything.
MAX_SAMPLER_STEPS = 1000
# Frames per second of scene time. 1/fps is added to the scene clock in float32:
# fps=1e-40 made the first frame's time inf and the step raise (after moving the agent).
MIN_FPS, MAX_FPS = 1e-2, 1e4
# Head pitch: at 90 degrees the camera's up vector is undefined, beyond it the
# image turns upside down (max_pitch_deg=1000 did).
MAX_PITCH_DEG = 89.0
# Scene seconds in a snapshot (about 115 days of scene time); time=1e300 was accepted.
MAX_SCENE_TIME = 1e7
# Steps in a snapshot's episode counter.
MAX_EPISODE_STEPS = 10**9
# Metres from the origin an agent may be (procedural rooms are a few metres
# across; also the bound of the pose observation space).
POSITION_BOUND = 100.0
# Magnitude of a latent value in a snapshot (also the bound of obs["memory"]'s space).
LATENT_BOUND = 1000.0
# Height in pixels of the render() debug view.
MAX_RENDER_SIZE = 4096
# Pixels per latent cell of a model config (the embedded model uses 4, Wan2.2 8 or 16).
MAX_DOWNSAMPLE = 64


def is_int(value, low: int | None = None, high: int | None = None) -> bool:
    """Whether ``value`` is an integer (python or numpy; bools and floats are
    not) within [low, high], each bound left out when None. The one
    definition of "an integer" the checks of this package use; a check whose
    message :func:`bounded_int` cannot word tests this and raises its own."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and \
        (low is None or value >= low) and (high is None or value <= high)


def bounded_int(name: str, value, low: int, high: int | None, why: str = "") -> int:
    """``value`` as an int in [low, high] (numpy integers accepted, bools and
    floats refused), else a ValueError naming the bound and why it exists.
    ``high=None``: no upper bound (a count, a seed, a size checked elsewhere)."""
    if not is_int(value, low, high):
        if high is not None:
            must = f"an integer in [{low}, {high}]"
        else:
            must = {0: "a non-negative integer", 1: "a positive integer"}.get(low, f"an integer >= {low}")
        raise ValueError(f"{name} must be {must}, got {value!r}" + (f" ({why})" if why else ""))
    return int(value)


def bounded_float(name: str, value, low: float, high: float, why: str = "", low_open: bool = False) -> float:
    """``value`` as a finite float in [low, high] (or (low, high] with ``low_open``)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value) and \
        (low < value if low_open else low <= value) and value <= high
    if not ok:
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}]"
        raise ValueError(f"{name} must be a number in {interval}, got {value!r}" + (f" ({why})" if why else ""))
    return float(value)
