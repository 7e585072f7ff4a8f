"""Shared pieces of the fault-injection suite (``tests/test_faults_*.py``): tiny real data,
a tiny real network, and the ``nasseg`` command line run in-process or as a subprocess."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
FAST = {"device": "cpu", "num_threads": 1, "batch_size": 4, "lr": 5e-3}
TINY_ARCH = {"name": "tiny", "spatial_dims": 2, "in_channels": 1, "out_channels": 1,
             "stages": [{"width": 4, "block": {"type": "conv"}}, {"width": 8, "block": {"type": "conv"}}]}


def mask_folder(root: Path, n: int = 8, size: int = 16, *, stray: dict[int, int] | None = None,
                empty: bool = False, rgb: bool = False) -> Path:
    """A 2D folder of ``n`` cases with {0, 1} masks; ``stray={case: value}`` puts one pixel of
    ``value`` into that case's mask; ``empty`` leaves every mask empty."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(exist_ok=True)
    for i in range(n):
        shape = (size, size, 3) if rgb else (size, size)
        Image.fromarray((rng.random(shape) * 255).astype(np.uint8)).save(root / "images" / f"c{i}.png")
        mask = np.zeros((size, size), np.uint8)
        if not empty:
            mask[2 + i % 4: 9 + i % 4, 3:10] = 1
        if stray and i in stray:
            mask[0, 0] = stray[i]
        Image.fromarray(mask).save(root / "masks" / f"c{i}.png")
    return root


def run_cli(*args: str, env: dict | None = None, timeout: float = 300, cwd: Path | None = None,
            preamble: str = "") -> subprocess.CompletedProcess:
    """``nasseg ARGS`` in a fresh Python process (``preamble`` runs first, e.g. a memory limit)."""
    code = f"import sys\n{preamble}\nfrom nasseg.cli import main\nsys.exit(main(sys.argv[1:]))"
    full_env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=timeout, env=full_env, cwd=cwd or REPO)
