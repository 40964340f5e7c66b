"""MirageRoom env: API contract, determinism, snapshots, vector twin, errors.

Runs on the oracle world (exact, fast); the learned model's env tests live
in test_tiny_model.py.
"""

import pickle

import gymnasium as gym
import numpy as np
import pytest

import mirage_gym
from mirage_gym import Action

ORACLE = dict(world_model="oracle", obs_size=32, frames_per_step=2)
SEED_OPTS = {"scene_seed": 3}


def make(**kw):
    return gym.make("MirageRoom-v0", **{**ORACLE, **kw})


def rollout(env, actions, seed=0, options=SEED_OPTS):
    obs, info = env.reset(seed=seed, options=options)
    frames = [obs["rgb"]]
    for a in actions:
        obs, *_ = env.step(a)
        frames.append(obs["rgb"])
    return np.stack(frames)


ACTIONS = [Action.FORWARD, Action.TURN_LEFT, Action.TURN_LEFT, Action.LOOK_UP, Action.STRAFE_RIGHT, Action.BACKWARD]


def test_reset_step_contract():
    env = make(memory_obs=True, return_gt=True)
    obs, info = env.reset(seed=0)
    assert obs["rgb"].shape == (32, 32, 3) and obs["rgb"].dtype == np.uint8
    assert obs["pose"].shape == (7,) and obs["pose"].dtype == np.float32
    assert abs(np.linalg.norm(obs["pose"][3:]) - 1) < 1e-5
    assert obs["memory"].shape == (env.unwrapped.world_model.latent_channels + 1, 8, 8)
    assert env.observation_space.contains(obs)
    obs, reward, terminated, truncated, info = env.step(Action.FORWARD)
    for key in ("frames", "c2w", "memory_tokens", "memory_bytes", "coverage", "collided", "gt_rgb"):
        assert key in info, key
    assert info["frames"].shape == (2, 32, 32, 3)
    assert info["c2w"].shape == (4, 4)
    assert info["memory_tokens"] > 0 and info["memory_bytes"] > 0
    assert np.array_equal(info["gt_rgb"], obs["rgb"])  # the oracle is ground truth
    assert 0.0 <= info["coverage"] <= 1.0 and reward >= 0.0


def test_same_seed_same_frames_and_different_seed_differs():
    a = rollout(make(), ACTIONS, seed=5, options=None)
    b = rollout(make(), ACTIONS, seed=5, options=None)
    c = rollout(make(), ACTIONS, seed=6, options=None)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_snapshot_restore_reproduces_frames():
    env = make(memory_obs=True)
    env.reset(seed=1, options=SEED_OPTS)
    for a in ACTIONS[:3]:
        env.step(a)
    state = env.unwrapped.get_state()
    after = [env.step(a)[0] for a in ACTIONS]
    env.step(Action.TURN_RIGHT)  # wander off, then restore
    env.unwrapped.set_state(state)
    again = [env.step(a)[0] for a in ACTIONS]
    for x, y in zip(after, again):
        assert np.array_equal(x["rgb"], y["rgb"]) and np.array_equal(x["memory"], y["memory"])
    # restoring into a fresh env works too (Gymnasium's wrappers want one reset first)
    fresh = make(memory_obs=True)
    fresh.reset(seed=123)
    fresh.unwrapped.set_state(state)
    assert np.array_equal(fresh.step(ACTIONS[0])[0]["rgb"], after[0]["rgb"])


def test_collision_stays_put():
    env = make()
    env.reset(seed=0, options=SEED_OPTS)
    collided = False
    for _ in range(60):
        before = env.unwrapped.sim.episodes[0].agent.position.copy()
        _, _, _, _, info = env.step(Action.FORWARD)
        if info["collided"]:
            collided = True
            assert np.allclose(env.unwrapped.sim.episodes[0].agent.position, before)
            break
    assert collided, "walking forward 15 m in a room of at most 8 m must hit something"


def test_scripted_trajectories_follow_the_envs_collision_rule():
    """eval.trajectories.simulate (bench, eval suite) moves the body exactly as the env does."""
    from mirage_gym.eval.trajectories import simulate

    env = make()
    env.reset(seed=0, options=SEED_OPTS)
    ep = env.unwrapped.sim.episodes[0]
    actions = [Action.FORWARD] * 40 + [Action.TURN_LEFT] * 3 + [Action.FORWARD] * 10
    traj = simulate(ep.scene, ep.agent, actions, frames_per_step=1)
    blocked = []
    for action, state in zip(actions, traj.states[1:]):
        info = env.step(action)[-1]
        blocked.append(info["collided"])
        assert np.allclose(env.unwrapped.sim.episodes[0].agent.position, state.position)
    assert blocked == list(traj.collided) and any(blocked)


def test_continuous_actions():
    env = make(action_type="continuous")
    env.reset(seed=0, options=SEED_OPTS)
    obs, *_ = env.step(np.array([0.0, 0.0, 1.0, 0.0], np.float32))  # full left turn = TURN_LEFT
    env2 = make()
    env2.reset(seed=0, options=SEED_OPTS)
    obs2, *_ = env2.step(Action.TURN_LEFT)
    assert np.allclose(obs["pose"], obs2["pose"], atol=1e-6)


def test_goal_task_names_target_and_rewards_progress():
    env = make(task="goal")
    _, info = env.reset(seed=0, options=SEED_OPTS)
    assert isinstance(info["target"], str)
    _, reward, _, _, info = env.step(Action.STAY)
    assert reward == pytest.approx(-0.01) and "distance" in info


def test_explore_coverage_grows_and_rewards_sum_to_it():
    env = make()
    _, info = env.reset(seed=0, options=SEED_OPTS)
    start, total = info["coverage"], 0.0
    for _ in range(12):
        _, r, _, _, info = env.step(Action.TURN_LEFT)
        total += r
    assert info["coverage"] > start
    assert total == pytest.approx(info["coverage"] - start, abs=1e-9)


def test_render_debug_view():
    env = make(render_mode="rgb_array", render_size=64)
    env.reset(seed=0)
    view = env.render()
    assert view.shape == (64, 128, 3) and view.dtype == np.uint8
    assert view[:, 64:].std() > 0  # the map shows something


def test_env_pickles():
    env = make()
    env.reset(seed=0)
    clone = pickle.loads(pickle.dumps(env))
    assert np.array_equal(clone.step(Action.FORWARD)[0]["rgb"], env.step(Action.FORWARD)[0]["rgb"])


def test_vector_env_equals_single_envs():
    seeds = [10, 11, 12]
    vec = gym.make_vec("MirageRoom-v0", num_envs=3, vectorization_mode="vector_entry_point", **ORACLE)
    sync = gym.make_vec("MirageRoom-v0", num_envs=3, vectorization_mode="sync", **ORACLE)
    obs_v, _ = vec.reset(seed=seeds)
    obs_s, _ = sync.reset(seed=seeds)
    assert np.array_equal(obs_v["rgb"], obs_s["rgb"])
    rng = np.random.default_rng(0)
    for _ in range(5):
        actions = rng.integers(0, len(Action), 3)
        obs_v, r_v, *_ = vec.step(actions)
        obs_s, r_s, *_ = sync.step(actions)
        assert np.array_equal(obs_v["rgb"], obs_s["rgb"]) and np.allclose(r_v, r_s)
    assert vec.metadata["autoreset_mode"] is not None


def test_vector_env_autoresets_after_truncation():
    vec = gym.make_vec("MirageRoom-v0", num_envs=2, vectorization_mode="vector_entry_point", max_episode_steps=2, **ORACLE)
    vec.reset(seed=0)
    vec.step([0, 0])
    _, _, term, trunc, _ = vec.step([0, 0])
    assert trunc.all()
    obs, rewards, term, trunc, _ = vec.step([0, 0])  # NEXT_STEP: this step resets
    assert not trunc.any() and np.all(rewards == 0)


@pytest.mark.parametrize("env_id", [i for i in mirage_gym.ENV_IDS if "/" not in i])
def test_every_registered_id_instantiates_and_steps(env_id, tiny_weights_or_skip):
    spec = gym.spec(env_id)
    if spec.kwargs.get("world_model", "tiny") == "tiny":
        tiny_weights_or_skip()
    env = gym.make(env_id)
    env.reset(seed=0)
    env.step(env.action_space.sample())
    assert gym.spec(f"mirage_gym/{env_id}") is not None


@pytest.mark.parametrize("env_id", ["MirageRoom-v0", "MirageRoomOracle64-v0"])
def test_gymnasium_and_sb3_env_checkers_pass_without_warnings(env_id, recwarn, tiny_weights_or_skip):
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    if gym.spec(env_id).kwargs["world_model"] == "tiny":
        tiny_weights_or_skip()
    check_env(gym.make(env_id, render_mode="rgb_array", render_size=64).unwrapped, skip_render_check=False)
    sb3_check_env(gym.make(env_id), warn=True)
    messages = [str(w.message) for w in recwarn]
    assert not messages, messages


@pytest.mark.parametrize("kwargs, match", [
    ({"memory": "voxels"}, "memory"),
    ({"task": "dance"}, "task"),
    ({"world_model": "nope"}, "unknown world model"),
    ({"frames_per_step": 0}, "frames_per_step"),
    ({"obs_size": 30}, "divisible"),
    ({"bogus": 1}, "unknown argument"),
])
def test_bad_kwargs_raise_clear_errors(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make(**kwargs)


def test_bad_actions_and_step_before_reset_leave_env_usable():
    env = make()
    with pytest.raises(RuntimeError, match="reset"):
        env.unwrapped.step(Action.FORWARD)
    env.reset(seed=0)
    for bad in (99, -1, 1.5, "left"):
        with pytest.raises(ValueError, match="valid actions"):
            env.unwrapped.step(bad)
    cont = make(action_type="continuous")
    cont.reset(seed=0)
    for bad in (np.array([np.nan, 0, 0, 0]), np.array([2.0, 0, 0, 0]), np.zeros(3)):
        with pytest.raises(ValueError):
            cont.unwrapped.step(bad)
    obs, *_ = env.step(Action.FORWARD)  # still usable
    assert obs["rgb"].shape == (32, 32, 3)


def test_bad_reset_options_and_foreign_state():
    env = make()
    with pytest.raises(ValueError, match="unknown reset option"):
        env.reset(seed=0, options={"level": 3})
    env.reset(seed=0)
    before = env.unwrapped.get_state()
    with pytest.raises(ValueError, match="snapshot"):
        env.unwrapped.set_state({"pose": [0, 0, 0]})
    after = env.unwrapped.get_state()
    assert after["agent"] == before["agent"]
