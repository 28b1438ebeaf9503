"""Matplotlib without a display, and PNGs written atomically: the one way figures are saved."""

from __future__ import annotations

import os
from typing import Any


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (imported on first use: it costs ~0.3 s)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig: Any, path: str | os.PathLike, *, dpi: int = 110) -> None:
    """Write ``fig`` to ``path`` through a temporary file (an interrupted run leaves no broken
    PNG), then close it."""
    from metanas.paths import atomic_write

    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi,
                                                   bbox_inches="tight"))
    finally:
        pyplot().close(fig)
