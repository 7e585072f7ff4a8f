"""Worker processes die with their parent.

``nasseg search --workers N`` trains in N child processes. When the parent is killed
(``kill -9``, a closed terminal, a scheduler pre-empting the job) the children must not go
on training unseen, holding the storage and the CPU: on Linux each child asks the kernel
for a signal when its parent dies (``prctl(PR_SET_PDEATHSIG, SIGKILL)``), and checks once
that the parent did not die before the request. Their RUNNING trials then have a dead
owner and are re-queued by the next run (see :mod:`nasseg.store.claims`).

Example:
    >>> die_with_parent(os.getppid())  # in the child, first thing  # doctest: +SKIP
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> bool:
    """Arrange for this process to be killed when ``parent_pid`` exits.

    Args:
        parent_pid: the pid of the parent as the parent saw it (``os.getpid()`` there,
            passed to the child), to detect a parent that died before this call.

    Returns:
        True when the kernel will deliver the signal (Linux), False where it cannot.
    """
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
        return False
    if os.getppid() != parent_pid:  # the parent died before the request: follow it now
        os.kill(os.getpid(), signal.SIGKILL)
    return True
