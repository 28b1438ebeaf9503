"""What ``metanas space info`` prints: sizes, ops, edge order and unique-cell counts of a search
space. Needs no torch (the CLI's ``space info`` stays fast)."""

from __future__ import annotations

from typing import Any

from metanas.errors import ConfigError

SPACES = ("nb201",)


def space_info(space: str = "nb201") -> dict[str, Any]:
    """Sizes, ops, edge order and unique-cell counts of a search space."""
    from metanas.spaces import nb201

    if space not in SPACES:
        raise ConfigError(f"unknown search space {space!r}; available: {', '.join(SPACES)}")
    return {
        "space": "nb201",
        "cells": nb201.SPACE_SIZE,
        "ops": list(nb201.OPS),
        "edges": [f"{to}<-{src}" for to, src in nb201.EDGES],
        "string_format": "|op~0|+|op~0|op~1|+|op~0|op~1|op~2| (NATS-Bench)",
        "unique_functional": nb201.count_unique("functional"),
        "unique_nb201_rule": nb201.count_unique("nb201"),
        "unique_note": "functional: none edges and dead nodes removed, skip_connect = identity, "
        "isomorphic cells merged; nb201_rule: NB201's own rule (the literature's 6,466)",
    }
