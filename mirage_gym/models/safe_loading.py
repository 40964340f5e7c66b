"""Safe loading of weight folders: safetensors only, never unpickle.

A weights folder may hold only safetensors files and text (JSON configs,
tokenizer files, notes), and this is checked by content, not by name,
before any loader reads it:

1. by name first, without opening anything: a pickle-based weight file
   (.bin, .pt, .pth, .ckpt, .pkl) is refused with its own message;
2. every entry: a symlink that leads out of the folder, or anything that is
   not a regular file or folder, is refused;
3. every file: a valid safetensors header (8-byte length, a JSON object,
   tensors inside the file), or UTF-8 text without NUL bytes; anything else
   (a zip from ``torch.save`` renamed ``.dat``, a file without a suffix, an
   empty ``.safetensors``) is refused;
4. a shard index (``*.safetensors.index.json``) may name only safetensors
   files in its own folder: diffusers loads shards with other names through
   ``torch.load``.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
MAX_SAFETENSORS_HEADER = 100 * 2**20  # the safetensors format's own limit
MAX_TEXT_BYTES = 256 * 2**20  # a tokenizer.json is ~16 MB; larger "text" is not a config
FIX = ("mirage_gym loads safetensors only (and JSON/text configs), because unpickling a file can run arbitrary code; "
       "convert weights with safetensors.torch.save_file and remove every other file")


def find_pickles(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in PICKLE_SUFFIXES and p.is_file())


def refuse_pickles(folder: Path) -> None:
    """Raise ValueError if ``folder`` (searched recursively) holds a file named
    like a pickle-based weight file. Reads directory entries only."""
    pickles = find_pickles(folder) if folder.is_dir() else []
    if pickles:
        names = ", ".join(str(p.relative_to(folder)) for p in pickles[:5]) + (" ..." if len(pickles) > 5 else "")
        raise ValueError(f"refusing to load {folder}: it contains pickle-based weight files ({names}). "
                         "mirage_gym loads safetensors only, because unpickling a file can run arbitrary code; "
                         "convert them with safetensors.torch.save_file and remove the pickles")


def safetensors_problem(path: Path) -> str | None:
    """Why ``path`` is not a safetensors file (None if it is): reads the header only."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            return "not a safetensors file (shorter than its 8-byte header)"
        n = int.from_bytes(head, "little")
        if n < 2 or n > MAX_SAFETENSORS_HEADER or 8 + n > size:
            return "not a safetensors file (its header length does not fit the file)"
        raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return "not a safetensors file (its header is not JSON)"
    if not isinstance(header, dict):
        return "not a safetensors file (its header is not a JSON object)"
    data = size - 8 - n
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(v, int) for v in offsets)
                and 0 <= offsets[0] <= offsets[1] <= data):
            return f"not a safetensors file (tensor {name!r} lies outside the file)"
    return None


def _text_problem(path: Path) -> str | None:
    if path.stat().st_size > MAX_TEXT_BYTES:
        return f"neither safetensors nor a text file of at most {MAX_TEXT_BYTES // 2**20} MB"
    raw = path.read_bytes()
    if b"\0" in raw:
        return "neither safetensors nor text (binary content)"
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return "neither safetensors nor text (not UTF-8)"
    return None


def _index_problems(path: Path, root: Path) -> list[str]:
    """A shard index must name safetensors files that sit beside it."""
    try:
        weight_map = json.loads(path.read_text(encoding="utf-8"))["weight_map"]
        shards = set(weight_map.values())
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        return [f"{path.relative_to(root)}: not a shard index with a 'weight_map' ({type(err).__name__})"]
    problems = []
    for shard in sorted(map(str, shards)):
        target = path.parent / shard
        if not shard.endswith(".safetensors") or Path(shard).name != shard:
            problems.append(f"{path.relative_to(root)} names shard {shard!r}: only *.safetensors files in the same folder")
        elif not target.is_file() or target.is_symlink():
            problems.append(f"{path.relative_to(root)} names shard {shard!r}, which is not a file there")
    return problems


def folder_problems(folder: Path) -> list[str]:
    """Every entry of ``folder`` (recursively) that is not safetensors or text, by content."""
    root = folder.resolve()
    problems: list[str] = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        for name in sorted(dirnames + filenames):
            path = Path(dirpath) / name
            rel = path.relative_to(folder)
            if path.is_symlink():
                target = path.resolve()
                if target != root and root not in target.parents:
                    problems.append(f"{rel}: a symlink out of the folder (to {target}); copy the real files in "
                                    "(e.g. `cp -rL`, or download with --local-dir)")
                continue  # a link inside the folder: its target is checked where it lies
            mode = path.lstat().st_mode
            if stat.S_ISDIR(mode):
                continue
            if not stat.S_ISREG(mode):
                problems.append(f"{rel}: not a regular file")
                continue
            if name.endswith(".safetensors"):
                problem = safetensors_problem(path)
            elif safetensors_problem(path) is None:  # safetensors under another name is still safetensors
                problem = None
            else:
                problem = _text_problem(path)
                if problem is None and name.endswith(".safetensors.index.json"):
                    problems.extend(_index_problems(path, folder))
            if problem is not None:
                problems.append(f"{rel}: {problem}")
    return problems


def check_folder_files(folder) -> None:
    """Raise ValueError naming every file of ``folder`` that is a pickle by
    name, or not safetensors or text by content (see the module docstring)."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        return
    refuse_pickles(folder)
    problems = folder_problems(folder)
    if problems:
        shown = "; ".join(problems[:6]) + (f"; and {len(problems) - 6} more" if len(problems) > 6 else "")
        raise ValueError(f"refusing to load {folder}: {shown}. {FIX}")


def check_weights_folder(folder, required: list[str], hint: str = "") -> Path:
    """Raise a clear error if ``folder`` is missing, lacks ``required`` entries,
    or holds anything but safetensors and text; return it as a Path otherwise."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"weights folder {folder} does not exist" + (f"; {hint}" if hint else ""))
    check_folder_files(folder)
    missing = [name for name in required if not (folder / name).exists()]
    for sub in required:
        path = folder / sub
        if path.is_dir() and not any(path.glob("*.safetensors")):
            missing.append(f"{sub}/*.safetensors")
    if missing:
        raise FileNotFoundError(f"weights folder {folder} is incomplete; missing: {', '.join(missing)}" + (f". {hint}" if hint else ""))
    return folder
