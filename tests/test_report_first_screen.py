"""The report opens with its answer: what was searched or compared, the recommended networks
with the split their Dice is measured on (test once ``nasseg confirm`` ran, else validation),
links down to the evidence; legends on the figures; the answer inside the first screen of a
1280 x 900 window in headless Chromium (its screenshot: tests/fixtures/report_first_screen.png,
taken from a real search + confirm; the test's own goes to reports/browser/artifacts/)."""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
from test_report_data import make_search_study
from test_report_html import make_ablation_study

from nasseg.report.answer import ANSWER_ID
from nasseg.report.choose import choice_info
from nasseg.report.choose_html import PRED_LEGEND, TRUTH_LEGEND, strip_figure
from nasseg.report.html import build_report, write_report
from nasseg.report.predictions import Panel
from nasseg.store import update_record

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "reports" / "browser" / "artifacts"


def confirm_members(study, test_dice: dict[int, float], against: dict | None = None,
                    extra: dict[int, dict] | None = None) -> None:
    """Store a confirmation record with the given test Dice per trial (what `nasseg confirm`
    stores; the values are the test's, nothing is computed); ``against``: its --against part,
    ``extra``: per trial, the columns --against adds to a member."""
    values = {t.number: t.values for t in study.get_trials() if t.values}
    members = [{"trial": n, "arch_id": f"a{n:02d}", "val_dice": values[n][0], "test_dice": d,
                "test_ci_low": d - 0.02, "test_ci_high": d + 0.02, "test_sd_seeds": 0.01, "n_seeds": 3,
                "n_cases": 20, "on_val_front": True, "stays_on_front": True, **(extra or {}).get(n, {})}
               for n, d in test_dice.items()]
    update_record(study, confirm={"seeds": 3, "epochs": 5, "selection": "pareto", "hv_val": 0.5, "hv_test": 0.45,
                                  "members": members, "against": against})


def answer_of(html: str) -> str:
    return html.split(f'<section id="{ANSWER_ID}"', 1)[1].split("</section>", 1)[0]


def test_the_search_report_opens_with_validation_recommendations(tmp_path):
    study = make_search_study(f"sqlite:///{tmp_path / 's.db'}")
    html = build_report(study).html
    body = html.split("<main>", 1)[1]
    assert body.index(f'<section id="{ANSWER_ID}"') < body.index('<header id="details"') < body.index("plotly-graph-div")
    answer = answer_of(html)
    info = choice_info(study)
    assert "Recommended networks" in answer and "12 networks" not in answer
    picked = list(dict.fromkeys(r.trial for r in info.recommendations))  # one row per network
    for r in info.recommendations:
        assert r.label in answer and f'href="#member-{r.trial}"' in answer
    assert answer.count('<span class="split validation">validation</span>') == len(picked)
    assert 'class="split test"' not in answer
    for anchor in re.findall(r'href="#([^"]+)"', answer):  # every link lands on a section of the page
        assert f'id="{anchor}"' in html, anchor


def test_confirmed_members_show_their_test_dice_labelled_test(tmp_path):
    study = make_search_study(f"sqlite:///{tmp_path / 's.db'}")
    info = choice_info(study)
    picked = sorted({r.trial for r in info.recommendations})
    confirm_members(study, {n: 0.5 + 0.01 * i for i, n in enumerate(picked)})
    html = build_report(study).html
    answer = answer_of(html)
    assert answer.count('<span class="split test">test</span>') == len(picked)
    assert "validation" in answer  # the note says what validation would mean, and each row its val Dice
    assert "nasseg confirm re-trained" in answer and 'href="#confirmed"' in answer
    for i, n in enumerate(picked):
        assert f"<strong>{0.5 + 0.01 * i:.4f}</strong>" in answer
        card = html.split(f'id="member-{n}"', 1)[1].split("</section>", 1)[0]
        assert "validation Dice" in card and f"test Dice <strong>{0.5 + 0.01 * i:.4f}</strong>" in card
    assert "Against " not in answer


def test_the_verdict_against_a_preset_opens_the_search_report(tmp_path):
    """`nasseg confirm --against` stores a verdict; the report's first screen states it."""
    study = make_search_study(f"sqlite:///{tmp_path / 's.db'}")
    picked = sorted({r.trial for r in choice_info(study).recommendations})
    verdict = "not found: the best member, trial_3, differs by -0.0100 [-0.0300, +0.0100] (Holm p 0.41)"
    confirm_members(study, {n: 0.5 for n in picked}, against={"name": "cmunext_s", "reference_trial": picked[0],
                                                             "verdict": verdict, "comparisons": []})
    html = build_report(study).html
    answer = answer_of(html)
    assert (f"nasseg confirm re-trained {len(picked) - 1} of them and cmunext_s with 3 seeds" in answer
            and f"Against cmunext_s (trial {picked[0]}, re-trained with the same seeds: test Dice 0.5000 [95% CI "
            in answer and "]), at no higher cost: " in answer)
    assert verdict in answer
    confirmed = html.split('id="confirmed"', 1)[1].split("</table>", 1)[0]
    assert "test Dice − cmunext_s [95% CI]" not in confirmed  # a record without the comparison columns


def test_the_confirmed_table_shows_each_member_against_the_preset(tmp_path):
    study = make_search_study(f"sqlite:///{tmp_path / 's.db'}")
    ref, member = sorted({r.trial for r in choice_info(study).recommendations})[:2]
    verdict = f"not found: no member costing no more than cmunext_s (trial {ref}) has a higher test Dice"
    nan = float("nan")
    confirm_members(study, {ref: 0.5, member: 0.51}, against={"name": "cmunext_s", "reference_trial": ref,
                                                              "verdict": verdict},
                    extra={ref: {"is_reference": True, "diff_vs_ref": nan, "diff_ci_low": nan, "diff_ci_high": nan,
                                 "p_holm": nan},
                           member: {"is_reference": False, "diff_vs_ref": 0.0123, "diff_ci_low": -0.0045,
                                    "diff_ci_high": 0.0291, "p_holm": 0.187}})
    confirmed = build_report(study).html.split('id="confirmed"', 1)[1].split("</table>", 1)[0]
    assert "test Dice − cmunext_s [95% CI]" in confirmed and "Holm p" in confirmed and verdict in confirmed
    assert ">reference<" in confirmed and "+0.0123 [-0.0045, +0.0291]" in confirmed and ">0.187<" in confirmed


def test_the_ablation_report_opens_with_its_comparisons(tmp_path):
    study = make_ablation_study(f"sqlite:///{tmp_path / 'a.db'}")
    answer = answer_of(build_report(study).html)
    assert "Compared 3 variants of cmunext_s" in answer and "baseline skip_fusion" in answer
    assert "concat − skip_fusion" in answer and "irsc − skip_fusion" in answer and "Holm p" in answer
    assert "highest mean Dice</td><td class=\"l\">irsc" in answer
    # the fixture's split has no test cases: the study scored validation, and says so on every row
    assert "scored on the same 10 validation cases" in answer
    assert answer.count('<span class="split validation">validation</span>') == 3 and "split test" not in answer


def test_prediction_strips_have_a_legend():
    rgb = np.zeros((8, 8, 3), np.uint8)
    fig = strip_figure(3, [Panel("best", "c1", 0.9, rgb), Panel("worst", "c2", 0.4, rgb)])
    named = {t.name for t in fig.data if t.type == "scatter" and t.showlegend is not False}
    assert named == {PRED_LEGEND, TRUTH_LEGEND} and fig.layout.showlegend is True
    assert "validation case" in fig.layout.title.text


@pytest.mark.browser
@pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK), reason=f"no chromium at {CHROMIUM}")
def test_the_recommendation_is_within_the_first_screen(tmp_path):
    from nasseg.report.browser import FIRST_SCREEN_HEIGHT, check_report

    study = make_search_study(f"sqlite:///{tmp_path / 's.db'}")
    info = choice_info(study)
    confirm_members(study, {r.trial: 0.6 for r in info.recommendations})
    path = write_report(study, tmp_path / "report")
    shot = ARTIFACTS / "report_first_screen_test.png"
    check = check_report(path, chromium=CHROMIUM, measure=(f"#{ANSWER_ID}", f"#{ANSWER_ID} tbody tr:last-child",
                                                           "#pareto-front"),
                         first_screen=shot)
    print(f"screenshot: {check.first_screen}")
    assert check.problems() == []
    answer, last_row = check.boxes[f"#{ANSWER_ID}"], check.boxes[f"#{ANSWER_ID} tbody tr:last-child"]
    assert 0 <= answer["top"] < 150  # right under the title
    assert last_row["bottom"] <= answer["bottom"] <= FIRST_SCREEN_HEIGHT  # every recommendation visible
    assert check.boxes["#pareto-front"]["top"] > answer["bottom"]  # the evidence is below it
    assert check.first_screen.stat().st_size > 20_000
