"""metanas: meta architecture search.

Learn once over many tasks, then hand out a good neural architecture for a new dataset in seconds.
"""

from metanas.api import Budget, load_method, meta_train, search, space_info, train
from metanas.version import __version__

__all__ = ["Budget", "__version__", "load_method", "meta_train", "search", "space_info", "train"]
