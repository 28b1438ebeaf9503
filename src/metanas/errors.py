"""User-facing errors.

Anything a user can cause (a bad path, a malformed architecture string, a corrupt file) raises a
subclass of :class:`MetanasError`. The CLI turns these into a one-line message and exit code 2,
without a traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class MetanasError(Exception):
    """Base class for errors caused by user input; the CLI exits with code 2."""

    exit_code = 2


class ArchitectureError(MetanasError, ValueError):
    """An architecture string, op name or index that is not valid in its search space."""


class DatasetError(MetanasError, ValueError):
    """A dataset that cannot be loaded or used: missing, corrupt, inconsistent or too small."""


class KnowledgeBaseError(MetanasError):
    """A knowledge base file that is missing, malformed or from an incompatible version."""


class CheckpointError(MetanasError):
    """A model checkpoint that is missing, unsafe, corrupt or from an incompatible version."""


class ConfigError(MetanasError, ValueError):
    """An option value that is out of range or inconsistent with other options."""


#: How much of a user's input an error message echoes (a 100 KB architecture string is not
#: repeated whole).
MAX_ECHO = 120


def shorten(text: object, limit: int = MAX_ECHO) -> str:
    """``repr`` of ``text`` cut to about ``limit`` characters, saying how long it was."""
    shown = repr(text)
    if len(shown) <= limit:
        return shown
    return f"{shown[:limit]}... ({len(str(text)):,} characters)"


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of an exception's message, shortened: torch's and safetensors'
    messages run to many lines, and a user error is one line."""
    lines = str(exc).strip().splitlines() or [type(exc).__name__]
    line = lines[0].strip()
    return line if len(line) <= limit else line[:limit] + "..."
