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
