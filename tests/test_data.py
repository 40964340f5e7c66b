"""`mirage-gym collect`: collect -> load -> recover round trips (npz, Minari, mp4),
resuming after a failure, worker processes and Ray."""

import json
from pathlib import Path

import numpy as np
import pytest

from mirage_gym.data import CollectArgs, CollectError, collect, collect_dataset, minari_io, mp4, npz

FAST = dict(env_id="MirageRoomOracle64-v0", world_model="oracle", obs_size=32, max_episode_steps=10)


def replay_matches(env, episode) -> bool:
    obs, _ = env.reset(seed=episode["meta"]["seed"])
    same = np.array_equal(obs["rgb"], episode["rgb"][0])
    for t, action in enumerate(episode["actions"]):
        obs, *_ = env.step(int(action))
        same &= np.allclose(obs["pose"], episode["pose"][t + 1], atol=1e-5)
    return bool(same)


def test_npz_and_mp4_round_trip(tmp_path):
    out = tmp_path / "data"
    summary = collect_dataset(CollectArgs(episodes=2, format="npz,mp4", out=str(out), memory_obs=True, video_scale=2, **FAST))
    assert summary["complete"] and summary["episodes"] == 2 and summary["episodes_per_min"] > 0
    assert not (out / ".partial").exists()
    assert json.loads((out / "manifest.json").read_text())["episodes"] == 2
    paths = npz.episode_paths(out)
    assert [p.name for p in paths] == ["episode_000000.npz", "episode_000001.npz"]
    ep = npz.load_episode(paths[1])
    T = len(ep["actions"])
    assert T == 10 and ep["truncations"][-1]
    assert ep["rgb"].shape == (T + 1, 32, 32, 3) and ep["pose"].shape == (T + 1, 7) and ep["c2w"].shape == (T + 1, 4, 4)
    assert ep["frames"].shape == (T, 1, 32, 32, 3) and ep["rewards"].shape == (T,)
    assert ep["memory"].ndim == 4 and ep["memory"].shape[0] == T + 1  # memory observations, recorded on request
    assert ep["meta"]["seed"] == 1 and ep["meta"]["env_kwargs"]["memory_obs"] is True
    np.testing.assert_allclose(ep["rewards"].sum(), ep["coverage"][-1] - ep["coverage"][0], atol=1e-5)
    env = npz.recover_environment(paths[1])
    assert env.spec.max_episode_steps == 10
    assert replay_matches(env, ep)
    video = mp4.read_video(out / "mp4" / "episode_000001.mp4")
    assert video.shape == (T + 1, 64, 64, 3)  # start frame + one generated frame per step, upscaled x2
    side = json.loads((out / "mp4" / "episode_000001.json").read_text())
    assert side["actions"] == ep["actions"].tolist()


def test_minari_round_trip(tmp_path, monkeypatch):
    import minari

    home_minari = Path.home() / ".minari"
    existed = home_minari.exists()
    out = tmp_path / "data"
    summary = collect_dataset(CollectArgs(episodes=2, format="minari", out=str(out), policy="random", **FAST))
    dataset_id = summary["config"]["dataset_id"]
    assert dataset_id == "mirage_gym/MirageRoomOracle64/random-v0"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(out / "minari"))
    dataset = minari.load_dataset(dataset_id)
    assert dataset.total_episodes == 2 and dataset.total_steps == 20
    ep = dataset[1]
    assert ep.observations["rgb"].shape == (11, 32, 32, 3) and ep.observations["rgb"].dtype == np.uint8
    assert ep.actions.shape == (10,) and ep.infos["c2w"].shape == (11, 4, 4)
    assert "frames" not in ep.infos  # the big per-step arrays are left to npz / mp4
    assert dataset.storage.metadata["algorithm_name"] == "random"
    env = dataset.recover_environment()
    assert env.spec.id == "MirageRoomOracle64-v0" and env.unwrapped.config.obs_size == 32
    obs, _ = env.reset(seed=1)
    assert np.array_equal(obs["rgb"], ep.observations["rgb"][0])  # lossless frames, same env
    assert minari_io.load(out).total_episodes == 2
    assert home_minari.exists() == existed  # never writes to ~/.minari


def test_failure_leaves_no_partial_dataset_and_resume_finishes(tmp_path, monkeypatch):
    out = tmp_path / "data"
    args = CollectArgs(episodes=3, format="npz,minari", out=str(out), **FAST)
    real = collect.run_job
    calls = []

    def flaky(job, cache=None):
        calls.append(job.episode_id)
        if job.episode_id == 1:
            raise RuntimeError("simulated crash")
        return real(job, cache)

    monkeypatch.setattr(collect, "run_job", flaky)
    with pytest.raises(CollectError, match="rerun the same command to resume"):
        collect_dataset(args)
    assert not (out / "manifest.json").exists() and not (out / "npz").exists() and not (out / "minari").exists()
    assert not list(out.rglob("*.tmp"))
    partial = json.loads((out / ".partial" / "manifest.json").read_text())
    assert list(partial["done"]) == ["0"]

    # another configuration must not mix into the unfinished collection
    with pytest.raises(CollectError, match="different configuration"):
        collect_dataset(CollectArgs(episodes=3, format="npz,minari", out=str(out), policy="random", **FAST))

    calls.clear()
    monkeypatch.setattr(collect, "run_job", lambda job, cache=None: (calls.append(job.episode_id), real(job, cache))[1])
    summary = collect_dataset(args)
    assert calls == [1, 2]  # episode 0 was not collected again
    assert summary["episodes"] == 3 and len(npz.episode_paths(out)) == 3
    assert minari_io.load(out).total_episodes == 3
    assert not (out / ".partial").exists()
    assert collect_dataset(args)["episodes"] == 3  # finished: a rerun has nothing to do


def test_two_worker_processes_match_one(tmp_path):
    one = collect_dataset(CollectArgs(episodes=2, format="npz", out=str(tmp_path / "one"), **FAST))
    two = collect_dataset(CollectArgs(episodes=2, format="npz", out=str(tmp_path / "two"), workers=2, **FAST))
    assert two["mode"] == "2 workers"
    for a, b in zip(npz.episode_paths(tmp_path / "one"), npz.episode_paths(tmp_path / "two")):
        ea, eb = npz.load_episode(a), npz.load_episode(b)
        assert np.array_equal(ea["actions"], eb["actions"]) and np.array_equal(ea["rgb"], eb["rgb"])
    assert one["return_mean"] == two["return_mean"]


def test_ray_local_cluster(tmp_path, monkeypatch):
    """A Ray cluster of this machine only (loopback, no dashboard) runs the
    episodes as tasks; they equal the in-process ones."""
    import ray
    from ray._private import ray_constants

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # inherited by Ray's processes
    monkeypatch.setattr(ray_constants, "ENABLE_RAY_CLUSTER", False)  # node address: the loopback interface
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        assert {node["NodeManagerAddress"] for node in ray.nodes()} == {"127.0.0.1"}
        summary = collect_dataset(CollectArgs(episodes=2, format="npz", out=str(tmp_path / "ray"), ray=True, workers=2, **FAST))
    finally:
        ray.shutdown()
    assert summary["mode"] == "ray" and summary["episodes"] == 2
    # without a running instance, collect starts its own local one (address "local") and stops it
    collect_dataset(CollectArgs(episodes=1, format="npz", out=str(tmp_path / "own"), ray=True, **FAST))
    assert not ray.is_initialized() and len(npz.episode_paths(tmp_path / "own")) == 1
    collect_dataset(CollectArgs(episodes=2, format="npz", out=str(tmp_path / "one"), **FAST))
    assert np.array_equal(npz.load_episode(npz.episode_paths(tmp_path / "own")[0])["rgb"],
                          npz.load_episode(npz.episode_paths(tmp_path / "one")[0])["rgb"])
    for a, b in zip(npz.episode_paths(tmp_path / "one"), npz.episode_paths(tmp_path / "ray"), strict=True):
        ea, eb = npz.load_episode(a), npz.load_episode(b)
        assert np.array_equal(ea["actions"], eb["actions"]) and np.array_equal(ea["rgb"], eb["rgb"])


def test_cli_collect(tmp_path, capsys):
    from mirage_gym.cli import main

    rc = main(["collect", "--env-id", "MirageRoomOracle64-v0", "--world-model", "oracle", "--obs-size", "32",
               "--max-episode-steps", "4", "--episodes", "1", "--format", "npz", "--out", str(tmp_path / "cli")])
    assert rc == 0 and "episodes_per_min" in capsys.readouterr().out
    assert main(["collect", "--format", "parquet", "--out", str(tmp_path / "bad")]) == 1
    assert "--format must be" in capsys.readouterr().err
