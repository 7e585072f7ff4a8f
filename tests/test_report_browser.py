"""Reports opened in real headless Chromium: every figure renders with data, no JavaScript
error, no network request beyond the file. Screenshots go to reports/browser/artifacts/."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_report_data import make_search_study
from test_report_html import EVIL, make_ablation_study

from nasseg.report.browser import check_report
from nasseg.report.html import write_report

ARTIFACTS = Path(__file__).resolve().parent.parent / "reports" / "browser" / "artifacts"
CHROMIUM = "/usr/bin/chromium"

needs_chromium = pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK),
                                    reason=f"Debian's chromium is not installed at {CHROMIUM}")
pytestmark = [pytest.mark.browser, needs_chromium]


def open_in_chromium(html: Path, name: str):
    """Check ``html`` in Chromium, keep its screenshot, and assert it is clean."""
    check = check_report(html, screenshot=ARTIFACTS / f"{name}.png", chromium=CHROMIUM)
    print(f"screenshot: {check.screenshot}")
    assert check.problems() == []
    # the file itself, then only its embedded images (the prediction strips' data: URIs)
    assert check.requests[0] == html.resolve().as_uri()
    assert [u for u in check.requests[1:] if not u.startswith("data:image/")] == []
    assert check.screenshot.stat().st_size > 20_000
    return check


def test_search_report_renders_in_chromium(tmp_path):
    study = make_search_study(f"sqlite:///{tmp_path / 's.db'}")
    check = open_in_chromium(write_report(study, tmp_path / "search"), "search_report")
    titles = [f.title for f in check.figures]
    assert titles == ["Pareto front", "Pareto front (3 objectives)",
                      "Hypervolume (normalised, fixed reference point)", "Parallel coordinates",
                      "Parameter importances per objective", "Learning curves (validation Dice)",
                      "Recommended networks (validation Dice, 95% CI)"]
    by_title = {f.title: f for f in check.figures}
    assert sum(by_title["Pareto front"].points[:2]) == 12  # dominated + front markers
    assert sum(by_title["Pareto front (3 objectives)"].points) == 12  # dominated + front, each in the legend
    assert by_title["Parallel coordinates"].points == [12]
    assert len(by_title["Learning curves (validation Dice)"].points) == 13  # 12 complete + 1 failed


def test_hostile_names_stay_text_through_nasseg_report_check(tmp_path, capsys):
    """``nasseg report --check`` fails on any JavaScript error, dialog (an injected ``alert``)
    or network request; names built to break out of HTML and plotly's markup cause none."""
    import shutil

    from nasseg.cli import main

    study = make_ablation_study(f"sqlite:///{tmp_path / 'a.db'}", name="evil",
                                variants=["skip_fusion", EVIL, '"><img src=x onerror=alert(1)>'])
    study.set_user_attr("command", f"nasseg ablate {EVIL}")
    assert main(["report", str(tmp_path / "a.db"), "-o", str(tmp_path / "evil"), "--check"]) == 0
    out = capsys.readouterr().out
    shot = tmp_path / "evil" / "artifacts" / "report.png"
    assert "chromium: 4 figures rendered in " in out and f"screenshot {shot}" in out
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    kept = shutil.copy(shot, ARTIFACTS / "hostile_names_report.png")
    print(f"screenshot: {kept}")


def test_the_check_catches_errors_empty_figures_and_requests(tmp_path):
    """The harness itself: a page with a thrown error, a console error, an empty figure and a
    request to a (closed) loopback port must fail, with each problem named."""
    from plotly.offline import get_plotlyjs

    page = tmp_path / "broken.html"
    page.write_text(
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><link rel='icon' href='data:,'>"
        f"<script>{get_plotlyjs()}</script></head><body>"
        "<div id='empty' class='plotly-graph-div' style='height:300px'></div>"
        "<script>Plotly.newPlot('empty', [], {title: {text: 'empty'}});</script>"
        "<img src='http://127.0.0.1:9/pixel.png'>"
        "<script>console.error('bad thing'); throw new Error('boom');</script></body></html>")
    check = check_report(page, chromium=CHROMIUM, timeout=20)
    problems = check.problems()
    assert any(p.startswith("JavaScript error: Error: boom") for p in problems), problems
    assert "console error: bad thing" in problems
    assert "network request: http://127.0.0.1:9/pixel.png" in problems
    assert "figure empty (empty) holds no data" in problems


@pytest.mark.slow
def test_quickstart_search_report_renders_in_chromium(tmp_path):
    """The README's main command, ``nasseg search studies/quickstart.yaml`` then ``nasseg report``
    (about 5 minutes on 2 CPU cores), in a private output folder."""
    import yaml

    from nasseg.cli import main

    repo = Path(__file__).resolve().parent.parent
    study = yaml.safe_load((repo / "studies" / "quickstart.yaml").read_text())
    study["space"] = str((repo / "studies" / study["space"]).resolve()) \
        if (repo / "studies" / study["space"]).exists() else str((repo / study["space"]).resolve())
    study["output_dir"] = str(tmp_path / "run")
    path = tmp_path / "quickstart.yaml"
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    assert main(["search", str(path), "--no-progress"]) == 0
    assert main(["report", str(path), "-o", str(tmp_path / "report")]) == 0
    check = open_in_chromium(tmp_path / "report" / "report.html", "quickstart_report")
    assert [f.title for f in check.figures][:1] == ["Pareto front"]
    assert all(f.has_data for f in check.figures) and len(check.figures) >= 5
