"""One study base for search and ablation: output folder, storage default, kind, and the
store finding either kind's storage from its file without importing either kind."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from nasseg.ablation.config import load_ablation
from nasseg.errors import ConfigError
from nasseg.search.study import load_study_config
from nasseg.store.studyfile import study_location

ABLATION = {"name": "skips", "base": "cmunext_s", "data": {"kind": "synthetic", "size": 32},
            "factors": {"skip": {"path": "stages.:-1.skip.type", "levels": ["skip_fusion", "irsc"]}},
            "profiles": {"cpu": {"seeds": 2}}}
SEARCH = {"data": "synthetic", "space": "space.yaml", "budget": {"trials": 2}, "epochs": 1}


def write(tmp_path: Path, data: dict, name: str) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_both_kinds_have_one_output_folder_and_storage_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ablation = load_ablation(write(tmp_path, ABLATION, "ab.yaml"))
    search = load_study_config(write(tmp_path, {**SEARCH, "name": "skips"}, "se.yaml"))
    assert ablation.out_dir() == search.out_dir() == tmp_path / "runs" / "skips"
    assert ablation.storage_url() == search.storage_url() == f"sqlite:///{tmp_path / 'runs/skips/study.db'}"
    old = load_ablation(write(tmp_path, {**ABLATION, "out_dir": "elsewhere"}, "old.yaml"))
    new = load_ablation(write(tmp_path, {**ABLATION, "output_dir": "elsewhere"}, "new.yaml"))
    assert old.out_dir() == new.out_dir() == tmp_path / "elsewhere" and old == new
    # `nasseg ablate --runs DIR` replaces the file's folder, whichever name the file gives it
    moved = load_ablation(write(tmp_path, {**ABLATION, "output_dir": "elsewhere"}, "cli.yaml"), overrides={"out_dir": "cli"})
    assert moved.out_dir() == tmp_path / "cli"


def test_kind_and_the_two_folder_names_are_checked(tmp_path):
    with pytest.raises(ConfigError, match=r"both\.yaml: give output_dir or out_dir .*not both"):
        load_ablation(write(tmp_path, {**ABLATION, "out_dir": "a", "output_dir": "b"}, "both.yaml"))
    with pytest.raises(ConfigError, match=r"kind\.yaml: kind is 'ablation', not a search study"):
        load_study_config(write(tmp_path, {**SEARCH, "kind": "ablation"}, "kind.yaml"))
    with pytest.raises(ConfigError, match=r"kind2\.yaml: kind is 'search', not an ablation study"):
        load_ablation(write(tmp_path, {**ABLATION, "kind": "search"}, "kind2.yaml"))
    assert load_study_config(write(tmp_path, {**SEARCH, "kind": "search"}, "ok.yaml")).name == "ok"


def test_the_store_locates_either_kind_as_its_command_does(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ab = write(tmp_path, {**ABLATION, "storage": "journal.log"}, "ab.yaml")
    se = write(tmp_path, SEARCH, "se.yaml")
    cfg = load_ablation(ab, profile="cpu")
    assert study_location(ab, "cpu") == (cfg.storage_url(), "skips-cpu")
    assert study_location(se) == (load_study_config(se).storage_url(), "se")
    with pytest.raises(ConfigError, match=r"ab\.yaml: profiles: no profile 'gpu'"):
        study_location(ab, "gpu")


def test_locating_a_study_imports_neither_kind(tmp_path):
    ab = write(tmp_path, ABLATION, "ab.yaml")
    code = ("import sys; from nasseg.store.studyfile import study_location; "
            f"print(study_location({str(ab)!r}, 'cpu')[1]); "
            "print(sorted(m for m in sys.modules if m.startswith(('nasseg.search', 'nasseg.ablation'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split("\n")[:2] == ["skips-cpu", "[]"]
