"""Agents for MirageRoom: the scripted explorer (the expert for imitation
data), a random baseline, the SB3 VecEnv adapter and a policy factory used
by ``mirage-gym collect``. Training scripts live in the top-level agents/."""

from .explorer import RandomPolicy, ScriptedExplorer
from .policies import load_policy

__all__ = ["RandomPolicy", "ScriptedExplorer", "load_policy"]
