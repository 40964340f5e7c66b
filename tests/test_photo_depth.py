"""A photo start with a local depth model folder (transformers
AutoModelForDepthEstimation), any world model: here the embedded one, with a
tiny random Depth Anything built in the test (no download)."""

import logging
import os

os.environ["HF_HUB_OFFLINE"] = "1"

import gymnasium as gym
import imageio.v3 as iio
import numpy as np
import pytest
import torch

import mirage_gym
from mirage_gym.scenes.photo import PhotoScene


def tiny_depth_folder(path):
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config

    torch.manual_seed(0)
    backbone = Dinov2Config(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32, patch_size=14,
                            image_size=28, out_indices=[1, 2], reshape_hidden_states=False)
    model = DepthAnythingForDepthEstimation(DepthAnythingConfig(
        backbone_config=backbone, reassemble_hidden_size=16, neck_hidden_sizes=[8, 16], fusion_hidden_size=16,
        head_hidden_size=8, reassemble_factors=[2, 1], patch_size=14))
    with torch.no_grad():  # a random head ends in ReLU ~ 0; a positive bias gives a usable disparity
        model.head.conv3.bias.fill_(1.0)
    model.save_pretrained(path, safe_serialization=True)
    return path


def photo(path):
    yy, xx = np.mgrid[0:96, 0:128]
    iio.imwrite(path, np.stack([xx * 2 % 256, yy * 2 % 256, (xx + yy) % 256], -1).astype(np.uint8))
    return str(path)


def test_photo_start_uses_the_depth_model_folder(tmp_path, caplog, tiny_weights_or_skip):
    tiny_weights_or_skip()
    folder = tiny_depth_folder(tmp_path / "depth")
    image = photo(tmp_path / "room.png")
    with caplog.at_level(logging.WARNING):
        env = gym.make("MirageRoom-v0", scene=image, task="none", depth_model=str(folder))
        obs, info = env.reset(seed=0)
    scene = env.unwrapped.sim.episodes[0].scene
    assert isinstance(scene, PhotoScene) and scene.depth_source.startswith("estimated")
    assert "flat wall" not in caplog.text
    depth = scene.depth_at(16, 16)
    assert np.isfinite(depth).any() and np.nanstd(np.where(np.isfinite(depth), depth, np.nan)) > 0  # not a wall
    obs, *_ = env.step(mirage_gym.Action.TURN_LEFT)
    assert obs["rgb"].shape == (64, 64, 3)
    # without a depth model the flat-wall fallback stays, with its warning
    with caplog.at_level(logging.WARNING):
        flat = gym.make("MirageRoom-v0", scene=image, task="none")
        flat.reset(seed=0)
    assert "flat wall" in caplog.text


def test_depth_model_errors_name_the_fix(tmp_path, tiny_weights_or_skip):
    tiny_weights_or_skip()
    with pytest.raises(ValueError, match="needs scene="):
        gym.make("MirageRoom-v0", depth_model=str(tmp_path))
    env = gym.make("MirageRoom-v0", scene=photo(tmp_path / "p.png"), task="none",
                   depth_model=str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="hf download"):
        env.reset(seed=0)
