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
    """Return ``" (did you mean 'x'?)"`` for the closest *other* choice, or ``""``.

    A name that is itself among ``choices`` (a key valid in another section of the same
    config) is never suggested back to the user: the hint says it belongs elsewhere.

    Example:
        >>> did_you_mean("cmunxt", ["conv", "cmunext"])
        " (did you mean 'cmunext'?)"
        >>> did_you_mean("n_cases", ["n_cases", "max_cases"])
        " ('n_cases' is valid in another section, not here)"
    """
    choices = list(choices)
    if name in choices:
        return f" ('{name}' is valid in another section, not here)"
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


class NothingFound(NassegError):
    """A run ended without a usable result (no feasible or no completed trial): exit code 3."""

    exit_code = 3


class ResourceError(NassegError):
    """The machine ran out of a resource (memory); the message names the setting to lower."""


MEMORY_HINT = "lower --batch-size (train.batch_size), --size/--patch-size or the network width"


OOM_MARKERS = ("can't allocate memory", "out of memory", "not enough memory", "std::bad_alloc", "outofmemoryerror")
"""Text of the CPU and GPU allocators' out-of-memory errors (lower case)."""


def is_out_of_memory(err: BaseException | str | None) -> bool:
    """Whether ``err`` is an out-of-memory failure of the CPU or GPU allocator: the error
    itself, or the failure reason a run stored from one (the one check for both).

    Example:
        >>> is_out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried ..."))
        True
        >>> is_out_of_memory("CUDA out of memory at epoch 2 (batch 8, ...)"), is_out_of_memory(None)
        (True, False)
    """
    if isinstance(err, MemoryError):
        return True
    if err is None or isinstance(err, str):
        text = err or ""
    elif isinstance(err, RuntimeError):
        text = f"{type(err).__name__}: {err}"
    else:
        return False
    return any(m in text.lower() for m in OOM_MARKERS)
