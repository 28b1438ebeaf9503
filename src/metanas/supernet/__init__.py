"""Weight-sharing supernets for the NB201 and DARTS cell spaces, built on one mixed op."""

from __future__ import annotations

from typing import Any

from metanas.errors import ConfigError
from metanas.supernet.darts import DartsSupernet
from metanas.supernet.mixed import (
    SAMPLING_MODES,
    EdgeWeights,
    MixedOp,
    TemperatureSchedule,
    Zero,
    mix_weights,
)
from metanas.supernet.nb201 import NB201Supernet
from metanas.supernet.supernet import Supernet

SPACES = {"nb201": NB201Supernet, "darts": DartsSupernet}


def build_supernet(config: dict[str, Any]) -> Supernet:
    """A supernet from its :attr:`Supernet.config` dict (``space`` picks the class)."""
    cfg = dict(config)
    space = cfg.pop("space", "nb201")
    if space not in SPACES:
        raise ConfigError(f"unknown supernet space {space!r}; available: {', '.join(SPACES)}")
    if "resolutions" in cfg:
        cfg["resolutions"] = tuple(cfg["resolutions"])
    try:
        return SPACES[space](**cfg)
    except TypeError as exc:
        raise ConfigError(f"bad {space} supernet config {config}: {exc}") from None


__all__ = ["SAMPLING_MODES", "SPACES", "DartsSupernet", "EdgeWeights", "MixedOp",
           "NB201Supernet", "Supernet", "TemperatureSchedule", "Zero", "build_supernet",
           "mix_weights"]
