"""`mirage-gym bench`: the --quick path end to end on CI-sized settings, and
the pieces whose correctness the figures rest on (exact voxel counting, the
trajectories, the cache summary)."""

import json
import math

import pytest
import torch

from mirage_gym.eval import bench
from mirage_gym.eval.bench_cache import RULE, VoxelCounter, summarise_cache
from mirage_gym.eval.bench_setup import build_wan_vae, embedded_world_model, render_segment, time_calls
from mirage_gym.eval.trajectories import centre_start, leave_and_return, room_tour, simulate, walk_out_and_back
from mirage_gym.geometry import intrinsics_from_fov
from mirage_gym.memory import RGBPointCloudMemory
from mirage_gym.scenes import ProceduralRoom

# CI-sized: every section runs, Wan models at diffusers' test sizes (not a cost measurement).
TINY = dict(quick=True, wan_vae="test", tour_steps=10, flat_from=5, validate_steps=6, wan_size=64, wan_frames=5,
            wan_tour_steps=8, wan_validate_steps=4, e2e_envs=[2], e2e_frames=8, repeats=2, readout_write_steps=3,
            readout_views=2, wan_dit=True, wan_decode=True, e2e_repeats=2, e2e_late_step=3,
            sections=["cache", "memory_path", "e2e", "readout"])  # speed: its own test (fresh processes)


@pytest.fixture(scope="module")
def room():
    return ProceduralRoom(1_000_003)


def test_bench_quick_writes_everything(tmp_path, capsys):
    res = bench.main(bench.BenchArgs(out=str(tmp_path), **TINY), explicit=set(TINY))
    printed = capsys.readouterr().out
    for title in ("Memory path per frame", "Cache under the env's rule (update='fill')", "Cache over the long tour, embedded scale",
                  "Cache after N segments, Wan scale",
                  "End-to-end frames/s", "Readout fidelity", "Targets", "bench took"):
        assert title in printed
    for name in ("bench.json", "results.md", "cache_embedded.png", "cache_wan.png", "memory_path.png", "e2e_fps.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    data = json.loads((tmp_path / "bench.json").read_text())
    assert {"machine", "model", "command", "cache", "memory_path", "e2e", "wan_projection", "readout", "targets", "seconds"} <= set(data)
    # the world model in use is named, and the random-weight stand-in is labelled as such
    assert "oracle" in data["model"]["world_model"] or data["model"]["trained_weights"]
    if not data["model"]["trained_weights"]:
        assert "RANDOM" in data["model"]["codec"]
    mp = data["memory_path"]
    assert mp["embedded"]["ratio"] > 0 and mp["embedded"]["latent_ms_per_frame"] > 0
    assert set(mp["wan"]) == {"wan2.1", "wan2.2"} and "NOT a cost measurement" in mp["wan"]["wan2.2"]["config"]
    assert mp["wan"]["wan2.2"]["channels"] == 48 and mp["wan"]["wan2.2"]["spatial_factor"] == 16
    cache = data["cache"]
    assert cache["checks"]["embedded"]["equal"] and cache["checks"]["wan"]["equal"]
    s = cache["summary"]["embedded"]
    assert s["after_5_segments"]["step"] == 5 and s["after_5_segments"]["ratio_bytes_rgb_over_latent"] > 1
    # the env's rule: both memories really ran under fill, and the memory path timed those memories
    fill = cache["summary"]["embedded_env_rule"]
    assert fill["rule"] == "fill" and fill["at_end"]["step"] == 6 and fill["at_end"]["ratio_bytes_rgb_over_latent"] > 1
    assert fill["at_end"]["latent_tokens"] <= cache["curves"]["embedded"]["lat_tokens"][5]  # fill stores a subset
    assert mp["embedded"]["rule"] == "fill" and mp["embedded"]["latent_tokens"] == fill["at_end"]["latent_tokens"]
    assert len(cache["curves"]["embedded"]["step"]) == 10 and len(cache["curves"]["wan"]["step"]) == 8
    rows = data["e2e"]["rows"]
    assert {(r["mode"], r["num_envs"], r["memory"], r["phase"]) for r in rows} == {
        (m, n, k, p) for m, n in (("single", 1), ("vector", 2)) for k in ("latent", "rgb", "none") for p in ("early", "late")}
    assert all(len(r["raw_fps"]) == 2 and 0 < r["fps"]["min"] <= r["fps"]["median"] <= r["fps"]["max"] for r in rows)
    assert "PROJECTION" in data["wan_projection"]["label"]
    assert data["readout"]["codecs"]["pixel-unshuffle"]["meaningful"]
    md = (tmp_path / "results.md").read_text()
    assert "mirage-gym bench --quick" in md and "| step |" in md and "Machine:" in md


def test_bench_cli_sections(tmp_path):
    from mirage_gym.cli import main

    rc = main(["bench", "--quick", "--out", str(tmp_path), "--sections", "cache", "--tour-steps", "6", "--validate-steps", "3",
               "--flat-from", "3", "--wan-vae", "off", "--no-plots"])
    assert rc == 0
    data = json.loads((tmp_path / "bench.json").read_text())
    assert "cache" in data and "e2e" not in data and "wan" not in data["cache"]["summary"]


def test_quick_preset_keeps_explicit_flags():
    args = bench.apply_quick(bench.BenchArgs(quick=True, tour_steps=33, wan_dit=True), explicit={"tour_steps", "wan_dit"})
    assert args.tour_steps == 33 and args.wan_dit and args.wan_size == bench.QUICK["wan_size"]
    line = bench.command_line(args)
    assert "--tour-steps 33" in line and "--wan-dit" in line and "--wan-size" not in line


def test_cli_marks_explicit_flags():
    import argparse

    from mirage_gym.cli import _add_args_tracking_explicit, _explicit_namespace

    p = argparse.ArgumentParser()
    _add_args_tracking_explicit(p, bench.BenchArgs)
    args, given = _explicit_namespace(bench.BenchArgs, p.parse_args(["--quick", "--wan-dit", "--e2e-envs", "2", "3"]))
    assert given == {"quick", "wan_dit", "e2e_envs"} and args.e2e_envs == [2, 3] and args.wan_dit
    assert args.tour_steps == bench.BenchArgs().tour_steps


def test_voxel_counter_matches_rgb_memory(room):
    start, actions = room_tour(room, 6)
    traj = simulate(room, start, actions, 3)
    K = intrinsics_from_fov(room.fov_deg, 32, 32)
    mem, counter = RGBPointCloudMemory(0.03, update=RULE, align_depth=False), VoxelCounter(0.03, room.bounds)
    for i in range(len(traj)):
        r = render_segment(room, traj.paths[i], traj.times[i], 32, K)
        mem.write(r.rgb, r.depth, K, traj.paths[i], static_mask=r.static)
        counter.add(r.depth, K, traj.paths[i], r.static)
        assert counter.count == mem.num_tokens
    assert counter.written >= counter.count


def test_trajectories_return_to_start(room):
    start = centre_start(room)
    assert room.is_free(start.position)
    traj = simulate(room, start, leave_and_return(5), 2)
    end = traj.states[-1]
    assert math.isclose(end.x, start.x) and math.isclose(end.y, start.y) and abs(math.sin(end.yaw - start.yaw)) < 1e-9
    s2, actions = walk_out_and_back(room, start, 3)
    traj = simulate(room, s2, actions, 2)
    assert not any(traj.collided)
    end = traj.states[-1]
    assert abs(end.x - s2.x) < 1e-6 and abs(end.y - s2.y) < 1e-6 and abs(math.cos(end.yaw - s2.yaw) - 1) < 1e-9
    assert traj.paths.shape == (len(actions), 2, 4, 4)


def test_room_tour_is_deterministic_and_mostly_unblocked(room):
    s1, a1 = room_tour(room, 80)
    s2, a2 = room_tour(room, 80)
    assert a1 == a2 and len(a1) == 80
    traj = simulate(room, s1, a1, 1)
    assert sum(traj.collided) < 10


def test_cache_summary_growth_and_ratios():
    steps = list(range(1, 11))
    curves = {"step": steps, "lat_tokens": [10 * s for s in steps], "lat_bytes": [280 * s for s in steps],
              "rgb_points": [160 * s for s in steps], "rgb_bytes": [2400 * s for s in steps],
              "nodedup_lat_tokens": [20 * s for s in steps], "nodedup_lat_bytes": [560 * s for s in steps],
              "nodedup_rgb_points": [320 * s for s in steps], "nodedup_rgb_bytes": [4800 * s for s in steps],
              "lat_env_depth_tokens": [10 * s for s in steps]}
    wc = {k: [] for k in ("step",)}
    out = summarise_cache(curves, wc, {}, flat_from=5)["embedded"]
    assert out["after_5_segments"]["ratio_bytes_rgb_over_latent"] == pytest.approx(2400 / 280)
    assert out["growth_pct"]["latent"] == pytest.approx(100.0)


def test_wan_vae_encoder_only_build_runs():
    vae = build_wan_vae("wan2.2", "test")
    with torch.no_grad():
        z = vae.encode(torch.rand(1, 3, 5, 32, 32) * 2 - 1).latent_dist.mode()
    assert z.shape == (1, 48, 2, 2, 2) and torch.isfinite(z).all()


def test_embedded_world_model_labels():
    mut = embedded_world_model("oracle", 32)
    assert not mut.trained and "RANDOM" in mut.codec_label
    z = mut.codec.encode(torch.zeros(2, 3, 32, 32))
    assert z.shape == (2, mut.codec.latent_channels, 8, 8)
    t = time_calls(lambda i: None, 3, warmup=1)
    assert t["n"] == 3 and t["median_ms"] >= 0
    with pytest.raises(ValueError):
        embedded_world_model("nope")


def test_bench_uses_the_embedded_model_when_installed(tmp_path, tiny_weights_or_skip):
    tiny_weights_or_skip()
    args = dict(quick=True, sections=["memory_path", "e2e"], wan_vae="off", tour_steps=8, validate_steps=4, flat_from=4,
                e2e_envs=[2], e2e_frames=8, e2e_late_step=3, repeats=2, plots=False)
    data = bench.main(bench.BenchArgs(out=str(tmp_path), **args), explicit=set(args))
    assert data["model"]["trained_weights"] and data["model"]["world_model"].startswith("tiny")
    assert data["memory_path"]["embedded"]["ratio"] > 0


def test_speed_section_startup_and_threads_in_fresh_processes(tmp_path):
    """The speed rows (oracle, to stay fast): fresh processes with the user's default threads."""
    from mirage_gym.eval import bench_speed

    st = bench_speed.run_startup(ids=("MirageRoomOracle64-v0",), repeats=1, log=lambda s: None)
    r = st["results"]["MirageRoomOracle64-v0"]
    assert r["wall_s"]["n"] == 1 and r["wall_s"]["median"] > sum(r["median_parts_s"].values()) > 0
    th = bench_speed.run_threads(world_model="oracle", scene_seed=3, frames_per_step=2, vector_envs=2, repeats=1,
                                 window_steps=2, window_s=5.0, log=lambda s: None)
    assert set(th["rows"]) == {"single", "vector"}
    for by in th["rows"].values():
        assert all(by[s]["median"] > 0 for s in bench_speed.THREAD_SETTINGS) and by["default_over_1_thread"] > 0
    res = {"startup": st, "threads": th}
    text = "\n".join(t.text() for t in bench_speed.speed_tables(res))
    assert "Startup: fresh process" in text and "Frames/s by thread setting" in text
    lines = bench_speed.speed_target_lines(res)
    assert any(line.startswith("Startup MirageRoomOracle64-v0") for line in lines)
    assert sum("No collapse" in line for line in lines) == 2
