"""`mirage-gym score --quick`: the transfer-score protocol end to end at smoke
size (PPO in the learned and the oracle world, every policy scored in the
oracle world on the same held-out episodes), and its statistics."""

import json
import math

import numpy as np
import pytest

from mirage_gym.agents import score


def test_intervals():
    m, lo, hi = score.t_interval([0.2, 0.4, 0.6])
    assert m == pytest.approx(0.4) and lo < 0.4 < hi and hi - 0.4 == pytest.approx(0.4 - lo)
    p, lo, hi = score.wilson(5, 10)
    assert p == 0.5 and 0.2 < lo < 0.3 and 0.7 < hi < 0.8  # the textbook 0.237 .. 0.763
    r, lo, hi = score.bootstrap_ratio([0.3, 0.3], [0.6, 0.6])
    assert r == pytest.approx(0.5) and lo == pytest.approx(0.5) and hi == pytest.approx(0.5)
    assert math.isnan(score.t_interval([0.5])[1])


def test_quick_score_runs_end_to_end(tmp_path, tiny_weights_or_skip):
    tiny_weights_or_skip()
    from mirage_gym.cli import main

    assert main(["score", "--quick", "--worlds", "tiny-none", "oracle", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "score.json").read_text())
    assert report["args"]["train_steps"] == 256 and report["args"]["seeds"] == 2
    names = [row["policy"] for row in report["summary"]["rows"]]
    assert names[:2] == ["PPO trained in tiny-none", "PPO trained in oracle"]
    assert {"expert (privileged)", "pose-only (blind)", "random (3 moves)"} <= set(names)
    for name, res in report["episodes"].items():  # every policy on the same 4 held-out episodes
        assert len(res["success"]) == 4, name
    expert = report["episodes"]["expert (privileged)"]["success"]
    assert np.mean(expert) >= 0.75  # the privileged expert on 4 held-out rooms
    assert "tiny-none" in report["summary"]["transfer_ratio"]
    assert all(run["env_steps"] >= 256 for run in report["runs"])
    table = (tmp_path / "score.md").read_text()
    assert "| PPO trained in oracle |" in table and "transfer ratio" in table
    assert (tmp_path / "score.png").stat().st_size > 10_000


def test_score_resumes_with_the_policies_an_earlier_run_trained(tmp_path, tiny_weights_or_skip, capsys):
    from mirage_gym.cli import main

    assert main(["score", "--quick", "--worlds", "oracle", "--seeds", "1", "--out", str(tmp_path)]) == 0
    first = json.loads((tmp_path / "score.json").read_text())
    model = tmp_path / "models" / "oracle_seed0.zip"
    stamp = model.stat().st_mtime_ns
    capsys.readouterr()
    assert main(["score", "--quick", "--worlds", "oracle", "--seeds", "1", "--out", str(tmp_path)]) == 0
    assert "kept the policy trained in oracle, seed 0" in capsys.readouterr().out
    assert model.stat().st_mtime_ns == stamp  # not retrained
    again = json.loads((tmp_path / "score.json").read_text())
    assert again["episodes"] == first["episodes"] and again["runs"] == first["runs"]
    # other training settings: retrained
    assert main(["score", "--quick", "--worlds", "oracle", "--seeds", "1", "--train-steps", "320", "--out", str(tmp_path)]) == 0
    assert json.loads((tmp_path / "score.json").read_text())["runs"][0]["env_steps"] >= 320
