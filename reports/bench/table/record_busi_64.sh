#!/usr/bin/env bash
# Records (or continues) the BUSI benchmark table: first 200 architectures with two training
# seeds (noise), then up to 1,000 with one. Safe to stop at any time and to rerun: every
# finished (architecture, seed) is appended to busi_64.csv.gz and skipped on the next run.
set -euo pipefail
cd "$(dirname "$0")/../../.."
common=(--table busi_64 --data ../shared/data/busi_256 --space search_spaces/lightweight_2d.yaml --size 64 --epochs 5 --split 160 96 96
        --batch-size 8 --lr 0.003 --out reports/bench/table --log reports/bench/table/busi_64.record.log
        --duplicates ignore)  # recorded before near-duplicate families were grouped: keep its split
nasseg bench record "${common[@]}" --archs 200 --seeds 0 1
nasseg bench record "${common[@]}" --archs 1000 --seeds 0
