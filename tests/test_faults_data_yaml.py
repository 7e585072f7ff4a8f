"""Fault injection, YAML: booleans are not numbers, and a key is given once.

Issue 20: ``epochs: true`` trained 1 epoch (pydantic's lax mode reads ``true`` as 1), and a
key given twice in one mapping kept the last value without a word.
"""
from __future__ import annotations

import pytest
import yaml
from faults import TINY_ARCH

from nasseg.cli import main
from nasseg.configio import read_yaml
from nasseg.data import DataConfig
from nasseg.errors import ConfigError
from nasseg.search.study import load_study_config
from nasseg.train import TrainConfig


def _train(tmp_path, train_yaml: str) -> int:
    arch, cfg = tmp_path / "tiny.yaml", tmp_path / "train.yaml"
    arch.write_text(yaml.safe_dump(TINY_ARCH))
    cfg.write_text(train_yaml)
    code = main(["train", str(arch), "--data", "synthetic", "--size", "16", "--max-cases", "8", "--threads", "1",
                 "--device", "cpu", "--no-progress", "--train-config", str(cfg), "--run-dir", str(tmp_path / "run")])
    return code


def test_epochs_true_is_refused_one_line_not_one_epoch(tmp_path, capsys):
    code = _train(tmp_path, "epochs: true\nbatch_size: 4\n")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "train.yaml" in err[0] and "epochs: expected a number, got true" in err[0]
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


@pytest.mark.parametrize("model,raw,message", [
    (TrainConfig, {"lr": False}, "lr: expected a number, got false"),
    (DataConfig, {"augment": {"rot90": 1}}, "augment: rot90: expected true or false, got 1"),
    (DataConfig, {"augment": {"flip": "yes"}}, "augment: flip: expected true or false, got 'yes'"),
    (DataConfig, {"size": [True, 64]}, "size: item 0: expected a number, got true"),
])
def test_booleans_and_numbers_are_never_taken_for_each_other(tmp_path, model, raw, message):
    path = tmp_path / "x.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=message):
        model.from_yaml(path)


def test_real_booleans_and_numbers_still_load():
    cfg = DataConfig.model_validate({"augment": {"flip": [0], "rot90": False}, "size": [32, 48]})
    assert cfg.augment.flip == [0] and cfg.augment.rot90 is False and cfg.size == (32, 48)


def test_a_key_given_twice_names_the_file_the_key_and_both_lines(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text("epochs: 200\nlr: 0.01\nepochs: 2\n")
    with pytest.raises(ConfigError) as err:
        read_yaml(path)
    assert str(err.value) == f"{path}: line 3: key 'epochs' is given twice (first on line 1); keep one"


def test_a_nested_key_given_twice_in_a_study_is_refused(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text("name: s\nspace: x.yaml\nbudget: {trials: 3}\nepochs: 2\n"
                    "data:\n  kind: synthetic\n  size: 32\n  size: 64\n")
    with pytest.raises(ConfigError, match=r"s\.yaml: line 8: key 'size' is given twice \(first on line 7\)"):
        load_study_config(path)
    assert main(["search", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "key 'size' is given twice" in err[0]


def test_the_same_key_in_two_mappings_and_merge_keys_are_fine(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text("a: &base {size: 1}\nb:\n  <<: *base\n  size: 2\nc: {size: 3}\n")
    assert read_yaml(path) == {"a": {"size": 1}, "b": {"size": 2}, "c": {"size": 3}}
