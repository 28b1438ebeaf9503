"""metanas: meta architecture search.

Learn once over many tasks, then hand out a good neural architecture for a new dataset in seconds.
"""

__version__ = "0.1.0"

from metanas.api import Budget, load_method, meta_train, search, space_info, train  # noqa: E402

__all__ = ["Budget", "__version__", "load_method", "meta_train", "search", "space_info", "train"]
