"""Fault injection, data: stray mask values, declared labels, all-empty masks, channel mismatch.

Issue 10, case 1: one stray pixel of 7 in one {0, 1} mask used to turn a dataset into 8
classes whose absent classes scored Dice 1.0; all-empty masks trained silently.
"""
from __future__ import annotations

import logging

import pytest
from faults import FAST, TINY_ARCH, mask_folder
from torch import nn

from nasseg.arch import load_arch
from nasseg.cli import main
from nasseg.data import load_dataset, resolve_data
from nasseg.errors import ConfigError, DataError
from nasseg.train import TrainConfig, train


def _load(root, **kw):
    return load_dataset(resolve_data(str(root), **kw), cache=False)


def test_stray_value_is_an_error_naming_the_file_and_value(tmp_path):
    root = mask_folder(tmp_path / "d", stray={3: 7})
    with pytest.raises(DataError, match=r"masks/c3\.png: mask value 7 \(1 pixel, in 1 of 8 masks\) is not a "
                                        r"class index next to 0\.\.1: declare .*unknown_labels: background"):
        _load(root)


def test_stray_value_outside_declared_labels_is_an_error(tmp_path):
    root = mask_folder(tmp_path / "d", stray={5: 2})
    with pytest.raises(DataError, match=r"c5\.png: mask value 2 .* not one of the declared labels 0\.\.1"):
        _load(root, labels=["background", "nucleus"])


def test_opt_in_maps_unknown_values_to_background_with_one_warning(tmp_path, caplog):
    root = mask_folder(tmp_path / "d", stray={3: 7, 4: 7})
    with caplog.at_level(logging.WARNING, logger="nasseg"):
        ds = _load(root, unknown_labels="background", labels=["background", "nucleus"])
    assert ds.num_classes == 2 and ds.class_names == ["background", "nucleus"]
    assert int(ds.labels.max()) == 1 and int(ds.labels[3, 0, 0]) == 0
    mapped = [r.getMessage() for r in caplog.records if "mapped to background" in r.getMessage()]
    assert len(mapped) == 1 and "7: 2 px in 2/8 masks" in mapped[0]


def test_inferred_classes_are_reported_once_with_counts(tmp_path, caplog):
    root = mask_folder(tmp_path / "d", stray={0: 2})  # {0, 1, 2} is contiguous: three classes
    with caplog.at_level(logging.WARNING, logger="nasseg"):
        ds = _load(root)
    assert ds.num_classes == 3
    reports = [r.getMessage() for r in caplog.records if "inferred" in r.getMessage()]
    assert len(reports) == 1 and "2: 1 px in 1/8 masks" in reports[0] and "declare `labels:`" in reports[0]


def test_all_empty_masks_are_refused_for_training(tmp_path):
    root = mask_folder(tmp_path / "d", empty=True)
    with pytest.raises(DataError, match=r"all \d+ training masks are empty \(no foreground pixel\)"):
        train(load_arch(TINY_ARCH), resolve_data(str(root)), TrainConfig(epochs=1, **FAST), progress=False)


def test_stray_mask_on_the_command_line_is_one_line_exit_2(tmp_path, capsys):
    root = mask_folder(tmp_path / "d", stray={3: 7})
    code = main(["train", "cmunext_s", "--data", str(root), "--epochs", "1", "--no-progress",
                 "--run-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith(f"nasseg: error: {root}/masks/c3.png: mask value 7")
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_channel_conversion_is_printed_never_silent(tmp_path, caplog):
    root = mask_folder(tmp_path / "rgb", rgb=True)
    with caplog.at_level(logging.WARNING, logger="nasseg"):
        res = train(load_arch(TINY_ARCH), resolve_data(str(root)), TrainConfig(epochs=1, **FAST), progress=False)
    assert res.config["arch"]["in_channels"] == 3
    assert any("tiny: network converted to fit the data: in_channels 1 -> 3 (RGB images)" in r.getMessage()
               for r in caplog.records)


def test_ready_module_with_other_channels_is_an_error(tmp_path):
    root = mask_folder(tmp_path / "rgb", rgb=True)
    with pytest.raises(ConfigError, match="first convolution takes 1 channels but the data .* has 3"):
        train(nn.Conv2d(1, 1, 3, padding=1), resolve_data(str(root)), TrainConfig(epochs=1, **FAST), progress=False)
