"""The console every ``nasseg`` command prints through.

On a terminal it is rich's usual console; when the output goes to a file or a pipe (a log,
CI), rich would wrap at 80 columns and cut table cells to ``1.95…``, so there tables are
laid out 200 columns wide and lines of text are never folded (a path stays whole).
"""
from __future__ import annotations

import logging
import os
from typing import Any

import optuna
from rich.console import Console

PIPE_WIDTH = 200

RAY_QUIET_ENV = {"RAY_LOGGER_LEVEL": "warning", "RAY_AIR_NEW_OUTPUT": "0"}
"""Ray's INFO lines off; Tune's classic reporter, silent at ``verbose=0``, instead of the new
one, which prints its configuration table and TensorBoard hint whatever the verbosity."""
RAY_QUIET_LOGGERS = ("ray._private.authentication.authentication_token_setup", "ray.tune.search.searcher")
"""Loggers of warnings Ray prints on every search: token authentication disabled (each local
``ray.init``), "save not implemented for Searcher" (each checkpoint of the experiment)."""


def make_console() -> Console:
    """A rich console; when not writing to a terminal, :data:`PIPE_WIDTH` columns wide with
    text lines unfolded."""
    out = Console()
    return out if out.is_terminal else Console(width=PIPE_WIDTH, soft_wrap=True)


def quiet_libraries(args: Any) -> None:
    """Third-party banners and INFO lines off unless ``--verbose``: Optuna's "A new study
    created in RDB", Ray's token warning and INFO lines, Ray Tune's configuration table and
    TensorBoard hint. Environment variables the user set are left alone. Called by the
    commands that open a study."""
    if getattr(args, "verbose", False):
        return
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for key, value in RAY_QUIET_ENV.items():
        os.environ.setdefault(key, value)
    for name in RAY_QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
