"""`mirage-gym demo` writes a watchable video; `mirage-gym play` explains a missing display."""

import json
import sys

import imageio.v2 as imageio
import numpy as np

import mirage_gym
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
    monkeypatch.delenv("SDL_VIDEODRIVER", raising=False)
    monkeypatch.setattr("sys.platform", "linux")
    assert main(["play"]) == play.NO_DISPLAY_EXIT == 2
    err = capsys.readouterr().err
    assert "pygame" in err or "display" in err


def test_play_headless_records_scripted_keys(tmp_path, monkeypatch, capsys):
    """SDL's dummy driver, --keys through the pygame event loop, --record: the
    shown frames are exactly a replay of the same actions."""
    import gymnasium as gym

    from mirage_gym.data.mp4 import read_video

    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    monkeypatch.delenv("DISPLAY", raising=False)
    assert "--keys" in play.display_problem(scripted=False)  # no keyboard under the dummy driver
    args = play.PlayArgs(env_id="MirageRoomOracle64-v0", keys="wwa.dr", record=str(tmp_path / "play.mp4"))
    env = gym.make("MirageRoomOracle64-v0", render_mode="rgb_array", obs_size=32, render_size=64)
    import pygame

    pygame.display.init()  # not pygame.init(): no audio device is opened
    try:
        shown = play.run(env, args)
    finally:
        pygame.quit()
    replay = gym.make("MirageRoomOracle64-v0", render_mode="rgb_array", obs_size=32, render_size=64)
    replay.reset(seed=0)
    expected = [replay.render()]
    for key in "wwa.dr":
        replay.step(int(play.KEYS_TO_ACTION.get(key, mirage_gym.Action.STAY)))
        expected.append(replay.render())
    assert len(shown) == 7 and all(np.array_equal(a, b) for a, b in zip(shown, expected))
    assert main(["play", "--env-id", "MirageRoomOracle64-v0", "--keys", "wd", "--record", str(tmp_path / "cli.mp4")]) == 0
    assert "recorded 3 frames" in capsys.readouterr().out and read_video(tmp_path / "cli.mp4").shape[0] == 3
    assert main(["play", "--keys", "wz"]) == play.NO_DISPLAY_EXIT and "unknown key" in capsys.readouterr().err


def test_play_names_its_extra_without_pygame(monkeypatch):
    monkeypatch.setitem(sys.modules, "pygame", None)  # import pygame raises ImportError
    assert 'pip install "mirage_gym[play]"' in play.display_problem(scripted=True)
