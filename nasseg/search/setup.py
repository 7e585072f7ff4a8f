"""From a study YAML to an Optuna study: resolve data, space, costs, storage; create or resume.

What the study stores (``study.user_attrs``, read by ``nasseg pareto``, ``export`` and the
report): ``nasseg_kind`` ("search"), ``config`` (the study YAML), ``space`` (the space
YAML), ``objectives`` ([{name, direction}] in value order), ``reference_point`` and
``ideal_point`` (the fixed bounds of normalised hypervolume, see
:mod:`nasseg.search.pareto`), ``normalisation`` ("linear"), ``units``, ``input_shape``,
``limits``, ``dataset`` (the DataConfig), ``train`` (the TrainConfig), ``train_key``,
``versions``, ``command`` and ``created``.

Example:
    >>> prep = prepare("studies/quickstart.yaml")
    >>> study, storage = open_study(prep, create=True)
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage

from nasseg.arch import load_arch
from nasseg.errors import ConfigError, NassegError
from nasseg.search.objective import COST_UNITS, TrialSetup
from nasseg.search.space import SearchSpace
from nasseg.search.space_parse import load_space
from nasseg.search.storage import (
    default_storage_url,
    normalise_url,
    now_iso,
    open_storage,
)
from nasseg.search.study import StudyConfig, load_study_config, resolve_path
from nasseg.versions import versions

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


def prepare(path: str | Path, *, workers: int | None = None, trials: int | None = None,
            command: str = "") -> Prepared:
    """Load and check a study YAML and everything it names (space, data, presets).

    Raises:
        ConfigError: naming the file and the field at fault.
    """
    from nasseg.data import load_dataset, resolve_data
    from nasseg.train import TrainConfig

    path = Path(path)
    cfg = load_study_config(path)
    if workers is not None or trials is not None:
        budget = cfg.budget.model_copy(update={"trials": trials} if trials else {})
        cfg = cfg.model_copy(update={"workers": workers or cfg.workers, "budget": budget})
    src = str(path)
    devices = resolve_devices(cfg.devices, src)
    cfg = cfg.model_copy(update={"device": devices})
    space = load_space(resolve_path(cfg.space, path, "space"))
    data_src = cfg.data.source
    if data_src.lower() not in ("synthetic", "synthetic2d", "synthetic3d"):
        data_src = str(resolve_path(data_src, path, "data.source").resolve())
    try:
        data = resolve_data(data_src, **cfg.data.overrides())
        ds = load_dataset(data)
    except NassegError as err:
        raise ConfigError(f"{src}: data: {err}") from None
    if space.spatial_dims != ds.spatial_dims:
        raise ConfigError(f"{src}: space {space.source} is {space.spatial_dims}D but the data is "
                          f"{ds.spatial_dims}D")
    train = TrainConfig.build({**cfg.train, "epochs": cfg.epochs, "seed": cfg.seed,
                               "device": devices[0]}, where=f"{src}: train")
    size = space.constraints.input_size or list(data.patch_size or ds.shapes()[0])
    input_shape = (space.constraints.batch, ds.in_channels, *map(int, size))
    limits = space.constraints.limits()
    reference, ideal = {"dice": 0.0}, {"dice": 1.0}
    for name in cfg.objectives:
        if name == "dice":
            continue
        bound = cfg.reference_point.get(name, limits.get(name))
        if bound is None:
            raise ConfigError(f"{src}: reference_point.{name}: needed for the hypervolume; set it, "
                              f"or a max_{name} constraint in {space.source}")
        reference[name], ideal[name] = float(bound), 0.0
    if "dice" in cfg.reference_point:
        reference["dice"] = cfg.reference_point["dice"]
    output_dir = resolve_out(cfg, path)
    url = normalise_url(cfg.storage) if cfg.storage else default_storage_url(output_dir)
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


def resolve_devices(devices: list[str], src: str) -> list[str]:
    """``auto`` -> ``cuda`` when available, else ``cpu``; a CUDA device must exist."""
    import torch

    out = []
    for d in devices:
        if d == "auto":
            d = "cuda" if torch.cuda.is_available() else "cpu"
        if d.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(f"{src}: device: '{d}' but this machine has no CUDA device (use cpu)")
        if not (d == "cpu" or d.startswith("cuda")):
            raise ConfigError(f"{src}: device: unknown device '{d}' (cpu, cuda, cuda:N, auto)")
        out.append(d)
    return out


def resolve_out(cfg: StudyConfig, path: Path) -> Path:
    return Path(cfg.output_dir).expanduser().resolve() if cfg.output_dir else (Path("runs") / cfg.name).resolve()


def study_attrs(prep: Prepared) -> dict[str, Any]:
    """The ``study.user_attrs`` written when the study is created."""
    s = prep.setup
    return {
        "nasseg_kind": "search", "config": prep.cfg.model_dump(mode="json"), "space": prep.space.raw,
        "objectives": prep.cfg.objective_dicts(), "reference_point": prep.reference,
        "ideal_point": prep.ideal, "normalisation": "linear",
        "units": {"dice": "fraction", **{k: v for k, v in COST_UNITS.items()}},
        "input_shape": list(s.input_shape), "limits": s.limits,
        "dataset": s.data.model_dump(mode="json"),
        "train": s.train.model_dump(mode="json", exclude={"device", "num_threads"}),
        "train_key": s.train_key, "versions": versions(), "command": prep.command, "created": now_iso(),
    }


def open_study(prep: Prepared, *, create: bool, sampler: optuna.samplers.BaseSampler | None = None,
               ) -> tuple[optuna.Study, BaseStorage]:
    """Load the study, or create it (``create``) with its attrs and initial architectures.

    Raises:
        ConfigError: the stored study was made with a different space, data, objectives
            or training settings (resuming it would mix incomparable trials).
    """
    from nasseg.search.samplers import make_sampler

    storage = open_storage(prep.storage_url)
    sampler = sampler or make_sampler(prep.cfg, prep.space)
    name = prep.cfg.name
    try:
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler)
    except KeyError:
        if not create:
            raise ConfigError(f"no study '{name}' in {prep.storage_url}") from None
        study = optuna.create_study(study_name=name, storage=storage, sampler=sampler,
                                    directions=prep.cfg.directions(), load_if_exists=True)
        if "nasseg_kind" not in study.user_attrs:
            for key, value in study_attrs(prep).items():
                study.set_user_attr(key, value)
            for label, params in prep.initial_params:
                study.enqueue_trial(params, user_attrs={"initial_arch": label}, skip_if_exists=True)
        return study, storage
    check_same(prep, study)
    prep.setup.stored_train_key = study.user_attrs.get("train_key")
    return study, storage


def check_same(prep: Prepared, study: optuna.Study) -> None:
    """Refuse to resume a study whose identity (see IDENTITY_KEYS) changed.

    Values are compared where both sides have them: a field that a newer nasseg added to
    (or dropped from) a config schema does not block a resume, a changed value does; the
    generator settings of a folder dataset are ignored.
    """
    stored, now = study.user_attrs, study_attrs(prep)
    if stored.get("nasseg_kind") != "search":
        raise ConfigError(f"study '{prep.cfg.name}' in {prep.storage_url} is not a nasseg search study")
    for key in IDENTITY_KEYS:
        old, new = _plain(stored.get(key)), _plain(now[key])
        if key == "dataset":
            old, new = _relevant_data(old), _relevant_data(new)
        if not _same(old, new):
            raise ConfigError(
                f"{prep.source}: study '{prep.cfg.name}' in {prep.storage_url} was created with a "
                f"different {key}; resuming would mix incomparable trials. Rename the study, or "
                f"set another output_dir/storage (stored {key}: {_short(stored.get(key))})")


def _relevant_data(d: Any) -> Any:
    if isinstance(d, dict) and d.get("kind") != "synthetic":
        return {k: v for k, v in d.items() if k != "synthetic"}
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
