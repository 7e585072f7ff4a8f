"""Plain JSON values: the one converter every record, run file and trial attribute uses.

Example:
    >>> import numpy as np
    >>> json_safe({"dice": np.float32(0.5), "shape": (2, 3), "hd95": float("inf"), 1: np.arange(2)})
    {'dice': 0.5, 'shape': [2, 3], 'hd95': None, '1': [0, 1]}
"""
from __future__ import annotations

import math
from typing import Any

__all__ = ["json_safe"]


def json_safe(x: Any) -> Any:
    """``x`` as plain JSON types: keys as strings, tuples as lists, non-finite floats as
    ``None``, numpy and torch scalars and arrays unboxed (through their ``tolist``)."""
    if isinstance(x, dict):
        return {str(k): json_safe(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [json_safe(v) for v in x]
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if hasattr(x, "tolist") and not isinstance(x, str | bytes):
        return json_safe(x.tolist())
    return x
