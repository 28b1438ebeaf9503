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
