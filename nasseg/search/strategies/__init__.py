"""nasseg's search strategies with published evidence, as Optuna samplers.

- :class:`LocalSearchSampler` (``local``): Pareto local search around the current front,
  random restarts (White et al. 2020);
- :class:`MOREASampler` (``morea``): multi-objective regularized evolution (Real et al. 2019,
  Syne Tune's MOREA);
- :class:`PredictorSampler` (``predictor``): a GP predictor over architecture encodings
  with Thompson sampling over mutations of the front (BANANAS-style, White et al. 2021).

Each plans one whole configuration per trial (:mod:`nasseg.search.strategies.base`), never
re-proposes a known configuration (trained, failed, running or told infeasible), and passes
Optuna's packaged sampler test suite (``tests/test_strategies.py``). Early stopping (MO-ASHA)
is separate and composes with any of them.
"""
from nasseg.search.strategies.base import PlannedSampler
from nasseg.search.strategies.local import LocalSearchSampler
from nasseg.search.strategies.morea import MOREASampler
from nasseg.search.strategies.predictor import PredictorSampler

__all__ = ["LocalSearchSampler", "MOREASampler", "PlannedSampler", "PredictorSampler"]
