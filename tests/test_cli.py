"""The `mirage-gym` entry point: every subcommand is listed, and `train` loads its stages on demand."""

import contextlib
import io

import pytest

from mirage_gym.cli import main


def help_of(argv) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 0
    return out.getvalue()


def test_top_level_help_lists_every_command():
    text = help_of(["--help"])
    for command in ("demo", "bench", "eval", "collect", "train", "play"):
        assert command in text


@pytest.mark.parametrize("stage", ["vae", "geometry", "denoiser", "export"])
def test_train_stages_parse(stage):
    assert "--" in help_of(["train", stage, "--help"])


def test_reports_print_the_command_line_that_reproduces_them():
    """eval (suite and revisit) and bench share one rule (eval.commandline): flags that differ
    from what the command runs without them, the --quick preset counted as given."""
    from mirage_gym.eval import consistency, suite

    args = suite.apply_quick(suite.SuiteArgs(quick=True, explore_steps=30), {"explore_steps"})
    assert suite.command_line(args) == "mirage-gym eval --quick --explore-steps 30"
    assert suite.command_line(suite.SuiteArgs(loops=suite.SUITE_LOOPS, strips=False)) == "mirage-gym eval --no-strips"
    revisit = consistency.apply_quick(consistency.EvalArgs(quick=True), set())
    assert consistency._eval_command_line(revisit) == "mirage-gym eval --mode revisit --quick"
