#!/usr/bin/env bash
# The BUSI table at the fidelity its pilot chose (issue 23; busi_96.md): the architectures of
# the same seeded sample as busi_64, at 96 px and 12 epochs, the first PAIRED (default 30) with
# two training seeds, then up to ARCHS (default PAIRED) with one. `nasseg bench noise` gives the
# seed-to-seed rank agreement after every epoch 1..12. The whole table:
#   PAIRED=200 ARCHS=1000 bash reports/bench/table/record_busi_96.sh
# Safe to stop at any time and to rerun (finished runs are skipped); run it twice side by side
# to use two cores (the two recorders share the (architecture, seed) runs).
set -euo pipefail
cd "$(dirname "$0")/../../.."
paired=${PAIRED:-30}
total=${ARCHS:-$paired}
common=(--table busi_96 --data ../shared/data/busi_256 --space search_spaces/lightweight_2d.yaml
        --size 96 --epochs 12 --split 160 96 96 --batch-size 8 --lr 0.003
        --out reports/bench/table --log reports/bench/table/busi_96.record.log)
nasseg bench record "${common[@]}" --archs "$paired" --seeds 0 1
if [ "$total" -gt "$paired" ]; then
  nasseg bench record "${common[@]}" --archs "$total" --seeds 0
fi
