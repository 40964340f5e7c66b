"""The `mirage-gym` command: demo | bench | eval | collect | train | play | score."""

from __future__ import annotations

import argparse
import dataclasses
import sys


def _field_comments(cls) -> dict[str, str]:
    """Comments of the fields of ``cls`` and of the dataclasses it extends (:func:`_own_field_comments`)."""
    out: dict[str, str] = {}
    for base in reversed(cls.__mro__):
        if dataclasses.is_dataclass(base):
            out.update(_own_field_comments(base))
    return out


def _own_field_comments(cls) -> dict[str, str]:
    """The ``# comment`` that ends each field's line in the dataclass source
    (its one home of documentation, as CleanRL keeps an Args docstring per
    field), used as --help text: fields found by parsing the class, comments
    by Python's tokenizer, so a ``#`` inside a string default is not one."""
    import ast
    import inspect
    import io
    import textwrap
    import tokenize

    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    comments = {tok.start[0]: tok.string.lstrip("#").strip()
                for tok in tokenize.generate_tokens(io.StringIO(source).readline) if tok.type == tokenize.COMMENT}
    fields = [node for node in ast.parse(source).body[0].body if isinstance(node, ast.AnnAssign)]
    return {node.target.id: comments[node.end_lineno] for node in fields
            if isinstance(node.target, ast.Name) and node.end_lineno in comments}


def add_dataclass_args(parser: argparse.ArgumentParser, cls) -> None:
    """One --flag per dataclass field, typed by its default (help from its comment)."""
    comments = _field_comments(cls)
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        flag = "--" + f.name.replace("_", "-")
        text = comments.get(f.name, "")
        help_text = (text + " " if text else "") + f"(default: {default!r})".replace("%", "%%")
        if isinstance(default, bool):
            parser.add_argument(flag, dest=f.name, default=default, action=argparse.BooleanOptionalAction, help=text or None)
        elif isinstance(default, (list, tuple)):
            kind = type(default[0]) if default else str
            parser.add_argument(flag, dest=f.name, default=default, nargs="+", type=kind, help=help_text)
        else:
            parser.add_argument(flag, dest=f.name, default=default, type=type(default) if default is not None else str,
                                help=help_text)


def from_namespace(cls, ns: argparse.Namespace):
    return cls(**{f.name: getattr(ns, f.name) for f in dataclasses.fields(cls)})


def _train_commands(sub):
    from .training import export, train_decoder, train_denoiser, train_geometry, train_gpu, train_vae

    train = sub.add_parser("train", help=TRAIN_HELP)
    stages = train.add_subparsers(dest="stage", required=True)
    for name, module, cls in (("vae", train_vae, train_vae.VaeArgs), ("geometry", train_geometry, train_geometry.GeometryArgs),
                              ("denoiser", train_denoiser, train_denoiser.DenoiserArgs),
                              ("decoder", train_decoder, train_decoder.DecoderArgs), ("gpu", train_gpu, train_gpu.GpuArgs),
                              ("export", export, export.ExportArgs)):
        p = stages.add_parser(name, help=(module.__doc__ or "").strip().splitlines()[0])
        add_dataclass_args(p, cls)
        p.set_defaults(run=lambda ns, module=module, cls=cls: module.main(from_namespace(cls, ns)))


TRAIN_HELP = "train the embedded world model (vae, geometry, denoiser; optionally fine-tune the decoder), then export its weights"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(prog="mirage-gym", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    if argv[:1] == ["train"]:
        _train_commands(sub)
    else:  # the trainers import diffusers at module level: only load them for `train` (saves seconds per command)
        sub.add_parser("train", help=TRAIN_HELP)
    from . import demo

    p = sub.add_parser("demo", help="run one episode and write runs/demo/episode.mp4 and a contact sheet")
    add_dataclass_args(p, demo.DemoArgs)
    p.set_defaults(run=lambda ns: demo.main(from_namespace(demo.DemoArgs, ns)))
    _collect_command(sub)
    _play_command(sub)
    _bench_command(sub)
    _eval_command(sub)
    _score_command(sub)
    ns = parser.parse_args(argv)
    result = ns.run(ns)
    return result if isinstance(result, int) else 0


def _collect_command(sub):
    from .data import collect

    p = sub.add_parser("collect", help="roll out a policy for N episodes and record them (minari | mp4 | npz), "
                                       "in parallel with --workers W or --ray",
                       description=collect.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_dataclass_args(p, collect.CollectArgs)

    def run(ns):
        import torch

        args = from_namespace(collect.CollectArgs, ns)
        torch.set_num_threads(max(1, args.threads))
        try:
            collect.main(args)
        except (collect.CollectError, ValueError, OSError) as err:  # OSError: a disk full or a folder gone mid-run
            print(f"mirage-gym collect: {err}", file=sys.stderr)
            return 1
        return 0

    p.set_defaults(run=run)


def _play_command(sub):
    from . import play

    p = sub.add_parser("play", help="walk through a room with the keyboard, or headless from --keys to --record (needs pygame)",
                       description=play.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_dataclass_args(p, play.PlayArgs)
    p.set_defaults(run=lambda ns: play.main(from_namespace(play.PlayArgs, ns)))


def _explicit_command(sub, name: str, module, cls, help_text: str) -> None:
    """A subcommand whose ``module.main(args, explicit)`` learns which flags were given (``--quick`` fills the rest)."""
    p = sub.add_parser(name, help=help_text, description=module.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_args_tracking_explicit(p, cls)
    p.set_defaults(run=lambda ns: module.main(*_explicit_namespace(cls, ns)))


def _bench_command(sub):
    from .eval import bench

    _explicit_command(sub, "bench", bench, bench.BenchArgs,
                      "latent vs RGB (pixel-space) memory side by side: memory path, cache, frames/s, readout; writes runs/bench/")


def _eval_command(sub):
    from .eval import suite

    _explicit_command(sub, "eval", suite, suite.SuiteArgs,
                      "score every frame of near / explore / return trajectories against ground truth, beside "
                      "baselines (--mode revisit: the return view only); writes runs/eval/")


def _score_command(sub):
    from .agents import score

    _explicit_command(sub, "score", score, score.ScoreArgs,
                      "transfer score: PPO trained in the learned world(s) and the oracle, all scored in the "
                      "oracle world on held-out rooms; writes runs/score/")


def _add_args_tracking_explicit(parser: argparse.ArgumentParser, cls) -> None:
    """add_dataclass_args, but flags not given are left out of the namespace, so
    the command knows which were set explicitly (they win over its --quick preset)."""
    add_dataclass_args(parser, cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for action in parser._actions:  # (the --help text keeps showing the real defaults)
        if action.dest in names:
            action.default = argparse.SUPPRESS


def _explicit_namespace(cls, ns: argparse.Namespace):
    """(dataclass instance, names set on the command line) from a namespace built by _add_args_tracking_explicit."""
    given = {f.name for f in dataclasses.fields(cls) if hasattr(ns, f.name)}
    return cls(**{name: getattr(ns, name) for name in given}), given


if __name__ == "__main__":
    sys.exit(main())
