"""Bad input, tried systematically across the public surface.

One table, one parametrized test. Each row is

    (case id, subject, call, expected exception type, regex on the message)

``subject`` names the object the call is made on; the test builds a fresh
one, fingerprints its data, makes the bad call, and then checks three things:

1. the call raises ``expected`` and the message matches ``regex`` (the
   regexes ask for the problem *and* the fix, not just a keyword);
2. the subject's data is bit-for-bit unchanged (env snapshot incl. both
   RNG states, memory state, registry, files on disk);
3. the subject is still usable: the env's next step equals the next step of
   an env that never saw the bad call, a memory still takes a good write,
   gym.make still works, an existing dataset still loads.

While a case runs, ``torch.load``, ``pickle.load`` and ``pickle.loads`` fail
the test if anything calls them (nothing may ever be unpickled).

"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import pickle
import re
import shutil
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import numpy as np
import pytest
import torch

import mirage_gym  # noqa: F401  (registers the ids)
from mirage_gym import Action
from mirage_gym.memory import LatentSpatialMemory
from mirage_gym.models import load_world_model
from mirage_gym.registration import CONFIG_DIR, register_envs

ORACLE = dict(world_model="oracle", obs_size=32, frames_per_step=1)
SCENE = {"scene_seed": 3}
C, h, w = 48, 8, 8  # the oracle's latent at obs_size 32 (pixel-unshuffle, downsample 4)


# ============================================================== fingerprints


def digest(obj) -> str:
    """A hash of nested dicts/lists/tensors/arrays/scalars (bit-exact)."""
    hasher = hashlib.sha256()

    def feed(x):
        if isinstance(x, dict):
            hasher.update(b"{")
            for k in sorted(x, key=str):
                hasher.update(repr(k).encode())
                feed(x[k])
            hasher.update(b"}")
        elif isinstance(x, (list, tuple)):
            hasher.update(b"[")
            for v in x:
                feed(v)
            hasher.update(b"]")
        elif isinstance(x, torch.Tensor):
            t = x.detach().cpu().contiguous()
            hasher.update(f"T{t.dtype}{tuple(t.shape)}".encode())
            hasher.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        elif isinstance(x, np.ndarray):
            hasher.update(f"A{x.dtype}{x.shape}".encode())
            hasher.update(np.ascontiguousarray(x).tobytes())
        else:
            hasher.update(repr(x).encode())

    feed(obj)
    return hasher.hexdigest()


def tree_digest(root: Path) -> dict:
    """{relative path: sha256} of every file under ``root`` (or of root itself)."""
    root = Path(root)
    if root.is_file():
        return {".": hashlib.sha256(root.read_bytes()).hexdigest()}
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(root.rglob("*"))}


# ================================================================= subjects


@dataclass
class Subject:
    obj: Any
    fingerprint: Callable[[], Any]
    check_usable: Callable[[], None]


def _env_fingerprint(env):
    # (not the TimeLimit counter: Gymnasium's TimeLimit zeroes it before calling reset(), even one that fails)
    return digest({"state": env.unwrapped.get_state(), "np_random": env.unwrapped.np_random.bit_generator.state})


_REFERENCE: dict = {}


def _reference(key, build):
    if key not in _REFERENCE:
        _REFERENCE[key] = build()
    return _REFERENCE[key]


def _env_subject(tmp_path, action_type="discrete"):
    def fresh():
        env = gym.make("MirageRoom-v0", action_type=action_type, **ORACLE)
        env.reset(seed=0, options=SCENE)
        env.step(Action.FORWARD if action_type == "discrete" else np.array([1, 0, 0, 0], np.float32))
        return env

    left = Action.TURN_LEFT if action_type == "discrete" else np.array([0, 0, 1, 0], np.float32)

    def build_reference():
        env = fresh()
        obs, *_ = env.step(left)
        return obs

    env = fresh()

    def usable():
        want = _reference(("env", action_type), build_reference)
        obs, *_ = env.step(left)
        assert env.observation_space.contains(obs)
        assert np.array_equal(obs["rgb"], want["rgb"]) and np.array_equal(obs["pose"], want["pose"]), \
            "the step after a rejected call differs from the step of an env that never saw it"

    return Subject(env, lambda: _env_fingerprint(env), usable)


def _vec_subject(tmp_path):
    def fresh():
        vec = gym.make_vec("MirageRoom-v0", num_envs=2, vectorization_mode="vector_entry_point", **ORACLE)
        vec.reset(seed=[0, 1], options=SCENE)
        vec.step([Action.FORWARD, Action.TURN_LEFT])
        return vec

    def build_reference():
        obs, *_ = fresh().step([Action.TURN_LEFT, Action.FORWARD])
        return obs

    vec = fresh()

    def fingerprint():
        return digest({"states": [vec.get_state(i) for i in range(2)], "rngs": [r.bit_generator.state for r in vec._rngs]})

    def usable():
        want = _reference("vec", build_reference)
        obs, *_ = vec.step([Action.TURN_LEFT, Action.FORWARD])
        assert np.array_equal(obs["rgb"], want["rgb"]) and np.array_equal(obs["pose"], want["pose"])

    return Subject(vec, fingerprint, usable)


def _memory_subject(tmp_path):
    from mirage_gym.geometry import intrinsics_from_fov

    mem = LatentSpatialMemory(voxel_size=0.1, capacity=1000)
    K = intrinsics_from_fov(90.0, h, w)
    mem.write(torch.randn(C, h, w, generator=torch.Generator().manual_seed(0)), torch.full((h, w), 2.0), K, torch.eye(4))

    def usable():
        mem.write(torch.randn(C, h, w), torch.full((h, w), 3.0), K, torch.eye(4))
        view = mem.read(K, torch.eye(4), h, w)
        assert view.latent.shape == (C, h, w) and bool(torch.isfinite(view.latent).all())

    return Subject(mem, lambda: digest(mem.state_dict()), usable)


def _registry_fingerprint():
    return digest({"ids": sorted(gym.registry), "kwargs": dict(gym.spec("MirageRoom-v0").kwargs)})


def _make_subject(tmp_path):
    def usable():
        env = gym.make("MirageRoom-v0", **ORACLE)
        assert env.unwrapped.config.obs_size == 32

    return Subject(None, _registry_fingerprint, usable)


def _yaml_subject(tmp_path):
    folder = tmp_path / "configs"
    folder.mkdir()

    def usable():
        assert register_envs(CONFIG_DIR) == []  # the package's own ids are intact and already in
        assert gym.make("MirageRoomOracle64-v0", obs_size=32).unwrapped.config.frames_per_step == 1

    return Subject(folder, _registry_fingerprint, usable)


def _weights_subject(tmp_path):
    folder = tmp_path / "weights"
    folder.mkdir()

    def usable():
        assert load_world_model("oracle", image_size=(32, 32)).latent_channels == C

    return Subject(folder, lambda: tree_digest(tmp_path), usable)


_FINISHED: dict = {}


def _finished_collection(tmp_path_factory) -> Path:
    if "path" not in _FINISHED:
        from mirage_gym.data import CollectArgs, collect_dataset

        out = tmp_path_factory.mktemp("finished") / "data"
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            collect_dataset(CollectArgs(out=str(out), **COLLECT_ARGS))
        _FINISHED["path"] = out
    return _FINISHED["path"]


COLLECT_ARGS = dict(env_id="MirageRoomOracle64-v0", world_model="oracle", obs_size=32, max_episode_steps=3, episodes=1,
                    format="npz")
COLLECT_FLAGS = ["collect", "--env-id", "MirageRoomOracle64-v0", "--world-model", "oracle", "--obs-size", "32",
                 "--max-episode-steps", "3", "--episodes", "1", "--format", "npz"]


def _cli_subject(tmp_path, tmp_path_factory):
    pytest.importorskip("mirage_gym.data.collect")
    out = tmp_path / "data"
    shutil.copytree(_finished_collection(tmp_path_factory), out)

    def usable():
        from mirage_gym.data import npz

        assert [p.name for p in npz.episode_paths(out)] == ["episode_000000.npz"]
        assert npz.load_episode(npz.episode_paths(out)[0])["rgb"].shape == (4, 32, 32, 3)
        run_cli(COLLECT_FLAGS + ["--out", str(out)])  # the same command again: finished, nothing to do

    return Subject(out, lambda: tree_digest(tmp_path), usable)


SUBJECTS = {
    "env": _env_subject,
    "cont_env": lambda tmp: _env_subject(tmp, "continuous"),
    "vec": _vec_subject,
    "memory": _memory_subject,
    "make": _make_subject,
    "yaml": _yaml_subject,
    "weights": _weights_subject,
    "cli": _cli_subject,  # (built with tmp_path_factory too: the finished dataset is made once per run)
}


# ==================================================================== helpers


class CliFailed(Exception):
    """``mirage-gym`` exited non-zero; the message is what it printed to stderr."""


def run_cli(argv):
    from mirage_gym.cli import main

    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            rc = main([str(a) for a in argv])
        except SystemExit as e:  # argparse
            rc = e.code
    if rc != 0:
        raise CliFailed(err.getvalue())
    return out.getvalue()


def other_state(**kw):
    """A snapshot from a differently configured env (a foreign state)."""
    env = gym.make("MirageRoom-v0", **{**ORACLE, **kw})
    env.reset(seed=7, options={"scene_seed": 5})
    env.step(Action.TURN_RIGHT)
    return env.unwrapped.get_state()


def own_state(env, **changes):
    state = env.unwrapped.get_state()
    for key, value in changes.items():
        state[key] = value(state[key]) if callable(value) else value
    return state


def drop(key):
    def f(state):
        return {k: v for k, v in state.items() if k != key}
    return f


def set_foreign_then_corrupt(env):
    """A snapshot of another room whose last field is corrupt: restoring it must
    fail as a whole, not leave the env in the other room with this room's memory."""
    state = other_state()
    state["torch_rng"] = torch.zeros(3, dtype=torch.uint8)
    env.unwrapped.set_state(state)


def pose_free_in_first_room_only(vec):
    """reset(options={'pose': P}) with P free in sub-env 0's next room but not in
    sub-env 1's: sub-env 0 resets fine, sub-env 1 fails; the vector env must roll back."""
    from mirage_gym.scenes import HELD_OUT_SEED_START, ProceduralRoom

    rooms = []
    for rng in vec._rngs:  # the rooms the next reset will draw (scene_seeds="train")
        probe = np.random.default_rng()
        probe.bit_generator.state = rng.bit_generator.state
        rooms.append(ProceduralRoom(int(probe.integers(0, HELD_OUT_SEED_START))))
    grid = [(x, y) for x in np.linspace(-6, 6, 49) for y in np.linspace(-6, 6, 49)]
    point = next((x, y) for x, y in grid if rooms[0].is_free(np.array([x, y, rooms[0].eye_height]))
                 and not rooms[1].is_free(np.array([x, y, rooms[1].eye_height])))
    vec.reset(options={"pose": [float(point[0]), float(point[1]), 0.0]})


def write_yaml(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def yaml_files(text, second=None):
    """Setup of a YAML case: the files (input, not data); the call then registers the folder."""
    def setup(folder):
        write_yaml(folder, "A-v0.yaml", text)
        if second is not None:
            write_yaml(folder, "B-v0.yaml", second)
    return setup


GOOD_YAML = "id: HardeningGood-v0\nmax_episode_steps: 10\nkwargs:\n  world_model: oracle\n  obs_size: 32\n"


EMPTY_SAFETENSORS = b"\x02\x00\x00\x00\x00\x00\x00\x00{}"  # a valid safetensors file holding no tensor


def tiny_layout(folder: Path, extra: dict | None = None, marker='{"kind": "tiny", "config": {}}'):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "world_model.json").write_text(marker)
    for sub in ("vae", "denoiser", "geometry"):
        (folder / sub).mkdir(exist_ok=True)
        (folder / sub / "config.json").write_text("{}")
        (folder / sub / "diffusion_pytorch_model.safetensors").write_bytes(EMPTY_SAFETENSORS)
    for rel, data in (extra or {}).items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    return folder


def wan_layout(folder: Path, extra: dict | None = None, drop_parts=()):
    folder.mkdir(parents=True, exist_ok=True)
    for sub in ("vae", "transformer"):
        if sub in drop_parts:
            continue
        (folder / sub).mkdir(exist_ok=True)
        (folder / sub / "config.json").write_text("{}")
        (folder / sub / "diffusion_pytorch_model.safetensors").write_bytes(b"\0" * 16)
    (folder / "scheduler").mkdir(exist_ok=True)
    (folder / "scheduler" / "scheduler_config.json").write_text('{"_class_name": "UniPCMultistepScheduler"}')
    for rel, data in (extra or {}).items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    return folder


EVIL = pickle.dumps(print)  # a real pickle; opening it with torch.load/pickle.load would be the bug


@contextlib.contextmanager
def read_only(path: Path):
    """Make ``path`` unwritable, also for root (chmod alone does not stop root)."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o555)
    immutable = False
    if os.access(path, os.W_OK) and shutil.which("chattr"):
        immutable = subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode == 0
    try:
        probe = path / ".probe"
        try:
            probe.touch()
            probe.unlink()
            pytest.skip("cannot make a directory read-only here (root without chattr)")
        except OSError:
            pass
        yield path
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(path)], capture_output=True)
        path.chmod(0o755)


# ====================================================================== table

E = pytest.param


def case(case_id, subject, call, exc, match, setup=None, xfail: str | None = None, skip: str | None = None):
    """One row. ``setup(subject.obj)`` prepares the input (files to load, ...)
    before the subject is fingerprinted; ``call(subject.obj)`` must raise."""
    marks = [pytest.mark.xfail(reason=xfail, strict=False)] if xfail else []
    if skip:
        marks.append(pytest.mark.skip(reason=skip))
    return E(subject, setup, call, exc, match, id=f"{subject}-{case_id}", marks=marks)


def mem_write(**bad):
    """A write into the env's own memory with one argument replaced."""
    def call(env):
        sim = env.unwrapped.sim
        args = dict(latent=torch.randn(C, h, w), depth=torch.full((h, w), 2.0), K=sim.K_latent, c2w=torch.eye(4),
                    static_mask=None)
        args.update(bad)
        env.unwrapped.memory.write(args["latent"], args["depth"], args["K"], args["c2w"], static_mask=args["static_mask"])
    return call


def make_env(**kw):
    return lambda _: gym.make("MirageRoom-v0", **{**ORACLE, **kw})


def tiny_partial(d):
    shutil.rmtree(tiny_layout(d / "m") / "geometry")


def locked_dir(out):
    (out.parent / "locked").mkdir()


def readonly_out(out):
    with read_only(out.parent / "locked"):
        run_cli(COLLECT_FLAGS + ["--out", out.parent / "locked" / "data"])


def load(rel, **kw):
    """The call of a weights case: load the folder that the case's setup built."""
    return lambda d: load_world_model(str(d / rel), **kw)


def build(rel, layout=None, **kw):
    return lambda d: (layout or tiny_layout)(d / rel, **kw)


NO_GPU = "this machine has a CUDA GPU" if torch.cuda.is_available() else None

CASES = [
    # ---------------------------------------------------------- env kwargs (gym.make)
    case("obs_size-one-element-list", "make", make_env(obs_size=[32]), ValueError, r"obs_size must be an integer.*\[height, width\]"),
    case("obs_size-nan", "make", make_env(obs_size=float("nan")), ValueError, r"obs_size must be an integer in \[8, \d+\]"),
    case("obs_size-typo-huge", "make", make_env(obs_size=64000), ValueError, r"obs_size must be an integer in \[8, 4096\]"),
    case("obs_size-string-entry", "make", make_env(obs_size=[32, "32"]), ValueError, r"obs_size .*got \[32, '32'\]"),
    case("frames_per_step-float", "make", make_env(frames_per_step=2.5), ValueError, r"frames_per_step must be an integer in \[1, 128\], got 2\.5"),
    case("coverage_target-string", "make", make_env(coverage_target="0.8"), ValueError, r"coverage_target must be a number in \(0, 1\]"),
    case("memory_obs-quoted-false", "make", make_env(memory_obs="false"), ValueError, r"memory_obs must be true or false.*unquoted"),
    case("memory_capacity-bool", "make", make_env(memory_capacity=True), ValueError, r"memory_capacity must be a positive integer, got True"),
    case("scene_seeds-negative", "make", make_env(scene_seeds=[3, -1]), ValueError, r"scene_seeds list must hold non-negative ints"),
    case("fov-out-of-range", "make", make_env(fov_deg=180.0), ValueError, r"fov_deg must be in \(0, 170\)"),
    case("fps-inf", "make", make_env(fps=float("inf")), ValueError, r"fps must be a positive finite number"),
    case("device-unknown", "make", make_env(device="gpu"), ValueError, r"device='gpu' is not a torch device; use 'cpu', 'cuda'"),
    case("device-cuda-without-gpu", "make", make_env(device="cuda:0"), ValueError, r"no CUDA GPU.*use device='cpu'", skip=NO_GPU),
    case("model_kwargs-not-mapping", "make", make_env(model_kwargs=["downsample", 4]), ValueError, r"model_kwargs must be a mapping"),
    case("oracle-downsample-zero", "make", make_env(model_kwargs={"downsample": 0}), ValueError,
         r"downsample .* must be a positive integer.*model_kwargs="),
    case("obs_size-not-divisible", "make", make_env(model_kwargs={"downsample": 3}), ValueError,
         r"must be divisible by the latent downsample factor 3"),
    case("render_size-zero", "make", make_env(render_size=0), ValueError, r"render_size must be an integer in \[16, 4096\]"),
    case("world_model-dict-without-name", "make", make_env(world_model={"kind": "oracle"}), ValueError, r"needs a 'name' key"),
    case("world_model-number", "make", make_env(world_model=42), ValueError, r"world_model must be a name .* a folder path"),
    case("unknown-kwarg-typo", "make", make_env(frame_per_step=2), TypeError,
         r"unknown argument\(s\) \['frame_per_step'\]; valid arguments: .*frames_per_step"),
    case("vector-num_envs-zero", "make",
         lambda _: gym.make_vec("MirageRoom-v0", num_envs=0, vectorization_mode="vector_entry_point", **ORACLE),
         ValueError, r"num_envs must be a positive integer"),

    # ---------------------------------------------------------- YAML configs (registry)
    case("python-tag-refused", "yaml", register_envs, ValueError,
         r"A-v0\.yaml: refused tag .*python/object/apply:os\.system.*yaml\.safe_load",
         setup=yaml_files("id: Evil-v0\nkwargs: !!python/object/apply:os.system ['touch pwned']\n")),
    case("kwargs-not-mapping", "yaml", register_envs, ValueError, r"A-v0\.yaml: kwargs must be a mapping",
         setup=yaml_files("id: HardeningBad-v0\nkwargs: [oracle, 32]\n")),
    case("kwarg-typo-names-file", "yaml", register_envs, ValueError,
         r"A-v0\.yaml: .*unknown argument\(s\) \['world_modle'\]; valid arguments",
         setup=yaml_files("id: HardeningBad-v0\nkwargs:\n  world_modle: oracle\n")),
    case("kwarg-quoted-bool-names-file", "yaml", register_envs, ValueError, r"A-v0\.yaml: memory_obs must be true or false",
         setup=yaml_files("id: HardeningBad-v0\nkwargs:\n  memory_obs: 'no'\n")),
    case("not-yaml", "yaml", register_envs, ValueError, r"A-v0\.yaml: not valid YAML .*see envs_configs",
         setup=yaml_files("id: HardeningBad-v0\nkwargs: {world_model: oracle\n")),
    case("id-without-version", "yaml", register_envs, ValueError, r"id must be a Gymnasium id such as 'MirageRoomFoo-v0'",
         setup=yaml_files("id: HardeningBad\n")),
    case("max_episode_steps-negative", "yaml", register_envs, ValueError, r"max_episode_steps must be a positive integer or null",
         setup=yaml_files("id: HardeningBad-v0\nmax_episode_steps: -5\n")),
    case("good-file-then-bad-file-registers-nothing", "yaml", register_envs, ValueError,
         r"B-v0\.yaml: task='dance' is not valid; choose one of",
         setup=yaml_files(GOOD_YAML, "id: HardeningBad-v0\nkwargs:\n  task: dance\n")),
    case("duplicate-id", "yaml", register_envs, ValueError, r"B-v0\.yaml: id 'HardeningGood-v0' is already defined in A-v0\.yaml",
         setup=yaml_files(GOOD_YAML, GOOD_YAML)),

    # ---------------------------------------------------------- actions
    case("bool-action", "env", lambda env: env.step(True), ValueError, r"invalid discrete action True; valid actions: 0=STAY"),
    case("none-action", "env", lambda env: env.step(None), ValueError, r"invalid discrete action None; valid actions"),
    case("batched-action-to-single-env", "env", lambda env: env.step(np.array([1, 2])), ValueError, r"invalid discrete action .*valid actions"),
    case("continuous-strings", "cont_env", lambda env: env.step(["fwd", 0, 0, 0]), ValueError,
         r"continuous action must be 4 numbers \(forward, strafe, yaw, pitch\) in \[-1, 1\]"),
    case("continuous-inf", "cont_env", lambda env: env.step(np.array([np.inf, 0, 0, 0])), ValueError, r"continuous action contains NaN or inf"),
    case("vector-scalar-action", "vec", lambda vec: vec.step(3), ValueError, r"step got a scalar for 2 sub-envs; pass an array of shape \(2,\)"),
    case("vector-one-bad-action-steps-none", "vec", lambda vec: vec.step([Action.FORWARD, 99]), ValueError, r"invalid discrete action .*99"),

    # ---------------------------------------------------------- reset(options=...)
    case("pose-in-a-wall", "env", lambda env: env.reset(options={"scene_seed": 5, "pose": [100.0, 100.0, 0.0]}), ValueError,
         r"position \[100\.0, 100\.0\] is not free space in scene 5; pick a point inside the room"),
    case("seed-and-pose-in-a-wall", "env", lambda env: env.reset(seed=9, options={"scene_seed": 5, "pose": [100.0, 100.0, 0.0]}),
         ValueError, r"is not free space in scene 5"),  # the failed reset must not reseed the env either
    case("pose-two-numbers", "env", lambda env: env.reset(options={"pose": [1.0, 2.0]}), ValueError, r"options\['pose'\] must be \[x, y, yaw_deg\]"),
    case("pose-not-numbers", "env", lambda env: env.reset(options={"pose": "centre"}), ValueError, r"options\['pose'\] must be \[x, y, yaw_deg\]"),
    case("scene_seed-string", "env", lambda env: env.reset(options={"scene_seed": "3"}), ValueError,
         r"options\['scene_seed'\] must be a non-negative int"),
    case("options-not-a-dict", "env", lambda env: env.reset(seed=1, options=[("scene_seed", 3)]), ValueError,
         r"reset options must be a dict such as \{'scene_seed'"),
    case("vector-seed-list-length", "vec", lambda vec: vec.reset(seed=[1, 2, 3]), ValueError, r"reset got 3 seeds for 2 sub-envs"),
    case("vector-seed-string", "vec", lambda vec: vec.reset(seed="0"), ValueError, r"reset seed must be an int, a list of 2 ints, or None"),
    case("vector-pose-free-in-one-room-only", "vec", pose_free_in_first_room_only, ValueError,
         r"sub-env 1: .*is not free space in scene \d+.*no sub-env was reset"),
    case("vector-unknown-option", "vec", lambda vec: vec.reset(options={"room": 3}), ValueError,
         r"unknown reset option\(s\) \['room'\]; valid options"),

    # ---------------------------------------------------------- set_state (foreign or truncated)
    case("state-truncated-agent", "env", lambda env: env.unwrapped.set_state(own_state(env, agent=lambda a: a[:3])), ValueError,
         r"snapshot agent must be 5 finite numbers.*pass the unmodified dict returned by env\.unwrapped\.get_state\(\)"),
    case("state-missing-memory", "env", lambda env: env.unwrapped.set_state(drop("memory")(own_state(env))), ValueError,
         r"not a MirageRoom snapshot \(missing \['memory'\]\); pass the dict returned by"),
    case("state-truncated-memory-tensor", "env",
         lambda env: env.unwrapped.set_state(own_state(env, memory=lambda m: {**m, "features": m["features"][:-1]})), ValueError,
         r"snapshot cannot be restored .*features must be .* \(N, C\).*get_state\(\)"),
    case("state-latent-as-numpy", "env", lambda env: env.unwrapped.set_state(own_state(env, context_latent=lambda t: t.numpy())),
         ValueError, r"snapshot 'context_latent' must be a float torch\.Tensor of shape \(48, 8, 8\)"),
    case("state-nan-latent", "env", lambda env: env.unwrapped.set_state(own_state(env, context_latent=lambda t: t * np.nan)), ValueError,
         r"snapshot 'context_latent' contains NaN or inf"),
    case("state-corrupt-torch-rng", "env",
         lambda env: env.unwrapped.set_state(own_state(env, torch_rng=torch.zeros(3, dtype=torch.uint8))),
         ValueError, r"snapshot cannot be restored \(RuntimeError.*get_state\(\)"),
    case("state-foreign-room-then-corrupt-field", "env", set_foreign_then_corrupt, ValueError, r"snapshot cannot be restored"),
    case("state-other-obs_size", "env", lambda env: env.unwrapped.set_state(other_state(obs_size=64)), ValueError,
         r"context latent \(48, 16, 16\), this env's world model uses \(48, 8, 8\): restore a snapshot taken with the same"),
    case("state-goal-task-into-explore", "env", lambda env: env.unwrapped.set_state(other_state(task="goal")), ValueError,
         r"different memory or task setting"),
    case("state-rgb-memory-into-latent", "env", lambda env: env.unwrapped.set_state(other_state(memory="rgb")), ValueError,
         r"other settings: memory='rgb' \(this env: 'latent'\); restore it into an env made with the same arguments"),
    case("vector-state-index", "vec", lambda vec: vec.set_state(2, vec.get_state(0)), ValueError,
         r"sub-env index must be an int in \[0, 2\)"),
    case("vector-state-foreign", "vec", lambda vec: vec.set_state(1, other_state(task="none")), ValueError,
         r"different memory or task setting"),

    # ---------------------------------------------------------- memory writes (the env's own memory, and a bare one)
    case("write-wrong-channels", "env", mem_write(latent=torch.randn(C + 1, h, w)), ValueError,
         r"holds 48-channel features but got 49 channels; use a separate memory"),
    case("write-integer-latent", "env", mem_write(latent=torch.ones(C, h, w, dtype=torch.int64)), ValueError,
         r"latent must be a real floating-point array.*cast with \.float\(\)"),
    case("write-nan-latent", "env", mem_write(latent=torch.full((C, h, w), float("nan"))), ValueError,
         r"latent contains NaN or inf; only finite"),
    case("write-float16-overflow", "env", mem_write(latent=torch.full((C, h, w), 1e6)), ValueError,
         r"overflow torch\.float16.*feature_dtype=torch\.float32"),
    case("write-depth-shape", "env", mem_write(depth=torch.ones(h, w + 1)), ValueError, r"depth must have shape \(8, 8\) to match"),
    case("write-static-mask-float", "env", mem_write(static_mask=torch.ones(h, w)), ValueError,
         r"static_mask must be a boolean array.*mask > 0\.5"),
    case("write-pose-inf", "env", mem_write(c2w=torch.full((4, 4), float("inf"))), ValueError, r"c2w .*(finite|NaN|inf)"),
    case("write-batched-without-poses", "memory",
         lambda mem: mem.write(torch.randn(2, C, h, w), torch.ones(2, h, w), torch.eye(3), torch.eye(4)), ValueError,
         r"c2w must have shape \(2, 4, 4\) \(one camera-to-world pose per written frame\)"),
    case("load-foreign-memory-state", "memory", lambda mem: mem.load_state_dict({"positions": torch.zeros(2, 3)}), ValueError,
         r"memory state is missing \[.*\]; pass the dict returned by state_dict\(\)"),

    # ---------------------------------------------------------- world-model paths (missing, partial, pickles)
    case("folder-missing", "weights", load("no/such/folder"), FileNotFoundError, r"world model folder .* does not exist; check the path"),
    case("weights-file-not-folder", "weights", load("m/vae/diffusion_pytorch_model.safetensors"), ValueError,
         r"is a file; pass the folder that holds world_model\.json", setup=build("m")),
    case("tiny-partial", "weights", load("m"), FileNotFoundError,
         r"weights folder .* is incomplete; missing: geometry\. train them with `mirage-gym train", setup=tiny_partial),
    case("tiny-pickle", "weights", load("m", image_size=(32, 32)), ValueError,
         r"refusing to load .*pickle-based weight files \(denoiser/diffusion_pytorch_model\.bin\).*safetensors only",
         setup=build("m", extra={"denoiser/diffusion_pytorch_model.bin": EVIL})),
    case("tiny-by-name-with-pickle-path", "weights", lambda d: load_world_model("tiny", path=str(d / "m")), ValueError,
         r"pickle-based weight files \(extra/optimizer\.pt\).*convert them with safetensors",
         setup=build("m", extra={"extra/optimizer.pt": EVIL})),
    case("wan-root-level-ckpt", "weights", load("wan"), ValueError, r"pickle-based weight files \(wan2\.2\.ckpt\)",
         setup=build("wan", wan_layout, extra={"wan2.2.ckpt": EVIL})),
    case("wan-uppercase-suffix-deep", "weights", lambda d: load_world_model("wan2.2", path=str(d / "wan")), ValueError,
         r"pickle-based weight files \(transformer/sub/W\.BIN\)", setup=build("wan", wan_layout, extra={"transformer/sub/W.BIN": EVIL})),
    case("wan-missing-transformer", "weights", lambda d: load_world_model("wan2.2", path=str(d / "wan")), FileNotFoundError,
         r"transformer/ \(WanTransformer3DModel\) is missing.*Expected layout", setup=build("wan", wan_layout, drop_parts=("transformer",))),
    case("marker-not-json", "weights", load("m"), ValueError, r"world_model\.json is not valid JSON .*it should be an object such as",
         setup=build("m", marker="{kind: tiny")),
    case("marker-unknown-kind", "weights", load("m"), ValueError, r"names kind 'sora'; expected one of \('tiny', 'oracle', 'wan2\.2'\)",
         setup=build("m", marker='{"kind": "sora"}')),
    case("marker-oracle-folder", "weights", load("m"), ValueError, r"the oracle world model has no weights.*use world_model='oracle'",
         setup=build("m", marker='{"kind": "oracle"}')),
    case("marker-tiny-without-config", "weights", load("m"), ValueError,
         r"world_model\.json has no \"config\" object.*re-export the folder with `mirage-gym train export`",
         setup=build("m", marker='{"kind": "tiny"}')),

    # ---------------------------------------------------------- CLI flags and dataset paths
    case("episodes-zero", "cli", lambda out: run_cli(COLLECT_FLAGS[:-4] + ["--episodes", "0", "--out", out.parent / "new"]), CliFailed,
         r"--episodes must be >= 1, got 0"),
    case("episodes-not-int", "cli", lambda out: run_cli(COLLECT_FLAGS[:-4] + ["--episodes", "ten", "--out", out.parent / "new"]),
         CliFailed, r"argument --episodes: invalid int value: 'ten'"),
    case("workers-zero", "cli", lambda out: run_cli(COLLECT_FLAGS + ["--workers", "0", "--out", out.parent / "new"]), CliFailed,
         r"--workers must be >= 1, got 0"),
    case("policy-missing-zip", "cli", lambda out: run_cli(COLLECT_FLAGS + ["--policy", "nope.zip", "--out", out.parent / "new"]),
         CliFailed, r"--policy must be explorer, .* or an existing SB3 \.zip, got 'nope\.zip'"),
    case("world-model-unknown", "cli",
         lambda out: run_cli(COLLECT_FLAGS[:3] + ["--world-model", "sora"] + COLLECT_FLAGS[5:] + ["--out", out.parent / "new"]),
         CliFailed, r"unknown world model 'sora': use one of"),
    case("out-holds-another-collection", "cli", lambda out: run_cli(COLLECT_FLAGS[:-2] + ["--format", "mp4", "--out", out]), CliFailed,
         r"already holds a different or smaller finished collection; pick another --out or pass --overwrite"),
    case("out-is-a-file", "cli", lambda out: run_cli(COLLECT_FLAGS + ["--out", out / "manifest.json"]), CliFailed,
         r"--out .*(is a file|not a directory).*(folder|--out)"),
    case("out-unwritable", "cli", readonly_out, CliFailed, r"(cannot write|not writable|Permission denied).*--out",
         setup=locked_dir),
    case("env-id-unknown", "cli",
         lambda out: run_cli(["collect", "--env-id", "MirageRum-v0", "--episodes", "1", "--out", out.parent / "new"]),
         CliFailed, r"MirageRum.*(registered|Did you mean)"),

    # ---------------------------------------------------------- issue 24: snapshots checked against the env
    *[case(f"state-other-{k}", "env", (lambda kw: lambda env: env.unwrapped.set_state(other_state(**kw)))({k: v}), ValueError,
           rf"other settings: {k}={v!r} \(this env: .*restore it into an env made with the same arguments")
      for k, v in (("memory_capacity", 500), ("memory_update", "oldest"), ("voxel_size", 0.3), ("fov_deg", 60.0),
                   ("move_m", 0.5), ("frames_per_step", 2))],
    case("state-old-version", "env", lambda env: env.unwrapped.set_state(own_state(env, version=1)), ValueError,
         r"snapshot version 1 does not match this env's version 2"),
    case("state-other-weights", "env", lambda env: env.unwrapped.set_state(own_state(env, weights="0" * 64)), ValueError,
         r"other world-model weights .*same world_model"),
    case("state-nan-memory-features", "env",
         lambda env: env.unwrapped.set_state(own_state(env, memory=lambda m: {**m, "features": m["features"] * np.nan})), ValueError,
         r"features contain NaN or inf.*pass the unmodified dict"),
    case("state-inf-memory-positions", "env",
         lambda env: env.unwrapped.set_state(own_state(env, memory=lambda m: {**m, "positions": m["positions"] * np.inf})),
         ValueError, r"positions contain NaN or inf.*pass the unmodified dict"),
    case("state-more-tokens-than-capacity", "env", lambda env: env.unwrapped.set_state(own_state(env, memory=lambda m: {
        **m, "positions": m["positions"][:1].repeat(60_001, 1), "features": m["features"][:1].repeat(60_001, 1),
        "observed": m["observed"][:1].repeat(60_001)})), ValueError,
         r"holds 60001 points, more than its capacity 60000"),
    case("state-negative-num_writes", "env", lambda env: env.unwrapped.set_state(own_state(env, memory=lambda m: {**m, "num_writes": -3})),
         ValueError, r"num_writes must be an integer >= 0, got -3"),
    case("state-agent-far-away", "env", lambda env: env.unwrapped.set_state(own_state(env, agent=lambda a: [1e6] + a[1:])), ValueError,
         r"agent position .* within \+-100 m; pass the unmodified dict"),
    case("state-agent-in-a-wall", "env", lambda env: env.unwrapped.set_state(own_state(env, agent=lambda a: [50.0, 50.0] + a[2:])),
         ValueError, r"agent position \[50\.0, 50\.0\] is not free space in scene 3"),
    case("state-agent-nan", "env", lambda env: env.unwrapped.set_state(own_state(env, agent=lambda a: [np.nan] + a[1:])), ValueError,
         r"agent must be 5 finite numbers"),
    case("state-time-huge", "env", lambda env: env.unwrapped.set_state(own_state(env, time=1e300)), ValueError,
         r"snapshot 'time' must be a number in \[0, 1e\+07\]"),
    case("state-steps-float", "env", lambda env: env.unwrapped.set_state(own_state(env, steps=1.5)), ValueError,
         r"snapshot 'steps' must be an integer"),
    case("state-context-pose-not-rigid", "env", lambda env: env.unwrapped.set_state(own_state(env, context_c2w=lambda t: t * 2)),
         ValueError, r"context_c2w' is not a rigid camera-to-world pose"),
    case("memory-load-bad-last-field", "memory", lambda mem: mem.load_state_dict({**mem.state_dict(), "min_weight": 5.0}), ValueError,
         r"state min_weight must be in \(0, 1\]"),
    case("memory-load-nan-features", "memory",
         lambda mem: mem.load_state_dict({**mem.state_dict(), "features": mem.state_dict()["features"] * np.nan}), ValueError,
         r"features contain NaN or inf"),

    # ---------------------------------------------------------- issue 24: bounded values, int-like actions
    case("fps-tiny", "make", make_env(fps=1e-40), ValueError, r"fps must be a number in \[0\.01, 10000\]"),
    case("frames_per_step-huge", "make", make_env(frames_per_step=10**9), ValueError,
         r"frames_per_step must be an integer in \[1, 128\], got 1000000000"),
    case("max_pitch_deg-1000", "make", make_env(max_pitch_deg=1000), ValueError, r"max_pitch_deg must be a number in \(0, 89\]"),
    *[case(f"action-{name}", "env", (lambda a: lambda env: env.step(a))(a), ValueError,
           r"invalid discrete action .*valid actions: 0=STAY.*not a bool, string or fraction")
      for name, a in (("np-bool", np.array(True)), ("torch-bool", torch.tensor(True)), ("str", "3"), ("bytes", b"1"),
                      ("fraction", Fraction(3, 2)), ("inf", float("inf")))],
]


def test_table_is_broad():
    subjects = {c.values[0] for c in CASES}
    assert len(CASES) >= 25 and subjects == set(SUBJECTS), subjects


@pytest.mark.parametrize("subject_name, setup, call, expected, pattern", CASES)
def test_bad_input(subject_name, setup, call, expected, pattern, tmp_path, tmp_path_factory):
    if subject_name == "cli":
        subject = _cli_subject(tmp_path, tmp_path_factory)
    else:
        subject = SUBJECTS[subject_name](tmp_path)
    if setup is not None:
        setup(subject.obj)
    before = subject.fingerprint()
    with pytest.MonkeyPatch.context() as mp:
        def refuse(*args, **kwargs):
            raise AssertionError("something tried to unpickle (torch.load / pickle.load): never allowed")

        for owner, name in ((torch, "load"), (pickle, "load"), (pickle, "loads")):
            mp.setattr(owner, name, refuse)
        with pytest.raises(expected, match=re.compile(pattern, re.S)):
            call(subject.obj)
    assert subject.fingerprint() == before, "the rejected call changed the subject's data"
    subject.check_usable()
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()
