"""`flops` as a searchable objective: one registry record, nothing else (see the store's
objective registry); a real tiny search constrains, records and prints it."""
from __future__ import annotations

from pathlib import Path

from test_search_helpers import TINY_SPACE, arch_yaml, make_study

from nasseg.cli import main
from nasseg.search.results import open_result
from nasseg.search.runner import run_search
from nasseg.store import feasible


def test_flops_is_searched_constrained_and_shown(tmp_path: Path, capsys) -> None:
    space = {**TINY_SPACE, "constraints": {"input_size": [32, 32], "max_gflops": 0.05}}
    small, big = arch_yaml(tmp_path, "small", 4), arch_yaml(tmp_path, "big", 48)
    study_yaml = make_study(tmp_path, space_dict=space, objectives=["dice", "flops"],
                            initial_archs=[small, big], budget={"trials": 2})
    outcomes = run_search(study_yaml, progress=False)["outcomes"]
    assert outcomes["trained"] == 1 and outcomes["infeasible"] >= 1  # the space's one feasible network
    study = open_result(study_yaml)
    assert study.metric_names == ["dice", "flops"]
    assert study.user_attrs["reference_point"]["flops"] == 0.05
    t0, t1 = study.trials[:2]
    assert t0.values[1] == t0.user_attrs["cost"]["flops"] / 1e9 and feasible(t0)
    assert t1.constraints["flops"] > 0 and not feasible(t1)
    assert t1.user_attrs["constraint_violation"].startswith("flops ")
    capsys.readouterr()
    assert main(["pareto", str(study_yaml)]) == 0
    assert "GFLOPs" in capsys.readouterr().out
