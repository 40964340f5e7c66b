"""The environments: MirageRoomEnv, its vector twin, actions, tasks."""

from .actions import Action
from .config import EnvConfig
from .mirage_room import MirageRoomEnv
from .vector import MirageRoomVectorEnv

__all__ = ["Action", "EnvConfig", "MirageRoomEnv", "MirageRoomVectorEnv"]
