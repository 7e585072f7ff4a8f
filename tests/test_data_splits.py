"""Splits (random, k-fold, file) and the data config (detection, overrides, typos)."""
from __future__ import annotations

import json

import pytest

from nasseg.data import DataConfig, SplitConfig, make_split, resolve_data
from nasseg.errors import ConfigError, DataError

IDS = [f"c{i:02d}" for i in range(20)]


def _disjoint(s):
    parts = [set(s[p]) for p in ("train", "val", "test")]
    return not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])


def test_random_split_is_60_20_20_seeded_and_disjoint():
    a = make_split(IDS, SplitConfig(seed=3))
    assert (len(a["train"]), len(a["val"]), len(a["test"])) == (12, 4, 4)
    assert set(a["train"]) | set(a["val"]) | set(a["test"]) == set(IDS) and _disjoint(a)
    assert a == make_split(IDS, SplitConfig(seed=3))
    assert a["test"] != make_split(IDS, SplitConfig(seed=4))["test"]
    assert a["method"] == "random" and a["seed"] == 3 and "test 0.2" in a["rule"] and len(a["hash"]) == 12
    assert a["train"] == sorted(a["train"])  # dataset order kept


def test_kfold_folds_partition_the_non_test_cases_around_a_fixed_test_set():
    splits = [make_split(IDS, SplitConfig(method="kfold", k=4, fold=f)) for f in range(4)]
    assert all(s["test"] == splits[0]["test"] and _disjoint(s) for s in splits)
    vals = [s["val"] for s in splits]
    assert sorted(len(v) for v in vals) == [4, 4, 4, 4]
    assert sorted(c for v in vals for c in v) == sorted(set(IDS) - set(splits[0]["test"]))
    with pytest.raises(DataError, match="split.fold=4 but k=4 folds"):
        make_split(IDS, SplitConfig(method="kfold", k=4, fold=4))


def test_stratified_split_keeps_class_proportions():
    ids = [f"c{i:03d}" for i in range(100)]
    strata = ["malignant" if i % 4 == 0 else "benign" for i in range(100)]  # 25 / 75
    s = make_split(ids, SplitConfig(seed=0), strata=strata)
    for part, n in (("test", 20), ("val", 20)):
        assert len(s[part]) == n
        assert sum(strata[ids.index(c)] == "malignant" for c in s[part]) == 5


def test_group_split_of_a_folder_dataset_never_splits_a_group(tmp_path):
    import numpy as np
    from PIL import Image

    from nasseg.data import load_dataset, split_dataset

    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    ids = [f"frame_{i:03d}" for i in range(42)]
    rng = np.random.default_rng(0)
    for i, c in enumerate(ids):  # six videos of seven frames, a lesion in every frame
        mask = np.zeros((8, 8), np.uint8)
        mask[1 + i % 5: 4 + i % 5, 2:5] = 255
        Image.fromarray(mask).save(tmp_path / "masks" / f"{c}.png")
        texture = rng.integers(0, 80, (8, 8))  # distinct frames: no near-duplicate families
        Image.fromarray((mask // 3 + 20 + texture).astype(np.uint8)).save(tmp_path / "images" / f"{c}.png")
    table = tmp_path / "groups.csv"
    table.write_text("case_id,video\n" + "".join(f"{c}.png,v{i // 7}\n" for i, c in enumerate(ids)))
    ds = load_dataset(resolve_data(str(tmp_path)), cache=False)
    for seed in range(5):
        s = split_dataset(ds, SplitConfig(seed=seed, table=str(table), group="video"))
        assert _disjoint(s) and len(s["train"]) + len(s["val"]) + len(s["test"]) == 42
        owner = {}
        for part in ("train", "val", "test"):
            for c in s[part]:
                owner.setdefault(int(c[6:]) // 7, set()).add(part)
        assert all(len(parts) == 1 for parts in owner.values())  # one partition per video
        assert all(s[p] for p in ("train", "val", "test")) and "grouped by video" in s["rule"]
    regex = split_dataset(ds, SplitConfig(group=r"regex:^frame_(\d\d)", stratify="none"))
    for part in ("val", "test"):  # groups of ten by the first two digits
        assert all(c[6:8] not in {x[6:8] for x in regex["train"]} for c in regex[part])


def test_split_file_round_trip_nnunet_folds_and_errors(tmp_path):
    used = make_split(IDS, SplitConfig(seed=1))
    f = tmp_path / "split.json"
    f.write_text(json.dumps(used))
    again = make_split(IDS, resolve_data("synthetic", file=str(f)).split)
    assert again["method"] == "file" and all(again[p] == used[p] for p in ("train", "val", "test"))
    assert again["hash"] == used["hash"]
    # nnU-Net's splits_final.json: a list of folds; cases it does not name are the test set
    f.write_text(json.dumps([{"train": IDS[:10], "val": IDS[10:15]}, {"train": IDS[5:15], "val": IDS[:5]}]))
    nn = make_split(IDS, SplitConfig(method="file", file=str(f), fold=1))
    assert nn["val"] == IDS[:5] and nn["test"] == IDS[15:]
    f.write_text(json.dumps({"train": ["c00", "zz"], "val": ["c01"]}))
    with pytest.raises(DataError, match=r"split\.json: 1 case ids not in the dataset, e\.g\. \['zz'\]"):
        make_split(IDS, SplitConfig(method="file", file=str(f)))
    f.write_text(json.dumps({"train": ["c00"], "val": ["c01"], "test": ["c00"]}))
    with pytest.raises(DataError, match="cases in both train and test"):
        make_split(IDS, SplitConfig(method="file", file=str(f)))
    with pytest.raises(DataError, match="split file not found"):
        make_split(IDS, SplitConfig(method="file", file=str(tmp_path / "none.json")))


def test_max_cases_is_a_seeded_stratified_sample_not_the_first_files():
    from pathlib import Path

    from nasseg.data import load_dataset

    dsb = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "dsb2018_96"
    if not (dsb / "images").is_dir():
        pytest.skip(f"dataset not found at {dsb}")
    first = sorted(p.stem for p in (dsb / "images").iterdir())[:10]
    sub = load_dataset(resolve_data(str(dsb), max_cases=10), cache=False)
    assert len(sub) == 10 and sub.case_ids != first
    assert sub.case_ids == load_dataset(resolve_data(str(dsb), max_cases=10), cache=False).case_ids
    assert sub.case_ids != load_dataset(resolve_data(str(dsb), max_cases=10, seed=1), cache=False).case_ids


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
