"""Trials per device: memory admission on a simulated device (CPU), shared by threads and processes."""
from __future__ import annotations

import multiprocessing as mp
import random
import threading
import time

import pytest

from nasseg.search.admission import Admission, Ticket, needs_alone_retry, trial_memory_mb, trial_run
from nasseg.search.objective import Outcome


def test_admission_never_exceeds_the_budget_or_the_slots(tmp_path):
    adm = Admission(tmp_path / "ledger.json", capacity_mb=1000, slots=3, poll_s=0.005)
    rng = random.Random(0)
    needs = [rng.choice([100, 250, 400, 700, 1500]) for _ in range(24)]  # 1500: larger than the device
    seen: list[tuple[int, float, float]] = []
    lock = threading.Lock()

    def trial(i: int) -> None:
        with adm.admitted("cuda:0", i, needs[i]):
            count, mb = adm.usage("cuda:0")
            with lock:
                seen.append((count, mb, needs[i]))
            time.sleep(0.01)

    threads = [threading.Thread(target=trial, args=(i,)) for i in range(len(needs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == len(needs)
    for count, mb, need in seen:
        assert count <= 3
        assert mb <= 1000 or (count == 1 and need > 1000)  # an oversized trial only alone
    assert max(c for c, _, _ in seen) >= 2  # it does pack several trials
    assert adm.usage("cuda:0") == (0, 0.0)


def test_a_trial_marked_alone_waits_for_an_empty_device_and_blocks_newcomers(tmp_path):
    adm = Admission(tmp_path / "ledger.json", capacity_mb=1000, slots=4, poll_s=0.005)
    first = adm.try_acquire("cuda:0", 1, 100)
    assert first is not None
    assert adm.try_acquire("cuda:0", 2, 100, alone=True) is None  # registered as waiting
    assert adm.try_acquire("cuda:0", 3, 100) is None  # newcomers wait behind it
    assert adm.try_acquire("cuda:1", 4, 100) is not None  # other devices are not affected
    adm.release(first)
    alone = adm.try_acquire("cuda:0", 2, 100, alone=True)
    assert alone is not None and adm.usage("cuda:0") == (1, 100.0)
    assert adm.try_acquire("cuda:0", 3, 100) is None
    adm.release(alone)
    assert adm.try_acquire("cuda:0", 3, 100) is not None


def test_acquire_times_out_and_leaves_nothing_behind(tmp_path):
    adm = Admission(tmp_path / "ledger.json", capacity_mb=100, slots=1, poll_s=0.005)
    held = adm.acquire("cpu", 1, 50)
    with pytest.raises(TimeoutError, match="no room on cpu for trial 2"):
        adm.acquire("cpu", 2, 50, alone=True, timeout_s=0.05)
    adm.release(held)
    assert adm.usage("cpu") == (0, 0.0)


def _hold(path: str, ready) -> None:
    Admission(path, capacity_mb=100, slots=1).acquire("cuda:0", 7, 90)
    ready.set()
    time.sleep(60)


def test_a_dead_workers_room_is_freed(tmp_path):
    ctx = mp.get_context("fork")
    ready = ctx.Event()
    proc = ctx.Process(target=_hold, args=(str(tmp_path / "ledger.json"), ready))
    proc.start()
    try:
        assert ready.wait(30)
        adm = Admission(tmp_path / "ledger.json", capacity_mb=100, slots=1)
        assert adm.usage("cuda:0") == (1, 90.0) and adm.try_acquire("cuda:0", 8, 50) is None
    finally:
        proc.kill()
        proc.join()
    assert isinstance(adm.try_acquire("cuda:0", 8, 50), Ticket)


def test_a_trials_need_is_the_cost_estimate_at_the_training_batch_and_size():
    from nasseg.arch import load_arch
    from nasseg.cost import estimate_train_memory_mb
    from nasseg.data import resolve_data
    from nasseg.train import TrainConfig

    arch = load_arch("cmunext_s")
    run = trial_run(arch, resolve_data("synthetic", size=64), TrainConfig(batch_size=4), "cpu")
    assert (run.batch_size, run.input_shape, run.precision) == (4, (1, 64, 64), "fp32")  # the data's channels
    need = trial_memory_mb(arch, run)
    gray = arch.model_copy(update={"in_channels": 1})
    assert need == estimate_train_memory_mb(gray, (4, 1, 64, 64))
    assert need < estimate_train_memory_mb(gray, (4, 1, 256, 256))


def test_a_3d_trials_need_is_counted_at_the_planned_batch_and_patch(tmp_path):
    """Admission counted cfg.batch_size (8) at the data's patch setting; training used the
    plan's batch and patch. Now both come from the one resolved run."""
    from nasseg.arch import load_arch
    from nasseg.cost import estimate_train_memory_mb
    from nasseg.data import resolve_data
    from nasseg.train import TrainConfig
    from tests.test_data_volumetric import write_decathlon
    from tests.test_resolved_run import TINY3D

    root = write_decathlon(tmp_path / "d", n=4, shape=(20, 22, 8))
    arch = load_arch(TINY3D)
    run = trial_run(arch, resolve_data(str(root)), TrainConfig(), "cpu")
    assert run.plan is not None and run.batch_size == run.plan.batch_size != TrainConfig().batch_size
    assert trial_memory_mb(arch, run) == estimate_train_memory_mb(arch, (run.batch_size, 2, *run.plan.patch_size))


@pytest.mark.parametrize(("reason", "retry"), [
    ("CUDA out of memory at epoch 1 (batch 8, patch (64, 64), 1,000 parameters)", True),
    ("OutOfMemoryError: simulated", True),
    # the CPU allocator's words: admission's own marker list missed them (one check now)
    ("RuntimeError: DefaultCPUAllocator: can't allocate memory: you tried to allocate 8 GB", True),
    ("non-finite loss at epoch 3", False), (None, False),
])
def test_a_trial_that_ran_out_of_memory_is_retried_alone_once(reason, retry):
    """The retry reads the stored reason with nasseg.errors.is_out_of_memory, the one OOM check."""
    assert needs_alone_retry(Outcome("fail", reason=reason), alone=False) is retry
    assert not needs_alone_retry(Outcome("fail", reason=reason), alone=True)
    assert not needs_alone_retry(Outcome("complete", [0.5], reason=reason), alone=False)
