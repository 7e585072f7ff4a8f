"""Fault injection, mask values: only classes under the encoding, never a silent threshold.

Issue 20: a stray value 128 in a 0/255 mask was thresholded into the lesion class without a
word (``mask_encoding: auto``), although the README promises an error naming the file and
the value. Masks resized with interpolation (dsb2018_96: 251 grey levels on object edges in
all 670 masks) must still load.
"""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from nasseg.cli import main
from nasseg.data import load_dataset, resolve_data
from nasseg.errors import DataError


def _folder(root, n: int = 8, size: int = 16, *, interpolated: bool = False):
    """``n`` cases with 0/255 masks; ``interpolated`` draws each mask at 4x and resizes it
    down bilinearly, as dsb2018_96 was made, leaving grey values on the edges."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        Image.fromarray((rng.random((size, size)) * 255).astype(np.uint8)).save(root / "images" / f"c{i}.png")
        big = size * 4 if interpolated else size
        mask = np.zeros((big, big), np.uint8)
        yy, xx = np.mgrid[:big, :big]
        mask[(yy - big * (0.3 + 0.05 * i)) ** 2 + (xx - big / 2) ** 2 < (big / 5) ** 2] = 255
        im = Image.fromarray(mask)
        if interpolated:
            im = im.resize((size, size), Image.BILINEAR)
        im.save(root / "masks" / f"c{i}.png")
    return root


def _stray(root, case: int, value: int, box: tuple[slice, slice]):
    path = root / "masks" / f"c{case}.png"
    mask = np.asarray(Image.open(path)).copy()
    mask[box] = value
    Image.fromarray(mask).save(path)
    return path


def _load(root, **kw):
    return load_dataset(resolve_data(str(root), **kw), cache=False)


@pytest.mark.parametrize("box,pixels,why", [
    ((slice(0, 1), slice(0, 1)), "1 pixel", "grey values are in 1 of 8 masks at 1 level"),
    ((slice(10, 14), slice(0, 4)), "16 pixels", "it fills a region of its own"),
])
def test_a_stray_128_in_a_0_255_mask_is_refused_naming_file_value_and_count(tmp_path, box, pixels, why):
    root = _folder(tmp_path / "d")
    path = _stray(root, 3, 128, box)
    with pytest.raises(DataError) as err:
        _load(root)
    assert str(err.value).startswith(f"{path}: mask value 128 ({pixels}, in 1 of 8 masks) is not a class of "
                                     "0/255 masks (0 = background, 255 = foreground)")
    assert why in str(err.value) and "mask_encoding: binary255" in str(err.value)


def test_a_stray_value_on_the_command_line_is_one_line_exit_2(tmp_path, capsys):
    root = _folder(tmp_path / "d")
    path = _stray(root, 5, 128, (slice(0, 2), slice(0, 2)))
    code = main(["train", "cmunext_s", "--data", str(root), "--epochs", "1", "--threads", "1", "--no-progress",
                 "--run-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith(f"nasseg: error: {path}: mask value 128 (4 pixels, in 1 of 8 masks)")


def test_stating_binary255_binarises_every_value(tmp_path):
    root = _folder(tmp_path / "d")
    _stray(root, 3, 128, (slice(0, 1), slice(0, 1)))
    ds = _load(root, mask_encoding="binary255")
    assert int(ds.labels[3, 0, 0]) == 1 and ds.num_classes == 2


def test_masks_resized_with_interpolation_still_load_binarised_at_127(tmp_path):
    root = _folder(tmp_path / "d", interpolated=True)
    raw = np.stack([np.asarray(Image.open(root / "masks" / f"c{i}.png")) for i in range(8)])
    assert len(set(np.unique(raw).tolist()) - {0, 255}) >= 8  # the resize left many grey levels
    ds = _load(root)
    assert ds.info["mask_encoding"] == "binary255"
    assert np.array_equal(ds.labels.numpy(), (raw > 127).astype(np.uint8))
