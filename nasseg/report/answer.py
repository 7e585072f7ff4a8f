"""The report's first screen: what was searched or compared, the answer, and links down to
the evidence (data, then HTML; the sections it links to are drawn by :mod:`nasseg.report.html`).

- a search: the recommended networks of :func:`nasseg.report.choose.choice_info` (knee
  point, highest Dice, best under each limit), each with its confirmed **test** Dice when
  ``nasseg confirm`` re-trained and scored it, else its **validation** Dice, labelled so;
- an ablation: each variant against its reference (difference, interval, Holm p) on the
  split the study scored, and the variant with the highest mean Dice.

Example:
    >>> ans = search_answer(study, header_info(study), choice_info(study))   # doctest: +SKIP
    >>> [(p.label, p.trial, p.split) for p in ans.picks]                      # doctest: +SKIP
    [('knee point', 7, 'test'), ('highest Dice', 9, 'test')]
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from nasseg.report.choose import ChoiceInfo
from nasseg.report.data import Header
from nasseg.report.page import esc
from nasseg.ablation.tables import fmt_count
from nasseg.report.choose_html import cost_text
from nasseg.search.confirm import interval_note
from nasseg.store import StudyRecord, study_record

__all__ = ["Answer", "Pick", "ablation_answer", "answer_html", "search_answer"]

ANSWER_ID = "answer"
"""The ``id`` of the answer's ``<section>`` (the first-screen test measures it)."""


@dataclass
class Pick:
    """One row of the answer: a recommended network (search) or a comparison (ablation).

    Attributes:
        label: why it is listed ("knee point", "irsc − skip_fusion").
        name: the network or variant in words.
        dice: the Dice shown, on ``split``.
        ci: its 95% interval (NaN when none).
        split: ``test`` or ``validation``: which cases ``dice`` is measured on.
        how: how ``dice`` was obtained ("3 seeds, confirmed", "1 training run", "Holm p = 0.02").
        costs: cost column text.
        anchor: the section holding its evidence.
        trial: the search trial (``None`` for an ablation row).
        difference: ``dice`` is a difference between two variants (shown signed).
    """

    label: str
    name: str
    dice: float
    ci: tuple[float, float]
    split: str
    how: str
    costs: str
    anchor: str
    trial: int | None = None
    difference: bool = False


@dataclass
class Answer:
    """What the report answers: ``what`` (one sentence), ``picks`` (the rows), ``links``
    (text, anchor) to the evidence, ``note`` (how to read the numbers)."""

    what: str
    heading: str
    picks: list[Pick] = field(default_factory=list)
    dice_column: str = "Dice [95% CI]"
    links: list[tuple[str, str]] = field(default_factory=list)
    note: str = ""


def _dataset(h: Header) -> str:
    d = h.dataset or {}
    if d.get("kind") == "synthetic":
        return f"synthetic {(d.get('synthetic') or {}).get('spatial_dims', 2)}D data"
    return Path(str(d.get("path") or "?")).name


def _cases(h: Header, key: str) -> str:
    n = (h.split or {}).get(key)
    return f"{n} " if n else ""


def search_answer(study: Any, h: Header, info: ChoiceInfo, confirmed: pd.DataFrame | None) -> Answer:
    """The answer of a search: its recommended networks, test values where confirmed."""
    space = f"the space {Path(str(h.config['space'])).name}" if h.config.get("space") else "architectures"
    objectives = ", ".join(f"{o.name} ({'max' if o.maximize else 'min'})" for o in h.objectives)
    trials = sum(h.states.values())
    what = (f"Searched {space} on {_dataset(h)} for {objectives}: {trials} trials, "
            f"{len(info.members)} networks on the Pareto front, chosen by Dice on the "
            f"{_cases(h, 'n_val')}validation cases.")
    conf = confirmed.set_index("trial") if confirmed is not None and not confirmed.empty else None
    if conf is not None:
        seeds = int(conf["n_seeds"].max())
        against = ((study_record(study) or StudyRecord()).confirm or {}).get("against") or {}
        ref = against.get("reference_trial")
        has_ref = ref in conf.index  # the reference arm is re-trained beside the members, not one of them
        what += (f" nasseg confirm re-trained {len(conf) - has_ref} of them"
                 + (f" and {against['name']}" if has_ref else "")
                 + f" with {seeds} seeds and scored them once on the {_cases(h, 'n_test')}test cases, "
                 "which the search never saw.")
        if against:
            r = conf.loc[ref] if has_ref else None
            score = (f": test Dice {r['test_dice']:.4f} [95% CI {r['test_ci_low']:.4f}, {r['test_ci_high']:.4f}]"
                     if r is not None else "")
            what += (f" Against {against['name']} (trial {ref}, re-trained with the same seeds{score}), "
                     f"at no higher cost: {against['verdict']}.")
    by_trial = {m.trial: m for m in info.members}
    labels: dict[int, list[str]] = {}  # one row per network, with every reason it is recommended
    for r in info.recommendations:
        labels.setdefault(r.trial, []).append(r.label)
    picks = []
    for trial, why in labels.items():
        m = by_trial[trial]
        if conf is not None and trial in conf.index:
            c = conf.loc[trial]
            dice, ci, split = float(c["test_dice"]), (float(c["test_ci_low"]), float(c["test_ci_high"])), "test"
            how = f"{int(c['n_seeds'])} seeds (confirmed); validation {m.dice:.4f}"
        else:
            dice, ci, split = m.dice, m.ci, "validation"
            how = "1 training run" + ("; not confirmed on test" if conf is not None else "")
        picks.append(Pick("; ".join(why), f"trial {m.trial}: {m.summary}", dice, ci, split, how, cost_text(m.costs),
                          f"member-{m.trial}", m.trial))
    links = [("Pareto front", "pareto-front")]
    if conf is not None:
        links.append(("confirmed on the test split", "confirmed"))
    links += [("choosing a network", "choosing"), ("learning curves", "learning-curves"),
              ("study details", "details")]
    how = f"; {interval_note(confirmed)}" if conf is not None else ""
    note = (f"test = confirmed by nasseg confirm (mean over seeds{how}); "
            "validation = the cases that chose the network (optimistic: run nasseg confirm for test values).")
    if not picks:
        note = info.note or "no feasible trained network yet"
    return Answer(what, "Recommended networks", picks, "Dice [95% CI] (split)", links, note)


def ablation_answer(result: Any, h: Header, bars: Any, forest: pd.DataFrame) -> Answer:
    """The answer of an ablation: every comparison with its reference, on the scored split."""
    split = "validation" if getattr(result, "scored_split", "test") == "val" else "test"
    b = bars.bars
    seeds = int(b["n_seeds"].max()) if b["n_seeds"].notna().any() else 0
    base = h.config.get("base") or "the base network"
    what = (f"Compared {len(b)} variants of {base} on {_dataset(h)} over {seeds} training seeds, "
            f"each scored on the same {_cases(h, 'n_test' if split == 'test' else 'n_val')}{split} cases; "
            f"baseline {', '.join(b.loc[b['is_baseline'], 'variant'].astype(str)) or '–'}.")
    by_variant = b.set_index("variant")
    picks = []
    if b["dice_mean"].notna().any():
        top = b.loc[b["dice_mean"].idxmax()]
        picks.append(Pick("highest mean Dice", str(top["variant"]), float(top["dice_mean"]),
                          (float(top["ci_low"]), float(top["ci_high"])), split,
                          f"mean over {int(top['n_seeds'])} seeds", _ablation_costs(top), "statistics"))
    for _, r in forest.iterrows():
        v = by_variant.loc[r["variant"]] if r["variant"] in by_variant.index else None
        p = r["p_holm"]
        how = ("Holm p < 0.001" if p < 0.001 else f"Holm p = {p:.3f}") if p == p else "no p-value"
        picks.append(Pick(str(r["label"]), str(r["variant"]), float(r["mean_diff"]),
                          (float(r["ci_low"]), float(r["ci_high"])), split,
                          how + (f" {r['significance']}" if isinstance(r["significance"], str) else ""),
                          _ablation_costs(v) if v is not None else "", "comparisons", difference=True))
    links = [("mean Dice per variant", "mean-dice"), ("paired comparisons", "comparisons"),
             ("statistics table", "statistics"), ("learning curves", "learning-curves"),
             ("study details", "details")]
    note = (f"Dice on the {split} cases; a comparison row gives variant − reference with its 95% CI "
            "(see the statistics' method note).")
    return Answer(what, "Answer", picks, "Dice or ΔDice [95% CI] (split)", links, note)


def _ablation_costs(row: Any) -> str:
    parts = []
    if row is not None and pd.notna(row.get("params")):
        parts.append(f"{fmt_count(float(row['params']))} params")
    if row is not None and pd.notna(row.get("macs")):
        parts.append(f"{fmt_count(float(row['macs']))} MACs")
    return ", ".join(parts)


def answer_html(ans: Answer) -> str:
    """The answer as the report's first ``<section>``."""
    rows = []
    for p in ans.picks:
        ci = "" if p.ci[0] != p.ci[0] else (f" [{p.ci[0]:+.4f}, {p.ci[1]:+.4f}]" if p.difference
                                            else f" [{p.ci[0]:.4f}, {p.ci[1]:.4f}]")
        sign = "+" if p.difference and p.dice >= 0 else ""
        rows.append(
            f'<tr><td class="l">{esc(p.label)}</td><td class="l">{esc(p.name)}</td>'
            f'<td><strong>{sign}{p.dice:.4f}</strong>{esc(ci)} <span class="split {esc(p.split)}">{esc(p.split)}</span>'
            f'</td><td class="l">{esc(p.how)}</td><td class="l">{esc(p.costs)}</td>'
            f'<td class="l"><a href="#{esc(p.anchor)}">evidence ↓</a></td></tr>')
    head = "".join(f"<th>{esc(c)}</th>" for c in ("", "network" if ans.heading != "Answer" else "variant",
                                                   ans.dice_column, "how", "cost", ""))
    table = (f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>" if rows else "")
    links = " · ".join(f'<a href="#{esc(a)}">{esc(t)}</a>' for t, a in ans.links)
    return (f'<section id="{ANSWER_ID}" class="answer"><h2>{esc(ans.heading)}</h2>'
            f'<p>{esc(ans.what)}</p>{table}<p class="note">{esc(ans.note)}</p>'
            f'<p class="links">Evidence: {links}</p></section>')
