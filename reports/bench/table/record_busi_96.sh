#!/usr/bin/env bash
# Fidelity pilot for the BUSI table (issue 23): the first architectures of the same seeded
# sample as busi_64, two training seeds each, at 96 px and 12 epochs, so `nasseg bench noise`
# gives the seed-to-seed rank agreement after every epoch 1..12 in one recording.
# Safe to stop at any time and to rerun (finished runs are skipped); run it twice side by side
# to use two cores (the two recorders share the (architecture, seed) runs).
set -euo pipefail
cd "$(dirname "$0")/../../.."
nasseg bench record --table busi_96 --data ../shared/data/busi_256 --space search_spaces/lightweight_2d.yaml \
    --size 96 --epochs 12 --split 160 96 96 --batch-size 8 --lr 0.003 --archs "${ARCHS:-10}" --seeds 0 1 \
    --out reports/bench/table --log reports/bench/table/busi_96.record.log
