"""``nasseg search`` overrides: --epochs, --trials, --time, --device, --output-dir replace the
study's own values for one run, validated like the file."""
from __future__ import annotations

from test_search_helpers import arch_yaml, make_study

from nasseg.cli import main
from nasseg.store import locate


def test_overrides_replace_study_fields(tmp_path, capsys):
    study = make_study(tmp_path, epochs=3, device="cuda:7", budget={"trials": 5, "time_s": 3600},
                       initial_archs=[arch_yaml(tmp_path, "small", 4)])
    out = tmp_path / "elsewhere"
    assert main(["search", str(study), "--epochs", "1", "--trials", "1", "--time", "900", "--device", "cpu",
                 "--output-dir", str(out), "--no-progress"]) == 0
    assert not (tmp_path / "run" / "study.db").exists()
    trials = locate(out).get_trials()
    assert len(trials) == 1 and len(trials[0].user_attrs["history"]) == 1  # 1 epoch, not 3


def test_bad_override_names_the_study_and_field(tmp_path, capsys):
    study = make_study(tmp_path)
    assert main(["search", str(study), "--time", "-1", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"{study} (with command-line overrides): budget.time_s" in err
    assert not (tmp_path / "run" / "study.db").exists()
