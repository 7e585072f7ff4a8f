#!/usr/bin/env bash
# Run THERE (the lent GPU machine), from the repository root, after prepare_device.sh here:
#   device run: carry [".whl", ".device_data"], timeout_s 600,
#   command "bash reports/bench/gpu/run_on_device.sh"
# Installs the carried wheels beside the image's packages, records the GPU, and runs
# `nasseg bench gpu` on the copied busi_256, writing every part's JSON, summary.md and the log
# into $OUT as each part ends (what ended before a time limit still comes back). Copy them to
# reports/bench/gpu/ here and commit.
set -uo pipefail
out="${OUT:-reports/bench/gpu}"
mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  || { echo "run_on_device.sh: installing the carried wheels failed" >&2; exit 1; }
# PYTHONFAULTHANDLER + SIGABRT at the limit: a hang leaves every thread's traceback in the log
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1 PYTHONFAULTHANDLER=1
{ nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1
  python3 -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda)"
  nproc; df -h /dev/shm 2>&1  # part 1's DataLoader workers pass batches through shared memory
} | tee "$out/device.txt"
timeout -s ABRT 560 python3 -m nasseg bench gpu --data .device_data/busi_256 --study studies/quickstart.yaml --out "$out" "$@" 2>&1 | tee "$out/bench_gpu.log"
