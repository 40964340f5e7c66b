"""What the native vector env shares with N single envs for the learned world
model, and the one thing that differs (docs/agents.md, "Vector env")."""

import dataclasses

import gymnasium as gym
import numpy as np
import torch

import mirage_gym  # noqa: F401
from mirage_gym.geometry import intrinsics_from_fov
from mirage_gym.models import SegmentRequest, load_world_model


def test_batched_generation_differs_from_single_episodes_by_rounding_only(tiny_weights_or_skip):
    """Each episode's noise comes from its own generator, so a batch of 4
    episodes equals 4 batches of one up to float rounding (batch-size dependent
    convolution kernels), never by a different noise draw."""
    tiny_weights_or_skip()
    wm = load_world_model("tiny")
    C, (h, w) = wm.latent_channels, wm.latent_size
    B, K = 4, 4
    g = torch.Generator().manual_seed(0)
    c2w = torch.eye(4).repeat(B, K, 1, 1)
    c2w[..., 0, 3] = torch.rand(B, K, generator=g)
    request = SegmentRequest(
        c2w=c2w, K=intrinsics_from_fov(90, 64, 64), context_latent=torch.randn(B, C, h, w, generator=g),
        context_c2w=torch.eye(4).repeat(B, 1, 1), memory_latent=torch.randn(B, K, C, h, w, generator=g),
        memory_mask=(torch.rand(B, K, h, w, generator=g) > 0.5).float(), memory_depth=torch.full((B, K, h, w), 2.0),
        times=torch.zeros(B, K))

    def one(b):
        tensors = {f.name: getattr(request, f.name)[b:b + 1] for f in dataclasses.fields(request)
                   if f.name not in ("K", "scenes", "generators") and getattr(request, f.name) is not None}
        return dataclasses.replace(request, **tensors, generators=[torch.Generator().manual_seed(100 + b)])

    batched = wm.generate(dataclasses.replace(request, generators=[torch.Generator().manual_seed(100 + b) for b in range(B)]))
    single = torch.cat([wm.generate(one(b)).latents for b in range(B)])
    assert float((batched.latents - single).abs().max()) < 1e-4  # rounding (measured 8e-7), not noise (O(1))


def test_vector_env_equals_single_envs_except_frame_rounding(tiny_weights_or_skip):
    """Everything but the frames is exactly equal; frames differ by float rounding,
    which the rollout carries on (a few /255 after a few steps)."""
    tiny_weights_or_skip()
    seeds = [10, 11, 12, 13]
    vec = gym.make_vec("MirageRoom-v0", num_envs=4, vectorization_mode="vector_entry_point")
    sync = gym.make_vec("MirageRoom-v0", num_envs=4, vectorization_mode="sync")  # 4 single envs
    obs_v, _ = vec.reset(seed=seeds)
    obs_s, _ = sync.reset(seed=seeds)
    assert np.array_equal(obs_v["rgb"], obs_s["rgb"])  # the start frame is a render: exact
    rng = np.random.default_rng(0)
    for _ in range(3):
        actions = rng.integers(0, len(mirage_gym.Action), 4)
        obs_v, r_v, term_v, trunc_v, info_v = vec.step(actions)
        obs_s, r_s, term_s, trunc_s, info_s = sync.step(actions)
        assert np.array_equal(obs_v["pose"], obs_s["pose"]) and np.array_equal(r_v, r_s)
        assert np.array_equal(term_v, term_s) and np.array_equal(trunc_v, trunc_s)
        for key in ("c2w", "coverage", "collided", "scene_seed"):
            assert np.array_equal(info_v[key], info_s[key]), key
        assert np.abs(obs_v["rgb"].astype(int) - obs_s["rgb"].astype(int)).max() <= 8
