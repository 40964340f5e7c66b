"""The `--quick` preset and the command line that reproduces a run, shared by bench and eval.

Each command's arguments are a dataclass with a ``quick`` field and a QUICK
preset (field -> CI-sized value); a report prints the command line that
gives its figures again.
"""

from __future__ import annotations

import dataclasses


def apply_quick(args, explicit, quick: dict):
    """--quick: the ``quick`` preset for every field not set explicitly
    (``explicit``: the names given on the command line; None: those left at
    the full-run default)."""
    if not args.quick:
        return args
    defaults = type(args)()
    for name, value in quick.items():
        given = name in explicit if explicit is not None else getattr(args, name) != getattr(defaults, name)
        if not given:
            setattr(args, name, value)
    return args


def command_line(prog: str, args, quick: dict, implied: dict | None = None) -> str:
    """``prog`` and the flags that differ from what it runs without them: the
    full-run defaults, or with ``--quick`` the preset (``implied``: fields
    whose default stands for this value, e.g. a 0 meaning "the mode's own")."""
    parts, defaults, implied = [prog], type(args)(), implied or {}
    for f in dataclasses.fields(args):
        v, d = getattr(args, f.name), getattr(defaults, f.name)
        if args.quick and f.name in quick:
            if v != quick[f.name]:
                parts.append(flag(f.name, v))
        elif v != d and v != implied.get(f.name, d):
            parts.append(flag(f.name, v))
    return " ".join(parts)


def flag(name: str, v) -> str:
    """``--name value`` as argparse (cli.add_dataclass_args) reads it back."""
    option = "--" + name.replace("_", "-")
    if isinstance(v, bool):
        return option if v else "--no-" + name.replace("_", "-")
    if isinstance(v, list):
        return option + " " + " ".join(str(x) for x in v)
    return f"{option} {v}"
