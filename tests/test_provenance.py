"""Provenance: git state, command line, a content hash of the data stable across machines."""
from __future__ import annotations

import shutil

from nasseg.data import resolve_data
from nasseg.data.identity import files_identity
from nasseg.versions import data_hash, provenance, versions


def _folder(root):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(3):
        (root / "images" / f"c{i}.png").write_bytes(b"x" * (10 + i))
        (root / "masks" / f"c{i}.png").write_bytes(b"y" * (20 + i))
    return root


def test_data_hash_depends_on_names_sizes_and_bytes_not_on_the_location(tmp_path):
    a = _folder(tmp_path / "a" / "busi")
    b = tmp_path / "elsewhere" / "copy"
    shutil.copytree(a, b)
    h = data_hash(resolve_data(str(a)))
    assert len(h) == 16 and h == data_hash(resolve_data(str(b)))
    (b / "masks" / "c1.png").write_bytes(b"y" * 99)  # one file changed size
    assert data_hash(resolve_data(str(b))) != h
    shutil.rmtree(b)
    shutil.copytree(a, b)
    (b / "masks" / "c1.png").write_bytes(b"z" * 21)  # same size, other bytes
    assert data_hash(resolve_data(str(b))) != h
    assert data_hash(resolve_data("synthetic")) != data_hash(resolve_data("synthetic", n_cases=10))


def test_provenance_fields_and_git_state():
    prov = provenance(data=resolve_data("synthetic"), split={"train": ["a"], "val": ["b"], "test": ["c"]},
                      seeds=[0, 1], threads=1)
    assert set(prov) == {"versions", "command", "data_hash", "split_hash", "seeds", "threads", "deterministic"}
    assert prov["seeds"] == [0, 1] and prov["threads"] == 1 and len(prov["split_hash"]) == 12
    assert "deterministic_algorithms" in prov["deterministic"]
    ver = versions()
    if "git_commit" in ver:  # running from a checkout
        assert len(ver["git_commit"]) == 40 and ver["git_dirty"] in ("yes", "no")


def test_study_runs_use_a_fixed_thread_count_when_auto():
    from types import SimpleNamespace

    from nasseg.runs import STUDY_THREADS, train_and_record
    from nasseg.train import TrainConfig, TrainingFailed

    seen = []

    def trainer(arch, data, cfg, **kw):
        seen.append(cfg.num_threads)
        raise TrainingFailed("stop here")

    writer = SimpleNamespace(set=lambda **kw: None)
    for threads, expected in (("auto", STUDY_THREADS), (2, 2)):
        run = train_and_record(writer, None, None, TrainConfig(num_threads=threads), trainer=trainer)
        assert not run.ok and seen[-1] == expected


def test_a_record_written_before_the_runs_states_the_flags_the_runs_set():
    """A study's provenance is written before any run switches determinism on: with the
    device it states what each run sets (deterministic algorithms on the CPU), not the
    flags of the process at that moment; the runs' own records hold the flags they ran with."""
    import torch

    from nasseg.train import TrainConfig
    from nasseg.train.setup import Runtime

    assert not torch.are_deterministic_algorithms_enabled()
    assert provenance()["deterministic"]["deterministic_algorithms"] is False
    planned = provenance(device="cpu")["deterministic"]
    assert planned["deterministic_algorithms"] is True and planned["set_by"] == "each training run on cpu"
    rt = Runtime.create(TrainConfig(device="cpu"))
    try:
        assert provenance()["deterministic"]["deterministic_algorithms"] is True
    finally:
        rt.close()
    assert not torch.are_deterministic_algorithms_enabled()


def test_one_dataset_identity_for_provenance_and_the_preprocessing_cache(tmp_path):
    """The preprocessed-volume cache is keyed by the same identity as the provenance hash."""
    import nasseg.data.preprocess as pre

    root = _folder(tmp_path / "d")
    files = sorted(p for p in root.rglob("*.png"))
    assert files_identity(files, root) == data_hash(resolve_data(str(root)))
    assert not hasattr(pre, "fingerprint")  # the second hash is gone
