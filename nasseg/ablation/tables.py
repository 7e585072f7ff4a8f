"""The statistics table as CSV (full precision), Markdown and LaTeX (formatted).

Example:
    >>> paths = write_tables(analyze(study), "reports/skips")   # doctest: +SKIP
    >>> sorted(p.name for p in paths)                           # doctest: +SKIP
    ['stats.csv', 'stats.md', 'stats.tex']
"""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from nasseg.ablation.results import AblationResult

__all__ = ["display_table", "fmt_count", "fmt_p", "latex_escape", "method_note", "to_latex",
           "to_markdown", "write_tables"]

HEADERS = ["Variant", "Dice [95% CI]", "SD (seeds)", "vs.", "ΔDice [95% CI]", "p (Holm)",
           "Effect", "Sig.", "Params", "MACs"]


def fmt_count(n: float) -> str:
    """``417505 -> '417.5 K'``, ``3149185 -> '3.15 M'``, ``1088471040 -> '1.09 G'``."""
    if n is None or n != n:
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
    name = {"r_rb": "r", "d_z": "d_z"}.get(row.get("effect_measure"), "")
    return f"{name} = {e:+.2f}" if math.isfinite(e) else f"{name} = {e}"


def display_table(result: AblationResult) -> pd.DataFrame:
    """The table with formatted strings, one row per line of :attr:`AblationResult.table`."""
    rows = []
    for _, r in result.table.iterrows():
        has_cmp = isinstance(r["reference"], str)
        rows.append([
            r["variant"] + (" (baseline)" if r["is_baseline"] else ""),
            f"{_num(r['dice_mean'])} [{_num(r['dice_ci_low'])}, {_num(r['dice_ci_high'])}]",
            _num(r["dice_sd"]),
            r["reference"] if has_cmp else "",
            f"{_num(r['mean_diff'], True)} [{_num(r['diff_ci_low'], True)}, "
            f"{_num(r['diff_ci_high'], True)}]" if has_cmp else "",
            fmt_p(r["p_holm"]) if has_cmp else "",
            _effect(r) if has_cmp else "",
            r["significance"] if has_cmp and isinstance(r["significance"], str) else "",
            fmt_count(r["params"]),
            fmt_count(r["macs"]),
        ])
    return pd.DataFrame(rows, columns=HEADERS)


def method_note(result: AblationResult) -> str:
    """One paragraph saying how every number of the table was computed."""
    st = result.config.stats
    n_cmp = int(result.table["p_value"].notna().sum())
    seeds = result.table["n_seeds"].max()
    cases = result.table["n_cases"].max()
    test = {"wilcoxon": "two-sided Wilcoxon signed-rank test", "ttest": "two-sided paired t-test",
            "crossed": "two-sided t-test with random seed and case effects (Satterthwaite df)"}[st.test]
    pairs = ("(seed, case) pairs" if st.pairing == "seed_case" or st.test == "crossed"
             else "cases (each averaged over seeds)")
    effect = ("r: matched-pairs rank-biserial correlation" if st.test == "wilcoxon"
              else "d_z: Cohen's d of the paired differences")
    pct = f"{st.bootstrap.confidence * 100:g}%"
    return (f"Dice: mean over {seeds:.0f} training seeds of the mean over {cases:.0f} held-out cases "
            f"(same split for every variant); {pct} crossed bootstrap CI over seeds and cases "
            f"({st.bootstrap.n_resamples} resamples, seed {st.bootstrap.seed}). ΔDice: variant minus "
            f"'vs.' on matched {pairs}. p: {test}, Holm-corrected over {n_cmp} comparisons; "
            f"* p < {st.alpha:g}, ** p < 0.01, *** p < 0.001, ns otherwise. {effect}.")


def to_markdown(result: AblationResult) -> str:
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


def to_latex(result: AblationResult) -> str:
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


def write_tables(result: AblationResult, out_dir: str | Path, stem: str = "stats") -> list[Path]:
    """Write ``stem.csv`` (full precision), ``stem.md`` and ``stem.tex``; return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{stem}.csv", out / f"{stem}.md", out / f"{stem}.tex"]
    result.table.to_csv(paths[0], index=False)
    paths[1].write_text(to_markdown(result), encoding="utf-8")
    paths[2].write_text(to_latex(result), encoding="utf-8")
    return paths
