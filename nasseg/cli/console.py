"""The console every ``nasseg`` command prints through.

On a terminal it is rich's usual console; when the output goes to a file or a pipe (a log,
CI), rich would wrap at 80 columns and cut table cells to ``1.95…``, so it is 200 columns
wide there and numbers stay whole.
"""
from __future__ import annotations

from rich.console import Console

PIPE_WIDTH = 200


def make_console() -> Console:
    """A rich console, :data:`PIPE_WIDTH` columns wide when not writing to a terminal."""
    out = Console()
    return out if out.is_terminal else Console(width=PIPE_WIDTH)
