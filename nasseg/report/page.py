"""The HTML primitives every report section uses: escaping and tables.

:mod:`nasseg.report.html` (the page), :mod:`nasseg.report.choose_html` (choosing a network)
and :mod:`nasseg.report.answer` (the answer block) all draw with these, so none of them
imports another to borrow them.

Example:
    >>> table(["trial", "dice"], [["3", "0.812"]])
    '<table><thead><tr><th>trial</th><th>dice</th></tr></thead><tbody><tr><td class="l">3</td><td>0.812</td></tr></tbody></table>'
"""
from __future__ import annotations

import html as _html
from collections.abc import Iterable

__all__ = ["esc", "table"]


def esc(text: object) -> str:
    """Escape ``text`` for the page (quotes included, so it is safe in attributes too)."""
    return _html.escape(str(text), quote=True)


def table(columns: list[str], rows: Iterable[Iterable[str]], left: set[int] | None = None) -> str:
    """An HTML table: ``columns`` escaped here, ``rows`` already-escaped cells; the columns in
    ``left`` (default: the first) are left-aligned."""
    left = left or {0}
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f'<td class="l">{v}</td>' if i in left else f"<td>{v}</td>"
                                    for i, v in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
