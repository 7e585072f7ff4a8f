"""Typed dataset configs: what to load, how to split it, how to augment it.

A :class:`DataConfig` is plain data (pydantic, ``extra="forbid"``): it is stored
with every result, so a run can be reproduced from its ``config.json``.
:func:`resolve_data` turns what a user types (``"synthetic"``, a folder) into one.
"""
from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from nasseg.configio import Strict, read_yaml, validate
from nasseg.errors import ConfigError, DataError, did_you_mean

log = logging.getLogger(__name__)

Size2 = tuple[int, int]
Size3 = tuple[int, int, int]


class SplitConfig(Strict):
    """How cases are divided into training, validation and test cases.

    ``val`` selects (best epoch, early stopping, search feedback, Pareto membership);
    ``test`` is scored once, with the weights chosen on ``val``, and is what tables report.

    Attributes:
        method: ``random`` (seeded, stratified, group-aware shuffle), ``kfold`` (a fixed
            test set first, then ``k`` folds of the rest, fold ``fold`` = val) or ``file``
            (a JSON file: ``{"train", "val", "test"}`` lists, e.g. a run's ``split.json``,
            or nnU-Net's ``splits_final.json`` list of folds, fold ``fold`` used; cases
            it does not list become the test set).
        val_fraction: validation fraction for ``random``.
        test_fraction: test fraction for ``random`` and ``kfold`` (0 = no test set: nothing
            is then reported on unseen cases; not for results).
        seed: shuffle seed (also of the ``max_cases`` sample).
        k: number of folds for ``kfold``.
        fold: validation fold for ``kfold`` and nnU-Net split files (0-based).
        file: split file for ``file``.
        table: a CSV file with one row per case (column ``id_column``), for ``group``
            and ``stratify`` columns (e.g. BUSI's ``name_map.csv``).
        id_column: the case-id column of ``table`` (file names match by stem).
        group: cases sharing a group never cross partitions: a column of ``table``, or
            ``regex:PATTERN`` applied to the case id (first capture group, or the match),
            e.g. ``regex:^(\\d+)-`` for video frames ``12-034``.
        stratify: ``presence`` (the set of classes present in the label, default),
            ``none``, a column of ``table``, or ``regex:PATTERN`` on the case id
            (e.g. ``regex:^(benign|malignant)``).
        duplicates: ``group`` (default) keeps every near-duplicate family (``nasseg check
            DATA`` lists them) on one side of the split, joined with any declared ``group``;
            ``ignore`` splits as if there were none (``split.json`` and the run header then
            count the families the split divides). A ``file`` split is used as given.
    """

    method: Literal["random", "kfold", "file"] = "random"
    val_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    test_fraction: float = Field(0.2, ge=0.0, lt=1.0)
    seed: int = 0
    k: int = Field(5, ge=2)
    fold: int = Field(0, ge=0)
    file: str | None = None
    table: str | None = None
    id_column: str = "case_id"
    group: str | None = None
    stratify: str = "presence"
    duplicates: Literal["group", "ignore"] = "group"


MAX_SYNTHETIC_CASES = 100_000
"""The most generated cases a config may ask for: generating one 64x64 case took 30 ms (one
thread, on a 2-core machine at load 11), so 100,000 take about 50 minutes and 1.9 GiB; more
is a typo, which would otherwise run silently until memory is exhausted."""


class SyntheticConfig(Strict):
    """Settings of the procedural generator (see :mod:`nasseg.data.synthetic`).

    Attributes:
        spatial_dims: 2 (images) or 3 (volumes).
        n_cases: number of generated cases (at most :data:`MAX_SYNTHETIC_CASES`; the data must
            also fit :data:`nasseg.data.synthetic.MAX_SYNTHETIC_BYTES` in memory).
        classes: number of *foreground* classes; 1 = binary (sigmoid output),
            K > 1 gives labels 0..K and a K+1-channel (softmax) output.
        channels: image channels.
        seed: generator seed; case ``i`` depends only on (seed, i).
        noise: scale of the noise and contrast difficulty (1.0 = default).
        task: ``lesions`` (default: textured lesions among curves, rings and dots of the same
            intensities) or ``context`` (binary; lesions are told from same-looking small
            dots and hollow rings only by size and shape, so the receptive field decides;
            the quickstart's task, see :func:`nasseg.data.synthetic.context_case`).

    The image size is the top-level :attr:`DataConfig.size` (default 64 in 2D, 32 in 3D).
    """

    spatial_dims: Literal[2, 3] = 2
    n_cases: int = Field(192, ge=4, le=MAX_SYNTHETIC_CASES)
    classes: int = Field(1, ge=1, le=8)
    channels: int = Field(1, ge=1, le=4)
    seed: int = 0
    noise: float = Field(1.0, ge=0.0)
    task: Literal["lesions", "context"] = "lesions"


class AugmentConfig(Strict):
    """Training-time augmentations, run on the batch's device.

    Attributes:
        flip: random flips along every spatial axis (``True``), none (``False``), or
            along the listed spatial axes only (0-based, e.g. ``[0]`` for left-right
            when the other axes carry anatomy that must not be mirrored).
        rot90: random 90-degree rotations in the image plane (2D, square images only).
        intensity: strength of the per-sample intensity jitter (scale ``1 +- s``,
            shift ``+- s`` in normalised units); 0 turns it off.
    """

    flip: bool | list[int] = True
    rot90: bool = True
    intensity: float = Field(0.1, ge=0.0)


class PlanConfig(Strict):
    """Overrides of the 3D experiment plan (:mod:`nasseg.data.plan`); ``None`` = planned.

    Attributes:
        target_spacing: target voxel size in mm (default: the median spacing, with nnU-Net's
            rule for anisotropic data).
        memory_mb: memory budget for one training step (default: 3072 MB on the CPU,
            80% of the GPU's total memory; fixed, never a share of the memory free now).
        max_batch: largest planned batch (default 2 on the CPU, where a step's time
            grows with the batch; 16 on a GPU).
        step_seconds: CPU only: time budget of one training step in seconds at the run's
            thread count; the plan shrinks the patch (and limits the batch) until its
            estimate fits (default :data:`nasseg.data.plan.CPU_STEP_SECONDS`). Ignored on a GPU.
        cpu_gmacs: CPU only: training throughput of one thread in GMAC/s that the step
            time estimate assumes (default :data:`nasseg.data.plan.CPU_GMACS`, measured by
            ``benchmarks/cpu_plan.py``); set it for a much faster or slower CPU.
        modalities: normalisation name per channel (``CT`` clips to foreground
            percentiles; anything else is z-scored per volume), replacing dataset.json's
            ``modality`` map.
        fg_fraction: share of training patches centred on a foreground voxel.
        fg_classes: relative weights of the foreground classes (1..K-1) when choosing the
            class a foreground patch is centred on (default: equal).
    """

    target_spacing: tuple[float, float, float] | None = None
    memory_mb: float | None = Field(None, gt=0)
    max_batch: int | None = Field(None, ge=1)
    step_seconds: float | None = Field(None, gt=0)
    cpu_gmacs: float | None = Field(None, gt=0)
    modalities: list[str] | None = None
    fg_fraction: float = Field(0.33, ge=0, le=1)
    fg_classes: list[float] | None = None


class DataConfig(Strict):
    """A dataset, its split and its augmentations.

    Attributes:
        kind: ``synthetic`` (generated), ``folder`` (2D images/ + masks/),
            ``decathlon`` (3D NIfTI with dataset.json) or ``nnunet`` (an nnU-Net v2 raw
            dataset, 2D or 3D: :mod:`nasseg.data.nnunet_raw`).
        path: dataset folder for ``folder`` and ``decathlon``.
        size: 2D: resize every image to this size (int = square); synthetic:
            the generated size. ``None`` keeps the native size (must be uniform).
        patch_size: 3D training patch; ``None`` = planned (:mod:`nasseg.data.plan`: the
            median volume shape rounded up to what the network needs, shrunk to fit memory
            and, on a CPU, a step time budget; on a CPU a small median case is rounded to
            the nearest size multiple instead).
        window_size: sliding-window size for evaluating whole volumes (``None`` = the
            training patch). Along an axis where a volume (rounded up to what the
            network needs) is smaller, the window shrinks to it: small volumes are
            predicted in one pass with no wasted padding.
        spacing: 2D pixel spacing in mm (row, column) of the files as stored, so that
            distances (HD95, ASSD, NSD) are in mm; ``None`` = 1 (distances in pixels).
            Decathlon volumes take theirs from the NIfTI headers.
        max_cases: load a seeded sample of N cases (seed ``split.seed``), stratified as
            the split is (small test subsets), never simply the first N files.
        images_dir: ``folder``: the sub-folder holding the images.
        masks_dir: ``folder``: the sub-folder holding the masks; ``None`` (default) with no
            ``mask_pattern`` = auto-detection (``masks/<stem>.*``, ``masks/0/<stem>.*``,
            ``<stem>_mask.*``), else ``masks``.
        mask_pattern: ``folder``: the mask file name of image ``<stem>.<ext>``, e.g.
            ``"{stem}_seg.png"`` (``{stem}`` required, ``{ext}`` = the image's extension);
            ``None`` = auto-detection.
        mask_encoding: ``auto`` detects 0/255 masks or class index masks (a value that is
            no class, such as a stray 128 in a 0/255 mask, is refused; grey edges left by
            resizing are binarised at > 127); ``binary255`` (every value binarised at > 127)
            or ``index`` states one (:mod:`nasseg.data.masks`).
        labels: class names, background first (mask value ``i`` = ``labels[i]``); ``None``
            infers them from the masks (Decathlon: ``dataset.json``), see :mod:`nasseg.data.labels`.
        unknown_labels: a mask value outside the classes is an ``error`` (naming the file
            and value), or is mapped to ``background`` with a warning.
        resident: keep the decoded data on the training device: ``auto`` = when it
            fits in a quarter of the free GPU memory.
        split: the train/validation split.
        synthetic: generator settings (``kind="synthetic"`` only).
        augment: training augmentations.
        plan: overrides of the 3D plan (spacing, memory budget, batch cap, modalities,
            foreground oversampling).

    Example:
        >>> DataConfig(kind="folder", path="../shared/data/dsb2018_96", size=96).split.test_fraction
        0.2
    """

    kind: Literal["synthetic", "folder", "decathlon", "nnunet"] = "synthetic"
    path: str | None = None
    size: int | Size2 | Size3 | None = None
    patch_size: Size3 | None = None
    window_size: Size3 | None = None
    spacing: tuple[float, float] | None = None
    max_cases: int | None = Field(None, ge=2)
    images_dir: str = "images"
    masks_dir: str | None = None
    mask_pattern: str | None = None
    mask_encoding: Literal["auto", "binary255", "index"] = "auto"
    labels: list[str] | None = None
    unknown_labels: Literal["error", "background"] = "error"
    resident: Literal["auto", "always", "never"] = "auto"
    split: SplitConfig = Field(default_factory=SplitConfig)
    synthetic: SyntheticConfig = Field(default_factory=SyntheticConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    plan: PlanConfig = Field(default_factory=PlanConfig)

    @field_validator("size")
    @classmethod
    def _positive(cls, v: Any) -> Any:
        sizes = (v,) if isinstance(v, int) else (v or ())
        if any(s < 1 for s in sizes):
            raise ValueError(f"size must be positive, got {v}")
        return v

    @model_validator(mode="after")
    def _path_fits_kind(self) -> DataConfig:
        if self.kind == "synthetic" and self.path is not None:
            raise ValueError(f"kind synthetic takes no path (got path '{self.path}'); for a dataset folder "
                             "write kind: folder (images/ + masks/) or kind: decathlon (dataset.json), or "
                             "leave kind out to infer it from the folder")
        if self.kind != "synthetic" and not self.path:
            raise ValueError(f"kind {self.kind} needs a path (the dataset folder)")
        return self

    @field_validator("mask_pattern")
    @classmethod
    def _has_stem(cls, v: str | None) -> str | None:
        if v is not None and ("{stem}" not in v or "/" in v):
            raise ValueError(f"mask_pattern '{v}' must name a file with {{stem}} in it, e.g. '{{stem}}_seg.png'")
        return v

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides: Any) -> DataConfig:
        """Load a YAML mapping of fields (``path`` inside it is relative to the working directory).

        Raises:
            ConfigError: unreadable file, unknown or bad field (named).
        """

        data = read_yaml(path)
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: a data config must be a mapping of fields")
        return resolve_data({**data, "_source": str(path)}, **overrides)

    @property
    def name(self) -> str:
        """Short name for run folders and tables (``synthetic2d``, ``dsb2018_96``)."""
        if self.kind == "synthetic":
            return f"synthetic{self.synthetic.spatial_dims}d"
        return Path(self.path or "data").resolve().name


_SPLIT_KEYS = set(SplitConfig.model_fields)
_SYNTH_KEYS = set(SyntheticConfig.model_fields) - {"seed"}
_AUG_KEYS = set(AugmentConfig.model_fields)  # derived: a new augmentation field is routed too
_PLAN_KEYS = set(PlanConfig.model_fields)


def parse_config(model: type[BaseModel], data: dict[str, Any], where: str) -> Any:
    """Validate ``data`` into ``model``; errors become one :class:`ConfigError` naming
    ``where`` and each bad field (with "did you mean" for unknown keys).

    Example:
        >>> parse_config(SplitConfig, {"method": "kfold", "k": 3}, "split").k
        3
    """

    return validate(model, data, where)


def resolve_data(spec: str | Path | DataConfig | dict, **overrides: Any) -> DataConfig:
    """Turn a dataset name, folder or mapping into a :class:`DataConfig`.

    ``"synthetic"`` gives the generated default; a folder with ``dataset.json`` is a
    Decathlon dataset; a folder with ``images/`` is an image folder. A mapping is a data
    section (see :func:`data_section`: ``kind`` inferred from ``path`` when left out).
    Overrides may name any field of :class:`DataConfig`, :class:`SplitConfig`,
    :class:`SyntheticConfig` or :class:`AugmentConfig` directly; ``seed`` sets both
    the split seed and the generator seed. ``None`` values are ignored.

    Args:
        spec: ``"synthetic"``, ``"synthetic3d"``, a path, a mapping or a DataConfig.
        **overrides: e.g. ``size=96, max_cases=20, val_fraction=0.2, spatial_dims=3``.

    Returns:
        The validated config.

    Raises:
        DataError: the path does not exist or holds neither layout.
        ConfigError: an override names no field or has a bad value.

    Example:
        >>> resolve_data("synthetic", spatial_dims=3, classes=2).synthetic.classes
        2
    """
    if isinstance(spec, DataConfig):
        base: dict[str, Any] = spec.model_dump()
        where = f"data '{spec.path or spec.kind}'"
    elif isinstance(spec, dict):
        base = dict(spec)
        where = str(base.pop("_source", "data config"))
        base = canonical_section(base, where)
    else:
        base = _detect(str(spec))
        where = f"data '{spec}'"
    return parse_config(DataConfig, _with_overrides(base, overrides), where)


def _with_overrides(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``base`` with flat overrides routed into their sections (``val_fraction`` -> ``split``)."""
    base = dict(base)
    nested = {k: dict(base.get(k) or {}) for k in ("split", "synthetic", "augment", "plan")}
    for key, value in overrides.items():
        if value is None:
            continue
        if key == "seed":
            nested["split"]["seed"] = value
            nested["synthetic"]["seed"] = value
        elif key in DataConfig.model_fields and key not in nested:
            base[key] = value
        elif key in _SPLIT_KEYS:
            nested["split"][key] = value
        elif key in _SYNTH_KEYS:
            nested["synthetic"][key] = value
        elif key in _AUG_KEYS:
            nested["augment"][key] = value
        elif key in _PLAN_KEYS:
            nested["plan"][key] = value
        else:
            known = set(DataConfig.model_fields) | _SPLIT_KEYS | _SYNTH_KEYS | _AUG_KEYS | _PLAN_KEYS
            raise ConfigError(f"unknown data option '{key}'" + did_you_mean(key, known))
    if nested["split"].get("file"):
        nested["split"].setdefault("method", "file")
    base.update({k: v for k, v in nested.items() if v})
    return base


SYNTHETIC_NAMES = ("synthetic", "synthetic2d", "synthetic3d")


def data_section(value: str | dict[str, Any] | None, where: str, here: str | Path | None = None) -> DataConfig:
    """The ``data:`` section of a search study, an ablation study or a data-config YAML.

    One schema for train, search and ablate: the fields of :class:`DataConfig`
    (``data: {kind: folder, path: ../shared/data/busi_256, size: 64, split: {seed: 0}}``),
    or a dataset name or folder alone (``data: synthetic``, ``data: ../shared/data/dsb2018_96``).
    ``kind`` may be left out when ``path`` names a dataset folder (it is then inferred:
    ``images/`` = ``folder``, ``dataset.json`` = ``decathlon``); a path that is neither is
    refused, never read as synthetic data. The older search spelling ``{source: X, <flat
    options>}`` (flat options as :func:`resolve_data` takes them, e.g. ``val_fraction``) is
    still read, with one deprecation line.

    Args:
        value: the section as written (``None`` = synthetic defaults).
        where: the file (and profile) for messages, e.g. ``studies/x.yaml``.
        here: the study file's folder: a relative path is read from the current folder,
            then from there.

    Raises:
        ConfigError: a bad field, naming ``where``, ``data`` and the field.
        DataError: the path holds no dataset (named).

    Example:
        >>> data_section({"source": "synthetic", "n_cases": 8}, "s.yaml").synthetic.n_cases
        8
    """
    return parse_config(DataConfig, canonical_section(value, f"{where}: data", here), f"{where}: data")


def canonical_section(value: str | dict[str, Any] | None, where: str, here: str | Path | None = None
                      ) -> dict[str, Any]:
    """The data section as :class:`DataConfig` fields, ``kind`` and ``path`` filled in
    (see :func:`data_section`); not yet validated.

    Example:
        >>> canonical_section({"source": "synthetic3d"}, "s.yaml")
        {'kind': 'synthetic', 'synthetic': {'spatial_dims': 3}}
    """
    if value is None:
        return {}
    if not isinstance(value, dict):
        return _detect(_beside(str(value), here), where)
    section = dict(value)
    if "source" in section:
        source = section.pop("source")
        if "kind" in section or "path" in section:
            raise ConfigError(f"{where}: 'source' and 'kind'/'path' both given; keep kind and path "
                              "('source' is the older spelling)")
        base = _detect(_beside(str(source), here), where)
        try:
            section = _with_overrides(base, section)
        except ConfigError as err:
            raise ConfigError(f"{where}: {err}") from None
        written = {**section, "path": str(source)} if "path" in section else section
        log.warning("%s: 'source: %s' is deprecated; write %s", where, source, _spelling(written))
        return section
    path = section.get("path")
    if isinstance(path, str):
        section["path"] = _beside(path, here)
    if "kind" not in section and isinstance(path, str):
        if path.lower() in SYNTHETIC_NAMES:
            raise ConfigError(f"{where}: path: '{path}' is not a folder; write kind: synthetic for generated data")
        section["kind"] = _detect(section["path"], where)["kind"]
    return section


def _spelling(section: dict[str, Any]) -> str:
    """The data section in the current spelling, for the deprecation line."""

    return "data: " + json.dumps(section, separators=(", ", ": ")).replace('"', "")


def _beside(path: str, here: str | Path | None) -> str:
    """``path`` as given if it exists (or is a synthetic name), else next to ``here`` if there."""
    if here is None or path.lower() in SYNTHETIC_NAMES or Path(path).expanduser().is_absolute():
        return path
    if Path(path).exists() or not (Path(here) / path).exists():
        return path
    return str(Path(here) / path)


def _detect(spec: str, where: str | None = None) -> dict[str, Any]:
    low = spec.lower()
    if low in SYNTHETIC_NAMES:
        dims = 3 if low.endswith("3d") else 2
        return {"kind": "synthetic", "synthetic": {"spatial_dims": dims}}
    at = f"{where}: " if where else ""
    path = Path(spec)
    if not path.exists() and NNUNET_NAME.match(spec) and os.environ.get("nnUNet_raw"):
        path = Path(os.environ["nnUNet_raw"]) / spec  # nnU-Net's way to name a raw dataset
    if path.is_file() and path.name == "dataset.json":
        return {"kind": _json_kind(path), "path": str(path.parent)}
    if not path.exists():
        hint = (f"no folder {spec} under $nnUNet_raw ({os.environ['nnUNet_raw']})" if os.environ.get("nnUNet_raw")
                else "set nnUNet_raw to name an nnU-Net dataset") if NNUNET_NAME.match(spec) else \
            "use 'synthetic' for generated data"
        raise DataError(f"{at}{path}: no such dataset folder ({hint})")
    if (path / "dataset.json").is_file():
        return {"kind": _json_kind(path / "dataset.json"), "path": str(path)}
    if (path / "images").is_dir():
        return {"kind": "folder", "path": str(path)}
    raise DataError(
        f"{at}{path}: not a dataset folder: expected images/ and masks/ (2D) or dataset.json (Decathlon 3D)"
        + ("; or name the layout with kind: folder or kind: decathlon" if where else "")
    )


NNUNET_NAME = re.compile(r"^Dataset\d{3}_\S+$")
"""An nnU-Net dataset name, looked up under ``$nnUNet_raw`` when no such folder is here."""


def _json_kind(path: Path) -> str:
    """``nnunet`` when the dataset.json is nnU-Net v2's (it names ``file_ending``), else ``decathlon``."""
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        return "decathlon"  # the Decathlon reader names what is wrong with it
    return "nnunet" if isinstance(meta, dict) and "file_ending" in meta else "decathlon"
