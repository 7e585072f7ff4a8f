#!/usr/bin/env bash
# Run HERE (the CPU machine), from anywhere, before the one device call of `nasseg bench gpu`.
#
# The lent H200 has Python 3.12 with torch, numpy, pandas, scipy, pillow, rich, PyYAML and
# pyarrow (/work/.library/device/KINDS.md) but no package registry, and ../shared does not
# travel. This puts into two git-ignored folders of the repository:
#   .whl/          wheels of what `nasseg bench gpu` imports and the image lacks, at the versions
#                  the test suite ran with here (optuna and its storage stack, pydantic, ptflops)
#   .device_data/  a copy of ../shared/data/busi_256 (part 1's data)
# Then, with the device tool: carry [".whl", ".device_data"], command
#   bash reports/bench/gpu/run_on_device.sh
# (PYVER=3.11 prepares wheels for this machine's Python instead: the CPU rehearsal in README.md.)
set -euo pipefail
root="$(cd "$(dirname "$0")/../../.." && pwd)"
cd "$root"
pyver="${PYVER:-3.12}"
packages=(optuna alembic sqlalchemy mako colorlog ptflops pydantic pydantic-core annotated-types
          typing-inspection)
pins=()
for p in "${packages[@]}"; do
  v=$(python3 -m pip show "$p" 2>/dev/null | awk '/^Version:/{print $2}') || true
  [ -n "$v" ] || { echo "prepare_device.sh: $p is not installed here; pip install -e '.[test]' first" >&2; exit 2; }
  pins+=("$p==$v")
done
rm -rf .whl && mkdir .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$pyver" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d .whl "${pins[@]}"
data="${BUSI:-$root/../shared/data/busi_256}"
[ -d "$data/images" ] || { echo "prepare_device.sh: $data: no images/ folder (set BUSI=...)" >&2; exit 2; }
rm -rf .device_data && mkdir .device_data && cp -r "$data" .device_data/busi_256
echo "wheels: $(ls .whl | wc -l) files, $(du -sh .whl | cut -f1); data: $(du -sh .device_data | cut -f1)"
echo "tracked + untracked files that travel: $(git ls-files -co --exclude-standard | xargs du -cb 2>/dev/null | tail -1 | cut -f1) bytes (limit 64 MiB with the carried folders)"
