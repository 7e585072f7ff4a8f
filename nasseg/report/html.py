"""One self-contained HTML file per study: header, figures, tables; opens offline.

plotly.js is inlined once in ``<head>``; figures are plain ``<div>`` + ``Plotly.newPlot``
calls; there is no ``<script src>``, ``<link href>`` or font to fetch, so the file opens
without a network. Every user-supplied string is escaped (``html.escape``).

Example:
    >>> study = open_study("studies/cmunext_skip_ablation.yaml", profile="cpu")  # doctest: +SKIP
    >>> write_report(study, "reports/skips")                                      # doctest: +SKIP
    PosixPath('reports/skips/report.html')
"""
from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import optuna
import pandas as pd
import plotly.io as pio
import yaml
from plotly.offline import get_plotlyjs

import nasseg
from nasseg.report import figures as F
from nasseg.report.page import esc
from nasseg.report.page import table as _table
from nasseg.store import study_record
from nasseg.report.data import (Header, header_info, hypervolume_history_info, importance_info,
                                learning_curves_info, parallel_info, pareto_info, pareto_table_info)
from nasseg.ablation.results import analyze
from nasseg.ablation.tables import display_table, fmt_count, method_note, write_tables
from nasseg.report.ablation_data import bars_info, forest_info
from nasseg.report.answer import ablation_answer, answer_html, search_answer
from nasseg.report.choose import choice_info
from nasseg.report.choose_html import choice_sections
from nasseg.search.confirm import confirmed_table, interval_note

__all__ = ["Report", "build_report", "write_report"]

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#222;background:#fafafa}
main{max-width:1180px;margin:0 auto;padding:24px}
header{background:#fff;border:1px solid #ddd;border-radius:8px;padding:16px 20px;margin-bottom:20px}
h1{margin:0 0 8px;font-size:1.5em} h2{margin:28px 0 8px;font-size:1.2em}
dl{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px;margin:8px 0}
dt{font-weight:600;color:#555} dd{margin:0}
pre{background:#f3f3f3;padding:8px;border-radius:4px;overflow-x:auto;font-size:12px;margin:4px 0}
code{font-size:12px}
section.fig{background:#fff;border:1px solid #ddd;border-radius:8px;padding:8px;margin:14px 0}
table{border-collapse:collapse;background:#fff;font-size:13px;width:100%}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:right;vertical-align:top}
th:first-child,td:first-child{text-align:left} td.l{text-align:left}
.note{color:#666;font-size:13px;margin:6px 0}
section.answer{background:#fff;border:2px solid #1f5fa8;border-radius:8px;padding:12px 20px;margin:0 0 20px}
section.answer h2{margin:0 0 6px} section.answer p{margin:6px 0} section.answer th{text-align:left}
header h2{margin-top:0}
.split{font-size:11px;font-weight:600;border-radius:3px;padding:1px 5px;color:#fff}
.split.test{background:#2a7d2a} .split.validation{background:#b26b00}
details>summary{cursor:pointer;color:#1f5fa8}
"""


@dataclass
class Report:
    """A rendered report: the HTML text and, for an ablation, its analysis.

    Attributes:
        html: the whole page.
        kind: ``search`` or ``ablation``.
        figure_ids: the ``id`` of every figure ``<div>``, in page order.
        ablation: the :class:`~nasseg.ablation.results.AblationResult` (ablations only).
    """

    html: str
    kind: str
    figure_ids: list[str] = field(default_factory=list)
    ablation: object | None = None


def _dl(items: Iterable[tuple[str, str]]) -> str:
    return "<dl>" + "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in items) + "</dl>"


def _dataset_text(d: dict) -> str:
    if not d:
        return "–"
    if d.get("kind") == "synthetic":
        s = d.get("synthetic") or {}
        name = f"synthetic {s.get('spatial_dims', 2)}D ({s.get('n_cases', '?')} cases, seed {s.get('seed', 0)})"
    else:
        name = f"{Path(str(d.get('path') or '?')).name} ({d.get('kind', '?')}: {d.get('path', '')})"
    extra = []
    if d.get("size"):
        extra.append(f"size {d['size']}")
    if d.get("max_cases"):
        extra.append(f"a seeded sample of {d['max_cases']} cases")
    return esc(name + ("; " + ", ".join(extra) if extra else ""))


def _split_text(h: Header) -> str:
    cfg = (h.dataset or {}).get("split") or {}
    s = h.split
    parts = [f"{s.get('method') or cfg.get('method', '?')}, seed {s.get('seed', cfg.get('seed', '?'))}"]
    if cfg.get("method", "random") == "random" and "val_fraction" in cfg:
        parts.append(f"val {cfg['val_fraction']:g}, test {cfg.get('test_fraction', 0):g}")
    if s:
        parts.append(f"{s.get('n_train', '?')} train / {s.get('n_val', '?')} val / {s.get('n_test', 0)} test cases")
        parts.append(f"split hash {s.get('hash', '?')}")
    return esc("; ".join(parts))


def _header_html(h: Header) -> str:
    versions = " · ".join(f"{k} {v}" for k, v in h.versions.items()) or "–"
    objectives = ", ".join(f"{o.name} ({o.direction})" for o in h.objectives)
    states = ", ".join(f"{n} {k}" for k, n in sorted(h.states.items())) or "no trials"
    items = [("Study", f"<strong>{esc(h.name)}</strong> ({esc(h.kind)})"),
             ("Dataset", _dataset_text(h.dataset)), ("Split", _split_text(h)),
             ("Seeds", esc(", ".join(map(str, h.seeds)) or "–")), ("Objectives", esc(objectives)),
             ("Trials", esc(states)), ("Software", esc(versions)), ("Created", esc(h.created or "–")),
             ("Command", f"<pre><code>{esc(h.command or '–')}</code></pre>")]
    if h.provenance:
        p = h.provenance
        det = p.get("deterministic") or {}
        items.append(("Provenance", esc(
            f"data hash {p.get('data_hash') or '–'} (file names, sizes and their first and last 64 KiB) · split hash "
            f"{h.split.get('hash') or p.get('split_hash') or '–'} · threads {p.get('threads') or '–'} · "
            f"deterministic algorithms {'on' if det.get('deterministic_algorithms') else 'off'}")))
    if h.description:
        items.insert(1, ("Description", esc(h.description)))
    config = yaml.safe_dump(h.config, sort_keys=False) if h.config else ""
    details = (f"<details><summary>study configuration</summary><pre>{esc(config)}</pre></details>"
               if config else "")
    return f'<header id="details"><h2>Study details</h2>{_dl(items)}{details}</header>'


class _Page:
    """Accumulates sections; figures get sequential ids."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.figure_ids: list[str] = []

    def heading(self, text: str, anchor: str | None = None) -> None:
        """An ``<h2>``; ``anchor`` is its ``id``, the target of the answer's links."""
        self.parts.append(f'<h2 id="{esc(anchor)}">{esc(text)}</h2>' if anchor else f"<h2>{esc(text)}</h2>")

    def note(self, text: str) -> None:
        self.parts.append(f'<p class="note">{esc(text)}</p>')

    def figure(self, fig) -> None:
        fid = f"fig-{len(self.figure_ids) + 1}"
        self.figure_ids.append(fid)
        div = pio.to_html(fig, full_html=False, include_plotlyjs=False, div_id=fid,
                          config={"displaylogo": False, "responsive": True})
        self.parts.append(f'<section class="fig">{div}</section>')

    def raw(self, html: str) -> None:
        self.parts.append(html)


def _search_sections(study: optuna.Study, page: _Page, choice, confirmed_members) -> None:
    """The search's sections; ``choice`` and ``confirmed_members`` are computed once by
    :func:`build_report` (the answer shows them too)."""
    pinfo = pareto_info(study)
    page.heading("Pareto front (validation Dice)", "pareto-front")
    if pinfo.points.empty:
        page.note("no completed trials yet")
    else:
        for fig in F.pareto_figures(pinfo):
            page.figure(fig)
    hv = hypervolume_history_info(study)
    confirmed = (study_record(study).confirm or {}).get("hv_test")
    page.heading("Hypervolume history", "hypervolume")
    if hv.empty:
        page.note("needs two or more objectives, a stored reference point and completed trials")
    else:
        ref = study_record(study).reference_point or {}
        units = {o.name: f" {o.unit}" if o.unit and o.unit != "fraction" else "" for o in pinfo.objectives}
        page.note("Each objective is mapped linearly onto [0, 1] between its ideal (Dice 1, costs 0) "
                  "and the fixed reference point " + ", ".join(f"{k} = {v:g}{units.get(k, '')}"
                                                                 for k, v in ref.items())
                  + "; a perfect network that costs nothing would score 1. The line is the search's own "
                  "view (validation Dice, which also chose the front)"
                  + ("; the dashed line is the hypervolume of the front re-trained and scored on the test "
                     "split by nasseg confirm." if confirmed is not None else
                     "; run nasseg confirm for the test split's value."))
        page.figure(F.hypervolume_figure(hv, confirmed))
    par = parallel_info(study)
    page.heading("Parallel coordinates")
    if par is None:
        page.note("needs two or more completed trials")
    else:
        page.figure(F.parallel_figure(par))
    imp = importance_info(study)
    page.heading("Parameter importances")
    if imp.table.empty:
        page.note(imp.note)
    else:
        if imp.note:
            page.note(imp.note)
        page.figure(F.importance_figure(imp))
    _curves(study, page, by_label=False)
    table = pareto_table_info(study)
    page.heading(f"Pareto set ({len(table)} networks)")
    objs = [o.name for o in pinfo.objectives]
    heads = [f"{o.name} ({o.unit})" if o.unit and o.unit not in ("fraction", "parameters") else o.name
             for o in pinfo.objectives]
    heads = [f"{h} (validation)" if o.name in ("dice", "iou") else h for h, o in zip(heads, pinfo.objectives)]
    extra = [c for c in ("params", "macs") if c not in objs]
    cols = ["trial", "arch id", *heads, *extra, "network"]

    def value(o, r) -> str:
        v = r[o.name]
        if o.name in ("dice", "iou"):
            return f"{v:.4f}"
        return f"{v:.4g}" if o.unit and o.unit != "parameters" else _count(v)

    rows = []
    for _, r in table.iterrows():
        cells = [esc(int(r["trial"])), esc(r["arch_id"]), *[esc(value(o, r)) for o in pinfo.objectives]]
        cells += [esc(_count(r[c])) for c in extra]
        cells.append(f"{esc(r['summary'])}<details><summary>config</summary>"
                     f"<pre>{esc(r['config'])}</pre></details>")
        rows.append(cells)
    page.raw(_table(cols, rows, left={0, 1, len(cols) - 1}))
    _confirm_section(study, page)
    choice_sections(study, page, choice, confirmed_members)


def _confirm_section(study: optuna.Study, page: _Page) -> None:
    """Validation Dice beside the confirmed test Dice of ``nasseg confirm`` (if it ran)."""
    conf = confirmed_table(study)
    if conf is None:
        return
    info = study_record(study).confirm
    page.heading(f"Confirmed on the test split ({len(conf)} networks x {info['seeds']} seeds)", "confirmed")
    page.note("Validation Dice chose the Pareto set (and each trial's best epoch); the test cases were "
              f"never seen by the search. Each member was re-trained with {info['seeds']} seeds "
              f"({info['epochs']} epochs) and scored once on the test split; {interval_note(conf)}. "
              "'Stays' = still on the Pareto front with the "
              f"confirmed Dice. Normalised hypervolume of these members: validation {info['hv_val']:.4f}, "
              f"confirmed test {info['hv_test']:.4f}.")
    cols = ["trial", "arch id", "val Dice", "test Dice [95% CI]", "SD (seeds)", "seeds", "stays on front"]
    rows = [[esc(int(r["trial"])), esc(r["arch_id"]), esc(f"{r['val_dice']:.4f}"),
             esc(f"{r['test_dice']:.4f} [{r['test_ci_low']:.4f}, {r['test_ci_high']:.4f}]"),
             esc(f"{r['test_sd_seeds']:.4f}" if pd.notna(r["test_sd_seeds"]) else "–"),
             esc(int(r["n_seeds"])), esc("yes" if r["stays_on_front"] else "no")] for _, r in conf.iterrows()]
    against = info.get("against")
    if against and "is_reference" in conf:
        page.note(f"Against {against['name']} (trial {against['reference_trial']}, re-trained with the same seeds): "
                  "only members costing no more than it were confirmed; each test Dice difference is paired on "
                  f"seeds and test cases, Holm over the members. Verdict: {against['verdict']}.")
        cols += [f"test Dice − {against['name']} [95% CI]", "Holm p"]
        for row, (_, r) in zip(rows, conf.iterrows()):
            ref = bool(r["is_reference"])
            row += [esc("reference" if ref else f"{r['diff_vs_ref']:+.4f} [{r['diff_ci_low']:+.4f}, "
                                                f"{r['diff_ci_high']:+.4f}]"),
                    esc("–" if ref or pd.isna(r["p_holm"]) else f"{r['p_holm']:.3g}")]
    page.raw(_table(cols, rows, left={0, 1}))


def _count(n: object) -> str:
    return fmt_count(float(n)) if n is not None else "–"


def _curves(study: optuna.Study, page: _Page, by_label: bool) -> None:
    curves = learning_curves_info(study)
    page.heading("Learning curves (validation)", "learning-curves")
    if curves.empty:
        page.note("no trial stored a training history")
        return
    n_stopped = curves.drop_duplicates("trial")["stopped_early"].sum()
    page.note(f"{curves['trial'].nunique()} trials; {int(n_stopped)} stopped early "
              "(dashed, ending in ×); failed trials dotted grey.")
    page.figure(F.learning_curves_figure(curves, by_label=by_label))


def _ablation_sections(study: optuna.Study, page: _Page, header: Header):
    """The ablation's sections; returns its analysis and its answer."""
    result = analyze(study)
    split = "validation" if getattr(result, "scored_split", "test") == "val" else "test"
    bars = bars_info(result)
    page.heading(f"Mean {split} Dice per variant", "mean-dice")
    if bars.bars["dice_mean"].notna().any():
        page.figure(F.ablation_bars_figure(bars, split))
    else:
        page.note("no completed runs yet")
    forest = forest_info(result)
    if not forest.empty:
        page.heading(f"Paired comparisons ({split} cases)", "comparisons")
        page.figure(F.forest_figure(forest, split))
    if bars.bars["macs"].notna().any() and bars.bars["dice_mean"].notna().any():
        page.heading("Dice and cost")
        page.figure(F.cost_figure(bars, split))
    page.heading("Statistics", "statistics")
    shown = display_table(result)
    page.raw(_table(list(shown.columns), ([esc(v) for v in row] for row in shown.itertuples(index=False))))
    page.note(method_note(result))
    _curves(study, page, by_label=True)
    return result, ablation_answer(result, header, bars, forest)


def build_report(study: optuna.Study) -> Report:
    """Render the report of a search or an ablation study (by its record's ``nasseg_kind``)."""
    header = header_info(study)
    page = _Page()
    ablation = None
    if header.kind == "ablation":
        ablation, answer = _ablation_sections(study, page, header)
    else:
        choice, confirmed = choice_info(study), confirmed_table(study)
        answer = search_answer(study, header, choice, confirmed)
        _search_sections(study, page, choice, confirmed)
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    html = "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>nasseg report: {esc(header.name)}</title>",
        '<link rel="icon" href="data:,">', f"<style>{_CSS}</style>",
        f'<script type="text/javascript">{get_plotlyjs()}</script>', "</head><body><main>",
        f"<h1>nasseg report: {esc(header.name)} ({esc(header.kind)})</h1>", answer_html(answer),
        _header_html(header), *page.parts,
        f'<p class="note">Generated by nasseg {esc(nasseg.__version__)} on {esc(now)}; '
        "self-contained, opens offline.</p>", "</main></body></html>", ""])
    return Report(html, header.kind, page.figure_ids, ablation)


def write_report(study: optuna.Study, out: str | Path) -> Path:
    """Write the report to ``out`` (a ``.html`` file, or a folder that gets ``report.html``);
    for an ablation also ``stats.csv``, ``stats.md`` and ``stats.tex`` beside it.

    Returns:
        The HTML file's path.
    """
    out = Path(out)
    path = out if out.suffix.lower() in (".html", ".htm") else out / "report.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    report = build_report(study)
    path.write_text(report.html, encoding="utf-8")
    if report.ablation is not None:
        write_tables(report.ablation, path.parent)
    return path
