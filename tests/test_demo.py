"""`mirage-gym demo` writes a watchable video; `mirage-gym play` explains a missing display."""

import json

import imageio.v2 as imageio
import numpy as np

from mirage_gym import demo, play
from mirage_gym.cli import main


def test_demo_writes_video_contact_sheet_and_summary(tmp_path):
    summary = demo.main(demo.DemoArgs(world_model="oracle", steps=30, out=str(tmp_path), panel=64))
    assert summary["steps"] == 30
    reader = imageio.get_reader(str(tmp_path / "episode.mp4"))
    frames = [np.asarray(f) for f in reader]
    reader.close()
    assert len(frames) == 30  # one frame per step
    assert frames[0].shape == (64, 3 * 64, 3)  # generated | ground truth | memory map
    assert frames[5].std() > 5  # not a blank video
    sheet = imageio.imread(tmp_path / "contact_sheet.png")
    assert sheet.shape[1] == 2 * 3 * 64
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["revisits"] >= 1 and saved["revisit_psnr_db"] > 20  # oracle: same view; only moving objects differ
    for key in ("frames_per_s", "memory_tokens", "memory_bytes"):
        assert saved[key] > 0


def test_cli_demo(tmp_path, capsys):
    assert main(["demo", "--world-model", "oracle", "--steps", "4", "--panel", "32", "--out", str(tmp_path)]) == 0
    assert "revisit_psnr_db" in capsys.readouterr().out
    assert (tmp_path / "episode.mp4").stat().st_size > 0


def test_demo_with_the_learned_world_model(tmp_path, tiny_weights_or_skip):
    tiny_weights_or_skip()
    summary = demo.main(demo.DemoArgs(world_model="tiny", steps=6, out=str(tmp_path), panel=64))
    assert summary["world_model"] == "tiny" and summary["steps"] == 6


def test_play_without_a_display_says_so(monkeypatch, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr("sys.platform", "linux")
    assert main(["play"]) == play.NO_DISPLAY_EXIT == 2
    err = capsys.readouterr().err
    assert "pygame" in err or "display" in err
