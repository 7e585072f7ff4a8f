"""Errors a user can fix: bad configs, bad data, bad arguments.

Every message names the file and the field or value at fault, so that the
command line can print it as is (exit code 2) instead of a traceback.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class NassegError(Exception):
    """Base class of every user-facing error."""


class ConfigError(NassegError, ValueError):
    """A config (YAML file or dict) is invalid; the message names the file and field."""


class DataError(NassegError, ValueError):
    """A dataset on disk is unusable; the message names the file."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest choice, or ``""``.

    Example:
        >>> did_you_mean("cmunxt", ["conv", "cmunext"])
        " (did you mean 'cmunext'?)"
    """
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""
