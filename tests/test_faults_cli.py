"""Fault injection, command line: exit codes, one line per error, counts checked first.

Issue 10, cases 3 and 7: negative ``--trials`` gave ``KeyError: 'trial'`` after creating an
empty study; internal errors printed raw tracebacks; a hint read ``unknown key 'n_cases'
(did you mean 'n_cases'?)``.
"""
from __future__ import annotations

import pytest

from nasseg.cli import main, train_cmds
from nasseg.data import DataConfig
from nasseg.errors import ConfigError, did_you_mean


@pytest.mark.parametrize("flag,value", [("--trials", "-3"), ("--trials", "0"), ("--workers", "0"),
                                        ("--workers", "-1")])
def test_bad_counts_are_refused_before_anything_is_created(tmp_path, capsys, monkeypatch, flag, value):
    monkeypatch.chdir(tmp_path)
    study = tmp_path / "s.yaml"
    study.write_text("name: s\nspace: nowhere.yaml\n")
    assert main(["search", str(study), flag, value]) == 2
    assert capsys.readouterr().err.strip() == f"nasseg: error: {flag} {value}: must be at least 1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"]  # no runs/, no study.db


def test_internal_error_is_one_line_exit_1_and_traceback_only_with_debug(capsys, monkeypatch):
    def broken(args):
        raise KeyError("trial")

    monkeypatch.setattr(train_cmds, "cmd_train", broken)
    assert main(["train", "cmunext_s"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert err.startswith("nasseg: internal error: KeyError: 'trial' (rerun with --debug")
    assert main(["--debug", "train", "cmunext_s"]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "raise KeyError" in err


def test_out_of_memory_anywhere_names_the_setting(capsys, monkeypatch):
    def hungry(args):
        raise MemoryError()

    monkeypatch.setattr(train_cmds, "cmd_train", hungry)
    assert main(["train", "cmunext_s"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nasseg: error: out of memory") and "lower --batch-size (train.batch_size)" in err


def test_did_you_mean_never_suggests_the_same_word(tmp_path):
    assert did_you_mean("n_cases", ["n_cases", "max_cases"]) == " ('n_cases' is valid in another section, not here)"
    assert did_you_mean("max_case", ["n_cases", "max_cases"]) == " (did you mean 'max_cases'?)"
    path = tmp_path / "data.yaml"
    path.write_text("kind: synthetic\nn_cases: 8\n")
    with pytest.raises(ConfigError) as err:
        DataConfig.from_yaml(path)
    assert "unknown key 'n_cases'" in str(err.value) and "did you mean 'n_cases'" not in str(err.value)


def test_python_dash_m_nasseg_runs_the_command_line_without_an_installed_script():
    """What the device run uses (the repository on PYTHONPATH, no `nasseg` script)."""
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-m", "nasseg", "bench", "gpu", "--parts", "nope"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "unknown part(s) ['nope']" in res.stderr


@pytest.mark.parametrize("argv", [["profile", "cmunext_s", "--device", "cuda:7"],
                                  ["predict", "nowhere", "--input", "x", "--out", "y", "--device", "cuda:7"],
                                  ["evaluate", "nowhere", "--data", "synthetic", "--device", "cuda:7"],
                                  ["train", "cmunext_s", "--device", "cuda:7"]])
def test_a_cuda_device_this_machine_lacks_is_one_line_naming_the_option(argv, capsys):
    """cuda:7 exists on no machine this suite runs on (CPU-only, or one to a few GPUs)."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'cuda:7' asked for, but this machine has" in err[0]
    assert err[0].startswith("nasseg: error: --device:" if argv[0] != "train" else "nasseg: error: train.device:")


def test_a_misspelled_required_key_is_one_line_not_two(tmp_path, capsys):
    """`epoch: 8` for the required `epochs`: the unknown key's line names the fix; no second
    line claims that `epochs` is missing."""
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    text = (repo / "studies" / "quickstart.yaml").read_text().replace("\nepochs: 8", "\nepoch: 8")
    study = tmp_path / "q.yaml"
    study.write_text(text.replace("space: search_spaces", f"space: {repo}/search_spaces"))
    assert main(["search", str(study)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"nasseg: error: {study}: epoch: unknown key 'epoch' (did you mean 'epochs'?)"]
