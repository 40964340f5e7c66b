"""The embedded model's training pipeline end to end, at smoke size: VAE ->
geometry head -> denoiser -> export -> the env runs the exported folder.
Each stage is resumable: a second call continues from its checkpoint."""

import json

import gymnasium as gym
import numpy as np
import pytest
import torch

from mirage_gym import Action
from mirage_gym.models import load_world_model
from safetensors.torch import load_file

from mirage_gym.training import export, train_decoder, train_denoiser, train_geometry, train_vae


def test_train_every_stage_then_export_and_run(tmp_path, monkeypatch):
    no_eval = lambda unet, maker, count=6: {"psnr_all": 0.0, "psnr_seen": 0.0}  # noqa: E731
    monkeypatch.setattr(train_denoiser, "evaluate_denoiser", no_eval)
    monkeypatch.setattr(train_decoder, "evaluate_denoiser", no_eval)
    rollouts = train_denoiser.evaluate_rollouts  # run for real, at smoke size
    monkeypatch.setattr(train_denoiser, "evaluate_rollouts", lambda unet, maker: rollouts(unet, maker, count=1, length=4))
    root = tmp_path / "ckpt"
    common = dict(threads=1, checkpoint_every=2, log_every=1, warmup=1)
    train_vae.main(train_vae.VaeArgs(out_dir=str(root / "vae"), steps=2, batch_size=2, **common))
    train_geometry.main(train_geometry.GeometryArgs(out_dir=str(root / "geometry"), vae_dir=str(root / "vae"), steps=2,
                                                    batch_size=2, **common))
    args = train_denoiser.DenoiserArgs(out_dir=str(root / "denoiser"), vae_dir=str(root / "vae"), geometry_dir=str(root / "geometry"),
                                       steps=2, batch_size=4, trajectory_length=3, pool_size=16, rollout_fraction=0.5,
                                       **common)
    train_denoiser.main(args)
    log = [json.loads(line) for line in (root / "denoiser" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2] and all(np.isfinite(r["loss"]) for r in log)
    args.steps = 3  # resume: one more step, appended to the same log
    train_denoiser.main(args)
    assert json.loads((root / "denoiser" / "state.json").read_text())["step"] == 3
    assert json.loads((root / "denoiser" / "log.jsonl").read_text().splitlines()[-1])["step"] == 3
    last = json.loads((root / "denoiser" / "eval.jsonl").read_text().splitlines()[-1])
    assert 0 <= last["rollout_pinned_share_late"] <= 1 and last["rollout_edge_ratio_early"] >= 0

    # The optional fine-tunes on the model's own frames: the geometry head (generated latents, true labels) ...
    train_geometry.main(train_geometry.GeometryArgs(out_dir=str(root / "geometry_gen"), vae_dir=str(root / "vae"),
                                                    init_from=str(root / "geometry"), denoiser_dir=str(root / "denoiser"),
                                                    geometry_for_rollouts=str(root / "geometry"), steps=2, batch_size=4,
                                                    trajectory_length=2, pool_size=8, **common))
    scores = [json.loads(line) for line in (root / "geometry_gen" / "eval.jsonl").read_text().splitlines()]
    assert [r["step"] for r in scores] == [0, 2] and all(0 <= r["gen_static_precision"] <= 1 for r in scores)
    # ... and the decoder: only the decoder moves, and the result exports in the VAE's place.
    train_decoder.main(train_decoder.DecoderArgs(out_dir=str(root / "decoder"), init_from=str(root / "vae"),
                                                 geometry_dir=str(root / "geometry"), denoiser_dir=str(root / "denoiser"),
                                                 steps=2, batch_size=4, trajectory_length=2, pool_size=8, **common))
    before, after = load_file(str(root / "vae" / "model.safetensors")), load_file(str(root / "decoder" / "model.safetensors"))
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("encoder."))
    assert not all(torch.equal(before[k], after[k]) for k in before if k.startswith("decoder."))
    assert [json.loads(line)["step"] for line in (root / "decoder" / "eval.jsonl").read_text().splitlines()] == [0, 2]

    export.main(export.ExportArgs(checkpoints=str(root), out=str(tmp_path / "weights"), vae_dir=str(root / "decoder")))
    wm = load_world_model(str(tmp_path / "weights"))
    assert wm.sampler.pin == 0.5 and wm.sampler.steps == 3
    env = gym.make("MirageRoom-v0", world_model=wm)
    obs, _ = env.reset(seed=0)
    obs, *_ = env.step(Action.TURN_LEFT)
    assert obs["rgb"].shape == (64, 64, 3) and obs["rgb"].dtype == np.uint8
    assert all(p.dtype == torch.float32 for p in wm.denoiser.parameters())


def test_rollout_samples_condition_on_the_models_own_frames():
    """With a rollout sampler, each segment's context is the last frame the
    model generated for the previous segment (as in the env), not an
    encoding, while the target stays the encoded ground truth; each segment
    draws its own noise map, shared by its K frames (as the env draws it)."""
    from mirage_gym.models.tiny.config import TinyConfig
    from mirage_gym.models.tiny.world_model import make_sampler
    from mirage_gym.models.tiny.world_model import build_networks

    cfg = TinyConfig()
    torch.manual_seed(0)
    nets = build_networks(cfg)
    maker = train_denoiser.SampleMaker(nets["vae"].eval(), None, cfg)
    sampler = make_sampler(nets["denoiser"].eval(), cfg, steps=1)
    generated, noises = [], []

    def recording_sampler(*inputs, **named):
        noises.append(inputs[4])
        generated.append(sampler(*inputs, **named))
        return generated[-1]

    s = maker(np.random.default_rng(0), 3, rollout=recording_sampler)
    assert len(generated) == 3  # one sampling run per segment
    K = generated[0].shape[0]
    assert all(torch.equal(n[0], n[-1]) for n in noises)  # one draw per segment
    assert not torch.allclose(noises[0][0], noises[1][0]) and not torch.allclose(noises[1][0], noises[2][0])
    for segment in (1, 2):
        context = s["context"][segment * K]
        assert torch.equal(context, generated[segment - 1][-1])
        assert not torch.allclose(context, s["target"][segment * K - 1], atol=1e-3)
    plain = maker(np.random.default_rng(0), 3)
    assert torch.equal(plain["target"], s["target"])  # same trajectory, same ground truth


def test_gpu_trainer_runs_on_the_cpu_resumes_and_exports_weights_the_env_loads(tmp_path):
    """`mirage-gym train gpu` at smoke size on the CPU: workers render, the
    trainer stops after its steps, a second run resumes the step count, and
    the exported folder (with the pin and the UNet size it trained with,
    a fresh UNet of another size than the shipped one) runs in the env."""
    from mirage_gym.models.tiny.pipeline import PINNING_OFF
    from mirage_gym.training import train_gpu

    args = train_gpu.GpuArgs(out_dir=str(tmp_path / "gpu"), device="cpu", batch_size=4, workers=1, trajectory_length=2,
                             run_steps=2, eval_trajectories=1, budget_s=300, memory_pin=PINNING_OFF,
                             unet_channels=(16, 32, 48), init_from="")
    first = train_gpu.main(args)
    second = train_gpu.main(args)
    assert (first["step"], second["step"]) == (2, 4)
    assert np.isfinite(second["psnr_all"]) and 0 <= second["edge_ratio"] < 10
    assert json.loads((tmp_path / "gpu" / "checkpoint" / "state.json").read_text())["step"] == 4
    wm = load_world_model(str(tmp_path / "gpu" / "weights"))
    assert wm.sampler.pin == PINNING_OFF and tuple(wm.cfg.unet_channels) == (16, 32, 48)
    env = gym.make("MirageRoom-v0", world_model=wm)
    env.reset(seed=0)
    obs, *_ = env.step(Action.FORWARD)
    assert obs["rgb"].shape == (64, 64, 3)


def test_sample_pool_fills_once_refills_at_its_rate_and_stays_bounded():
    from mirage_gym.training.pool import SamplePool

    made = []

    def make(rng):
        made.append(len(made))
        return [{"x": torch.full((2,), float(len(made)))} for _ in range(3)]  # one "trajectory" = 3 samples

    pool = SamplePool(make, size=10, warm=6, refill=0.25)
    rng = np.random.default_rng(0)
    batch = pool.batch(rng, 5)
    assert batch["x"].shape == (5, 2) and len(made) == 2  # warmed to 6 samples, nothing owed yet
    for _ in range(7):
        pool.batch(rng, 5)
    assert len(made) == 4 and len(pool) == 10  # 8 calls x 0.25 = 2 more trajectories; the oldest sample dropped
    with pytest.raises(ValueError, match="refill"):
        SamplePool(make, size=10, warm=6, refill=-1)


def test_a_denoiser_of_another_size_trains_exports_and_runs(tmp_path, monkeypatch):
    """--unet-channels / --unet-layers-per-block: the run trains at that size,
    export reads the size back from the run's args, and the env runs it."""
    monkeypatch.setattr(train_denoiser, "evaluate_denoiser", lambda unet, maker, count=6: {"psnr_all": 0.0})
    monkeypatch.setattr(train_denoiser, "evaluate_rollouts", lambda unet, maker: {})
    out = tmp_path / "denoiser"
    train_denoiser.main(train_denoiser.DenoiserArgs(out_dir=str(out), unet_channels=(16, 32, 48), unet_layers_per_block=2,
                                                    steps=1, batch_size=2, trajectory_length=2, pool_size=8, threads=1,
                                                    checkpoint_every=1, warmup=1))
    weights = export.main(export.ExportArgs(out=str(tmp_path / "weights"), vae_dir=str(export.DEFAULT_WEIGHTS),
                                            geometry_dir=str(export.DEFAULT_WEIGHTS), denoiser_dir=str(out)))
    config = json.loads((weights / "world_model.json").read_text())["config"]
    assert config["unet_channels"] == [16, 32, 48] and config["unet_layers_per_block"] == 2
    env = gym.make("MirageRoom-v0", world_model=str(weights), frames_per_step=1)
    env.reset(seed=0)
    obs, *_ = env.step(Action.FORWARD)
    assert obs["rgb"].shape == (64, 64, 3)
    env.close()
