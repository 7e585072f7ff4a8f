"""`nasseg stats` on a hand-written long-format CSV reproduces statsmodels' MixedLM."""
from __future__ import annotations

import io
import warnings

import numpy as np
import pandas as pd
import pytest

from nasseg.cli import main

CSV = """variant,seed,case,dice,hd95
concat,0,case0,0.819,9.03
concat,0,case1,0.762,18.18
concat,0,case2,0.856,6.31
concat,0,case3,0.779,3.74
concat,0,case4,0.602,14.61
concat,1,case0,0.812,11.09
concat,1,case1,0.712,14.39
concat,1,case2,0.871,17.16
concat,1,case3,0.736,8.31
concat,1,case4,0.572,16.68
concat,2,case0,0.837,14.30
concat,2,case1,0.717,16.27
concat,2,case2,0.864,12.67
concat,2,case3,0.772,4.95
concat,2,case4,0.586,11.01
skip_fusion,0,case0,0.784,4.49
skip_fusion,0,case1,0.689,19.35
skip_fusion,0,case2,0.884,14.90
skip_fusion,0,case3,0.811,19.48
skip_fusion,0,case4,0.607,15.19
skip_fusion,1,case0,0.827,12.85
skip_fusion,1,case1,0.703,17.56
skip_fusion,1,case2,0.878,15.23
skip_fusion,1,case3,0.823,13.66
skip_fusion,1,case4,0.646,14.05
skip_fusion,2,case0,0.839,12.99
skip_fusion,2,case1,0.694,18.73
skip_fusion,2,case2,0.860,8.90
skip_fusion,2,case3,0.823,3.39
skip_fusion,2,case4,0.577,11.20
"""


def _mixedlm(d: pd.DataFrame):
    import statsmodels.formula.api as smf

    model = smf.mixedlm("d ~ 1", d.assign(g=1), groups="g", re_formula="0",
                        vc_formula={"seed": "0 + C(seed)", "case": "0 + C(case)"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(reml=True, method="bfgs", gtol=1e-14)


def test_stats_cli_reproduces_statsmodels_mixedlm(tmp_path, capsys):
    path = tmp_path / "results.csv"
    path.write_text(CSV)
    assert main(["stats", str(path), "--baseline", "skip_fusion", "-o", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "| skip_fusion (baseline) |" in out and "## hd95" in out
    assert "Warning: only 3 training seeds (< 5)" in out
    table = pd.read_csv(tmp_path / "out" / "stats_dice.csv").set_index("variant")
    assert (tmp_path / "out" / "stats_dice.tex").is_file() and (tmp_path / "out" / "stats_hd95.md").is_file()
    frame = pd.read_csv(path)
    wide = frame.pivot_table(index=["seed", "case"], columns="variant", values="dice")
    d = (wide["concat"] - wide["skip_fusion"]).rename("d").reset_index()
    ref = _mixedlm(d)
    row = table.loc["concat"]
    var_case, var_seed = ref.vcomp
    assert row["mean_diff"] == pytest.approx(ref.fe_params.iloc[0], abs=1e-9)
    assert row["mean_diff"] / row["statistic"] == pytest.approx(ref.bse_fe.iloc[0], abs=1e-9)  # the SE
    assert (row["var_seed"], row["var_case"], row["var_res"]) == pytest.approx((var_seed, var_case, ref.scale), abs=1e-9)
    # p and CI: Student-t on the test's df of the same variance (statsmodels itself gives z)
    from scipy import stats as sps

    se = ref.bse_fe.iloc[0]
    ms = [5 * np.var(d.groupby("seed")["d"].mean(), ddof=1), 3 * np.var(d.groupby("case")["d"].mean(), ddof=1)]
    resid = d["d"] - d.groupby("seed")["d"].transform("mean") - d.groupby("case")["d"].transform("mean") + d["d"].mean()
    ms.append((resid ** 2).sum() / 8)
    if var_seed > 1e-6 and var_case > 1e-6:  # an interior fit: df of MS_seed + MS_case - MS_res
        # the test's df: the seed term counted 3 times (stats.SEED_DF_WEIGHT), at least S - 1
        df = (ms[0] + ms[1] - ms[2]) ** 2 / (3 * ms[0] ** 2 / 2 + ms[1] ** 2 / 4 + ms[2] ** 2 / 8)
        assert row["df"] == pytest.approx(max(df, 2.0), rel=1e-9)
    assert row["p_value"] == pytest.approx(2 * sps.t.sf(abs(ref.fe_params.iloc[0] / se), row["df"]), abs=1e-9)
    half = sps.t.ppf(0.975, row["df"]) * se
    assert (row["diff_ci_low"], row["diff_ci_high"]) == pytest.approx(
        (ref.fe_params.iloc[0] - half, ref.fe_params.iloc[0] + half), abs=1e-9)


def test_stats_cli_bad_input_is_one_clear_line(tmp_path, capsys):
    path = tmp_path / "r.csv"
    path.write_text("variant,seed,dice\na,0,0.5\n")
    assert main(["stats", str(path), "--baseline", "a"]) == 2
    assert "r.csv: missing columns ['case']" in capsys.readouterr().err
    path.write_text(CSV)
    assert main(["stats", str(path), "--baseline", "unet"]) == 2
    assert "baseline 'unet' is not a variant" in capsys.readouterr().err


def test_voxel_counts_of_nasseg_evaluate_are_not_analysed_unless_named(tmp_path, capsys):
    """``nasseg evaluate``'s per_case.csv carries inter/pred_voxels/label_voxels (for the pooled
    Dice): by default only the metrics get tables; a count is analysed when named."""
    frame = pd.read_csv(io.StringIO(CSV))
    frame = frame.assign(inter=100, pred_voxels=200, label_voxels=150)
    path = tmp_path / "per_case.csv"
    frame.to_csv(path, index=False)
    assert main(["stats", str(path), "--baseline", "skip_fusion", "-o", str(tmp_path / "out")]) == 0
    capsys.readouterr()
    assert sorted(p.name for p in (tmp_path / "out").glob("stats_*.csv")) == ["stats_dice.csv", "stats_hd95.csv"]
    assert main(["stats", str(path), "--baseline", "skip_fusion", "--metric", "inter", "-o", str(tmp_path / "o2")]) == 0
    assert (tmp_path / "o2" / "stats_inter.csv").is_file()


def test_stats_never_calls_seen_cases_test_cases(tmp_path, capsys):
    """Issue 20: evaluate's per_case.csv on data that overlaps training labels each row's
    split; stats leaves out the train/val rows with a note instead of calling them test
    cases, and refuses a file holding only seen cases."""
    import numpy as np
    import pandas as pd

    from nasseg.cli import main

    rng = np.random.default_rng(0)
    rows = [{"variant": v, "seed": s, "case": f"c{c}", "split": "train" if c < 4 else "external",
             "dice": float(np.clip(0.7 + 0.05 * (v == "b") + rng.normal(0, 0.05), 0, 1))}
            for v in ("a", "b") for s in range(3) for c in range(12)]
    path = tmp_path / "per_case.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    assert main(["stats", str(path), "--baseline", "a", "-o", str(tmp_path / "out")]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "Left out 24 rows of cases the networks were trained or validated on (24 train" in out
    seen = pd.DataFrame(rows).assign(split="val")
    seen.to_csv(path, index=False)
    assert main(["stats", str(path), "--baseline", "a", "-o", str(tmp_path / "out2")]) == 2
    assert "every row's split is train or val" in capsys.readouterr().err
