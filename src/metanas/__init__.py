"""metanas: meta architecture search.

Learn once over many tasks, then hand out a good neural architecture for a new dataset in seconds.

The public API (:func:`search`, :func:`train`, ...) lives in :mod:`metanas.api` and is imported on
first use, so that ``import metanas.cli`` or ``import metanas.spaces`` does not pay for torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from metanas.version import __version__

if TYPE_CHECKING:
    from metanas.api import (
        Budget,
        fit,
        load_method,
        load_model,
        meta_train,
        predict,
        search,
        space_info,
        train,
        zero_cost,
    )

__all__ = [
    "Budget", "__version__", "fit", "load_method", "load_model", "meta_train", "predict", "search",
    "space_info", "train", "zero_cost",
]
_API = frozenset(__all__) - {"__version__"}


def __getattr__(name: str):
    if name in _API:
        from metanas import api

        value = getattr(api, name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'metanas' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
