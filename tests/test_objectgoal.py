"""The object-goal task: rooms with goal objects (opt-in, the plain rooms
unchanged), the target in the first frame, the goal in the observation, the
episode's end, snapshots, and the reference policies."""

import math

import gymnasium as gym
import numpy as np
import pytest

import mirage_gym  # noqa: F401
from mirage_gym import Action
from mirage_gym.agents.objectgoal import ObjectGoalExpert, PoseOnlyPolicy
from mirage_gym.envs.tasks import GOAL_TASK_COLORS
from mirage_gym.geometry import pose_from_yaw_pitch
from mirage_gym.scenes import GOAL_COLORS, GOAL_KINDS, NoSpaceForGoals, ProceduralRoom
from mirage_gym.scenes.layout import FURNITURE_KINDS, GOAL_SHAPES

ORACLE = "MirageRoomObjectGoalOracle64-v0"


def goal_rooms(count, start=1_000_000):
    rooms, seed = [], start
    while len(rooms) < count:
        try:
            rooms.append(ProceduralRoom(seed, goal_objects=4))
        except NoSpaceForGoals:
            pass
        seed += 1
    return rooms


def test_goal_objects_leave_the_plain_room_as_it_was():
    for room in goal_rooms(4):
        plain = ProceduralRoom(room.seed)
        base = [o.name for o in plain.objects]
        assert [o.name for o in room.objects[:len(base)]] == base  # the same furniture, then the goal objects
        assert all(np.array_equal(a.center, b.center) for a, b in zip(plain.objects, room.objects))
        assert {o.name for o in room.objects[len(base):]} == {o.name for o in room.object_goal.objects}
        assert {m.name for m in room.movers} <= {m.name for m in plain.movers}
        # looking away from the goal objects, every pixel static in both renders is the same
        x, y, yaw = room.object_goal.start
        c2w = pose_from_yaw_pitch((x, y, room.eye_height), yaw + math.pi, 0.0)
        a, b = (r.render(c2w, r.intrinsics(48, 48), 48, 48, t=0.0) for r in (room, plain))
        both = a["static"] & b["static"]
        assert both.mean() > 0.5
        assert np.array_equal(a["rgb"][both], b["rgb"][both]) and np.array_equal(a["depth"][both], b["depth"][both])
    assert [o.name for o in ProceduralRoom(3, goal_objects=0).objects] == [o.name for o in ProceduralRoom(3).objects]


def test_goal_layout_and_every_goal_object_in_the_first_frame():
    for room in goal_rooms(12):
        goal = room.object_goal
        target = goal.objects[goal.target]
        assert sorted(o.color for o in goal.objects) == sorted(GOAL_COLORS)  # one of each colour
        assert all(o.kind in GOAL_KINDS for o in goal.objects)
        assert 2.2 - 0.3 <= np.hypot(*(target.center[:2] - goal.start[:2])) <= 3.6 + 0.3
        # every goal object's centre projects into the first frame, and the frame's depth there is that object's
        x, y, yaw = goal.start
        c2w = pose_from_yaw_pitch((x, y, room.eye_height), yaw, 0.0)
        K = room.intrinsics(64, 64)
        out = room.render(c2w, K, 64, 64, t=0.0)
        w2c = np.linalg.inv(c2w.numpy().astype(np.float64))
        for obj in goal.objects:
            centre = obj.center.copy()
            centre[2] = obj.center[2] + obj.size[2] / 2 - GOAL_SHAPES[obj.kind]  # the middle of its cube, sphere or pillar top
            p = w2c[:3, :3] @ centre + w2c[:3, 3]
            u, v = (K.numpy()[:2, :2] @ (p[:2] / p[2]) + K.numpy()[:2, 2]).astype(int)
            assert 0 <= u < 64 and 0 <= v < 64, obj.name
            assert abs(out["depth"][v, u] - p[2]) < 0.5, (room.seed, obj.name)


def test_goal_observation_and_info():
    env = gym.make(ORACLE, scene_seeds="eval")
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    colour, kind = obs["goal"]
    assert info["target"] == f"{GOAL_COLORS[colour]} {GOAL_KINDS[kind]}"
    obs, reward, terminated, truncated, info = env.step(Action.STAY)
    assert reward == pytest.approx(-0.01) and not terminated and info["is_success"] is False
    assert "goal" not in gym.make("MirageRoomGoal-v0", world_model="oracle").observation_space.spaces
    v1 = gym.make("MirageRoomGoal-v1", world_model="oracle", obs_size=32)
    obs, info = v1.reset(seed=0)
    assert v1.observation_space.contains(obs)
    assert info["target"] == f"{GOAL_TASK_COLORS[obs['goal'][0]]} {FURNITURE_KINDS[obs['goal'][1]]}"


def test_placement_varies_per_episode_and_a_seed_repeats_it():
    env = gym.make(ORACLE, scene_seeds="eval")
    layouts = []
    for seed in (0, 1, 0):
        env.reset(seed=seed)
        ep = env.unwrapped.sim.episodes[0]
        a = ep.agent
        # the target's position relative to the start pose
        d = ep.task.target.center[:2] - [a.x, a.y]
        c, s = math.cos(a.yaw), math.sin(a.yaw)
        layouts.append((ep.scene.seed, round(c * d[0] + s * d[1], 6), round(-s * d[0] + c * d[1], 6)))
    assert layouts[0] == layouts[2] and layouts[0] != layouts[1]


def test_expert_reaches_the_target_and_the_episode_ends_there():
    env = gym.make(ORACLE, scene_seeds="eval")
    wins = 0
    for e in range(10):
        obs, _ = env.reset(seed=100 + e)
        expert = ObjectGoalExpert(env)
        for _ in range(40):
            obs, reward, terminated, truncated, info = env.step(expert.act(obs))
            if terminated or truncated:
                break
        wins += bool(terminated and info["is_success"] and info["reached"] == info["target"])
    assert wins >= 9


def test_reaching_a_distractor_ends_the_episode_as_a_failure():
    env = gym.make(ORACLE, scene_seeds="eval")
    env.reset(seed=5)
    sim = env.unwrapped.sim
    ep = sim.episodes[0]
    wrong = next(o for o in ep.task.objects if o is not ep.task.target)
    # stand in front of the distractor, facing it, and step in place
    a = ep.agent
    d = wrong.center[:2] - [a.x, a.y]
    yaw = math.atan2(d[1], d[0])
    dist = float(np.hypot(*d)) - float(wrong.size[0]) / 2 - 0.45
    state = env.unwrapped.get_state()
    state["agent"] = [a.x + dist * math.cos(yaw), a.y + dist * math.sin(yaw), a.z, yaw, 0.0]
    env.unwrapped.set_state(state)
    _, reward, terminated, _, info = env.step(Action.STAY)
    shaping = env.unwrapped.sim.episodes[0].task.potential - state["task"]["potential"]
    assert terminated and not info["is_success"] and info["reached"] == wrong.name
    assert reward - shaping == pytest.approx(-0.01 - 1.0)


def test_snapshot_round_trip():
    env = gym.make(ORACLE, scene_seeds="eval")
    env.reset(seed=2)
    env.step(Action.TURN_LEFT)
    state = env.unwrapped.get_state()
    a = [env.step(x)[1] for x in (Action.FORWARD, Action.TURN_RIGHT, Action.FORWARD)]
    env.unwrapped.set_state(state)
    b = [env.step(x)[1] for x in (Action.FORWARD, Action.TURN_RIGHT, Action.FORWARD)]
    assert a == b


def test_pose_only_policy_reads_only_the_pose():
    policy = PoseOnlyPolicy(seed=0)
    obs = {"pose": np.array([0.0, 0.0, 1.5, 1.0, 0.0, 0.0, 0.0], np.float32)}
    actions = [policy(obs) for _ in range(12)]  # the pose never changes: every FORWARD was refused
    assert set(actions) <= {Action.FORWARD, Action.TURN_LEFT, Action.TURN_RIGHT} and Action.FORWARD in actions
    after = [b for a, b in zip(actions, actions[1:]) if a == Action.FORWARD]
    assert after and all(b in (Action.TURN_LEFT, Action.TURN_RIGHT) for b in after)  # a refused step: it turns away
    with pytest.raises(TypeError):
        ObjectGoalExpert(gym.make("MirageRoomOracle64-v0"))


def test_a_room_without_space_is_refused_by_name_and_skipped_in_draws():
    seed = 1_000_000
    while True:
        try:
            ProceduralRoom(seed, goal_objects=4)
        except NoSpaceForGoals:
            break
        seed += 1
    env = gym.make(ORACLE)
    with pytest.raises(ValueError, match="no space"):
        env.reset(options={"scene_seed": seed})
    _, info = env.reset(seed=0)  # draws go on to a room with space
    assert env.unwrapped.sim.episodes[0].scene.object_goal is not None


def test_room_episodes_reuses_a_room_with_each_object_as_the_target_in_turn():
    env = gym.make(ORACLE, scene_seeds="train", room_episodes=4)
    seen = []
    for i in range(5):
        _, info = env.reset(seed=7) if i == 0 else env.reset()
        seen.append((info["scene_seed"], info["target"]))
    assert len({s for s, _ in seen[:4]}) == 1 and len({t for _, t in seen[:4]}) == 4
    assert seen[4][0] != seen[0][0]  # the fifth episode is in a new room
    _, first = gym.make(ORACLE, scene_seeds="train").reset(seed=7)
    assert (first["scene_seed"], first["target"]) == seen[0]  # the room's own target comes first
