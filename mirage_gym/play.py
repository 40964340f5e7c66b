"""`mirage-gym play`: walk through a MirageRoom with the keyboard.

Keys: W / S forward and back, A / D turn left and right, Q / E strafe,
R / F look up and down; Esc quits. The window shows the env's render():
the generated frame beside the top-down memory map.

It runs :func:`gymnasium.utils.play.play`, which needs pygame and a display.
Where either is missing it says so and exits with status 2.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

from .envs.actions import Action

KEYS_TO_ACTION = {
    "w": Action.FORWARD, "s": Action.BACKWARD, "a": Action.TURN_LEFT, "d": Action.TURN_RIGHT,
    "q": Action.STRAFE_LEFT, "e": Action.STRAFE_RIGHT, "r": Action.LOOK_UP, "f": Action.LOOK_DOWN,
}
NO_DISPLAY_EXIT = 2


@dataclass
class PlayArgs:
    env_id: str = "MirageRoom-v0"
    world_model: str = ""  # override the id's world model ("oracle", "tiny", a path)
    seed: int = 0
    fps: int = 8  # actions per second while a key is held
    zoom: float = 1.5  # window scale


def display_problem() -> str | None:
    """Why an interactive window cannot open here, or None if it can."""
    try:
        import pygame  # noqa: F401
    except ImportError:
        return ("`mirage-gym play` needs pygame for its window: pip install pygame "
                '(or pip install "gymnasium[classic-control]")')
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return ("`mirage-gym play` needs a display and there is none here (DISPLAY and WAYLAND_DISPLAY are unset: "
                "a headless machine or an SSH session without X forwarding). Run it on a desktop, use `ssh -X`, "
                "or watch an episode with `mirage-gym demo` (writes runs/demo/episode.mp4)")
    return None


def main(args: PlayArgs) -> int:
    problem = display_problem()
    if problem:
        print(problem, file=sys.stderr)
        return NO_DISPLAY_EXIT
    import gymnasium as gym
    from gymnasium.utils.play import play

    import mirage_gym  # noqa: F401

    kwargs = {"world_model": args.world_model} if args.world_model else {}
    if not args.world_model and args.env_id.endswith("MirageRoom-v0"):
        from .models.tiny import weights_available

        if not weights_available():
            print("note: the embedded model's weights are not in this install; playing in the oracle world")
            kwargs["world_model"] = "oracle"
    env = gym.make(args.env_id, render_mode="rgb_array", **kwargs)
    print("keys: " + ", ".join(f"{k.upper()} {a.name.lower()}" for k, a in KEYS_TO_ACTION.items()) + ", Esc quits")
    play(env, keys_to_action={k: int(a) for k, a in KEYS_TO_ACTION.items()}, noop=int(Action.STAY),
         fps=args.fps, zoom=args.zoom, seed=args.seed)
    return 0
