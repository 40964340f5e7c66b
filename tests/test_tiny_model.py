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
    expected.write(info["gt_rgb"], depth_full, sim.K_image, ep.agent.c2w(), static_mask=static_full, observed=True)
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
    from mirage_gym.models.tiny.pipeline import MemoryResidualSampler, close_gaps

    cfg = TinyConfig(unet_channels=(32, 32, 32))
    torch.manual_seed(0)
    sampler = MemoryResidualSampler(build_denoiser(cfg).eval(), steps=2, pin=0.5, gap_support=1.5)
    C, h = cfg.latent_channels, cfg.latent_size
    memory = torch.randn(1, C, h, h)
    mask = torch.ones(1, h, h)
    mask[0, 5, 5] = 0.0  # a gap inside a covered surface
    mask[0, :, 10:] = 0.0  # unseen space
    out = sampler(torch.zeros(1, C, h, h), memory, mask, torch.zeros(1, 6, h, h), torch.randn(1, C, h, h),
                  observed=torch.ones(1, h, h))
    covered = mask[0] >= 0.5
    assert torch.equal(out[0][:, covered], memory[0][:, covered])
    filled, filled_mask = close_gaps(memory, mask, pin=0.5, min_support=1.5)
    neighbours = memory[0, :, 4:7, 4:7].sum((1, 2)) - memory[0, :, 5, 5]
    torch.testing.assert_close(filled[0, :, 5, 5], neighbours / 8)
    torch.testing.assert_close(out[0, :, 5, 5], neighbours / 8)
    assert filled_mask[0, 5, 5] == 1 and (filled_mask[0, :, 11:] == 0).all()  # deep in the hole: no support
    assert not torch.equal(out[0, :, :, 12], memory[0, :, :, 12])  # generated there


def test_noise_levels_train_where_the_sampler_walks_and_preconditioning_is_the_flow_interpolant():
    """The schedule decreases from sigma_max to sigma_min and ends at zero;
    half the training levels are exactly the sampler's; the network's input
    c_in * (r + sigma n) is the flow interpolant (1 - t) r + t n."""
    import numpy as np

    from mirage_gym.models.tiny.pipeline import NoiseLevels, precondition

    levels = NoiseLevels(sigma_max=10.0, sigma_min=0.1)
    sched = levels.schedule(3)
    assert sched[0] == 10.0 and abs(float(sched[-2]) - 0.1) < 1e-6 and sched[-1] == 0 and (sched.diff() < 0).all()
    assert levels.schedule(1).tolist() == [10.0, 0.0]
    drawn = levels.draw_training(4000, 3, np.random.default_rng(0))
    own = torch.isclose(drawn[:, None], sched[None, :-1]).any(1).float().mean()
    assert 0.45 < float(own) < 0.55 and (drawn > 0).all()
    sigma = torch.tensor([0.1, 1.0, 9.0])
    c_in, c_skip, c_out, c_noise = precondition(sigma)
    r, n = torch.randn(3, 2, 4, 4), torch.randn(3, 2, 4, 4)
    t = (sigma / (1 + sigma)).view(-1, 1, 1, 1)
    torch.testing.assert_close(c_in * (r + sigma.view(-1, 1, 1, 1) * n), (1 - t) * r + t * n)
    x = r + sigma.view(-1, 1, 1, 1) * n  # a perfect velocity (n - r) denoises exactly
    torch.testing.assert_close(c_skip * x + c_out * (n - r), r)
    torch.testing.assert_close(c_noise, 1000 * t.flatten())


def test_unpinned_sampler_refines_covered_cells_and_is_deterministic():
    from mirage_gym.models.tiny.pipeline import PINNING_OFF, MemoryResidualSampler

    cfg = TinyConfig(unet_channels=(32, 32, 32))
    torch.manual_seed(0)
    unet = build_denoiser(cfg).eval()
    C, h = cfg.latent_channels, cfg.latent_size
    memory, mask = torch.randn(1, C, h, h), torch.ones(1, h, h)
    mask[0, :, 10:] = 0.0
    inputs = (torch.zeros(1, C, h, h), memory, mask, torch.zeros(1, 6, h, h), torch.randn(1, C, h, h))
    seen = {"observed": torch.ones(1, h, h)}
    pinned = MemoryResidualSampler(unet, steps=3, pin=0.5)(*inputs, **seen)
    free = MemoryResidualSampler(unet, steps=3, pin=PINNING_OFF)(*inputs, **seen)
    assert torch.equal(pinned[0, :, :, :10], memory[0, :, :, :10])
    assert not torch.equal(free[0, :, :, :10], memory[0, :, :, :10])  # refined there
    assert torch.equal(free[0, :, :, 10:], pinned[0, :, :, 10:])  # generated cells alike
    assert torch.equal(free, MemoryResidualSampler(unet, steps=3, pin=PINNING_OFF)(*inputs, **seen))
    made = MemoryResidualSampler(unet, steps=3, pin=0.5)(*inputs, observed=torch.zeros(1, h, h))
    assert torch.equal(made, free)  # the model's own earlier output is refined, not pinned


def test_loading_the_shipped_weights_prints_no_warning(capfd):
    """diffusers warned on every load ("config attributes {'block_out_channels': ...}
    were passed to AutoencoderTiny, but are not expected"); the folder no longer carries the key."""
    import warnings

    from mirage_gym.models.tiny.world_model import load_tiny_world_model

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_tiny_world_model()
    err = capfd.readouterr().err
    assert "config attributes" not in err and "not expected" not in err, err
