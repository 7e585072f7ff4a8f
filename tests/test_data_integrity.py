"""Near-duplicates before splitting (issue 21, item 2): planted copies are found and grouped,
distinct cases are not, the default split never divides a family, ``nasseg check``."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.ndimage import gaussian_filter

from nasseg.cli import main
from nasseg.data import SplitConfig, load_dataset, resolve_data, split_dataset
from nasseg.data.base import SegDataset, normalise
from nasseg.data.check import id_category, id_group_key, split_warnings
from nasseg.data.integrity import find_duplicates, image_hash, volume_hash

PARTS = ("train", "val", "test")


def _scene(rng, shape):
    """A smooth random image (structure at several scales), 0..255."""
    x = gaussian_filter(rng.normal(size=shape), 3) + 0.3 * gaussian_filter(rng.normal(size=shape), 1)
    return (x - x.min()) / (x.max() - x.min()) * 255


def _planted(n=40, twins=(3, 7, 10), size=64, seed=0):
    """``n`` distinct scenes plus a noisy copy of ``twins[0]``, a copy shifted by 2 pixels of
    ``twins[1]`` and an exact copy of ``twins[2]``; ids ``c000``... and ``twin_of_NNN``."""
    rng = np.random.default_rng(seed)
    images = [_scene(rng, (size, size)) for _ in range(n)]
    ids = [f"c{i:03d}" for i in range(n)]
    a, b, c = twins
    images += [images[a] + rng.normal(0, 8, (size, size)), np.roll(images[b], 2, axis=1), images[c].copy()]
    ids += [f"twin_of_{a:03d}", f"twin_of_{b:03d}", f"twin_of_{c:03d}"]
    return ids, images


def _dataset(ids, images) -> SegDataset:
    ims = torch.as_tensor(np.stack([normalise(im[None]) for im in images]))
    labels = torch.as_tensor(np.stack([(im > 128).astype(np.uint8) for im in images]))
    return SegDataset("folder", 2, 1, 2, list(ids), ims, labels)


def _families(rep):
    return sorted(sorted(f.cases) for f in rep.families)


def test_planted_near_duplicates_are_found_and_distinct_cases_are_not():
    ids, images = _planted()
    rep = find_duplicates(_dataset(ids, images), use_cache=False)
    assert _families(rep) == [["c003", "twin_of_003"], ["c007", "twin_of_007"], ["c010", "twin_of_010"]]
    assert rep.exact_groups == [["c010", "twin_of_010"]]
    exact = {tuple(sorted(f.cases)): f.exact for f in rep.families}
    assert exact[("c010", "twin_of_010")] and not exact[("c003", "twin_of_003")]
    assert all(f.max_distance <= 10 for f in rep.families)
    # the 40 distinct scenes: no pair anywhere near the threshold
    distinct = find_duplicates(_dataset(ids[:40], images[:40]), threshold=16, use_cache=False)
    assert distinct.families == []


def test_volumes_noisy_copy_found_and_distinct_volumes_not():
    rng = np.random.default_rng(1)
    vols = [_scene(rng, (24, 28, 24)) for _ in range(12)]
    vols.append(vols[5] + rng.normal(0, 0.1 * vols[5].std(), vols[5].shape))
    ids = [f"v{i:02d}" for i in range(12)] + ["copy_of_05"]
    ds = SegDataset("decathlon", 3, 1, 2, ids, [torch.as_tensor(normalise(v[None])) for v in vols],
                    [torch.as_tensor((v > 128).astype(np.uint8)) for v in vols])
    rep = find_duplicates(ds, use_cache=False)
    assert _families(rep) == [["copy_of_05", "v05"]] and rep.method == "volume_dct216"
    assert volume_hash(vols[0][None]) == volume_hash(2 * vols[0][None] + 7)


def test_hashes_are_cached_per_dataset_content(tmp_path, monkeypatch):
    monkeypatch.setenv("NASSEG_CACHE_DIR", str(tmp_path))
    ids, images = _planted(n=12, twins=(1, 2, 3))
    ds = _dataset(ids, images)
    first = find_duplicates(ds)
    files = list((tmp_path / "duplicates").glob("*.json"))
    assert [f.stem for f in files] == [first.content_hash]
    files[0].write_text("{broken")  # a damaged cache file is recomputed, never trusted
    again = find_duplicates(_dataset(ids, images))
    assert _families(again) == _families(first)
    assert json.loads(files[0].read_text())["hashes"][0] == image_hash(images[0][None])


def test_preprocessed_volumes_are_keyed_by_their_cache_folder(tmp_path, monkeypatch):
    """Volumes read from the preprocessing cache are not read again to find their hashes: the
    cache folder's name (files' identity + plan) is the key."""
    monkeypatch.setenv("NASSEG_CACHE_DIR", str(tmp_path))
    rng = np.random.default_rng(3)
    vols = [_scene(rng, (20, 20, 20)) for _ in range(6)]
    vols.append(vols[2].copy())

    def volumes(arrays):
        return SegDataset("decathlon", 3, 1, 2, [f"v{i}" for i in range(7)],
                          [torch.as_tensor(normalise(v[None])) for v in arrays],
                          [torch.as_tensor((v > 128).astype(np.uint8)) for v in arrays],
                          info={"cache": str(tmp_path / "preprocessed" / "hippo-0123-abcd")})

    first = find_duplicates(volumes(vols))
    assert _families(first) == [["v2", "v6"]] and first.exact_groups == [["v2", "v6"]]
    other = find_duplicates(volumes([v[::-1] for v in vols[::-1]]))  # same folder name: the cache answers
    assert other.content_hash == first.content_hash and _families(other) == _families(first)
    assert _families(find_duplicates(volumes(vols[::-1]), use_cache=False)) == [["v0", "v4"]]


def test_default_split_never_divides_a_family():
    rng = np.random.default_rng(2)
    images, ids = [], []
    for i in range(30):  # 30 scenes, 15 of them with a noisy twin: 45 cases
        images.append(_scene(rng, (48, 48)))
        ids.append(f"s{i:02d}")
        if i % 2 == 0:
            images.append(images[-1] + rng.normal(0, 6, (48, 48)))
            ids.append(f"s{i:02d}_twin")
    ds = _dataset(ids, images)
    assert len(find_duplicates(ds).families) == 15
    straddled_without = 0
    for seed in range(6):
        s = split_dataset(ds, SplitConfig(seed=seed))
        part = {c: p for p in PARTS for c in s[p]}
        assert all(part[f"s{i:02d}"] == part[f"s{i:02d}_twin"] for i in range(0, 30, 2))
        assert s["duplicates"]["grouped"] and s["duplicates"]["straddling"] == 0
        assert s["duplicates"]["families"] == 15 and "15 near-duplicate families" in s["rule"]
        old = split_dataset(ds, SplitConfig(seed=seed), duplicates=False)
        straddled_without += old["duplicates"]["straddling"]
        assert not old["duplicates"]["grouped"]
    assert straddled_without > 0  # the split before families were grouped did divide them


def test_families_join_declared_groups():
    ids, images = _planted(n=30, twins=(3, 7, 10))
    ids = [f"p{i // 3:02d}-{c}" for i, c in enumerate(ids)]  # declared patients of 3 cases
    ds = _dataset(ids, images)
    for seed in range(6):
        s = split_dataset(ds, SplitConfig(seed=seed, group=r"regex:^(p\d+)-", stratify="none"))
        part = {c: p for p in PARTS for c in s[p]}
        patient = {}
        for c, p in part.items():
            patient.setdefault(c[:3], set()).add(p)
        assert all(len(v) == 1 for v in patient.values())
        # each twin is in patient p10, its original elsewhere: both patients share a partition
        assert part["p01-c003"] == part["p10-twin_of_003"] == part["p02-c007"] == part["p03-c010"]


def test_id_patterns_and_warnings():
    busi = [f"benign_{i:03d}" for i in range(20)] + [f"malignant_{i:03d}" for i in range(10)]
    assert id_category(busi) == ("regex:^([A-Za-z]+)", {"benign": 20, "malignant": 10})
    assert id_group_key(busi) is None
    videos = [f"{v}-{f:03d}" for v in range(12) for f in range(5)]
    assert id_group_key(videos) == ("regex:^([^-_. ]+)[-_. ]", 12, 5.0)
    assert id_group_key([f"{i:04x}beef" for i in range(40)]) is None  # hashes: no structure
    (warn,) = split_warnings(videos, SplitConfig(stratify="none"), None)
    assert warn.startswith("warning: groups") and "--group 'regex:^([^-_. ]+)[-_. ]'" in warn
    assert split_warnings(videos, SplitConfig(group=r"regex:^(\d+)-"), None) == []
    (cat,) = split_warnings(busi, SplitConfig(), None)
    assert "does not stratify" in cat and "benign 20, malignant 10" in cat
    assert split_warnings(busi, SplitConfig(stratify="regex:^([A-Za-z]+)"), None) == []
    assert split_warnings(busi, SplitConfig(stratify="class", table="name_map.csv"), None) == []


def _twins_folder(root, n=30, size=32):
    """A folder of ``n`` scenes, every second one with a noisy twin (``sNN_twin``)."""
    rng = np.random.default_rng(0)
    ids, images = [], []
    for i in range(n):
        images.append(_scene(rng, (size, size)))
        ids.append(f"s{i:02d}")
        if i % 2 == 0:
            images.append(np.clip(images[-1] + rng.normal(0, 6, (size, size)), 0, 255))
            ids.append(f"s{i:02d}_twin")
    return _folder(root, ids, images)


def _folder(root, ids, images):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for c, im in zip(ids, images, strict=True):
        Image.fromarray(np.clip(im, 0, 255).astype(np.uint8)).save(root / "images" / f"{c}.png")
        Image.fromarray(((im > 128) * 255).astype(np.uint8)).save(root / "masks" / f"{c}.png")
    return root


def test_check_command_text_json_and_unreadable_data(tmp_path, capsys):
    ids, images = _planted(n=20, twins=(3, 7, 10))
    data = _folder(tmp_path / "d", ids, images)
    assert main(["check", str(data)]) == 0
    out = capsys.readouterr().out
    assert "43 cases (2D)" not in out and "23 cases (2D)" in out
    assert "near-duplicate families (phash64, <= 10 bits): 3 families, 6 cases" in out
    assert "c010 = twin_of_010" in out and "c003~twin_of_003 d" in out
    assert main(["check", str(data), "--stratify", "regex:^([a-z]+)", "--group", r"regex:(\d)$"]) == 0
    out = capsys.readouterr().out
    assert "strata (--stratify regex:^([a-z]+)): c 20, twin 3" in out
    assert "declared groups (--group regex:(\\d)$): 10 groups of 23 cases" in out
    assert main(["check", str(data), "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["duplicates"]["families"] == 3 and found["cases"] == 23
    assert sorted(sorted(f["cases"]) for f in found["duplicates"]["family_list"])[0] == ["c003", "twin_of_003"]
    broken = _folder(tmp_path / "broken", ids, images)
    (broken / "images" / "c005.png").write_bytes(b"not a png")
    assert main(["check", str(broken)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "c005.png" in err[0]
    assert main(["check", str(tmp_path / "missing")]) == 2
    from nasseg.data.check import split_notes  # what the train and ablate headers print

    notes = split_notes(resolve_data(str(data)))
    assert notes[0] == "near-duplicates: 3 families (6 cases, phash64 <= 10 bits) kept on one side of the split"
    assert notes[1].startswith("warning: groups (patients, videos) are likely")


@pytest.mark.slow
def test_busi_default_split_keeps_every_family_on_one_side(shared_data):
    ds = load_dataset(resolve_data(str(shared_data / "busi_256")))
    rep = find_duplicates(ds)
    assert len(rep.families) >= 100 and rep.exact_groups == [["benign_433", "malignant_145"]]
    for seed in range(3):  # the default split (stratified by presence) and the diagnosis-stratified one
        for cfg in (SplitConfig(seed=seed), SplitConfig(seed=seed, stratify="regex:^([A-Za-z]+)")):
            s = split_dataset(ds, cfg)
            part = {c: p for p in PARTS for c in s[p]}
            assert all(len({part[c] for c in f.cases}) == 1 for f in rep.families)
            assert s["duplicates"]["straddling"] == 0 and s["duplicates"]["split"] == "group"


def test_resume_split_pins_the_split_a_study_recorded_before_grouping(tmp_path):
    from nasseg.data.splits import resume_split, split_hash

    ids, images = _planted(n=30, twins=(3, 7, 10))
    ds = _dataset(ids, images)
    cfg = SplitConfig(seed=3)
    before, now = split_dataset(ds, cfg, duplicates=False), split_dataset(ds, cfg)
    assert before["hash"] != now["hash"]  # the planted twins move
    pinned = resume_split(ds, cfg, lambda s: split_hash(s) == before["hash"], tmp_path)
    assert pinned.method == "file" and pinned.file == str(tmp_path / "split_before_duplicate_groups.json")
    again = split_dataset(ds, pinned)
    assert again["hash"] == before["hash"] and again["duplicates"]["straddling"] >= 1
    # read back, never rewritten; a study made since (or a new one) keeps its settings
    assert resume_split(ds, cfg, lambda s: split_hash(s) == before["hash"], tmp_path) == pinned
    assert resume_split(ds, cfg, lambda s: split_hash(s) == now["hash"], tmp_path) == cfg
    assert resume_split(ds, cfg, lambda s: False, tmp_path / "new") == cfg
    assert not (tmp_path / "new").exists()


@pytest.mark.slow
def test_an_ablation_created_before_grouping_resumes_on_its_split(tmp_path, monkeypatch):
    """Runs made with the old (ungrouped) split, then resumed: every run on one split."""
    import functools

    import optuna
    import yaml

    import nasseg.train.engine as engine
    from nasseg.ablation.config import load_ablation
    from nasseg.ablation.results import analyze
    from nasseg.ablation.runner import run_ablation

    data = _twins_folder(tmp_path / "data")
    arch = {"name": "tiny", "spatial_dims": 2, "in_channels": 1, "out_channels": 1,
            "stages": [{"width": 4, "block": {"type": "conv"}}, {"width": 8, "block": {"type": "conv"}}]}
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(arch))
    study = {"name": "legacy", "base": "tiny.yaml", "seeds": 2, "out_dir": str(tmp_path / "out"),
             "factors": {"skip": {"path": "stages.*.skip.type", "levels": ["concat", "skip_fusion"]}},
             "data": {"kind": "folder", "path": str(data), "split": {"seed": 0}},
             "train": {"epochs": 6, "lr": 0.01, "batch_size": 4, "device": "cpu", "num_threads": 1}}
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(study))
    cfg = load_ablation(tmp_path / "study.yaml")
    with monkeypatch.context() as m:  # the split as nasseg made it before families were grouped
        m.setattr(engine, "split_dataset", functools.partial(engine.split_dataset, duplicates=False))
        run_ablation(cfg, where="study.yaml", echo=lambda _: None, max_runs=2)
    lines: list[str] = []
    run_ablation(cfg, where="study.yaml", echo=lines.append)
    assert any(x.startswith("near-duplicates: 15 families (30 cases") and "not grouped" in x for x in lines)
    st = optuna.load_study(study_name="legacy", storage=cfg.storage_url())
    splits = {json.dumps(json.loads(p.read_text())["test"]) for p in (tmp_path / "out" / "runs").glob("*/split.json")}
    assert len(st.get_trials()) == 4 and len(splits) == 1
    assert (tmp_path / "out" / "split_before_duplicate_groups.json").is_file()
    assert analyze(st, cfg).runs["split_hash"].nunique() == 1


@pytest.mark.slow
def test_a_search_created_before_grouping_resumes_on_its_split(tmp_path, monkeypatch):
    """A search whose first trials used the old (ungrouped) split, resumed: the new trials use
    it too (the resumed process opens the study twice; the pinned split must pass both)."""
    import functools

    import yaml

    import nasseg.train.engine as engine
    from nasseg.search.runner import run_search

    data = _twins_folder(tmp_path / "data")
    study = {"name": "legacy_search", "data": {"kind": "folder", "path": str(data)},
             "space": str(Path(__file__).resolve().parents[1] / "search_spaces" / "quickstart_2d.yaml"), "objectives": ["dice", "params"],
             "budget": {"trials": 2}, "epochs": 2, "train": {"batch_size": 4, "lr": 0.01, "num_threads": 1},
             "seed": 0, "workers": 1, "device": "cpu", "output_dir": str(tmp_path / "out")}
    (tmp_path / "search.yaml").write_text(yaml.safe_dump(study))
    with monkeypatch.context() as m:  # the split as nasseg made it before families were grouped
        m.setattr(engine, "split_dataset", functools.partial(engine.split_dataset, duplicates=False))
        run_search(tmp_path / "search.yaml", progress=False, say=lambda *_: None)
    lines: list[str] = []
    run_search(tmp_path / "search.yaml", trials=4, progress=False, say=lines.append)
    assert any(x.startswith("near-duplicates: 15 families (30 cases") and "not grouped" in x for x in lines)
    splits = [json.loads(p.read_text()) for p in sorted((tmp_path / "out" / "trials").glob("*/split.json"))]
    assert len(splits) == 4 and len({json.dumps(s["test"]) for s in splits}) == 1
    assert [s["method"] for s in splits] == ["random", "random", "file", "file"]


def test_duplicates_ignore_turns_grouping_off_from_yaml_and_the_command_line(tmp_path, capsys):
    """``split.duplicates: ignore`` (``--duplicates ignore``) gives the ungrouped split, says so
    in split.json and in the run header; the default groups; a bad value names the field."""
    import yaml

    from nasseg.data import DataConfig
    from nasseg.data.check import split_notes
    from nasseg.errors import ConfigError

    data = _twins_folder(tmp_path / "data")
    ds = load_dataset(resolve_data(str(data)))
    seed = next(s for s in range(20) if split_dataset(ds, SplitConfig(seed=s), duplicates=False)
                ["duplicates"]["straddling"] > 0)
    (tmp_path / "data.yaml").write_text(yaml.safe_dump(
        {"kind": "folder", "path": str(data), "split": {"seed": seed, "duplicates": "ignore"}}))
    cfg = DataConfig.from_yaml(tmp_path / "data.yaml")
    assert cfg.split.duplicates == "ignore" and SplitConfig().duplicates == "group"
    off, on = split_dataset(ds, cfg.split), split_dataset(ds, SplitConfig(seed=seed))
    assert off["hash"] == split_dataset(ds, SplitConfig(seed=seed), duplicates=False)["hash"] != on["hash"]
    assert off["duplicates"]["split"] == "ignore" and not off["duplicates"]["grouped"]
    assert off["duplicates"]["straddling"] > 0 and "not grouped (split.duplicates: ignore)" in off["rule"]
    assert on["duplicates"]["split"] == "group" and on["duplicates"]["straddling"] == 0
    assert split_notes(cfg)[0] == (f"near-duplicates: 15 families (30 cases, phash64 <= 10 bits) not grouped "
                                   f"(split.duplicates: ignore); {off['duplicates']['straddling']} families "
                                   "cross train/val/test")
    with pytest.raises(ConfigError, match="duplicates"):
        resolve_data(str(data), duplicates="off")
    arch = tmp_path / "tiny.yaml"
    arch.write_text(yaml.safe_dump({"name": "tiny", "spatial_dims": 2, "in_channels": 1, "out_channels": 1,
                                    "stages": [{"width": 4, "block": {"type": "conv"}},
                                               {"width": 8, "block": {"type": "conv"}}]}))
    run = tmp_path / "run"
    assert main(["train", str(arch), "--data", str(data), "--duplicates", "ignore", "--split-seed", str(seed),
                 "--epochs", "1", "--threads", "1", "--device", "cpu", "--run-dir", str(run), "--no-progress"]) == 0
    assert "not grouped (split.duplicates: ignore)" in capsys.readouterr().out
    written = json.loads((run / "split.json").read_text())
    assert written["hash"] == off["hash"] and written["duplicates"]["split"] == "ignore"
    assert json.loads((run / "config.json").read_text())["data"]["split"]["duplicates"] == "ignore"


def test_bench_record_draws_families_whole_and_keeps_old_tables_on_their_split(tmp_path):
    from nasseg.bench.record import RecordConfig, _recorded_split, record, three_way_split
    from nasseg.errors import ConfigError

    data = _twins_folder(tmp_path / "data")
    ds = load_dataset(resolve_data(str(data)))
    twins = [(f"s{i:02d}", f"s{i:02d}_twin") for i in range(0, 30, 2)]
    crossed = 0
    for seed in range(5):
        cfg = RecordConfig(data=str(data), n_train=20, n_val=10, n_test=10, split_seed=seed)
        s = _recorded_split(ds, cfg)
        part = {c: p for p in PARTS for c in s[p]}
        assert [len(s[p]) for p in PARTS] == [20, 10, 10] and s["duplicates"]["straddling"] == 0
        assert all(part.get(a) == part.get(b) for a, b in twins)
        old = _recorded_split(ds, RecordConfig(data=str(data), n_train=20, n_val=10, n_test=10, split_seed=seed,
                                               duplicates="ignore"))
        assert old == {**three_way_split(list(ds.case_ids), 20, 10, 10, seed),
                       "duplicates": {**s["duplicates"], "split": "ignore", "grouped": False,
                                      "straddling": old["duplicates"]["straddling"]}}
        crossed += old["duplicates"]["straddling"]
    assert crossed > 0
    # a table recorded before the setting existed continues only with its own split
    out = tmp_path / "table"
    out.mkdir()
    before = RecordConfig(data=str(data), space="space.yaml", out=str(out))
    identity = {k: v for k, v in before.identity().items() if k != "duplicates"}
    (out / f"{before.name}.json").write_text(json.dumps({"config": {"identity": identity}}))
    with pytest.raises(ConfigError, match="recorded with duplicates: ignore; continue it with --duplicates ignore"):
        record(before)
