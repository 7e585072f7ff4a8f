"""``nasseg bench record``: a recorded benchmark table of learning curves.

In the spirit of NAS-Bench-201 (Dong & Yang, ICLR 2020) and HW-NAS-Bench (Li et al.,
ICLR 2021), for U-shaped segmentation: a seeded sample of *feasible* architectures of a
search space (uniform over the space's parameters, invalid and over-limit networks
dropped, duplicates removed) is trained with the ordinary training engine
(:func:`nasseg.train.train`), several training seeds each, and for every
(architecture, seed) the validation **and test** Dice after every epoch are stored with
the exact costs (parameters, MACs at the space's ``constraints.input_size``).

The split is three-way, fixed and seeded: ``n_train``/``n_val``/``n_test`` cases drawn
from one permutation of the sorted case ids (``split_seed``); validation drives model
selection and search, test Dice is only reported. Near-duplicate families
(:mod:`nasseg.data.integrity`) are drawn whole, so none crosses the parts (``duplicates:
ignore`` draws cases one by one, as tables recorded before families were grouped did). The
split and its family counts are written to the sidecar.

Output (``out``, default ``reports/bench/table``):

- ``<name>.csv.gz``: one row per (arch, seed, epoch): ``arch_id, seed, epoch, val_dice,
  test_dice, train_loss, seconds, params, gmacs, order`` plus, on every row, the
  architecture (``arch``, canonical JSON) and the space parameters that build it
  (``space_params``, JSON). Rows are appended (a gzip member) after each finished run,
  so a killed recorder resumes at the next unfinished (arch, seed). Recorders started side
  by side with the same settings share the work: each (arch, seed) is trained by whichever
  holds its lock file (``.<name>.locks/``, released by the kernel when a recorder dies).
- ``<name>.json``: settings, split, versions and the planned architecture order.

Example:
    >>> record(RecordConfig(data="../shared/data/dsb2018_96", space="search_spaces/lightweight_2d.yaml",
    ...                     n_archs=2, seeds=[0], epochs=1, n_train=8, n_val=4, n_test=4))  # doctest: +SKIP
"""
from __future__ import annotations

import gzip
import io
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nasseg.data import load_dataset, resolve_data
from nasseg.data.integrity import family_groups, find_duplicates
from nasseg.data.splits import describe_duplicates
from nasseg.errors import ConfigError
from nasseg.search.sources import RandomSource
from nasseg.store.objectives import OBJECTIVES
from nasseg.train import TrainConfig
from nasseg.versions import versions

COLUMNS = ["arch_id", "seed", "epoch", "val_dice", "test_dice", "train_loss", "seconds", "params",
           "gmacs", "order", "arch", "space_params"]


@dataclass
class RecordConfig:
    """What to record (stored in the sidecar; a resumed recording must match it)."""

    name: str = "dsb2018_64"
    data: str | None = None  # the dataset folder: an argument, never a default (dsb2018_96 here)
    size: int = 64
    space: str | None = None  # the search space YAML (search_spaces/lightweight_2d.yaml here)
    n_archs: int = 150
    seeds: list[int] = field(default_factory=lambda: [0, 1])
    epochs: int = 4
    batch_size: int = 8
    lr: float = 0.003
    n_train: int = 96
    n_val: int = 48
    n_test: int = 48
    split_seed: int = 0
    arch_seed: int = 0
    out: str = "reports/bench/table"
    duplicates: str = "group"  # or "ignore": cases drawn one by one (tables recorded before families were grouped)

    def identity(self) -> dict[str, Any]:
        """The fields a resumed recording must share (everything but ``n_archs``/``seeds``/``out``)."""
        return {k: v for k, v in asdict(self).items() if k not in ("n_archs", "seeds", "out")}


def iter_archs(space: Any, seed: int, in_channels: int, out_channels: int,
               known: dict[str, dict[str, Any]] | None = None, max_draws: int = 100_000):
    """Distinct feasible architectures, uniform over the space's parameters, in a seeded order.

    Yields dicts ``{arch_id, arch (ArchConfig), space_params, params, gmacs}`` with the
    costs at the space's ``constraints.input_size`` (parameters, and MACs counted by
    :func:`nasseg.cost.counters.count_macs`, the counter of :func:`nasseg.cost.profile`).
    ``known`` (arch id -> costs) skips counting architectures already recorded.
    """
    from nasseg.arch import arch_id, build_model  # lazy: CLI startup (torch; `nasseg --help` reads RecordConfig)
    from nasseg.cost import counters  # lazy: CLI startup (torch; `nasseg --help` reads RecordConfig)

    rng = np.random.default_rng(seed)
    shape = (1, in_channels, *(space.constraints.input_size or [256, 256]))
    limits = space.constraints.limits()
    known = known or {}
    seen: set[str] = set()
    for _ in range(max_draws):
        src = RandomSource(rng)
        try:
            cfg = space.build(src, in_channels, out_channels)
        except ConfigError:
            continue
        aid = arch_id(cfg)
        if aid in seen:
            continue
        seen.add(aid)
        if aid in known:
            yield {"arch_id": aid, "arch": cfg, "space_params": src.params, **known[aid]}
            continue
        model = build_model(cfg)
        params = counters.count_params(model)
        if params > limits.get("params", float("inf")):
            continue
        gmacs = counters.count_macs(model, shape) / 1e9
        if gmacs > limits.get("macs", float("inf")):
            continue
        yield {"arch_id": aid, "arch": cfg, "space_params": src.params, "params": int(params), "gmacs": gmacs}


def three_way_split(case_ids: list[str], n_train: int, n_val: int, n_test: int, seed: int,
                    groups: dict[str, str] | None = None) -> dict[str, Any]:
    """Disjoint train/val/test ids from one seeded permutation of the sorted ids.

    With ``groups`` (case id -> group label, e.g. near-duplicate families; a case it does
    not name is its own group), the permutation is of groups, in the order of their first
    sorted id; each group goes whole into the first part (train, val, test) with room for
    all of it, or into none. Without groups every case is its own group: the split of
    tables recorded before families were grouped.

    Example:
        >>> s = three_way_split(list("abcdef"), 2, 1, 1, 0, {"a": "x", "b": "x"})
        >>> [p for p in ("train", "val", "test") if len({"a", "b"} & set(s[p])) == 1]  # together or absent
        []
    """
    ids = sorted(case_ids)
    sizes = {"train": n_train, "val": n_val, "test": n_test}
    if sum(sizes.values()) > len(ids):
        raise ConfigError(f"split: {n_train}+{n_val}+{n_test} cases asked, the dataset has {len(ids)}")
    units: dict[str, list[str]] = {}
    for c in ids:
        units.setdefault((groups or {}).get(c, c), []).append(c)
    members = list(units.values())
    parts: dict[str, list[str]] = {p: [] for p in sizes}
    for u in np.random.default_rng(seed).permutation(len(members)):
        part = next((p for p in sizes if len(parts[p]) + len(members[u]) <= sizes[p]), None)
        if part is not None:
            parts[part] += members[u]
    short = {p: sizes[p] - len(v) for p, v in parts.items() if len(v) < sizes[p]}
    if short:
        raise ConfigError(f"split: the near-duplicate families cannot fill {n_train}/{n_val}/{n_test} cases "
                          f"(short by {short}); ask for fewer cases or pass --duplicates ignore")
    return {"method": "three_way", "seed": seed, **{p: sorted(v) for p, v in parts.items()}}


def _recorded_split(ds: Any, cfg: RecordConfig) -> dict[str, Any]:
    """The table's three-way split, with its near-duplicate record (as ``split.json`` has it)."""
    if cfg.duplicates not in ("group", "ignore"):
        raise ConfigError(f"bench record: duplicates must be 'group' or 'ignore', got '{cfg.duplicates}'")
    report = find_duplicates(ds)
    grouped = cfg.duplicates == "group"
    families = dict(zip(report.case_ids, family_groups(report), strict=True)) if grouped else None
    split = three_way_split(list(ds.case_ids), cfg.n_train, cfg.n_val, cfg.n_test, cfg.split_seed, families)
    part = {c: p for p in ("train", "val", "test") for c in split[p]}
    straddling = sum(len({part[c] for c in f.cases if c in part}) > 1 for f in report.families)
    split["duplicates"] = {"split": cfg.duplicates, "grouped": grouped, **report.summary(), "straddling": straddling}
    return split


def done_runs(table: Path) -> tuple[set[tuple[str, int]], dict[str, dict[str, Any]]]:
    """(arch_id, seed) pairs already in the table, and the costs of its architectures."""
    import pandas as pd  # lazy: CLI startup (pandas; `nasseg --help` reads RecordConfig)

    if not table.exists():
        return set(), {}
    df = pd.read_csv(table, usecols=["arch_id", "seed", "params", "gmacs"])
    costs = {a: {"params": int(p), "gmacs": float(g)}
             for a, p, g in df.drop_duplicates("arch_id")[["arch_id", "params", "gmacs"]].itertuples(index=False)}
    return set(zip(df["arch_id"], df["seed"].astype(int))), costs


def append_rows(table: Path, rows: list[dict[str, Any]]) -> None:
    """Append rows as one gzip member (a header only when the file is new)."""
    import pandas as pd  # lazy: CLI startup (pandas; `nasseg --help` reads RecordConfig)

    buf = io.StringIO()
    pd.DataFrame(rows, columns=COLUMNS).to_csv(buf, index=False, header=not table.exists())
    with gzip.open(table, "at") as fh:
        fh.write(buf.getvalue())


def record(cfg: RecordConfig, log: Any = print) -> Path:
    """Record (or resume) the table; returns its path."""
    from nasseg.search.space_parse import load_space  # lazy: CLI startup (torch; `nasseg --help` reads RecordConfig)
    from nasseg.store.claims import job_lock  # lazy: CLI startup (optuna; `nasseg --help` reads RecordConfig)

    for flag, value in (("--data", cfg.data), ("--space", cfg.space)):
        if not value:
            raise ConfigError(f"bench record: {flag} is required (the {'dataset folder' if flag == '--data' else 'search space YAML'})")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    table, sidecar = out / f"{cfg.name}.csv.gz", out / f"{cfg.name}.json"
    if sidecar.exists():
        old = json.loads(sidecar.read_text())
        recorded = {"duplicates": "ignore", **old["config"]["identity"]}  # tables from before families were grouped
        if recorded != cfg.identity():
            if {**recorded, "duplicates": cfg.duplicates} == cfg.identity():
                raise ConfigError(f"{sidecar}: recorded with duplicates: {recorded['duplicates']}; continue it with "
                                  f"--duplicates {recorded['duplicates']} (or record a new --table)")
            raise ConfigError(f"{sidecar}: recorded with other settings {old['config']['identity']}; "
                              "use another --name or --out")
    data = resolve_data(cfg.data, size=cfg.size)
    ds = load_dataset(data)
    split = _recorded_split(ds, cfg)
    log(describe_duplicates(split))
    split_file = out / f"{cfg.name}.split.json"
    split_file.write_text(json.dumps({"train": split["train"], "val": split["val"]}) + "\n")
    data = resolve_data(cfg.data, size=cfg.size, file=str(split_file))
    space = load_space(cfg.space)
    meta = {"config": {**asdict(cfg), "identity": cfg.identity()},
            "costs_at": [1, ds.in_channels, *(space.constraints.input_size or [256, 256])],
            "split": split, "versions": versions(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    sidecar.write_text(json.dumps(meta, indent=1) + "\n")
    index = {c: i for i, c in enumerate(ds.case_ids)}
    test_ds = ds.subset([index[c] for c in split["test"]])
    done, known = done_runs(table)
    log(f"record: {cfg.n_archs} archs x {len(cfg.seeds)} seeds planned, {len(done)} runs done")
    archs = iter_archs(space, cfg.arch_seed, ds.in_channels, ds.out_channels, known)
    todo = ((k, a, s) for k, a in zip(range(cfg.n_archs), archs) for s in cfg.seeds
            if (a["arch_id"], s) not in done)
    locks = out / f".{cfg.name}.locks"  # recorders started side by side share the work, as `nasseg confirm` does
    t_all, n_runs = time.perf_counter(), 0
    for k, a, seed in todo:
        with job_lock(locks / f"{a['arch_id']}-s{seed}.lock", wait=False) as mine:
            if not mine or (a["arch_id"], seed) in done_runs(table)[0]:  # another recorder has it, or just finished it
                continue
            t0 = time.perf_counter()
            try:
                rows = _train_run(cfg, data, test_ds, k, a, seed)
            except Exception as err:  # noqa: BLE001 - a failed run is logged and recorded as missing
                log(f"run {a['arch_id']} seed {seed} failed: {type(err).__name__}: {err}")
                continue
            with job_lock(locks / "table.lock", wait=True):
                append_rows(table, rows)
        n_runs += 1
        log(f"{time.strftime('%H:%M:%S')} arch {k} {a['arch_id']} seed {seed}: val {rows[-1]['val_dice']:.3f} "
            f"test {rows[-1]['test_dice']:.3f} {OBJECTIVES['params'].describe(a['params'])}, "
            f"{OBJECTIVES['macs'].describe(a['gmacs'])}, "
            f"{time.perf_counter() - t0:.1f} s (run {n_runs} here, {time.perf_counter() - t_all:.0f} s)")
    return table


def _train_run(cfg: RecordConfig, data: Any, test_ds: Any, k: int, a: dict[str, Any], seed: int) -> list[dict[str, Any]]:
    """Train one (architecture, seed) of the table; its rows, one per epoch."""
    import torch  # lazy: CLI startup (torch; `nasseg --help` reads RecordConfig)

    from nasseg.arch import build_model  # lazy: CLI startup (torch; `nasseg --help` reads RecordConfig)
    from nasseg.train import train  # lazy: CLI startup (torch; `nasseg --help` reads RecordConfig)
    from nasseg.train.evaluate import evaluate  # lazy: CLI startup (torch; `nasseg --help` reads RecordConfig)

    tcfg = TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, seed=seed,
                       device="cpu", num_threads=1)
    torch.manual_seed(seed)
    model = build_model(a["arch"])
    rows: list[dict[str, Any]] = []

    def on_epoch(epoch: int, m: dict) -> bool:
        summary, _ = evaluate(model, test_ds, device=torch.device("cpu"), hausdorff=False,
                              memory_format=torch.channels_last)
        rows.append({"arch_id": a["arch_id"], "seed": seed, "epoch": epoch, "val_dice": m["dice"],
                     "test_dice": summary["dice"], "train_loss": m["train_loss"],
                     "seconds": m["seconds"], "params": a["params"], "gmacs": a["gmacs"], "order": k,
                     "arch": json.dumps(a["arch"].canonical(), sort_keys=True),
                     "space_params": json.dumps(a["space_params"], sort_keys=True)})
        return False

    train(model, data, tcfg, callback=on_epoch, progress=False)
    return rows
