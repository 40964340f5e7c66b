"""Render a 4x4 contact sheet of procedural rooms (seeds 0..15, row-major)
at 128x128 to docs/contact_sheet.png.

Each view stands at a free spot far from the room centre (out of a few
samples) at eye height and looks toward the centre, tilted slightly down,
so furniture, walls, floor and windows are in frame.

    .venv/bin/python scripts/contact_sheet.py [--out docs/contact_sheet.png] [--size 128] [--first-seed 0]
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import imageio.v3 as iio
import numpy as np

from mirage_gym.geometry import pose_from_yaw_pitch
from mirage_gym.scenes import ProceduralRoom


def overview_pose(room: ProceduralRoom, rng: np.random.Generator, pitch: float = -0.2):
    """A free eye-height pose far from the centre, facing the centre."""
    centre = room.bounds.mean(0)
    candidates = [room.sample_position(rng, radius=0.4) for _ in range(12)]
    pos = max(candidates, key=lambda p: np.hypot(*(p[:2] - centre[:2])))
    yaw = math.atan2(centre[1] - pos[1], centre[0] - pos[0])
    return pose_from_yaw_pitch(pos, yaw, pitch)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="docs/contact_sheet.png")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--supersample", type=int, default=1)
    ap.add_argument("--max-kb", type=int, default=290, help="drop low colour bits until the PNG is this small")
    args = ap.parse_args()
    S, gap = args.size, 4
    sheet = np.full((4 * S + 5 * gap, 4 * S + 5 * gap, 3), 255, np.uint8)
    for i in range(16):
        seed = args.first_seed + i
        room = ProceduralRoom(seed)
        c2w = overview_pose(room, np.random.default_rng(seed))
        rgb = room.render(c2w, room.intrinsics(S, S), S, S, t=0.0, supersample=args.supersample)["rgb"]
        r, c = divmod(i, 4)
        y, x = gap + r * (S + gap), gap + c * (S + gap)
        sheet[y:y + S, x:x + S] = rgb
        objects, movers = ", ".join(o.name for o in room.objects), ", ".join(m.name for m in room.movers)
        print(f"seed {seed}: {room!r}; objects: {objects}; movers: {movers}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # Texture noise compresses poorly; if the PNG is too big, drop low bits of
    # each channel (invisible at 1-2 bits) until it fits.
    for bits in (8, 7, 6, 5):
        mask = np.uint8((0xFF << (8 - bits)) & 0xFF)
        iio.imwrite(out, sheet & mask, optimize=True)
        if out.stat().st_size <= args.max_kb * 1024:
            break
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KB, {bits} bits per channel)")


if __name__ == "__main__":
    main()
