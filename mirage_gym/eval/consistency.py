"""`mirage-gym eval --mode revisit`: does the world come back when you do?

(The default `mirage-gym eval` is the agent-trajectory suite, ``eval.suite``,
which scores every frame of these loops and of near and explore trajectories
too; this module's return-view figures are its "return view" rows.)

For each procedural seed (held out by default), trajectory
(``leave_and_return``, ``walk_out_and_back``; see ``eval.trajectories``) and
memory kind (latent / rgb / none), the env runs the trajectory ``loops``
times from the same start pose and compares every return view with

* the **first visit** (the start frame at the same pose): consistency;
* the **ground truth** at the return pose: correctness;

both as PSNR and SSIM on *revisited pixels* only: pixels whose ground-truth
3D point was visible in the first view (the return view's ground-truth depth
back-projected, projected into the first camera, depth agreeing within
``depth_tolerance``, static in both). Also: the **memory readout** at the
return pose (the memory's own view there: decoded warped latent for
``latent``, render + VAE round trip for ``rgb``) against the ground truth on
revisited pixels the memory covers, and **drift**: how the PSNR against the
first visit changes from the first loop to the last (dB per loop).

With the oracle world (used when the embedded model's weights are not
installed) generated frames *are* the ground truth, so the frame metrics are
exact (PSNR capped at 100 dB and shown as "exact"); the memory readout is
still a real measurement. Writes ``runs/eval/eval.json``, ``results.md`` and
one frame strip per seed and trajectory (rows: ground truth, then each
memory's frames and readouts).
"""

from __future__ import annotations

import datetime
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from ..geometry import backproject, project
from ..scenes import HELD_OUT_SEED_START, ProceduralRoom
from . import commandline
from .bench_setup import machine_info, resolve_world_model
from .metrics import psnr, ssim
from .report import Table, fmt, write_json
from .trajectories import TRAJECTORIES, centre_start, loop_actions

PSNR_CAP = 100.0  # metrics.psnr clamps the MSE at 1e-10, i.e. 100 dB: identical images


@dataclass
class EvalArgs:
    quick: bool = False  # CI-sized: one seed, two short loops
    out: str = "runs/eval"
    seeds: list = field(default_factory=lambda: [HELD_OUT_SEED_START + i for i in range(1, 5)])  # procedural rooms (>= 1,000,000: held out)
    world_model: str = "auto"  # auto (tiny when its weights exist, else oracle) | tiny | oracle | a path
    memories: list = field(default_factory=lambda: ["latent", "rgb", "none"])
    trajectories: list = field(default_factory=lambda: list(TRAJECTORIES))
    loops: int = 3  # repetitions of each trajectory (drift is measured over them)
    turn_steps: int = 12  # leave_and_return: turn away by this many 15-degree steps and back
    walk_steps: int = 6  # walk_out_and_back: this many 0.25 m moves out, then back
    obs_size: int = 64
    frames_per_step: int = 4
    depth_tolerance: float = 0.05  # relative depth agreement for a pixel to count as revisited
    memory_update: str = "fill"  # memory write rule: fill | oldest | newest
    voxel_size: float = 0.0  # latent memory dedup voxel (m); 0: the env's default
    depth_source: str = "auto"  # depth for memory writes: auto (the model's head) | model | scene (ground truth: memory quality alone)
    strips: bool = True  # write frame strips (PNG)
    threads: int = 1


QUICK = dict(seeds=[HELD_OUT_SEED_START + 1], loops=2, turn_steps=6, walk_steps=3)


def apply_quick(args: EvalArgs, explicit=None) -> EvalArgs:
    """--quick: the QUICK preset for every field not set explicitly."""
    return commandline.apply_quick(args, explicit, QUICK)


def open_world_model(args) -> tuple:
    """The world model of an eval run (``args.world_model`` at ``args.obs_size``)
    and its label, announced with the seeds (a warning when some are training
    seeds). Both eval modes (this one and ``eval.suite``) start here."""
    wm, label = _world_model(args.world_model, args.obs_size)
    held = all(s >= HELD_OUT_SEED_START for s in args.seeds)
    print(f"mirage-gym eval{' --quick' if args.quick else ''}: world model {label}; seeds {args.seeds}"
          + ("" if held else " (WARNING: some seeds are training seeds < 1,000,000)"), flush=True)
    return wm, label


def _world_model(choice: str, size: int):
    from ..models import load_world_model

    choice = resolve_world_model(choice)
    if choice == "oracle":
        from ..models.oracle import OracleWorldModel

        return OracleWorldModel(image_size=(size, size)), "oracle (ground truth; exact pixel-unshuffle latent codec)"
    wm = load_world_model(choice, image_size=(size, size))
    return wm, f"{wm.name} ({choice})"


def revisit_mask(first: dict, ret: dict, K, c2w_first, c2w_ret, tol: float) -> np.ndarray:
    """(H, W) bool: pixels of the return view whose ground-truth surface point
    was visible in the first view (in frame, depth agrees, static in both)."""
    d_ret = torch.from_numpy(ret["depth"])
    H, W = d_ret.shape
    pts = backproject(d_ret, K, c2w_ret).reshape(-1, 3)
    uv, z = project(pts, K, c2w_first)
    j, i = torch.floor(uv[:, 0]).long(), torch.floor(uv[:, 1]).long()
    inside = torch.isfinite(d_ret.reshape(-1)) & (z > 1e-3) & (j >= 0) & (j < W) & (i >= 0) & (i < H)
    jj, ii = j.clamp(0, W - 1), i.clamp(0, H - 1)
    d_first = torch.from_numpy(first["depth"])[ii, jj]
    agree = (z - d_first).abs() <= tol * d_first
    static_first = torch.from_numpy(first["static"])[ii, jj]
    mask = inside & agree & static_first & torch.from_numpy(ret["static"]).reshape(-1)
    return mask.reshape(H, W).numpy()


def _metric(fn, a, b, mask) -> float | None:
    """``fn`` (psnr | ssim) of uint8 images a vs b on ``mask``. For SSIM, b's pixels
    outside the mask are replaced by a's, so that windows straddling the mask
    border do not pick up differences outside it (a mover that moved)."""
    if mask is not None and not mask.any():
        return None
    if mask is not None and fn is ssim:
        b = np.where(mask[..., None], b, a)
    return float(fn(a[None], b[None], None if mask is None else mask[None])[0])


def _readout_image(env, wm) -> tuple[np.ndarray, np.ndarray]:
    """The memory's own view at the current pose, decoded: uint8 (H, W, 3), coverage mask (H, W) bool."""
    sim = env.unwrapped.sim
    obs = sim.memory_observation(sim.episodes[0])  # (C + 1, h, w)
    latent = torch.from_numpy(obs[:-1])[None]
    with torch.no_grad():
        img = wm.decode(latent)[0]
    rgb = img.clamp(-1, 1).add(1).mul(127.5).round().byte().permute(1, 2, 0).cpu().numpy()
    f = wm.downsample
    mask = torch.from_numpy(obs[-1]).repeat_interleave(f, 0).repeat_interleave(f, 1).numpy() > 0.5
    return rgb, mask


def run_episode(wm, seed: int, trajectory: str, memory: str, args: EvalArgs) -> dict:
    room = ProceduralRoom(seed)
    start = centre_start(room)
    size = args.turn_steps if trajectory == "leave_and_return" else args.walk_steps
    start, actions = loop_actions(trajectory, room, start, size)
    env = gym.make("MirageRoom-v0", world_model=wm, memory=memory, task="none", return_gt=True, obs_size=args.obs_size,
                   frames_per_step=args.frames_per_step, depth_source=args.depth_source, memory_update=args.memory_update,
                   **({"voxel_size": args.voxel_size} if args.voxel_size else {}), max_episode_steps=len(actions) * args.loops + 10)
    obs, info = env.reset(seed=0, options={"scene_seed": seed, "pose": [start.x, start.y, math.degrees(start.yaw)]})
    sim = env.unwrapped.sim
    ep = sim.episodes[0]
    K = sim.K_image
    S = args.obs_size
    c2w_first = torch.as_tensor(info["c2w"], dtype=torch.float32)
    first_rgb, first_gt = obs["rgb"], info["gt_rgb"]
    first_truth = room.render(c2w_first, K, S, S, t=0.0)
    loops = []
    for loop in range(args.loops):
        for a in actions:
            obs, _, terminated, truncated, info = env.step(a)
        c2w = torch.as_tensor(info["c2w"], dtype=torch.float32)
        truth = room.render(c2w, K, S, S, t=float(ep.time))
        mask = revisit_mask(first_truth, truth, K, c2w_first, c2w, args.depth_tolerance)
        view, gt = obs["rgb"], info["gt_rgb"]
        row = {"loop": loop + 1, "steps": (loop + 1) * len(actions), "pose_error_m": float((c2w[:3, 3] - c2w_first[:3, 3]).norm()),
               "revisited_fraction": float(mask.mean()),
               "psnr_vs_first": _metric(psnr, view, first_rgb, mask), "ssim_vs_first": _metric(ssim, view, first_rgb, mask),
               "psnr_vs_gt": _metric(psnr, view, gt, mask), "ssim_vs_gt": _metric(ssim, view, gt, mask),
               "images": {"view": view, "gt": gt}}
        if memory != "none":
            ro, cov = _readout_image(env, wm)
            m = mask & cov
            row.update({"readout_psnr_vs_gt": _metric(psnr, ro, gt, m), "readout_ssim_vs_gt": _metric(ssim, ro, gt, m),
                        "readout_coverage": float(cov.mean())})
            row["images"]["readout"] = np.where(cov[..., None], ro, 0).astype(np.uint8)
        loops.append(row)
    env.close()
    p = [r["psnr_vs_first"] for r in loops if r["psnr_vs_first"] is not None]
    drift = (p[-1] - p[0]) / (len(p) - 1) if len(p) > 1 else None
    return {"seed": seed, "trajectory": trajectory, "memory": memory, "steps_per_loop": len(actions), "loops": loops,
            "drift_db_per_loop": drift, "first": {"view": first_rgb, "gt": first_gt}}


def _mean(xs):
    xs = [x for x in xs if x is not None]
    return float(np.mean(xs)) if xs else None


def show_psnr(x) -> str:
    if x is None:
        return "-"
    return "exact" if x >= PSNR_CAP - 1e-6 else f"{x:.2f}"


def summarise(episodes: list[dict]) -> list[dict]:
    rows = []
    keys = sorted({(e["trajectory"], e["memory"]) for e in episodes}, key=lambda k: (k[0], ["latent", "rgb", "none"].index(k[1]) if k[1] in ("latent", "rgb", "none") else 9))
    for traj, mem in keys:
        eps = [e for e in episodes if e["trajectory"] == traj and e["memory"] == mem]
        last = [e["loops"][-1] for e in eps]
        first_loop = [e["loops"][0] for e in eps]
        rows.append({
            "trajectory": traj, "memory": mem, "seeds": len(eps), "loops": len(eps[0]["loops"]),
            "revisited_fraction": _mean([r["revisited_fraction"] for r in last]),
            "psnr_vs_first_loop1": _mean([r["psnr_vs_first"] for r in first_loop]),
            "psnr_vs_first": _mean([r["psnr_vs_first"] for r in last]), "ssim_vs_first": _mean([r["ssim_vs_first"] for r in last]),
            "psnr_vs_gt": _mean([r["psnr_vs_gt"] for r in last]), "ssim_vs_gt": _mean([r["ssim_vs_gt"] for r in last]),
            "readout_psnr_vs_gt": _mean([r.get("readout_psnr_vs_gt") for r in last]),
            "readout_ssim_vs_gt": _mean([r.get("readout_ssim_vs_gt") for r in last]),
            "drift_db_per_loop": _mean([e["drift_db_per_loop"] for e in eps]),
        })
    return rows


def results_table(rows: list[dict], label: str, args: EvalArgs) -> Table:
    body = [[r["trajectory"], r["memory"], str(r["seeds"]), fmt(r["revisited_fraction"]),
             show_psnr(r["psnr_vs_first"]), fmt(r["ssim_vs_first"]), show_psnr(r["psnr_vs_gt"]), fmt(r["ssim_vs_gt"]),
             show_psnr(r["readout_psnr_vs_gt"]), fmt(r["readout_ssim_vs_gt"]), fmt(r["drift_db_per_loop"])] for r in rows]
    return Table(f"Revisit consistency after {args.loops} loops (mean over seeds; revisited pixels only)",
                 ["trajectory", "memory", "seeds", "revisited px", "PSNR vs first", "SSIM vs first", "PSNR vs GT",
                  "SSIM vs GT", "readout PSNR vs GT", "readout SSIM", "drift dB/loop"], body,
                 [f"world model: {label}",
                  "'exact' = identical on every revisited pixel (PSNR capped at 100 dB)",
                  "readout = the memory's own view at the return pose (latent: decoded warped latent; rgb: render + VAE round trip)",
                  "drift = change of PSNR vs first visit per loop (negative: the world drifts away)"]
                 + (["with the oracle, generated frames are the ground truth (frame metrics are exact by construction) and its "
                     "codec is the exact pixel-unshuffle, so the rgb readout's round trip is lossless: the readout columns "
                     "measure the memories alone"] if label.startswith("oracle") else []))


def write_strip(path: Path, episodes: list[dict], title: str) -> None:
    """Rows: ground truth, then per memory its frames and its readouts; columns:
    first visit, then the return view after each loop."""
    from PIL import Image, ImageDraw

    scale = 2
    gt_row = [episodes[0]["first"]["gt"]] + [r["images"]["gt"] for r in episodes[0]["loops"]]
    rows = [("ground truth", gt_row)]
    for e in episodes:
        rows.append((f"model, memory={e['memory']}", [e["first"]["view"]] + [r["images"]["view"] for r in e["loops"]]))
        if "readout" in e["loops"][0]["images"]:
            blank = np.zeros_like(e["first"]["view"])
            rows.append((f"readout, memory={e['memory']}", [blank] + [r["images"]["readout"] for r in e["loops"]]))
    H, W = gt_row[0].shape[:2]
    label_w, head = 150, 34
    canvas = Image.new("RGB", (label_w + len(gt_row) * W * scale, head + len(rows) * H * scale), (20, 20, 20))
    draw = ImageDraw.Draw(canvas)
    draw.text((4, 3), title, fill=(255, 255, 255))
    for c in range(len(gt_row)):
        draw.text((label_w + c * W * scale + 3, 19), f"return {c}" if c else "first visit", fill=(200, 200, 200))
    for r, (name, images) in enumerate(rows):
        y = head + r * H * scale
        draw.text((4, y + 4), name, fill=(255, 255, 255))
        for c, img in enumerate(images):
            canvas.paste(Image.fromarray(img).resize((W * scale, H * scale), Image.NEAREST), (label_w + c * W * scale, y))
    canvas.save(path)


def main(args: EvalArgs, explicit=None, prog: str = "mirage-gym eval --mode revisit") -> dict:
    """Run the evaluation; ``explicit``: fields set on the command line (they win over --quick);
    ``prog``: the command the JSON and Markdown say reproduces the run."""
    args = apply_quick(args, explicit)
    for m in args.memories:
        if m not in ("latent", "rgb", "none"):
            raise SystemExit(f"unknown memory {m!r}; choose from latent rgb none")
    for t in args.trajectories:
        if t not in TRAJECTORIES:
            raise SystemExit(f"unknown trajectory {t!r}; choose from {' '.join(TRAJECTORIES)}")
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    wm, label = open_world_model(args)
    episodes, files = [], {}
    for seed in args.seeds:
        for traj in args.trajectories:
            eps = []
            for mem in args.memories:
                e = run_episode(wm, seed, traj, mem, args)
                eps.append(e)
                last = e["loops"][-1]
                print(f"  seed {seed} {traj:17s} memory={mem:6s}: vs first {show_psnr(last['psnr_vs_first'])} dB, vs GT "
                      f"{show_psnr(last['psnr_vs_gt'])} dB, readout {show_psnr(last.get('readout_psnr_vs_gt'))} dB, "
                      f"revisited {fmt(last['revisited_fraction'])}", flush=True)
            if args.strips:
                p = out / f"strip_{seed}_{traj}.png"
                write_strip(p, eps, f"seed {seed}, {traj}, {label}")
                files[f"strip_{seed}_{traj}"] = str(p)
            episodes += eps
    rows = summarise(episodes)
    table = results_table(rows, label, args)
    took = time.perf_counter() - t0
    print()
    print(table.text())
    print(f"\neval took {took / 60:.1f} min ({took:.0f} s)")
    command = _eval_command_line(args, prog)
    machine = machine_info(args.threads)
    result = {"args": asdict(args), "command": command, "machine": machine, "world_model": label,
              "date": datetime.datetime.now().isoformat(timespec="seconds"), "seconds": took, "summary": rows,
              "episodes": [{k: v for k, v in e.items() if k != "first"} | {"loops": [{k: v for k, v in r.items() if k != "images"}
                                                                                      for r in e["loops"]]} for e in episodes]}
    files["json"], files["markdown"] = str(out / "eval.json"), str(out / "results.md")
    result["files"] = files
    write_json(out / "eval.json", result)
    md = ["## Evaluation: revisit consistency", "", "```", command, "```", "",
          f"Machine: {machine['cpu']}, {machine['logical_cores']} logical cores; torch {machine['torch']}. Run {result['date']}, "
          f"took {took / 60:.1f} min. Seeds: {', '.join(str(s) for s in args.seeds)}.", "", table.markdown()]
    strips = [Path(v).name for k, v in files.items() if k.startswith("strip_")]
    if strips:
        md += ["Frame strips: " + ", ".join(f"`{s}`" for s in strips), ""]
    (out / "results.md").write_text("\n".join(md))
    print("wrote " + ", ".join(files.values()))
    return result


def _eval_command_line(args: EvalArgs, prog: str = "mirage-gym eval --mode revisit") -> str:
    return commandline.command_line(prog, args, QUICK)
