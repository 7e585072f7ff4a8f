"""``nasseg export RUN|STUDY#N --format nnunet -o DIR``: what nnU-Net v2 needs to train a
network nasseg found, on nnU-Net's own data pipeline, loss, schedule and evaluation.

nnU-Net 2.8 builds any importable class its plans name (``get_network_from_plans``):
a configuration's ``architecture`` entry ``{"network_class_name", "arch_kwargs",
"_kw_requires_import"}``. The export writes into ``DIR``:

- ``plans_fragment.json``: ``{"configurations": {"3d_fullres_nasseg": {"inherits_from":
  "3d_fullres", "architecture": {...}}}}`` (``2d_nasseg`` from ``2d`` for a 2D network),
  to merge into a plans file by hand;
- with ``--plans nnUNet_preprocessed/DatasetXXX/nnUNetPlans.json`` (written by
  ``nnUNetv2_plan_and_preprocess``): ``nnUNetPlans_nasseg.json``, that plans file with the
  configuration added (the input is never changed). The configuration keeps nnU-Net's
  spacing, normalisation, batch size and preprocessed data (same ``data_identifier``); its
  ``patch_size`` is nnU-Net's rounded up to the network's size multiple ``2^(stages-1)``.

Example:
    >>> res = export_nnunet("runs/train/hippo", "nnunet_export",
    ...                     plans="nnUNet_preprocessed/Dataset004_Hippocampus/nnUNetPlans.json")  # doctest: +SKIP
    >>> res.configuration, res.plans_name                                        # doctest: +SKIP
    ('3d_fullres_nasseg', 'nnUNetPlans_nasseg')
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nasseg.arch import ArchConfig, load_arch
from nasseg.configio import read_yaml
from nasseg.errors import ConfigError
from nasseg.infer.network import load_network
from nasseg.nnunet.network import CHANNEL_KEYS, nnunet_strides

CLASS_NAME = "nasseg.nnunet.network.NassegUNet"
BASE_CONFIGURATION = {2: "2d", 3: "3d_fullres"}
SUFFIX = "_nasseg"


@dataclass
class NnUNetExport:
    """What :func:`export_nnunet` wrote.

    Attributes:
        files: the files written.
        configuration: the configuration name to train (``3d_fullres_nasseg``).
        base: the configuration it inherits from.
        plans_name: the plans identifier for ``nnUNetv2_train -p`` (only with ``--plans``).
        patch_size: the patch the configuration trains on (only with ``--plans``).
        nnunet_patch_size: nnU-Net's planned patch it was rounded up from.
        arch_name: the network's name.
        multiple: the network's size multiple ``2^(stages-1)``; every patch axis must be one.
    """

    files: list[Path] = field(default_factory=list)
    configuration: str = ""
    base: str = ""
    plans_name: str | None = None
    patch_size: list[int] | None = None
    nnunet_patch_size: list[int] | None = None
    arch_name: str = ""
    multiple: int = 1


def architecture_entry(cfg: ArchConfig) -> dict[str, Any]:
    """The plans ``architecture`` entry that builds ``cfg`` in nnU-Net.

    ``arch_kwargs["arch"]`` is the canonical config without the fields nnU-Net decides
    (channels, deep supervision); ``strides`` is nnU-Net's ``pool_op_kernel_sizes``.

    Example:
        >>> architecture_entry(load_arch("cmunext_s"))["arch_kwargs"]["strides"][:2]
        [[1, 1], [2, 2]]
    """
    arch = {k: v for k, v in cfg.canonical().items() if k not in CHANNEL_KEYS}
    return {"network_class_name": CLASS_NAME,
            "arch_kwargs": {"arch": arch, "strides": nnunet_strides(cfg.spatial_dims, len(cfg.stages))},
            "_kw_requires_import": []}


def plans_fragment(cfg: ArchConfig) -> tuple[str, dict[str, Any]]:
    """``(configuration name, {"configurations": {name: {...}}})`` for ``cfg``."""
    base = BASE_CONFIGURATION[cfg.spatial_dims]
    name = base + SUFFIX
    return name, {"configurations": {name: {"inherits_from": base, "architecture": architecture_entry(cfg)}}}


def round_patch(patch: list[int], multiple: int) -> list[int]:
    """Each axis rounded up to a multiple of ``multiple``.

    Example:
        >>> round_patch([40, 56, 40], 8), round_patch([40, 56, 40], 16)
        ([40, 56, 40], [48, 64, 48])
    """
    return [-(-int(p) // multiple) * multiple for p in patch]


def plans_with_network(plans: dict[str, Any], cfg: ArchConfig, where: str) -> tuple[dict[str, Any], str]:
    """A copy of nnU-Net ``plans`` with the nasseg configuration added (see the module docstring).

    Raises:
        ConfigError: the plans lack the base configuration, or its patch has another
            number of axes than the network.
    """
    name, fragment = plans_fragment(cfg)
    base = fragment["configurations"][name]["inherits_from"]
    configs = plans.get("configurations") if isinstance(plans, dict) else None
    if not isinstance(configs, dict) or base not in configs:
        have = sorted(configs) if isinstance(configs, dict) else []
        raise ConfigError(f"{where}: configurations has no '{base}' for a {cfg.spatial_dims}D network "
                          f"(has {have}); run nnUNetv2_plan_and_preprocess with -c {base}")
    patch = base_patch(plans, base)
    if len(patch) != cfg.spatial_dims:
        raise ConfigError(f"{where}: configurations.{base}.patch_size {patch} has {len(patch)} axes; the network "
                          f"is {cfg.spatial_dims}D")
    out = copy.deepcopy(plans)
    out["plans_name"] = str(plans.get("plans_name", "nnUNetPlans")) + SUFFIX
    entry = fragment["configurations"][name]
    entry["patch_size"] = round_patch(patch, cfg.min_input_multiple())
    out["configurations"][name] = entry
    return out, name


def base_patch(plans: dict[str, Any], configuration: str) -> list[int]:
    """The patch size nnU-Net planned for ``configuration`` (``inherits_from`` resolved by
    nnU-Net's own ``PlansManager``).

    Raises:
        ConfigError: nnunetv2 is not installed.
    """
    try:
        from nnunetv2.utilities.plans_handling.plans_handler import PlansManager  # lazy: nnunetv2 is optional (extra "nnunet")
    except ImportError:
        raise ConfigError("--plans needs nnU-Net v2: pip install 'nasseg[nnunet]'") from None
    return [int(p) for p in PlansManager(plans).get_configuration(configuration).patch_size]


def arch_of(target: str) -> ArchConfig:
    """The architecture of ``RUN|STUDY#N`` (its checkpoint's config), or of a preset or
    architecture YAML.

    Raises:
        ConfigError: nothing there names an architecture (a study YAML without ``#N``, say).
    """
    path = Path(target)
    if "#" in target or path.is_dir() or (path.is_file() and path.suffix not in (".yaml", ".yml", ".json")):
        net = load_network(target)
        arch = {k: v for k, v in (net.meta.get("arch") or {}).items() if k != "arch_id"}
        return load_arch({**arch, "name": arch.get("name") or net.name})
    if path.is_file():
        data = read_yaml(path)
        if isinstance(data, dict) and "stages" not in data:
            raise ConfigError(f"{path}: not an architecture; for a study name one of its trials as {path}#N "
                              "(see `nasseg pareto`)")
    return load_arch(target)


def export_nnunet(target: str, out_dir: str | Path, *, plans: str | Path | None = None,
                  overwrite: bool = False) -> NnUNetExport:
    """Write the plans fragment (and, with ``plans``, a complete plans file) into ``out_dir``.

    Args:
        target: a run folder, ``STUDY#N``, a preset name or an architecture YAML.
        out_dir: the folder to write (created).
        plans: an nnU-Net plans file (``nnUNetPlans.json``) to extend.
        overwrite: replace files an earlier export wrote there.

    Raises:
        ConfigError: unreadable plans, a plans file without the base configuration, an
            output that exists (without ``overwrite``) or that is the input plans file.
    """
    cfg = arch_of(str(target))
    name, fragment = plans_fragment(cfg)
    out = Path(out_dir)
    res = NnUNetExport(configuration=name, base=fragment["configurations"][name]["inherits_from"],
                       arch_name=cfg.name or str(target), multiple=cfg.min_input_multiple())
    writes: list[tuple[Path, dict[str, Any]]] = [(out / "plans_fragment.json", fragment)]
    if plans is not None:
        src = Path(plans)
        base_plans = _read_json(src, "--plans")
        full, _ = plans_with_network(base_plans, cfg, str(src))
        res.plans_name = full["plans_name"]
        res.patch_size = full["configurations"][name]["patch_size"]
        res.nnunet_patch_size = base_patch(base_plans, res.base)
        target_file = out / f"{res.plans_name}.json"
        if target_file.resolve() == src.resolve():
            raise ConfigError(f"-o {out}: would overwrite the input plans file {src}")
        writes.append((target_file, full))
    for path, _ in writes:
        if path.exists() and not overwrite:
            raise ConfigError(f"{path}: already exists (an earlier export); choose another -o or pass --overwrite")
    out.mkdir(parents=True, exist_ok=True)
    for path, data in writes:
        path.write_text(json.dumps(data, indent=2) + "\n")
        res.files.append(path)
    return res


def _read_json(path: Path, flag: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{flag} {path}: no such file (nnUNetv2_plan_and_preprocess writes "
                          "nnUNet_preprocessed/DatasetXXX_Name/nnUNetPlans.json)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{flag} {path}: not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{flag} {path}: not an nnU-Net plans file (expected a JSON object)")
    return data


def train_commands(res: NnUNetExport, dataset: str = "DatasetXXX_Name") -> list[str]:
    """The shell commands that train the exported network in nnU-Net (for the console)."""
    if res.plans_name is None:
        return ["# merge plans_fragment.json's configuration into your plans file (its patch_size: "
                f"multiples of {res.multiple}), then:",
                f"nnUNetv2_train {dataset} {res.configuration} 0 -p YOUR_PLANS"]
    plans_file = next(p for p in res.files if p.name == f"{res.plans_name}.json")
    return [f'cp {plans_file} "$nnUNet_preprocessed/{dataset}/"',
            f"nnUNetv2_train {dataset} {res.configuration} 0 -p {res.plans_name}"]
