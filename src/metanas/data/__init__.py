"""Image datasets: loading builtin, ``.npz`` and ImageFolder sources into uint8 arrays.

This layer knows nothing about tasks or models; ``metanas.tasks`` builds on it.
"""

from __future__ import annotations

from metanas.data.sources import (
    BUILTIN_DATASETS,
    FORMATS,
    ImageDataset,
    available_datasets,
    from_arrays,
    load_dataset,
    stratified_split,
)

__all__ = [
    "BUILTIN_DATASETS",
    "FORMATS",
    "ImageDataset",
    "available_datasets",
    "from_arrays",
    "load_dataset",
    "stratified_split",
]
