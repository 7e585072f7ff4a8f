"""The recorded benchmark table, read back for replay (see :mod:`nasseg.bench.record`).

``Table`` holds, for ``A`` architectures x ``S`` training seeds x ``E`` epochs, the
validation and test Dice after every epoch (arrays ``val``/``test`` of shape
``(A, S, E)``), the costs (``gmacs``, ``params``; shape ``(A,)``) and the space
parameters of every architecture. Only (architecture, seed) runs with all ``E`` epochs
and architectures with every seed are kept, so every lookup is complete.

A lookup of an architecture that is not in the table raises :class:`NotInTable`
(a replay never invents a result).

Example:
    >>> t = Table.load("reports/bench/table/dsb2018_64.csv.gz")   # doctest: +SKIP
    >>> val, test = t.curve(t.arch_ids[0], seed=t.seeds[0]); val.shape   # doctest: +SKIP
    (4,)
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nasseg.errors import ConfigError


class NotInTable(ConfigError):
    """The architecture (or seed) was never recorded."""


@dataclass
class Table:
    arch_ids: list[str]
    seeds: list[int]
    val: np.ndarray
    test: np.ndarray
    gmacs: np.ndarray
    params: np.ndarray
    space_params: list[dict[str, Any]] = field(default_factory=list)
    source: str = "table"

    def __post_init__(self) -> None:
        self.index = {a: i for i, a in enumerate(self.arch_ids)}

    @property
    def epochs(self) -> int:
        return int(self.val.shape[2])

    def __len__(self) -> int:
        return len(self.arch_ids)

    def costs(self, i: int) -> tuple[float, float]:
        """``(MACs in G, parameters)`` of architecture ``i`` (the minimised objectives)."""
        return float(self.gmacs[i]), float(self.params[i])

    def lookup(self, arch_id: str) -> int:
        """Row of ``arch_id``; raises :class:`NotInTable` when it was never recorded."""
        try:
            return self.index[arch_id]
        except KeyError:
            raise NotInTable(f"{self.source}: architecture {arch_id} is not in the table "
                             f"({len(self)} recorded); replay cannot train it") from None

    def curve(self, arch_id: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Validation and test Dice per epoch (epochs 1..E) of one recorded run."""
        i = self.lookup(arch_id)
        if seed not in self.seeds:
            raise NotInTable(f"{self.source}: seed {seed} not recorded (seeds {self.seeds})")
        s = self.seeds.index(seed)
        return self.val[i, s].copy(), self.test[i, s].copy()

    @classmethod
    def from_frame(cls, df: pd.DataFrame, source: str = "table") -> Table:
        """Build from rows ``arch_id, seed, epoch, val_dice, test_dice, params, gmacs[, space_params]``."""
        need = {"arch_id", "seed", "epoch", "val_dice", "test_dice", "params", "gmacs"}
        missing = need - set(df.columns)
        if missing:
            raise ConfigError(f"{source}: missing columns {sorted(missing)}")
        df = df.drop_duplicates(["arch_id", "seed", "epoch"], keep="last")
        epochs = int(df["epoch"].max())
        full = df.groupby(["arch_id", "seed"])["epoch"].nunique()
        full = full[full == epochs].reset_index()
        seeds = sorted(int(s) for s in full["seed"].unique())
        per_arch = full.groupby("arch_id")["seed"].nunique()
        order = df.drop_duplicates("arch_id").set_index("arch_id")
        keep = [a for a in order.index if per_arch.get(a, 0) == len(seeds)]
        if "order" in order.columns:
            keep.sort(key=lambda a: order.loc[a, "order"])
        if not keep:
            raise ConfigError(f"{source}: no architecture has complete runs for every seed")
        rows = df[df["arch_id"].isin(keep) & df["seed"].isin(seeds)]
        idx = {a: i for i, a in enumerate(keep)}
        val = np.full((len(keep), len(seeds), epochs), np.nan)
        test = np.full_like(val, np.nan)
        a_i = rows["arch_id"].map(idx).to_numpy()
        s_i = rows["seed"].map({s: k for k, s in enumerate(seeds)}).to_numpy()
        e_i = rows["epoch"].to_numpy(dtype=int) - 1
        val[a_i, s_i, e_i] = rows["val_dice"].to_numpy(dtype=float)
        test[a_i, s_i, e_i] = rows["test_dice"].to_numpy(dtype=float)
        space = [json.loads(order.loc[a, "space_params"]) if "space_params" in order.columns else {}
                 for a in keep]
        return cls(keep, seeds, val, test, order.loc[keep, "gmacs"].to_numpy(dtype=float),
                   order.loc[keep, "params"].to_numpy(dtype=float), space, source)

    @classmethod
    def load(cls, path: str | Path) -> Table:
        """Read a recorded ``.csv.gz`` table."""
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"{path}: no such table (record one with `nasseg bench record`)")
        return cls.from_frame(pd.read_csv(path), str(path))

    def seed_agreement(self, n_boot: int = 2000, rng_seed: int = 0) -> list[dict[str, float]]:
        """How far the table's score ranks architectures rather than training seeds, per epoch.

        For every epoch ``e`` (1..E): Spearman's rho of validation Dice between the first two
        training seeds across the ``A`` architectures, a percentile-bootstrap 95% interval
        (architectures resampled with replacement, ``n_boot`` times; ties ranked by their
        average), and the share of runs that never predicted foreground (val Dice < 0.01).
        A table can tell search strategies apart only where rho is high (issue 23 asks for
        rho >= 0.7 before a fidelity is used for 1,000 architectures).

        Example:
            >>> q = np.linspace(0.2, 0.8, 30)
            >>> val = np.stack([q, q + np.random.default_rng(0).normal(0, 0.01, 30)], 1)[:, :, None]
            >>> t = Table([str(i) for i in range(30)], [0, 1], val, val, np.ones(30), np.ones(30))
            >>> round(t.seed_agreement(200)[0]["rho"], 2) > 0.9
            True
        """
        if len(self.seeds) < 2:
            raise ConfigError(f"{self.source}: one training seed recorded; seed agreement needs two")
        out = []
        for e in range(self.epochs):
            rho, lo, hi = spearman_ci(self.val[:, 0, e], self.val[:, 1, e], n_boot, rng_seed)
            out.append({"epoch": e + 1, "archs": len(self), "rho": rho, "lo": lo, "hi": hi,
                        "no_foreground": float((self.val[:, :2, e] < 0.01).mean())})
        return out


def spearman_ci(x: np.ndarray, y: np.ndarray, n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Spearman's rho of paired scores and its percentile-bootstrap 95% interval (pairs
    resampled with replacement ``n_boot`` times; ties ranked by their average).

    Example:
        >>> spearman_ci(np.arange(10.0), np.arange(10.0)[::-1], 100)
        (-1.0, -1.0, -1.0)
    """
    from scipy.stats import rankdata  # lazy: only this summary needs scipy

    def rho(a: np.ndarray, b: np.ndarray) -> np.ndarray:  # Spearman along the last axis
        ra, rb = rankdata(a, axis=-1), rankdata(b, axis=-1)
        ra, rb = ra - ra.mean(-1, keepdims=True), rb - rb.mean(-1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            return (ra * rb).sum(-1) / np.sqrt((ra ** 2).sum(-1) * (rb ** 2).sum(-1))

    boot = np.random.default_rng(seed).integers(0, len(x), size=(n_boot, len(x)))
    lo, hi = np.nanpercentile(rho(x[boot], y[boot]), [2.5, 97.5])
    return float(rho(x, y)), float(lo), float(hi)
