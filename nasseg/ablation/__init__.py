"""Ablation studies: factors -> variants -> runs in Optuna storage -> paired statistics.

Example:
    >>> cfg = load_ablation("studies/cmunext_skip_ablation.yaml", profile="cpu")
    >>> study = run_ablation(cfg)                   # doctest: +SKIP
    >>> analyze(study).table                        # doctest: +SKIP
"""
from nasseg.ablation.config import AblationConfig, FactorConfig, StatsConfig, load_ablation
from nasseg.ablation.design import Contrast, Variant, build_archs, plan_contrasts, plan_variants
from nasseg.ablation.factors import get_path, set_path
from nasseg.ablation.results import AblationResult, analyze
from nasseg.ablation.runner import plan, run_ablation
from nasseg.ablation.tables import to_latex, to_markdown, write_tables

__all__ = ["AblationConfig", "AblationResult", "Contrast", "FactorConfig", "StatsConfig", "Variant",
           "analyze", "build_archs", "get_path", "load_ablation", "plan", "plan_contrasts", "plan_variants",
           "run_ablation", "set_path", "to_latex", "to_markdown", "write_tables"]
