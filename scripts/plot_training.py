"""Plot the held-out evaluation logged at every checkpoint of the embedded
model's trainers (checkpoints/tiny/*/eval.jsonl) into one PNG: the three
stages and the decoder fine-tune that ships.

    .venv/bin/python scripts/plot_training.py [--checkpoints checkpoints/tiny] [--out docs/training_curves.png]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

PANELS = [  # (stage, metric keys, y label)
    ("vae", ["psnr_mean", "psnr_worst10", "bicubic4x_mean"], "held-out PSNR (dB)"),
    ("geometry", ["depth_rel_err_median"], "median relative depth error"),
    ("denoiser", ["psnr_all", "psnr_seen"], "held-out PSNR vs ground truth (dB)"),
    ("decoder", ["psnr_mean", "psnr_all", "psnr_seen"], "held-out PSNR (dB)"),  # reconstruction; generated frames
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoints", default="checkpoints/tiny")
    ap.add_argument("--out", default="docs/training_curves.png")
    args = ap.parse_args()
    fig, axes = plt.subplots(1, len(PANELS), figsize=(4.3 * len(PANELS), 3.6))
    for ax, (stage, keys, label) in zip(axes, PANELS):
        path = Path(args.checkpoints) / stage / "eval.jsonl"
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
        for key in keys:
            pts = [(r["step"], r[key]) for r in rows if key in r]
            if pts:
                ax.plot(*zip(*pts), label=key, marker=".", linewidth=1)
        ax.set_title("decoder fine-tune (from VAE step 3,000)" if stage == "decoder" else stage)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
