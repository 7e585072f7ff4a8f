"""nasseg's 3D planner (:mod:`nasseg.data.plan`) beside nnU-Net v2's ``ExperimentPlanner``
on the same nnU-Net raw dataset: spacing, median shape, patch, batch, network stages.

nnU-Net's side is its own code, run in this process: ``extract_fingerprint_dataset`` then
``plan_experiment_dataset`` (what ``nnUNetv2_plan_and_preprocess -c 3d_fullres`` runs before
preprocessing), with ``nnUNet_raw``/``nnUNet_preprocessed`` pointed at temporary folders.
nnU-Net reads NIfTI through SimpleITK (arrays in z, y, x order) and may transpose them
(``transpose_forward``); its values are shown here in the files' own axis order (nibabel's,
as nasseg reads them).

Usage (writes a Markdown table)::

    python -m nasseg.nnunet.planners --decathlon ../shared/data/msd_hippocampus \\
        --arch studies/arch/unet3d_small.yaml -o planners.md
    python -m nasseg.nnunet.planners --raw RAW/Dataset501_Blobs --arch ARCH.yaml -o blobs.md
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from nasseg.arch import load_arch
from nasseg.data import load_dataset, resolve_data
from nasseg.data.decathlon import read_dataset_json, read_header
from nasseg.data.plan import make_plan
from nasseg.errors import DataError

GPU_LIKE_MB = 0.8 * 8192
"""nasseg's GPU budget (80% of the card's memory) on an 8 GB card, nnU-Net's default VRAM target."""


def decathlon_to_raw(src: Path, raw_base: Path, dataset_id: int, name: str) -> Path:
    """A Decathlon folder (``dataset.json`` + NIfTI, one channel) as an nnU-Net raw dataset
    ``raw_base/DatasetXXX_name`` of symbolic links (nothing is copied or changed).

    Raises:
        DataError: 4D (multi-channel) images: use nnU-Net's ``nnUNetv2_convert_MSD_dataset``.
    """
    meta = json.loads((src / "dataset.json").read_text())
    pairs, classes = read_dataset_json(src / "dataset.json")
    root = raw_base / f"Dataset{dataset_id:03d}_{name}"
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    for image, label in pairs:
        if read_header(image)[2] != 1:
            raise DataError(f"{image}: multi-channel; convert with nnUNetv2_convert_MSD_dataset")
        case = image.name[: -len(".nii.gz")]
        (root / "imagesTr" / f"{case}_0000.nii.gz").symlink_to(image.resolve())
        (root / "labelsTr" / f"{case}.nii.gz").symlink_to(label.resolve())
    channels = meta.get("modality") or {"0": "MRI"}
    (root / "dataset.json").write_text(json.dumps(
        {"channel_names": channels, "labels": {n: i for i, n in enumerate(classes)},
         "numTraining": len(pairs), "file_ending": ".nii.gz"}, indent=1))
    return root


def nnunet_plan(raw_root: Path, work: Path, num_processes: int = 1) -> dict[str, Any]:
    """nnU-Net's fingerprint and ``ExperimentPlanner`` plan of ``raw_root``, 3d_fullres, in the
    files' axis order."""
    from nnunetv2.experiment_planning.plan_and_preprocess_api import (  # lazy: nnunetv2 is optional (extra "nnunet")
        extract_fingerprint_dataset,
        plan_experiment_dataset,
    )

    os.environ["nnUNet_raw"] = str(raw_root.parent)
    os.environ["nnUNet_preprocessed"] = str(work / "preprocessed")
    os.environ["nnUNet_results"] = str(work / "results")
    dataset_id = int(raw_root.name[len("Dataset"):][:3])
    extract_fingerprint_dataset(dataset_id, num_processes=num_processes, verbose=False, show_progress_bar=False)
    plans, _ = plan_experiment_dataset(dataset_id)
    conf = plans["configurations"]["3d_fullres"]
    back = plans["transpose_backward"]
    arch = conf["architecture"]["arch_kwargs"]
    flip = plans["image_reader_writer"] == "SimpleITKIO"  # its arrays are (z, y, x): NIfTI's axes reversed

    def order(v: list) -> list:  # nnU-Net's axis order -> the files' (nibabel's, as nasseg reads them)
        v = [v[i] for i in back]
        return v[::-1] if flip else v

    return {"spacing": order(conf["spacing"]), "median_shape": order(conf["median_image_size_in_voxels"]),
            "patch_size": order(conf["patch_size"]), "batch_size": conf["batch_size"],
            "stages": arch["n_stages"], "widths": list(arch["features_per_stage"]),
            "pool": [order(s) for s in arch["strides"]], "kernels": [order(k) for k in arch["kernel_sizes"]],
            "transpose_forward": plans["transpose_forward"], "normalization": conf["normalization_schemes"]}


def nasseg_plan(raw_root: Path, arch_path: str, *, memory_mb: float | None = None,
                max_batch: int | None = None, dtype: Any = None) -> dict[str, Any]:
    """nasseg's plan of the same raw dataset (read as data kind ``nnunet``) for ``arch``:
    the CPU default budget, or ``memory_mb``/``max_batch`` as given; ``dtype`` of the
    activations (CUDA training plans with its autocast dtype, bfloat16)."""
    cfg = resolve_data(str(raw_root), memory_mb=memory_mb, max_batch=max_batch)
    ds = load_dataset(cfg)
    arch = load_arch(arch_path).model_copy(update={"in_channels": ds.in_channels, "out_channels": ds.out_channels})
    plan = make_plan(arch, ds, device="cpu", data_cfg=cfg, dtype=dtype)
    return {"spacing": list(plan.target_spacing), "median_shape": list(plan.median_shape),
            "patch_size": list(plan.patch_size), "batch_size": plan.batch_size, "stages": len(arch.stages),
            "widths": [s.width for s in arch.stages], "memory_mb": plan.memory_mb, "budget_mb": plan.budget_mb,
            "budget": plan.budget_source}


def table(name: str, nn: dict[str, Any], rows: list[tuple[str, dict[str, Any]]]) -> str:
    """A Markdown table: nnU-Net's plan, then one row per nasseg plan."""
    fmt = lambda v: "x".join(f"{x:g}" if isinstance(x, float) else str(x) for x in v)  # noqa: E731
    out = [f"### {name}", "",
           "| planner | spacing (mm) | median shape | patch | batch | stages (widths) | step memory |",
           "|---|---|---|---|---|---|---|",
           f"| nnU-Net ExperimentPlanner (3d_fullres) | {fmt(nn['spacing'])} | {fmt(nn['median_shape'])} | "
           f"{fmt(nn['patch_size'])} | {nn['batch_size']} | {nn['stages']} ({', '.join(map(str, nn['widths']))}); "
           f"pooling {' '.join(fmt(p) for p in nn['pool'][1:])} | nnU-Net's VRAM model, 8 GB target |"]
    for label, p in rows:
        out.append(f"| {label} | {fmt([round(s, 4) for s in p['spacing']])} | {fmt(p['median_shape'])} | "
                   f"{fmt(p['patch_size'])} | {p['batch_size']} | {p['stages']} ({', '.join(map(str, p['widths']))}) | "
                   f"~{p['memory_mb']:.0f} MB of {p['budget_mb']:.0f} MB ({p['budget']}) |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--raw", help="an nnU-Net raw dataset folder (DatasetXXX_Name)")
    src.add_argument("--decathlon", help="a one-channel Decathlon folder, linked into nnU-Net's layout first")
    ap.add_argument("--arch", required=True, help="the nasseg architecture nasseg plans for")
    ap.add_argument("-o", "--out", required=True, help="the Markdown file to write")
    ap.add_argument("--processes", type=int, default=1, help="nnU-Net's fingerprint workers")
    args = ap.parse_args(argv)

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="nasseg-planners-") as tmp:
        work = Path(tmp)
        if args.decathlon:
            raw = decathlon_to_raw(Path(args.decathlon), work / "raw", 990, Path(args.decathlon).name)
        else:
            raw = Path(args.raw)
        nn = nnunet_plan(raw, work, args.processes)
        rows = [(f"nasseg, {Path(args.arch).stem}, CPU default (float32)", nasseg_plan(raw, args.arch)),
                (f"nasseg, {Path(args.arch).stem}, GPU-like (memory_mb {GPU_LIKE_MB:.0f}, max_batch 16, bfloat16)",
                 nasseg_plan(raw, args.arch, memory_mb=GPU_LIKE_MB, max_batch=16, dtype=torch.bfloat16))]
    text = table(raw.name, nn, rows) + "\nnnU-Net raw plan (files' axis order): " + json.dumps(nn) + "\n"
    Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
