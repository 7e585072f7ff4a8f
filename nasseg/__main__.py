"""``python -m nasseg ...``: the command line without an installed ``nasseg`` script (e.g. on a
machine where the repository is on ``PYTHONPATH``, as ``reports/bench/gpu/run_on_device.sh`` runs it)."""
import sys

from nasseg.cli import main

sys.exit(main())
