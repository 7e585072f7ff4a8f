"""Splits (random, k-fold, file) and the data config (detection, overrides, typos)."""
from __future__ import annotations

import json

import pytest

from nasseg.data import DataConfig, SplitConfig, make_split, resolve_data
from nasseg.errors import ConfigError, DataError

IDS = [f"c{i:02d}" for i in range(20)]


def test_random_split_is_70_30_seeded_and_disjoint():
    a = make_split(IDS, SplitConfig(seed=3))
    assert (len(a["train"]), len(a["val"])) == (14, 6)
    assert set(a["train"]) | set(a["val"]) == set(IDS) and not set(a["train"]) & set(a["val"])
    assert a == make_split(IDS, SplitConfig(seed=3))
    assert a["val"] != make_split(IDS, SplitConfig(seed=4))["val"]
    assert a["method"] == "random" and a["seed"] == 3
    assert a["train"] == sorted(a["train"])  # dataset order kept


def test_kfold_folds_partition_the_cases():
    vals = [make_split(IDS, SplitConfig(method="kfold", k=3, fold=f))["val"] for f in range(3)]
    assert sorted(len(v) for v in vals) == [6, 7, 7]
    assert sorted(c for v in vals for c in v) == IDS
    with pytest.raises(DataError, match="split.fold=3 but k=3 folds"):
        make_split(IDS, SplitConfig(method="kfold", k=3, fold=3))


def test_split_file_round_trip_and_errors(tmp_path):
    used = make_split(IDS, SplitConfig(seed=1))
    f = tmp_path / "split.json"
    f.write_text(json.dumps(used))
    again = make_split(IDS, resolve_data("synthetic", file=str(f)).split)
    assert again["method"] == "file" and again["train"] == used["train"] and again["val"] == used["val"]
    f.write_text(json.dumps({"train": ["c00", "zz"], "val": ["c01"]}))
    with pytest.raises(DataError, match=r"split\.json: 1 case ids not in the dataset, e\.g\. \['zz'\]"):
        make_split(IDS, SplitConfig(method="file", file=str(f)))
    f.write_text(json.dumps({"train": ["c00"], "val": ["c00"]}))
    with pytest.raises(DataError, match="cases in both train and val"):
        make_split(IDS, SplitConfig(method="file", file=str(f)))
    with pytest.raises(DataError, match="split file not found"):
        make_split(IDS, SplitConfig(method="file", file=str(tmp_path / "none.json")))


def test_resolve_data_overrides_and_typos():
    cfg = resolve_data("synthetic", spatial_dims=3, classes=2, val_fraction=0.2, seed=5, size=16, flip=False)
    assert cfg.kind == "synthetic" and cfg.synthetic.spatial_dims == 3 and cfg.synthetic.classes == 2
    assert cfg.split.val_fraction == 0.2 and cfg.split.seed == 5 and cfg.synthetic.seed == 5
    assert cfg.size == 16 and cfg.augment.flip is False
    assert resolve_data("synthetic3d").synthetic.spatial_dims == 3
    with pytest.raises(ConfigError, match=r"unknown data option 'val_fration' \(did you mean 'val_fraction'\?\)"):
        resolve_data("synthetic", val_fration=0.2)
    with pytest.raises(ConfigError, match=r"split\.methd: unknown key 'methd' \(did you mean 'method'\?\)"):
        resolve_data({"kind": "synthetic", "split": {"methd": "kfold"}})
    with pytest.raises(ConfigError, match=r"split.val_fraction"):
        resolve_data("synthetic", val_fraction=1.5)


def test_data_config_json_and_yaml_round_trip(tmp_path):
    cfg = resolve_data("synthetic", n_cases=12, size=32)
    assert DataConfig.model_validate(json.loads(json.dumps(cfg.model_dump(mode="json")))) == cfg
    y = tmp_path / "data.yaml"
    y.write_text("kind: synthetic\nsize: 32\nsynthetic: {n_cases: 12}\n")
    assert DataConfig.from_yaml(y) == cfg
    y.write_text("kind: synthetic\nsise: 32\n")
    with pytest.raises(ConfigError, match=r"data\.yaml: sise: unknown key 'sise' \(did you mean 'size'\?\)"):
        DataConfig.from_yaml(y)
