"""The HTML file: self-contained, escaped, one figure per data section; ``nasseg report``."""
from __future__ import annotations

import re

import numpy as np
import optuna
import pandas as pd
import pytest
from plotly.offline import get_plotlyjs
from test_report_data import make_search_study

from nasseg.ablation.config import AblationConfig
from nasseg.cli import main
from nasseg.report.html import build_report, write_report
from nasseg.report.testing import add_trial, new_study

EVIL = '<script>alert("x")</script>'


def make_ablation_study(storage: str, name: str = "skips", seed: int = 0, variants=None) -> optuna.Study:
    """An ablation in nasseg's format: 3 variants x 3 seeds x 10 cases of given (seeded) Dice."""
    variants = variants or ["skip_fusion", "concat", "irsc"]
    cfg = AblationConfig(name=name, base="cmunext_s", seeds=3, data={"kind": "synthetic"},
                         factors={"skip": {"path": "stages.:-1.skip.type", "levels": variants}},
                         stats={"bootstrap": {"n_resamples": 500}})
    study = new_study(storage, name, "ablation", [("dice", "maximize")], config=cfg.model_dump(mode="json"),
                      dataset={"kind": "folder", "path": "data/dsb2018_96", "split": {"seed": 0}},
                      command=f"nasseg ablate {name}.yaml", versions={"nasseg": "0.1.0"})
    rng = np.random.default_rng(seed)
    case_effect = rng.uniform(0.5, 0.9, size=10)
    for s in range(3):
        for k, v in enumerate(variants):
            dice = np.clip(case_effect + 0.03 * k + rng.normal(0, 0.02, size=10), 0, 1)
            per_case = [{"case_id": f"case{c:02d}", "class": 1, "dice": float(d), "iou": float(d) / 1.2,
                         "hd95": 3.0} for c, d in enumerate(dice)]
            add_trial(study, [float(dice.mean())], variant=v, factors={"skip": v}, is_baseline=k == 0, seed=s,
                      per_case=per_case, cost={"params": 4e5 - 5e4 * k, "macs": 6e7 - 1e7 * k},
                      history=[{"epoch": e, "dice": float(dice.mean()) * e / 3} for e in (1, 2, 3)],
                      split={"method": "random", "seed": 0, "n_train": 28, "n_val": 10, "hash": "h1"},
                      arch={"stages": []}, arch_id=f"v{k}")
    return study


def external_refs(html: str) -> list[str]:
    """``src``/``href`` of the page's own tags that point off the file (plotly.js's code,
    which mentions its home page in strings, is left out)."""
    page = html.replace(get_plotlyjs(), "")
    tags = re.findall(r"<(?:script|link|img|iframe|source|embed|object)\b[^>]*>", page, flags=re.I)
    return [t for t in tags if re.search(r"""(?:src|href|data)\s*=\s*["']?\s*(?:https?:)?//""", t, re.I)]


def test_search_report_is_self_contained_and_complete(tmp_path):
    study = make_search_study(f"sqlite:///{tmp_path / 's.db'}")
    report = build_report(study)
    html = report.html
    assert html.count(get_plotlyjs()[:500]) == 1  # plotly.js inlined exactly once
    assert external_refs(html) == []
    scripts = re.findall(r"<script\b[^>]*>", html.replace(get_plotlyjs(), ""), re.I)
    assert len(scripts) == 8 and all("src" not in s for s in scripts)  # plotly.js + one per figure
    assert report.figure_ids == [f"fig-{i}" for i in range(1, 8)]  # 6 + recommended networks
    for title in ("Pareto front", "Pareto front (3 objectives)", "Hypervolume (normalised",
                  "Parallel coordinates", "Parameter importances per objective", "Learning curves"):
        assert title in html
    for text in ("nasseg search quick.yaml", "synthetic 2D (96 cases, seed 0)", "67 train / 29 val / 0 test cases",
                 "Pareto set (", "<summary>config</summary>", "optuna " + optuna.__version__):
        assert text in html


def test_two_objective_search_has_no_3d_front(tmp_path):
    study = make_search_study(f"sqlite:///{tmp_path / 's.db'}", objectives=[("dice", "maximize"),
                                                                          ("macs", "minimize")])
    report = build_report(study)
    assert len(report.figure_ids) == 6 and "Pareto front (3 objectives)" not in report.html


def test_user_strings_are_escaped_everywhere(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = make_ablation_study(url, name="evil", variants=["skip_fusion", EVIL, "irsc&<b>"])
    study.set_user_attr("command", f"nasseg ablate {EVIL}")
    html = build_report(study).html
    assert EVIL not in html and "<b>" not in html
    assert "nasseg ablate &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    # in the statistics table, and inside plotly's JSON as entities plotly decodes for display
    assert '<td class="l">&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;</td>' in html
    assert r'"x":["skip_fusion","&lt;script&gt;alert(&#34;x&#34;)&lt;\u002fscript&gt;","irsc&amp;&lt;b&gt;"]' in html
    assert "irsc&amp;&lt;b&gt;" in html


def test_ablation_report_and_tables(tmp_path):
    study = make_ablation_study(f"sqlite:///{tmp_path / 'a.db'}")
    path = write_report(study, tmp_path / "out")
    assert path == tmp_path / "out" / "report.html"
    assert sorted(p.name for p in path.parent.iterdir()) == ["per_case.csv", "report.html", "stats.csv", "stats.md",
                                                             "stats.tex"]
    html = path.read_text()
    assert external_refs(html) == []
    for text in ("Mean validation Dice per variant", "Paired difference in validation Dice",
                 "Validation Dice against cost", "Statistics",
                 "Holm-corrected over 2 comparisons", "skip_fusion (baseline)", "nasseg ablate skips.yaml",
                 "Seeds</dt><dd>0, 1, 2"):
        assert text in html
    table = pd.read_csv(path.parent / "stats.csv")
    assert table["variant"].tolist() == ["skip_fusion", "concat", "irsc"]
    assert table["n_pairs"].tolist()[1:] == [30, 30] and table["n_seeds"].tolist() == [3, 3, 3]
    tex = (path.parent / "stats.tex").read_text()
    assert r"skip\_fusion (baseline)" in tex and r"\begin{tabular}{lrrrrrrrrr}" in tex
    md = (path.parent / "stats.md").read_text()
    assert md.splitlines()[0] == ("| Variant | Dice [95% CI] | SD (seeds) | vs. | ΔDice [95% CI] | p (Holm) | "
                                  "Effect | Sig. | Params | MACs |")


def test_cli_report_paths_and_errors(tmp_path, capsys):
    make_search_study(f"sqlite:///{tmp_path / 'study.db'}")
    out = tmp_path / "rep.html"
    assert main(["report", str(tmp_path / "study.db"), "-o", str(out)]) == 0
    assert capsys.readouterr().out.startswith(f"report: {out}")
    assert out.stat().st_size > 3_000_000  # plotly.js is inside
    assert main(["report", str(tmp_path / "missing.db")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"nasseg: error: {tmp_path / 'missing.db'}: no study storage at")


@pytest.mark.parametrize("test", ["wilcoxon", "ttest"])
def test_ablation_table_numbers_match_direct_computation(tmp_path, test):
    from scipy import stats as sps

    from nasseg.ablation.results import analyze
    from nasseg.ablation.stats import holm

    study = make_ablation_study(f"sqlite:///{tmp_path / 'a.db'}", seed=4)
    cfg = AblationConfig.model_validate({**study.user_attrs["config"], "stats": {"test": test}})
    table = analyze(study, cfg).table.set_index("variant")
    cells = {}
    for t in study.get_trials():
        cells[(t.user_attrs["variant"], t.user_attrs["seed"])] = np.array([c["dice"] for c in t.user_attrs["per_case"]])
    p = []
    for v in ("concat", "irsc"):
        d = np.concatenate([cells[(v, s)] - cells[("skip_fusion", s)] for s in range(3)])
        # per-case tests over seed-averaged values: one pair per case
        a = np.mean([cells[(v, s)] for s in range(3)], axis=0)
        b = np.mean([cells[("skip_fusion", s)] for s in range(3)], axis=0)
        expected = sps.wilcoxon(a, b).pvalue if test == "wilcoxon" else sps.ttest_rel(a, b).pvalue
        assert table.loc[v, "p_value"] == pytest.approx(expected, rel=1e-12)
        assert table.loc[v, "mean_diff"] == pytest.approx(d.mean(), abs=1e-12)
        p.append(expected)
        seed_means = [cells[(v, s)].mean() for s in range(3)]
        assert table.loc[v, "dice_mean"] == pytest.approx(np.mean(seed_means), abs=1e-12)
    np.testing.assert_allclose(table.loc[["concat", "irsc"], "p_holm"], holm(p), rtol=1e-12)
    assert table.loc["irsc", "macs"] == 4e7 and table.loc["skip_fusion", "params"] == 4e5
