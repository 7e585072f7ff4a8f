"""Benchmarks that print numbers and save them under ``reports/bench/`` (``nasseg bench``).

- :mod:`.train`: nasseg's training loop against a plain PyTorch loop (``bench train``);
- :mod:`.gpu` and :mod:`.disk_loop`: the one-command device benchmark against the CMUNeXt
  authors' style of loop (``bench gpu``);
- :mod:`.record`, :mod:`.table`, :mod:`.replay`, :mod:`.search_report`: a table of learning
  curves, search strategies replayed against it, and their comparison (``bench record``,
  ``bench search --replay``);
- :mod:`.live`: the default search against random search with real training (``bench search``).
"""
