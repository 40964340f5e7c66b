"""The embedded model's training pipeline end to end, at smoke size: VAE ->
geometry head -> denoiser -> export -> the env runs the exported folder.
Each stage is resumable: a second call continues from its checkpoint."""

import json

import gymnasium as gym
import numpy as np
import torch

from mirage_gym import Action
from mirage_gym.models import load_world_model
from mirage_gym.training import export, train_denoiser, train_geometry, train_vae


def test_train_every_stage_then_export_and_run(tmp_path, monkeypatch):
    monkeypatch.setattr(train_denoiser, "evaluate_denoiser", lambda unet, maker, count=6: {"psnr_all": 0.0, "psnr_seen": 0.0})
    root = tmp_path / "ckpt"
    common = dict(threads=1, checkpoint_every=2, log_every=1, warmup=1)
    train_vae.main(train_vae.VaeArgs(out_dir=str(root / "vae"), steps=2, batch_size=2, **common))
    train_geometry.main(train_geometry.GeometryArgs(out_dir=str(root / "geometry"), vae_dir=str(root / "vae"), steps=2,
                                                    batch_size=2, **common))
    args = train_denoiser.DenoiserArgs(out_dir=str(root / "denoiser"), vae_dir=str(root / "vae"), geometry_dir=str(root / "geometry"),
                                       steps=2, batch_size=4, trajectory_length=3, pool_size=16, rollout_fraction=0.5, **common)
    train_denoiser.main(args)
    log = [json.loads(line) for line in (root / "denoiser" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2] and all(np.isfinite(r["loss"]) for r in log)
    args.steps = 3  # resume: one more step, appended to the same log
    train_denoiser.main(args)
    assert json.loads((root / "denoiser" / "state.json").read_text())["step"] == 3
    assert json.loads((root / "denoiser" / "log.jsonl").read_text().splitlines()[-1])["step"] == 3

    export.main(export.ExportArgs(checkpoints=str(root), out=str(tmp_path / "weights")))
    wm = load_world_model(str(tmp_path / "weights"))
    env = gym.make("MirageRoom-v0", world_model=wm)
    obs, _ = env.reset(seed=0)
    obs, *_ = env.step(Action.TURN_LEFT)
    assert obs["rgb"].shape == (64, 64, 3) and obs["rgb"].dtype == np.uint8
    assert all(p.dtype == torch.float32 for p in wm.denoiser.parameters())
