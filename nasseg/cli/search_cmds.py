"""``nasseg search``, ``nasseg pareto`` and ``nasseg export``.

Examples::

    nasseg search studies/quickstart.yaml                 # run, or resume, the study
    nasseg search studies/quickstart.yaml --backend ray --workers 2
    nasseg pareto studies/quickstart.yaml                 # the Pareto set as a table
    nasseg export studies/quickstart.yaml --trial 8 -o arch.yaml
    nasseg export studies/quickstart.yaml#8 --format onnx -o model.onnx   # trained, parity-checked
"""
from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from nasseg.cli.console import make_console, quiet_libraries
from nasseg.cli.infer_cmds import add_export_args, export_model
from nasseg.cli.vocabulary import add_no_progress, add_out, add_study
from nasseg.errors import ConfigError, NothingFound, mask_url
from nasseg.outputs import check_file
from nasseg.search.study import load_study_config
from nasseg.search.verdict import search_verdict
from nasseg.store import hypervolume, locate, objectives_of, study_record


def register(sub: Any) -> None:
    """Add ``search``, ``pareto`` and ``export`` to the top-level sub-parsers."""
    p = sub.add_parser("search", help="run or resume a multi-objective architecture search",
                       description="Run the study a YAML describes; running it again resumes it.")
    p.add_argument("study", help="study YAML (e.g. studies/quickstart.yaml)")
    p.add_argument("--backend", choices=["optuna", "ray"], default="optuna",
                   help="optuna: worker processes sharing the storage; ray: Ray Tune + OptunaSearch")
    p.add_argument("--workers", type=int, default=None, help="parallel trials (default: the study's)")
    p.add_argument("--trials", type=int, default=None, help="networks to train in all, replacing the study's budget.trials "
                        "(default: the study's)")
    p.add_argument("--time", type=float, default=None, metavar="SECONDS",
                   help="override the study's time budget: no new trial starts after it (default: the study's)")
    p.add_argument("--epochs", type=int, default=None, help="override the epochs per trial (default: the study's)")
    p.add_argument("--device", default=None, help="override the study's device(s): cpu, cuda, cuda:N or auto "
                        "(default: the study's)")
    add_out(p, "the study's output folder, replacing its output_dir (default: the study's, or runs/NAME; "
               "a study with other epochs is another study: put it elsewhere)", dest="output_dir")
    p.add_argument("--trials-per-gpu", type=int, default=None, metavar="N",
                   help="run N trials at once on each device, admitted by estimated memory "
                        "(optuna: N x devices workers; ray: 1/N GPU per trial; default: the study's)")
    p.add_argument("--address", default=None, help="ray: address of an existing cluster (default: local)")
    add_no_progress(p)
    p.set_defaults(func=_search)

    p = sub.add_parser("pareto", help="print a study's Pareto set",
                       description="Print the Pareto set (feasible trials, one per architecture).")
    _target(p)
    p.add_argument("--all", action="store_true", help="print every trial, not only the Pareto set")
    p.add_argument("--csv", default=None, help="also write the table to this CSV file (default: none)")
    p.set_defaults(func=_pareto)

    p = sub.add_parser("export", help="write a trial's architecture (YAML) or a trained network (ONNX, TorchScript)",
                       description="Write a trial's architecture, ready for `nasseg train` and `nasseg profile`; "
                                   "or, with --format onnx|torchscript, a trained network (run folder or "
                                   "STUDY#N) checked against PyTorch.")
    _target(p)
    p.add_argument("--trial", type=int, help="trial number (see `nasseg pareto`), or write STUDY#N (default: none)")
    add_out(p, "the file to write (default: none for yaml; NAME.onnx / NAME.pt for onnx / torchscript)",
            dest="output")

    add_export_args(p)
    p.set_defaults(func=_export)


def _target(p: argparse.ArgumentParser) -> None:
    p.add_argument("study", help="study YAML, run folder, study.db/.log file or storage URL")
    add_study(p, "study name, when the storage holds several (default: its only study)")


def _search(args: argparse.Namespace) -> int:
    command = "nasseg " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    quiet_libraries(args)
    if args.backend == "ray":
        from nasseg.search.ray_backend import run_search_ray  # lazy: ray is optional (extra "ray")

        summary = run_search_ray(args.study, workers=args.workers, trials=args.trials, address=args.address,
                                 progress=not args.no_progress, command=command, overrides=_overrides(args),
                                 trials_per_device=args.trials_per_gpu, say=make_console().print)
    else:
        from nasseg.search.runner import run_search  # lazy: CLI startup (torch)

        summary = run_search(args.study, workers=args.workers, trials=args.trials,
                             progress=not args.no_progress, command=command, overrides=_overrides(args),
                             trials_per_device=args.trials_per_gpu, say=make_console().print)
    console = make_console()
    outcomes = ", ".join(f"{n} {k}" for k, n in summary["outcomes"].items())
    console.print(f"study [bold]{summary['study']}[/]: {outcomes}; storage {escape(mask_url(summary['storage']))}")
    if summary["outcomes"].get("running"):
        console.print(f"[yellow]{summary['outcomes']['running']} trial(s) still running in another process; "
                      "this one found nothing left to start (the table below is the front so far)[/]")
    rejected = summary["infeasible"] + summary["invalid"] + summary["duplicate"]
    console.print(f"{summary['trained']} distinct networks trained (what budget.trials counts); "
                  f"{summary['proposals']} proposals, {rejected} rejected before training "
                  f"({summary['infeasible']} over a limit, {summary['invalid']} invalid, "
                  f"{summary['duplicate']} already trained)")
    if summary["wall_seconds"]:
        console.print(f"screening proposals took {summary['screen_seconds']:.1f} s of the study's "
                      f"{summary['wall_seconds']:.0f} s ({summary['screen_seconds'] / summary['wall_seconds']:.1%})")
    if _budget_reached(args, summary["trained"]):
        console.print(f"budget reached ({summary['trained']} trained networks); use --trials to continue")
    if summary.get("verdict"):
        raise NothingFound(f"study {summary['study']}: {summary['verdict']}")
    _print_front(summary["storage"], summary["study"], console)
    return 0


def _budget_reached(args: argparse.Namespace, trained: int) -> bool:
    """Whether the trial budget (``--trials`` or the study's ``budget.trials``, which counts
    trained networks) is spent, so that running the study again trains nothing."""
    limit = args.trials if args.trials is not None else load_study_config(args.study).budget.trials
    return limit is not None and trained >= limit


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Study fields the command line replaces (``None`` = the study's own)."""
    return {"time_s": args.time, "epochs": args.epochs, "device": args.device, "output_dir": args.output_dir}


def _print_front(target: str, name: str | None, console: Console, every: bool = False,
                 csv: str | None = None) -> None:
    from nasseg.search.confirm import confirm_columns, confirmed_table, interval_note  # lazy: CLI startup (pandas)
    from nasseg.search.results import front_table, trial_table  # lazy: CLI startup (pandas)

    study = locate(target, name)
    if not study.get_trials(deepcopy=False):
        raise NothingFound(f"{target}: study {study.study_name} holds no trials yet; run `nasseg search` "
                           "on its study YAML first")
    table = trial_table(study) if every else front_table(study)
    if csv:
        table.to_csv(csv, index=False)
    objs = {o.name: o for o in objectives_of(study)}
    out = Table(title=f"{study.study_name}: {'all trials' if every else 'Pareto set'} "
                      f"(dice on the validation cases; normalised HV {hypervolume(study):.4f})")
    cols = ["trial", *objs, "epochs", "arch"] + (["state", "note"] if every else ["note"])
    confirmed = confirm_columns(study, table)
    if confirmed is not None and "dice" in cols:  # validation and confirmed test values side by side
        table = confirmed
        cols[cols.index("dice") + 1:cols.index("dice") + 1] = ["test dice [95% CI]", "stays"]
    for c in cols:
        out.add_column(objs[c].column if c in objs else c, overflow="fold" if c == "note" else "ellipsis",
                       justify="right" if c in ("trial", "epochs", *objs) else "left")
    for _, row in table.iterrows():
        out.add_row(*[escape(objs[c].text(row.get(c)) if c in objs else _cell(c, row.get(c))) for c in cols])
    console.print(out)
    if confirmed is not None:
        info = study_record(study).confirm
        console.print(f"dice = validation (selection); test = confirmed by `nasseg confirm` "
                      f"({info['seeds']} seeds x {info['epochs']} epochs; {interval_note(confirmed_table(study))}); "
                      "normalised HV of "
                      f"the confirmed members: val {info['hv_val']:.4f}, test {info['hv_test']:.4f}")
        members = {int(m["trial"]) for m in info["members"]}
        if not every and info.get("selection") == "pareto" and members != set(int(n) for n in table["trial"]):
            console.print("[yellow]the Pareto set has changed since `nasseg confirm` ran "
                          f"(it confirmed trials {', '.join(map(str, sorted(members)))}); run it again[/]")
    if table.empty and not every:
        console.print(f"no Pareto set: {escape(search_verdict(study) or 'no feasible trial')}")


def _cell(c: str, v: Any) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "-"
    if c == "note":
        return str(v)[:70]
    return str(v)


def _pareto(args: argparse.Namespace) -> int:
    quiet_libraries(args)
    _print_front(args.study, args.study_name, make_console(), every=args.all, csv=args.csv)
    return 0


def _export(args: argparse.Namespace) -> int:
    from nasseg.search.results import export_trial  # lazy: CLI startup (pandas)

    if args.format != "yaml":
        return export_model(args)
    if "#" in args.study and args.trial is None:
        args.study, number = args.study.rsplit("#", 1)
        args.trial = int(number) if number.isdigit() else None
    if args.trial is None or not args.output:
        raise ConfigError("export --format yaml: give the trial (--trial N or STUDY#N) and the file (-o FILE)")
    check_file(args.output, "-o", overwrite=args.overwrite)
    study = locate(args.study, args.study_name)
    cfg = export_trial(study, args.trial, args.output)
    make_console().print(f"wrote {escape(args.output)}: trial {args.trial} of {study.study_name} "
                    f"({len(cfg.stages)} stages); try `nasseg profile {escape(args.output)}`")
    return 0
