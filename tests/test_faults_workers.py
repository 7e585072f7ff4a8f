"""Fault injection, processes: worker children die with their parent.

Issue 10, case 7: orphaned ``--workers`` children went on training after their parent was
killed. Real processes, a real SIGKILL.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from faults import REPO

PARENT = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import os, sys, time; from nasseg.lifeline import die_with_parent; "
                          "die_with_parent(int(sys.argv[1])); print(os.getpid(), flush=True); time.sleep(120)",
                          str(os.getpid())], stdout=subprocess.PIPE, text=True)
print(child.stdout.readline().strip(), flush=True)
time.sleep(120)
"""


def _gone(pid: int, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            os.kill(pid, 0)
            if open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z":
                return True  # dead, waiting for init to reap it
        except (ProcessLookupError, FileNotFoundError):
            return True
        time.sleep(0.05)
    return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")
def test_child_dies_when_its_parent_is_killed():
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True, env=env)
    child = int(parent.stdout.readline())
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    if not _gone(child):
        os.kill(child, signal.SIGKILL)
        pytest.fail("the child outlived its killed parent")
