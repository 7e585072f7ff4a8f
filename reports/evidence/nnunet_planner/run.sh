#!/usr/bin/env bash
# Regenerates every table of ../nnunet_planner_comparison.md (about 15 minutes on a loaded 2-core CPU).
# Run from the repository root: bash reports/evidence/nnunet_planner/run.sh
set -euo pipefail
out=reports/evidence/nnunet_planner
raw=$(mktemp -d)/raw
export OMP_NUM_THREADS=1
(cd tests && python -c "
import pathlib, test_nnunet as t
raw = pathlib.Path('$raw')
t.write_blobs(raw)                                                    # Dataset501_Blobs: the tests' dataset
t.write_blobs(raw, n=8, shape=(128, 128, 16), spacing=(0.8, 0.8, 4.0), name='Dataset503_AnisoBlobs', z_steps=3)
t.write_blobs(raw, n=6, shape=(192, 192, 192), spacing=(1.0, 1.0, 1.0), name='Dataset504_LargeBlobs')")
plan() { python -m nasseg.nnunet.planners "$@"; }
plan --raw "$raw/Dataset501_Blobs" --arch studies/arch/unet3d_small.yaml -o $out/blobs_unet3d_small.md
plan --raw "$raw/Dataset503_AnisoBlobs" --arch studies/arch/unet3d_small.yaml -o $out/aniso_unet3d_small.md
plan --raw "$raw/Dataset504_LargeBlobs" --arch studies/arch/unet3d_small.yaml -o $out/large_unet3d_small.md
plan --raw "$raw/Dataset504_LargeBlobs" --arch $out/plainconv6.yaml -o $out/large_plainconv6.md
plan --decathlon ../shared/data/msd_hippocampus --arch studies/arch/unet3d_small.yaml -o $out/hippocampus_unet3d_small.md
plan --decathlon ../shared/data/msd_hippocampus --arch $out/plainconv4.yaml -o $out/hippocampus_plainconv4.md
rm -rf "$(dirname "$raw")"
