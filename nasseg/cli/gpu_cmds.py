"""``nasseg bench gpu``: the one-command device benchmark (see :mod:`nasseg.train.bench_gpu`).

Examples::

    nasseg bench gpu                       # on a CUDA machine: reports/bench/gpu/*.json + summary.md
    nasseg bench gpu --tiny --out /tmp/b   # the same code on the CPU in seconds (not GPU numbers)
    nasseg bench gpu --parts glims_3d      # one part again (the others' files stay)
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console


def add_bench(bench_sub: Any) -> None:
    """Add ``gpu`` to the sub-parsers of ``nasseg bench``."""
    p = bench_sub.add_parser("gpu", help="GPU benchmark: training images/s, trials per GPU, GLIMS 3D, bf16 share",
                             description="Four measurements on one CUDA device, written to "
                                         "reports/bench/gpu/*.json and summary.md (under 6 minutes on an "
                                         "H100/H200). --tiny runs the same code on the CPU in seconds.")
    p.add_argument("--tiny", action="store_true", help="CPU smoke version (default out: runs/bench_gpu_tiny)")
    p.add_argument("--device", default="cuda", help="CUDA device (default cuda)")
    p.add_argument("--data", default=None, help="the busi_256 folder (default ../shared/data/busi_256)")
    p.add_argument("--out", default=None, help="output folder (default reports/bench/gpu)")
    p.add_argument("--epochs", type=int, default=4, help="epochs per loop in part 1 (first not timed)")
    p.add_argument("--trials", type=int, default=8, help="quickstart trials per setting in part 2")
    p.add_argument("--per-gpu", default=None, help="trials-per-GPU settings of part 2 (default 1,2,4,8; tiny 1,2)")
    p.add_argument("--parts", default=None,
                   help="comma-separated subset of train_throughput,trials_per_gpu,glims_3d,bf16_fraction")
    p.add_argument("--peak-tflops", type=float, default=None,
                   help="the device's dense bf16 peak when its name is not in the built-in table")
    p.set_defaults(func=_bench_gpu)


def _bench_gpu(args: argparse.Namespace) -> int:
    from nasseg.errors import ConfigError
    from nasseg.train.bench_gpu import PARTS, bench_gpu, failed, summary_markdown

    try:
        per_gpu = tuple(int(x) for x in args.per_gpu.split(",")) if args.per_gpu else None
    except ValueError:
        raise ConfigError(f"--per-gpu: '{args.per_gpu}' is not a comma-separated list of integers") from None
    parts = tuple(x.strip() for x in args.parts.split(",")) if args.parts else PARTS
    console = Console()
    reports = bench_gpu(tiny=args.tiny, device=args.device, out_dir=Path(args.out) if args.out else None,
                        data=args.data, epochs=args.epochs, trials=args.trials, per_gpu=per_gpu,
                        peak_tflops=args.peak_tflops, parts=parts,
                        echo=lambda line: console.print(line, markup=False, highlight=False))
    console.print(summary_markdown(reports), markup=False, highlight=False, soft_wrap=True)
    bad = failed(reports)
    if bad:
        console.print(f"nasseg: bench gpu: {len(bad)} part(s) failed: {', '.join(bad)} (reasons in their files)",
                      markup=False, highlight=False)
    return 1 if bad else 0
