"""Safe loading: weights only from safetensors, configs only through yaml.safe_load.

Every pickle-like file planted here is a *real* pickle whose unpickling
creates a marker directory, so "never unpickled" is checked three ways:
the marker never appears, ``torch.load`` / ``pickle.load(s)`` are replaced by
functions that fail the test, and a spy on ``open`` / ``os.open`` shows the
file was never even opened (the refusal happens on directory listings).
"""

from __future__ import annotations

import ast
import builtins
import io
import json
import os
import pickle
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from mirage_gym.models import load_world_model
from mirage_gym.registration import CONFIG_DIR, load_env_config

PACKAGE = Path(__file__).resolve().parents[1] / "mirage_gym"


class _Trap:
    """Unpickling this calls os.mkdir(marker): the proof that a file was unpickled."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def trap_bytes(marker: Path) -> bytes:
    return pickle.dumps(_Trap(marker))


@pytest.fixture
def guard(monkeypatch, tmp_path):
    """Fail on any unpickling call; record every path opened."""
    opened: list[str] = []

    def refuse(*args, **kwargs):
        raise AssertionError("torch.load / pickle.load was called: mirage_gym must never unpickle")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    real_open, real_os_open = builtins.open, os.open

    def spy_open(file, *args, **kwargs):
        if isinstance(file, (str, bytes, os.PathLike)):
            opened.append(os.fsdecode(file))
        return real_open(file, *args, **kwargs)

    def spy_os_open(path, *args, **kwargs):
        opened.append(os.fsdecode(path))
        return real_os_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", spy_open)
    monkeypatch.setattr(io, "open", spy_open)
    monkeypatch.setattr(os, "open", spy_os_open)
    return opened


def assert_untouched(opened: list[str], planted: Path, marker: Path):
    assert not marker.exists(), "the planted pickle was unpickled"
    assert not [p for p in opened if Path(p).resolve() == planted.resolve()], f"{planted} was opened"


# ------------------------------------------------------------------ folders


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    """A complete embedded-model folder with random weights, saved the way
    `mirage-gym train export` saves the shipped one (safetensors + config.json)."""
    from mirage_gym.models.tiny.config import TinyConfig
    from mirage_gym.models.tiny.world_model import build_networks, save_weights_folder

    torch.manual_seed(0)
    cfg = TinyConfig()
    return save_weights_folder(tmp_path_factory.mktemp("tiny") / "weights", cfg, build_networks(cfg))


def wan_layout(folder: Path) -> Path:
    """The Wan2.2 folder layout with placeholder weights (the pickle check comes first)."""
    for sub in ("vae", "transformer", "text_encoder", "lora"):
        (folder / sub).mkdir(parents=True)
    for sub in ("vae", "transformer"):
        (folder / sub / "config.json").write_text("{}")
        (folder / sub / "diffusion_pytorch_model.safetensors").write_bytes(b"\0" * 16)
    (folder / "text_encoder" / "config.json").write_text("{}")
    (folder / "text_encoder" / "model.safetensors").write_bytes(b"\0" * 16)
    (folder / "lora" / "pytorch_lora_weights.safetensors").write_bytes(b"\0" * 16)
    (folder / "tokenizer").mkdir()
    (folder / "scheduler").mkdir()
    (folder / "scheduler" / "scheduler_config.json").write_text('{"_class_name": "UniPCMultistepScheduler"}')
    return folder


def test_clean_tiny_folder_loads_from_safetensors_without_unpickling(tiny_folder, guard):
    model = load_world_model(str(tiny_folder), image_size=(64, 64))
    assert model.name == "tiny" and model.latent_channels == 8
    assert not [p for p in guard if Path(p).suffix in (".bin", ".pt", ".pth", ".ckpt", ".pkl")]


TINY_PICKLES = ["model.pt", "vae/diffusion_pytorch_model.bin", "denoiser/sub/ema.ckpt", "geometry/head.PTH",
                "optimizer.pkl", "cache.pickle"]


@pytest.mark.parametrize("rel", TINY_PICKLES)
@pytest.mark.parametrize("entry", ["folder", "name+path", "dict", "gym.make"])
def test_tiny_folder_with_a_pickle_is_refused_and_never_opened(tiny_folder, tmp_path, rel, entry, guard):
    import gymnasium as gym

    folder = tmp_path / "weights"
    shutil.copytree(tiny_folder, folder)
    marker = tmp_path / "UNPICKLED"
    planted = folder / rel
    planted.parent.mkdir(parents=True, exist_ok=True)
    planted.write_bytes(trap_bytes(marker))
    guard.clear()  # (writing the file above was recorded too)
    calls = {
        "folder": lambda: load_world_model(str(folder), image_size=(64, 64)),
        "name+path": lambda: load_world_model("tiny", path=str(folder)),
        "dict": lambda: load_world_model({"name": "tiny", "path": str(folder)}),
        "gym.make": lambda: gym.make("MirageRoom-v0", world_model=str(folder), obs_size=64),
    }
    with pytest.raises(ValueError, match=r"refusing to load .*pickle-based weight files \(.*" + rel.split("/")[-1].replace(".", r"\.")
                       + r".*safetensors only.*convert them with safetensors\.torch\.save_file"):
        calls[entry]()
    assert_untouched(guard, planted, marker)
    assert planted.exists()  # refused, not deleted: the user decides


WAN_PICKLES = ["transformer/diffusion_pytorch_model.bin", "vae/diffusion_pytorch_model.pt", "model.ckpt",
               "text_encoder/pytorch_model.bin", "lora/adapter.PT", "transformer/shards/part.pth"]


@pytest.mark.parametrize("rel", WAN_PICKLES)
@pytest.mark.parametrize("entry", ["folder", "name+path"])
def test_wan_folder_with_a_pickle_is_refused_and_never_opened(tmp_path, rel, entry, guard):
    folder = wan_layout(tmp_path / "wan")
    marker = tmp_path / "UNPICKLED"
    planted = folder / rel
    planted.parent.mkdir(parents=True, exist_ok=True)
    planted.write_bytes(trap_bytes(marker))
    guard.clear()
    # a pickled component file is listed by the Wan layout check (WeightsFolderError, with every other
    # problem of the folder); one anywhere else by the generic check (ValueError); both before any weights are read
    with pytest.raises((ValueError, FileNotFoundError),
                       match=r"refusing to load .*pickle-based weight files|is a pickled file and is refused"):
        if entry == "folder":
            load_world_model(str(folder))
        else:
            load_world_model({"name": "wan2.2", "path": str(folder)})
    assert_untouched(guard, planted, marker)


@pytest.mark.parametrize("rel", ["transformer/diffusion_pytorch_model.bin", "text_encoder/pytorch_model.bin"])
def test_wan_layout_check_lists_pickled_components(tmp_path, rel, guard):
    """The Wan backend's own layout check (used by load_wan_world_model) refuses them too."""
    from mirage_gym.models.wan import WeightsFolderError, check_weights_folder

    folder = wan_layout(tmp_path / "wan")
    marker = tmp_path / "UNPICKLED"
    planted = folder / rel
    planted.write_bytes(trap_bytes(marker))
    guard.clear()
    with pytest.raises(WeightsFolderError, match=rel.replace(".", r"\.") + r" is a pickled file and is refused"):
        check_weights_folder(folder)
    assert_untouched(guard, planted, marker)


def test_a_pickle_disguised_as_safetensors_is_never_unpickled(tiny_folder, tmp_path, guard):
    folder = tmp_path / "weights"
    shutil.copytree(tiny_folder, folder)
    marker = tmp_path / "UNPICKLED"
    (folder / "vae" / "diffusion_pytorch_model.safetensors").write_bytes(trap_bytes(marker))
    with pytest.raises(Exception) as info:
        load_world_model(str(folder), image_size=(64, 64))
    assert not isinstance(info.value, AssertionError), info.value  # not the unpickling guard
    assert not marker.exists()


# ------------------------------------------------------------------- YAML


EVIL_YAML = [
    "id: Evil-v0\nkwargs: !!python/object/apply:os.mkdir [{marker}]\n",
    "id: Evil-v0\nkwargs:\n  world_model: !!python/name:os.system\n",
    "id: Evil-v0\nkwargs:\n  world_model: !!python/object/new:os.mkdir [{marker}]\n",
    "!!python/object/apply:os.mkdir [{marker}]\n",
    "id: Evil-v0\nkwargs:\n  model_kwargs: !!python/module:os\n",
]


@pytest.mark.parametrize("text", EVIL_YAML)
def test_yaml_with_python_tags_is_refused(tmp_path, text):
    marker = tmp_path / "EXECUTED"
    path = tmp_path / "Evil-v0.yaml"
    path.write_text(text.format(marker=json.dumps(str(marker))))
    with pytest.raises(ValueError, match=r"Evil-v0\.yaml: refused tag .*python/.*yaml\.safe_load.*not allowed"):
        load_env_config(path)
    assert not marker.exists()


def test_shipped_configs_load_with_safe_loader_only(monkeypatch):
    real_load = yaml.load
    safe = tuple(getattr(yaml, n) for n in ("SafeLoader", "CSafeLoader") if hasattr(yaml, n))
    loaders = []

    def checked_load(stream, Loader):
        loaders.append(Loader)
        if not issubclass(Loader, safe):
            raise AssertionError(f"configs must be read with yaml.safe_load, not {Loader.__name__}")
        return real_load(stream, Loader)

    def refuse(*args, **kwargs):
        raise AssertionError("configs must be read with yaml.safe_load")

    monkeypatch.setattr(yaml, "load", checked_load)
    for name in ("unsafe_load", "full_load", "load_all", "unsafe_load_all", "full_load_all"):
        monkeypatch.setattr(yaml, name, refuse)
    paths = sorted(CONFIG_DIR.glob("*.yaml"))
    assert paths
    for path in paths:
        assert load_env_config(path)["id"] == path.stem
    assert len(loaders) == len(paths)


# --------------------------------------------------------- the source itself


def _call_name(node: ast.Call) -> str:
    parts, f = [], node.func
    while isinstance(f, ast.Attribute):
        parts.append(f.attr)
        f = f.value
    if isinstance(f, ast.Name):
        parts.append(f.id)
    return ".".join(reversed(parts))


# from_pretrained calls that load no weights (configs, tokenizers) or are our own
# wrappers whose inner call is itself checked here.
NO_WEIGHTS = {("models/wan/loading.py", "cls.from_pretrained"),  # scheduler: JSON config only
              ("models/wan/loading.py", "AutoTokenizer.from_pretrained"),  # sentencepiece/JSON, no pickles
              ("models/wan/world_model.py", "DepthEstimator.from_pretrained"),
              ("models/wan/world_model.py", "SemanticSegmenter.from_pretrained"),
              # mirage_gym's own loader (models/depth.py): it passes use_safetensors=True, checked there
              ("envs/simulation.py", "DepthEstimator.from_pretrained")}


def test_source_never_calls_an_unpickling_loader():
    """An AST scan of mirage_gym/: no torch.load, pickle.load(s), unsafe YAML
    loaders, np.load without allow_pickle=False, and every from_pretrained that
    loads weights passes use_safetensors=True."""
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = str(path.relative_to(PACKAGE))
        for node in ast.walk(ast.parse(path.read_text(), filename=rel)):
            if not isinstance(node, ast.Call):
                continue
            name = _call_name(node)
            kwargs = {k.arg: k.value for k in node.keywords if k.arg}
            where = f"{rel}:{node.lineno} {name}"
            if name in ("torch.load", "pickle.load", "pickle.loads", "cloudpickle.load", "cloudpickle.loads", "dill.load",
                        "joblib.load", "yaml.load", "yaml.unsafe_load", "yaml.full_load", "yaml.load_all", "torch.hub.load"):
                problems.append(where)
            elif name in ("np.load", "numpy.load"):
                value = kwargs.get("allow_pickle")
                if not (isinstance(value, ast.Constant) and value.value is False):
                    problems.append(where + " without allow_pickle=False")
            elif name.endswith(".from_pretrained") and (rel, name) not in NO_WEIGHTS:
                value = kwargs.get("use_safetensors")
                spread = any(k.arg is None for k in node.keywords)  # **kw: checked where kw is built (tiny loader)
                if not (isinstance(value, ast.Constant) and value.value is True) and not spread:
                    problems.append(where + " without use_safetensors=True")
    assert not problems, "unsafe loading calls:\n" + "\n".join(problems)


# ------------------------------------------------ by content, not by name (issue 24 finding 2)


def _torch_saved(path: Path) -> None:
    torch.save({"w": torch.zeros(2)}, path)  # a zip of pickles: what torch.load(weights_only=True) would read


def _sharded_pickle(folder: Path) -> None:
    """The reported exploit: the VAE's safetensors replaced by an index that maps every key to a torch.save file."""
    from safetensors.torch import load_file

    vae = folder / "vae"
    keys = list(load_file(vae / "diffusion_pytorch_model.safetensors"))
    (vae / "diffusion_pytorch_model.safetensors").unlink()
    (vae / "x.safetensors").write_bytes(b"")
    (vae / "diffusion_pytorch_model.safetensors.index.json").write_text(json.dumps({"weight_map": {k: "weights.dat" for k in keys}}))
    _torch_saved(vae / "weights.dat")


def _outside(folder: Path) -> Path:
    outside = folder.parent / "outside"
    outside.mkdir(exist_ok=True)
    return outside


def _symlinked_subfolder(folder: Path) -> None:
    outside = _outside(folder)
    _torch_saved(outside / "weights.dat")
    (folder / "extra").symlink_to(outside, target_is_directory=True)


def _symlinked_file(folder: Path) -> None:
    outside = _outside(folder)
    shutil.copy(folder / "vae" / "diffusion_pytorch_model.safetensors", outside / "v.safetensors")
    (folder / "vae" / "diffusion_pytorch_model.safetensors").unlink()
    (folder / "vae" / "diffusion_pytorch_model.safetensors").symlink_to(outside / "v.safetensors")


def _index_out_of_folder(folder: Path) -> None:
    shutil.copy(folder / "vae" / "diffusion_pytorch_model.safetensors", _outside(folder) / "v.safetensors")
    (folder / "vae" / "diffusion_pytorch_model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"a": "../../outside/v.safetensors"}}))


CONTENT_VARIANTS = {
    "sharded-index-to-torch-save": (_sharded_pickle, r"vae/weights\.dat: neither safetensors nor text"),
    "dat-suffix": (lambda f: _torch_saved(f / "denoiser" / "weights.dat"), r"denoiser/weights\.dat: neither safetensors nor text"),
    "no-suffix": (lambda f: (f / "geometry" / "weights").write_bytes(pickle.dumps({"w": 1})),
                  r"geometry/weights: neither safetensors nor text"),
    "empty-safetensors": (lambda f: (f / "vae" / "x.safetensors").write_bytes(b""), r"vae/x\.safetensors: not a safetensors file"),
    "symlinked-subfolder-out": (_symlinked_subfolder, r"extra: a symlink out of the folder"),
    "symlinked-file-out": (_symlinked_file, r"vae/diffusion_pytorch_model\.safetensors: a symlink out of the folder"),
    "index-names-a-file-outside": (_index_out_of_folder, r"names shard '\.\./\.\./outside/v\.safetensors': only \*\.safetensors files in the same folder"),
}


def _changed_copy(tiny_folder: Path, tmp_path: Path, change) -> Path:
    """A copy of the tiny weights folder with ``change`` applied to it."""
    folder = tmp_path / "weights"
    shutil.copytree(tiny_folder, folder)
    change(folder)
    return folder


@pytest.mark.parametrize("variant", sorted(CONTENT_VARIANTS))
def test_weights_folder_is_checked_by_content_not_by_suffix(tiny_folder, tmp_path, variant, guard):
    import gymnasium as gym

    plant, pattern = CONTENT_VARIANTS[variant]
    folder = _changed_copy(tiny_folder, tmp_path, plant)
    with pytest.raises(ValueError, match=r"refusing to load .*" + pattern + r".*safetensors only"):
        gym.make("MirageRoom-v0", world_model=str(folder))


def _poison(folder: Path, sub: str, change) -> None:
    from safetensors.torch import load_file, save_file

    path = folder / sub / "diffusion_pytorch_model.safetensors"
    tensors = load_file(path)
    change(tensors)
    save_file(tensors, path)


def _nan_decoder(tensors):
    key = next(k for k in tensors if k.startswith("decoder."))
    tensors[key] = tensors[key] * float("nan")


def _set_config(folder: Path, **changes) -> None:
    meta = json.loads((folder / "world_model.json").read_text())
    meta["config"].update(changes)
    (folder / "world_model.json").write_text(json.dumps(meta))


BROKEN_FOLDERS = {
    "nan-decoder-weights": (lambda f: _poison(f, "vae", _nan_decoder), r"vae holds NaN or inf weights .*healthy checkpoint"),
    "missing-tensor": (lambda f: _poison(f, "denoiser", lambda t: t.pop(next(iter(t)))),
                       r"denoiser does not load: the weights file lacks conv_in\.bias \(a tensor is missing"),
    "downsample-zero": (lambda f: _set_config(f, downsample=0), r"downsample must be an integer in \[1, 64\], got 0"),
    "denoise-steps-huge": (lambda f: _set_config(f, denoise_steps=1_000_000),
                           r"denoise_steps must be an integer in \[1, 1000\], got 1000000"),
}


@pytest.mark.parametrize("variant", sorted(BROKEN_FOLDERS))
def test_broken_weights_folder_gives_a_clear_error(tiny_folder, tmp_path, variant, guard):
    change, pattern = BROKEN_FOLDERS[variant]
    folder = _changed_copy(tiny_folder, tmp_path, change)
    with pytest.raises(ValueError, match=pattern):
        load_world_model(str(folder), image_size=(64, 64))


def test_the_shipped_weights_pass_the_content_check():
    from mirage_gym.models.safe_loading import folder_problems
    from mirage_gym.models.tiny.world_model import DEFAULT_WEIGHTS

    assert folder_problems(DEFAULT_WEIGHTS) == []
