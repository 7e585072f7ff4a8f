"""Errors a user can fix: bad configs, bad data, bad arguments.

Every message names the file and the field or value at fault, so that the
command line can print it as is (exit code 2) instead of a traceback.
"""
from __future__ import annotations

import contextlib
import difflib
import errno
import os
import re
from collections.abc import Iterable, Iterator


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


_OUTPUT = "write the output somewhere else (-o/--out, --run-dir or output_dir)"
FIXABLE_ERRNO = {
    errno.EROFS: ("is on a read-only file system", _OUTPUT),
    errno.ENOSPC: ("no space left on the device", "free space there, or " + _OUTPUT),
    errno.EDQUOT: ("disk quota exceeded", "free space there, or " + _OUTPUT),
    errno.EACCES: ("permission denied", "give yourself access, or " + _OUTPUT),
    errno.EPERM: ("operation not permitted", "give yourself access, or " + _OUTPUT),
    errno.ENOTDIR: ("part of this path is a file, not a folder", "name a folder (or move the file away)"),
    errno.EISDIR: ("is a folder where a file is needed", "name a file, e.g. a .yaml, .onnx or .png inside it"),
    errno.EEXIST: ("exists", "name a new path (or move the existing one away)"),
    errno.ENOENT: ("no such file or folder", "check the path"),
    errno.ENAMETOOLONG: ("file name too long", "use a shorter name or folder"),
}
"""Operating-system errors a user can fix: errno -> (cause, fix). The one mapping
:func:`environment_error` applies, for the command line and for library code alike."""


class EnvironmentFault(NassegError):
    """A file-system fault the user can fix (read-only or full disk, a file where a folder is
    needed ...); the message names the path, the cause and the fix."""


def environment_error(err: BaseException) -> EnvironmentFault | None:
    """The user-fixable fault behind ``err`` (an ``OSError`` itself or in its cause/context
    chain, e.g. under a library's own error), or ``None``.

    Example:
        >>> try:
        ...     open("/proc/version/x", "w")
        ... except OSError as e:
        ...     print(environment_error(e))
        /proc/version/x: part of this path is a file, not a folder; name a folder (or move the file away)
    """
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in FIXABLE_ERRNO:
            cause, fix = FIXABLE_ERRNO[err.errno]
            path = err.filename if err.filename is not None else ""
            if err.errno == errno.EEXIST and path and os.path.isfile(path):
                cause = "exists as a file where a folder is needed"
            where = f"{path}: " if path else ""
            also = f" (and {err.filename2})" if getattr(err, "filename2", None) else ""
            return EnvironmentFault(f"{where}{cause}{also}; {fix}")
        err = err.__cause__ or err.__context__
    return None


@contextlib.contextmanager
def writing(path: str | os.PathLike) -> Iterator[None]:
    """Name ``path`` in an ``OSError`` raised while writing it: a failed ``write`` or
    ``close`` (a full disk) carries no file name of its own.

    Example:
        >>> with writing("/dev/full"), open("/dev/full", "w") as f:
        ...     f.write("x")
        Traceback (most recent call last):
        OSError: [Errno 28] No space left on device: '/dev/full'
    """
    try:
        yield
    except OSError as err:
        if err.filename is not None or err.errno is None:
            raise
        raise OSError(err.errno, err.strerror or os.strerror(err.errno), os.fspath(path)) from err


_URL_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@]*:)(?P<secret>[^\s@/]*)@")


def mask_url(text: str) -> str:
    """``text`` with the password of every URL in it masked: storage URLs are shown in
    messages and logs, their passwords never.

    Example:
        >>> mask_url("cannot open storage postgresql+psycopg://user:secret@db:5432/nas: refused")
        'cannot open storage postgresql+psycopg://user:***@db:5432/nas: refused'
    """
    return _URL_PASSWORD.sub(lambda m: f"{m['head']}***@", text)

