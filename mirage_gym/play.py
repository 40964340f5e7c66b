"""`mirage-gym play`: walk through a MirageRoom with the keyboard.

Keys: W / S forward and back, A / D turn left and right, Q / E strafe,
R / F look up and down; Esc quits. The window shows the env's render():
the generated frame beside the top-down memory map. While no key is held
the env steps STAY, as gymnasium's ``play`` does.

Headless: ``--keys wwaadd..`` plays those keys (``.`` = STAY, one per
step) through the same pygame event loop, and ``--record run.mp4`` writes
what the window showed; with ``SDL_VIDEODRIVER=dummy`` no display is needed::

    SDL_VIDEODRIVER=dummy mirage-gym play --keys wwwwaaaadddd --record runs/play.mp4

Needs pygame (``pip install "mirage_gym[play]"``); where pygame or a
display is missing it says so and exits with status 2.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .envs.actions import Action

KEYS_TO_ACTION = {
    "w": Action.FORWARD, "s": Action.BACKWARD, "a": Action.TURN_LEFT, "d": Action.TURN_RIGHT,
    "q": Action.STRAFE_LEFT, "e": Action.STRAFE_RIGHT, "r": Action.LOOK_UP, "f": Action.LOOK_DOWN,
}
STAY_KEY = "."
NO_DISPLAY_EXIT = 2
HEADLESS_DRIVERS = ("dummy", "offscreen")  # SDL video drivers that need no display


@dataclass
class PlayArgs:
    env_id: str = "MirageRoom-v0"
    world_model: str = ""  # override the id's world model ("oracle", "tiny", a path)
    seed: int = 0
    fps: int = 8  # actions per second while a key is held
    zoom: float = 1.5  # window scale
    keys: str = ""  # scripted input: one key per step (w s a d q e r f, '.' = stay); quits after the last
    record: str = ""  # write what the window showed to this MP4


def display_problem(scripted: bool = False) -> str | None:
    """Why the window cannot open here, or None if it can."""
    try:
        import pygame  # noqa: F401
    except ImportError:
        return ('`mirage-gym play` needs pygame for its window: pip install "mirage_gym[play]" (or pip install pygame)')
    driver = os.environ.get("SDL_VIDEODRIVER", "")
    if driver in HEADLESS_DRIVERS:
        if not scripted:
            return (f"SDL_VIDEODRIVER={driver} has no keyboard: pass --keys (e.g. --keys wwwwaaaa) "
                    "to play scripted input, with --record run.mp4 to keep it")
        return None
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return ("`mirage-gym play` needs a display and there is none here (DISPLAY and WAYLAND_DISPLAY are unset: "
                "a headless machine or an SSH session without X forwarding). Run it on a desktop, use `ssh -X`, "
                "or headless: SDL_VIDEODRIVER=dummy mirage-gym play --keys wwwwaaaa --record runs/play.mp4")
    return None


def _check_keys(keys: str) -> None:
    bad = sorted(set(keys.lower()) - set(KEYS_TO_ACTION) - {STAY_KEY})
    if bad:
        raise ValueError(f"--keys {keys!r} has unknown key(s) {bad}; use {' '.join(KEYS_TO_ACTION)} and '.' for stay")


def run(env, args: PlayArgs) -> list[np.ndarray]:
    """The play loop: pygame events (the keyboard, or --keys posted as key
    presses) -> actions -> env steps -> window. Returns the shown frames."""
    import pygame

    script = list(args.keys.lower())
    codes = {pygame.key.key_code(k): a for k, a in KEYS_TO_ACTION.items()}
    obs, _ = env.reset(seed=args.seed)
    view = env.render()
    screen = pygame.display.set_mode((round(view.shape[1] * args.zoom), round(view.shape[0] * args.zoom)))
    pygame.display.set_caption("mirage-gym play")
    clock, held, shown = pygame.time.Clock(), [], [view]
    running = True
    while running:
        if args.keys:
            if not script:
                break
            key = script.pop(0)
            if key != STAY_KEY:
                pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.key.key_code(key)))
        for event in pygame.event.get():
            if event.type == pygame.QUIT or (event.type == pygame.KEYDOWN and event.key == pygame.K_ESCAPE):
                running = False
            elif event.type == pygame.KEYDOWN and event.key in codes:
                held.append(event.key)
            elif event.type == pygame.KEYUP and event.key in held:
                held.remove(event.key)
        if not running:
            break
        action = codes[held[-1]] if held else Action.STAY
        if args.keys:
            held.clear()  # a scripted key is one press for one step
        obs, _, terminated, truncated, _ = env.step(int(action))
        if terminated or truncated:
            obs, _ = env.reset()
        view = env.render()
        shown.append(view)
        surface = pygame.surfarray.make_surface(np.ascontiguousarray(view.transpose(1, 0, 2)))
        screen.blit(pygame.transform.scale(surface, screen.get_size()), (0, 0))
        pygame.display.flip()
        if not args.keys:
            clock.tick(args.fps)
    return shown


def main(args: PlayArgs) -> int:
    try:
        _check_keys(args.keys)
    except ValueError as err:
        print(err, file=sys.stderr)
        return NO_DISPLAY_EXIT
    problem = display_problem(scripted=bool(args.keys))
    if problem:
        print(problem, file=sys.stderr)
        return NO_DISPLAY_EXIT
    import gymnasium as gym
    import pygame

    import mirage_gym  # noqa: F401

    kwargs = {"world_model": args.world_model} if args.world_model else {}
    if not args.world_model and args.env_id.endswith("MirageRoom-v0"):
        from .models.tiny import weights_available

        if not weights_available():
            print("note: the embedded model's weights are not in this install; playing in the oracle world")
            kwargs["world_model"] = "oracle"
    env = gym.make(args.env_id, render_mode="rgb_array", **kwargs)
    if not args.keys:
        print("keys: " + ", ".join(f"{k.upper()} {a.name.lower()}" for k, a in KEYS_TO_ACTION.items()) + ", Esc quits")
    pygame.display.init()  # not pygame.init(): no audio device is opened
    try:
        shown = run(env, args)
    finally:
        pygame.quit()
        env.close()
    if args.record:
        from .data.mp4 import write_video

        path = write_video(Path(args.record), np.stack(shown), fps=env.metadata.get("render_fps", args.fps))
        print(f"recorded {len(shown)} frames to {path}")
    return 0
