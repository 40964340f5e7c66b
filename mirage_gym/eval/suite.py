"""`mirage-gym eval`: score every frame an agent sees against the ground truth.

On held-out procedural rooms (seeds >= 1,000,000) the env is driven along
the trajectories an agent drives, and every observed frame (the last of each
step's K frames, as ``obs["rgb"]``) is compared with the ground-truth render
of the same pose and scene time:

* **near** - small moves and turns around the start pose
  (``trajectories.NEAR``: +-30 degrees, +-10 degrees of pitch, 0.5 m);
* **explore** - ``explore_runs`` trajectories of ``explore_steps`` steps by
  the scripted explorer (seeded) and a seeded forward-biased random policy,
  taking turns over the rooms (by default the explorer in the first room,
  the random policy in the second);
* **return** - the revisit loops (turn away and back, walk out and back),
  ``loops`` times; "return view" is the frame at the end of each loop, at
  the exact start pose (what ``--mode revisit`` measures).

Every trajectory is planned once, from the room alone (the explorer plans on
the oracle world with ground-truth coverage), and replayed action for action
by every world, so all figures are on the same poses. Per frame
(``metrics.frame_scores``): PSNR and SSIM, sharpness (edge-energy ratio and
pixel-std ratio against the truth's), layout (8x8-pooled PSNR, row-profile
correlation), each over all pixels and split into pixels whose surface the
start frame showed ("seen": the truth's depth unprojected, projected into
the start camera and agreeing with the start depth, static in both;
``consistency.revisit_mask``) and the rest ("unseen").

Sources, on the same frames: the model (``memories[0]``, "latent" by
default), the same model with the other memories ("rgb", "none"); the
baselines a flat frame of the start view's mean colour, the previous step's
true frame copied, the start frame copied, the codec ceiling (the truth
encoded and decoded by the world model's own VAE) and the oracle world
(exact by construction: it checks the harness). A classifier two-sample test
(``eval.c2st``: a small CNN trained here to tell generated frames from the
truth of the same poses; held-out accuracy, 0.5 = indistinguishable) gives
a distribution distance that does not reward blur.

Everything is seeded (``--seed``): the same command gives the same numbers.
Writes ``eval.json``, ``results.md``, ``curves_explore_<policy>.png``
(per-step PSNR, edge ratio and layout PSNR) and ``sheet_<part>_<name>_<seed>.png``
contact sheets (truth over each memory's frames) to ``--out``.
"""

from __future__ import annotations

import datetime
import math
import time
import zlib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from ..envs.actions import Action, AgentState, action_to_motion
from ..scenes import HELD_OUT_SEED_START, ProceduralRoom
from . import commandline
from .consistency import PSNR_CAP, revisit_mask
from .metrics import SCORE_NAMES, frame_scores
from .report import Table, fmt, write_json
from .trajectories import (TRAJECTORIES, centre_start, forward_biased_actions, leave_and_return, near_actions, simulate,
                           walk_out_and_back)

PARTS = ("near", "explore", "return")
POLICIES = ("explorer", "random")
MEMORIES = ("latent", "rgb", "none")
BASELINES = ("flat", "prev", "start", "codec", "oracle")
SPLITS = ("", "_seen", "_unseen")
SOURCE_LABELS = {"latent": "memory=latent", "rgb": "memory=rgb", "none": "memory=none", "flat": "flat (start mean)",
                 "prev": "previous true frame", "start": "start frame", "codec": "codec ceiling", "oracle": "oracle world"}


@dataclass
class SuiteArgs:
    mode: str = "suite"  # suite (near / explore / return, every frame scored) | revisit (the return view only, as before: eval.consistency)
    quick: bool = False  # CI-sized: one room, 24 explore steps, short loops, two classifier tests
    out: str = "runs/eval"
    seeds: list = field(default_factory=lambda: [HELD_OUT_SEED_START + i for i in range(1, 5)])  # procedural rooms (>= 1,000,000: held out)
    world_model: str = "auto"  # auto (tiny when its weights exist, else oracle) | tiny | oracle | a weights folder
    memories: list = field(default_factory=lambda: list(MEMORIES))  # the first is "the model"; the others are its baselines
    parts: list = field(default_factory=lambda: list(PARTS))  # near explore return
    policies: list = field(default_factory=lambda: list(POLICIES))  # explore policies: explorer (scripted, seeded) random (forward-biased, seeded)
    explore_runs: int = 2  # explore trajectories: the policies take turns over the rooms (run i: room i, policy i; then the other pairings)
    explore_steps: int = 200
    near_steps: int = 20  # steps of trajectories.NEAR
    trajectories: list = field(default_factory=lambda: list(TRAJECTORIES))  # the return loops
    loops: int = 0  # repetitions of each return loop (0: the mode's default: suite 1, revisit 3)
    turn_steps: int = 12  # leave_and_return: turn away by this many 15-degree steps and back
    walk_steps: int = 6  # walk_out_and_back: this many 0.25 m moves out, then back
    obs_size: int = 64
    frames_per_step: int = 4
    depth_tolerance: float = 0.05  # relative depth agreement for a pixel to count as seen in the start frame
    memory_update: str = "fill"  # memory write rule: fill | oldest | newest
    voxel_size: float = 0.0  # latent memory dedup voxel (m); 0: the env's default
    depth_source: str = "auto"  # depth for memory writes: auto (the model's head) | model | scene (ground truth)
    seed: int = 0  # seeds the policies, the generator's noise and the classifier test
    c2st: list = field(default_factory=lambda: ["latent", "rgb", "none", "codec"])  # sources the classifier test scores
    c2st_steps: int = 200  # classifier training steps (batch 64); 0 skips the test
    strips: bool = True  # write contact sheets and curves (PNG)
    threads: int = 1


QUICK = dict(seeds=[HELD_OUT_SEED_START + 1], explore_runs=2, explore_steps=24, near_steps=12, turn_steps=6, walk_steps=3,
             c2st=["latent", "codec"], c2st_steps=80)
SUITE_LOOPS, REVISIT_LOOPS = 1, 3


def apply_quick(args: SuiteArgs, explicit=None) -> SuiteArgs:
    return commandline.apply_quick(args, explicit, QUICK)


# ------------------------------------------------------------------ planning


@dataclass
class Run:
    """One trajectory: where it starts and the actions, the same for every world."""

    part: str
    name: str
    seed: int  # the room
    start: AgentState
    actions: list
    loop_len: int | None = None  # return loops: steps per loop

    @property
    def key(self) -> str:
        return f"{self.part}/{self.name}/{self.seed}"

    @property
    def pose(self) -> list[float]:
        return [self.start.x, self.start.y, math.degrees(self.start.yaw)]

    def rng_seed(self, seed: int) -> list[int]:
        return [int(seed), int(self.seed), zlib.crc32(self.key.encode())]


def _env_config(args: SuiteArgs, world_model, memory: str, task: str = "none"):
    from ..envs.config import EnvConfig

    kw = dict(world_model=world_model, memory=memory, task=task, return_gt=False, obs_size=args.obs_size,
              frames_per_step=args.frames_per_step, depth_source=args.depth_source, memory_update=args.memory_update)
    if args.voxel_size:
        kw["voxel_size"] = args.voxel_size
    if world_model == "oracle" or getattr(world_model, "name", "") == "oracle":
        kw["depth_source"] = "auto"  # the oracle has no depth head: its writes always use the scene's depth
    return EnvConfig.from_kwargs(**kw)


def explorer_actions(args: SuiteArgs, room_seed: int, start: AgentState, steps: int, seed: int) -> list[Action]:
    """The scripted explorer's actions, planned on the oracle world with ground-truth
    coverage (``task="explore"``): they depend on the room and the seed only."""
    from ..agents.explorer import ScriptedExplorer
    from ..envs.simulation import MirageSimulation

    sim = MirageSimulation(_env_config(args, "oracle", "none", task="explore"), 1)
    sim.reset_episode(0, np.random.default_rng(seed), {"scene_seed": room_seed, "pose": [start.x, start.y, math.degrees(start.yaw)]})
    explorer = ScriptedExplorer(SimpleNamespace(sim=sim), seed=seed)
    actions = []
    for _ in range(steps):
        a = Action(explorer.act())
        actions.append(a)
        sim.step([0], [action_to_motion(a, "discrete")])
    return actions


def explore_pairs(seeds: list, policies: list, n: int) -> list[tuple[int, str]]:
    """The first ``n`` (room, policy) pairs of the explore part: policy
    ``(j + k) mod P`` in room ``j``, for k = 0, 1, ...: the policies take
    turns over the rooms before any room sees a second policy."""
    pairs = [(seeds[j], policies[(j + k) % len(policies)]) for k in range(len(policies)) for j in range(len(seeds))]
    return pairs[:n]


def plan_runs(args: SuiteArgs) -> list[Run]:
    runs = []
    explore = explore_pairs(args.seeds, args.policies, args.explore_runs) if "explore" in args.parts else []
    for seed in args.seeds:
        room = ProceduralRoom(seed)
        centre = centre_start(room)
        walk_start, walk = walk_out_and_back(room, centre, args.walk_steps)  # a heading with a free run ahead
        if "near" in args.parts:
            runs.append(Run("near", "near", seed, walk_start, near_actions(args.near_steps)))
        for policy in [p for room_seed, p in explore if room_seed == seed]:
            pseed = int(np.random.SeedSequence([args.seed, seed, POLICIES.index(policy)]).generate_state(1)[0])
            if policy == "explorer":
                actions = explorer_actions(args, seed, walk_start, args.explore_steps, pseed)
            else:
                actions = forward_biased_actions(room, walk_start, args.explore_steps, pseed)
            runs.append(Run("explore", policy, seed, walk_start, actions))
        if "return" in args.parts:
            for traj in args.trajectories:
                start, loop = (centre, leave_and_return(args.turn_steps)) if traj == "leave_and_return" else (walk_start, walk)
                runs.append(Run("return", traj, seed, start, loop * args.loops, loop_len=len(loop)))
    return runs


# ------------------------------------------------------------------ truth


@dataclass
class Truth:
    start_rgb: np.ndarray  # (H, W, 3)
    rgb: np.ndarray  # (n, H, W, 3): the true frame at each step's observed pose
    seen: np.ndarray  # (n, H, W) bool: surface visible in the start frame
    c2w: torch.Tensor  # (n, 4, 4)


def render_truth(run: Run, args: SuiteArgs, K, motion, fps: float) -> Truth:
    room = ProceduralRoom(run.seed)
    S = args.obs_size
    traj = simulate(room, run.start, run.actions, args.frames_per_step, fps, motion)
    c2w0 = run.start.c2w()
    first = room.render(c2w0, K, S, S, t=0.0)
    rgb, seen = [], []
    for i in range(len(run.actions)):
        c2w, t = traj.paths[i, -1], float(traj.times[i, -1])
        r = room.render(c2w, K, S, S, t=t)
        rgb.append(r["rgb"])
        seen.append(revisit_mask(first, r, K, c2w0, c2w, args.depth_tolerance))
    return Truth(first["rgb"], np.stack(rgb), np.stack(seen), traj.paths[:, -1].clone())


def codec_round_trip(wm, frames: np.ndarray, chunk: int = 256) -> np.ndarray:
    """The frames encoded and decoded by the world model's codec (uint8)."""
    from ..images import to_model, to_uint8

    out = []
    with torch.no_grad():
        for i in range(0, len(frames), chunk):
            out.append(to_uint8(wm.decode(wm.encode(to_model(frames[i:i + chunk])))))
    return np.concatenate(out) if out else frames.copy()


def baseline_frames(truth: Truth, wm) -> dict[str, np.ndarray]:
    n = len(truth.rgb)
    mean = truth.start_rgb.reshape(-1, 3).mean(0).round().astype(np.uint8)
    return {"flat": np.broadcast_to(mean, truth.rgb.shape).copy(),
            "prev": np.concatenate([truth.start_rgb[None], truth.rgb[:-1]])[:n],
            "start": np.broadcast_to(truth.start_rgb, truth.rgb.shape).copy(),
            "codec": codec_round_trip(wm, truth.rgb)}


# ------------------------------------------------------------------ rollouts


def rollout(args: SuiteArgs, wm, memory: str, runs: list[Run], truths: dict, batch: int = 8) -> dict[str, np.ndarray]:
    """Drive ``wm`` with ``memory`` along every run (runs of equal length batched
    through one simulation): the observed frame of every step, per run key."""
    from ..envs.simulation import MirageSimulation

    out = {}
    by_len: dict[int, list[Run]] = {}
    for r in runs:
        by_len.setdefault(len(r.actions), []).append(r)
    for n, group in by_len.items():
        for g0 in range(0, len(group), batch):
            chunk = group[g0:g0 + batch]
            sim = MirageSimulation(_env_config(args, wm, memory), len(chunk))
            for b, r in enumerate(chunk):
                sim.reset_episode(b, np.random.default_rng(r.rng_seed(args.seed)), {"scene_seed": r.seed, "pose": r.pose})
            frames = np.empty((len(chunk), n, args.obs_size, args.obs_size, 3), np.uint8)
            for i in range(n):
                results = sim.step(list(range(len(chunk))), [action_to_motion(r.actions[i], "discrete") for r in chunk])
                for b, (r, res) in enumerate(zip(chunk, results)):
                    frames[b, i] = res.obs["rgb"]
                    want = truths[r.key].c2w[i]
                    if not torch.allclose(torch.as_tensor(res.info["c2w"]), want, atol=1e-4):
                        raise RuntimeError(f"{r.key} step {i}: the env's pose left the planned trajectory; the suite's "
                                           "simulate() no longer matches the env's motion")
            for b, r in enumerate(chunk):
                out[r.key] = frames[b]
    return out


# ------------------------------------------------------------------ scoring


def score(frames: np.ndarray, truth: Truth) -> dict[str, np.ndarray]:
    s = frame_scores(frames, truth.rgb, truth.seen)
    return {k: v.double().numpy() for k, v in s.items()}


def _nanmean(x) -> float | None:
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    return float(x.mean()) if len(x) else None


def group_indices(runs: list[Run], truths: dict) -> dict[str, list[tuple[Run, np.ndarray]]]:
    """Summary groups -> (run, step indices) lists. "near: off the start pose"
    leaves out the near frames back at the start pose, where copying the start
    frame is exact (up to moving objects)."""
    groups: dict[str, list] = {}

    def add(name, run, idx):
        groups.setdefault(name, []).append((run, idx))

    for r in runs:
        every = np.arange(len(r.actions))
        if r.part == "near":
            add("near", r, every)
            at_start = (truths[r.key].c2w - r.start.c2w()).abs().amax(dim=(1, 2)) < 1e-4
            add("near: off the start pose", r, every[~at_start.numpy()])
        elif r.part == "explore":
            add("explore", r, every)
            add(f"explore: {r.name}", r, every)
        else:
            add("return", r, every)
            add(f"return: {r.name}", r, every)
            add("return view", r, np.arange(r.loop_len - 1, len(r.actions), r.loop_len))
    order = ["near", "near: off the start pose", "explore", *[f"explore: {p}" for p in POLICIES], "return", *[f"return: {t}" for t in TRAJECTORIES], "return view"]
    return {k: groups[k] for k in order if k in groups}


def summarise(runs: list[Run], scores: dict, truths: dict, sources: list[str]) -> dict:
    out = {}
    for gname, members in group_indices(runs, truths).items():
        row = {"frames": int(sum(len(i) for _, i in members)),
               "seen_fraction": _nanmean(np.concatenate([truths[r.key].seen[i].mean((1, 2)) for r, i in members]))}
        for src in sources:
            row[src] = {}
            for name in SCORE_NAMES:
                for split in SPLITS:
                    k = name + split
                    row[src][k] = _nanmean(np.concatenate([scores[src][r.key][k][i] for r, i in members]))
        out[gname] = row
    return out


def drift(runs: list[Run], scores: dict, memories: list[str]) -> dict:
    """dB per loop of the return view's PSNR (last loop minus first), mean over return runs."""
    res = {}
    for mem in memories:
        d = []
        for r in runs:
            if r.part == "return" and len(r.actions) >= 2 * r.loop_len:
                p = scores[mem][r.key]["psnr"][r.loop_len - 1::r.loop_len]
                d.append((p[-1] - p[0]) / (len(p) - 1))
        res[mem] = _nanmean(d) if d else None
    return res


def run_c2st(args: SuiteArgs, runs: list[Run], truths: dict, frames: dict) -> dict:
    from .c2st import c2st

    real = np.concatenate([truths[r.key].rgb for r in runs])
    groups = np.concatenate([j * 100_000 + np.arange(len(r.actions)) // 10 for j, r in enumerate(runs)])  # blocks of 10 steps
    res = {}
    for src in args.c2st:
        if src not in frames:
            continue
        fake = np.concatenate([frames[src][r.key] for r in runs])
        res[src] = c2st(real, fake, groups=groups, seed=args.seed, steps=args.c2st_steps)
        print(f"  classifier test, {SOURCE_LABELS[src]}: held-out accuracy {res[src]['accuracy']:.3f} "
              f"[{res[src]['ci95'][0]:.3f}, {res[src]['ci95'][1]:.3f}] ({res[src]['seconds']:.0f} s)", flush=True)
    return res


# ------------------------------------------------------------------ report


def show(x, name: str = "psnr") -> str:
    if x is None:
        return "-"
    if "psnr" in name:
        return "exact" if x >= PSNR_CAP - 1e-6 else f"{x:.2f}"
    return f"{x:.3f}" if abs(x) < 10 else fmt(x)


HEADLINE = [("psnr", "PSNR vs ground truth (dB)"), ("edge_ratio", "edge-energy ratio (1 = as sharp as the truth, 0 = flat)"),
            ("layout_psnr", "layout PSNR, 8x8 cell means (dB)"), ("row_corr", "row-profile correlation")]


def headline_tables(summary: dict, sources: list[str], label: str) -> list[Table]:
    groups = [g for g in ("near", "near: off the start pose", "explore", "return", "return view") if g in summary]
    tables = []
    for metric, title in HEADLINE:
        rows = [[g, fmt(summary[g]["frames"])] + [show(summary[g][s][metric], metric) for s in sources] for g in groups]
        tables.append(Table(f"{title}: the model beside its baselines (mean over frames; all pixels)",
                            ["trajectories", "frames"] + [SOURCE_LABELS[s] for s in sources], rows))
    tables[0].notes += [f"world model: {label}; the model is {SOURCE_LABELS[sources[0]]}",
                        "flat = every pixel the start view's mean colour; previous true frame = the truth one step earlier; "
                        "codec ceiling = the truth encoded and decoded by the model's VAE; oracle world = ground truth "
                        "(exact by construction: a check of the harness)",
                        "'exact' = identical (PSNR capped at 100 dB)"]
    return tables


def split_table(summary: dict, group: str, sources: list[str]) -> Table:
    row = summary[group]
    body = []
    for s in sources:
        r = row[s]
        body.append([SOURCE_LABELS[s]] + [show(r[m], m) for m in SCORE_NAMES]
                    + [f"{show(r[m + '_seen'], m)} / {show(r[m + '_unseen'], m)}" for m in SCORE_NAMES])
    return Table(f"{group}: {row['frames']} frames, {fmt(row['seen_fraction'])} of pixels seen in the start frame",
                 ["source"] + list(SCORE_NAMES) + [f"{m} seen / unseen" for m in SCORE_NAMES], body)


def c2st_table(res: dict) -> Table:
    body = [[SOURCE_LABELS[s], f"{r['accuracy']:.3f}", f"[{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}]",
             f"{r['train_accuracy']:.3f}", fmt(r["n_train"]), fmt(r["n_test"])] for s, r in res.items()]
    return Table("Classifier two-sample test: held-out accuracy telling generated frames from the truth of the same poses",
                 ["source", "accuracy", "95% interval", "train accuracy", "train frames", "test frames"], body,
                 ["0.5 = indistinguishable, 1.0 = always told apart; a 4-layer CNN trained here (seeded); "
                  "test poses (blocks of 10 steps) are never trained on; train accuracy near 0.5 would mean the classifier did not fit"])


def write_sheet(path: Path, run: Run, truth: Truth, frames: dict, sources: list[str], title: str, columns: int = 10) -> None:
    """Contact sheet: the truth on top, each source's frame below it, at evenly spaced steps."""
    from PIL import Image, ImageDraw

    n = len(run.actions)
    steps = np.unique(np.linspace(0, n - 1, min(n, columns)).round().astype(int))
    rows = [("ground truth", truth.rgb)] + [(SOURCE_LABELS[s], frames[s][run.key]) for s in sources]
    H, W = truth.rgb.shape[1:3]
    scale, label_w, head = 2, 130, 34
    canvas = Image.new("RGB", (label_w + len(steps) * W * scale, head + len(rows) * H * scale), (20, 20, 20))
    draw = ImageDraw.Draw(canvas)
    draw.text((4, 3), title, fill=(255, 255, 255))
    for c, i in enumerate(steps):
        draw.text((label_w + c * W * scale + 3, 19), f"step {i + 1}", fill=(200, 200, 200))
    for r, (name, imgs) in enumerate(rows):
        y = head + r * H * scale
        draw.text((4, y + 4), name, fill=(255, 255, 255))
        for c, i in enumerate(steps):
            canvas.paste(Image.fromarray(imgs[i]).resize((W * scale, H * scale), Image.NEAREST), (label_w + c * W * scale, y))
    canvas.save(path)


def write_curves(path: Path, runs: list[Run], scores: dict, sources: list[str], title: str) -> None:
    from .report import _plt

    plt = _plt()
    fig, axes = plt.subplots(3, 1, figsize=(8, 9), dpi=100, sharex=True)
    styles = {"latent": "C0-", "rgb": "C1-", "none": "C2-", "flat": "k:", "prev": "C7--", "start": "C5:", "codec": "C3-."}
    for ax, (metric, ylabel) in zip(axes, [("psnr", "PSNR vs truth (dB)"), ("edge_ratio", "edge-energy ratio"),
                                           ("layout_psnr", "layout PSNR 8x8 (dB)")]):
        for s in sources:
            if s not in styles:
                continue
            y = np.nanmean(np.stack([scores[s][r.key][metric] for r in runs]), 0)
            y = np.minimum(y, 60.0) if "psnr" in metric else y
            ax.plot(np.arange(1, len(y) + 1), y, styles[s], label=SOURCE_LABELS[s], linewidth=1.2)
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
    axes[1].axhline(1.0, color="grey", linewidth=0.8)
    axes[0].legend(fontsize=7, ncol=4)
    axes[0].set_title(title, fontsize=10)
    axes[-1].set_xlabel("step")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def command_line(args: SuiteArgs) -> str:
    return commandline.command_line("mirage-gym eval", args, QUICK, implied={"loops": SUITE_LOOPS})


def code_commit() -> str | None:
    """The checkout's commit (the explorer plans on the env's coverage: its
    trajectories follow the code), or None outside a git checkout."""
    import subprocess

    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _jsonable_scores(s: dict) -> dict:
    return {k: [None if not math.isfinite(x) else round(float(x), 4) for x in v] for k, v in s.items()}


# ------------------------------------------------------------------ main


def _revisit(args: SuiteArgs, explicit) -> dict:
    from . import consistency

    names = {f.name for f in fields(consistency.EvalArgs)}
    ev = consistency.EvalArgs(**{k: v for k, v in asdict(args).items() if k in names and k != "loops"})
    ev.loops = args.loops or REVISIT_LOOPS
    given = None if explicit is None else {k for k in explicit if k in names}
    if given is not None and args.loops:
        given.add("loops")
    return consistency.main(ev, given, prog="mirage-gym eval --mode revisit")


def main(args: SuiteArgs, explicit=None) -> dict:
    """Run the evaluation; ``explicit``: fields set on the command line (they win over --quick)."""
    if args.mode not in ("suite", "revisit"):
        raise SystemExit(f"unknown mode {args.mode!r}; choose suite or revisit")
    if args.mode == "revisit":
        return _revisit(args, explicit)
    args = apply_quick(args, explicit)
    if not args.loops:
        args.loops = SUITE_LOOPS
    for name, values, allowed in (("memory", args.memories, MEMORIES), ("part", args.parts, PARTS), ("policy", args.policies, POLICIES),
                                  ("trajectory", args.trajectories, TRAJECTORIES), ("c2st source", args.c2st, MEMORIES + BASELINES)):
        for v in values:
            if v not in allowed:
                raise SystemExit(f"unknown {name} {v!r}; choose from {' '.join(allowed)}")
    if not args.memories:
        raise SystemExit("--memories needs at least one memory (the first is the model)")
    torch.set_num_threads(args.threads)
    from .bench_setup import machine_info
    from .consistency import open_world_model

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    timings = {}
    wm, label = open_world_model(args)

    t = time.perf_counter()
    runs = plan_runs(args)
    cfg = _env_config(args, "oracle", "none")
    from ..envs.actions import MotionConfig
    from ..geometry import intrinsics_from_fov

    motion = MotionConfig(cfg.move_m, cfg.turn_deg, cfg.look_deg, cfg.max_pitch_deg)
    K = intrinsics_from_fov(cfg.fov_deg, args.obs_size, args.obs_size)
    truths = {r.key: render_truth(r, args, K, motion, cfg.fps) for r in runs}
    timings["plan_and_truth_s"] = time.perf_counter() - t
    n_explore = sum(r.part == "explore" for r in runs)
    if "explore" in args.parts and n_explore < args.explore_runs:
        print(f"  note: {args.explore_runs} explore runs asked, {n_explore} (room, policy) pairings exist: running those", flush=True)
    print(f"  planned {len(runs)} trajectories, {sum(len(r.actions) for r in runs)} steps each world "
          f"({timings['plan_and_truth_s']:.0f} s)", flush=True)

    frames: dict[str, dict] = {}
    for mem in args.memories:
        t = time.perf_counter()
        frames[mem] = rollout(args, wm, mem, runs, truths)
        timings[f"rollout_{mem}_s"] = time.perf_counter() - t
        print(f"  rolled out memory={mem} ({timings[f'rollout_{mem}_s']:.0f} s)", flush=True)
    t = time.perf_counter()
    from ..models.oracle import OracleWorldModel

    frames["oracle"] = rollout(args, OracleWorldModel(image_size=(args.obs_size, args.obs_size)), "none", runs, truths)
    base = {r.key: baseline_frames(truths[r.key], wm) for r in runs}
    for b in ("flat", "prev", "start", "codec"):
        frames[b] = {k: v[b] for k, v in base.items()}
    timings["baselines_s"] = time.perf_counter() - t

    t = time.perf_counter()
    sources = list(args.memories) + list(BASELINES)
    scores = {s: {r.key: score(frames[s][r.key], truths[r.key]) for r in runs} for s in sources}
    summary = summarise(runs, scores, truths, sources)
    drifts = drift(runs, scores, args.memories) if args.loops >= 2 else {}
    timings["scoring_s"] = time.perf_counter() - t
    t = time.perf_counter()
    c2 = run_c2st(args, runs, truths, frames) if args.c2st and args.c2st_steps > 0 else {}
    timings["c2st_s"] = time.perf_counter() - t

    files = {}
    if args.strips:
        t = time.perf_counter()
        for r in runs:
            p = out / f"sheet_{r.part}_{r.name}_{r.seed}.png"
            write_sheet(p, r, truths[r.key], frames, list(args.memories), f"{r.key}, {label} (truth over each memory's frames)")
            files[f"sheet_{r.part}_{r.name}_{r.seed}"] = str(p)
        for policy in args.policies:
            ex = [r for r in runs if r.part == "explore" and r.name == policy]
            if ex:
                p = out / f"curves_explore_{policy}.png"
                write_curves(p, ex, scores, sources, f"explore, {policy} policy: mean over rooms {[r.seed for r in ex]} ({label})")
                files[f"curves_explore_{policy}"] = str(p)
        timings["pictures_s"] = time.perf_counter() - t

    took = time.perf_counter() - t0
    tables = headline_tables(summary, sources, label)
    details = [split_table(summary, g, sources) for g in summary]
    print()
    for tb in tables:
        print(tb.text() + "\n")
    if c2:
        print(c2st_table(c2).text() + "\n")
    if drifts:
        print("return-view drift (dB per loop): " + ", ".join(f"{m} {fmt(v)}" for m, v in drifts.items()) + "\n")
    print(f"eval took {took / 60:.1f} min ({took:.0f} s)")

    command = command_line(args)
    machine = machine_info(args.threads)
    result = {"mode": "suite", "args": asdict(args), "command": command, "machine": machine, "world_model": label, "commit": code_commit(),
              "date": datetime.datetime.now().isoformat(timespec="seconds"), "seconds": took, "timings_s": timings,
              "summary": summary, "c2st": c2, "drift_db_per_loop": drifts,
              "runs": [{"key": r.key, "part": r.part, "name": r.name, "seed": r.seed, "start_pose": r.pose,
                        "actions": [int(a) for a in r.actions], "loop_len": r.loop_len,
                        "seen_fraction": [round(float(x), 4) for x in truths[r.key].seen.mean((1, 2))],
                        "scores": {s: _jsonable_scores(scores[s][r.key]) for s in sources}} for r in runs]}
    files["json"], files["markdown"] = str(out / "eval.json"), str(out / "results.md")
    result["files"] = files
    write_json(out / "eval.json", result)
    md = ["## Evaluation: every frame an agent sees", "", "```", command, "```", "",
          f"Machine: {machine['cpu']}, {machine['logical_cores']} logical cores; torch {machine['torch']}, {args.threads} thread(s). "
          f"Run {result['date']}{', commit ' + result['commit'] if result['commit'] else ''}, took {took / 60:.1f} min. Rooms: {', '.join(str(s) for s in args.seeds)}; explore: "
          + ", ".join(f"{r.name} in {r.seed}" for r in runs if r.part == "explore") + f". Seed {args.seed}.", ""]
    md += [tb.markdown() for tb in tables]
    if c2:
        md.append(c2st_table(c2).markdown())
    if drifts:
        md += ["Return-view drift (dB per loop, last loop vs first): " + ", ".join(f"{m} {fmt(v)}" for m, v in drifts.items()), ""]
    md += ["### Every figure, split into pixels seen in the start frame / not", ""] + [tb.markdown(4) for tb in details]
    pngs = [Path(v).name for k, v in files.items() if k.startswith(("sheet_", "curves_"))]
    if pngs:
        md += ["Pictures: " + ", ".join(f"`{s}`" for s in pngs), ""]
    (out / "results.md").write_text("\n".join(md))
    print("wrote " + ", ".join([files["json"], files["markdown"]]) + (f" and {len(pngs)} PNGs" if pngs else ""))
    return result
