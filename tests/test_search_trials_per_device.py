"""Several trials per device in a real study (CPU, simulated device memory): admission and OOM retry."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from test_search_helpers import TINY_SPACE, arch_yaml, make_study

from nasseg.arch import build_model
from nasseg.search.admission import Admission, current_ticket
from nasseg.search.results import open_result
from nasseg.search.runner import run_search
from nasseg.train import train

DEVICE_MB = 40.0


class OomBesideOthers:
    """The real trainer; trial 0 (the study's initial network) runs out of memory beside others.

    The out-of-memory error is raised inside the real training step (a forward hook),
    exactly where ``torch.OutOfMemoryError`` comes from on a GPU. Every call logs the
    ledger as it stands, to check the admission from inside the trials.
    """

    def __init__(self, log: Path, ledger: Path) -> None:
        self.log, self.ledger = log, ledger

    def __call__(self, arch, data, cfg, **kw):
        ticket = current_ticket()
        count, mb = Admission(self.ledger, DEVICE_MB, 2).usage("cpu")
        with open(self.log, "a") as f:
            f.write(json.dumps({"trial": ticket.trial, "alone": ticket.alone, "count": count, "mb": mb,
                                "need": ticket.mb}) + "\n")
        if ticket.trial != 0 or ticket.alone:
            return train(arch, data, cfg, **kw)
        model = build_model(arch.model_copy(update={"in_channels": 1, "out_channels": 1}))

        def hook(*_):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (simulated)")

        model.register_forward_pre_hook(hook)
        return train(model, data, cfg, **kw)


def test_two_trials_per_device_admitted_by_memory_and_an_oom_trial_retried_alone(tmp_path: Path) -> None:
    greedy = arch_yaml(tmp_path, "greedy", 4)
    study_yaml = make_study(tmp_path, space_dict={**TINY_SPACE, "stages": {**TINY_SPACE["stages"],
                                                                           "width": {"choice": [4, 6, 7]}}},
                            initial_archs=[greedy], budget={"trials": 3}, device_memory_mb=DEVICE_MB, epochs=1)
    log = tmp_path / "calls.jsonl"
    trainer = OomBesideOthers(log, tmp_path / "run" / ".admission.json")
    summary = run_search(study_yaml, trainer=trainer, progress=False, trials_per_device=2)
    trials = open_result(study_yaml).trials
    first, retry = trials[0], next(t for t in trials if t.user_attrs.get("retry_of") == 0)
    # the OOM is recorded with its reason, the trial retried alone and completed
    assert first.state.name == "FAIL" and "out of memory" in first.user_attrs["fail_reason"]
    assert "retried alone" in first.user_attrs["fail_reason"] and "out of memory" in retry.user_attrs["retry_reason"]
    assert retry.user_attrs["run_alone"] and retry.state.name == "COMPLETE" and retry.params == first.params
    assert summary["states"]["complete"] >= 3  # the study went on to its budget (reused duplicates do not count)
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert [c["alone"] for c in calls if c["trial"] == 0] == [False]
    if retry.user_attrs.get("reused_from") is None:  # trained alone (unless an identical network was
        assert [c["alone"] for c in calls if c["trial"] == retry.number] == [True]  # done meanwhile)
    for c in calls:  # admission, seen from inside every trial
        assert c["count"] <= 2 and c["mb"] <= DEVICE_MB
        if c["alone"]:
            assert c["count"] == 1
    assert len({t.user_attrs["owner"]["pid"] for t in trials}) == 2  # two workers for 2 trials per device
