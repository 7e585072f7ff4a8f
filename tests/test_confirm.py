"""`nasseg confirm`: a search's Pareto set re-trained over seeds and scored on the test split;
`nasseg pareto` and the report show validation and confirmed test values side by side."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from test_search_helpers import TINY_SPACE, arch_yaml, make_study

from nasseg.ablation.stats import compare, tidy
from nasseg.cli import main
from nasseg.errors import ConfigError
from nasseg.search.confirm import confirm_search
from nasseg.search.results import open_result
from nasseg.store import feasible, front, trial_record


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
    assert info["provenance"]["split_hash"] == info["split_hashes"][0]  # the one split every pair used
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

    # resuming re-trains nothing, and still records the split the pairs were trained on
    assert main(["confirm", str(study_yaml), "--seeds", "2"]) == 0
    assert " seed " not in capsys.readouterr().out.split("confirming")[1].split("trial  ")[0]
    assert open_result(study_yaml).user_attrs["confirm"]["split_hashes"] == info["split_hashes"]


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


def test_a_killed_confirmation_continues_its_pair_from_the_last_epoch(tmp_path: Path, monkeypatch) -> None:
    """A pair killed while training (its run folder holds checkpoint_latest.pt) is continued
    from its last epoch when `nasseg confirm` runs again, not trained from epoch 1."""
    import nasseg.train as nt
    from nasseg.train.engine import Hooks

    class Killed(Exception):
        pass

    def kill_at_2(epoch: int) -> None:
        if epoch == 2:
            raise Killed

    study_yaml = make_study(tmp_path, initial_archs=[arch_yaml(tmp_path, "small", 4)], budget={"trials": 1},
                            data={"source": "synthetic", "n_cases": 12, "size": 32})
    assert main(["search", str(study_yaml), "--no-progress"]) == 0
    real = nt.train
    monkeypatch.setattr(nt, "train", lambda *a, **kw: real(*a, **kw, hooks=Hooks(on_epoch_start=kill_at_2)))
    with pytest.raises(Killed):
        confirm_search(study_yaml, seeds=1, epochs=3, echo=lambda s: None)
    run = next((tmp_path / "run" / "confirm").glob("trial_*-seed0"))
    assert (run / "checkpoint_latest.pt").exists() and not (run / "metrics.json").exists()
    started: list[int] = []
    monkeypatch.setattr(nt, "train", lambda *a, **kw: real(*a, **kw, hooks=Hooks(on_epoch_start=started.append)))
    said: list[str] = []
    confirm_search(study_yaml, seeds=1, epochs=3, echo=said.append)
    assert started == [2, 3] and f"{run.name.split('-')[0]} seed 0: continued from its last epoch" in said
    assert list(pd.read_csv(run / "history.csv")["epoch"]) == [1, 2, 3]
    assert len(pd.read_csv(tmp_path / "run" / "confirm" / "per_case.csv")) == 2  # 2 test cases, once


def _seeded_study(tmp_path: Path, widths: dict[str, int], trials: int = 0):
    """A study whose trials are ``widths``' networks (the initial_archs, trained in order),
    with MACs and params as cost objectives; returns the study file and the arch files."""
    space = {**TINY_SPACE, "stages": {**TINY_SPACE["stages"], "width": {"choice": sorted(set(widths.values()))}}}
    archs = {name: arch_yaml(tmp_path, name, w) for name, w in widths.items()}
    study_yaml = make_study(tmp_path, space, initial_archs=list(archs.values()), objectives=["dice", "macs", "params"],
                            reference_point={"macs": 1.0}, budget={"trials": trials or len(widths)},
                            data={"source": "synthetic", "n_cases": 12, "size": 32})
    assert main(["search", str(study_yaml), "--no-progress"]) == 0
    return study_yaml, archs


def test_confirm_against_a_network_that_is_not_a_trial_is_refused(tmp_path: Path, capsys) -> None:
    """Issue 23: --against names a network the study trained; a preset it never tried is a
    ConfigError naming the study file and the preset (the CLI: one line, exit 2), before any training."""
    study_yaml, _ = _seeded_study(tmp_path, {"small": 4})
    with pytest.raises(ConfigError, match=r"study\.yaml: --against cmunext_s: no completed feasible trial of "
                                          r"study 'tiny' is that network .*add cmunext_s to initial_archs"):
        confirm_search(study_yaml, seeds=1, against="cmunext_s")
    capsys.readouterr()
    assert main(["confirm", str(study_yaml), "--seeds", "1", "--against", "cmunext_s"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("nasseg: error: ") and "cmunext_s" in err
    assert not (tmp_path / "run" / "confirm" / "per_case.csv").exists()


def test_confirm_against_the_seed_preset_compares_only_cheaper_members(tmp_path: Path, capsys) -> None:
    """Issue 23: a search seeded with the reference (width 8) beside a cheaper (4) and a costlier
    (16) network. With --against, the costlier one is left out, the reference is its own arm,
    each member gets a paired difference to it, and the verdict is stored; resuming trains nothing."""
    study_yaml, archs = _seeded_study(tmp_path, {"ref": 8, "small": 4, "big": 16})
    study = open_result(study_yaml)
    by_label = {trial_record(t).initial_arch: t for t in study.get_trials()}
    ref, small, big = (by_label[archs[k]] for k in ("ref", "small", "big"))
    assert feasible(big) and all(b > r for b, r in zip(big.values[1:], ref.values[1:]))  # in the pool, costlier

    # the cheapest network as reference: no member costs no more, nothing is trained
    res = confirm_search(study_yaml, seeds=3, top=3, against=archs["small"], echo=lambda s: None)
    assert res.table.empty and res.verdict.startswith(f"not found: no front member costs no more than {archs['small']}")
    assert not (tmp_path / "run" / "confirm" / "per_case.csv").exists()

    capsys.readouterr()
    assert main(["confirm", str(study_yaml), "--seeds", "3", "--epochs", "1", "--top", "3",
                 "--against", archs["ref"]]) == 0
    out = capsys.readouterr().out
    table = pd.read_csv(tmp_path / "run" / "confirm" / "confirm.csv")
    assert set(table["trial"]) == {ref.number, small.number}  # big costs more than the reference: excluded
    assert table.set_index("trial")["is_reference"].to_dict() == {ref.number: True, small.number: False}
    row = table.set_index("trial").loc[small.number]
    assert row["diff_ci_low"] <= row["diff_vs_ref"] <= row["diff_ci_high"] and 0 <= row["p_holm"] <= 1
    frame = tidy(pd.read_csv(tmp_path / "run" / "confirm" / "per_case.csv").rename(columns={"case": "case_id"}))
    c = compare(frame, f"trial_{small.number}", f"trial_{ref.number}", test="mixed")
    assert c.test == "mixed" and abs(row["diff_vs_ref"] - c.mean_diff) < 1e-12
    assert abs(row["p_holm"] - c.p_value) < 1e-12  # one member: Holm changes nothing
    assert f"reference ({archs['ref']})" in out and f"reference: trial {ref.number} is {archs['ref']}" in out

    info = open_result(study_yaml).user_attrs["confirm"]
    verdict = info["against"]["verdict"]
    found = row["diff_ci_low"] > 0 and row["p_holm"] < 0.05
    assert verdict.startswith("found: " if found else "not found: ") and f"trial_{small.number}" in verdict
    assert verdict in out and info["against"]["reference_trial"] == ref.number
    assert [m["trial"] for m in info["against"]["comparisons"]] == [small.number]
    assert {m["trial"] for m in info["members"]} == {ref.number, small.number}

    # resuming trains nothing; without --top the Pareto members at the reference's cost are the arms
    calls = []
    again = confirm_search(study_yaml, seeds=3, epochs=1, top=3, against=archs["ref"], echo=calls.append)
    assert again.verdict == verdict and not [s for s in calls if " seed " in s]
    on_front = {t.number for t in front(study)} - {ref.number, big.number}
    res = confirm_search(study_yaml, seeds=3, epochs=1, against=archs["ref"], echo=calls.append)
    if on_front:
        assert set(res.table["trial"]) == on_front | {ref.number}
    else:
        assert res.table.empty and res.verdict.startswith("not found: no front member")
    assert not [s for s in calls if " seed " in s]
