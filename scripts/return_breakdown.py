"""Where a returned view loses quality: in what the memory stored, or around what it did not.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/return_breakdown.py [--seeds 1000001 1000004] [--world-model tiny]

For each held-out room and memory kind (latent, rgb) it starts the env at the
eval's start pose (``mirage-gym eval``'s turn-away-and-back loop), reads the
memory right after the first write, runs the loop, and prints PSNR against
the first view on the cells the first read pins (mask >= 0.5) and on the rest:

* ``first read``: the memory's view of the start pose, decoded, right after
  the start frame was written (cells it does not hold decode from zeros);
* ``VAE``: the start frame encoded and decoded whole (the ceiling);
* ``return``: the env's frame back at the start pose after the loop;
* ``cells kept``: share of pinned cells whose token at the return is
  bit-identical to the first read's (latent memory only);
* ``pinned at the return``: share of the view the memory pins when read
  again at the start pose after the loop (latent memory only): above the
  first read's share, cells the first view left to generation (sky, moving
  objects) were written during the loop and are now kept;
* ``hole tokens`` (latent memory only): the start frame's own tokens in the
  pinned cells and, in the others, zeros / the denoiser's sample at the
  start pose / the encoding of the frame with those pixels grey / the true
  tokens, decoded: PSNR on the pinned pixels, i.e. how much what sits in the
  unstored cells costs the stored ones through the decoder.

``--depth-source scene`` writes ground-truth depth and static masks instead
of the geometry head's, to tell the head's part from the rest.
"""

from __future__ import annotations

import argparse
import math

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F

import mirage_gym  # noqa: F401
from mirage_gym.eval.consistency import centre_start, loop_actions
from mirage_gym.geometry import plucker_rays, relative_pose
from mirage_gym.eval.metrics import psnr
from mirage_gym.images import to_model, to_uint8
from mirage_gym.scenes import ProceduralRoom


def read_start(env, memory: str):
    """(latent (1, C, h, w), cell coverage (h, w)) of the memory at the agent's pose."""
    sim = env.unwrapped.sim
    ep, wm = sim.episodes[0], sim.world_model
    c2w = ep.agent.c2w()[None]
    h, w = sim.latent_size
    if memory == "latent":
        view = ep.memory.read(sim.K_latent, c2w, h, w)
        return view.latent, view.mask[0]
    view = ep.memory.read(sim.K_image, c2w, *sim.image_size)
    return wm.encode(view.rgb), F.avg_pool2d(view.mask[:, None].float(), wm.downsample)[0, 0]


def hole_tokens(env, first: np.ndarray, pinned_cells: torch.Tensor, pinned: torch.Tensor) -> str:
    """PSNR on the pinned pixels of the start frame's tokens with each filling of the other cells."""
    sim = env.unwrapped.sim
    ep, wm = sim.episodes[0], sim.world_model
    h, w = sim.latent_size
    image = to_model(first)
    tokens = wm.encode(image)
    grey = image.clone()
    grey[:, :, ~pinned[0]] = 0.0
    view = ep.memory.read(sim.K_latent, ep.agent.c2w()[None], h, w)
    c2w = ep.agent.c2w()[None]
    plucker = plucker_rays(sim.K_latent, relative_pose(c2w, c2w), h, w)
    noise = torch.randn(tokens.shape, generator=torch.Generator().manual_seed(0))
    fillings = {"zeros": torch.zeros_like(tokens), "generated": wm.sampler(tokens, view.latent, view.mask, plucker, noise, observed=view.observed),
                "grey-encoded": wm.encode(grey), "true": tokens}
    scores = {name: psnr(to_uint8(wm.decode(torch.where(pinned_cells[None, None], tokens, fill))), first, mask=pinned)[0]
              for name, fill in fillings.items()}
    return "\n         hole tokens -> pinned pixels: " + ", ".join(f"{k} {float(v):.2f}" for k, v in scores.items()) + " dB"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1_000_001, 1_000_004])
    ap.add_argument("--world-model", default="tiny")
    ap.add_argument("--turn-steps", type=int, default=12)
    ap.add_argument("--depth-source", default="auto", help="auto (the geometry head) | scene (ground truth)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    for seed in args.seeds:
        room = ProceduralRoom(seed)
        start, actions = loop_actions("leave_and_return", room, centre_start(room), args.turn_steps)
        print(f"room {seed} (turn {args.turn_steps * 15} degrees away and back)")
        for memory in ("latent", "rgb"):
            env = gym.make("MirageRoom-v0", world_model=args.world_model, memory=memory, task="none",
                           depth_source=args.depth_source)
            obs, _ = env.reset(seed=0, options={"scene_seed": seed, "pose": [start.x, start.y, math.degrees(start.yaw)]})
            wm = env.unwrapped.sim.world_model
            first = obs["rgb"][None]
            latent, cover = read_start(env, memory)
            pinned_cells = cover >= 0.5
            f = wm.downsample
            pinned = torch.from_numpy(np.kron(pinned_cells.numpy(), np.ones((f, f))).astype(bool))[None]
            first_read = to_uint8(wm.decode(latent))
            vae = to_uint8(wm.decode(wm.encode(to_model(first))))
            holes = hole_tokens(env, first, pinned_cells, pinned) if memory == "latent" else ""
            for a in actions:
                obs, *_ = env.step(a)
            back = obs["rgb"][None]
            kept = ""
            if memory == "latent":
                again, cover_again = read_start(env, memory)
                same = (again[0] == latent[0]).all(0)
                kept = (f", cells kept {float(same[pinned_cells].float().mean()):.3f}, "
                        f"pinned at the return {float((cover_again >= 0.5).float().mean()):.3f}")
            def p(img, m) -> str:
                return f"{float(psnr(img, first, mask=m)[0]):.2f}" if m.any() else "-"

            print(f"  {memory:6s} pinned {float(pinned.float().mean()):.2f} | on pinned: first read {p(first_read, pinned)}, "
                  f"VAE {p(vae, pinned)}, return {p(back, pinned)} | return on the rest {p(back, ~pinned)} dB{kept}{holes}")
            env.close()


if __name__ == "__main__":
    main()
