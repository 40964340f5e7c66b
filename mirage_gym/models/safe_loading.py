"""Safe loading of weight folders: safetensors only, never unpickle.

A folder that holds pickle-based weights (.bin, .pt, .pth, .ckpt, .pkl) is
refused before anything is read from it: loading those runs arbitrary code.
"""

from __future__ import annotations

from pathlib import Path

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")


def find_pickles(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in PICKLE_SUFFIXES and p.is_file())


def refuse_pickles(folder) -> None:
    """Raise ValueError if ``folder`` (searched recursively) holds any
    pickle-based weight file. Reads directory entries only, never a file."""
    folder = Path(folder).expanduser()
    pickles = find_pickles(folder) if folder.is_dir() else []
    if pickles:
        names = ", ".join(str(p.relative_to(folder)) for p in pickles[:5]) + (" ..." if len(pickles) > 5 else "")
        raise ValueError(f"refusing to load {folder}: it contains pickle-based weight files ({names}). "
                         "mirage_gym loads safetensors only, because unpickling a file can run arbitrary code; "
                         "convert them with safetensors.torch.save_file and remove the pickles")


def check_weights_folder(folder, required: list[str], hint: str = "") -> Path:
    """Raise a clear error if ``folder`` is missing, lacks ``required`` entries,
    or contains pickle files; return it as a Path otherwise."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"weights folder {folder} does not exist" + (f"; {hint}" if hint else ""))
    refuse_pickles(folder)
    missing = [name for name in required if not (folder / name).exists()]
    for sub in required:
        path = folder / sub
        if path.is_dir() and not any(path.glob("*.safetensors")):
            missing.append(f"{sub}/*.safetensors")
    if missing:
        raise FileNotFoundError(f"weights folder {folder} is incomplete; missing: {', '.join(missing)}" + (f". {hint}" if hint else ""))
    return folder
