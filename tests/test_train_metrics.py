"""Per-case Dice/IoU/HD95, the empty-mask conventions, and the losses."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nasseg.train import SegLoss, case_metrics, hd95, summarise
from nasseg.train.losses import soft_dice_loss
from nasseg.train.metrics import predict_labels


def _box(shape, sl):
    m = np.zeros(shape, bool)
    m[sl] = True
    return m


def test_dice_and_iou_known_values():
    pred = torch.zeros(2, 4, 4, dtype=torch.long)
    label = torch.zeros(2, 4, 4, dtype=torch.long)
    pred[0, :2], label[0, :1] = 1, 1  # 8 predicted, 4 true, 4 overlap
    pred[1, 0, 0], label[1, 3, 3] = 1, 1  # disjoint
    rows = case_metrics(pred, label, 2, ["a", "b"])
    assert [r["case_id"] for r in rows] == ["a", "b"] and all(r["class"] == 1 for r in rows)
    assert rows[0]["dice"] == pytest.approx(2 * 4 / 12) and rows[0]["iou"] == pytest.approx(4 / 8)
    assert rows[1]["dice"] == 0.0 and rows[1]["iou"] == 0.0
    assert rows[1]["hd95"] == pytest.approx(math.sqrt(18))


def test_empty_conventions():
    empty = torch.zeros(1, 6, 8, dtype=torch.long)
    some = empty.clone()
    some[0, 2:4, 2:4] = 1
    both = case_metrics(empty, empty, 2, ["e"])[0]
    assert (both["dice"], both["iou"], both["hd95"]) == (1.0, 1.0, 0.0)
    for pred, label in ((empty, some), (some, empty)):
        one = case_metrics(pred, label, 2, ["x"])[0]
        assert (one["dice"], one["iou"]) == (0.0, 0.0)
        assert one["hd95"] == pytest.approx(10.0)  # the image diagonal sqrt(6^2 + 8^2)
        assert one["nsd"] == 0.0
    mm = case_metrics(empty, some, 2, ["x"], spacing=[(0.5, 0.5)])[0]
    assert mm["hd95"] == pytest.approx(5.0)  # the diagonal in mm


def test_hd95_known_distances_2d_and_3d():
    a = _box((20, 20), np.s_[5:10, 5:10])
    assert hd95(a, a) == 0.0
    assert hd95(a, _box((20, 20), np.s_[5:10, 8:13])) == pytest.approx(3.0)
    # symmetric, and the larger directed percentile wins: a small blob inside a large one
    big, small = _box((30, 30), np.s_[5:25, 5:25]), _box((30, 30), np.s_[14:16, 14:16])
    assert hd95(big, small) == hd95(small, big) > 8
    cube = _box((12, 12, 12), np.s_[2:6, 2:6, 2:6])
    assert hd95(cube, _box((12, 12, 12), np.s_[2:6, 2:6, 4:8])) == pytest.approx(2.0)
    # border-touching objects are handled (bounding-box crop is exact)
    edge = _box((10, 10), np.s_[0:3, 0:10])
    assert hd95(edge, _box((10, 10), np.s_[0:4, 0:10])) == pytest.approx(1.0)


def test_multiclass_rows_and_summary():
    label = torch.tensor([[0, 1, 1, 2, 2, 0]])
    pred = torch.tensor([[0, 1, 1, 0, 0, 0]])  # class 1 perfect, class 2 missed
    rows = case_metrics(pred, label, 3, ["v"], hausdorff=False)
    assert [(r["class"], r["dice"]) for r in rows] == [(1, 1.0), (2, 0.0)]
    s = summarise(rows, 3)
    assert s["dice_1"] == 1.0 and s["dice_2"] == 0.0 and s["dice"] == 0.5 and math.isnan(s["hd95"])
    per_class = {f"{m}_{c}" for m in ("dice", "iou", "hd95", "assd", "nsd") for c in (1, 2)}
    assert set(s) == {"dice", "iou", "hd95", "assd", "nsd", "dice_pooled", "n_empty_pred", "n_empty_label",
                      *per_class}
    assert s["n_empty_pred"] == 1 and s["n_empty_label"] == 0
    assert set(summarise(rows[:1], 2)) >= {"dice", "iou", "hd95", "dice_pooled"}


def test_pooled_dice_beside_the_case_mean():
    pred = torch.zeros(2, 4, 4, dtype=torch.long)
    label = torch.zeros(2, 4, 4, dtype=torch.long)
    pred[0, :2], label[0, :1] = 1, 1  # 8 predicted, 4 true, 4 overlap: Dice 2/3
    pred[1, 0, 0], label[1, 0, :2] = 1, 1  # 1 predicted, 2 true, 1 overlap: Dice 2/3
    s = summarise(case_metrics(pred, label, 2, ["a", "b"], hausdorff=False), 2)
    assert s["dice_pooled"] == pytest.approx(2 * 5 / 15) and s["dice"] == pytest.approx(2 / 3)


def _onehot(mask: np.ndarray) -> torch.Tensor:
    m = torch.from_numpy(mask.astype(np.float32))
    return torch.stack([1 - m, m])[None]


def test_distances_in_mm_equal_monai_with_anisotropic_spacing():
    from monai.metrics import compute_average_surface_distance, compute_hausdorff_distance, compute_surface_dice

    rng = np.random.default_rng(0)
    spacing = (1.0, 1.0, 3.0)
    for _ in range(4):
        a = np.zeros((24, 20, 12), bool)
        b = np.zeros_like(a)
        a[rng.integers(2, 8):rng.integers(12, 22), rng.integers(1, 6):rng.integers(10, 19), rng.integers(0, 4):rng.integers(6, 12)] = True
        b[rng.integers(3, 9):rng.integers(14, 24), rng.integers(2, 7):rng.integers(9, 18), rng.integers(1, 5):rng.integers(7, 12)] = True
        a[rng.random(a.shape) < 0.02] = True  # ragged surfaces
        row = case_metrics(torch.from_numpy(a[None]).long(), torch.from_numpy(b[None]).long(), 2, ["x"],
                           spacing=[spacing], tolerance=2.0)[0]
        pa, pb = _onehot(a), _onehot(b)
        assert row["hd95"] == pytest.approx(float(compute_hausdorff_distance(pa, pb, percentile=95, spacing=spacing)), rel=1e-6)  # MONAI returns float32
        assert row["assd"] == pytest.approx(float(compute_average_surface_distance(pa, pb, symmetric=True, spacing=spacing)), rel=1e-6)  # MONAI returns float32
        assert row["nsd"] == pytest.approx(float(compute_surface_dice(pa, pb, [2.0], spacing=spacing)), rel=1e-6)  # MONAI returns float32
        assert row["hd95"] != pytest.approx(hd95(a, b))  # the spacing matters


def test_monai_empty_convention_and_counts():
    empty = torch.zeros(1, 6, 8, dtype=torch.long)
    some = empty.clone()
    some[0, 2:4, 2:4] = 1
    rows = case_metrics(torch.cat([empty, some, empty]), torch.cat([empty, empty, some]), 2, ["b", "p", "l"],
                        empty="monai")
    assert all(math.isnan(r["hd95"]) for r in rows)
    assert math.isnan(rows[0]["dice"]) and math.isnan(rows[1]["dice"]) and rows[2]["dice"] == 0.0
    assert math.isnan(rows[0]["nsd"]) and rows[1]["nsd"] == 0.0 == rows[2]["nsd"]
    s = summarise(rows, 2)
    assert s["dice"] == 0.0 and s["n_empty_pred"] == 2 and s["n_empty_label"] == 2


def test_predict_labels_binary_and_multiclass():
    assert predict_labels(torch.tensor([[[-1.0, 0.0, 2.0]]])).tolist() == [[0, 0, 1]]
    logits = torch.tensor([[[1.0, 0.0], [0.0, 3.0], [2.0, 1.0]]])  # [B=1, K=3, S=2]
    assert predict_labels(logits).tolist() == [[2, 1]]


def test_losses_binary_multiclass_and_deep_supervision():
    target = torch.zeros(2, 8, 8, dtype=torch.long)
    target[:, 2:6, 2:6] = 1
    perfect = (target[:, None].float() * 2 - 1) * 20
    loss = SegLoss(1, ce_weight=0.5, dice_weight=1.0)
    assert float(loss(perfect, target)) < 1e-3 and float(loss(-perfect, target)) > 1.0
    assert float(soft_dice_loss(torch.zeros(1, 1, 4), torch.ones(1, 1, 4))) == pytest.approx(1.0, abs=1e-5)
    # CE + Dice over foreground classes
    onehot = torch.nn.functional.one_hot(target, 3).movedim(-1, 1).float() * 30
    assert float(SegLoss(3)(onehot, target)) < 1e-3
    # deep supervision: halving weights, targets downsampled to each head
    heads = [perfect, -perfect[:, :, ::2, ::2]]
    ds = SegLoss(1, ds_weights=None)
    assert ds.head_weights(3) == pytest.approx([4 / 7, 2 / 7, 1 / 7])
    one = SegLoss(1)
    expected = 2 / 3 * one.single(perfect, target) + 1 / 3 * one.single(heads[1], target[:, ::2, ::2])
    assert float(ds(heads, target)) == pytest.approx(float(expected), rel=1e-5)
    assert SegLoss(1, ds_weights=[1.0]).head_weights(3) == [1.0, 0.0, 0.0]
