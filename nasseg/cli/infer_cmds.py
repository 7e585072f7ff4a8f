"""``nasseg predict``, ``nasseg evaluate`` and the model formats of ``nasseg export``.

``RUN_OR_TRIAL`` is a run folder of ``nasseg train``, a study trial (``STUDY#N``) or an
exported ``.onnx``/TorchScript file (see :mod:`nasseg.infer.network`).

Examples::

    nasseg predict runs/train/dsb --input new_images/ --out masks/
    nasseg predict studies/quickstart.yaml#7 --input scans/ --out labels/ --tta
    nasseg evaluate runs/train/dsb --data ../other_nuclei --out eval_other/
    nasseg export studies/quickstart.yaml#7 --format onnx -o model.onnx
"""
from __future__ import annotations

import argparse
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from nasseg.cli.console import make_console
from nasseg.cli.nnunet_cmds import export_nnunet
from nasseg.cli.vocabulary import add_no_progress, add_out
from nasseg.device import resolve_device
from nasseg.errors import ConfigError

RUN_OR_TRIAL = "run folder, study trial (STUDY.yaml#N) or exported .onnx / TorchScript file"


def register(sub) -> None:
    """Add ``predict`` and ``evaluate`` to the ``nasseg`` command line."""
    p = sub.add_parser("predict", help="segment new images or NIfTI volumes with a trained network",
                       description="Write one mask per input in its format, size and geometry "
                                   "(NIfTI: same affine and header).")
    p.add_argument("network", metavar="RUN_OR_TRIAL", help=RUN_OR_TRIAL)
    p.add_argument("--input", required=True, help="an image/NIfTI file or a folder of them")
    add_out(p, "folder for the masks", required=True)
    p.add_argument("--batch-size", type=int, default=8, help="images (2D) or windows (3D) per forward pass")
    p.add_argument("--tta", action="store_true", help="average over flips along the axes training flipped")
    p.add_argument("--index-masks", action="store_true", help="binary 2D masks as 0/1 instead of 0/255")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    add_no_progress(p)
    p.add_argument("--overwrite", action="store_true",
                   help="replace existing masks in --out, or write inside the input folder (never onto an input)")
    p.set_defaults(func=_predict)

    e = sub.add_parser("evaluate", help="score a trained network on another labelled dataset",
                       description="Same metrics, per-case CSV and summary as training's evaluation; "
                                   "per_case.csv is in the long format `nasseg stats` reads.")
    e.add_argument("network", metavar="RUN_OR_TRIAL", help=RUN_OR_TRIAL)
    e.add_argument("--data", required=True, help="a dataset folder or a data-config YAML")
    add_out(e, "folder for per_case.csv and summary.json (default: print only)")
    e.add_argument("--max-cases", type=int, help="score a seeded stratified sample of N cases (never the first N "
                                                 "files; default: all)")
    e.add_argument("--batch-size", type=int, default=16, help="images (2D) or windows (3D) per forward pass")
    e.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    e.add_argument("--overwrite", action="store_true",
                   help="replace per_case.csv / summary.json already in --out (never the run's own files)")
    e.set_defaults(func=_evaluate)


def add_export_args(p: argparse.ArgumentParser) -> None:
    """The options ``nasseg export`` takes for ``--format onnx|torchscript``."""
    p.add_argument("--format", choices=["yaml", "onnx", "torchscript", "nnunet"], default="yaml",
                   help="yaml: the architecture (default); onnx / torchscript: the trained network, "
                        "checked against PyTorch; nnunet: nnU-Net v2 plans that train it (-o is a folder)")
    p.add_argument("--plans", help="nnunet: nnU-Net's nnUNetPlans.json to extend into a complete plans file "
                                   "(default: none, only plans_fragment.json is written)")
    p.add_argument("--size", help="onnx/torchscript: example input size, e.g. 64 or 40,56,40 "
                                  "(default: the training size)")
    p.add_argument("--atol", type=float, default=1e-4, help="largest accepted |exported - PyTorch|")
    p.add_argument("--overwrite", action="store_true", help="replace an existing -o file (never the network's own)")


def _device(name: str) -> str:
    return str(resolve_device(name, "--device"))


def _predict(args: argparse.Namespace) -> int:
    from nasseg.infer import load_network, predict_path  # lazy: CLI startup (torch)

    net = load_network(args.network, _device(args.device))
    written = predict_path(net, args.input, args.out, batch_size=args.batch_size, tta=args.tta,
                           index_masks=args.index_masks, progress=not args.no_progress,
                           overwrite=args.overwrite)
    make_console().print(f"wrote {len(written)} masks to {escape(args.out)} ({net.name}, {net.kind}"
                    f"{', flip TTA' if args.tta else ''})")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from nasseg.infer import evaluate_network, load_network  # lazy: CLI startup (torch)
    from nasseg.infer.score import overlap_warning  # lazy: CLI startup (torch)

    net = load_network(args.network, _device(args.device))
    summary, rows = evaluate_network(net, args.data, out_dir=args.out, batch_size=args.batch_size,
                                     max_cases=args.max_cases, overwrite=args.overwrite)
    table = Table(title="per-case means (distances in voxels or mm, as training reports them)")
    for col in summary:
        table.add_column(col, justify="right")
    table.add_row(*[f"{v:.4f}" for v in summary.values()])
    console = make_console()
    console.print(f"{net.name} scored on {len({r['case_id'] for r in rows})} cases of {escape(str(args.data))}")
    console.print(table)
    warning = overlap_warning(rows, args.data)
    if warning:
        console.print(escape(warning), style="yellow", soft_wrap=True)
    if args.out:
        console.print(f"per-case rows: {escape(str(Path(args.out) / 'per_case.csv'))}; "
                      f"summary: {escape(str(Path(args.out) / 'summary.json'))}")
    return 0


def export_model(args: argparse.Namespace) -> int:
    """``nasseg export RUN_OR_TRIAL --format onnx|torchscript -o FILE``."""
    from nasseg.infer import export_network, load_network  # lazy: CLI startup (torch)

    target = args.study if getattr(args, "trial", None) is None else f"{args.study}#{args.trial}"
    if args.format == "nnunet":
        return export_nnunet(args, target)
    size = None
    if args.size:
        try:
            size = tuple(int(v) for v in str(args.size).replace("x", ",").split(","))
        except ValueError:
            raise ConfigError(f"--size '{args.size}': expected integers like 64 or 40,56,40") from None
    out = args.output or f"{Path(str(target).replace('#', '_trial')).stem}.{'onnx' if args.format == 'onnx' else 'pt'}"
    net = load_network(target)
    res = export_network(net, args.format, out, size=size, atol=args.atol, overwrite=args.overwrite)
    shapes = ", ".join("x".join(map(str, s)) for s in res.shapes)
    make_console().print(f"wrote {escape(str(res.path))} ({res.format}, {net.name}); parity with PyTorch on seeded "
                    f"inputs {shapes}: max abs difference [bold]{res.max_abs_diff:.3g}[/]; spatial size "
                    f"{'dynamic' if res.dynamic else escape(res.note)}; {res.seconds:.1f} s")
    return 0
