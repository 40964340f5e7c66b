"""Recording MirageRoom episodes: npz files, MP4 videos, Minari datasets,
collected in one process, a process pool or on a Ray cluster
(``mirage-gym collect``; in Python ``collect_dataset(CollectArgs(...))``).

Submodules: :mod:`.collect` (the driver), :mod:`.npz`, :mod:`.mp4`,
:mod:`.minari_io` (writers and loaders), :mod:`.records`.
"""

from .collect import CollectArgs, CollectError
from .collect import collect as collect_dataset

__all__ = ["CollectArgs", "CollectError", "collect_dataset"]
