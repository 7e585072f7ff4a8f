"""The statistics table as CSV (full precision), Markdown and LaTeX (formatted).

Works on anything with a ``table`` (see :func:`nasseg.ablation.results.analyze`) and a
``config`` holding ``name`` and ``stats``: an ablation's result, or the result of
``nasseg stats`` on a user's own per-case CSV (:mod:`nasseg.ablation.csvstats`). The metric
is the one whose ``<metric>_mean`` column the table holds.

Example:
    >>> paths = write_tables(analyze(study), "reports/skips")   # doctest: +SKIP
    >>> sorted(p.name for p in paths)                           # doctest: +SKIP
    ['stats.csv', 'stats.md', 'stats.tex']
"""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from nasseg.ablation.stats import MIN_MODEL_SEEDS, MIN_SEEDS

__all__ = ["display_table", "fmt_count", "fmt_p", "latex_escape", "method_note", "metric_of",
           "seed_warning", "to_latex", "to_markdown", "write_tables"]

LABELS = {"dice": "Dice", "iou": "IoU", "hd95": "HD95", "assd": "ASSD", "nsd": "NSD"}


def metric_of(table: pd.DataFrame) -> str:
    """The metric a table is about: the prefix of its ``<metric>_mean`` column."""
    return next((c[:-5] for c in table.columns if c.endswith("_mean")), "dice")


def seed_warning(table: pd.DataFrame) -> str:
    """``""``, or warnings: variants with different seed counts (failed runs are missing),
    fewer than :data:`MIN_MODEL_SEEDS` training seeds (no p-value; intervals too narrow)
    and fewer than :data:`MIN_SEEDS` (seed variance on few degrees of freedom)."""
    seeds = table.set_index("variant")["n_seeds"].dropna()
    if seeds.empty:
        return ""
    out = []
    if seeds.nunique() > 1:
        counts = ", ".join(f"{v}: {int(n)}" for v, n in seeds.items())
        out.append(f"Warning: the variants completed different numbers of seeds ({counts}): failed runs "
                   "are missing; each mean is over that variant's seeds, each comparison over the seeds "
                   "both variants completed.")
    n = int(seeds.min())
    if n < MIN_MODEL_SEEDS:
        out.append(f"Warning: only {n} training seed{'s' if n != 1 else ''} (< {MIN_MODEL_SEEDS}): the "
                   "training-seed variance is " + ("not estimable" if n == 1 else "estimated on 1 degree of freedom")
                   + ", so no p-value is given; the intervals cover the test cases only, which makes them too "
                   "narrow for a claim about the architectures (they leave training randomness out).")
    elif n < MIN_SEEDS:
        out.append(f"Warning: only {n} training seed{'s' if n != 1 else ''} (< {MIN_SEEDS}): the seed "
                   f"variance is estimated on {max(n - 1, 0)} degree{'s' if n != 2 else ''} of freedom, "
                   "so intervals are wide and the training-seed effect is poorly known.")
    return " ".join(out)


def fmt_count(n: float) -> str:
    """``417505 -> '417.5 K'``, ``3149185 -> '3.15 M'``, ``1088471040 -> '1.09 G'``."""
    if n is None or n != n or isinstance(n, str):
        return "–"
    for div, unit, digits in ((1e9, "G", 2), (1e6, "M", 2), (1e3, "K", 1)):
        if abs(n) >= div:
            return f"{n / div:.{digits}f} {unit}"
    return f"{int(n)}"


def fmt_p(p: float) -> str:
    """``'<0.001'`` below 0.001, three decimals otherwise, ``'–'`` if NaN."""
    if p is None or p != p:
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _num(x: float, signed: bool = False) -> str:
    if x is None or x != x:
        return "–"
    return f"{x:+.4f}" if signed else f"{x:.4f}"


def _effect(row: pd.Series) -> str:
    e = row.get("effect_size")
    if e is None or e != e:
        return "–"
    name = {"r_rb": "r", "d_z": "d_z", "d": "d"}.get(row.get("effect_measure"), "")
    return f"{name} = {e:+.2f}" if math.isfinite(e) else f"{name} = {e}"


def display_table(result) -> pd.DataFrame:
    """The table with formatted strings, one row per line of ``result.table``."""
    m = metric_of(result.table)
    label = LABELS.get(m, m)
    headers = ["Variant", f"{label} [95% CI]", "SD (seeds)", "vs.", f"Δ{label} [95% CI]", "p (Holm)",
               "Effect", "Sig.", "Params", "MACs"]
    rows = []
    for _, r in result.table.iterrows():
        has_cmp = isinstance(r.get("reference"), str)
        conditional = r.get("test") == "conditional"
        rows.append([
            r["variant"] + (" (baseline)" if r.get("is_baseline") is True else ""),
            f"{_num(r[f'{m}_mean'])} [{_num(r[f'{m}_ci_low'])}, {_num(r[f'{m}_ci_high'])}]",
            _num(r[f"{m}_sd"]),
            r["reference"] if has_cmp else "",
            f"{_num(r['mean_diff'], True)} [{_num(r['diff_ci_low'], True)}, "
            f"{_num(r['diff_ci_high'], True)}]" if has_cmp else "",
            fmt_p(r["p_holm"]) if has_cmp else "",
            _effect(r) if has_cmp else "",
            "no test" if has_cmp and conditional else
            r["significance"] if has_cmp and isinstance(r["significance"], str) else "",
            fmt_count(r.get("params")),
            fmt_count(r.get("macs")),
        ])
    return pd.DataFrame(rows, columns=headers)


def method_note(result) -> str:
    """One paragraph saying how every number of the table was computed (with the seed
    warning, the scored split and the empty-mask convention when known)."""
    st = result.config.stats
    t = result.table
    m = metric_of(t)
    label = LABELS.get(m, m)
    n_cmp = int(t["p_value"].notna().sum())
    seeds, cases = t["n_seeds"].max(), t["n_cases"].max()
    pct = f"{st.bootstrap.confidence * 100:g}%"
    split = getattr(result, "scored_split", "test")
    if st.test in ("mixed", "crossed"):
        how = ("linear mixed model of the paired differences with crossed random effects of "
               "training seed and test case (REML; variance components >= 0); CI and two-sided "
               "t-test from the same fit, so they agree, on Satterthwaite df with the seed term weighted "
               "3x (at least seeds - 1), which keeps 3-4 seeds at the nominal level")
        pairs = "matched (seed, case) cells"
        effect = "d: mean difference / model SD of one seed-case difference"
    else:
        how = ("per-case " + {"wilcoxon": "Wilcoxon signed-rank test", "ttest": "paired t-test"}[st.test]
               + " over seed-averaged values (one pair per case; ignores seed-to-seed variance)")
        pairs = "cases, each averaged over seeds"
        effect = ("r: matched-pairs rank-biserial correlation" if st.test == "wilcoxon"
                  else "d_z: Cohen's d of the case differences")
    conditional = "test" in t and bool((t["test"] == "conditional").any())
    ci_how = (f"{pct} CI from a mixed model with crossed random seed and case effects"
              if not ("interval" in t and (t["interval"] == "conditional").any()) else
              f"{pct} CI conditional on the trained networks (a t interval over the cases of the "
              f"seed-averaged values) for variants with fewer than {MIN_MODEL_SEEDS} seeds, else from a "
              "mixed model with crossed random seed and case effects")
    text = (f"{label}: mean over {'up to ' if t['n_seeds'].nunique() > 1 else ''}{seeds:.0f} training "
            f"seed{'s' if seeds != 1 else ''} of the mean over "
            f"{cases:.0f} {split} cases "
            f"(same cases for every variant); {ci_how}. Δ{label}: variant minus 'vs.' on {pairs}. ")
    if n_cmp:
        text += (f"p: {how}; Holm-corrected over {n_cmp} comparisons; * p < {st.alpha:g}, ** p < 0.01, "
                 f"*** p < 0.001, ns otherwise. {effect}.")
    if conditional:
        text += (f"{' ' if n_cmp else ''}'no test': fewer than {MIN_MODEL_SEEDS} matched training seeds, so "
                 "no p-value: the comparison is per case and conditional on the trained networks (mean of the "
                 "seed-averaged case differences, t interval over the cases, d_z = that mean over their SD); "
                 "it says how these trained networks differ on this case population, not whether the "
                 "architectures differ, since training randomness is left out.")
    notes = [n for n in getattr(result, "notes", []) or [] if n]
    if notes:
        text += " " + " ".join(notes)
    convention = getattr(result, "convention", None)
    if convention is None and m in LABELS:
        from nasseg.train.metrics import convention_note  # lazy: torch; nasseg.ablation is read without it

        convention = convention_note()
    if convention:
        text += f" {convention}"
    warning = seed_warning(t)
    return text + (f" {warning}" if warning else "")


def to_markdown(result) -> str:
    """A GitHub-flavoured Markdown table followed by the method note."""
    table = display_table(result)

    def cell(s: str) -> str:
        return str(s).replace("|", "\\|")

    lines = ["| " + " | ".join(table.columns) + " |",
             "|" + "|".join("---" if i < 1 else "---:" for i in range(len(table.columns))) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines) + "\n\n" + method_note(result) + "\n"


_LATEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
          "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
          "Δ": r"$\Delta$", "–": "--", "<": r"$<$", ">": r"$>$"}


def latex_escape(text: str) -> str:
    r"""Escape LaTeX's special characters.

    Example:
        >>> latex_escape("skip_fusion & 50%")
        'skip\\_fusion \\& 50\\%'
    """
    return "".join(_LATEX.get(ch, ch) for ch in str(text))


def to_latex(result) -> str:
    """A ``table`` environment with a booktabs ``tabular`` (needs ``\\usepackage{booktabs}``)."""
    table = display_table(result)
    head = " & ".join(latex_escape(c) for c in table.columns) + r" \\"
    body = [" & ".join(latex_escape(v) for v in row) + r" \\" for row in table.itertuples(index=False)]
    name = latex_escape(result.config.name)
    label = "".join(ch if ch.isalnum() else "-" for ch in result.config.name)
    return "\n".join([
        r"\begin{table}[t]", r"\centering", r"\small",
        r"\begin{tabular}{l" + "r" * (len(table.columns) - 1) + "}", r"\toprule", head, r"\midrule",
        *body, r"\bottomrule", r"\end{tabular}",
        rf"\caption{{Ablation {name}. {latex_escape(method_note(result))}}}",
        rf"\label{{tab:{label}}}", r"\end{table}", ""])


def write_tables(result, out_dir: str | Path, stem: str = "stats") -> list[Path]:
    """Write ``stem.csv`` (full precision, with a ``warning`` column), ``stem.md``,
    ``stem.tex`` and, for an ablation, ``per_case.csv`` (long format: ``variant, seed, case``
    and the metric columns; ``nasseg stats per_case.csv --baseline NAME`` reproduces the
    table from it); return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{stem}.csv", out / f"{stem}.md", out / f"{stem}.tex"]
    notes = " ".join(n for n in getattr(result, "notes", []) or [] if n)
    result.table.assign(warning=seed_warning(result.table), note=notes).to_csv(paths[0], index=False)
    per_case = getattr(result, "per_case", None)
    if isinstance(per_case, pd.DataFrame) and not per_case.empty:  # the input of `nasseg stats`
        paths.append(out / "per_case.csv")
        per_case.rename(columns={"case_id": "case"}).to_csv(paths[-1], index=False)
    paths[1].write_text(to_markdown(result), encoding="utf-8")
    paths[2].write_text(to_latex(result), encoding="utf-8")
    return paths
