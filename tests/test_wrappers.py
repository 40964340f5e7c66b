"""mirage_gym.wrappers on a stock install: MP4 recording without MoviePy,
resizing and stacking the Dict observation, a continuous pose feature."""

import gymnasium as gym
import numpy as np
import pytest

import mirage_gym  # noqa: F401
from mirage_gym import Action
from mirage_gym.data.mp4 import read_video
from mirage_gym.images import resize_uint8
from mirage_gym.wrappers import ContinuousPose, RecordVideo, ResizeRGB

ORACLE = dict(obs_size=32, max_episode_steps=3)


def test_record_video_writes_every_generated_frame(tmp_path):
    env = RecordVideo(gym.make("MirageRoomOracle-v0", **ORACLE), tmp_path / "videos", episode_trigger=lambda i: i == 1)
    frames = []
    for episode in range(2):
        obs, _ = env.reset(seed=episode)
        frames = [obs["rgb"]]
        done = False
        while not done:
            obs, _, terminated, truncated, info = env.step(Action.TURN_LEFT)
            frames.extend(info["frames"])
            done = terminated or truncated
    env.close()
    assert [p.name for p in env.videos] == ["mirage-episode-1.mp4"]  # only the triggered episode
    video = read_video(env.videos[0])
    assert video.shape == (1 + 3 * 4, 32, 32, 3)  # the reset frame + 4 generated frames per step
    error = np.abs(video.astype(float) - np.stack(frames).astype(float)).mean()
    assert error < 12, error  # H.264 is lossy; another episode's frames would differ far more


def test_record_video_refuses_a_box_observation():
    with pytest.raises(ValueError, match="obs\\['rgb'\\]"):
        RecordVideo(gym.make("CartPole-v1"), "unused")


def test_resize_and_stack_the_dict_observation():
    env = gym.wrappers.FrameStackObservation(ResizeRGB(gym.make("MirageRoomOracle64-v0", **ORACLE), (16, 24)), 4)
    obs, _ = env.reset(seed=0)
    obs, *_ = env.step(Action.FORWARD)
    assert obs["rgb"].shape == (4, 16, 24, 3) and obs["pose"].shape == (4, 7)
    assert env.observation_space.contains(obs)
    raw = env.unwrapped.sim.observation(0)["rgb"]
    assert np.array_equal(obs["rgb"][-1], resize_uint8(raw, 16, 24))
    flat = np.full((32, 32, 3), 77, np.uint8)
    assert (resize_uint8(flat, 16, 24) == 77).all()  # antialiased resize keeps a flat colour
    with pytest.raises(ValueError, match="positive int"):
        ResizeRGB(gym.make("MirageRoomOracle64-v0", **ORACLE), 0)


def test_continuous_pose_has_no_jump_in_a_full_turn():
    env = gym.make("MirageRoomOracle64-v0", obs_size=16, max_episode_steps=30)
    wrapped = ContinuousPose(env)
    obs, _ = wrapped.reset(seed=0)
    quats, feats = [env.unwrapped.sim.observation(0)["pose"][3:]], [obs["pose"]]
    for _ in range(24):  # 24 x 15 degrees: one full turn
        obs, _, _, _, info = wrapped.step(Action.TURN_LEFT)
        quats.append(env.unwrapped.sim.observation(0)["pose"][3:])
        feats.append(obs["pose"])
        R = info["c2w"][:3, :3]
        np.testing.assert_allclose(obs["pose"][3:], np.concatenate([R[:, 0], R[:, 1]]), atol=1e-5)
    quats, feats = np.array(quats), np.array(feats)
    assert (quats[:, 0] >= 0).all()  # canonical: w >= 0
    assert np.abs(np.diff(quats, axis=0)).max() > 1.0  # ... which still flips once per turn (see ContinuousPose)
    assert np.abs(np.diff(feats, axis=0)).max() < 0.3  # 15 degrees moves a unit column by 0.26 at most
    assert wrapped.observation_space.contains(obs)
