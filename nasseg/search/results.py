"""Reading a search back: trials as a table, the Pareto set, hypervolume, exporting a network.

Works the same for studies run by the Optuna and the Ray backend (both write the same
storage). A study is named by its YAML, its output folder, its storage file
(``study.db``, ``*.log``) or a storage URL.

Example:
    >>> study = open_result("studies/quickstart.yaml")
    >>> front_table(study)[["trial", "dice", "macs", "params"]]
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import yaml
from optuna.trial import FrozenTrial, TrialState

from nasseg.arch import ArchConfig, load_arch
from nasseg.errors import ConfigError
from nasseg.search.pareto import normalised_hypervolume, pareto_indices
from nasseg.search.storage import normalise_url, open_storage, storage_path


def open_result(target: str | Path, study_name: str | None = None) -> optuna.Study:
    """Open a stored study from a study YAML, a run folder, a storage file or URL.

    Raises:
        ConfigError: nothing found there, or several studies and no ``study_name``.
    """
    text = str(target)
    path = Path(text)
    if path.suffix in (".yaml", ".yml"):
        from nasseg.search.setup import resolve_out
        from nasseg.search.storage import default_storage_url
        from nasseg.search.study import load_study_config

        cfg = load_study_config(path)
        url = normalise_url(cfg.storage) if cfg.storage else default_storage_url(resolve_out(cfg, path))
        study_name = study_name or cfg.name
    elif path.is_dir():
        found = [p for p in (path / "study.db", path / "study.log") if p.exists()]
        if not found:
            raise ConfigError(f"{path}: no study.db or study.log in this folder")
        url = normalise_url(str(found[0]))
    else:
        url = normalise_url(text)
    file = storage_path(url)
    if file is not None and not file.exists():
        raise ConfigError(f"{text}: no study storage at {file} (run `nasseg search` first)")
    storage = open_storage(url)
    names = [s.study_name for s in storage.get_all_studies()]
    if study_name is None:
        searches = [n for n in names if _kind(storage, n) == "search"] or names
        if len(searches) != 1:
            raise ConfigError(f"{text}: {'no studies' if not searches else 'several studies: ' + ', '.join(searches)}"
                              "; name one with --study")
        study_name = searches[0]
    if study_name not in names:
        raise ConfigError(f"{text}: no study '{study_name}' (studies: {', '.join(names) or 'none'})")
    return optuna.load_study(study_name=study_name, storage=storage)


def _kind(storage: Any, name: str) -> str | None:
    return storage.get_study_user_attrs(storage.get_study_id_from_name(name)).get("nasseg_kind")


def objectives(study: optuna.Study) -> tuple[list[str], list[str]]:
    """Objective names and directions, in the order of ``trial.values``."""
    objs = study.user_attrs.get("objectives")
    if objs:
        return [o["name"] for o in objs], [o["direction"] for o in objs]
    names = [f"value_{i}" for i in range(len(study.directions))]
    return names, [d.name.lower() for d in study.directions]


def is_feasible(t: FrozenTrial) -> bool:
    """COMPLETE, trained, within every constraint, values all finite."""
    if t.state != TrialState.COMPLETE or not t.values:
        return False
    if not t.user_attrs.get("trained", True):
        return False
    if any(c > 0 for c in (t.user_attrs.get("constraints") or {}).values()):
        return False
    return all(v is not None and math.isfinite(v) for v in t.values)


def unique_feasible(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """Feasible trials, one per architecture (duplicates that reused a result dropped)."""
    seen, out = set(), []
    for t in trials:
        aid = t.user_attrs.get("arch_id", f"trial{t.number}")
        if is_feasible(t) and aid not in seen:
            seen.add(aid)
            out.append(t)
    return out


def front_trials(study: optuna.Study, trials: list[FrozenTrial] | None = None) -> list[FrozenTrial]:
    """The Pareto set over feasible trials, in trial order."""
    pool = unique_feasible(trials if trials is not None else study.get_trials(deepcopy=False))
    _, dirs = objectives(study)
    idx = pareto_indices([t.values for t in pool], dirs)
    return [pool[i] for i in idx]


def hypervolume(study: optuna.Study, trials: list[FrozenTrial] | None = None) -> float:
    """Normalised hypervolume of the feasible trials (bounds stored with the study)."""
    names, dirs = objectives(study)
    ref, ideal = study.user_attrs["reference_point"], study.user_attrs["ideal_point"]
    pool = unique_feasible(trials if trials is not None else study.get_trials(deepcopy=False))
    return normalised_hypervolume([t.values for t in pool], names, dirs, ref, ideal)


def arch_summary(arch: dict[str, Any] | None) -> str:
    """A one-line description: blocks, kernels, widths, depths, skip."""
    if not arch:
        return ""
    st = arch["stages"]
    blocks = [s["block"]["type"] for s in st]
    block = blocks[0] if len(set(blocks)) == 1 else "/".join(b[:4] for b in blocks)
    kern = "-".join(str(s["block"].get("kernel_size", "")) for s in st)
    skips = {s["skip"]["type"] for s in st[:-1]}
    att = "+csab" if any(s.get("skip_attention") for s in st[:-1]) else ""
    extra = ""
    if "segnetr" in blocks:
        extra = f" win{st[blocks.index('segnetr')]['block'].get('window_size')}"
    return (f"{block} k{kern}{extra} w{'-'.join(str(s['width']) for s in st)} "
            f"d{''.join(str(s['depth']) for s in st)} dec{st[0]['decoder_depth']} "
            f"{'/'.join(sorted(skips))}{att}")


def trial_table(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: state, objective values, costs, epochs, flags, reasons."""
    names, _ = objectives(study)
    rows = []
    for t in study.get_trials(deepcopy=False):
        a = t.user_attrs
        row = {"trial": t.number, "state": t.state.name.lower()}
        for i, n in enumerate(names):
            row[n] = t.values[i] if t.values else None
        row.update({"feasible": is_feasible(t), "arch_id": a.get("arch_id"),
                    "epochs": epochs_trained(t),
                    "stopped_early": bool(a.get("stopped_early")), "reused_from": a.get("reused_from"),
                    "initial_arch": a.get("initial_arch"), "arch": arch_summary(a.get("arch")),
                    "note": a.get("fail_reason") or a.get("constraint_violation") or a.get("stop_reason") or ""})
        rows.append(row)
    return pd.DataFrame(rows)


def front_table(study: optuna.Study) -> pd.DataFrame:
    """The Pareto set as a table, best Dice first."""
    table = trial_table(study)
    numbers = [t.number for t in front_trials(study)]
    front = table[table["trial"].isin(numbers)]
    return front.sort_values("dice", ascending=False).reset_index(drop=True)


def epochs_trained(t: FrozenTrial) -> int:
    """Epochs this trial actually trained (0 when reused or infeasible; a failed or killed
    trial counts the epochs it validated)."""
    a = t.user_attrs
    if a.get("reused_from") is not None:
        return 0
    if t.state == TrialState.COMPLETE:
        return int(a.get("epochs_run") or len(a.get("history") or [])) if a.get("trained") else 0
    return len(a.get("history") or [])


def hv_curve(study: optuna.Study) -> pd.DataFrame:
    """Normalised hypervolume after each finished trial, against trial-epochs spent."""
    done = [t for t in study.get_trials(deepcopy=False)
            if t.state in (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)]
    done.sort(key=lambda t: (t.datetime_complete or t.datetime_start, t.number))
    rows, spent = [], 0
    for i, t in enumerate(done):
        spent += epochs_trained(t)
        rows.append({"trial": t.number, "finished": i + 1, "epochs_spent": spent,
                     "hv": hypervolume(study, done[: i + 1])})
    return pd.DataFrame(rows)


def export_trial(study: optuna.Study, number: int, out: str | Path) -> ArchConfig:
    """Write trial ``number``'s network as an architecture YAML (for ``nasseg train``/``profile``).

    Raises:
        ConfigError: no such trial, or it has no architecture (invalid network).
    """
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    if number not in trials:
        raise ConfigError(f"study '{study.study_name}' has no trial {number} "
                          f"(trials 0..{max(trials, default=-1)})")
    t = trials[number]
    arch = t.user_attrs.get("arch")
    if not arch:
        raise ConfigError(f"trial {number} has no architecture ({t.user_attrs.get('fail_reason', t.state.name)})")
    cfg = load_arch({**arch, "name": f"{study.study_name}_trial{number}"})
    names, _ = objectives(study)
    values = ", ".join(f"{n} {v:.4g}" for n, v in zip(names, t.values or []))
    header = (f"# study {study.study_name}, trial {number} ({t.state.name.lower()}; {values})\n"
              f"# arch_id {t.user_attrs.get('arch_id')}; {arch_summary(arch)}\n")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    body = cfg.model_dump(mode="json")
    out.write_text(header + yaml.safe_dump(body, sort_keys=False, default_flow_style=None))
    load_arch(out)  # what we wrote must load
    return cfg
