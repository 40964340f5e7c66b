"""The scripted explorer, the SB3 VecEnv adapter, and the PPO / BC scripts (short runs)."""

import importlib.util
import json
import math
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import mirage_gym
from mirage_gym import Action
from mirage_gym.agents import RandomPolicy, ScriptedExplorer, load_policy

ROOT = Path(__file__).resolve().parents[1]
FAST = {"world_model": "oracle", "obs_size": 32}


def load_script(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def episode_return(env, policy, seed, scene_seed):
    obs, info = env.reset(seed=seed, options={"scene_seed": scene_seed})
    total = 0.0
    while True:
        obs, reward, terminated, truncated, info = env.step(policy.act(obs))
        total += reward
        if terminated or truncated:
            return total


def test_explorer_sees_more_than_random():
    # 64 px: coverage samples the view on the latent grid, and 32 px frames sample too sparsely to tell
    env = gym.make("MirageRoomOracle64-v0", max_episode_steps=50)
    rooms = [1_000_011, 1_000_021]
    explorer = [episode_return(env, ScriptedExplorer(env, seed=i), i, r) for i, r in enumerate(rooms)]
    random = [episode_return(env, RandomPolicy(seed=i), i, r) for i, r in enumerate(rooms)]
    assert np.mean(explorer) > 1.3 * np.mean(random), (explorer, random)
    # the expert acts only through the discrete Action set
    assert all(isinstance(ScriptedExplorer(env).act(None), int) for _ in range(3))


def test_leave_and_return_revisits_the_start_pose():
    env = gym.make("MirageRoomOracle64-v0", obs_size=32)
    obs, info = env.reset(seed=0, options={"scene_seed": 1_000_007})
    start, start_yaw = obs["pose"].copy(), env.unwrapped.sim.episodes[0].agent.yaw
    explorer = ScriptedExplorer(env, tour="leave_and_return")
    revisits, max_turn, moved = [], 0.0, 0.0
    for t in range(70):
        obs, *_ = env.step(explorer.act(obs))
        agent = env.unwrapped.sim.episodes[0].agent
        max_turn = max(max_turn, abs(math.remainder(agent.yaw - start_yaw, 2 * math.pi)))
        moved = max(moved, float(np.linalg.norm(obs["pose"][:2] - start[:2])))
        if np.allclose(obs["pose"], start, atol=1e-4):
            revisits.append(t + 1)
    assert len(revisits) >= 2, revisits  # back after turning away, back after walking out
    assert revisits[0] == 24  # 12 turns of 15 deg away, 12 back
    assert max_turn >= math.radians(120) - 1e-6
    assert moved >= 0.99  # walked out at least 4 steps of 0.25 m


def test_explorer_follows_a_vector_env_through_autoresets():
    venv = gym.make_vec("MirageRoomOracle64-v0", num_envs=2, vectorization_mode="vector_entry_point",
                        max_episode_steps=4, **FAST)
    obs, _ = venv.reset(seed=0)
    explorers = [ScriptedExplorer(venv, index=i, seed=i) for i in range(2)]
    dones = 0
    for _ in range(9):
        actions = np.array([e.act() for e in explorers])
        obs, rewards, terminated, truncated, _ = venv.step(actions)
        dones += int((terminated | truncated).sum())
    assert dones >= 2
    with pytest.raises(IndexError):
        ScriptedExplorer(venv, index=2)
    with pytest.raises(ValueError):
        ScriptedExplorer(gym.make("MirageRoomOracle64-v0", action_type="continuous", **FAST))


def test_sb3_vec_env_adapter():
    from stable_baselines3.common.vec_env import VecEnv

    from mirage_gym.agents.sb3_vec import MirageSB3VecEnv

    venv = MirageSB3VecEnv("MirageRoomOracle64-v0", num_envs=2, max_episode_steps=3, **FAST)
    assert isinstance(venv, VecEnv) and venv.num_envs == 2
    venv.seed(5)
    obs = venv.reset()
    assert obs["rgb"].shape == (2, 32, 32, 3) and obs["pose"].shape == (2, 7)
    for t in range(3):
        obs, rewards, dones, infos = venv.step(np.array([Action.TURN_LEFT, Action.FORWARD]))
        assert rewards.shape == (2,) and len(infos) == 2
        assert all("frames" not in info for info in infos)  # big arrays stay out of SB3's buffers
    assert dones.all()
    for info in infos:
        assert info["TimeLimit.truncated"] is True
        assert info["terminal_observation"]["rgb"].shape == (32, 32, 3)
        assert "coverage" in info
    assert all("coverage" in r for r in venv.reset_infos)
    with pytest.raises(ValueError, match="SameStep"):
        MirageSB3VecEnv(gym.make_vec("MirageRoomOracle64-v0", num_envs=1, vectorization_mode="vector_entry_point", **FAST))
    venv.close()


def test_ppo_script_trains_a_few_hundred_steps(tmp_path):
    ppo = load_script("ppo_explore")
    args = ppo.Args(total_timesteps=192, num_envs=2, n_steps=48, batch_size=48, n_epochs=1, obs_size=32,
                    max_episode_steps=16, eval_episodes=1, out=str(tmp_path), curve_png=str(tmp_path / "curve.png"))
    summary = ppo.main(args)
    assert summary["env_steps"] >= 192 and summary["episodes"] >= 8
    for name in ("ppo_mirage.zip", "reward_curve.png", "reward_curve.csv", "summary.json", "curve.png"):
        assert (tmp_path / name).is_file(), name
    assert set(summary["eval_mean"]) == {"ppo", "ppo_greedy", "random", "explorer"}
    # the saved model is a policy `mirage-gym collect --policy <zip>` can use
    env = gym.make("MirageRoomOracle64-v0", max_episode_steps=32, **FAST)
    obs, _ = env.reset(seed=0)
    policy = load_policy(str(tmp_path / "ppo_mirage.zip"), env)
    assert env.action_space.contains(policy.act(obs))


def test_ppo_script_on_the_learned_world_model(tmp_path, tiny_weights_or_skip):
    tiny_weights_or_skip()
    ppo = load_script("ppo_explore")
    args = ppo.Args(world_model="tiny", total_timesteps=128, num_envs=2, n_steps=64, batch_size=64, n_epochs=1,
                    max_episode_steps=32, eval_episodes=0, out=str(tmp_path))
    assert ppo.main(args)["env_steps"] >= 128


def test_bc_script_clones_the_explorer(tmp_path):
    bc = load_script("bc_explorer")
    args = bc.Args(obs_size=32, max_episode_steps=16, expert_episodes=3, train_steps=40, batch_size=16,
                   eval_episodes=1, out=str(tmp_path))
    summary = bc.main(args)
    assert summary["pairs"] == 48 and summary["episodes"] == 3
    assert set(summary["eval_mean"]) == {"bc", "expert", "random"}
    assert (tmp_path / "bc_policy.pt").is_file()
    assert json.loads((tmp_path / "summary.json").read_text())["train_log"]


def test_load_policy_names():
    env = gym.make("MirageRoomOracle64-v0", **FAST)
    env.reset(seed=0)
    assert isinstance(load_policy("explorer", env), ScriptedExplorer)
    assert load_policy("explorer:leave_and_return", env).tour == "leave_and_return"
    assert isinstance(load_policy("random", env, seed=1), RandomPolicy)
    with pytest.raises(ValueError, match="unknown policy"):
        load_policy("greedy", env)
    assert mirage_gym.Action(load_policy("random", env).act(None)) in list(Action)


def test_ppo_script_uses_the_learned_ids_configuration(capsys):
    """--world-model tiny runs MirageRoom-v0 (4 frames per step, fill rule), not the oracle id with its model swapped."""
    ppo = load_script("ppo_explore")
    env_id, kwargs = ppo.resolve_env(ppo.Args(world_model="tiny", obs_size=32))
    assert env_id == "MirageRoom-v0" and "world_model" not in kwargs
    out = capsys.readouterr().out
    assert "'frames_per_step': 4, 'memory_update': 'fill'" in out
    assert "overridden: obs_size 'native' -> 32, max_episode_steps 500 -> 100" in out
    assert ppo.resolve_env(ppo.Args())[0] == "MirageRoomOracle64-v0"
    env_id, kwargs = ppo.resolve_env(ppo.Args(env_id="MirageRoomOracle64-v0", world_model="tiny"))
    assert kwargs["world_model"] == "tiny" and "WARNING" in capsys.readouterr().err
