"""`mirage-gym eval --mode revisit`: the --quick path, the revisit mask, and inf handling (the suite: test_eval_suite.py)."""

import json

import numpy as np
import torch

from mirage_gym.eval import consistency
from mirage_gym.geometry import intrinsics_from_fov, pose_from_yaw_pitch
from mirage_gym.scenes import ProceduralRoom

TINY = dict(quick=True, seeds=[1_000_001], loops=2, turn_steps=2, walk_steps=1, obs_size=32, frames_per_step=2)


def test_eval_quick_writes_everything(tmp_path, capsys):
    res = consistency.main(consistency.EvalArgs(out=str(tmp_path), world_model="oracle", **TINY), explicit=set(TINY))
    printed = capsys.readouterr().out
    assert "Revisit consistency" in printed and "eval took" in printed
    for name in ("eval.json", "results.md", "strip_1000001_leave_and_return.png", "strip_1000001_walk_out_and_back.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    data = json.loads((tmp_path / "eval.json").read_text())
    assert {"summary", "episodes", "command", "machine", "world_model", "seconds"} <= set(data)
    rows = {(r["trajectory"], r["memory"]): r for r in data["summary"]}
    assert set(rows) == {(t, m) for t in ("leave_and_return", "walk_out_and_back") for m in ("latent", "rgb", "none")}
    for r in rows.values():
        # oracle frames are the ground truth: exact, capped at 100 dB (never inf in the JSON)
        assert r["psnr_vs_first"] == consistency.PSNR_CAP and r["psnr_vs_gt"] == consistency.PSNR_CAP
        assert r["drift_db_per_loop"] == 0 and 0.5 < r["revisited_fraction"] <= 1
    # the memory readout is a real measurement: exact at the very pose the first
    # view was written from (ground-truth depth, exact codec), not after walking back
    for mem in ("latent", "rgb"):
        assert 10 < rows[("leave_and_return", mem)]["readout_psnr_vs_gt"] <= consistency.PSNR_CAP
        assert 10 < rows[("walk_out_and_back", mem)]["readout_psnr_vs_gt"] < consistency.PSNR_CAP
    assert rows[("leave_and_return", "none")]["readout_psnr_vs_gt"] is None
    assert "exact" in (tmp_path / "results.md").read_text()
    ep = data["episodes"][0]
    assert len(ep["loops"]) == 2 and "images" not in ep["loops"][0]


def test_eval_cli(tmp_path):
    from mirage_gym.cli import main

    rc = main(["eval", "--mode", "revisit", "--quick", "--out", str(tmp_path), "--world-model", "oracle", "--seeds", "1000002", "--loops", "1",
               "--turn-steps", "1", "--walk-steps", "1", "--obs-size", "32", "--frames-per-step", "1",
               "--memories", "latent", "--trajectories", "leave_and_return", "--no-strips"])
    assert rc == 0
    data = json.loads((tmp_path / "eval.json").read_text())
    assert [(r["trajectory"], r["memory"]) for r in data["summary"]] == [("leave_and_return", "latent")]
    assert data["command"].startswith("mirage-gym eval --mode revisit --quick") and "--seeds 1000002" in data["command"]


def test_revisit_mask_same_pose_is_static_geometry():
    room = ProceduralRoom(1_000_001)
    K = intrinsics_from_fov(90, 32, 32)
    pos = room.sample_position(np.random.default_rng(0))
    c2w = pose_from_yaw_pitch(pos, 0.3, 0.0)
    a = room.render(c2w, K, 32, 32, t=0.0)
    mask = consistency.revisit_mask(a, a, K, c2w, c2w, 0.05)
    expected = np.isfinite(a["depth"]) & a["static"]
    assert (mask == expected).mean() > 0.99
    # looking the other way: little of it was visible in the first view
    back = pose_from_yaw_pitch(pos, 0.3 + np.pi, 0.0)
    b = room.render(back, K, 32, 32, t=0.0)
    assert consistency.revisit_mask(a, b, K, c2w, back, 0.05).mean() < 0.05


def test_show_psnr_caps():
    assert consistency.show_psnr(100.0) == "exact" and consistency.show_psnr(None) == "-"
    assert consistency.show_psnr(23.456) == "23.46"
    assert torch.isfinite(torch.tensor(consistency.PSNR_CAP))


def test_eval_with_the_embedded_model(tmp_path, tiny_weights_or_skip):
    tiny_weights_or_skip()
    res = consistency.main(consistency.EvalArgs(out=str(tmp_path), world_model="auto", quick=True, seeds=[1_000_001], loops=1,
                                                turn_steps=1, walk_steps=1, memories=["latent"], trajectories=["leave_and_return"],
                                                strips=False),
                           explicit={"seeds", "loops", "turn_steps", "walk_steps", "memories", "trajectories", "strips"})
    assert res["world_model"].startswith("tiny")
    row = res["summary"][0]
    assert row["psnr_vs_gt"] is not None and 0 < row["psnr_vs_gt"] <= consistency.PSNR_CAP
