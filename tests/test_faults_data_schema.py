"""Fault injection, the data section: one schema for train, search and ablate.

Issue 20: ``data: {path: busi_256, size: 64}`` (no ``kind``) trained and searched on
*synthetic* data, shown only in the trial's config.json; the search studies wrote
``data: {source: ...}`` and the ablations ``data: {kind: folder, path: ...}``, and mixing the
two examples is how a user got there.
"""
from __future__ import annotations

import json
import logging

import pytest
import yaml
from faults import TINY_ARCH, mask_folder
from test_search_helpers import make_study

from nasseg.ablation.config import load_ablation
from nasseg.cli import main
from nasseg.data import DataConfig
from nasseg.data.config import data_section
from nasseg.errors import ConfigError, DataError
from nasseg.search.setup import prepare

ABLATION = {"name": "abl", "base": "cmunext_s", "seeds": 1, "train": {"epochs": 1},
            "factors": {"skip": {"path": "stages.:-1.skip.type", "levels": ["skip_fusion", "irsc"]}}}


def _decathlon(root):
    root.mkdir(parents=True)
    (root / "dataset.json").write_text(json.dumps({"labels": {"0": "background", "1": "x"}, "training": []}))
    return root


def test_a_data_config_with_a_path_and_no_kind_reads_that_folder(tmp_path):
    mask_folder(tmp_path / "busi")
    _decathlon(tmp_path / "msd")
    for folder, kind in (("busi", "folder"), ("msd", "decathlon")):
        path = tmp_path / f"{folder}.yaml"
        path.write_text(yaml.safe_dump({"path": str(tmp_path / folder), "size": 16}))
        cfg = DataConfig.from_yaml(path)
        assert (cfg.kind, cfg.path) == (kind, str(tmp_path / folder))


def test_a_path_that_holds_no_dataset_and_no_kind_is_one_line_exit_2_not_synthetic(tmp_path, capsys):
    (tmp_path / "photos").mkdir()
    data, arch = tmp_path / "data.yaml", tmp_path / "tiny.yaml"
    data.write_text(yaml.safe_dump({"path": str(tmp_path / "photos"), "size": 16}))
    arch.write_text(yaml.safe_dump(TINY_ARCH))
    code = main(["train", str(arch), "--data", str(data), "--epochs", "1", "--max-cases", "8", "--threads", "1",
                 "--device", "cpu", "--no-progress", "--run-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith(f"nasseg: error: {data}: {tmp_path / 'photos'}: not a dataset folder")
    assert "kind: folder or kind: decathlon" in err[0]
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_ablation_reads_the_search_spelling_and_infers_the_kind(tmp_path, caplog, monkeypatch):
    monkeypatch.chdir(tmp_path)
    mask_folder(tmp_path / "d")
    path = tmp_path / "abl.yaml"
    path.write_text(yaml.safe_dump({**ABLATION, "data": {"path": "d", "size": 16}}))
    assert load_ablation(path).data_config().kind == "folder"
    path.write_text(yaml.safe_dump({**ABLATION, "data": {"source": "d", "size": 16, "val_fraction": 0.3}}))
    with caplog.at_level(logging.WARNING, logger="nasseg"):
        cfg = load_ablation(path).data_config()
    assert (cfg.kind, cfg.size, cfg.split.val_fraction) == ("folder", 16, 0.3)
    lines = [r.getMessage() for r in caplog.records if "deprecated" in r.getMessage()]
    assert len(lines) == 1 and "write data: {kind: folder, path: d, size: 16, split: {val_fraction: 0.3}}" in lines[0]


def test_search_reads_the_ablation_spelling_and_infers_the_kind(tmp_path):
    mask_folder(tmp_path / "d", size=32)
    for data in ({"path": "d", "size": 32}, {"kind": "folder", "path": "d", "split": {"val_fraction": 0.25}},
                 {"source": "d", "val_fraction": 0.25}, "d"):
        setup = prepare(make_study(tmp_path, data=data)).setup
        assert (setup.data.kind, setup.data.path) == ("folder", str(tmp_path / "d")), data


@pytest.mark.parametrize("section,message", [
    ({"kind": "synthetic", "path": "d"}, "kind synthetic takes no path"),
    ({"source": "d", "kind": "folder"}, "'source' and 'kind'/'path' both given"),
    ({"kind": "folder"}, "kind folder needs a path"),
    ({"path": "synthetic"}, "write kind: synthetic for generated data"),
])
def test_contradictory_data_sections_are_refused(tmp_path, monkeypatch, section, message):
    monkeypatch.chdir(tmp_path)
    mask_folder(tmp_path / "d")
    with pytest.raises(ConfigError, match=message):
        data_section(section, "s.yaml")


def test_a_missing_folder_is_named(tmp_path):
    with pytest.raises(DataError, match=r"s\.yaml: data: nowhere: no such dataset folder"):
        data_section({"path": "nowhere"}, "s.yaml", here=tmp_path)
