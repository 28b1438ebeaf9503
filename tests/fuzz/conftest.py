"""Shared property of the fuzz suite: a loader given any input either succeeds or raises
metanas' own error with a one-line message; never another exception, never a traceback,
and never much memory (the inputs are small, so a large peak means something was allocated
from a declared size before it was checked)."""

from __future__ import annotations

import os
import resource

import pytest
from hypothesis import HealthCheck, settings

from metanas.errors import MetanasError

#: Peak memory (RSS) a rejected or accepted fuzz input may add to the test process.
MAX_EXTRA_RSS_MB = 300

#: One profile for every fuzz test: seeded, few examples, no deadline (CI machines are slow).
FUZZ = settings(derandomize=True, database=None, deadline=None,
                max_examples=int(os.environ.get("METANAS_FUZZ_EXAMPLES", "30")),
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def loads_cleanly(load, *args, **kwargs):
    """Run ``load``; return its result, or None when it raised a one-line MetanasError.
    Any other exception propagates (the test fails with it)."""
    before = _rss_mb()
    try:
        result = load(*args, **kwargs)
    except MetanasError as exc:
        message = str(exc)
        assert message and "\n" not in message, f"multi-line error: {message[:500]!r}"
        assert len(message) < 600, f"error of {len(message)} characters: {message[:200]!r}"
        result = None
    assert _rss_mb() - before < MAX_EXTRA_RSS_MB, "an input took hundreds of MB"
    return result


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Decoded datasets go to a throwaway cache, not the user's."""
    monkeypatch.setenv("METANAS_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
