"""Ground-truth worlds: seeded procedural rooms with an exact raycaster, and
photos (one view plus a depth estimate).

    from mirage_gym.scenes import ProceduralRoom
    room = ProceduralRoom(seed=0)
    c2w = room.sample_pose(np.random.default_rng(0))
    out = room.render(c2w, room.intrinsics(128, 128), 128, 128, t=0.0)
"""

from .layout import GOAL_COLORS, GOAL_KINDS, MovingObject, NoSpaceForGoals, ObjectGoalLayout, SceneObject, WallFixture
from .procedural import HELD_OUT_SEED_START, ProceduralRoom

__all__ = ["GOAL_COLORS", "GOAL_KINDS", "HELD_OUT_SEED_START", "MovingObject", "NoSpaceForGoals", "ObjectGoalLayout",
           "ProceduralRoom", "SceneObject", "WallFixture"]

try:  # the photo scene is written alongside; export it when present
    from .photo import GroundTruthUnavailable, PhotoScene  # noqa: F401

    __all__ += ["GroundTruthUnavailable", "PhotoScene"]
except ImportError:  # pragma: no cover
    pass
