"""The CUDA training path, checked on the CPU: nothing in a step reads a value back to the host.

A read-back (``.item()``, ``float(t)``, ``bool(t)``, ``.tolist()``) or an op with a
data-dependent output shape (``nonzero``) makes the CPU wait for the GPU. Each shows up
as an ATen op (``_local_scalar_dense``, ``nonzero``) that a ``TorchDispatchMode`` sees on
the CPU exactly as on CUDA, so these tests count them around the real step, feeder and
epoch code.
"""
from __future__ import annotations

import contextlib

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from nasseg.data import AugmentConfig, BatchFeeder, load_dataset
from nasseg.train import TrainConfig, train
from nasseg.train.engine import _optimizer, _train_epoch, train_step
from nasseg.train.losses import SegLoss
from nasseg.train.progress import Progress
from nasseg.train.result import RunWriter
from nasseg.train.setup import Runtime
from tests.test_train_engine import FAST, _data, tiny_arch

HOST_READS = {"_local_scalar_dense", "nonzero", "masked_select", "unique", "_unique2"}


class HostReads(TorchDispatchMode):
    """Counts the ATen ops that wait for the device's result on the host."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name in HOST_READS:
            self.seen.append(name)
        return func(*args, **(kwargs or {}))


def _net(deep_supervision: bool = True) -> torch.nn.Module:
    from nasseg.arch import build_model

    return build_model(tiny_arch(deep_supervision=deep_supervision))


@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
@pytest.mark.parametrize("scaled", [False, True])
def test_train_step_reads_nothing_back(optimizer, scaled):
    torch.manual_seed(0)
    model = _net()
    cfg = TrainConfig(optimizer=optimizer, max_grad_norm=1.0, **FAST)
    opt, sched = _optimizer(model, cfg, total_steps=10)
    assert opt.defaults["fused"] is True  # fused also on the CPU in this torch
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 8) if scaled else None
    x, y = torch.randn(2, 1, 16, 16), torch.randint(0, 2, (2, 16, 16))
    before = [p.detach().clone() for p in model.parameters()]
    for _ in range(2):  # the second step too: optimiser state exists then
        with HostReads() as reads:
            loss = train_step(model, x, y, SegLoss(1), opt, sched, scaler, contextlib.nullcontext, 1.0)
        assert reads.seen == []
    assert loss.device == x.device and not loss.requires_grad and loss.ndim == 0
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_an_unfused_optimiser_would_be_caught():
    """The counter is not blind: the foreach AdamW reads its step count on the host."""
    model = _net(deep_supervision=False)
    opt = torch.optim.AdamW(model.parameters(), foreach=True)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    x, y = torch.randn(2, 1, 16, 16), torch.randint(0, 2, (2, 16, 16))
    with HostReads() as reads:
        train_step(model, x, y, SegLoss(1), opt, sched, None)
    assert "_local_scalar_dense" in reads.seen


def test_whole_case_batches_are_drawn_without_host_reads():
    ds = load_dataset(_data(n_cases=11))
    feeder = BatchFeeder(ds, 4, AugmentConfig(intensity=0.1), seed=3)
    with HostReads() as reads:
        batches = list(feeder.epoch())
    assert reads.seen == []
    assert [b[0].shape[0] for b in batches] == [4, 4, 3] and batches[0][1].dtype == torch.long
    again = BatchFeeder(ds, 4, AugmentConfig(intensity=0.1), seed=3)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batches, again.epoch()))  # seeded


def test_an_epoch_reads_the_losses_once_when_checks_wait_for_the_epoch():
    """With CUDA's setting (check_interval 0) an epoch of 4 steps reads back once, at its end."""
    ds = load_dataset(_data(n_cases=16))
    model = _net(deep_supervision=False)
    cfg = TrainConfig(**FAST)
    opt, sched = _optimizer(model, cfg, total_steps=8)
    rt = Runtime(torch.device("cpu"), None, True, 0, torch.get_num_threads())
    feeder = BatchFeeder(ds, 4, AugmentConfig(), seed=0)
    with HostReads() as reads, Progress(False, 1, len(feeder)) as bar:
        losses, n = _train_epoch(model, feeder, SegLoss(1), opt, sched, None, cfg, rt,
                                 torch.channels_last, 1, [], bar)
    assert len(losses) == 4 and n == 16
    assert reads.seen == ["_local_scalar_dense"]


def test_checkpoint_written_once_with_the_best_weights(tmp_path, monkeypatch):
    saved = []
    real = RunWriter.checkpoint
    monkeypatch.setattr(RunWriter, "checkpoint", lambda self, payload: (saved.append(payload), real(self, payload)))
    res = train(tiny_arch(), _data(), TrainConfig(epochs=3, **FAST), run_dir=tmp_path, progress=False)
    assert len(saved) == 1 and saved[0]["epoch"] == res.best_epoch
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert all(torch.equal(ckpt["model"][k], v) for k, v in res.model.state_dict().items())
    cfg = res.config["resolved"]
    assert cfg["fused_optimizer"] is True and cfg["compile"] is False


@pytest.mark.slow
def test_compiled_training_runs(tmp_path):
    res = train(tiny_arch(), _data(), TrainConfig(epochs=1, compile=True, **FAST), progress=False)
    assert res.config["resolved"]["compile"] is True and 0 <= res.best["dice"] <= 1
