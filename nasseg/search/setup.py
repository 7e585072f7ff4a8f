"""From a study YAML to an Optuna study: resolve data, space, costs, storage; create or resume.

What the study stores is a search :class:`~nasseg.store.records.StudyRecord` (the study
YAML, the space, the objectives, the hypervolume bounds, the data and training settings,
versions, the command); :func:`make_record` builds it.

Example:
    >>> prep = prepare("studies/quickstart.yaml")
    >>> study = open_study(prep, create=True)
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from nasseg.arch import check_divisible, load_arch, size_multiple
from nasseg.data.splits import PINNED_SPLIT_FILE
from nasseg.device import resolve_device
from nasseg.errors import ConfigError, NassegError, mask_url
from nasseg.runs import study_data
from nasseg.search.objective import TrialSetup
from nasseg.search.space import SearchSpace
from nasseg.search.space_parse import load_space
from nasseg.search.study import BudgetConfig, StudyConfig, load_study_config, resolve_path
from nasseg.store import OBJECTIVES, StudyRecord, create_or_open, open_existing, study_record
from nasseg.store.storage import now_iso
from nasseg.versions import provenance, versions
from nasseg.configio import validate
from nasseg.data import load_dataset
from nasseg.data.config import data_section
from nasseg.data.plan import study_patch
from nasseg.search.samplers import make_sampler

IDENTITY_KEYS = ("space", "objectives", "dataset", "train", "input_shape", "limits")
"""Stored attrs that must match when a study is resumed (a change means a new study)."""


@dataclass
class Prepared:
    """A resolved study: its config, space, trial settings, storage and bounds."""

    cfg: StudyConfig
    source: str
    space: SearchSpace
    setup: TrialSetup
    output_dir: Path
    storage_url: str
    reference: dict[str, float]
    ideal: dict[str, float]
    initial_params: list[tuple[str, dict[str, Any]]]
    command: str = ""


_BUDGET_KEYS = tuple(BudgetConfig.model_fields)
"""The budget fields a command-line override may set (derived: a new budget field is routed too)."""


def with_overrides(cfg: StudyConfig, overrides: dict[str, Any], where: str) -> StudyConfig:
    """``cfg`` with top-level or budget fields replaced (``None`` = keep), validated again.

    Example:
        >>> with_overrides(load_study_config("studies/quickstart.yaml"), {"epochs": 2, "time_s": 60}, "q").epochs
        2
    """
    given = {k: v for k, v in overrides.items() if v is not None}
    if not given:
        return cfg
    raw = cfg.model_dump(mode="json", exclude_unset=True)
    budget = {**raw.get("budget", {}), **{k: given.pop(k) for k in _BUDGET_KEYS if k in given}}
    return validate(StudyConfig, {**raw, **given, "budget": budget}, f"{where} (with command-line overrides)")


def prepare(path: str | Path, *, workers: int | None = None, trials: int | None = None,
            command: str = "", overrides: dict[str, Any] | None = None,
            trials_per_device: int | None = None) -> Prepared:
    """Load and check a study YAML and everything it names (space, data, presets).

    ``overrides`` replace top-level study fields or budget fields for this run, e.g.
    ``{"device": "cpu", "epochs": 2, "time_s": 600, "output_dir": "runs/quick"}`` (``None``
    values are ignored); they are validated like the file.

    Raises:
        ConfigError: naming the file and the field at fault.
    """
    path = Path(path)
    cfg = with_overrides(load_study_config(path), {**(overrides or {}), "workers": workers, "trials": trials,
                                                   "trials_per_device": trials_per_device}, str(path))
    src = str(path)
    devices = resolve_devices(cfg.devices, "--device" if (overrides or {}).get("device") else f"{src}: device")
    cfg = cfg.model_copy(update={"device": devices,
                                 "workers": max(cfg.workers, cfg.trials_per_device * len(devices))})
    space = load_space(resolve_path(cfg.space, path, "space"))
    data = data_section(cfg.data, src, here=path.parent)
    if data.path:
        data = data.model_copy(update={"path": str(Path(data.path).resolve())})
    try:
        ds = load_dataset(data)
    except NassegError as err:
        raise ConfigError(f"{src}: data: {err}") from None
    if space.spatial_dims != ds.spatial_dims:
        raise ConfigError(f"{src}: space {space.source} is {space.spatial_dims}D but the data is "
                          f"{ds.spatial_dims}D")
    train = cfg.train_config(src)  # no device: each worker passes its own at run time
    if ds.spatial_dims == 3 and not ds.fixed_size and data.patch_size is None:
        data = data.model_copy(update={"patch_size": study_patch(ds, size_multiple(space.max_stages))})
    if ds.spatial_dims == 3 and not ds.fixed_size:
        size = list(data.patch_size)  # costs at the patch the trials train on
    else:
        size = space.constraints.input_size or list(data.patch_size or ds.shapes()[0])
    check_divisible(size, space.max_stages, f"{src}: data: the input size",
                    whose=f"the deepest networks of {space.source}: ",
                    how="set constraints.input_size there, or a patch_size/size that is")
    input_shape = (space.constraints.batch, ds.in_channels, *map(int, size))
    limits = space.constraints.limits()
    reference, ideal = {}, {}
    for name in cfg.objectives:
        obj = OBJECTIVES[name]
        ideal[name] = obj.ideal
        if obj.maximize:  # a metric in [0, 1]: its worst bound is 0 unless the study says
            reference[name] = float(cfg.reference_point.get(name, 0.0))
            continue
        bound = cfg.reference_point.get(name, limits.get(name))
        if bound is None:
            raise ConfigError(f"{src}: reference_point.{name}: needed for the hypervolume; set it, "
                              f"or a {obj.constraint} constraint in {space.source}")
        reference[name] = float(bound)
    output_dir = cfg.out_dir()
    url = cfg.storage_url()
    initial = []
    for i, name in enumerate(cfg.initial_archs):
        try:
            arch = load_arch(name)
        except ConfigError as err:
            raise ConfigError(f"{src}: initial_archs.{i}: {err}") from None
        try:
            params = space.params_for(arch, ds.in_channels, ds.out_channels, label=name)
        except ConfigError as err:
            raise ConfigError(f"{src}: initial_archs.{i}: {name} is not in the space: {err}") from None
        initial.append((name, params))
    setup = TrialSetup(study_name=cfg.name, storage_url=url, objectives=list(cfg.objectives),
                       data=data, train=train, input_shape=input_shape, in_channels=ds.in_channels,
                       out_channels=ds.out_channels, limits=limits, early_stopping=cfg.early_stopping,
                       seed=cfg.seed, run_root=str(output_dir / "trials"))
    return Prepared(cfg, src, space, setup, output_dir, url, reference, ideal, initial, command)


def resolve_devices(devices: list[str], option: str) -> list[str]:
    """Each device through :func:`nasseg.device.resolve_device` (``auto`` resolved)."""
    return [str(resolve_device(d, option)) for d in devices]


def make_record(prep: Prepared) -> StudyRecord:
    """The record stored with a new study (see :class:`~nasseg.store.records.StudyRecord`)."""
    s = prep.setup
    prov = provenance(data=s.data, seeds=[s.seed], threads=s.train.num_threads
                      if isinstance(s.train.num_threads, int) else None, device=prep.cfg.devices[0])
    return StudyRecord(
        nasseg_kind="search", config=prep.cfg.model_dump(mode="json"), space=prep.space.raw,
        objectives=prep.cfg.objective_dicts(), reference_point=prep.reference, ideal_point=prep.ideal,
        normalisation="linear", units={o: OBJECTIVES[o].unit for o in prep.cfg.objectives},
        input_shape=list(s.input_shape), limits=s.limits, dataset=s.data.model_dump(mode="json"),
        train=s.train.recipe(),
        train_key=s.train_key, versions=versions(), command=prep.command, created=now_iso(),
        provenance=prov, data_identity=prov["data_hash"])


def open_study(prep: Prepared, *, create: bool, sampler: optuna.samplers.BaseSampler | None = None,
               ) -> optuna.Study:
    """Load the study, or create it (``create``) with its record and initial architectures.

    Raises:
        ConfigError: the stored study was made with a different space, data, objectives
            or training settings (resuming it would mix incomparable trials).
    """
    sampler = sampler or make_sampler(prep.cfg, prep.space)
    if create:
        enqueue = [(params, {"initial_arch": label}) for label, params in prep.initial_params]
        study = create_or_open(prep.storage_url, prep.cfg.name, make_record(prep), sampler=sampler,
                               enqueue=enqueue)
    else:
        study = open_existing(prep.storage_url, prep.cfg.name, sampler=sampler)
    check_same(prep, study)
    prep.setup.stored_train_key = study_record(study).train_key
    prep.setup.data = study_data(prep.setup.data, study, prep.output_dir)  # keeps a pre-grouping split
    return study


def check_same(prep: Prepared, study: optuna.Study) -> None:
    """Refuse to resume a study whose identity (see IDENTITY_KEYS) changed.

    Values are compared where both sides have them: a field that a newer nasseg added to
    (or dropped from) a config schema does not block a resume, a changed value does; the
    generator settings of a folder dataset are ignored.
    """
    stored, now = study_record(study).attrs(), make_record(prep).attrs()
    if stored.get("nasseg_kind") != "search":
        raise ConfigError(f"study '{prep.cfg.name}' in {mask_url(prep.storage_url)} is not a nasseg search study")
    for key in IDENTITY_KEYS:
        old, new = _plain(stored.get(key)), _plain(now[key])
        if key == "dataset":
            old, new = _relevant_data(old), _relevant_data(new)
        if not _same(old, new):
            raise ConfigError(
                f"{prep.source}: study '{prep.cfg.name}' in {mask_url(prep.storage_url)} was created with a "
                f"different {key}; resuming would mix incomparable trials. Rename the study, or "
                f"set another output_dir/storage (stored {key}: {_short(stored.get(key))})")
    if stored.get("data_identity") and stored["data_identity"] != now["data_identity"]:
        where = getattr(prep.setup.data, "path", None) or "the data"
        raise ConfigError(
            f"{prep.source}: the data at {where} changed since study '{prep.cfg.name}' was created "
            f"(content identity {stored['data_identity']}, now {now['data_identity']}); its trials were "
            "split and scored on the old data, and resuming would mix the two in one front. Restore the "
            "data, or rename the study / set another storage to start a new one")


def _relevant_data(d: Any) -> Any:
    if isinstance(d, dict) and d.get("kind") != "synthetic":
        d = {k: v for k, v in d.items() if k != "synthetic"}
    if isinstance(d, dict) and Path(str((d.get("split") or {}).get("file") or "")).name == PINNED_SPLIT_FILE:
        d = {k: v for k, v in d.items() if k != "split"}  # pinned by open_study: the stored runs' own split
    return d


def _same(a: Any, b: Any) -> bool:
    """Equal on the keys both mappings have (recursively); other values compared as is."""
    if isinstance(a, dict) and isinstance(b, dict):
        return all(_same(a[k], b[k]) for k in a.keys() & b.keys())
    return a == b


def _plain(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_plain(v) for v in x]
    return x


def _short(x: Any, n: int = 200) -> str:
    text = repr(x)
    return text if len(text) <= n else text[:n] + "..."
