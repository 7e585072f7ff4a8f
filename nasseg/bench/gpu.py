"""``nasseg bench gpu``: one command that measures what nasseg does with a GPU.

Four parts, each written to ``<out>/<part>.json`` as soon as it ends, and ``<out>/summary.md``
(rewritten after every part, so a run stopped by a time limit keeps what it measured). A part
that raises is recorded in its file with ``error`` and the others still run; ``parts`` runs a
subset (``bf16_fraction`` then reads part 1 from ``<out>/train_throughput.json``).

1. ``train_throughput``: training images/s of the ``cmunext`` preset at 256x256 on
   ``busi_256``, nasseg's :func:`~nasseg.train.train` (bf16, channels-last, data
   resident on the device, fused SGD, the CMUNeXt recipe) against the authors' style of
   loop (:class:`~nasseg.bench.disk_loop.DiskLoop`: files decoded by 8 DataLoader
   workers, fp32, per-step ``.item()`` and host metrics), same network, batch and cases.
   The first epoch of each is warm-up and not timed; validation is not timed.
2. ``trials_per_gpu``: trials/hour of a search study (``--study``: the quickstart,
   ``studies/quickstart.yaml`` in the repository, on the device) at 1, 2, 4 and 8 trials
   per GPU: the same ``trials`` networks for the same epochs in every setting, each in a
   fresh process with its own cold cost cache and an empty storage.
3. ``glims_3d``: GLIMS forward + backward at 1x4x128^3 under bf16 autocast: milliseconds
   per step from CUDA events after warm-up, and the allocator's peak memory.
4. ``bf16_fraction``: the share of the GPU's dense bf16 peak that the cmunext training
   step reaches: ``2 * MACs * 3 * images/s / peak FLOP/s`` (MACs counted at 1x3x256^2;
   backward taken as twice the forward).

``--tiny`` runs the same code on the CPU in seconds: 32x32 synthetic cases written as PNG
files (so the authors'-style loop reads files too), a 2-trial quickstart at 1 and 2
trials per device with a simulated device memory, and a GLIMS-shaped network (GLIMS's
DACB, Swin and CSAB blocks in 4 stages at a quarter of the widths, 16^3). Its numbers say
nothing about a GPU; its files carry ``"tiny": true`` and go to ``runs/bench_gpu_tiny``
unless ``--out`` says otherwise.

Every path is an argument: the busi_256 folder (``--data``, part 1 without ``--tiny``), the
study (``--study``, part 2); the files go to ``--out`` or under the working directory.

Example:
    >>> report = bench_gpu(tiny=True, out_dir=Path("/tmp/bench_gpu"), study="studies/quickstart.yaml")  # doctest: +SKIP
    >>> sorted(report)  # doctest: +SKIP
    ['bf16_fraction', 'glims_3d', 'train_throughput', 'trials_per_gpu']
"""
from __future__ import annotations

import gc
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch
import yaml
from PIL import Image

import nasseg
from nasseg.arch import build_model, load_arch
from nasseg.bench.disk_loop import DiskLoop
from nasseg.bench.record import iter_archs
from nasseg.configio import read_yaml
from nasseg.cost import profile
from nasseg.cost.counters import cuda_autocast, time_ms
from nasseg.data import load_dataset, resolve_data, split_dataset
from nasseg.data.folder import find_pairs
from nasseg.device import resolve_device
from nasseg.errors import ConfigError
from nasseg.search.space_parse import load_space
from nasseg.search.study import resolve_path
from nasseg.store import locate
from nasseg.train import TrainConfig, train
from nasseg.versions import versions

BF16_PEAK_TFLOPS = {"GH200": 989.4, "H200 NVL": 835.5, "H200": 989.4, "H100 NVL": 835.0, "H100 SXM": 989.4,
                    "H100 80GB HBM3": 989.4, "H100 PCIe": 756.0, "H100": 756.0, "A100": 312.0, "L40S": 362.1,
                    "L4": 121.0, "A10": 125.0, "RTX 4090": 165.2}
"""Dense (no sparsity) bf16 tensor-core peaks from NVIDIA's data sheets, by the device name's
words (``"H200"`` matches "NVIDIA H200", not "NVIDIA GH200"; ``"L4"`` not "L40S"); the first
key found wins, so the specific names come first."""
PARTS = ("train_throughput", "trials_per_gpu", "glims_3d", "bf16_fraction")
RUN_ORDER = ("train_throughput", "bf16_fraction", "glims_3d", "trials_per_gpu")
"""The order the parts run in: the longest last, so a time limit costs the fewest parts."""
KEYS = {
    "train_throughput": ("arch", "size", "train_cases", "batch_size", "epochs", "nasseg", "authors_loop", "ratio"),
    "trials_per_gpu": ("study", "trials", "epochs", "networks", "rows"),
    "glims_3d": ("arch", "input_shape", "precision", "params", "ms_per_step", "peak_memory_mb", "timing"),
    "bf16_fraction": ("formula", "macs_per_image", "images_per_s", "achieved_tflops", "peak_tflops",
                      "peak_source", "fraction"),
}
"""The documented keys of each part's JSON, besides ``part``, ``what``, ``tiny``, ``device`` and
``versions`` (``nasseg``/``authors_loop`` hold ``images_per_s``; each row of ``rows`` holds
``trials_per_gpu, complete, failed, wall_s, running_s, trials_per_hour, trials_per_hour_running,
speedup_vs_1, speedup_vs_1_running``)."""
def bench_gpu(*, tiny: bool = False, device: str = "cuda", out_dir: Path | None = None,
              data: str | Path | None = None, study: str | Path | None = None, epochs: int = 4, batch_size: int = 8, trials: int = 8,
              per_gpu: tuple[int, ...] | None = None, glims_patch: int = 128, workers: int = 8,
              peak_tflops: float | None = None, parts: tuple[str, ...] = PARTS,
              echo: Callable[[str], None] = lambda line: None) -> dict[str, Any]:
    """Run the four parts (see the module docstring) and write their files.

    Args:
        tiny: the CPU version (see above).
        device: ``cuda`` (or ``cuda:N``); ``cpu`` only with ``tiny``.
        out_dir: where the files go (default ``reports/bench/gpu``, tiny: ``runs/bench_gpu_tiny``,
            under the working directory).
        data: the busi_256 folder (part 1 without ``tiny``).
        study: the search study YAML part 2 times (the quickstart).
        epochs: epochs of each loop in part 1 (first not timed).
        batch_size: part 1's batch, both loops.
        trials: trials per setting of part 2.
        per_gpu: trials-per-GPU settings of part 2 (default 1, 2, 4, 8; tiny: 1, 2).
        glims_patch: cube side of part 3.
        workers: DataLoader workers of the authors'-style loop.
        peak_tflops: the device's dense bf16 peak, if it is not in :data:`BF16_PEAK_TFLOPS`.
        parts: which of :data:`PARTS` to run (in :data:`RUN_ORDER`).
        echo: called with a line when a part starts and ends.

    Returns:
        ``{part: report}`` for the parts run; a failed part's report holds ``error``.

    Raises:
        ConfigError: CUDA missing without ``tiny``, the data folder or study a part needs
            missing, an unknown part,
            or ``bf16_fraction`` without part 1 in this run or in ``out``.
    """
    unknown = [p for p in parts if p not in PARTS]
    if unknown or not parts:
        raise ConfigError(f"bench gpu: --parts: unknown part(s) {unknown or parts}; choose from {', '.join(PARTS)}")
    if tiny:
        device = "cpu"
        epochs, trials, per_gpu, workers = 2, 2, per_gpu or (1, 2), 2
    elif not (device.startswith("cuda") and torch.cuda.is_available()):
        raise ConfigError(f"bench gpu: device '{device}' is not an available CUDA device; "
                          "use --tiny for the CPU version")
    dev = resolve_device(device, "bench gpu --device")  # and a CUDA index this machine has
    per_gpu = per_gpu or (1, 2, 4, 8)
    out = Path(out_dir) if out_dir is not None else Path("runs/bench_gpu_tiny" if tiny else "reports/bench/gpu")
    out.mkdir(parents=True, exist_ok=True)
    common = {"tiny": tiny, "device": _device_name(dev), "versions": versions()}
    threads = torch.get_num_threads()
    if tiny:
        torch.set_num_threads(1)  # both loops alike, and no oversubscription on a busy CPU
    reports: dict[str, Any] = {}
    if "bf16_fraction" in parts and "train_throughput" not in parts:
        old = out / "train_throughput.json"
        earlier = json.loads(old.read_text()) if old.is_file() else {"error": "none"}
        if "error" in earlier:
            raise ConfigError(f"bench gpu: --parts bf16_fraction needs part 1's images/s: run train_throughput "
                              f"too, or keep a successful {old} from an earlier run")
        reports["train_throughput"] = earlier

    def write(part: str, report: dict[str, Any], t0: float) -> None:
        reports[part] = {"part": part, **common, **report, "seconds": time.perf_counter() - t0}
        (out / f"{part}.json").write_text(json.dumps(reports[part], indent=1) + "\n")
        (out / "summary.md").write_text(summary_markdown(reports))

    size = 32 if tiny else 256
    busi = _busi_folder(data) if "train_throughput" in parts and not tiny else None  # checked now
    if "trials_per_gpu" in parts and (study is None or not Path(study).is_file()):
        raise ConfigError(f"bench gpu: part 2 (trials_per_gpu) needs --study, the search study to time "
                          f"(studies/quickstart.yaml in the repository){'' if study is None else f'; no file {study}'}")
    try:
        with tempfile.TemporaryDirectory(prefix="nasseg-bench-gpu-") as tmp:
            run = {"train_throughput": lambda: train_throughput(busi or _tiny_cases(Path(tmp)), size,
                                                                dev, epochs, batch_size, workers),
                   "trials_per_gpu": lambda: trials_per_gpu(dev, trials, per_gpu, Path(tmp), tiny, Path(study),
                                                            save=lambda partial: write("trials_per_gpu", partial, t0)),
                   "glims_3d": lambda: glims_step(dev, 16 if tiny else glims_patch, tiny),
                   "bf16_fraction": lambda: bf16_fraction(reports.get("train_throughput", {}), size, dev,
                                                          peak_tflops)}
            for i, part in enumerate(p for p in RUN_ORDER if p in parts):
                echo(f"running {part} ({i + 1} of {len(parts)}) ...")
                t0 = time.perf_counter()
                try:
                    report = run[part]()
                except Exception as err:  # recorded, and the other parts still run
                    report = {"what": part, "error": f"{type(err).__name__}: {err}"}
                finally:
                    if dev.type == "cuda":  # what a part left cached is not the next part's to plan around
                        gc.collect()
                        torch.cuda.empty_cache()
                write(part, report, t0)
                echo(f"{part} {'FAILED: ' + report['error'] if 'error' in report else 'done'}"
                     f" in {reports[part]['seconds']:.1f} s")
    finally:
        torch.set_num_threads(threads)
    return reports


def _device_name(dev: torch.device) -> str:
    return torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"


def _tiny_cases(tmp: Path) -> Path:
    """``--tiny``'s part 1 data: 16 synthetic 32x32 cases written as PNG files under ``tmp``."""
    ds = load_dataset(resolve_data("synthetic", n_cases=16, size=32))
    folder = tmp / "tiny_cases"
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    for i, cid in enumerate(ds.case_ids):
        x = ds.images[i, 0].numpy()
        x = (255 * (x - x.min()) / max(float(np.ptp(x)), 1e-6)).astype(np.uint8)
        Image.fromarray(x).save(folder / "images" / f"{cid}.png")
        Image.fromarray((ds.labels[i].numpy() > 0).astype(np.uint8) * 255).save(folder / "masks" / f"{cid}.png")
    return folder


def _busi_folder(data: str | Path | None) -> Path:
    """Part 1's busi_256 folder (``--data``)."""
    if data is None:
        raise ConfigError("bench gpu: part 1 (train_throughput) needs --data, the busi_256 folder "
                          "(or --tiny, or --parts without train_throughput)")
    folder = Path(data)
    if not (folder / "images").is_dir():
        raise ConfigError(f"bench gpu: {folder}: no images/ folder; pass --data PATH_TO/busi_256")
    return folder


def failed(reports: dict[str, Any]) -> list[str]:
    """The parts whose report holds an error."""
    return [p for p, r in reports.items() if "error" in r]


def _rate(times: list[tuple[float, int]]) -> float:
    timed = times[1:] if len(times) > 1 else times
    return sum(n for _, n in timed) / sum(t for t, _ in timed)


def train_throughput(folder: Path, size: int, dev: torch.device, epochs: int, batch_size: int,
                     workers: int) -> dict[str, Any]:
    """Part 1: nasseg vs the authors'-style loop on the same cases (the training split)."""
    arch = load_arch("cmunext")
    data = resolve_data(str(folder), size=size)
    ds = load_dataset(data)
    split = split_dataset(ds, data.split)  # the training cases train() fits (near-duplicates grouped as there)
    cfg = TrainConfig.cmunext(epochs=epochs, eval_every=epochs, batch_size=batch_size, device=str(dev),
                              num_threads=None if dev.type == "cuda" else 1)
    res = train(arch, data, cfg, progress=False)
    ours = _rate(list(zip(res.epoch_seconds, res.epoch_images)))
    del res
    pairs = {p.stem: (p, m) for p, m in find_pairs(folder)}
    torch.manual_seed(cfg.seed)
    channels = ds.in_channels  # the network nasseg trained (busi_256 is grey: 1 input channel)
    model = build_model(arch.model_copy(update={"in_channels": channels, "out_channels": 1}))
    model = model.to(memory_format=torch.contiguous_format)
    loop = DiskLoop(model, [pairs[c] for c in split["train"]], size=size, batch_size=batch_size, device=dev,
                    workers=workers, epochs=epochs, channels=channels)
    theirs = _rate([loop.epoch() for _ in range(epochs)])
    return {"what": "training images/s, cmunext, nasseg train() vs the CMUNeXt authors' style of loop",
            "arch": "cmunext", "in_channels": channels, "data": str(folder), "size": size,
            "train_cases": len(split["train"]),
            "batch_size": batch_size, "epochs": epochs, "timed_epochs": max(1, epochs - 1),
            "nasseg": {"images_per_s": ours, "precision": "bf16 autocast" if dev.type == "cuda" else "fp32",
                       "layout": "channels_last", "data": "resident on the device, augmented there",
                       "optimizer": "fused SGD (CMUNeXt recipe)"},
            "authors_loop": {"images_per_s": theirs, "precision": "fp32", "layout": "contiguous",
                             "data": f"PNG files decoded by {workers} DataLoader workers, CPU augmentation",
                             "per_step": "loss.item(), IoU/Dice in NumPy on the host"},
            "ratio": ours / theirs}


def trials_per_gpu(dev: torch.device, trials: int, per_gpu: tuple[int, ...], tmp: Path, tiny: bool,
                   study_path: Path, save: Callable[[dict[str, Any]], None] = lambda report: None) -> dict[str, Any]:
    """Part 2: trials/hour of the study ``study_path`` (the quickstart) at several trials per device.

    Every setting trains the same ``trials`` networks (a seeded draw of distinct feasible
    architectures of the study's space, queued as its initial architectures) for the
    study's full epochs (early stopping off), so only the concurrency differs. Each setting
    runs ``nasseg search`` in a fresh process whose cost cache is its own folder under
    ``tmp`` (``NASSEG_CACHE_DIR`` given to that process only: every setting counts its
    networks from cold); at 2 or more trials per device that process spawns its workers.
    ``trials_per_hour`` counts the search's whole wall time in that process (worker start-up
    and CUDA start included); ``trials_per_hour_running`` counts from the first trial's start
    to the last one's end. ``save`` gets the report after every setting (a time limit keeps
    the rows measured).
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    base = read_yaml(study_path)
    space_file = resolve_path(base["space"], study_path, "space")
    space = load_space(space_file)
    networks = [a["arch"].model_dump(mode="json")
                for _, a in zip(range(trials), iter_archs(space, seed=0, in_channels=1, out_channels=1))]
    archs = [tmp / f"tpg_arch_{i}.yaml" for i in range(len(networks))]
    for path, net in zip(archs, networks):
        path.write_text(yaml.safe_dump(net))
    package_root = str(Path(nasseg.__file__).resolve().parents[1])  # the child imports this nasseg
    rows = []
    for n in per_gpu:
        study = {**base, "name": f"bench_tpg_{n}", "device": str(dev), "trials_per_device": n,
                 "budget": {"trials": trials, "time_s": 3600}, "output_dir": str(tmp / f"tpg_{n}"),
                 "space": str(space_file.resolve()), "initial_archs": [str(a) for a in archs],
                 "sampler": {"name": "random"}, "early_stopping": {"enabled": False}}
        study["train"] = {**base.get("train", {}), "num_threads": 1}
        if tiny:
            study.update(epochs=1, data={**base["data"], "size": 32, "synthetic": {**base["data"]["synthetic"], "n_cases": 12}}, device_memory_mb=2048)
        path = tmp / f"tpg_{n}.yaml"
        path.write_text(yaml.safe_dump(study))
        env = {**os.environ, "NASSEG_CACHE_DIR": str(tmp / f"cost_cache_{n}"),
               "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
        summary = _search_in_child(path, env)
        wall = summary["wall_s"]
        done = locate(path).get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        running = (max(t.datetime_complete for t in done) - min(t.datetime_start for t in done)).total_seconds() \
            if done else math.nan
        rows.append({"trials_per_gpu": n, "complete": len(done), "failed": summary["states"].get("fail", 0),
                     "wall_s": wall, "running_s": running, "trials_per_hour": 3600 * len(done) / wall,
                     "trials_per_hour_running": 3600 * len(done) / running if done else 0.0})
        shutil.rmtree(tmp / f"tpg_{n}", ignore_errors=True)
        for key in ("trials_per_hour", "trials_per_hour_running"):
            one = rows[0][key] or math.nan
            for r in rows:
                r[f"speedup_vs_1{key[len('trials_per_hour'):]}"] = r[key] / one
        report = {"what": "trials/hour of the quickstart study at N trials per GPU: the same networks and epochs "
                          "in every setting, each in a fresh process (cold cost cache, fresh storage; N > 1 in "
                          "workers it spawns)",
                  "study": str(study_path), "trials": trials, "epochs": study["epochs"],
                  "networks": networks, "rows": rows}
        save(report)
    return report


def _search_in_child(study: Path, env: dict[str, str]) -> dict[str, Any]:
    """``run_search(study)`` in a fresh Python process with environment ``env``: its wall
    seconds and trial states."""
    code = ("import json, sys, time; from nasseg.search.runner import run_search; t0 = time.perf_counter(); "
            "s = run_search(sys.argv[1], progress=False); "
            "print('\\nNASSEG_BENCH ' + json.dumps({'wall_s': time.perf_counter() - t0, 'states': s['states']}))")
    proc = subprocess.run([sys.executable, "-c", code, str(study)], env=env, capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("NASSEG_BENCH ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"nasseg search {study} exited {proc.returncode}: {proc.stderr.strip()[-2000:]}")
    return json.loads(lines[-1][len("NASSEG_BENCH "):])


def glims_step(dev: torch.device, patch: int, tiny: bool) -> dict[str, Any]:
    """Part 3: GLIMS forward + backward under bf16 autocast: ms per step and peak memory."""
    arch = load_arch("glims")
    if tiny:
        stages = [s.model_copy(update={"width": s.width // 4}) for s in arch.stages]
        arch = load_arch(arch.model_copy(update={"stages": stages[:2] + stages[4:], "name": "glims_tiny"})
                         .model_dump(mode="json"))
    ms, peak, shape, params = _time_train_step(arch, dev, patch, warmup=1 if tiny else 3, repeats=2 if tiny else 10)
    return {"what": "GLIMS forward + backward, channels_last_3d, batch 1",
            "precision": "bf16 autocast" if dev.type == "cuda" else "fp32 (CPU)",
            "arch": arch.name, "input_shape": shape, "params": params, "ms_per_step": ms,
            "peak_memory_mb": peak, "timing": "CUDA events" if dev.type == "cuda" else "perf_counter (CPU)",
            "memory": "allocator peak (max_memory_allocated)" if dev.type == "cuda" else "not measured on the CPU"}


def _time_train_step(arch: Any, dev: torch.device, patch: int, warmup: int,
                     repeats: int) -> tuple[float, float | None, list[int], int]:
    """Forward + backward of ``arch`` at batch 1 and ``patch``^3, channels_last_3d, under
    :func:`~nasseg.cost.counters.cuda_autocast`: ``(ms, peak MB, input shape, params)``."""
    fmt = torch.channels_last_3d
    model = build_model(arch).to(dev, memory_format=fmt).train()
    x = torch.randn(1, arch.in_channels, patch, patch, patch, device=dev).contiguous(memory_format=fmt)

    def step() -> None:
        with cuda_autocast(dev):  # bf16 on CUDA; the CPU (--tiny) runs fp32 (its bf16 kernels are slow emulations)
            out = model(x)
        outs = out if isinstance(out, (list, tuple)) else [out]
        sum(o.float().mean() for o in outs).backward()
        model.zero_grad(set_to_none=True)

    benchmark = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = dev.type == "cuda"  # as train() sets it for a fixed patch
    try:
        ms, peak = time_ms(step, dev, warmup, repeats)
    finally:
        torch.backends.cudnn.benchmark = benchmark
    return ms, peak, list(x.shape), sum(p.numel() for p in model.parameters())


def bf16_fraction(throughput: dict[str, Any], size: int, dev: torch.device,
                  peak_tflops: float | None) -> dict[str, Any]:
    """Part 4: achieved FLOP/s of the cmunext training step over the device's bf16 peak."""
    if "nasseg" not in throughput:
        raise RuntimeError("part 1 (train_throughput) has no images/s to convert")

    channels = throughput.get("in_channels", 3)
    arch = load_arch("cmunext").model_copy(update={"in_channels": channels})
    macs = profile(arch, (1, channels, size, size), latency=False).macs
    rate = throughput["nasseg"]["images_per_s"]
    achieved = 2 * macs * 3 * rate
    name = _device_name(dev)
    source = "--peak-tflops" if peak_tflops else None
    if peak_tflops is None:
        key = next((k for k in BF16_PEAK_TFLOPS if re.search(rf"(?<!\w){re.escape(k)}(?!\w)", name)), None)
        if key is not None:
            peak_tflops, source = BF16_PEAK_TFLOPS[key], f"data sheet ({key})"
    return {"what": "achieved share of the dense bf16 peak, cmunext training step",
            "formula": "2 * MACs * 3 * images/s / peak FLOP/s", "macs_per_image": macs, "size": size,
            "images_per_s": rate, "achieved_tflops": achieved / 1e12, "peak_tflops": peak_tflops,
            "peak_source": source or f"unknown for '{name}' (pass --peak-tflops)",
            "fraction": achieved / (peak_tflops * 1e12) if peak_tflops else None}


def summary_markdown(r: dict[str, Any]) -> str:
    """The Markdown summary of the parts in ``r`` (a part not run or failed says so)."""
    first = next(iter(r.values()))
    tiny = " (--tiny: CPU smoke run, not GPU numbers)" if first["tiny"] else ""
    lines = [f"# nasseg bench gpu on {first['device']}{tiny}", ""]
    titles = {"train_throughput": "1. Training throughput, cmunext",
              "trials_per_gpu": "2. Trials per GPU (quickstart study)",
              "glims_3d": "3. GLIMS forward + backward", "bf16_fraction": "4. Share of the bf16 peak, cmunext training"}
    for part in PARTS:
        lines += [f"## {titles[part]}", ""]
        rep = r.get(part)
        if rep is None or "error" in rep:
            lines += ["not run" if rep is None else f"**failed** after {rep['seconds']:.1f} s: `{rep['error']}`", ""]
            continue
        lines += [*_SECTIONS[part](rep), ""]
    lines.append(f"torch {first['versions']['torch']}, nasseg {first['versions']['nasseg']}.")
    return "\n".join(lines) + "\n"


def _throughput_lines(t: dict[str, Any]) -> list[str]:
    return [f"{t['data']}, {t['size']}x{t['size']}, {t['train_cases']} training cases, batch {t['batch_size']}, "
            f"{t['epochs']} epochs per loop (first not timed).", "",
            "| loop | images/s | precision | data |", "|---|---|---|---|",
            f"| nasseg | {t['nasseg']['images_per_s']:.1f} | {t['nasseg']['precision']} | {t['nasseg']['data']} |",
            f"| authors' style | {t['authors_loop']['images_per_s']:.1f} | fp32 | {t['authors_loop']['data']}; "
            f"{t['authors_loop']['per_step']} |", "",
            f"**ratio nasseg / authors' loop: {t['ratio']:.2f}**"]


def _trials_lines(q: dict[str, Any]) -> list[str]:
    lines = [f"The same {q['trials']} networks, {q['epochs']} epoch{'s' * (q['epochs'] != 1)} each, in every setting. Wall: from the "
             "search's start in its own fresh process (CUDA and worker start-up included); running: from the "
             "first trial's start to the last one's end. At 1 per GPU the trials run in that process; at 2 or "
             "more in the worker processes it spawns, whose start-up only the wall rate counts.", "",
             "| trials per GPU | complete | failed | wall s | trials/hour (wall) | vs 1 | running s | "
             "trials/hour (running) | vs 1 |", "|---|---|---|---|---|---|---|---|---|"]
    for row in q["rows"]:
        lines.append(f"| {row['trials_per_gpu']} | {row['complete']} | {row['failed']} | {row['wall_s']:.1f} | "
                     f"{row['trials_per_hour']:.0f} | {row['speedup_vs_1']:.2f}x | {row['running_s']:.1f} | "
                     f"{row['trials_per_hour_running']:.0f} | {row['speedup_vs_1_running']:.2f}x |")
    return lines


def _glims_lines(g: dict[str, Any]) -> list[str]:
    peak = "n/a" if g["peak_memory_mb"] is None else f"{g['peak_memory_mb']:.0f} MB"
    return [f"{g['arch']} at {'x'.join(map(str, g['input_shape']))}, {g['precision']}: "
            f"**{g['ms_per_step']:.1f} ms** per step ({g['timing']}), peak memory {peak}."]


def _fraction_lines(f: dict[str, Any]) -> list[str]:
    frac = "n/a" if f["fraction"] is None else f"{100 * f['fraction']:.1f}%"
    return [f"{f['formula']} = 2 x {f['macs_per_image'] / 1e9:.2f} G x 3 x {f['images_per_s']:.1f} = "
            f"{f['achieved_tflops']:.2f} TFLOP/s of {f['peak_tflops'] or 'n/a'} ({f['peak_source']}): **{frac}**."]


_SECTIONS = {"train_throughput": _throughput_lines, "trials_per_gpu": _trials_lines, "glims_3d": _glims_lines,
             "bf16_fraction": _fraction_lines}
