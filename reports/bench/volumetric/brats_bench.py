"""Benchmark (not a CI test): `nasseg train` with the defaults on a generated BraTS-sized set.

60 cases of 4 x 240 x 240 x 155 float32 (spacing 1 mm, ~8.5 GB uncompressed NIfTI), 3 nested
classes (1 edema, 2 non-enhancing core, 3 enhancing: whole tumour 1+2+3 > core 2+3 > 3) inside
a brain-like non-zero ellipsoid. Cases are generated one at a time (peak ~0.6 GB).

Run twice with a fresh cache: the first run plans, preprocesses into the cache, trains one
epoch, validates by sliding window and scores the test cases; the second starts from the
cache and is stopped ``--second-for`` seconds after training starts (it measures start-up,
the first run measures everything else). Peak RSS comes from
`/usr/bin/time -v`, "training starts" from the time the plan line is printed (the engine prints
it after loading and planning, right before the first step).

    nice -n 15 python reports/bench/volumetric/brats_bench.py --root /tmp/brats_like
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import nibabel as nib
import numpy as np

SHAPE = (240, 240, 155)
MODALITIES = {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"}
LABELS = {"0": "background", "1": "edema", "2": "non-enhancing tumor", "3": "enhancing tumour"}


def make_case(i: int) -> tuple[np.ndarray, np.ndarray]:
    """One case: image [X, Y, Z, 4] float32, label [X, Y, Z] uint8."""
    rng = np.random.default_rng(i)
    grid = np.ogrid[tuple(slice(0, n) for n in SHAPE)]
    brain_c = np.array([120, 120, 78]) + rng.integers(-6, 7, 3)
    brain_r = np.array([70, 85, 65]) + rng.integers(-5, 6, 3)
    rb = sum(((g - c) / r) ** 2 for g, c, r in zip(grid, brain_c, brain_r))
    brain = rb < 1.0
    tum_c = brain_c + rng.integers(-25, 26, 3)
    tum_r = rng.uniform(14, 26)
    rt = np.sqrt(sum(((g - c) / tum_r) ** 2 for g, c in zip(grid, tum_c)))
    label = np.zeros(SHAPE, np.uint8)
    label[(rt < 1.0) & brain] = 1
    label[(rt < 0.55) & brain] = 2
    label[(rt > 0.35) & (rt < 0.55) & brain] = 3
    del rt, rb
    means = {0: [1.0, 2.2, 1.4, 1.6], 1: [1.0, 0.8, 0.7, 0.9], 2: [1.0, 1.2, 1.1, 2.5], 3: [1.0, 1.0, 1.3, 2.0]}
    image = np.zeros((*SHAPE, 4), np.float32)
    for m in range(4):
        scale = float(rng.uniform(200, 2000))
        ch = np.zeros(SHAPE, np.float32)
        ch[brain] = 1.0
        for c in (1, 2, 3):
            ch[label == c] = means[m][c]
        ch += 0.25 * rng.standard_normal(SHAPE, dtype=np.float32)
        ch *= scale
        ch[~brain] = 0.0
        image[..., m] = ch
    return image, label


def generate(root: Path, n: int) -> None:
    for sub in ("imagesTr", "labelsTr"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    entries = []
    for i in range(n):
        name = f"brats_{i:03d}.nii"
        entries.append({"image": f"./imagesTr/{name}", "label": f"./labelsTr/{name}"})
        if (root / "labelsTr" / name).is_file():
            continue
        image, label = make_case(i)
        nib.save(nib.Nifti1Image(image, np.eye(4)), str(root / "imagesTr" / name))
        nib.save(nib.Nifti1Image(label, np.eye(4)), str(root / "labelsTr" / name))
        del image, label
        print(f"generated {i + 1}/{n}", flush=True)
    meta = {"name": "BraTS-like (generated)", "modality": MODALITIES, "labels": LABELS,
            "regions": {"WT": [1, 2, 3], "TC": [2, 3], "ET": [3]},
            "numTraining": n, "training": entries}
    (root / "dataset.json").write_text(json.dumps(meta, indent=1))


def run(cmd: list[str], log: Path, env: dict[str, str], stop_after_start_s: float | None = None) -> dict:
    """Run ``cmd`` under /usr/bin/time -v; seconds until the plan line, peak RSS, wall.

    ``stop_after_start_s``: end the run (SIGTERM to the trainer; /usr/bin/time still reports
    it) that many seconds after training started, when only its start-up is measured."""
    t0 = time.time()
    started = None
    with open(log, "w") as out:
        proc = subprocess.Popen(["/usr/bin/time", "-v", *cmd], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, env=env)
        for line in proc.stdout:
            out.write(f"[{time.time() - t0:8.1f}s] {line}")
            out.flush()
            if started is None and line.startswith("plan:"):
                started = time.time() - t0
                if stop_after_start_s is not None:
                    threading.Timer(stop_after_start_s, subprocess.run,
                                    [["pkill", "-TERM", "-P", str(proc.pid)]]).start()
        proc.wait()
    text = log.read_text()
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    return {"command": " ".join(cmd), "exit": proc.returncode, "seconds_to_training": started,
            "stopped_after_start_s": stop_after_start_s,
            "wall_s": round(time.time() - t0, 1), "peak_rss_gib": int(rss.group(1)) / 2**20 if rss else None}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", default="/tmp/brats_like")
    ap.add_argument("--cases", type=int, default=60)
    ap.add_argument("--cache", default="/tmp/brats_like_cache")
    ap.add_argument("--out", default="reports/bench/volumetric")
    ap.add_argument("--extra", nargs="*", default=[], help="extra `nasseg train` flags")
    ap.add_argument("--runs", nargs="+", default=["first", "second"], choices=["first", "second"],
                    help="which runs (the results of earlier runs in brats_bench.json are kept)")
    ap.add_argument("--second-for", type=float, default=120.0,
                    help="seconds the second run trains before it is stopped (it measures start-up)")
    args = ap.parse_args()
    root, out = Path(args.root), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t = time.time()
    generate(root, args.cases)
    gen_s = time.time() - t
    # unbuffered: the plan line must reach us when it is printed, not when a pipe buffer fills
    env = {**os.environ, "NASSEG_CACHE_DIR": args.cache, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = str(Path.cwd())
    cmd = [sys.executable, "-c", "import sys; from nasseg.cli import main; sys.exit(main(sys.argv[1:]))", "train", "studies/arch/unet3d_small.yaml", "--data", str(root),
           "--epochs", "1", "--device", "cpu", "--threads", "1", *args.extra]  # the plan line needs the progress output on
    saved = out / "brats_bench.json"
    results = json.loads(saved.read_text()) if saved.is_file() else {}
    results.update({"generate_s": round(gen_s, 1), "cases": args.cases})
    for name in args.runs:
        results[name] = run([*cmd, "--run-dir", f"/tmp/brats_like_runs/{name}"], out / f"brats_{name}.log", env,
                            stop_after_start_s=args.second_for if name == "second" else None)
        results[name]["load_average_1min_at_end"] = os.getloadavg()[0]
        print(name, results[name], flush=True)
        saved.write_text(json.dumps(results, indent=1))
    plan = Path("/tmp/brats_like_runs/first/plan.json")
    results["plan"] = json.loads(plan.read_text()) if plan.is_file() else None
    saved.write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
