"""The report's "Choosing a network" section: recommendations, then one card per Pareto
member (costs, Dice with its interval, copyable YAML, prediction strip).

Data from :mod:`nasseg.report.choose` and :mod:`nasseg.report.predictions`; this module
only draws it (plotly figures and escaped HTML).
"""
from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from nasseg.errors import NassegError
from nasseg.report.choose import ChoiceInfo, Member, choice_info
from nasseg.report.page import esc
from nasseg.report.page import table as _table
from nasseg.report.predictions import GREEN, RED, Panel, strip_info
from nasseg.store.objectives import OBJECTIVES, get

RECOMMEND_TITLE = "Recommended networks (validation Dice, 95% CI)"
STRIP_TITLE = "Predictions of trial {trial}: best, median and worst validation case"
PRED_LEGEND = "prediction (red tint)"
TRUTH_LEGEND = "ground truth (green outline)"
_MARKERS = {"knee point": "star", "highest Dice": "diamond"}


def recommend_figure(info: ChoiceInfo, cost: str) -> go.Figure:
    """Dice (with its 95% interval) against ``cost`` for the Pareto members; the
    recommended ones and the starting preset marked."""
    members = info.members
    fig = go.Figure()
    fig.add_trace(go.Scatter(
        x=[m.costs.get(cost) for m in members], y=[m.dice for m in members], mode="markers",
        name="Pareto set", marker={"size": 9, "color": "#1f77b4"},
        error_y={"type": "data", "symmetric": False, "array": [m.ci[1] - m.dice for m in members],
                 "arrayminus": [m.dice - m.ci[0] for m in members]},
        text=[f"trial {m.trial}: {m.summary}" for m in members], hoverinfo="text+x+y"))
    by_trial = {m.trial: m for m in members}
    for r in info.recommendations:
        m = by_trial[r.trial]
        fig.add_trace(go.Scatter(x=[m.costs.get(cost)], y=[m.dice], mode="markers", name=f"{r.label}: trial {m.trial}",
                                 marker={"size": 16, "symbol": _MARKERS.get(r.label, "circle-open"),
                                         "line": {"width": 2}}))
    if info.preset is not None:
        p = info.preset
        fig.add_trace(go.Scatter(x=[p.costs.get(cost)], y=[p.dice], mode="markers",
                                 name=f"starting preset {p.initial_arch} (trial {p.trial})",
                                 marker={"size": 13, "symbol": "x", "color": "#d62728"}))
    fig.update_layout(title=RECOMMEND_TITLE, xaxis_title=get(cost).axis, yaxis_title="Dice",
                      height=420, margin={"t": 50, "l": 60, "r": 20, "b": 50})
    xs = [m.costs[cost] for m in members if m.costs.get(cost)]
    if xs and min(xs) > 0 and max(xs) / min(xs) > 10:  # costs spanning decades: a log axis
        fig.update_xaxes(type="log")
    return fig


def strip_figure(trial: int, panels: list[Panel]) -> go.Figure:
    """The prediction strip as one row of images."""
    titles = [f"{p.label}: {p.case_id[:24]} (Dice {p.dice:.3f})" for p in panels]
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=titles, horizontal_spacing=0.02)
    for i, p in enumerate(panels, start=1):
        fig.add_trace(go.Image(z=p.rgb, name=p.label, hovertemplate=f"{p.case_id}<extra></extra>"), row=1, col=i)
    # legend-only entries: which colour is the prediction, which the ground truth (predictions.overlay)
    for name, color, symbol in ((PRED_LEGEND, _rgb(RED), "square"), (TRUTH_LEGEND, _rgb(GREEN), "square-open")):
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=name, hoverinfo="skip",
                                 marker={"color": color, "size": 12, "symbol": symbol, "line": {"width": 3, "color": color}}),
                      row=1, col=1)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(title=STRIP_TITLE.format(trial=trial), height=320, showlegend=True,
                      legend={"orientation": "h", "x": 0, "y": -0.02, "yanchor": "top"},
                      margin={"t": 70, "l": 10, "r": 10, "b": 40})
    return fig


def _rgb(color) -> str:
    return "rgb({},{},{})".format(*(int(c) for c in color))


def choice_sections(study, page, info: ChoiceInfo | None = None, confirmed=None) -> None:
    """Add the recommendation and the member cards to ``page`` (a report ``_Page``);
    ``confirmed`` is :func:`nasseg.search.confirm.confirmed_table` (``None``: not confirmed)."""
    info = choice_info(study) if info is None else info
    page.heading("Choosing a network", "choosing")
    if not info.members:
        page.note(info.note)
        return
    limits = ", ".join(f"{get(k).column} <= {get(k).text(v)}" for k, v in info.limits.items()) or "none"
    page.note(f"The knee point is the Pareto member closest to the ideal (Dice 1, zero cost) once each "
              f"objective is scaled over the front; the study's limits: {limits}. Dice here is validation "
              "Dice (the cases that chose the network) with a 95% interval over those cases (one training "
              "run); confirmed test Dice, where nasseg confirm ran, is on each member's card; "
              "comparisons with the starting preset are paired over the cases both were validated on.")
    rows = [[esc(r.label), esc(r.trial), esc(r.why), esc(r.vs_preset or "no starting preset in this study")]
            for r in info.recommendations]
    page.raw('<div id="recommendation">' + _table(["recommendation", "trial", "why", "compared with the preset"],
                                                   rows, left={0, 2, 3}) + "</div>")
    cost = next((o.name for o in OBJECTIVES.values() if o.measured == "counter" and o.name in info.members[0].costs),
                "params")
    page.figure(recommend_figure(info, cost))
    page.heading(f"Pareto members ({len(info.members)})", "members")
    conf = confirmed.set_index("trial") if confirmed is not None and not confirmed.empty else None
    for m in info.members:
        page.raw(_card(m, esc, conf.loc[m.trial] if conf is not None and m.trial in conf.index else None))
        panels, why = _strip(m)
        if panels:
            page.figure(strip_figure(m.trial, panels))
        else:
            page.note(f"trial {m.trial}: no prediction strip ({why})")


def _strip(m: Member) -> tuple[list[Panel], str]:
    if not m.checkpoint:
        return [], "the trial recorded no checkpoint"
    if not m.cases:
        return [], "the trial stored no per-case results"
    try:
        return strip_info(m.checkpoint, m.cases), ""
    except (NassegError, OSError) as err:
        return [], str(err)


def cost_text(costs: dict[str, float]) -> str:
    """A member's costs, each as the objective registry writes it (:meth:`~nasseg.store.objectives.Objective.describe`)."""
    return ", ".join(get(k).describe(v) for k, v in costs.items())


def _card(m: Member, esc, confirmed=None) -> str:
    test = ("" if confirmed is None else
            f"<br>test Dice <strong>{confirmed['test_dice']:.4f}</strong> [{confirmed['test_ci_low']:.4f}, "
            f"{confirmed['test_ci_high']:.4f}] (confirmed by nasseg confirm: {int(confirmed['n_seeds'])} seeds, "
            "test cases the search never saw)")
    return (f'<section class="fig member" id="member-{m.trial}"><strong>trial {esc(m.trial)}</strong> '
            f"{esc(m.summary)}<br>validation Dice {m.dice:.4f} [{m.ci[0]:.4f}, {m.ci[1]:.4f}] over "
            f"{len(m.cases)} validation cases (the cases that chose it){test}<br>{esc(cost_text(m.costs))}"
            f"<details><summary>configuration (YAML for <code>nasseg train</code>)</summary>"
            f"<pre>{esc(m.yaml)}</pre></details></section>")
