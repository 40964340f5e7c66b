"""The embedded world model: small, CPU-fast, weights shipped in the package."""

from .config import TinyConfig
from .world_model import DEFAULT_WEIGHTS, TinyWorldModel, load_tiny_world_model, weights_available

__all__ = ["TinyConfig", "TinyWorldModel", "load_tiny_world_model", "weights_available", "DEFAULT_WEIGHTS"]
