"""What the room prior alone says about unseen space, with no generator.

For each held-out room of the suite, the start frame is encoded and written
to a latent memory with the geometry head's depth, then read along a
200-step forward-biased walk; the memory's holes are filled with zeros, the
mean observed token, or the room prior (memory/room_prior.py), decoded, and
scored on the pixels the start frame did not show against the truth and the
suite's flat start-colour frame. It bounds what the prior gives the
generator to start from. One core, about a minute:

    python scripts/room_prior_ceiling.py
"""

from __future__ import annotations

import numpy as np
import torch

from mirage_gym.envs.actions import MotionConfig
from mirage_gym.eval.metrics import frame_scores
from mirage_gym.eval.suite import Run, SuiteArgs, baseline_frames, render_truth
from mirage_gym.eval.trajectories import centre_start, forward_biased_actions, walk_out_and_back
from mirage_gym.geometry import scale_intrinsics
from mirage_gym.images import to_model, to_uint8
from mirage_gym.memory import LatentSpatialMemory, memory_prior
from mirage_gym.models.tiny.world_model import load_tiny_world_model
from mirage_gym.scenes import ProceduralRoom

FIGURES = ("layout_psnr_unseen", "edge_ratio_unseen", "std_ratio_unseen", "psnr_unseen")


def main(steps: int = 200) -> dict:
    torch.set_num_threads(1)
    args, wm = SuiteArgs(), load_tiny_world_model()
    S, (h, w) = args.obs_size, wm.latent_size
    scores: dict[str, list] = {}
    for seed in args.seeds:
        room = ProceduralRoom(seed)
        K = room.intrinsics(S, S)
        start, _ = walk_out_and_back(room, centre_start(room), args.walk_steps)
        run = Run("explore", "random", seed, start, forward_biased_actions(room, start, steps, seed))
        truth = render_truth(run, args, K, MotionConfig(), 8.0)
        latent = wm.encode(to_model(truth.start_rgb[None]))
        depth, _ = wm.estimate_geometry(latent)
        K_latent = scale_intrinsics(K, (S, S), (h, w))
        memory = LatentSpatialMemory(channels=latent.shape[1])
        memory.write(latent[0], depth[0], K_latent, start.c2w(), observed=True)
        view = memory.read(K_latent, truth.c2w, h, w)
        covered = view.mask[:, None]
        fills = {"zeros": torch.zeros_like(view.latent), "mean token": memory.features.float().mean(0).view(1, -1, 1, 1),
                 "room prior": memory_prior(memory, K_latent, truth.c2w, h, w)}
        frames = {"flat start colour": baseline_frames(truth, wm)["flat"]}
        frames.update({name: to_uint8(wm.decode(view.latent * covered + (1 - covered) * fill)) for name, fill in fills.items()})
        for name, f in frames.items():
            s = frame_scores(f, truth.rgb, truth.seen)
            scores.setdefault(name, []).append({k: float(torch.nanmean(s[k])) for k in FIGURES})
    table = {name: {k: float(np.mean([r[k] for r in rows])) for k in FIGURES} for name, rows in scores.items()}
    flat = table["flat start colour"]["layout_psnr_unseen"]
    print(f"{'holes filled with':20s} layout over flat (dB)  edge  std  psnr (unseen pixels, {len(args.seeds)} rooms, {steps} steps)")
    for name, row in table.items():
        print(f"{name:20s} {row['layout_psnr_unseen'] - flat:+21.2f}  {row['edge_ratio_unseen']:.2f}  "
              f"{row['std_ratio_unseen']:.2f}  {row['psnr_unseen']:.2f}")
    return table


if __name__ == "__main__":
    main()
