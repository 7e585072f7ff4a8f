"""Sub-commands ``nasseg ablate`` (run an ablation study) and ``nasseg report`` (one HTML file).

Examples::

    nasseg ablate studies/cmunext_skip_ablation.yaml --profile cpu
    nasseg report studies/cmunext_skip_ablation.yaml --profile cpu -o reports/skips --check
    nasseg report runs/quickstart/study.db
"""
from __future__ import annotations

import argparse
import shlex
from collections import Counter
from pathlib import Path
from typing import Any

from optuna.trial import TrialState

from nasseg.cli.console import quiet_libraries
from nasseg.cli.vocabulary import add_no_progress, add_out, add_study
from nasseg.errors import NassegError, NothingFound, mask_url
from nasseg.store import trial_record

_FLAGS = ("profile", "study_name", "seeds", "epochs", "max_cases", "storage", "out_dir", "max_runs")
_SPELLING = {"study_name": "--study", "out_dir": "--runs"}
"""Options whose flag is not their ``dest`` spelled with dashes (the stored command line)."""


def register(sub: Any) -> None:
    """Add ``ablate`` and ``report`` to the ``nasseg`` command line."""
    ab = sub.add_parser("ablate", help="run an ablation study (variants x seeds) and report it",
                        description="Train every variant of an ablation study with every seed, store each "
                                    "run in the study's Optuna storage (a killed run resumes where it "
                                    "stopped), then write the statistics tables and the HTML report.")
    ab.add_argument("study", help="the study YAML (see studies/)")
    ab.add_argument("--profile", help="a profile of the study file, e.g. 'cpu' (a small setting; default: none)")
    add_study(ab, "override the study name, a new storage entry (default: the file's name)")
    ab.add_argument("--seeds", type=int, help="override the number of training seeds per variant (default: the file's)")
    ab.add_argument("--epochs", type=int, help="override train.epochs (default: the file's)")
    ab.add_argument("--max-cases", type=int, dest="max_cases", help="override data.max_cases (default: the file's)")
    ab.add_argument("--storage", help="Optuna storage URL (default sqlite:///OUT_DIR/study.db)")
    ab.add_argument("--runs", dest="out_dir", metavar="DIR",
                    help="folder of the runs and the storage, replacing out_dir (default: the file's, or runs/NAME)")
    ab.add_argument("--out-dir", dest="out_dir", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    ab.add_argument("--max-runs", type=int, dest="max_runs", help="stop after this many runs (default: no limit)")
    add_out(ab, "report folder or .html file (default: reports/NAME)", dest="output",
            aliases=("--output",))  # --out-dir stays the runs' folder (--runs), as it was
    ab.add_argument("--dry-run", action="store_true",
                    help="validate the study and list its variants with params and MACs; train nothing")
    ab.add_argument("--no-report", action="store_true", help="do not write the tables and report")
    add_no_progress(ab)
    ab.set_defaults(func=_ablate)

    rp = sub.add_parser("report", help="write one self-contained HTML report of a search or ablation",
                        description="Write ONE HTML file (plotly.js inlined, opens offline) for a search "
                                    "or an ablation study; for an ablation also stats.csv/.md/.tex.")
    rp.add_argument("study", help="a study YAML, an Optuna storage URL, a .db file or a run folder")
    add_out(rp, "report folder or .html file (default: reports/STUDY_NAME)", dest="output")
    add_study(rp, "which study, if the storage holds several (default: its only study)")
    rp.add_argument("--profile", help="the profile the study YAML was run with (default: none)")
    rp.add_argument("--check", action="store_true",
                    help="open the report in headless Chromium, check it renders without errors and "
                         "save a screenshot under OUTPUT/artifacts/")
    rp.set_defaults(func=_report)


def _command(args: argparse.Namespace, verb: str, extra: list[str]) -> str:
    parts = ["nasseg", verb, args.study]
    for name in extra:
        value = getattr(args, name, None)
        if value is not None and value is not False:
            flag = _SPELLING.get(name, f"--{name.replace('_', '-')}")
            parts += [flag] + ([] if value is True else [str(value)])
    return shlex.join(parts)


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    over: dict[str, Any] = {}
    if args.study_name:
        over["name"] = args.study_name
    if args.seeds is not None:
        over["seeds"] = args.seeds
    if args.epochs is not None:
        over["train"] = {"epochs": args.epochs}
    if args.max_cases is not None:
        over["data"] = {"max_cases": args.max_cases}
    if args.storage:
        over["storage"] = args.storage
    if args.out_dir:
        over["out_dir"] = args.out_dir
    return over


def _ablate(args: argparse.Namespace) -> int:
    from nasseg.ablation.config import load_ablation  # lazy: CLI startup (pandas, scipy)
    from nasseg.ablation.runner import describe_plan, plan, run_ablation  # lazy: CLI startup (pandas, scipy)

    quiet_libraries(args)

    cfg = load_ablation(args.study, profile=args.profile, overrides=_overrides(args))
    if args.dry_run:
        from nasseg.ablation.tables import fmt_count  # lazy: CLI startup (pandas, scipy)

        p = plan(cfg, args.study)
        print(f"study '{cfg.name}' ({cfg.design}): {len(p.variants)} variants x {len(cfg.seed_list())} seeds; "
              f"costs at input {p.input_shape}; storage {mask_url(cfg.storage_url())}")
        for row in describe_plan(p):
            mark = " (baseline)" if row["baseline"] else ""
            print(f"  {row['variant']}{mark}: arch {row['arch_id']}, params {fmt_count(row['params'])}, "
                  f"MACs {fmt_count(row['macs'])}")
        for c in p.contrasts:
            print(f"  compare {c.variant} with {c.reference}")
        return 0
    command = _command(args, "ablate", list(_FLAGS))
    study = run_ablation(cfg, where=args.study, command=command, progress=not args.no_progress,
                         max_runs=args.max_runs)
    _refuse_without_results(study, args.study)
    if args.no_report:
        return 0
    from nasseg.ablation.tables import to_markdown  # lazy: CLI startup (pandas, scipy)
    from nasseg.report.html import write_report  # lazy: CLI startup (pandas, plotly, scipy)

    out = Path(args.output) if args.output else Path("reports") / cfg.name
    path = write_report(study, out)
    from nasseg.ablation.results import analyze  # lazy: CLI startup (pandas, scipy)

    print(to_markdown(analyze(study)))
    print(f"tables: {path.parent / 'stats.csv'} (.md, .tex)")
    print(f"report: {path}  (open it in a browser; it works offline)")
    return 0


def _refuse_without_results(study, where: str) -> None:
    """No COMPLETE run: exit 3 with the runs' reasons, not a report of empty cells."""
    trials = study.get_trials(deepcopy=False)
    if any(t.state == TrialState.COMPLETE for t in trials):
        return
    reasons = [trial_record(t).fail_reason or t.state.name.lower() for t in trials]
    if not reasons:
        raise NothingFound(f"{where}: no run completed (none ran); nothing to report")
    kinds = Counter(r.split(":")[0] for r in reasons)  # "diverged: loss at epoch 1 ..." -> "diverged"
    raise NothingFound(f"{where}: no run completed ({', '.join(f'{n} x {k}' for k, n in kinds.most_common())}; "
                       f"the first: {reasons[0]}); nothing to report")


def _report(args: argparse.Namespace) -> int:
    from nasseg.report.source import open_study  # lazy: CLI startup (pandas, plotly, scipy)
    from nasseg.report.html import write_report  # lazy: CLI startup (pandas, plotly, scipy)

    quiet_libraries(args)
    study = open_study(args.study, study_name=args.study_name, profile=args.profile)
    safe = "".join(ch if ch.isalnum() or ch in "_.-" else "_" for ch in study.study_name)
    out = Path(args.output) if args.output else Path("reports") / safe
    path = write_report(study, out)
    print(f"report: {path}  (open it in a browser; it works offline)")
    if args.check:
        from nasseg.report.browser import check_report  # lazy: CLI startup (pandas, plotly, scipy)

        shot = path.parent / "artifacts" / f"{path.stem}.png"
        check = check_report(path, screenshot=shot)
        print(f"chromium: {len(check.figures)} figures rendered in {check.seconds:.1f} s; screenshot {shot}")
        problems = check.problems()
        if problems:
            raise NassegError(f"{path}: the report has problems in Chromium:\n  " + "\n  ".join(problems))
    return 0
