"""MirageRoom: a room you walk through, drawn by a world model with latent spatial memory."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ..limits import LATENT_BOUND, POSITION_BOUND
from .actions import action_space, action_to_motion
from .config import EnvConfig
from .debug_view import debug_view
from .simulation import MirageSimulation
from .tasks import goal_space




def observation_space(sim: MirageSimulation) -> spaces.Dict:
    """The Dict observation space shared by the single and the vector env."""
    H, W = sim.image_size
    parts = {
        "rgb": spaces.Box(0, 255, shape=(H, W, 3), dtype=np.uint8),
        # position xyz (m; rooms are a few metres across) then unit quaternion wxyz
        "pose": spaces.Box(np.array([-POSITION_BOUND] * 3 + [-1.0] * 4, np.float32),
                           np.array([POSITION_BOUND] * 3 + [1.0] * 4, np.float32), dtype=np.float32),
    }
    if sim.cfg.observes_goal:
        parts["goal"] = goal_space(sim.cfg.task)  # (colour index, kind index) of the target
    if sim.cfg.memory_obs:
        h, w = sim.latent_size
        # latents are unbounded in principle; the bound documents the range models produce
        parts["memory"] = spaces.Box(-LATENT_BOUND, LATENT_BOUND, shape=(sim.latent_channels + 1, h, w), dtype=np.float32)
    return spaces.Dict(parts)


class MirageRoomEnv(gym.Env):
    """
    ## Description

    An agent walks through a furnished room. Its frames are not rendered: a
    video world model generates them, segment by segment, conditioned on a
    persistent *latent spatial memory* (the Mirage method, arXiv 2606.09828).
    The memory is a cloud of latent tokens lifted into 3D by depth; at each
    step it is projected onto the new camera poses in latent space (no RGB
    rendering, no VAE re-encode), the model generates ``frames_per_step``
    new frames, and their latents are written back with sky and moving
    objects filtered out. Walk away from a table and come back: the table is
    still there, because the memory remembered it.

    The default world model (``"tiny"``) is a small latent world model whose
    weights ship with the package and run on a laptop CPU. ``"oracle"``
    replaces generation by ground-truth rendering of the procedural room
    (exact and fast, for debugging agents); ``{"name": "wan2.2", "path": ...}``
    runs Mirage on Wan2.2 on a GPU.

    ## Action Space

    ``action_type="discrete"`` (default): ``Discrete(9)``, see
    :class:`mirage_gym.Action`: 0 STAY, 1 FORWARD, 2 BACKWARD (0.25 m),
    3 TURN_LEFT, 4 TURN_RIGHT (15 deg), 5 LOOK_UP, 6 LOOK_DOWN (10 deg, pitch
    clamped to +-60 deg), 7 STRAFE_LEFT, 8 STRAFE_RIGHT (0.25 m).

    ``action_type="continuous"``: ``Box(-1, 1, (4,), float32)`` = (forward,
    strafe right, yaw left, pitch up), each scaled by the same maxima.

    A move into a wall or furniture leaves the position unchanged (turns
    still apply) and sets ``info["collided"]``.

    ## Observation Space

    ``Dict`` with
    * ``rgb``: ``uint8 (H, W, 3)``, the last generated frame (``obs_size``);
    * ``pose``: ``float32 (7,)``, camera position (m) and unit quaternion
      (w, x, y, z), w >= 0, of the camera-to-world rotation (OpenCV camera
      axes; :class:`mirage_gym.wrappers.ContinuousPose` for a rotation
      feature without the sign flip every quaternion has once per turn);
    * ``memory`` (only with ``memory_obs=True``): ``float32 (C+1, h, w)``,
      the memory read at the current pose: warped latent (C channels) and
      coverage mask;
    * ``goal`` (``task="objectgoal"``, or ``"goal"`` with ``goal_obs=True``):
      ``MultiDiscrete`` (colour index, kind index) of the target.

    ## Rewards

    ``task="explore"`` (default): the fraction of the room's visible surface
    newly seen this step (ground-truth geometry, counted on one ray per 4x4
    pixels of the observation), so the return is the final coverage.
    ``task="goal"``: the decrease of distance (m) to a target object named in
    ``info["target"]``, minus 0.01 per step, plus ``goal_bonus`` (10) on
    arrival. ``task="objectgoal"``: "go to the <colour> <kind>" among four
    goal objects in the first frame's view; the decrease of distance (m) and
    heading error (rad) to the target, minus 0.01 per step, plus
    ``goal_bonus`` if the first goal object reached (within
    ``goal_radius_m``, facing it within ``goal_facing_deg``) is the target,
    minus 1 if it is another (:mod:`mirage_gym.envs.tasks`). ``task="none"``:
    always 0. Every reward and termination is a function of the room and
    the agent's poses only, the same in every world model.

    ## Starting State

    A procedural room drawn from ``scene_seeds`` (``"train"``: seeds below
    1,000,000; ``"eval"``: held-out seeds from 1,000,000 up), a random free
    level pose at eye height. The first frame is a ground-truth render (the
    start image), encoded and written to memory. ``reset(options=...)``
    accepts ``scene_seed`` (int) and ``pose`` ([x, y, yaw_deg]).

    ## Episode End

    Termination: explore reaches ``coverage_target`` (0.8) of the visible
    surface; goal reaches ``goal_radius_m`` (0.75 m) of the target's surface.
    Truncation: ``max_episode_steps`` of the registered id (500 by default).

    ## Arguments

    ``gym.make("MirageRoom-v0", world_model="tiny", memory="latent",
    frames_per_step=4, obs_size=None, memory_obs=False, action_type="discrete",
    task="explore", return_gt=False, device="cpu", depth_source="auto",
    scene=None, depth_model=None, scene_seeds="train", fov_deg=90.0, fps=8.0,
    voxel_size=0.15, memory_capacity=60000, ...)``; every field of
    :class:`EnvConfig`. ``obs_size`` (int or [H, W]) left unset is the world
    model's native size: 64 for tiny and the oracle, a Wan folder's
    ``world_model.json`` ``image_size``. ``memory`` is ``"latent"`` (Mirage),
    ``"rgb"`` (the pixel-space baseline: an RGB point cloud rendered and
    VAE-encoded every frame) or ``"none"``.
    ``scene`` (an image path) starts from a photo (``task="none"``);
    ``depth_model`` (a local transformers depth folder, e.g. Depth Anything
    V2 Small) gives it depth, else it is a flat wall at 3 m (with a warning).
    ``depth_source`` picks the depth used for memory writes: the model's
    own geometry head (``"model"``), ground truth (``"scene"``), or
    ``"auto"`` (ground truth for the oracle, the model otherwise).
    ``num_threads`` (default 1) is how many torch intra-op threads the env's
    own work uses, set and restored around each call, so the caller's torch
    setting is unchanged; ``None`` uses torch's current setting. One thread
    cannot stall on a busy CPU or hang in a forked async sub-env; more than
    one with ``vectorization_mode="async"`` needs ``vector_kwargs={"context":
    "spawn"}`` (:mod:`mirage_gym.envs.threads`).

    ``info`` always has ``frames`` (uint8 (K, H, W, 3), the whole segment),
    ``c2w`` (4x4), ``memory_tokens``, ``memory_bytes``, ``coverage``,
    ``collided``; ``gt_rgb`` with ``return_gt=True``; ``target``,
    ``distance``, ``is_success`` for the goal task.

    ## Vectorized environment

    ``gym.make_vec("MirageRoom-v0", num_envs=N, vectorization_mode="vector_entry_point")``
    returns :class:`MirageRoomVectorEnv`: N episodes sharing one world model,
    one batched generate/decode per step, same maths as this class (both
    drive :class:`MirageSimulation`). Poses, rewards, terminations and infos
    equal N single envs exactly; a learned model's frames only up to float
    rounding that the rollout carries on (docs/agents.md, "Vector env").

    ## Version History

    * v0: initial release. Explore coverage is counted on one ground-truth
      path for every world model (before, the oracle reduced its own depth
      maps and the learned world rendered a latent-size view: the same
      actions scored differently, issue 20).
    * MirageRoomGoal-v1: the goal task with ``obs["goal"]``.
    * MirageRoomObjectGoal-v0, MirageRoomObjectGoalOracle64-v0: the
      object-goal task (docs/transfer.md).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 8}

    def __init__(self, render_mode: str | None = None, **kwargs: Any):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode={render_mode!r} is not supported; use one of {self.metadata['render_modes']} or None")
        self.config = EnvConfig.from_kwargs(**kwargs)
        self.render_mode = render_mode
        self.sim = MirageSimulation(self.config, num_episodes=1)
        self.action_space = action_space(self.config.action_type)
        self.observation_space = observation_space(self.sim)
        self.metadata = {**self.metadata, "render_fps": int(self.config.fps)}
        self._needs_reset = True

    @property
    def world_model(self):
        return self.sim.world_model

    @property
    def memory(self):
        return self.sim.episodes[0].memory

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        self.sim.check_reset_options(options)  # a bad option must not reseed the env first
        saved = self._np_random, self._np_random_seed
        super().reset(seed=seed)
        try:
            obs, info = self.sim.reset_episode(0, self.np_random, options)
        except BaseException:  # a reset that fails (a pose in a wall, Ctrl-C) does not reseed the env either
            self._np_random, self._np_random_seed = saved
            raise
        self._needs_reset = False
        return obs, info

    def step(self, action):
        if self._needs_reset:
            raise RuntimeError("MirageRoom: call reset() before step()")
        motion = action_to_motion(action, self.config.action_type)
        result = self.sim.step([0], [motion])[0]
        return result.obs, result.reward, result.terminated, False, result.info

    def render(self):
        if self.render_mode is None:
            gym.logger.warn("render() called with render_mode=None; pass render_mode='rgb_array' to gym.make")
            return None
        ep = self.sim.episodes[0]
        if ep.last_rgb is None:
            raise RuntimeError("MirageRoom: call reset() before render()")
        tokens = np.zeros((0, 3), np.float32) if ep.memory is None else ep.memory.positions.cpu().numpy()
        return debug_view(ep.last_rgb, self.config.render_size, ep.scene.bounds, tokens,
                          ep.agent.c2w().numpy(), self.config.fov_deg)

    # Snapshots -----------------------------------------------------------------

    def get_state(self) -> dict:
        """A complete, deep-copied snapshot: pose, memory, context latents, scene
        time, task and both RNG states. ``set_state`` + the same actions
        reproduces the same frames."""
        return self.sim.get_state(0)

    def set_state(self, state: dict) -> None:
        """Restore a snapshot from :meth:`get_state`, also into a freshly made
        env (no reset needed). Validated fully first: a snapshot from an env
        with other settings or weights, or with a corrupt value, raises
        ValueError and leaves the env as it was. On an env from ``gym.make``
        use :func:`mirage_gym.restore_state`, which also sets the wrappers'
        step counter and reset flag."""
        ep = self.sim.episodes[0]
        own = ep.rng
        ep.rng = self.np_random  # restore into the env's own generator
        try:
            self.sim.set_state(0, state)
        except BaseException:
            ep.rng = own
            raise
        self._needs_reset = False

    def current_observation(self) -> dict:
        """The observation of the current state: what the last ``reset`` or
        ``step`` returned, or what a restored snapshot shows."""
        if self._needs_reset:
            raise RuntimeError("MirageRoom: call reset() or set_state() before current_observation()")
        return {k: np.array(v, copy=True) for k, v in self.sim.observation(0).items()}


def restore_state(env: gym.Env, state: dict) -> dict:
    """Restore ``state`` (from ``env.unwrapped.get_state()`` of an env made
    with the same arguments) into ``env`` as ``gym.make`` wrapped it, and
    return the restored observation. Besides the env itself this sets what
    Gymnasium's wrappers count: TimeLimit's elapsed steps (so the episode is
    truncated at the same step as the original) and OrderEnforcing's reset
    flag (so a freshly made env can step without a throwaway reset)."""
    from gymnasium.wrappers import OrderEnforcing, PassiveEnvChecker, TimeLimit

    base = env.unwrapped
    if not isinstance(base, MirageRoomEnv):
        raise ValueError(f"restore_state needs a MirageRoom env (from gym.make), got {type(base).__name__}")
    base.set_state(state)  # validates fully; raises before anything changes
    obs = base.current_observation()
    layer = env
    while isinstance(layer, gym.Wrapper):
        if isinstance(layer, TimeLimit):
            layer._elapsed_steps = int(state["steps"])
        elif isinstance(layer, OrderEnforcing):
            layer._has_reset = True
        elif isinstance(layer, PassiveEnvChecker) and not layer.checked_reset:  # its first step compares with a reset's data
            layer.checked_reset, layer._previous_data = True, (obs, {})
        layer = layer.env
    return base.current_observation()
