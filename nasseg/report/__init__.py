"""Self-contained HTML reports of searches and ablations, and a headless-Chromium check.

Data first (:mod:`nasseg.report.data`, :mod:`nasseg.report.ablation_data`: plain tables, no
plotly), then figures (:mod:`nasseg.report.figures`), then one HTML file
(:mod:`nasseg.report.html`).

Example:
    >>> study = open_study("studies/quickstart.yaml")      # doctest: +SKIP
    >>> write_report(study, "reports/quickstart")           # doctest: +SKIP
    PosixPath('reports/quickstart/report.html')
"""
from nasseg.report.browser import BrowserCheck, check_report
from nasseg.report.source import open_study
from nasseg.report.html import Report, build_report, write_report

__all__ = ["BrowserCheck", "Report", "build_report", "check_report", "open_study", "write_report"]
