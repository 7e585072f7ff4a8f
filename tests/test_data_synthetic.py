"""The synthetic default dataset: shapes, classes, determinism, content."""
from __future__ import annotations

import torch

from nasseg.data import load_dataset, resolve_data


def _make(**kw):
    return load_dataset(resolve_data("synthetic", **kw), cache=False)


def test_2d_binary_shapes_and_labels():
    ds = _make(n_cases=6, size=32)
    assert tuple(ds.images.shape) == (6, 1, 32, 32) and tuple(ds.labels.shape) == (6, 32, 32)
    assert ds.case_ids[0] == "synth_0000" and ds.num_classes == 2 and ds.out_channels == 1
    for i in range(6):  # every case holds a lesion, none is all lesion
        assert 0 < float(ds.labels[i].float().mean()) < 0.6


def test_deterministic_for_a_seed_and_independent_of_n_cases():
    a, b = _make(n_cases=4, size=32, seed=7), _make(n_cases=6, size=32, seed=7)
    assert torch.equal(a.images, b.images[:4]) and torch.equal(a.labels, b.labels[:4])
    c = _make(n_cases=4, size=32, seed=8)
    assert not torch.equal(a.labels, c.labels)


def test_multiclass_3d_and_channels():
    ds = _make(n_cases=6, size=16, spatial_dims=3, classes=3, channels=2)
    assert tuple(ds.images.shape) == (6, 2, 16, 16, 16) and ds.num_classes == 4 and ds.out_channels == 4
    assert set(ds.labels.unique().tolist()) <= {0, 1, 2, 3} and len(ds.labels.unique()) >= 3


def test_lesions_differ_from_background_but_not_by_intensity_alone():
    ds = _make(n_cases=24, size=48)
    x, y = ds.images[:, 0], ds.labels.bool()
    # lesions are brighter or darker than their background, so |z| is larger inside them on average ...
    assert float(x[y].abs().mean()) > float(x[~y].abs().mean())
    # ... but a per-pixel intensity threshold cannot segment them: distractors and noise overlap
    dice = [float(2 * ((x.abs() > t) & y).sum() / ((x.abs() > t).sum() + y.sum())) for t in torch.linspace(0.2, 3, 15)]
    assert max(dice) < 0.4
