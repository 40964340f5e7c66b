"""The embedded world model: runs in the env (random weights, always), and the
shipped weights load, are deterministic and pass an honest quality check."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from mirage_gym import Action
from mirage_gym.eval.metrics import psnr
from mirage_gym.models import load_world_model
from mirage_gym.models.tiny import TinyConfig, TinyWorldModel
from mirage_gym.models.tiny.networks import GeometryHead, build_denoiser, build_vae


def random_tiny_model(steps=2) -> TinyWorldModel:
    torch.manual_seed(0)
    cfg = TinyConfig(unet_channels=(32, 32, 32))
    return TinyWorldModel(cfg, build_vae(cfg), build_denoiser(cfg), GeometryHead(cfg.latent_channels, 16, 1), denoise_steps=steps)


def test_random_tiny_model_runs_in_env_with_right_shapes_and_determinism():
    model = random_tiny_model()
    frames = []
    for _ in range(2):
        env = gym.make("MirageRoom-v0", world_model=model, memory_obs=True)
        obs, _ = env.reset(seed=4)
        for a in (Action.FORWARD, Action.TURN_LEFT):
            obs, r, term, trunc, info = env.step(a)
        assert info["frames"].shape == (4, 64, 64, 3)
        assert obs["memory"].shape == (model.latent_channels + 1, 16, 16)
        assert np.isfinite(obs["memory"]).all()
        frames.append(info["frames"])
    assert np.array_equal(frames[0], frames[1])


def test_both_memories_write_the_models_geometry_for_the_start_frame():
    """With depth_source="model", the pixel-space baseline gets the same
    estimated depth and static mask as the latent memory (spread over the
    token's pixels), not the scene's ground truth, for the start frame too."""
    from mirage_gym.memory import RGBPointCloudMemory
    from mirage_gym.images import to_model

    model = random_tiny_model()
    env = gym.make("MirageRoom-v0", world_model=model, memory="rgb", depth_source="model", return_gt=True)
    _, info = env.reset(seed=3)
    sim = env.unwrapped.sim
    ep = sim.episodes[0]
    depth, static = model.estimate_geometry(model.encode(to_model(info["gt_rgb"])))
    depth_full, static_full = sim._full_resolution(depth[0], static[0] > 0.5)
    expected = RGBPointCloudMemory(voxel_size=ep.memory.voxel_size, update=ep.memory.update)
    expected.write(info["gt_rgb"], depth_full, sim.K_image, ep.agent.c2w(), static_mask=static_full)
    assert ep.memory.num_tokens == expected.num_tokens
    assert torch.allclose(ep.memory.positions, expected.positions, atol=1e-4)


def test_vector_env_batches_the_tiny_model():
    model = random_tiny_model()
    vec = gym.make_vec("MirageRoom-v0", num_envs=2, vectorization_mode="vector_entry_point", world_model=model)
    singles = [gym.make("MirageRoom-v0", world_model=model) for _ in range(2)]
    obs_v, _ = vec.reset(seed=[1, 2])
    for env, s in zip(singles, (1, 2)):
        env.reset(seed=s)
    obs_v, *_ = vec.step([Action.FORWARD, Action.TURN_RIGHT])
    obs_s = [env.step(a)[0]["rgb"] for env, a in zip(singles, (Action.FORWARD, Action.TURN_RIGHT))]
    # batched convolutions may round differently in the last bit: frames agree to within one level
    diff = np.abs(obs_v["rgb"].astype(int) - np.stack(obs_s).astype(int))
    assert diff.max() <= 2 and diff.mean() < 0.05


def test_denoise_steps_knob():
    model = random_tiny_model()
    model.denoise_steps = 1
    assert model.denoise_steps == 1
    with pytest.raises(ValueError):
        model.denoise_steps = 0


@pytest.fixture
def shipped(tiny_weights_or_skip):
    tiny_weights_or_skip()
    return load_world_model("tiny")


def test_shipped_weights_load_with_expected_shapes(shipped):
    assert shipped.image_size == (64, 64) and shipped.latent_size == (16, 16)
    z = shipped.encode(torch.zeros(2, 3, 64, 64))
    assert z.shape == (2, shipped.latent_channels, 16, 16)
    assert shipped.decode(z).shape == (2, 3, 64, 64)


def test_shipped_model_regenerates_the_current_view_from_memory(shipped):
    """Honest quality smoke test: with the start frame in memory, generating the
    same pose again must reproduce it (random weights give noise, far below)."""
    scores = []
    for scene_seed in (1_000_001, 1_000_002, 1_000_003):
        env = gym.make("MirageRoom-v0", world_model=shipped, scene_seeds="eval")
        obs, _ = env.reset(seed=0, options={"scene_seed": scene_seed})
        first = obs["rgb"]
        obs, *_ = env.step(Action.STAY)
        scores.append(float(psnr(obs["rgb"], first)[0]))
    assert np.mean(scores) >= 20.0, scores


def test_sampler_pins_covered_cells_to_memory_and_closes_gaps():
    """Where the memory covers a cell the sampler returns the memory token
    itself; a cell between covered neighbours is filled from them; a real
    hole (no covered neighbours) is left to the denoiser."""
    from mirage_gym.models.tiny.pipeline import ResidualFlowSampler, close_gaps

    cfg = TinyConfig(unet_channels=(32, 32, 32))
    torch.manual_seed(0)
    sampler = ResidualFlowSampler(build_denoiser(cfg).eval(), steps=2, pin=0.5, gap_support=1.5)
    C, h = cfg.latent_channels, cfg.latent_size
    memory = torch.randn(1, C, h, h)
    mask = torch.ones(1, h, h)
    mask[0, 5, 5] = 0.0  # a gap inside a covered surface
    mask[0, :, 10:] = 0.0  # unseen space
    out = sampler(torch.zeros(1, C, h, h), memory, mask, torch.zeros(1, 6, h, h), torch.randn(1, C, h, h))
    covered = mask[0] >= 0.5
    assert torch.equal(out[0][:, covered], memory[0][:, covered])
    filled, filled_mask = close_gaps(memory, mask, pin=0.5, min_support=1.5)
    neighbours = memory[0, :, 4:7, 4:7].sum((1, 2)) - memory[0, :, 5, 5]
    torch.testing.assert_close(filled[0, :, 5, 5], neighbours / 8)
    torch.testing.assert_close(out[0, :, 5, 5], neighbours / 8)
    assert filled_mask[0, 5, 5] == 1 and (filled_mask[0, :, 11:] == 0).all()  # deep in the hole: no support
    assert not torch.equal(out[0, :, :, 12], memory[0, :, :, 12])  # generated there


def test_hole_prefill_copies_the_nearest_covered_token_in_the_row():
    """Uncovered cells copy the nearest covered token of their row (a tie
    takes the left one), a row with nothing covered copies the nearest
    filled row, covered cells stay; with nothing covered the prefill is zero."""
    from mirage_gym.models.tiny.pipeline import prefill_holes, residual_base

    C, h = 3, 8
    memory = torch.arange(C * h * h, dtype=torch.float32).view(1, C, h, h)
    mask = torch.zeros(1, h, h)
    mask[0, 2:6, 2] = 1.0
    mask[0, 2:6, 6] = 0.9
    mask[0, 3, 4] = 0.3  # below pin: not a source
    filled = prefill_holes(memory, mask, pin=0.5)[0]
    for row in range(2, 6):
        for col, source in {0: 2, 1: 2, 2: 2, 3: 2, 4: 2, 5: 6, 6: 6, 7: 6}.items():
            assert torch.equal(filled[:, row, col], memory[0, :, row, source]), (row, col)
    assert torch.equal(filled[:, 0], filled[:, 2]) and torch.equal(filled[:, 1], filled[:, 2])
    assert torch.equal(filled[:, 7], filled[:, 5])
    assert torch.equal(prefill_holes(memory, torch.zeros(1, h, h), 0.5), torch.zeros_like(memory))

    base = residual_base(memory, mask, 0.5, prefill=True)
    torch.testing.assert_close(base[0, :, 3, 4], 0.3 * memory[0, :, 3, 4] + 0.7 * memory[0, :, 3, 2])
    assert torch.equal(base[0, :, 2, 2], memory[0, :, 2, 2])
    assert torch.equal(residual_base(memory, mask, 0.5, prefill=False), memory * mask[:, None])


def test_sampler_with_prefill_keeps_pinned_cells_and_the_setting_round_trips():
    from mirage_gym.models.tiny.pipeline import ResidualFlowSampler

    cfg = TinyConfig(unet_channels=(32, 32, 32))
    torch.manual_seed(0)
    sampler = ResidualFlowSampler(build_denoiser(cfg).eval(), steps=1, pin=0.5, gap_support=1.5, prefill=True)
    C, h = cfg.latent_channels, cfg.latent_size
    memory, mask = torch.randn(1, C, h, h), torch.ones(1, h, h)
    mask[0, :, 10:] = 0.0
    out = sampler(torch.zeros(1, C, h, h), memory, mask, torch.zeros(1, 6, h, h), torch.randn(1, C, h, h))
    assert torch.equal(out[0, :, :, :10], memory[0, :, :, :10])
    assert torch.isfinite(out).all()
    assert TinyConfig.from_dict({}).prefill_holes is False  # weights from before the option: trained over zero
    assert TinyConfig.from_dict(TinyConfig(prefill_holes=True).to_dict()).prefill_holes is True
