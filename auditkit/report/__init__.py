"""The regulator's dossier: HTML and PDF/A-3b audit reports rendered from results.json only.

``build_context`` turns results.json into a dict of display strings and
figures; ``render_html`` lays it out with the Jinja2 templates; ``render_pdf``
and ``render_report`` produce the PDF/A-3b evidence package (results.json,
fingerprints and the gate policy attached). Nothing here recomputes a metric.
"""

from auditkit.report.context import build_context
from auditkit.report.render import read_results, render_html, render_pdf, render_report

__all__ = ["build_context", "read_results", "render_html", "render_pdf", "render_report"]
