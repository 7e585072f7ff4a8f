"""The console every ``nasseg`` command prints through.

On a terminal it is rich's usual console; when the output goes to a file or a pipe (a log,
CI), rich would wrap at 80 columns and cut table cells to ``1.95…``, so there tables are
laid out 200 columns wide and lines of text are never folded (a path stays whole).
"""
from __future__ import annotations

from rich.console import Console

PIPE_WIDTH = 200


def make_console() -> Console:
    """A rich console; when not writing to a terminal, :data:`PIPE_WIDTH` columns wide with
    text lines unfolded."""
    out = Console()
    return out if out.is_terminal else Console(width=PIPE_WIDTH, soft_wrap=True)
