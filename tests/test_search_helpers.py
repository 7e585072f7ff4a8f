"""Shared pieces of the search tests: a tiny space and study written to a temp folder.

The networks are 3-stage, 4 to 48 channels wide, trained 2 epochs on 8 generated 32x32
images, so a trial takes about a second on a CPU; few distinct architectures are used so
that the (session-wide) cost cache makes most cost counts free.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from nasseg.arch import arch_id
from nasseg.train import train

TINY_SPACE = {
    "name": "tiny", "spatial_dims": 2,
    "stages": {"n": 3, "width": {"choice": [4, 48]}, "depth": 1,
               "block": {"type": "conv", "kernel_size": 3}, "skip": {"type": "concat"}},
    "constraints": {"input_size": [32, 32], "max_params": 60000},
}


def arch_yaml(tmp: Path, name: str, width: int) -> str:
    """An architecture file inside TINY_SPACE (width 48 is over its 60k-parameter limit)."""
    stage = {"width": width, "depth": 1, "block": {"type": "conv", "kernel_size": 3}}
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "spatial_dims": 2, "in_channels": 1, "out_channels": 1,
                                    "stages": [stage, stage, stage]}))
    return str(path)


def make_study(tmp: Path, space_dict: dict | None = None, **overrides: Any) -> Path:
    """Write ``tiny_space.yaml`` and ``study.yaml`` (output in ``tmp/run``); returns the study path."""
    (tmp / "tiny_space.yaml").write_text(yaml.safe_dump(space_dict or TINY_SPACE))
    study = {
        "name": "tiny", "data": {"source": "synthetic", "n_cases": 8, "size": 32, "val_fraction": 0.25},
        "space": "tiny_space.yaml", "objectives": ["dice", "params"], "sampler": "random",
        "budget": {"trials": 3}, "epochs": 2, "train": {"batch_size": 4, "num_threads": 1},
        "seed": 0, "output_dir": str(tmp / "run"),
        "early_stopping": {"enabled": False},
    }
    study.update(overrides)
    path = tmp / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


class CountingTrainer:
    """The real trainer, counting its calls (architecture ids, in order)."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, arch, data, cfg, **kw):
        self.calls.append(arch_id(arch))
        return train(arch, data, cfg, **kw)
