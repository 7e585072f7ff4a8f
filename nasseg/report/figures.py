"""Thin plotly drawings of the data in :mod:`nasseg.report.data` and
:mod:`nasseg.report.ablation_data`.

Every string that came from a user (variant and parameter names, architecture summaries,
study names) goes through :func:`esc` before it reaches plotly: plotly renders a subset of
HTML in titles, ticks and hover labels (``<a href>``, ``<b>``) and decodes ``&amp; &lt; &gt;``
and numeric entities (not ``&quot;``), so escaped text shows as typed and never as markup.
"""
from __future__ import annotations

import html
import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from nasseg.report.ablation_data import BarsInfo
from nasseg.report.data import ImportanceInfo, ParallelInfo, ParetoInfo
from nasseg.store.objectives import get

__all__ = ["ablation_bars_figure", "cost_figure", "esc", "forest_figure", "hypervolume_figure",
           "importance_figure", "learning_curves_figure", "parallel_figure", "pareto_figures"]

TEMPLATE = "plotly_white"
BLUE, ORANGE, GREY, RED = "#1f77b4", "#ff7f0e", "#b0b0b0", "#d62728"


def esc(text: object) -> str:
    """Escape ``text`` for plotly's text, ticks and hover labels (``& < >``; quotes as numeric
    entities, which plotly decodes)."""
    return html.escape(str(text), quote=False).replace('"', "&#34;").replace("'", "&#39;")


def _label(name: str) -> str:
    """An objective's axis title from the registry (:mod:`nasseg.store.objectives`)."""
    return esc(get(name).axis)


def _hover(points: pd.DataFrame, objectives: list) -> list[str]:
    out = []
    for _, p in points.iterrows():
        vals = "<br>".join(f"{esc(o.axis)}: {p[o.name]:.6g}" for o in objectives)
        out.append(f"<b>trial {int(p['trial'])}</b> · {esc(p['arch_id'])}<br>{esc(p['summary'])}<br>{vals}")
    return out


def _log_axis(values: pd.Series) -> str:
    v = values[values > 0]
    return "log" if len(v) == len(values) and len(v) and v.max() / v.min() > 20 else "linear"


def pareto_figures(info: ParetoInfo) -> list[go.Figure]:
    """The 2D front (first objective against the second; against trial number with one
    objective) and, for three or more objectives, the 3D front of the first three."""
    pts, objs = info.points, info.objectives
    hover = _hover(pts, objs)
    front = pts["is_pareto"].to_numpy()
    y = objs[0].name
    x = objs[1].name if len(objs) > 1 else "trial"
    x_title = esc(objs[1].axis) if len(objs) > 1 else "trial"
    fig = go.Figure()
    for on_front, name, color in ((False, "dominated", GREY), (True, "Pareto front", RED)):
        sel = front == on_front
        fig.add_trace(go.Scatter(
            x=pts[x][sel], y=pts[y][sel], mode="markers", name=name,
            marker={"color": color, "size": 9 if on_front else 7, "line": {"width": 0.5, "color": "#333"}},
            hovertext=[h for h, s in zip(hover, sel, strict=True) if s], hoverinfo="text"))
    if len(objs) > 1 and front.any():
        f = pts[front].sort_values(x)
        fig.add_trace(go.Scatter(x=f[x], y=f[y], mode="lines", name="front", hoverinfo="skip",
                                 line={"color": RED, "shape": "hv", "width": 1.5}))
    fig.update_layout(template=TEMPLATE, title="Pareto front", height=480, showlegend=True,
                      xaxis={"title": x_title, "type": _log_axis(pts[x]) if x != "trial" else "linear"},
                      yaxis={"title": esc(objs[0].axis)})
    figs = [fig]
    if len(objs) >= 3:
        a, b, c = (o.name for o in objs[:3])
        ta, tb, tc = (esc(o.axis) for o in objs[:3])
        fig3 = go.Figure()
        for on_front, name, color in ((False, "dominated", GREY), (True, "Pareto front", RED)):
            sel = front == on_front
            fig3.add_trace(go.Scatter3d(
                x=pts[b][sel], y=pts[c][sel], z=pts[a][sel], mode="markers", name=name, hoverinfo="text",
                hovertext=[h for h, s in zip(hover, sel, strict=True) if s], marker={"size": 5, "color": color}))
        fig3.update_layout(template=TEMPLATE, title="Pareto front (3 objectives)", height=560, showlegend=True,
                           scene={"xaxis_title": tb, "yaxis_title": tc, "zaxis_title": ta})
        figs.append(fig3)
    return figs


def hypervolume_figure(history: pd.DataFrame, confirmed: float | None = None) -> go.Figure:
    """Normalised hypervolume (on validation Dice) after each completed trial, with the
    hypervolume of the confirmed test values as a dashed line when ``nasseg confirm`` ran."""
    fig = go.Figure(go.Scatter(x=history["trial"], y=history["hypervolume"], mode="lines+markers",
                               line={"shape": "hv", "color": BLUE}, name="validation"))
    if confirmed is not None and len(history):
        x = [history["trial"].min(), history["trial"].max()]
        fig.add_trace(go.Scatter(x=x, y=[confirmed, confirmed], mode="lines", name="test (nasseg confirm)",
                                 line={"dash": "dash", "color": "black"}, hoverinfo="y"))
        fig.add_annotation(x=x[1], y=confirmed, text=f"confirmed on test: {confirmed:.4f}", showarrow=False,
                           yshift=10, xanchor="right")
    fig.update_layout(template=TEMPLATE, title="Hypervolume (normalised, fixed reference point)", showlegend=True,
                      xaxis_title="trial", yaxis_title="hypervolume (validation Dice)", height=380,
                      yaxis={"rangemode": "tozero"})
    return fig


def parallel_figure(info: ParallelInfo) -> go.Figure:
    """Parallel coordinates of the parameters and objectives, coloured by the first objective."""
    dims = []
    for d in info.dimensions:
        dim = {"label": esc(d.label), "values": d.values}
        if d.ticktext is not None:
            dim.update(tickvals=list(range(len(d.ticktext))), ticktext=[esc(t) for t in d.ticktext])
        dims.append(dim)
    fig = go.Figure(go.Parcoords(dimensions=dims, line={
        "color": info.color, "colorscale": "Viridis", "showscale": True,
        "colorbar": {"title": {"text": _label(info.color_label)}}}))
    fig.update_layout(template=TEMPLATE, title="Parallel coordinates", height=460,
                      margin={"l": 80, "r": 80, "t": 90})
    return fig


def importance_figure(info: ImportanceInfo) -> go.Figure:
    """Horizontal bars of parameter importances, one colour per objective."""
    fig = go.Figure()
    for obj, sub in info.table.groupby("objective", sort=False):
        sub = sub.iloc[::-1]
        fig.add_trace(go.Bar(x=sub["importance"], y=[esc(p) for p in sub["param"]], orientation="h",
                             name=_label(obj)))
    n, k = info.table["param"].nunique(), max(1, len(fig.data))
    fig.update_layout(template=TEMPLATE, title="Parameter importances per objective", barmode="group", showlegend=True,
                      xaxis_title="importance (normalised)", height=min(1400, max(320, 120 + 10 * n * k)),
                      yaxis={"automargin": True})
    return fig


def learning_curves_figure(curves: pd.DataFrame, metric: str = "Dice", by_label: bool = False) -> go.Figure:
    """Validation ``metric`` per epoch, one line per trial; trials stopped early dashed and
    ended with an ×, failed ones dotted grey. ``by_label`` colours by variant (ablations)."""
    fig = go.Figure()
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
    labels = list(dict.fromkeys(curves["label"]))
    shown: set[str] = set()
    for trial, c in curves.groupby("trial", sort=True):
        c = c.sort_values("epoch")
        stopped, failed = bool(c["stopped_early"].iloc[0]), c["state"].iloc[0] == "FAIL"
        label = str(c["label"].iloc[0])
        if by_label:
            group, color = label, palette[labels.index(label) % len(palette)]
        else:
            group = "failed" if failed else "stopped early" if stopped else "completed"
            color = GREY if failed else ORANGE if stopped else BLUE
        dash = "dot" if failed else "dash" if stopped else "solid"
        symbols = ["circle"] * (len(c) - 1) + ["x" if stopped else "circle"]
        sizes = [3] * (len(c) - 1) + [10 if stopped else 3]
        fig.add_trace(go.Scatter(
            x=c["epoch"], y=c["value"], mode="lines+markers", name=esc(group), legendgroup=esc(group),
            showlegend=group not in shown, line={"color": color, "dash": dash, "width": 1.2},
            marker={"symbol": symbols, "size": sizes, "color": color}, opacity=0.85,
            hovertemplate=f"trial {int(trial)} · {esc(label)}<br>epoch %{{x}}<br>{metric} %{{y:.4f}}"
                          f"{' (stopped early)' if stopped else ''}<extra></extra>"))
        shown.add(group)
    fig.update_layout(template=TEMPLATE, title=f"Learning curves (validation {metric})", showlegend=True,
                      xaxis_title="epoch", yaxis_title=f"validation {metric}", height=420)
    if len(curves) and curves["epoch"].max() <= 20:
        fig.update_xaxes(dtick=1)
    return fig


def ablation_bars_figure(info: BarsInfo, split: str = "test") -> go.Figure:
    """Mean Dice per variant on ``split`` with its 95 % interval, each seed's mean as a dot,
    and the Holm-corrected significance mark of its comparison above the bar."""
    b = info.bars
    names = [esc(v) for v in b["variant"]]
    colors = [GREY if base else BLUE for base in b["is_baseline"]]
    fig = go.Figure(go.Bar(
        x=names, y=b["dice_mean"], marker_color=colors, name=f"mean {split} Dice (95% CI; grey = baseline)",
        error_y={"type": "data", "symmetric": False, "array": b["ci_high"] - b["dice_mean"],
                 "arrayminus": b["dice_mean"] - b["ci_low"], "color": "#333", "thickness": 1.5},
        customdata=np.stack([b["ci_low"], b["ci_high"]], axis=1),
        hovertemplate="%{x}<br>Dice %{y:.4f} [%{customdata[0]:.4f}, %{customdata[1]:.4f}]<extra></extra>"))
    s = info.seeds
    fig.add_trace(go.Scatter(
        x=[esc(v) for v in s["variant"]], y=s["dice"], mode="markers", name="seed means",
        marker={"color": "#222", "size": 6, "symbol": "circle-open"},
        customdata=s["seed"], hovertemplate="%{x}, seed %{customdata}: %{y:.4f}<extra></extra>"))
    for name, row in zip(names, b.itertuples(index=False), strict=True):
        if row.marks:
            top = row.ci_high if not math.isnan(row.ci_high) else row.dice_mean
            fig.add_annotation(x=name, y=top, text="<br>".join(esc(m) for m in row.marks),
                               showarrow=False, yshift=14, font={"size": 14})
    lows = pd.concat([b["ci_low"], s["dice"]]).dropna()
    highs = pd.concat([b["ci_high"], s["dice"]]).dropna()
    span = (highs.max() - lows.min()) if len(lows) else 1.0
    lo = max(0.0, lows.min() - 0.5 * span - 0.01) if len(lows) else 0.0
    hi = min(1.0, highs.max() + 0.35 * span + 0.01) if len(highs) else 1.0
    fig.update_layout(template=TEMPLATE, title=f"Mean {split} Dice per variant (95% CI, mixed model; grey = baseline)",
                      yaxis={"title": f"{split} Dice", "range": [lo, hi]}, height=460, bargap=0.4, showlegend=True)
    return fig


def forest_figure(forest: pd.DataFrame, split: str = "test") -> go.Figure:
    """Paired differences against the reference with their intervals; the Holm p-value and
    its mark are part of each row's label."""
    def p_text(p: float, mark: object) -> str:
        if p != p:
            return ""
        text = "p < 0.001" if p < 0.001 else f"p = {p:.3f}"
        return f"  ({text}{' ' + mark if isinstance(mark, str) and mark else ''})"

    labels = [esc(f"{x}{p_text(p, m)}")
              for x, p, m in zip(forest["label"], forest["p_holm"], forest["significance"], strict=True)]
    fig = go.Figure(go.Scatter(
        x=forest["mean_diff"], y=labels, mode="markers", marker={"size": 10, "color": BLUE},
        error_x={"type": "data", "symmetric": False, "array": forest["ci_high"] - forest["mean_diff"],
                 "arrayminus": forest["mean_diff"] - forest["ci_low"], "color": BLUE},
        hovertemplate="%{y}<br>ΔDice %{x:+.4f}<extra></extra>", name=f"ΔDice on {split} cases (95% CI)"))
    fig.add_vline(x=0, line={"color": "#555", "dash": "dash"})
    fig.update_layout(template=TEMPLATE, title=f"Paired difference in {split} Dice (variant − reference, 95% CI)",
                      xaxis_title=f"ΔDice ({split})", showlegend=True, legend={"orientation": "h", "y": -0.25}, height=max(260, 140 + 50 * len(forest)),
                      yaxis={"autorange": "reversed"})
    return fig


def cost_figure(info: BarsInfo, split: str = "test") -> go.Figure:
    """Mean ``split`` Dice against MACs (marker size ~ params) for every variant."""
    b = info.bars.dropna(subset=["macs"])
    size = np.sqrt(b["params"].to_numpy(dtype=float))
    size = 12 + 28 * (size - size.min()) / (np.ptp(size) or 1.0)
    fig = go.Figure(go.Scatter(
        x=b["macs"], y=b["dice_mean"], mode="markers+text", text=[esc(v) for v in b["variant"]],
        textposition="top center", cliponaxis=False, marker={"size": size, "color": BLUE, "opacity": 0.7},
        error_y={"type": "data", "symmetric": False, "array": b["ci_high"] - b["dice_mean"],
                 "arrayminus": b["dice_mean"] - b["ci_low"]},
        customdata=b["params"], name=f"variants: mean {split} Dice (95% CI), marker area ~ params",
        hovertemplate="%{text}<br>MACs %{x:.4s}<br>params %{customdata:.4s}<br>Dice %{y:.4f}<extra></extra>"))
    fig.update_layout(template=TEMPLATE, title=f"{split.capitalize()} Dice against cost (marker area ~ params)",
                      xaxis_title="MACs", yaxis_title=f"{split} Dice", height=420, showlegend=True,
                      legend={"orientation": "h", "y": -0.2})
    return fig
