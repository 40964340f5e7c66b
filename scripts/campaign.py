"""The training campaign's curve: the evaluation suite's headline figures against CPU-hours.

    python scripts/campaign.py point --denoiser-dir checkpoints/tiny/denoiser_v2p --label v2p
    python scripts/campaign.py point --weights mirage_gym/weights/tiny --label shipped
    python scripts/campaign.py plot

``point`` exports a denoiser checkpoint beside the shipped codec (or takes a
weights folder as it is), runs ``mirage-gym eval`` on it (``--quick`` for a
one-room check) and appends one line to ``docs/campaign.jsonl``: the
denoiser's total training time (the checkpoint's own plus every run it was
started from, down to the shipped weights' record), and the figures the
world-model issue is judged by. ``plot`` draws ``docs/campaign_curve.png``
from that file, one panel per figure, with the targets as dashed lines.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOG = ROOT / "docs" / "campaign.jsonl"
SHIPPED = ROOT / "mirage_gym" / "weights" / "tiny"

# (name, label, where in eval.json, target or None)
FIGURES = [
    ("near_psnr_seen", "near: PSNR on start-visible pixels (dB)", ("near", "latent", "psnr_seen"), 24.0),
    ("explore_edge_unseen", "explore: edge ratio, unseen", ("explore", "latent", "edge_ratio_unseen"), 0.6),
    ("explore_std_unseen", "explore: pixel-std ratio, unseen", ("explore", "latent", "std_ratio_unseen"), 0.85),
    ("explore_layout_over_flat", "explore: layout PSNR - flat frame's (dB)", None, 2.0),
    ("c2st_latent", "classifier two-sample accuracy", None, 0.85),
    ("return_view_psnr", "return view PSNR (dB)", ("return view", "latent", "psnr"), None),
]


def training_seconds(denoiser_dir: Path) -> float:
    """Seconds of denoiser training behind a checkpoint, following ``init_from``
    back through checkpoints and weights folders (whose records carry their own history)."""
    total, folder = 0.0, denoiser_dir
    for _ in range(20):
        if (folder / "world_model.json").is_file():
            record = json.loads((folder / "world_model.json").read_text())["training"]["denoiser"]
            while record:  # a weights folder's record and the runs it started from
                total += record.get("train_time_s", 0.0)
                record = record.get("init_from", {})
            return total
        total += json.loads((folder / "state.json").read_text()).get("elapsed_s", 0.0)
        init = json.loads((folder / "args.json").read_text()).get("init_from", "") if (folder / "args.json").is_file() else ""
        if not init:
            return total
        folder = Path(init) if Path(init).is_absolute() else ROOT / init
    raise RuntimeError(f"init_from chain from {denoiser_dir} is longer than 20 runs")


def headline(result: dict) -> dict:
    s = result["summary"]
    out = {}
    for name, _, path, _ in FIGURES:
        if path is not None:
            out[name] = s[path[0]][path[1]][path[2]]
    out["explore_layout_over_flat"] = s["explore"]["latent"]["layout_psnr"] - s["explore"]["flat"]["layout_psnr"]
    out["c2st_latent"] = result["c2st"]["latent"]["accuracy"]
    if "rgb" in s["return view"]:
        out["return_view_latent_minus_rgb"] = s["return view"]["latent"]["psnr"] - s["return view"]["rgb"]["psnr"]
    return out


def point(args) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        if args.weights:
            weights, seconds = Path(args.weights), training_seconds(Path(args.weights))
            steps = json.loads((weights / "world_model.json").read_text())["training"]["denoiser"]["steps"]
        else:
            den = Path(args.denoiser_dir)
            weights = Path(tmp) / "weights"
            if not args.from_eval:
                subprocess.run([sys.executable, "-m", "mirage_gym.cli", "train", "export", "--vae-dir", str(SHIPPED),
                                "--geometry-dir", str(SHIPPED), "--denoiser-dir", str(den), "--out", str(weights)], check=True)
            seconds, steps = training_seconds(den), json.loads((den / "state.json").read_text())["step"]
        if args.from_eval:  # a suite run already made on these weights
            result = json.loads(Path(args.from_eval).read_text())
        else:
            out = Path(tmp) / "eval"
            cmd = [sys.executable, "-m", "mirage_gym.cli", "eval", "--world-model", str(weights), "--out", str(out),
                   "--threads", "1"] + (["--quick"] if args.quick else []) + ["--no-strips"]
            subprocess.run(cmd, check=True)
            result = json.loads((out / "eval.json").read_text())
    row = {"label": args.label, "denoiser_steps": steps, "cpu_hours": round(seconds / 3600, 3), "quick": args.quick,
           **{k: round(v, 4) for k, v in headline(result).items()}}
    LOG.parent.mkdir(exist_ok=True)
    with open(LOG, "a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row, indent=1))


def plot(args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in LOG.read_text().splitlines() if line.strip()]
    fig, axes = plt.subplots(2, 3, figsize=(13, 7))
    for ax, (name, label, _, target) in zip(axes.flat, FIGURES):
        # points, not lines: runs branch from different checkpoints, so the
        # order of CPU-hours is not one run's history; each point is labelled
        for quick, marker in ((False, "o"), (True, "x")):
            pts = [(r["cpu_hours"], r[name], r["label"].split(":")[0].split(",")[0]) for r in rows
                   if r.get("quick") == quick and name in r]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker, label="quick (1 room)" if quick else "default rooms")
                for x, y, text in pts:
                    ax.annotate(text, (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
        if target is not None:
            ax.axhline(target, color="grey", linestyle="--", linewidth=1, label="target")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("denoiser training, CPU-hours")
        ax.legend(fontsize=7)
    fig.suptitle("embedded world model: the evaluation suite against training compute")
    fig.tight_layout()
    fig.savefig(ROOT / "docs" / "campaign_curve.png", dpi=90)
    print(f"wrote {ROOT / 'docs' / 'campaign_curve.png'} from {len(rows)} points")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("point", help="evaluate one checkpoint and append it to docs/campaign.jsonl")
    p.add_argument("--denoiser-dir", default="", help="a denoiser checkpoint folder (exported beside the shipped codec)")
    p.add_argument("--weights", default="", help="a weights folder, evaluated as it is")
    p.add_argument("--label", required=True)
    p.add_argument("--quick", action="store_true", help="the suite's one-room size")
    p.add_argument("--from-eval", default="", help="an eval.json of a suite run on the same weights (skips the run)")
    p.set_defaults(run=point)
    sub.add_parser("plot", help="draw docs/campaign_curve.png").set_defaults(run=plot)
    args = ap.parse_args()
    if args.command == "point" and bool(args.denoiser_dir) == bool(args.weights):
        ap.error("point needs exactly one of --denoiser-dir and --weights")
    args.run(args)


if __name__ == "__main__":
    main()
