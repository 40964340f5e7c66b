"""``mirage-gym collect``: roll out a policy for many episodes and record them.

    mirage-gym collect --episodes 100 --policy explorer --format minari --out runs/data
    mirage-gym collect --episodes 100 --format npz,mp4 --workers 2 --world-model oracle
    mirage-gym collect --episodes 10000 --format minari --ray --ray-address auto    # a Ray cluster

Each episode is an independent job (episode ``i`` resets with seed
``seed + i``), run in this process (``--workers 1``), in a pool of worker
processes (``--workers W``), or as Ray tasks (``--ray``). A job returns its
files as bytes; only this driver writes to ``--out``, so workers on other
machines need no shared file system. Layout of ``--out``::

    manifest.json            config, per-episode stats, "complete": true
    npz/episode_000000.npz   (--format npz)   see mirage_gym.data.npz
    mp4/episode_000000.mp4   (--format mp4)   + episode_000000.json (actions, poses)
    minari/<dataset_id>/     (--format minari) load with mirage_gym.data.minari_io.load(out)
                             or MINARI_DATASETS_PATH=<out>/minari minari.load_dataset(id)

While collecting, finished episodes live in ``<out>/.partial/`` (each file
written to a temp name and renamed, with a manifest of finished ids). Run
the same command again after a failure or Ctrl-C and it resumes where it
stopped. Only when every episode is in are the files moved into place and
the Minari dataset assembled, so ``--out`` never holds a partial dataset.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FORMATS = ("npz", "mp4", "minari")
LOCK_NAME = ".collect.lock"


@dataclass
class CollectArgs:
    env_id: str = "MirageRoom-v0"
    episodes: int = 10
    policy: str = "explorer"  # explorer | explorer:leave_and_return | random | path/to/sb3_model.zip
    format: str = "npz"  # npz | mp4 | minari, or several: npz,mp4
    out: str = "runs/data"
    workers: int = 1  # processes on this machine (1: run in this process)
    ray: bool = False  # run episodes as Ray tasks
    ray_address: str = ""  # "" starts a local Ray instance; "auto" or host:port joins a cluster
    seed: int = 0  # episode i resets with seed + i
    world_model: str = ""  # override the id's world model: oracle | tiny | a path ("" = the id's)
    obs_size: int = 0  # override the frame size (0 = the id's)
    frames_per_step: int = 0  # override (0 = the id's)
    max_episode_steps: int = 0  # override the episode length (0 = the id's)
    scene_seeds: str = ""  # train | eval ("" = the id's: train rooms)
    memory_obs: bool = False  # also record obs["memory"] (warped latent + mask at the pose)
    dataset_id: str = ""  # Minari id ("" = mirage_gym/<env name>/<policy>-v0)
    video_scale: int = 4  # mp4: nearest-neighbour upscale factor
    threads: int = 1  # torch threads per worker
    overwrite: bool = False  # discard an existing or unfinished collection in --out


class CollectError(RuntimeError):
    """Collection stopped; finished episodes are kept for resuming."""


@dataclass
class EpisodeJob:
    episode_id: int
    seed: int
    env_id: str
    env_kwargs: dict
    max_episode_steps: int | None
    policy: str
    formats: tuple
    video_scale: int = 4
    extra_meta: dict = field(default_factory=dict)


# ---------------------------------------------------------------------- the job (runs in workers)

_WORKER_CACHE: dict = {}
_WORKER_TMP: list = []


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(max(1, int(threads)))
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    _exit_with_parent()


def _exit_with_parent(poll_s: float = 0.5) -> None:
    """End this worker when the driver that started it is gone (kill -9 or
    SIGTERM of the driver left both workers and the resource tracker alive):
    a daemon thread sees the parent change (the orphan is re-parented) and exits."""
    import threading

    if any(t.name == "mirage-exit-with-parent" for t in threading.enumerate()):
        return  # one watch per process (Ray reuses its workers for many tasks)
    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(poll_s)
        os._exit(1)

    threading.Thread(target=watch, name="mirage-exit-with-parent", daemon=True).start()


def _worker_tmp() -> Path:
    if not _WORKER_TMP:
        import atexit

        path = Path(tempfile.mkdtemp(prefix="mirage-collect-"))
        atexit.register(shutil.rmtree, path, ignore_errors=True)
        _WORKER_TMP.append(path)
    return _WORKER_TMP[0]


def _env_for(job: EpisodeJob, cache: dict):
    import gymnasium as gym

    import mirage_gym  # noqa: F401  (registers the ids)

    key = (job.env_id, json.dumps(job.env_kwargs, sort_keys=True), job.max_episode_steps, "minari" in job.formats)
    if cache.get("key") != key:
        close_cache(cache)
        kwargs = dict(job.env_kwargs)
        if job.max_episode_steps:
            kwargs["max_episode_steps"] = job.max_episode_steps
        env = gym.make(job.env_id, **kwargs)
        if env.spec.max_episode_steps is None:
            env.close()
            raise ValueError(f"{job.env_id} has no episode limit; pass --max-episode-steps")
        if "minari" in job.formats:
            from .minari_io import make_collector

            env = make_collector(env)
        cache.update(key=key, env=env, policies={})
    return cache["env"]


def close_cache(cache: dict) -> None:
    env = cache.pop("env", None)
    if env is not None:
        env.close()
    cache.clear()


def run_job(job: EpisodeJob, cache: dict | None = None) -> dict:
    """Roll out one episode and return its files as bytes: ``{"files": {relpath: bytes}, ...stats}``."""
    from ..agents import load_policy
    from .minari_io import minari_root
    from .records import EpisodeRecord

    cache = _WORKER_CACHE if cache is None else cache
    start = time.perf_counter()
    root = _worker_tmp()
    with minari_root(root):
        env = _env_for(job, cache)
        policies = cache["policies"]
        if job.policy not in policies:
            policies[job.policy] = load_policy(job.policy, env, seed=job.seed)
        policy = policies[job.policy]
        if hasattr(policy, "rng"):
            policy.rng = np.random.default_rng(job.seed)
        policy.reset()
        obs, info = env.reset(seed=job.seed)
        sim = env.unwrapped.sim
        meta = {
            "episode_id": job.episode_id, "seed": job.seed, "env_id": job.env_id,
            "env_kwargs": {k: v for k, v in env.spec.kwargs.items()}, "max_episode_steps": env.spec.max_episode_steps,
            "policy": job.policy, "scene_seed": info.get("scene_seed"),
            "world_model": sim.world_model.name, "frames_per_step": sim.cfg.frames_per_step, "fps": sim.cfg.fps,
            **job.extra_meta,
        }
        record = EpisodeRecord(meta, record_frames=bool({"npz", "mp4"} & set(job.formats)))
        record.add_observation(obs, info)
        while True:
            action = policy.act(obs)
            obs, reward, terminated, truncated, info = env.step(action)
            record.add_step(action, obs, reward, terminated, truncated, info)
            if terminated or truncated:
                break
        name = f"episode_{job.episode_id:06d}"
        files = {}
        if "npz" in job.formats:
            from . import npz

            files[f"npz/{name}.npz"] = npz.episode_bytes(record)
        if "mp4" in job.formats:
            from . import mp4

            files[f"mp4/{name}.mp4"] = mp4.episode_bytes(record, fps=sim.cfg.fps, scale=job.video_scale)
            files[f"mp4/{name}.json"] = mp4.sidecar_bytes(record)
        if "minari" in job.formats:
            from .minari_io import shard_bytes

            files[f"minari_shards/{name}.tar"] = shard_bytes(env, job.episode_id, root, algorithm=job.policy)
    return {"episode_id": job.episode_id, "files": files, "steps": record.num_steps,
            "return": round(record.episode_return, 6), "coverage": round(float(info.get("coverage", 0.0)), 6),
            "scene_seed": meta["scene_seed"], "seconds": round(time.perf_counter() - start, 3)}


# ---------------------------------------------------------------------- the driver

def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_json(path: Path, obj) -> None:
    _atomic_write(path, json.dumps(obj, indent=1).encode())


def _config(args: CollectArgs, formats: tuple) -> dict:
    """What defines a collection (resuming requires the same)."""
    import gymnasium as gym

    import mirage_gym  # noqa: F401

    try:
        spec = gym.spec(args.env_id)
    except gym.error.Error as err:
        mirage_ids = sorted(k for k in gym.registry if k.startswith("MirageRoom"))
        raise CollectError(f"--env-id {args.env_id!r} is not a registered environment ({err}); "
                           f"use one of {', '.join(mirage_ids)}") from None
    env_kwargs = dict(spec.kwargs)
    overrides = {"world_model": args.world_model or None, "obs_size": args.obs_size or None,
                 "frames_per_step": args.frames_per_step or None, "scene_seeds": args.scene_seeds or None}
    env_kwargs.update({k: v for k, v in overrides.items() if v is not None})
    if args.memory_obs:
        env_kwargs["memory_obs"] = True
    max_steps = args.max_episode_steps or spec.max_episode_steps
    policy_name = Path(args.policy).stem if args.policy.endswith(".zip") else args.policy.replace(":", "_")
    env_name = args.env_id.split("/")[-1].rsplit("-v", 1)[0]
    dataset_id = args.dataset_id or f"mirage_gym/{env_name}/{policy_name}-v0"
    return {"env_id": args.env_id, "env_kwargs": env_kwargs, "max_episode_steps": max_steps, "policy": args.policy,
            "seed": args.seed, "formats": list(formats), "dataset_id": dataset_id, "video_scale": args.video_scale}


def _check_out(out: Path) -> None:
    """--out must be a folder (existing or creatable) that this process can write to."""
    if out.exists() and not out.is_dir():
        raise CollectError(f"--out {out} is a file, not a directory; pass a folder for the collection (it is created if missing)")
    probe = out
    while not probe.exists():
        probe = probe.parent
    try:  # a real write: permission bits do not tell for root, immutable folders or read-only mounts
        fd, name = tempfile.mkstemp(prefix=".write-probe-", dir=probe)
        os.close(fd)
        os.unlink(name)
    except OSError as err:
        raise CollectError(f"cannot write to {probe} ({err.strerror or err}: not writable), so --out {out} cannot be "
                           "created or filled; pick an --out in a folder you can write to") from None


@contextmanager
def _exclusive(out: Path):
    """Hold ``out/.collect.lock`` for the whole run: a second collect into the
    same --out stops at once with a clear message instead of both failing on
    the shared work folders. The lock dies with its process (flock)."""
    import fcntl

    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK_NAME
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise CollectError(f"another `mirage-gym collect` is writing to --out {out} right now; wait for it to end, "
                               "then rerun the same command (it resumes, or says there is nothing to do)") from None
        try:  # the file we locked must still be the one at the path (a finishing run unlinks it)
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        yield
    finally:
        path.unlink(missing_ok=True)
        os.close(fd)


@contextmanager
def _sigterm_as_interrupt():
    """SIGTERM stops a collection the way Ctrl-C does (workers shut down,
    finished episodes kept, the resume hint printed) instead of killing the driver outright."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt("SIGTERM")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _parse_formats(spec: str) -> tuple:
    formats = tuple(dict.fromkeys(f.strip() for f in spec.split(",") if f.strip()))
    bad = [f for f in formats if f not in FORMATS]
    if not formats or bad:
        raise ValueError(f"--format must be one or more of {FORMATS} (comma-separated), got {spec!r}")
    return formats


def _episode_files(name: str, formats) -> list[str]:
    files = []
    if "npz" in formats:
        files.append(f"npz/{name}.npz")
    if "mp4" in formats:
        files += [f"mp4/{name}.mp4", f"mp4/{name}.json"]
    if "minari" in formats:
        files.append(f"minari_shards/{name}.tar")
    return files


def _clear(out: Path) -> None:
    for sub in (".partial", "npz", "mp4", "minari"):
        shutil.rmtree(out / sub, ignore_errors=True)
    (out / "manifest.json").unlink(missing_ok=True)


def collect(args: CollectArgs) -> dict:
    """Run the collection described by ``args``; returns the summary (also in manifest.json)."""
    formats = _parse_formats(args.format)
    if args.episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {args.episodes}")
    if args.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {args.workers}")
    if args.policy not in ("explorer", "random") and not args.policy.startswith("explorer:") and not Path(args.policy).is_file():
        raise ValueError(f"--policy must be explorer, explorer:leave_and_return, random or an existing SB3 .zip, got {args.policy!r}")
    out = Path(args.out).expanduser().absolute()  # Minari doubles a relative path during assembly
    _check_out(out)
    config = _config(args, formats)
    if config["env_kwargs"].get("world_model") == "tiny":
        from ..models.tiny import weights_available

        if not weights_available():
            raise CollectError("the embedded world model's weights are not in this install; "
                               "pass --world-model oracle (exact renderer) or train them (`mirage-gym train`)")
    created = not out.exists()
    try:
        with _exclusive(out), _sigterm_as_interrupt():
            return _collect(args, out, formats, config)
    finally:
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # a run that failed before writing anything leaves no empty folder


def _collect(args: CollectArgs, out: Path, formats: tuple, config: dict) -> dict:
    if args.overwrite:
        _clear(out)
    final_manifest = out / "manifest.json"
    if final_manifest.is_file():
        done = json.loads(final_manifest.read_text())
        if done.get("config") == config and done.get("episodes", 0) >= args.episodes:
            print(f"{out} already holds this collection ({done['episodes']} episodes); nothing to do")
            return done
        raise CollectError(f"{out} already holds a different or smaller finished collection; "
                           "pick another --out or pass --overwrite")
    partial = out / ".partial"
    manifest_path = partial / "manifest.json"
    state = {"config": config, "done": {}}
    if manifest_path.is_file():
        state = json.loads(manifest_path.read_text())
        if state.get("config") != config:
            raise CollectError(f"{partial} holds an unfinished collection with a different configuration:\n"
                               f"  there: {json.dumps(state.get('config'))}\n  now:   {json.dumps(config)}\n"
                               "rerun it with the same options, or pass --overwrite to discard it")
    for stale in partial.rglob(".*.tmp") if partial.exists() else []:
        stale.unlink()  # a write interrupted by a crash
    # an episode's files are in .partial/, or already moved into place by a finishing run that then failed
    done = {int(k): v for k, v in state["done"].items() if int(k) < args.episodes
            and all((partial / f).is_file() or (not f.startswith("minari") and (out / f).is_file())
                    for f in _episode_files(f"episode_{int(k):06d}", formats))}
    todo = [i for i in range(args.episodes) if i not in done]
    env_kwargs = config["env_kwargs"]
    jobs = [EpisodeJob(i, args.seed + i, args.env_id, env_kwargs, config["max_episode_steps"], args.policy, formats,
                       args.video_scale) for i in todo]

    from tqdm import tqdm

    mode = "ray" if args.ray else f"{args.workers} worker{'s' if args.workers > 1 else ''}" if args.workers > 1 else "in-process"
    bar = tqdm(total=args.episodes, initial=len(done), desc=f"collect ({mode})", unit="ep", dynamic_ncols=True)
    start = time.perf_counter()
    new = 0

    def save(result: dict) -> None:
        nonlocal new
        for rel, data in result.pop("files").items():
            _atomic_write(partial / rel, data)
        done[result["episode_id"]] = result
        state["done"] = {str(k): v for k, v in sorted(done.items())}
        _write_json(manifest_path, state)
        new += 1
        bar.update(1)
        bar.set_postfix(ep_per_min=f"{60 * new / max(1e-9, time.perf_counter() - start):.1f}")

    partial.mkdir(parents=True, exist_ok=True)
    _write_json(manifest_path, state)
    try:
        if jobs:
            if args.ray:
                _run_ray(jobs, args, save)
            elif args.workers > 1:
                _run_pool(jobs, args, save)
            else:
                cache: dict = {}
                try:
                    for job in jobs:
                        save(run_job(job, cache))
                finally:
                    close_cache(cache)
    except BaseException as err:
        bar.close()
        for stale in partial.rglob(".*.tmp"):
            stale.unlink()
        if not done:  # nothing to resume from
            shutil.rmtree(partial, ignore_errors=True)
            raise CollectError(f"collection failed before any episode finished ({type(err).__name__}: {err})") from err
        raise CollectError(f"collection stopped after {len(done)}/{args.episodes} episodes ({type(err).__name__}: {err}); "
                           f"finished episodes are kept in {partial}: rerun the same command to resume") from err
    bar.close()
    elapsed = time.perf_counter() - start
    try:
        summary = _finalise(out, partial, state, config, formats, args, done)
        summary.update({
            "episodes_collected_now": new, "seconds": round(elapsed, 2), "mode": mode,
            "episodes_per_min": round(60 * new / elapsed, 2) if new and elapsed > 0 else None,
            "steps_per_s": round(sum(done[j.episode_id]["steps"] for j in jobs) / elapsed, 1) if new else None,
        })
        _write_json(final_manifest, summary)
    except BaseException as err:  # a full disk, Ctrl-C: every finished episode stays resumable
        for stale in partial.rglob(".*.tmp"):
            stale.unlink()
        raise CollectError(f"all {len(done)} episodes finished but putting the collection in place failed "
                           f"({type(err).__name__}: {err}); they are kept in {partial}: free disk space (or fix the cause) "
                           "and rerun the same command to finish without collecting them again") from err
    shutil.rmtree(partial, ignore_errors=True)  # only now: the final manifest is written
    return summary


def _finalise(out: Path, partial: Path, state: dict, config: dict, formats, args: CollectArgs, done: dict) -> dict:
    """Assemble the Minari dataset (from the shards in .partial/), then move the
    finished files into place. .partial/ stays until the caller has written the
    final manifest, so a failure anywhere here loses no episode."""
    ids = sorted(done)
    dataset_path = None
    if "minari" in formats:
        from . import minari_io

        work = partial / "assemble"
        shutil.rmtree(work, ignore_errors=True)
        folders = []
        for i in ids:
            folders.append(minari_io.extract_shard((partial / f"minari_shards/episode_{i:06d}.tar").read_bytes(),
                                                   work / f"episode_{i:06d}"))
        metadata = {
            "algorithm_name": config["policy"],
            "code_permalink": "https://github.com/mirage-gym/mirage_gym",
            "description": (f"{len(ids)} episodes of {config['env_id']} ({config['env_kwargs'].get('world_model')} world) "
                            f"by policy {config['policy']!r}, episode i reset with seed {config['seed']} + i. "
                            f"Infos hold {', '.join(minari_io.INFO_KEYS)}."),
            "requirements": ["mirage_gym"],
        }
        dataset_path = minari_io.assemble(folders, out / "minari" / config["dataset_id"], config["dataset_id"], metadata)
        shutil.rmtree(work, ignore_errors=True)
    for sub in ("npz", "mp4"):
        if sub in formats:
            (out / sub).mkdir(parents=True, exist_ok=True)
            for f in sorted((partial / sub).glob("episode_*")):
                os.replace(f, out / sub / f.name)
    returns = [done[i]["return"] for i in ids]
    return {
        "complete": True, "config": config, "episodes": len(ids), "formats": list(formats),
        "return_mean": round(float(np.mean(returns)), 4), "steps_total": int(sum(done[i]["steps"] for i in ids)),
        "minari_dataset": str(dataset_path) if dataset_path else None,
        "per_episode": [done[i] for i in ids],
    }


def _run_pool(jobs, args: CollectArgs, save) -> None:
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    ctx = mp.get_context("spawn")  # torch and fork do not mix
    with ProcessPoolExecutor(max_workers=args.workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(args.threads,)) as pool:
        pending = {pool.submit(run_job, job) for job in jobs}
        try:
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    save(fut.result())
        except BaseException:
            for fut in pending:
                fut.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def _run_ray(jobs, args: CollectArgs, save) -> None:
    try:
        import ray
    except ImportError:
        raise CollectError('--ray needs Ray: pip install "mirage_gym[ray]" (or pip install ray)') from None
    started = False
    if not ray.is_initialized():
        if args.ray_address:
            ray.init(address=args.ray_address, log_to_driver=False)
        else:
            # "local": a new instance of this machine, never a cluster that ray.init() would otherwise
            # find through RAY_ADDRESS or /tmp/ray (joining one is what --ray-address is for)
            ray.init(address="local", num_cpus=args.workers if args.workers > 1 else None, include_dashboard=False,
                     log_to_driver=False)
        started = True
    try:
        task = ray.remote(num_cpus=1)(_ray_job)
        pending = [task.remote(job, args.threads) for job in jobs]
        try:
            while pending:
                finished, pending = ray.wait(pending, num_returns=1)
                save(ray.get(finished[0]))
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
    finally:
        if started:
            ray.shutdown()


def _ray_job(job: EpisodeJob, threads: int) -> dict:
    _init_worker(threads)
    return run_job(job)


def main(args: CollectArgs) -> dict:
    summary = collect(args)
    short = {k: summary.get(k) for k in ("episodes", "episodes_collected_now", "mode", "seconds", "episodes_per_min",
                                          "steps_per_s", "return_mean", "formats", "minari_dataset")}
    short["out"] = str(Path(args.out))
    for k, v in short.items():
        print(f"{k:>22}: {v}")
    return summary
