"""``nasseg train``: train one network on a dataset and report held-out metrics.

Examples::

    nasseg train cmunext_s --data ../shared/data/dsb2018_96 --size 96 --epochs 5
    nasseg train cmunext_s --data ../shared/data/busi_256 --size 128 --recipe cmunext --epochs 10
    nasseg train studies/arch/unet3d_small.yaml --data ../shared/data/msd_hippocampus --epochs 6
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from rich.table import Table

from nasseg.cli.console import make_console
from nasseg.cli.vocabulary import add_no_progress, add_out
from nasseg.data import DataConfig, resolve_data
from nasseg.data.check import split_notes
from nasseg.errors import ConfigError
from nasseg.train import TrainConfig


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(p) for p in text.replace("x", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}': expected integers like 96 or 40,56,40") from None
    if any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"'{text}': sizes must be positive")
    return values


def _ints_or_zero(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in text.split(","))
    except ValueError:
        raise ConfigError(f"--flip '{text}': expected all, none, or axes like 0,2") from None


def data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default="synthetic",
                   help="'synthetic' (default), 'synthetic3d', a dataset folder, or a data-config YAML")
    p.add_argument("--size", type=_ints, help="2D: resize to this size (96 or 128,96); synthetic: image size "
                                              "(default: native size; synthetic 64 in 2D, 32 in 3D)")
    p.add_argument("--patch-size", type=_ints, help="3D training patch, e.g. 40,56,40 (default: median shape)")
    p.add_argument("--window-size", type=_ints, help="3D evaluation sliding window (default: the patch)")
    p.add_argument("--flip", type=str, help="flip axes: 'all' (default), 'none', or spatial axes like 0 or 0,2")
    p.add_argument("--max-cases", type=int, help="use a seeded stratified sample of N cases (quick runs; default: all)")
    p.add_argument("--val-fraction", type=float, help="validation fraction of the random split (default 0.2)")
    p.add_argument("--test-fraction", type=float, help="test fraction, scored once after selection (default 0.2)")
    p.add_argument("--stratify", help="'presence' (default), 'none', a --split-table column or 'regex:PATTERN'")
    p.add_argument("--group", help="keep groups together: a --split-table column or 'regex:PATTERN' on case ids "
                                   "(default: no groups)")
    p.add_argument("--split-table", help="CSV with a case_id column and group/stratum columns (default: none)")
    p.add_argument("--duplicates", choices=("group", "ignore"),
                   help="near-duplicate families (nasseg check DATA): 'group' keeps each on one side of the "
                        "split (default), 'ignore' splits as if there were none")
    p.add_argument("--spacing", type=float, nargs=2, metavar=("ROW_MM", "COL_MM"),
                   help="2D pixel spacing in mm, so that HD95/ASSD/NSD are in mm (default: none, distances in pixels)")
    p.add_argument("--kfold", type=int, metavar="K",
                   help="k-fold split of the non-test cases (with --fold; default: a random split)")
    p.add_argument("--fold", type=int, help="validation fold of --kfold (0-based; default 0)")
    p.add_argument("--split-file", help="JSON with 'train', 'val' and 'test' case-id lists (e.g. a run's "
                                        "split.json; default: none)")
    p.add_argument("--split-seed", type=int, help="seed of the random/k-fold split (default 0)")


def resolve_data_args(args: argparse.Namespace):
    size = args.size[0] if args.size and len(args.size) == 1 else args.size
    spec: Any = args.data
    if str(spec).endswith((".yaml", ".yml")):
        spec = DataConfig.from_yaml(spec)
    method = "kfold" if args.kfold else ("file" if args.split_file else None)
    flip = None
    if args.flip:
        flip = {"all": True, "none": False}.get(args.flip.lower()) if args.flip.lower() in ("all", "none") \
            else list(_ints_or_zero(args.flip))
    cfg = resolve_data(spec, size=size, patch_size=args.patch_size, window_size=args.window_size, max_cases=args.max_cases,
                       val_fraction=args.val_fraction, test_fraction=args.test_fraction,
                       stratify=args.stratify, group=args.group, table=args.split_table, duplicates=args.duplicates,
                       spacing=tuple(args.spacing) if args.spacing else None, k=args.kfold, fold=args.fold,
                       file=args.split_file, method=method, flip=flip)
    if args.split_seed is not None:
        cfg = cfg.model_copy(update={"split": cfg.split.model_copy(update={"seed": args.split_seed})})
    return cfg


def _train_config(args: argparse.Namespace):
    base: dict[str, Any] = {}
    if args.train_config:
        base = TrainConfig.from_yaml(args.train_config).model_dump(exclude_unset=True)
    if args.recipe:
        base["recipe"] = args.recipe
    flags = {"epochs": args.epochs, "steps_per_epoch": args.steps_per_epoch, "batch_size": args.batch_size,
             "lr": args.lr, "optimizer": args.optimizer,
             "schedule": args.schedule, "weight_decay": args.weight_decay, "patience": args.patience,
             "eval_every": args.eval_every, "seed": args.seed, "device": args.device, "amp": args.amp,
             "num_threads": args.threads, "ce_weight": args.ce_weight, "dice_weight": args.dice_weight}
    base.update({k: v for k, v in flags.items() if v is not None})
    return TrainConfig.build(base, where="nasseg train")


def cmd_train(args: argparse.Namespace) -> int:
    from nasseg.arch import load_arch  # lazy: CLI startup (torch)
    from nasseg.train import train  # lazy: CLI startup (torch)
    from nasseg.train.resolved import ResolvedRun  # lazy: CLI startup (torch)
    from nasseg.train.result import claim_run_dir, resumable  # lazy: CLI startup (torch)

    if args.resume:
        resumable(args.out)
    elif args.out:  # before anything is loaded: an earlier run is never replaced unasked
        claim_run_dir(args.out, overwrite=args.overwrite, remove=False)
    arch = load_arch(args.arch)
    cfg = _train_config(args)
    data = resolve_data_args(args)
    name = arch.name or Path(str(args.arch)).stem
    run_dir = Path(args.out) if args.out else \
        Path("runs/train") / f"{time.strftime('%Y%m%d-%H%M%S')}-{name}-{data.name}"
    console = make_console()
    batch = cfg.batch_size if "batch_size" in cfg.model_fields_set or arch.spatial_dims == 2 else "planned (3D)"
    console.print(f"[bold]nasseg train[/] {name} on {data.name}: {cfg.epochs} epochs, batch {batch}, "
                  f"{cfg.optimizer} lr {cfg.lr} ({cfg.schedule}) -> {run_dir}")
    for line in split_notes(data):  # near-duplicate families kept together, undeclared groups
        console.print(line, markup=False)
    if not args.resume:
        claim_run_dir(run_dir, overwrite=args.overwrite)  # --overwrite: the earlier run's files go now
    res = train(arch, data, cfg, run_dir=run_dir, progress=not args.no_progress, resume=args.resume)
    line = ResolvedRun.from_dict(res.config["resolved"]).describe()
    if line is not None and args.no_progress:  # with progress on, train() printed it before training
        console.print(line, markup=False)
    console.print(metrics_table(res))
    stop = f", stopped early ({res.stop_reason})" if res.stopped_early else ""
    console.print(f"best epoch {res.best_epoch} (chosen on val): mean per-case Dice {res.best['dice']:.4f} over "
                  f"{len(res.split['val'])} val cases; {res.num_params:,} parameters, "
                  f"{res.seconds:.1f} s{stop}")
    if res.test is not None:
        resolved = res.config.get("resolved", {})
        native, unit = resolved.get("scored_at", "the training size"), resolved.get("distance_unit", "voxels")
        console.print(f"test (scored once, {len(res.split['test'])} cases at {native}): Dice "
                      f"{res.test['dice']:.4f} (pooled {res.test.get('dice_pooled', float('nan')):.4f}), "
                      f"HD95 {res.test['hd95']:.2f} {unit}, NSD {res.test.get('nsd', float('nan')):.4f}")
    console.print(f"run folder: {run_dir}")
    return 0


def metrics_table(res) -> Table:
    """Per-epoch validation metrics, the best epoch marked."""
    extra = sorted(k for k in res.best if k.startswith("dice_"))
    table = Table(title="validation metrics (per-case means at native size; HD95 in mm, or voxels without spacing)")
    for col in ["epoch", "train loss", "Dice", "IoU", "HD95", *extra, "lr", "s"]:
        table.add_column(col, justify="right")
    for h in res.history:
        mark = " *" if h["epoch"] == res.best_epoch else ""
        table.add_row(f"{h['epoch']}{mark}", f"{h['train_loss']:.4f}", f"{h['dice']:.4f}", f"{h['iou']:.4f}",
                      f"{h['hd95']:.2f}", *[f"{h[k]:.4f}" for k in extra], f"{h['lr']:.2e}",
                      f"{h['seconds']:.1f}")
    return table


def _train_defaults() -> dict[str, Any]:
    """TrainConfig's defaults, which the help texts show (the flags default to ``None``: not set)."""
    return {k: f.default for k, f in TrainConfig.model_fields.items()}


def register(sub) -> None:
    """Add ``train`` to the ``nasseg`` command line (``nasseg bench train`` shares its data options)."""
    p = sub.add_parser("train", help="train one network and report held-out Dice/IoU/HD95",
                       description="Train a preset or architecture YAML on a dataset; writes a run folder "
                                   "(config.json, split.json, history.csv, metrics.json, per_case.csv, checkpoint.pt).")
    p.add_argument("arch", metavar="PRESET_OR_YAML", help="a preset name (nasseg presets) or an architecture YAML")
    data_args(p)
    d = _train_defaults()
    p.add_argument("--epochs", type=int, help=f"passes over the training cases (default: {d['epochs']})")
    p.add_argument("--steps-per-epoch", type=int, help="training steps per epoch (default: cases / batch)")
    p.add_argument("--batch-size", type=int,
                   help=f"cases (2D) or patches (3D) per step (default: {d['batch_size']}; 3D: planned)")
    p.add_argument("--lr", type=float, help=f"peak learning rate (default: {d['lr']})")
    p.add_argument("--optimizer", choices=["adamw", "sgd"], help=f"the optimizer (default: {d['optimizer']})")
    p.add_argument("--schedule", choices=["cosine", "poly", "constant"],
                   help=f"per-step learning-rate decay (default: {d['schedule']})")
    p.add_argument("--weight-decay", type=float, help=f"AdamW / SGD weight decay (default: {d['weight_decay']})")
    p.add_argument("--ce-weight", type=float, help=f"weight of BCE/CE (default: {d['ce_weight']}; CMUNeXt: 0.5)")
    p.add_argument("--dice-weight", type=float, help=f"weight of the soft Dice loss (default: {d['dice_weight']})")
    p.add_argument("--recipe", choices=["default", "cmunext"],
                   help="cmunext = SGD 0.01, momentum 0.9, wd 1e-4, poly 0.9, batch 8, 0.5*BCE + Dice (default: default)")
    p.add_argument("--train-config", help="YAML of TrainConfig fields (flags override it; default: none)")
    p.add_argument("--patience", type=int, help="stop after N evaluations without a better Dice (default: never)")
    p.add_argument("--eval-every", type=int, help=f"validate every N epochs, and after the last (default: {d['eval_every']}; unset, a CPU 3D plan chooses it)")
    p.add_argument("--seed", type=int, help=f"seeds weights, batch order and augmentations (default: {d['seed']})")
    p.add_argument("--device", help="cpu, cuda or auto (default)")
    p.add_argument("--amp", choices=["auto", "bf16", "fp16", "off"],
                   help=f"mixed precision on CUDA (default: {d['amp']})")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: auto, the cores the process may use, "
                                               "at most 8, whatever the load: set 1 on a busy machine)")
    add_out(p, "the run folder (default: runs/train/<time>-<arch>-<data>); an earlier run there is refused")
    p.add_argument("--overwrite", action="store_true", help="replace the earlier run in -o/--out")
    p.add_argument("--resume", action="store_true",
                   help="continue the killed training in -o/--out from its checkpoint_latest.pt (same command)")
    add_no_progress(p)
    p.set_defaults(func=cmd_train)
