"""The report's "compared with the starting network" uses the confirmed test values once
``nasseg confirm`` has run (never the validation cases that chose the network), with the
statistics' rule on seeds: the mixed model from 3 seeds, a conditional comparison below."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nasseg.ablation.stats import compare as compare_variants
from nasseg.ablation.stats import tidy
from nasseg.arch import load_arch
from nasseg.report.choose import choice_info
from nasseg.report.testing import add_trial, new_study
from nasseg.store import update_record

OBJ = [("dice", "maximize"), ("macs", "minimize"), ("params", "minimize")]


def _study(seeds: int | None, tmp_path):
    """Trial 0: the preset (validation Dice 0.70); trial 1: a cheaper, better-validated one."""
    study = new_study(None, "c", "search", OBJ, reference_point={"dice": 0, "macs": 4, "params": 2e6})
    arch = {"name": "w", "spatial_dims": 2, "in_channels": 1, "out_channels": 1,
            "stages": [{"width": 4, "block": {"type": "conv"}}, {"width": 8, "block": {"type": "conv"}}]}
    for i, (val, gmacs, params) in enumerate([(0.70, 1.0, 4e5), (0.80, 0.5, 2e5)]):
        per_case = [{"case_id": f"v{k}", "class": 1, "dice": val} for k in range(6)]
        attrs = {"arch": load_arch(arch).model_dump(mode="json"), "arch_id": f"a{i}", "trained": True,
                 "cost": {"params": params, "macs": gmacs * 1e9}, "per_case": per_case}
        add_trial(study, [val, gmacs, params], **attrs, **({"initial_arch": "cmunext_s"} if i == 0 else {}))
    if seeds is None:
        return study, None
    rng = np.random.default_rng(seeds)
    rows = [{"variant": f"trial_{t}", "seed": s, "case": f"t{c}", "class": 1,
             "dice": float(np.clip(0.72 + 0.1 * np.sin(c) + rng.normal(0, 0.02), 0, 1))}
            for t in (0, 1) for s in range(seeds) for c in range(20)]
    path = tmp_path / "per_case.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    update_record(study, confirm={"seeds": seeds, "per_case_csv": str(path), "members": []})
    return study, tidy(pd.read_csv(path).rename(columns={"case": "case_id"}))


def _vs(study) -> str:
    return next(r.vs_preset for r in choice_info(study).recommendations if r.trial == 1)


def test_before_confirm_only_the_selection_biased_difference_without_interval(tmp_path):
    text = _vs(_study(None, tmp_path)[0])
    assert text.startswith("vs cmunext_s: +0.100 Dice on the 6 validation cases that chose it (optimistic, "
                           "no interval: run nasseg confirm")
    assert "[" not in text


@pytest.mark.parametrize("seeds", [1, 2, 3])
def test_after_confirm_the_test_values_are_compared(tmp_path, seeds):
    study, frame = _study(seeds, tmp_path)
    c = compare_variants(frame, "trial_1", "trial_0")
    text = _vs(study)
    assert text.startswith(f"vs cmunext_s: {c.mean_diff:+.3f} Dice [{c.diff_ci_low:+.3f}, {c.diff_ci_high:+.3f}] "
                           f"on 20 confirmed test cases x {seeds} seed")
    assert "validation" not in text and "+0.100" not in text
    if seeds < 3:
        assert "conditional on the trained networks, no p-value" in text and "p =" not in text
    else:
        assert f"mixed model, p = {c.p_value:.2g}" in text
