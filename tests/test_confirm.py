"""`nasseg confirm`: a search's Pareto set re-trained over seeds and scored on the test split;
`nasseg pareto` and the report show validation and confirmed test values side by side."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
from test_search_helpers import arch_yaml, make_study

from nasseg.cli import main
from nasseg.search.results import open_result


def test_confirm_retrains_the_front_on_the_test_split(tmp_path: Path, capsys) -> None:
    small = arch_yaml(tmp_path, "small", 4)
    study_yaml = make_study(tmp_path, initial_archs=[small], budget={"trials": 2},
                            data={"source": "synthetic", "n_cases": 12, "size": 32})
    assert main(["search", str(study_yaml), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["confirm", str(study_yaml), "--seeds", "2"]) == 0
    out = capsys.readouterr().out
    assert "test Dice [95% CI]" in out and "normalised hypervolume of these members" in out
    # 2 seeds: no mixed model; the interval is said to be conditional on the networks (issue 21)
    assert "test Dice: 95% CI conditional on the trained networks (2 seeds, fewer than 3" in out

    study = open_result(study_yaml)
    info = study.user_attrs["confirm"]
    assert info["seeds"] == 2 and 0 <= info["hv_test"] <= 1 and len(info["split_hashes"]) == 1
    per_case = pd.read_csv(tmp_path / "run" / "confirm" / "per_case.csv")
    members = {f"trial_{m['trial']}" for m in info["members"]}
    assert set(per_case["variant"]) == members and set(per_case["seed"]) == {0, 1}
    # scored on the test cases only: the ones the search never trained or selected on
    run = next((tmp_path / "run" / "confirm").glob("trial_*-seed0"))
    import json

    used = json.loads((run / "split.json").read_text())
    assert set(per_case["case"]) == set(used["test"]) and len(used["test"]) == 2
    assert not set(used["test"]) & (set(used["train"]) | set(used["val"]))
    for m in info["members"]:
        mine = per_case[per_case["variant"] == f"trial_{m['trial']}"]
        assert abs(mine.groupby("seed")["dice"].mean().mean() - m["test_dice"]) < 1e-12
        assert m["test_ci_low"] <= m["test_dice"] <= m["test_ci_high"]

    assert main(["pareto", str(study_yaml)]) == 0
    table = " ".join(capsys.readouterr().out.split())
    assert "test dice" in table and "stays" in table and "confirmed by `nasseg confirm`" in table
    assert "(2 seeds x 2 epochs; 95% CI conditional on the trained networks (2 seeds" in table
    assert "mixed model" not in table and "has changed since" not in table

    from nasseg.report.html import build_report

    html = build_report(study).html
    assert "Confirmed on the test split" in html and "val Dice" in html
    assert "95% CI conditional on the trained networks (2 seeds" in html and "mixed model" not in html
    assert f"confirmed on test: {info['hv_test']:.4f}" in html  # the dashed line of the HV history

    # resuming re-trains nothing
    assert main(["confirm", str(study_yaml), "--seeds", "2"]) == 0
    assert " seed " not in capsys.readouterr().out.split("confirming")[1].split("trial  ")[0]


def test_pareto_says_when_the_front_changed_after_confirm(tmp_path: Path, capsys) -> None:
    from nasseg.store import study_record, update_record

    small = arch_yaml(tmp_path, "small", 4)
    study_yaml = make_study(tmp_path, initial_archs=[small], budget={"trials": 1},
                            data={"source": "synthetic", "n_cases": 12, "size": 32})
    assert main(["search", str(study_yaml), "--no-progress"]) == 0
    assert main(["confirm", str(study_yaml), "--seeds", "1", "--epochs", "1"]) == 0
    study = open_result(study_yaml)
    rec = study_record(study).confirm
    # as if later trials had replaced the confirmed member on the front
    update_record(study, confirm={**rec, "members": [{**m, "trial": 99} for m in rec["members"]]})
    capsys.readouterr()
    assert main(["pareto", str(study_yaml)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "(1 seeds x 1 epochs" in out
    assert "the Pareto set has changed since `nasseg confirm` ran (it confirmed trials 99); run it again" in out


def test_two_confirms_at_once_write_each_pair_once(tmp_path: Path) -> None:
    """Issue 20: two `nasseg confirm` at once wrote duplicate rows into per_case.csv. One
    writer per (member, seed): two real processes split the pairs, and every pair's rows are
    in the table exactly once."""
    import subprocess
    import sys

    small = arch_yaml(tmp_path, "small", 4)
    study_yaml = make_study(tmp_path, initial_archs=[small], budget={"trials": 1},
                            data={"source": "synthetic", "n_cases": 12, "size": 32})
    assert main(["search", str(study_yaml), "--no-progress"]) == 0
    code = "import sys; from nasseg.cli import main; sys.exit(main(sys.argv[1:]))"
    env = {**__import__("os").environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", code, "confirm", str(study_yaml), "--seeds", "3"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    per_case = pd.read_csv(tmp_path / "run" / "confirm" / "per_case.csv")
    counts = per_case.groupby(["variant", "seed"]).size()
    assert len(counts) == 3 and set(counts) == {2}  # 3 seeds x 2 test cases, no pair twice
    trained = [line for out in outs for line in out.splitlines() if " seed " in line and "val Dice" in line]
    assert len(trained) == 3  # each pair trained by one of the two processes
