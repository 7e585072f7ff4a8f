"""The 3D plan on a CPU also fits a step into a time budget (issue 25): on a left-atrium-sized
set it picks a smaller patch than the memory rule alone, deterministically (nothing is timed
while planning); on a GPU memory stays the only rule; a patch the user sets is kept; the time
budget, the estimate and the thread count are recorded in plan.json and the plan line.

The datasets here are shapes only: every case is a zero-stride view of one value
(``torch.zeros(1).expand(...)``), so a 190 x 142 x 88 set of 100 cases costs no memory.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from nasseg.arch import load_arch
from nasseg.cost import profile
from nasseg.data.base import SegDataset
from nasseg.data.config import DataConfig
from nasseg.data.plan import (CPU_BUDGET_MB, CPU_GMACS, CPU_STEP_SECONDS, TIME_FLOOR_MULTIPLES, TRAIN_MACS_FACTOR, VAL_SHARE,
                              Plan,
                              forward_gmacs, make_plan, sliding_windows, step_seconds)
from nasseg.train import TrainConfig
from nasseg.train.resolved import ResolvedRun, resolve_run, with_eval_every

UNET = Path(__file__).resolve().parents[1] / "studies" / "arch" / "unet3d_small.yaml"
LA_SPACING = (0.625, 0.625, 1.25)


def _shapes_only(shapes, spacing, num_classes=2) -> SegDataset:
    """A 3D dataset of the given case shapes whose voxels take no memory."""
    return SegDataset(kind="decathlon", spatial_dims=3, in_channels=1, num_classes=num_classes,
                      case_ids=[f"case_{i:03d}" for i in range(len(shapes))],
                      images=[torch.zeros(1).expand(1, *s) for s in shapes],
                      labels=[torch.zeros(1, dtype=torch.uint8).expand(*s) for s in shapes],
                      info={"preprocessing": {"target_spacing": list(spacing)}})


def _left_atrium_like(n=100) -> SegDataset:
    """The issue's left-atrium set: 100 volumes of about 190 x 142 x 88, one label."""
    rng = np.random.default_rng(0)
    shapes = [tuple(int(v) for v in rng.integers((180, 134, 80), (201, 151, 97))) for _ in range(n)]
    return _shapes_only(shapes, LA_SPACING)


def _data(tmp_path, **plan) -> DataConfig:
    return DataConfig(kind="decathlon", path=str(tmp_path), plan=plan)


@pytest.fixture(scope="module")
def arch():
    return load_arch(str(UNET))


@pytest.fixture(scope="module")
def la():
    return _left_atrium_like()


def _memory_rule(arch, ds, tmp_path) -> Plan:
    """The plan by the memory rule alone at the CPU's budget (the GPU path with that budget)."""
    return make_plan(arch, ds, device="cuda", data_cfg=_data(tmp_path, memory_mb=CPU_BUDGET_MB))


def test_cpu_plan_on_left_atrium_sized_volumes_is_smaller_than_the_memory_rule(arch, la, tmp_path):
    memory_only = _memory_rule(arch, la, tmp_path)
    assert memory_only.patch_size == (184, 136, 80) and memory_only.limited_by == "memory"  # the plan
    plan = make_plan(arch, la, device="cpu", data_cfg=_data(tmp_path), threads=1)
    assert plan.limited_by == "time" and plan.time_source == "default CPU step budget"
    assert math.prod(plan.patch_size) < math.prod(memory_only.patch_size) / 2
    assert plan.step_seconds <= plan.time_budget_s == CPU_STEP_SECONDS
    assert plan.batch_size == 2 and all(p % 8 == 0 for p in plan.patch_size)
    assert plan.memory_mb < memory_only.memory_mb and plan.cpu_gmacs == CPU_GMACS


def test_cpu_patch_is_trimmed_to_the_smallest_with_as_many_validation_windows(arch, la, tmp_path):
    """The memory patch 184x136x80 of a ~191x143x88 median case takes 2 windows per axis at
    overlap 0.5, as does 128x96x64 (2/3 of the case, rounded up to 8): the CPU plan trains
    and validates on the smaller one; one multiple less on any axis would take 3 windows."""
    plan = make_plan(arch, la, device="cpu", data_cfg=_data(tmp_path, step_seconds=1e9), threads=1)
    assert plan.limited_by == "memory" and plan.trimmed_from == (184, 136, 80)
    assert plan.patch_size == (128, 96, 64) and "trimmed from (184, 136, 80)" in plan.describe()
    median = plan.median_shape
    assert sliding_windows(median, plan.patch_size, 0.5) == sliding_windows(median, (184, 136, 80), 0.5) == 8
    for axis in range(3):
        smaller = list(plan.patch_size)
        smaller[axis] -= 8
        assert sliding_windows(median, tuple(smaller), 0.5) > 8
    windowed = DataConfig(kind="decathlon", path=str(tmp_path), window_size=(96, 96, 96), plan={"step_seconds": 1e9})
    assert make_plan(arch, la, device="cpu", data_cfg=windowed, threads=1).trimmed_from is None


def test_time_budget_shrinks_along_one_path_and_stops_at_the_floor(arch, la, tmp_path):
    """A larger budget never gives a smaller patch on any axis (the shrink goes on along
    nnU-Net's path from the memory plan); a budget nothing meets stops at the floor."""
    patches = [make_plan(arch, la, device="cpu", data_cfg=_data(tmp_path, step_seconds=s), threads=1)
               for s in (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)]
    for small, big in zip(patches, patches[1:]):
        assert all(a <= b for a, b in zip(small.patch_size, big.patch_size))
        assert small.step_seconds <= small.time_budget_s
    two_threads = make_plan(arch, la, device="cpu", data_cfg=_data(tmp_path, step_seconds=2.0), threads=2)
    assert two_threads.patch_size == patches[3].patch_size and two_threads.threads == 2  # 2 s x 2 = 4 s x 1
    floor = make_plan(arch, la, device="cpu", data_cfg=_data(tmp_path, step_seconds=1e-3), threads=1)
    assert floor.limited_by == "time floor" and floor.patch_size == (8 * TIME_FLOOR_MULTIPLES,) * 3
    assert floor.step_seconds > floor.time_budget_s


def test_the_plan_times_nothing_so_the_load_cannot_change_it(arch, la, tmp_path, monkeypatch):
    expected = make_plan(arch, la, device="cpu", data_cfg=_data(tmp_path), threads=1)

    def clock(*_):
        raise AssertionError("the plan read a clock")

    for name in ("time", "perf_counter", "process_time", "monotonic", "perf_counter_ns", "process_time_ns"):
        monkeypatch.setattr(time, name, clock)
    before = torch.get_num_threads()
    torch.set_num_threads(1 if before > 1 else 2)  # the process's setting is not read when threads are given
    try:
        again = make_plan(arch, la, device="cpu", data_cfg=_data(tmp_path), threads=1)
    finally:
        torch.set_num_threads(before)
    assert again == expected


def test_gpu_plan_is_memory_only(arch, la, tmp_path):
    """On a GPU neither the time budget nor the trim applies: the largest patch that fits."""
    gpu = make_plan(arch, la, device="cuda", data_cfg=_data(tmp_path, memory_mb=3072.0, step_seconds=0.5),
                    threads=1)
    assert gpu.patch_size == (184, 136, 80) and gpu.trimmed_from is None and gpu.limited_by == "memory"
    assert gpu.step_seconds is gpu.time_budget_s is gpu.threads is None
    assert " s per step" not in gpu.describe()
    bigger = make_plan(arch, la, device="cuda", data_cfg=_data(tmp_path, memory_mb=12000.0))
    assert bigger.patch_size == (192, 144, 88) and bigger.batch_size > 2  # the median shape, batch up to 16


def test_a_patch_the_user_sets_is_kept_over_the_time_budget(arch, la, tmp_path):
    data = DataConfig(kind="decathlon", path=str(tmp_path), patch_size=(96, 96, 64), plan={"step_seconds": 0.1})
    plan = make_plan(arch, la, device="cpu", data_cfg=data, threads=1)
    assert plan.patch_size == (96, 96, 64) and plan.sources["patch_size"] == "config"
    assert plan.limited_by == "config" and plan.step_seconds > plan.time_budget_s == 0.1
    assert "(set)" in plan.describe() and "limited by" not in plan.describe()


def test_plan_json_and_the_plan_line_carry_the_time_budget(arch, la, tmp_path):
    data = _data(tmp_path, step_seconds=3.0, cpu_gmacs=20.0)
    run = resolve_run(arch, la, data, TrainConfig(device="cpu", num_threads=1))
    plan = run.plan
    assert (plan.threads, plan.threads_source) == (run.threads, run.threads_source) == (1, "set")
    assert (plan.time_budget_s, plan.time_source) == (3.0, "data.plan.step_seconds")
    assert (plan.cpu_gmacs, plan.gmacs_source) == (20.0, "data.plan.cpu_gmacs")
    assert plan.step_seconds == round(step_seconds(plan.step_gmacs, 1, 20.0), 2) <= 3.0
    assert plan.eval_case_seconds > 0
    plan.write(tmp_path / "run")
    stored = json.loads((tmp_path / "run" / "plan.json").read_text())
    for key in ("step_seconds", "time_budget_s", "time_source", "cpu_gmacs", "gmacs_source", "threads",
                "threads_source", "limited_by", "eval_case_seconds", "step_gmacs"):
        assert stored[key] == getattr(plan, key)
    line = plan.describe()
    assert "limited by time" in line and f"~{plan.step_seconds:.1f} s per step at 1 thread within the 3 s step budget " \
                                         "(data.plan.step_seconds)" in line and "MB per step" in line
    assert ResolvedRun.from_dict(json.loads(json.dumps(run.to_dict()))) == run
    old = {k: v for k, v in plan.to_dict().items() if k not in ("step_seconds", "time_budget_s", "limited_by")}
    assert Plan(**old).step_seconds is None  # a plan.json written before the time rule still reads


@pytest.mark.parametrize("train_steps, val_cases", [(15, 10), (35, 20), (78, 52), (200, 3), (1, 40)])
def test_the_cpu_plan_validates_as_often_as_keeps_validation_within_its_share(arch, la, tmp_path, train_steps,
                                                                                val_cases):
    """Sliding-window validation over whole volumes is most of a CPU epoch at every-epoch
    validation: the plan picks the fewest epochs between validations that keep it within
    VAL_SHARE of the estimated CPU time; a set eval_every wins; a GPU plan validates every epoch."""
    run = resolve_run(arch, la, _data(tmp_path), TrainConfig(device="cpu", num_threads=1))
    assert (run.eval_every, run.eval_every_source) == (1, "default")
    planned = with_eval_every(run, train_steps, val_cases)
    n, p = planned.eval_every, run.plan
    val_s, train_s = val_cases * p.eval_case_seconds, train_steps * p.step_seconds
    share = lambda k: val_s / (k * train_s + val_s)  # noqa: E731
    assert share(n) <= VAL_SHARE + 1e-9 and (n == 1 or share(n - 1) > VAL_SHARE)
    assert planned.eval_every_source.startswith("planned") and planned.plan == run.plan
    assert planned.describe() == (f"{p.describe()}; validation every {n} epoch{'' if n == 1 else 's'} "
                                  f"(planned: validation within 25% of the estimated CPU time)")
    assert ResolvedRun.from_dict(json.loads(json.dumps(planned.to_dict()))) == planned
    set_run = resolve_run(arch, la, _data(tmp_path), TrainConfig(device="cpu", num_threads=1, eval_every=1))
    assert with_eval_every(set_run, train_steps, val_cases) == set_run and set_run.eval_every_source == "set"
    assert _memory_rule(arch, la, tmp_path).eval_every(train_steps, val_cases) == 1


def test_a_resolved_run_stored_before_the_validation_cadence_still_reads(arch, la, tmp_path):
    run = resolve_run(arch, la, _data(tmp_path), TrainConfig(device="cpu", num_threads=1))
    old = {k: v for k, v in json.loads(json.dumps(run.to_dict())).items() if not k.startswith("eval_every")}
    assert ResolvedRun.from_dict(old) == run


def test_estimate_scales_the_counted_macs(arch):
    """The estimate's MACs at any patch equal the meta-device count (MACs of a U-shaped net
    grow linearly with the voxels of a divisible patch), and the step time is arithmetic."""
    cfg = arch.model_copy(update={"in_channels": 1, "out_channels": 1})
    for patch in ((96, 96, 64), (184, 136, 80), (40, 56, 40)):
        counted = profile(cfg, (1, 1, *patch), latency=False, cache=False).macs / 1e9
        assert forward_gmacs(arch, 1, 1, patch) == pytest.approx(counted, rel=1e-9)
    assert step_seconds(10.0, threads=2, cpu_gmacs=15.0) == pytest.approx(10.0 * TRAIN_MACS_FACTOR / 30.0)


@pytest.mark.parametrize("shape, window", [((19, 14, 9), (8, 8, 8)), ((40, 30, 20), (16, 24, 8)),
                                           ((8, 8, 8), (8, 8, 8)), ((5, 30, 7), (8, 8, 8))])
def test_validation_windows_are_counted_as_monai_places_them(shape, window):
    from monai.inferers import sliding_window_inference

    calls = []
    sliding_window_inference(torch.zeros(1, 1, *shape), window, 1,
                             lambda x: (calls.append(x.shape[0]), x)[1], overlap=0.5)
    case_window = tuple(min(w, s) for w, s in zip(window, shape))
    assert sliding_windows(shape, case_window, 0.5) == sum(calls)


def _hippocampus_like() -> SegDataset:
    """51 hippocampus-sized cases at 1 mm, median 35 x 49 x 35 (each axis +-5 voxels around it)."""
    rng = np.random.default_rng(1)
    offsets = [rng.permutation(np.arange(-25, 26) // 5) for _ in range(3)]
    return _shapes_only([(35 + a, 49 + b, 35 + c) for a, b, c in zip(*offsets)], (1.0, 1.0, 1.0))


def test_small_cases_train_at_the_nearest_multiple_on_a_cpu(arch, tmp_path):
    """nnU-Net rounds a small median case up (40 x 56 x 40 for 35 x 49 x 35: a third of each
    patch is padding); on a CPU the plan trains and validates at the nearest multiple
    (32 x 48 x 32); on a GPU, or with a patch the user sets, nnU-Net's patch stays."""
    ds = _hippocampus_like()
    assert tuple(int(m) for m in np.median(np.array(ds.shapes()), axis=0)) == (35, 49, 35)
    run = resolve_run(arch, ds, _data(tmp_path), TrainConfig(device="cpu", num_threads=1))
    plan = run.plan
    assert plan.limited_by == "median shape" and plan.step_seconds <= plan.time_budget_s
    assert plan.patch_size == run.patch == run.window == (32, 48, 32) and run.input_shape == (1, 32, 48, 32)
    gpu = make_plan(arch, ds, device="cuda", data_cfg=_data(tmp_path, memory_mb=CPU_BUDGET_MB))
    assert gpu.patch_size == (40, 56, 40)
    set_patch = DataConfig(kind="decathlon", path=str(tmp_path), patch_size=(40, 56, 40))
    assert resolve_run(arch, ds, set_patch, TrainConfig(device="cpu", num_threads=1)).patch == (40, 56, 40)
