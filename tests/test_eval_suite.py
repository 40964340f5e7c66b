"""`mirage-gym eval` (the agent-trajectory suite): metrics on cases with known
answers, the seen-in-start split on a hand-built two-pose case, the classifier
two-sample test, and a reproducibility smoke run."""

import json
import math
import shutil

import numpy as np
import pytest
import torch

from mirage_gym.eval import suite
from mirage_gym.eval.c2st import c2st, wilson_interval
from mirage_gym.eval.consistency import revisit_mask
from mirage_gym.eval.metrics import SCORE_NAMES, frame_scores
from mirage_gym.eval.trajectories import centre_start, forward_biased_actions, near_actions, simulate
from mirage_gym.geometry import intrinsics_from_fov, pose_from_yaw_pitch
from mirage_gym.scenes import ProceduralRoom


def _renders(n_rooms=6, per_room=60, size=32, seed=0):
    rng = np.random.default_rng(seed)
    K = intrinsics_from_fov(90, size, size)
    out = []
    for s in range(n_rooms):
        room = ProceduralRoom(1_000_001 + s)
        out += [room.render(room.sample_pose(rng), K, size, size, t=0.0)["rgb"] for _ in range(per_room)]
    return np.stack(out)


@pytest.fixture(scope="module")
def real_frames():
    return _renders()


# ----------------------------------------------------------------- metrics


def test_identical_frames_give_the_ceiling(real_frames):
    a = real_frames[:8]
    mask = np.zeros(a.shape[:3], bool)
    mask[:, :, :16] = True
    s = frame_scores(a, a, mask)
    for split in ("", "_seen", "_unseen"):
        assert torch.all(s["psnr" + split] == 100.0) and torch.all(s["layout_psnr" + split] == 100.0)
        for k in ("ssim", "edge_ratio", "std_ratio", "row_corr"):
            assert torch.allclose(s[k + split], torch.ones(8), atol=1e-5), k + split
    # torch uint8 and [-1, 1] float inputs give the same figures
    t = torch.from_numpy(a)
    f = t.permute(0, 3, 1, 2).float() / 127.5 - 1
    assert torch.allclose(frame_scores(t, t)["edge_ratio"], s["edge_ratio"])
    assert torch.allclose(frame_scores(f, f)["psnr"], s["psnr"])


def test_flat_frame_has_no_edges_and_no_profile(real_frames):
    a = real_frames[:8]
    flat = np.broadcast_to(a.reshape(8, -1, 3).mean(1).round().astype(np.uint8)[:, None, None], a.shape).copy()
    s = frame_scores(flat, a, np.ones(a.shape[:3], bool))
    assert torch.all(s["edge_ratio"] == 0) and torch.all(s["edge_ratio_seen"] == 0)
    assert torch.all(s["std_ratio"] < 1e-4) and torch.all(s["row_corr"] == 0)
    assert torch.all(torch.isnan(s["psnr_unseen"]))  # an empty split is undefined, not zero
    assert torch.all(s["psnr"] < 30) and torch.all(s["layout_psnr"] > s["psnr"])  # the mean colour is a fair coarse layout
    # a blurred copy: less edge energy than the truth, its layout kept far better than its pixels (and than flat's)
    x = torch.from_numpy(a).permute(0, 3, 1, 2).float()
    blur = torch.nn.functional.avg_pool2d(x, 3, 1, 1, count_include_pad=False).round().byte().permute(0, 2, 3, 1).numpy()
    b = frame_scores(blur, a)
    assert torch.all(b["edge_ratio"] < 0.8) and torch.all(b["std_ratio"] < 1)
    assert torch.all(b["layout_psnr"] > b["psnr"] + 5) and torch.all(b["layout_psnr"] > s["layout_psnr"] + 5)


def test_row_profile_correlation_sees_the_bands():
    H, W = 16, 16
    rows = np.linspace(0, 255, H).astype(np.uint8)
    truth = np.repeat(np.repeat(rows[:, None, None], W, 1), 3, 2)[None]
    flipped = truth[:, ::-1].copy()
    s = frame_scores(np.concatenate([truth, flipped]), np.concatenate([truth, truth]))
    assert s["row_corr"][0] == pytest.approx(1.0, abs=1e-5) and s["row_corr"][1] == pytest.approx(-1.0, abs=1e-5)


def test_seen_in_start_split_matches_a_hand_built_two_pose_case():
    """A wall 2 m ahead of both cameras (90 degree FOV, 16 px: the start view
    spans 4 m of it, 4 px per metre). The second camera stands 1 m to the
    start camera's right, so its column j sees the wall point the start camera
    shows in column j + 4: columns 12-15 look past the start view's right
    edge. An object 1 m away hides the wall from the start camera in its
    columns 8-9, i.e. the second camera's columns 4-5."""
    W = H = 16
    K = intrinsics_from_fov(90, H, W)
    start = pose_from_yaw_pitch([0.0, 0.0, 1.5], 0.0, 0.0)
    moved = pose_from_yaw_pitch([0.0, -1.0, 1.5], 0.0, 0.0)  # camera right is -y at yaw 0
    start_depth = np.full((H, W), 2.0, np.float32)
    start_depth[:, 8:10] = 1.0
    first = {"depth": start_depth, "static": np.ones((H, W), bool)}
    target = {"depth": np.full((H, W), 2.0, np.float32), "static": np.ones((H, W), bool)}
    mask = revisit_mask(first, target, K, start, moved, 0.05)
    expected = np.zeros((H, W), bool)
    expected[:, [0, 1, 2, 3, 6, 7, 8, 9, 10, 11]] = True
    assert (mask == expected).all()
    # a pixel that moves (not static) in the target never counts as seen
    target["static"][5, 0] = False
    assert not revisit_mask(first, target, K, start, moved, 0.05)[5, 0]
    # the split: right where seen, wrong elsewhere
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 256, (1, H, W, 3), dtype=np.uint8)
    frame = np.where(expected[None, ..., None], truth, 255 - truth).astype(np.uint8)
    s = frame_scores(frame, truth, expected[None])
    assert s["psnr_seen"][0] == 100.0 and s["psnr_unseen"][0] < 10
    # all pixels: the unseen error spread over 16 columns instead of 6
    assert float(s["psnr"][0]) == pytest.approx(float(s["psnr_unseen"][0]) + 10 * math.log10(16 / 6), abs=1e-3)


# ----------------------------------------------------------------- classifier test


def test_wilson_interval():
    lo, hi = wilson_interval(50, 100)
    assert lo == pytest.approx(0.4038, abs=1e-3) and hi == pytest.approx(0.5962, abs=1e-3)
    assert wilson_interval(10, 10)[1] == 1.0


def test_c2st_halves_of_one_set_are_indistinguishable(real_frames):
    r = c2st(real_frames[0::2], real_frames[1::2], seed=0, steps=150)
    assert 0.35 < r["accuracy"] < 0.65 and r["ci95"][0] < 0.5 < r["ci95"][1]
    assert r["n_test"] + r["n_train"] == len(real_frames)
    assert r["train_accuracy"] > 0.8  # it fits (memorises) its training frames: chance on held-out ones is the sets' doing


def test_c2st_tells_real_from_flat(real_frames):
    flat = np.broadcast_to(real_frames.reshape(len(real_frames), -1, 3).mean(1).round().astype(np.uint8)[:, None, None],
                           real_frames.shape).copy()
    r = c2st(real_frames, flat, seed=0, steps=150)
    assert r["accuracy"] >= 0.95 and r["ci95"][1] > 0.98  # ~1.0: a few 32x32 renders face a bare wall
    again = c2st(real_frames, flat, seed=0, steps=150)
    assert again["accuracy"] == r["accuracy"]  # seeded


# ----------------------------------------------------------------- trajectories


def test_explore_policies_take_turns_over_the_rooms():
    assert suite.explore_pairs([1, 2, 3], ["explorer", "random"], 2) == [(1, "explorer"), (2, "random")]
    assert suite.explore_pairs([1, 2, 3], ["explorer", "random"], 9) == [(1, "explorer"), (2, "random"), (3, "explorer"),
                                                                        (1, "random"), (2, "explorer"), (3, "random")]
    assert suite.explore_pairs([1], ["explorer", "random"], 2) == [(1, "explorer"), (1, "random")]


def test_agent_trajectories_are_seeded_and_stay_near():
    room = ProceduralRoom(1_000_001)
    start = centre_start(room)
    a = forward_biased_actions(room, start, 60, seed=3)
    assert a == forward_biased_actions(room, start, 60, seed=3) and a != forward_biased_actions(room, start, 60, seed=4)
    traj = simulate(room, start, near_actions(), frames_per_step=1)
    d = [np.linalg.norm(s.position - start.position) for s in traj.states]
    assert max(d) <= 0.5 + 1e-6 and d[-1] < 1e-6
    assert max(abs(math.degrees(math.remainder(s.yaw - start.yaw, 2 * math.pi))) for s in traj.states) <= 30 + 1e-6


# ----------------------------------------------------------------- the suite

SMOKE = dict(world_model="oracle", seeds=[1_000_001], obs_size=32, frames_per_step=1, explore_runs=2, explore_steps=12,
             near_steps=4, turn_steps=2, walk_steps=1, loops=2, c2st=["latent"], c2st_steps=20, strips=False)


def _numbers(res):
    """Every figure of a suite result (not its timings)."""
    c2 = {src: {k: v for k, v in r.items() if k != "seconds"} for src, r in res["c2st"].items()}
    return json.dumps({k: res[k] for k in ("summary", "drift_db_per_loop", "runs")} | {"c2st": c2}, sort_keys=True, default=str)


def test_suite_smoke_is_reproducible(tmp_path, capsys):
    a = suite.main(suite.SuiteArgs(out=str(tmp_path / "a"), **SMOKE), explicit=set(SMOKE))
    b = suite.main(suite.SuiteArgs(out=str(tmp_path / "b"), **SMOKE), explicit=set(SMOKE))
    assert _numbers(a) == _numbers(b) and a["c2st"]["latent"]["n_test"] > 0
    s = a["summary"]
    assert set(s) >= {"near", "explore", "explore: explorer", "explore: random", "return", "return view"}
    assert s["explore: explorer"]["frames"] == 12 and s["return view"]["frames"] == 4  # 2 loops x 2 trajectories
    assert s["near"]["frames"] == 4 and s["near: off the start pose"]["frames"] == 3  # L L R R: back at the start after step 4
    # the oracle's frames are the truth: every model source is exact, the oracle baseline too
    for g in s.values():
        for src in ("latent", "rgb", "none", "oracle", "codec"):
            assert g[src]["psnr"] == 100.0 and g[src]["edge_ratio"] == pytest.approx(1.0)
        assert g["flat"]["edge_ratio"] == 0 and g["flat"]["psnr"] < 30
    assert s["return view"]["start"]["psnr_seen"] == 100.0  # the return view is the start pose (movers have moved: not "seen")
    assert 0.5 < s["return view"]["seen_fraction"] <= 1 and s["explore"]["seen_fraction"] < s["near"]["seen_fraction"]
    data = json.loads((tmp_path / "a" / "eval.json").read_text())
    assert data["mode"] == "suite" and "--world-model oracle" in data["command"]
    assert "near" in (tmp_path / "a" / "results.md").read_text()


def test_suite_cli_writes_pictures(tmp_path):
    from mirage_gym.cli import main

    rc = main(["eval", "--quick", "--out", str(tmp_path), "--world-model", "oracle", "--obs-size", "32", "--frames-per-step", "1",
               "--explore-steps", "6", "--near-steps", "3", "--turn-steps", "1", "--walk-steps", "1", "--policies", "random",
               "--memories", "latent", "--c2st", "latent", "--c2st-steps", "10"])
    assert rc == 0
    names = {p.name for p in tmp_path.iterdir()}
    assert {"eval.json", "results.md", "curves_explore_random.png", "sheet_explore_random_1000001.png",
            "sheet_near_near_1000001.png", "sheet_return_walk_out_and_back_1000001.png"} <= names
    data = json.loads((tmp_path / "eval.json").read_text())
    assert data["command"].startswith("mirage-gym eval --quick") and "--explore-steps 6" in data["command"]


def test_suite_with_the_embedded_model_is_reproducible(tmp_path, tiny_weights_or_skip):
    tiny_weights_or_skip()
    from mirage_gym.models.tiny.world_model import DEFAULT_WEIGHTS

    # a weights folder whose world_model.json gained keys this code does not know
    folder = tmp_path / "weights"
    shutil.copytree(DEFAULT_WEIGHTS, folder)
    meta = json.loads((folder / "world_model.json").read_text())
    meta["config"]["a_future_option"] = 1
    meta["a_future_section"] = {"note": "ignored"}
    (folder / "world_model.json").write_text(json.dumps(meta))
    kw = dict(world_model=str(folder), seeds=[1_000_002], memories=["latent"], parts=["near", "explore"], policies=["random"],
              near_steps=3, explore_steps=4, c2st=[], strips=False)
    a = suite.main(suite.SuiteArgs(out=str(tmp_path / "a"), **kw), explicit=set(kw))
    b = suite.main(suite.SuiteArgs(out=str(tmp_path / "b"), **kw), explicit=set(kw))
    assert str(folder) in a["world_model"]
    assert _numbers(a) == _numbers(b)
    near = a["summary"]["near"]
    assert 10 < near["latent"]["psnr"] < near["codec"]["psnr"] < 100
    assert 0 < near["latent"]["edge_ratio"] < 1.5
