"""The `mirage-gym` command: demo | bench | eval | collect | train | play."""

from __future__ import annotations

import argparse
import dataclasses
import sys


def add_dataclass_args(parser: argparse.ArgumentParser, cls) -> None:
    """One --flag per dataclass field, typed by its default."""
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        flag = "--" + f.name.replace("_", "-")
        if isinstance(default, bool):
            parser.add_argument(flag, dest=f.name, default=default, action=argparse.BooleanOptionalAction)
        elif isinstance(default, (list, tuple)):
            kind = type(default[0]) if default else str
            parser.add_argument(flag, dest=f.name, default=default, nargs="+", type=kind)
        else:
            parser.add_argument(flag, dest=f.name, default=default, type=type(default) if default is not None else str)


def from_namespace(cls, ns: argparse.Namespace):
    return cls(**{f.name: getattr(ns, f.name) for f in dataclasses.fields(cls)})


def _train_commands(sub):
    from .training import export, train_denoiser, train_geometry, train_vae

    train = sub.add_parser("train", help="train the embedded world model (vae, geometry, denoiser), then export its weights")
    stages = train.add_subparsers(dest="stage", required=True)
    for name, module, cls in (("vae", train_vae, train_vae.VaeArgs), ("geometry", train_geometry, train_geometry.GeometryArgs),
                              ("denoiser", train_denoiser, train_denoiser.DenoiserArgs), ("export", export, export.ExportArgs)):
        p = stages.add_parser(name, help=(module.__doc__ or "").strip().splitlines()[0])
        add_dataclass_args(p, cls)
        p.set_defaults(run=lambda ns, module=module, cls=cls: module.main(from_namespace(cls, ns)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mirage-gym", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _train_commands(sub)
    from . import demo

    p = sub.add_parser("demo", help="run one episode and write runs/demo/episode.mp4 and a contact sheet")
    add_dataclass_args(p, demo.DemoArgs)
    p.set_defaults(run=lambda ns: demo.main(from_namespace(demo.DemoArgs, ns)))
    ns = parser.parse_args(argv)
    ns.run(ns)
    return 0


if __name__ == "__main__":
    sys.exit(main())
