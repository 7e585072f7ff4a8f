"""``nasseg export RUN|STUDY#N --format nnunet -o DIR [--plans nnUNetPlans.json]``.

Example::

    nasseg export runs/train/hippo --format nnunet -o nnunet_export \\
        --plans "$nnUNet_preprocessed/Dataset004_Hippocampus/nnUNetPlans.json"
"""
from __future__ import annotations

import argparse
from pathlib import Path

from rich.markup import escape

from nasseg.cli.console import make_console


def export_nnunet(args: argparse.Namespace, target: str) -> int:
    """Write the plans fragment (and a complete plans file with ``--plans``), print how to train."""
    from nasseg.nnunet.export import export_nnunet as write, train_commands  # lazy: CLI startup (torch)

    out = args.output or f"{Path(str(target).replace('#', '_trial')).stem}_nnunet"
    res = write(target, out, plans=args.plans, overwrite=bool(getattr(args, "overwrite", False)))
    console = make_console()
    files = ", ".join(escape(str(p)) for p in res.files)
    console.print(f"wrote {files} ({res.arch_name}: nnU-Net configuration [bold]{res.configuration}[/], "
                  f"inherits {res.base})")
    if res.patch_size is not None:
        note = "" if res.patch_size == res.nnunet_patch_size else \
            f", rounded up from nnU-Net's {res.nnunet_patch_size} to the network's size multiple"
        console.print(f"patch {res.patch_size}{note}; batch size, spacing and preprocessed data are nnU-Net's")
    dataset = Path(args.plans).parent.name if args.plans else "DatasetXXX_Name"
    for line in train_commands(res, dataset):
        console.print(escape(line), soft_wrap=True)
    return 0
