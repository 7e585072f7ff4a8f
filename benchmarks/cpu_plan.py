"""Benchmark (not a CI test): the CPU plan's time rule against a hand-picked smaller patch.

nnU-Net's rule (the largest patch that fits the memory) assumes a GPU; on a CPU nasseg's
plan also fits a training step into a time budget (:mod:`nasseg.data.plan`). This script
shows what that buys at equal CPU time (issue 25), in three parts:

1. ``generate``: left-atrium-sized volumes (about 190 x 142 x 88 at 0.625 x 0.625 x 1.25
   mm, like the cropped MRI of the public left-atrium set): a body, a left atrium (one
   smooth, randomly deformed blob with two vein stubs: the label) and three unlabelled
   structures placed around it as in a chest (a ventricle, a right atrium, an aorta),
   under a smooth bias field and Gaussian noise; a Decathlon folder (int16 NIfTI,
   ``dataset.json``) that ``nasseg train --data`` reads. Two variants: ``local`` (the
   other structures half as bright over the body as the atrium: a voxel's neighbourhood
   tells the atrium apart) and ``context`` (they are nearly as bright: only where a blob
   lies among the others tells, so a patch must see most of the chest).
2. ``calibrate``: CPU seconds of real training steps (``nasseg.train.engine.train_step``,
   AdamW, channels-last, deterministic algorithms as training sets them) and of
   evaluation forwards of the network at several patches, 1 thread; the throughput in
   GMAC/s that ``nasseg.data.plan.CPU_GMACS`` states comes from here.
3. ``arms``: trains the network on each dataset with the default CPU plan and with other
   patches (a hand-picked smaller patch; other step budgets; the memory-only plan), each
   arm in its own process at 1 thread, for the same CPU time, validating at the run's
   cadence (``resolved.eval_every``: planned so that validation stays within a quarter of
   the CPU time): an arm stops at the end of an epoch, which is then validated, when one
   more epoch and a validation (judged by the last ones' CPU seconds) would end past its
   budget, so no arm spends more than its budget on epochs it is scored on. CPU seconds
   are the process's (``time.process_time``) from the start of the first epoch (data
   loading and planning excluded; validation included: it is part of a CPU epoch). The
   best epoch is chosen on ``val``; the test cases are scored once with its weights at
   their original resolution (not counted in the budget).

Every path is an argument; results go to ``--out``. Example (what produced
``reports/bench/volumetric/cpu_plan.md``)::

    nice -n 5 python benchmarks/cpu_plan.py all --la-root /tmp/la_like \\
        --hippocampus ../shared/data/msd_hippocampus --arch studies/arch/unet3d_small.yaml \\
        --work /tmp/cpu_plan_runs --out reports/bench/volumetric
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

CHECKPOINTS = (1 / 3, 2 / 3, 1.0)
"""Fractions of an arm's CPU budget at which the report compares the best val Dice so far."""
LA_SHAPE = (190, 142, 88)
LA_SPACING = (0.625, 0.625, 1.25)


# ---------------------------------------------------------------- 1. left-atrium-like volumes
def _blob(grid_mm: list[np.ndarray], centre: np.ndarray, radii: np.ndarray, rng: np.random.Generator,
          wobble: float) -> np.ndarray:
    """A smooth, randomly deformed ellipsoid (bool mask): the radius varies with the direction
    by a few low-order cosine terms of relative amplitude up to ``wobble``."""
    u = [(g - c) / r for g, c, r in zip(grid_mm, centre, radii)]
    dist = np.sqrt(u[0] ** 2 + u[1] ** 2 + u[2] ** 2) + 1e-6
    bump = np.zeros_like(dist)
    for _ in range(4):
        k = rng.normal(size=3)
        k = 2.5 * k / np.linalg.norm(k)
        bump += rng.uniform(0, wobble) * np.cos((k[0] * u[0] + k[1] * u[1] + k[2] * u[2]) / dist
                                                + rng.uniform(0, 2 * np.pi))
    return dist < 1.0 + bump


def _tube(grid_mm: list[np.ndarray], a: np.ndarray, b: np.ndarray, radius: float) -> np.ndarray:
    """A cylinder of ``radius`` mm from point ``a`` to ``b`` (mm), as a bool mask."""
    ab = b - a
    t = sum((g - p) * d for g, p, d in zip(grid_mm, a, ab)) / float(ab @ ab)
    t = np.clip(t, 0.0, 1.0)
    d2 = sum((g - (p + t * d)) ** 2 for g, p, d in zip(grid_mm, a, ab))
    return d2 < radius ** 2


def make_la_case(i: int, variant: str = "local") -> tuple[np.ndarray, np.ndarray]:
    """One case: image ``[X, Y, Z]`` int16 (MRI-like scale), label ``[X, Y, Z]`` uint8 (1 = atrium).

    Shapes vary around :data:`LA_SHAPE` (+-10, +-8, +-6 voxels); structures are placed in mm.
    Over the body (1.0) the atrium is 1.9-2.1; the other structures 1.75-2.15 (``context``)
    or half that far above the body, 1.375-1.575 (``local``); noise sigma 0.3. Both variants
    draw the same random numbers (same shapes, positions, noise).
    """
    dim = {"local": 0.5, "context": 1.0}[variant]
    rng = np.random.default_rng(1000 + i)
    shape = tuple(int(n + rng.integers(-j, j + 1)) for n, j in zip(LA_SHAPE, (10, 8, 6)))
    grid = [((np.arange(n, dtype=np.float32) - n / 2) * s).reshape([-1 if k == a else 1 for k in range(3)])
            for a, (n, s) in enumerate(zip(shape, LA_SPACING))]
    grid = [np.broadcast_to(g, shape) for g in grid]
    body = _blob(grid, np.zeros(3), np.array([62.0, 48.0, 70.0]), rng, 0.05)
    la_c = rng.normal(0, 6, 3) + np.array([4.0, 10.0, 8.0])
    la_r = np.array([22.0, 15.0, 14.0]) * rng.uniform(0.8, 1.2, 3)
    atrium = _blob(grid, la_c, la_r, rng, 0.12)
    for side in (-1, 1):  # pulmonary vein stubs leaving the back of the atrium
        a = la_c + np.array([side * 0.6 * la_r[0], 0.5 * la_r[1], 0.0])
        b = a + np.array([side * rng.uniform(8, 14), rng.uniform(8, 14), rng.uniform(-6, 6)])
        atrium |= _tube(grid, a, b, rng.uniform(3.5, 5.0))
    ventricle = _blob(grid, la_c + np.array([-8.0, -30.0, -22.0]) + rng.normal(0, 3, 3),
                      np.array([20.0, 18.0, 26.0]) * rng.uniform(0.85, 1.15, 3), rng, 0.1)
    right_atrium = _blob(grid, la_c + np.array([-34.0, -6.0, 4.0]) + rng.normal(0, 3, 3),
                         np.array([15.0, 14.0, 16.0]) * rng.uniform(0.85, 1.15, 3), rng, 0.12)
    top = la_c + np.array([-14.0, -12.0, 0.0]) + rng.normal(0, 2, 3)
    aorta = _tube(grid, top + np.array([0.0, 0.0, -40.0]), top + np.array([0.0, 4.0, 45.0]), rng.uniform(9, 12))
    label = (atrium & body).astype(np.uint8)
    image = np.full(shape, 0.15, np.float32)
    image[body] = 1.0
    for mask, level, scale in ((ventricle, rng.uniform(1.75, 2.05), dim), (right_atrium, rng.uniform(1.85, 2.15), dim),
                               (aorta, rng.uniform(1.85, 2.15), dim), (atrium, rng.uniform(1.9, 2.1), 1.0)):
        image[mask & body] = 1.0 + scale * (level - 1.0)
    bias = 1.0
    for g, n, s in zip(grid, shape, LA_SPACING):
        bias = bias * (1.0 + rng.uniform(-0.15, 0.15) * g / (n * s / 2))
    image = image * bias + rng.normal(0.0, 0.3, shape).astype(np.float32)
    return np.round(np.clip(image, -1, 6) * 300).astype(np.int16), label


def generate(root: Path, n: int, variant: str = "local") -> Path:
    """Write ``n`` cases of ``variant`` and ``dataset.json`` under ``root`` (cases already
    there are kept; a folder of the other variant is refused)."""
    import nibabel as nib

    meta_path = root / "dataset.json"
    if meta_path.is_file() and json.loads(meta_path.read_text()).get("variant", "context") != variant:
        raise SystemExit(f"{root} holds the other variant; give another --la-root")
    for sub in ("imagesTr", "labelsTr"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    affine = np.diag([*LA_SPACING, 1.0])
    entries = []
    for i in range(n):
        name = f"la_{i:03d}.nii.gz"
        entries.append({"image": f"./imagesTr/{name}", "label": f"./labelsTr/{name}"})
        if (root / "labelsTr" / name).is_file():
            continue
        image, label = make_la_case(i, variant)
        nib.save(nib.Nifti1Image(image, affine), str(root / "imagesTr" / name))
        nib.save(nib.Nifti1Image(label, affine), str(root / "labelsTr" / name))
        print(f"generated {i + 1}/{n} {image.shape} atrium {label.mean():.3f}", flush=True)
    meta = {"name": "left-atrium-like (generated by benchmarks/cpu_plan.py)", "variant": variant,
            "modality": {"0": "MRI"},
            "labels": {"0": "background", "1": "left atrium"}, "numTraining": n, "training": entries}
    (root / "dataset.json").write_text(json.dumps(meta, indent=1))
    return root


# ---------------------------------------------------------------- 2. throughput of this CPU
def calibrate(arch_path: str, out_channels: int, patches: list[tuple[int, ...]], repeats: int = 3) -> dict[str, Any]:
    """CPU seconds per training step (batch 2) and per evaluation forward (batch 1) at each
    patch, 1 thread, and the throughput ``forward GMACs x TRAIN_MACS_FACTOR / step seconds``."""
    import torch

    from nasseg.arch import build_model, load_arch
    from nasseg.data.plan import TRAIN_MACS_FACTOR, forward_gmacs
    from nasseg.train.engine import train_step
    from nasseg.train.losses import SegLoss

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    arch = load_arch(arch_path).model_copy(update={"in_channels": 1, "out_channels": out_channels})
    fmt = torch.channels_last_3d
    rows = []
    for patch in patches:
        torch.manual_seed(0)
        net = build_model(arch).to(memory_format=fmt)
        opt = torch.optim.AdamW(net.parameters(), lr=1e-3, fused=True)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
        loss_fn = SegLoss(out_channels, 1.0, 1.0, None)
        x = torch.randn(2, 1, *patch).contiguous(memory_format=fmt)
        y = torch.randint(0, max(out_channels, 2), (2, *patch))
        train_step(net, x, y, loss_fn, opt, sched, None)  # warm-up
        steps = []
        for _ in range(repeats):
            t0 = time.process_time()
            train_step(net, x, y, loss_fn, opt, sched, None)
            steps.append(time.process_time() - t0)
        net.eval()
        fwd = []
        with torch.no_grad():
            xe = x[:1]
            net(xe)
            for _ in range(repeats):
                t0 = time.process_time()
                net(xe)
                fwd.append(time.process_time() - t0)
        g = forward_gmacs(arch, 1, out_channels, patch, 1)
        step_s, fwd_s = statistics.median(steps), statistics.median(fwd)
        rows.append({"patch": list(patch), "forward_gmacs": round(g, 3), "train_step_cpu_s": round(step_s, 3),
                     "eval_forward_cpu_s": round(fwd_s, 3),
                     "train_gmacs_per_s": round(2 * g * TRAIN_MACS_FACTOR / step_s, 2),
                     "eval_gmacs_per_s": round(g / fwd_s, 2)})
        print(json.dumps(rows[-1]), flush=True)
    return {"arch": arch_path, "out_channels": out_channels, "threads": 1, "batch": 2, "repeats": repeats,
            "rows": rows, "train_gmacs_per_s_median": statistics.median(r["train_gmacs_per_s"] for r in rows),
            "eval_gmacs_per_s_median": statistics.median(r["eval_gmacs_per_s"] for r in rows)}


# ---------------------------------------------------------------- 3. one arm, in this process
def run_arm(arch_path: str, data_path: str, cpu_budget: float, out: Path, *, patch: list[int] | None,
            step_seconds: float | None, seed: int) -> dict[str, Any]:
    """Train one arm at 1 thread until its CPU budget is spent (see the module docstring)."""
    import torch

    from nasseg.arch import load_arch
    from nasseg.data import resolve_data
    from nasseg.train.resolved import ResolvedRun
    from nasseg.train import TrainConfig, train
    from nasseg.train.engine import Hooks

    data = resolve_data(data_path, patch_size=patch, step_seconds=step_seconds, flip=False)
    cfg = TrainConfig(device="cpu", num_threads=1, epochs=10_000, schedule="constant", seed=seed)
    clock: dict[str, Any] = {"start": None, "epoch": 0.0, "train": 0.0, "val": 0.0, "epochs": []}

    def on_epoch_start(epoch: int) -> None:
        clock["epoch"] = time.process_time()
        if clock["start"] is None:
            clock["start"] = clock["epoch"]

    def on_epoch_end(epoch: int, seconds: float, images: int) -> bool:
        # Stop here (this epoch is then validated) when this epoch's validation, should the cadence
        # fall on it, one more epoch and its validation would end past the budget.
        clock["train"] = time.process_time() - clock["epoch"]
        used = time.process_time() - clock["start"]
        return used + clock["train"] + 2 * clock["val"] > cpu_budget

    def on_eval(epoch: int, metrics: dict) -> None:
        used = time.process_time() - clock["start"]
        clock["val"] = time.process_time() - clock["epoch"] - clock["train"]
        clock["epochs"].append({"epoch": epoch, "cpu_s": round(used, 1), "val_dice": round(metrics["dice"], 4),
                                "val_cpu_s": round(clock["val"], 1),
                                "train_wall_s": round(metrics["train_seconds"], 1),
                                "eval_wall_s": round(metrics["eval_seconds"], 1)})
        print(f"  epoch {epoch}: cpu {used:.0f} s, val dice {metrics['dice']:.4f}", flush=True)

    machine = {**_machine(), "command": " ".join(["python", *sys.argv])}
    t0 = time.process_time()
    res = train(load_arch(arch_path), data, cfg, progress=False,
                hooks=Hooks(on_epoch_start=on_epoch_start, on_epoch_end=on_epoch_end, on_eval=on_eval))
    plan = res.config["resolved"]["plan"]
    plan_obj = ResolvedRun.from_dict(res.config["resolved"]).plan
    arm = {"data": data_path, "patch_set": patch, "step_seconds_set": step_seconds, "seed": seed,
           "cpu_budget_s": cpu_budget, "threads": res.config["resolved"]["threads"],
           "plan": plan, "plan_line": plan_obj.describe(),
           "eval_every": res.config["resolved"]["eval_every"],
           "eval_every_source": res.config["resolved"]["eval_every_source"],
           "epochs": res.epochs_run, "cpu_s_training": clock["epochs"][-1]["cpu_s"],
           "cpu_s_process": round(time.process_time() - t0, 1), "best_epoch": res.best_epoch,
           "val_dice": round(res.best["dice"], 4), "test_dice": round(res.test["dice"], 4) if res.test else None,
           "val_cases": len(res.split["val"]), "test_cases": len(res.split["test"]),
           "train_cases": len(res.split["train"]), "split_hash": res.split.get("hash"),
           "history": clock["epochs"], "machine": {**machine, "uptime_end": _machine()["uptime"]}}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(arm, indent=1))
    return arm


# ---------------------------------------------------------------- orchestration and report
def _spawn(args: argparse.Namespace, name: str, data: str, budget: float, patch: str | None,
           step: float | None) -> dict[str, Any]:
    out = Path(args.work) / f"{name}.json"
    if out.is_file():
        return json.loads(out.read_text())
    cmd = [sys.executable, __file__, "arm", "--arch", args.arch, "--data", data, "--cpu-budget", str(budget),
           "--json", str(out), "--seed", str(args.seed)]
    cmd += ["--patch", patch] if patch else []
    cmd += ["--step-seconds", str(step)] if step else []
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if args.cache_dir:
        env["NASSEG_CACHE_DIR"] = args.cache_dir
    log = Path(args.work) / f"{name}.log"
    print(f"[{time.strftime('%H:%M:%S')}] {name}: {' '.join(cmd)}", flush=True)
    with open(log, "w") as f:
        subprocess.run(cmd, check=True, stdout=f, stderr=subprocess.STDOUT, env=env)
    arm = json.loads(out.read_text())
    print(f"[{time.strftime('%H:%M:%S')}] {name}: patch {arm['plan']['patch_size']}, {arm['epochs']} epochs, "
          f"{arm['cpu_s_training']:.0f} CPU s, val {arm['val_dice']:.4f}, test {arm['test_dice']}", flush=True)
    return arm


def arm_specs(args: argparse.Namespace) -> list[tuple[str, str, float, str | None, float | None]]:
    """``(name, data, CPU budget, patch or None, step budget or None)`` of every arm."""
    la = "la" if args.la_variant == "local" else "la_ctx"
    specs = [(f"{la}_default", args.la_root, args.la_cpu, None, None),
             (f"{la}_hand", args.la_root, args.la_cpu, args.la_patch, None),
             (f"{la}_memory", args.la_root, args.la_cpu, args.la_memory_patch, None)]
    specs += [(f"{la}_step{s:g}", args.la_root, args.la_cpu, None, s) for s in args.la_sweep]
    specs += [("hip_default", args.hippocampus, args.hip_cpu, None, None),
              ("hip_hand", args.hippocampus, args.hip_cpu, args.hip_patch, None)]
    return [s for s in specs if not args.only or s[0] in args.only]


def _machine() -> dict[str, Any]:
    import torch

    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path.cwd()).stdout.strip()
    return {"uptime": uptime, "commit": commit or None, "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version()}


def report(arms: dict[str, dict], calib: dict | None, runs: list[dict], out: Path) -> None:
    """Write ``cpu_plan.json`` and ``cpu_plan.md`` under ``out``: every arm, the calibration,
    and each invocation that ran arms (command, commit, machine, load at its start and end)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "cpu_plan.json").write_text(json.dumps({"runs": runs, "calibration": calib, "arms": arms}, indent=1))
    lines = ["# The CPU plan's time rule at equal CPU time (issue 25)", "",
             "Written by `benchmarks/cpu_plan.py` (its docstring says how arms are run and stopped). "
             "Every arm trains at 1 thread in its own process; CPU seconds are the process's, from the first "
             "epoch's start (validation included, test scoring not).", "", "Runs:", ""]
    for r in runs:
        lines += [f"- `{r['command']}` (arms {', '.join(r['arms'])}; commit {r['commit']}; {r['cpu']}, "
                  f"{r['cores']} cores, torch {r['torch']})", f"  - `uptime` at the start: `{r['uptime_start']}`",
                  f"  - `uptime` at the end: `{r['uptime_end']}`"]
    lines += ["", "| arm | data | patch | batch | plan's estimate: step, validation per case | validated every | "
              "epochs | CPU s (budget) | best epoch | val Dice | test Dice |",
              "|---|---|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for name, a in arms.items():
        p = a["plan"]
        est = (f"{p['step_seconds']} s of {p['time_budget_s']:g} s, {p['eval_case_seconds']} s"
               if p.get("step_seconds") is not None else "-")
        why = "set" if a["patch_set"] else p.get("limited_by", "")
        lines.append(f"| {name} | {Path(a['data']).name} ({a['train_cases']}/{a['val_cases']}/{a['test_cases']}) | "
                     f"{'x'.join(map(str, p['patch_size']))} ({why}) | {p['batch_size']} | {est} | "
                     f"{a.get('eval_every', 1)} | {a['epochs']} | "
                     f"{a['cpu_s_training']:.0f} ({a['cpu_budget_s']:.0f}) | {a['best_epoch']}{_late(a)} | "
                     f"{a['val_dice']:.4f} | {a['test_dice']:.4f} |")
    if any(_late(a) for a in arms.values()):
        lines += ["", "+: the best epoch ended past the arm's CPU budget (an arm may overrun it by its last epoch "
                      "and validation); compare such an arm by the in-budget table below."]
    lines += paired(arms)
    lines += ["", "Best val Dice among the epochs that ended within T CPU seconds (- = none yet), and the "
              "share of the arm's CPU time spent validating (wall time for arms that recorded no validation "
              "CPU):", "",
              "| arm | " + " | ".join(f"T = {t:.0%} of the budget" for t in CHECKPOINTS) + " | validation share |",
              "|---|" + "---:|" * (len(CHECKPOINTS) + 1)]
    for name, a in arms.items():
        scale = a["cpu_budget_s"] / CHECKPOINTS[-1]
        best = [max((h["val_dice"] for h in a["history"] if h["cpu_s"] <= t * scale), default=None)
                for t in CHECKPOINTS]
        if all("val_cpu_s" in h for h in a["history"]):  # CPU of every epoch, validated or not
            share = sum(h["val_cpu_s"] for h in a["history"]) / a["history"][-1]["cpu_s"]
        else:  # arms that validated every epoch recorded wall time only
            wall = sum(h["train_wall_s"] + h["eval_wall_s"] for h in a["history"])
            share = sum(h["eval_wall_s"] for h in a["history"]) / wall if wall else 0.0
        lines.append(f"| {name} | " + " | ".join("-" if b is None else f"{b:.3f}" for b in best)
                     + f" | {share:.0%} |")
    lines += ["", "Per epoch (CPU seconds at the epoch's end: val Dice):", ""]
    for name, a in arms.items():
        lines.append(f"- {name}: " + ", ".join(f"{h['cpu_s']:.0f} s: {h['val_dice']:.3f}" for h in a["history"]))
    lines += ["", "Plan lines:", ""] + [f"- {name}: `{a['plan_line']}`" for name, a in arms.items()]
    if calib:
        lines += ["", "## Throughput of this CPU (1 thread, `calibrate`)", "",
                  "| patch | forward GMACs | train step CPU s (batch 2) | train GMAC/s (x3) | eval forward CPU s | "
                  "eval GMAC/s |", "|---|---:|---:|---:|---:|---:|"]
        for r in calib["rows"]:
            lines.append(f"| {'x'.join(map(str, r['patch']))} | {r['forward_gmacs']} | {r['train_step_cpu_s']} | "
                         f"{r['train_gmacs_per_s']} | {r['eval_forward_cpu_s']} | {r['eval_gmacs_per_s']} |")
        lines += ["", f"Median training throughput {calib['train_gmacs_per_s_median']:.1f} GMAC/s, evaluation "
                      f"{calib['eval_gmacs_per_s_median']:.1f} GMAC/s."]
    (out / "cpu_plan.md").write_text("\n".join(lines) + "\n")


def _late(arm: dict) -> str:
    """``"+"`` when the arm's best epoch ended past its CPU budget, else ``""``."""
    cpu = {h["epoch"]: h["cpu_s"] for h in arm["history"]}
    return "+" if cpu.get(arm["best_epoch"], 0.0) > arm["cpu_budget_s"] else ""


def paired(arms: dict[str, dict]) -> list[str]:
    """Markdown lines: the default arm against the hand-picked one of each work folder (a
    data set at one seed), their differences, and the mean difference per data set."""
    rows, by_data = [], {}
    for name, d in arms.items():
        if not name.endswith("_default") or name[: -len("default")] + "hand" not in arms:
            continue
        h = arms[name[: -len("default")] + "hand"]
        dv, dt = d["val_dice"] - h["val_dice"], d["test_dice"] - h["test_dice"]
        by_data.setdefault(Path(d["data"]).name, []).append(dt)
        rows.append(f"| {Path(d['data']).name} | {d['seed']} | {'x'.join(map(str, d['plan']['patch_size']))} | "
                    f"{d['val_dice']:.4f} / {d['test_dice']:.4f} | {'x'.join(map(str, h['plan']['patch_size']))} | "
                    f"{h['val_dice']:.4f} / {h['test_dice']:.4f} | {dv:+.4f} / {dt:+.4f} |")
    if not rows:
        return []
    out = ["", "Default plan against the hand-picked patch, same data, seed and CPU budget:", "",
           "| data | seed | default patch | default val / test Dice | hand patch | hand val / test Dice | "
           "default - hand (val / test) |", "|---|---:|---|---:|---|---:|---:|", *rows, ""]
    for data, ds in by_data.items():
        out.append(f"- {data}: mean test difference {statistics.mean(ds):+.4f} over {len(ds)} seed(s)"
                   + (f" (SD {statistics.stdev(ds):.4f})" if len(ds) > 1 else ""))
    return out


def write_report(works: list[Path], out: Path) -> None:
    """:func:`report` of every arm JSON in ``works`` (named ``folder/arm`` when there are
    several) with the first folder's ``calibration.json`` and every ``runs.json``."""
    arms, runs = {}, []
    for work in works:
        for a in sorted(work.glob("*.json")):
            if a.stem not in ("calibration", "runs"):
                arms[f"{work.name}/{a.stem}" if len(works) > 1 else a.stem] = json.loads(a.read_text())
        if (work / "runs.json").is_file():
            runs += json.loads((work / "runs.json").read_text())
    calib = works[0] / "calibration.json"
    report(arms, json.loads(calib.read_text()) if calib.is_file() else None, runs, out)


def _patch(s: str) -> tuple[int, ...]:
    return tuple(int(v) for v in s.split(","))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate", help="write the left-atrium-like set")
    g.add_argument("--root", required=True)
    g.add_argument("--cases", type=int, default=50)
    g.add_argument("--variant", choices=("local", "context"), default="local")
    c = sub.add_parser("calibrate", help="CPU throughput of the network at several patches")
    c.add_argument("--arch", required=True)
    c.add_argument("--out-channels", type=int, default=1)
    c.add_argument("--patches", nargs="+", type=_patch,
                   default=[(32, 32, 32), (64, 48, 32), (64, 64, 48), (96, 96, 64), (136, 96, 56), (184, 136, 80)])
    c.add_argument("--json", required=True)
    a = sub.add_parser("arm", help="train one arm (run by `all` in its own process)")
    a.add_argument("--arch", required=True)
    a.add_argument("--data", required=True)
    a.add_argument("--cpu-budget", type=float, required=True)
    a.add_argument("--patch", type=lambda s: list(_patch(s)))
    a.add_argument("--step-seconds", type=float)
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--json", required=True)
    w = sub.add_parser("report", help="write the report from a work folder's arms, calibration and runs")
    w.add_argument("--work", required=True, nargs="+", help="work folder(s) of arms")
    w.add_argument("--out", required=True)
    r = sub.add_parser("all", help="generate, calibrate, run every arm, write the report")
    r.add_argument("--la-root", required=True, help="folder for the generated set (kept and reused)")
    r.add_argument("--la-cases", type=int, default=50)
    r.add_argument("--la-variant", choices=("local", "context"), default="local",
                   help="which generated set (arms of 'context' are named la_ctx_*)")
    r.add_argument("--hippocampus", required=True, help="the MSD hippocampus Decathlon folder")
    r.add_argument("--arch", required=True)
    r.add_argument("--work", required=True, help="arm results and logs (an arm already there is reused)")
    r.add_argument("--out", required=True, help="where cpu_plan.json and cpu_plan.md go")
    r.add_argument("--cache-dir", help="NASSEG_CACHE_DIR for the arms (default: nasseg's)")
    r.add_argument("--la-cpu", type=float, default=1200.0)
    r.add_argument("--hip-cpu", type=float, default=300.0)
    r.add_argument("--la-patch", default="96,96,64")
    r.add_argument("--hip-patch", default="32,32,32")
    r.add_argument("--la-memory-patch", default="184,136,80",
                   help="the memory-only plan's patch (the plan before the time rule), trained as a set patch")
    r.add_argument("--la-sweep", type=float, nargs="*", default=[], help="extra LA arms at these step budgets")
    r.add_argument("--only", nargs="*", help="run only these arms (the report holds every arm of the work folder)")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--jobs", type=int, default=1, help="arms run at once (each at 1 thread)")
    r.add_argument("--no-calibrate", action="store_true")
    args = ap.parse_args(argv)
    if args.cmd == "generate":
        generate(Path(args.root), args.cases, args.variant)
    elif args.cmd == "calibrate":
        Path(args.json).write_text(json.dumps(calibrate(args.arch, args.out_channels, args.patches), indent=1))
    elif args.cmd == "report":
        write_report([Path(w) for w in args.work], Path(args.out))
    elif args.cmd == "arm":
        if Path(args.json).exists():  # an earlier arm's result is never overwritten
            print(f"{args.json}: exists (an earlier arm's result); choose another --json", file=sys.stderr)
            return 2
        run_arm(args.arch, args.data, args.cpu_budget, Path(args.json), patch=args.patch,
                step_seconds=args.step_seconds, seed=args.seed)
    else:
        Path(args.work).mkdir(parents=True, exist_ok=True)
        meta = {**_machine(), "uptime_start": _machine()["uptime"]}
        generate(Path(args.la_root), args.la_cases, args.la_variant)
        calib_path = Path(args.work) / "calibration.json"
        if not args.no_calibrate and not calib_path.is_file():
            calib_path.write_text(json.dumps(calibrate(args.arch, 1, [(32, 32, 32), (64, 48, 32), (64, 64, 48),
                                                                      (96, 96, 64), (136, 96, 56)]), indent=1))
        calib = json.loads(calib_path.read_text()) if calib_path.is_file() else None
        specs = arm_specs(args)
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            list(pool.map(lambda s: _spawn(args, *s), specs))
        meta["uptime_end"] = _machine()["uptime"]
        command = "nice -n 5 python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
        runs_path = Path(args.work) / "runs.json"
        runs = json.loads(runs_path.read_text()) if runs_path.is_file() else []
        runs.append({"command": command, "arms": [s[0] for s in specs], **meta})
        runs_path.write_text(json.dumps(runs, indent=1))
        write_report([Path(args.work)], Path(args.out))
        print((Path(args.out) / "cpu_plan.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
