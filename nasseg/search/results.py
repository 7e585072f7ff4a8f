"""Reading a search back: trials as a table, the Pareto set, hypervolume, exporting a network.

Works the same for studies run by the Optuna and the Ray backend (both write the same
storage). A study is named by its YAML, its output folder, its storage file
(``study.db``, ``*.log``) or a storage URL.

Example:
    >>> study = open_result("studies/quickstart.yaml")
    >>> front_table(study)[["trial", "dice", "macs", "params"]]
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import yaml
from optuna.trial import FrozenTrial, TrialState

from nasseg.errors import ConfigError
from nasseg.store import (arch_summary, epochs_trained, fail_reason, feasible, front, hypervolume,
                          hypervolume_on_test, locate, objectives_of, outcome, retries, study_record,
                          trial_record)
from nasseg.store.claims import HEARTBEAT_GRACE_S
from nasseg.store.storage import stale_reason

log = logging.getLogger(__name__)

__all__ = ["epochs_trained", "export_trial", "front_table", "front_trials", "hv_curve", "hypervolume",
           "open_result", "trial_table"]


def open_result(target: str | Path, study_name: str | None = None) -> optuna.Study:
    """Open a stored study from a study YAML, a run folder, a storage file or URL
    (:func:`nasseg.store.locate`)."""
    return locate(target, study_name)


def front_trials(study: optuna.Study, trials: list[FrozenTrial] | None = None) -> list[FrozenTrial]:
    """The Pareto set over feasible trials, in trial order (:func:`nasseg.store.front`)."""
    return front(study, trials)


def trial_table(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: its outcome as ``state`` (trained, infeasible, invalid, duplicate,
    failed, running, waiting, requeued: :func:`nasseg.store.outcome`), objective values,
    costs, epochs, flags, reasons."""
    names = [o.name for o in objectives_of(study)]
    trials = study.get_trials(deepcopy=False)
    retried = retries(trials)
    rows = []
    for t in trials:
        r = trial_record(t)
        row = {"trial": t.number, "state": outcome(t, retried)}
        for i, n in enumerate(names):  # a network that was not trained has no Dice (not 0.0)
            row[n] = t.values[i] if t.values and not (n == "dice" and row["state"] == "infeasible") else None
        row.update({"feasible": feasible(t), "arch_id": r.arch_id, "epochs": epochs_trained(t),
                    "stopped_early": bool(r.stopped_early), "reused_from": r.reused_from,
                    "initial_arch": r.initial_arch, "arch": arch_summary(r.arch),
                    "note": fail_reason(t, retried) or r.constraint_violation or r.stop_reason
                    or _dead_claim(t)})
        rows.append(row)
    return pd.DataFrame(rows)


def _dead_claim(t: FrozenTrial) -> str:
    """For a RUNNING trial whose process is gone: why, and what will happen to it."""
    if t.state != TrialState.RUNNING:
        return ""
    reason = stale_reason(t, HEARTBEAT_GRACE_S)
    return f"interrupted: {reason}; the next `nasseg search` re-queues it" if reason else ""


def front_table(study: optuna.Study) -> pd.DataFrame:
    """The Pareto set as a table, best Dice first."""
    table = trial_table(study)
    numbers = [t.number for t in front_trials(study)]
    front = table[table["trial"].isin(numbers)]
    return front.sort_values("dice", ascending=False).reset_index(drop=True)


def hv_curve(study: optuna.Study) -> pd.DataFrame:
    """Normalised hypervolume after each finished trial, against trial-epochs spent: ``hv``
    on the stored (validation) values, ``hv_test`` of the same front with its members'
    test Dice (:func:`nasseg.store.hypervolume_on_test`)."""
    done = [t for t in study.get_trials(deepcopy=False)
            if t.state in (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)]
    done.sort(key=lambda t: (t.datetime_complete or t.datetime_start, t.number))
    rows, spent = [], 0
    for i, t in enumerate(done):
        spent += epochs_trained(t)
        rows.append({"trial": t.number, "finished": i + 1, "epochs_spent": spent,
                     "hv": hypervolume(study, done[: i + 1]),
                     "hv_test": hypervolume_on_test(study, done[: i + 1])})
    return pd.DataFrame(rows)


def export_trial(study: optuna.Study, number: int, out: str | Path) -> Any:
    """Write trial ``number``'s network as an architecture YAML (for ``nasseg train``/``profile``).

    Raises:
        ConfigError: no such trial, it has no architecture (invalid network), or it did not
            complete (failed, interrupted, running); an infeasible trial is written with a
            warning (logged and in the file's header).
    """
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    if number not in trials:
        raise ConfigError(f"study '{study.study_name}' has no trial {number} "
                          f"(trials 0..{max(trials, default=-1)})")
    t = trials[number]
    r = trial_record(t)
    arch = r.arch
    if not arch:
        raise ConfigError(f"trial {number} has no architecture ({r.fail_reason or t.state.name})")
    if t.state != TrialState.COMPLETE:
        reason = fail_reason(t, retries(list(trials.values()))) or t.state.name.lower()
        raise ConfigError(f"trial {number} is {t.state.name} ({reason}): its network has no validated result; "
                          "export a trial of the Pareto set (`nasseg pareto STUDY`)")
    warning = None if feasible(t) else (
        f"trial {number} is infeasible ({r.constraint_violation or 'over a constraint'}); written anyway, "
        "marked in the file's header")
    from nasseg.arch import load_arch  # lazy: torch; nasseg pareto reads a study without it

    cfg = load_arch({**arch, "name": f"{study.study_name}_trial{number}"})
    objs = objectives_of(study)
    values = ", ".join(f"{o.column} {o.text(v)}" for o, v in zip(objs, t.values or []))
    shape = study_record(study).input_shape
    at = f"; costs at input {'x'.join(map(str, shape))}" if shape else ""
    header = (f"# study {study.study_name}, trial {number} ({t.state.name.lower()}; {values}{at})\n"
              f"# arch_id {r.arch_id}; {arch_summary(arch)}\n" + (f"# WARNING: {warning}\n" if warning else ""))
    if warning:
        log.warning("nasseg export: %s", warning)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    body = cfg.model_dump(mode="json")
    out.write_text(header + yaml.safe_dump(body, sort_keys=False, default_flow_style=None))
    load_arch(out)  # what we wrote must load
    return cfg
