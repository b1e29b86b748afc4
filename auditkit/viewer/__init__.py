"""The clinician's saliency viewer: a local read-only server and a self-contained HTML export.

Reads only results.json and the case records the explanation step wrote
(``explain/cases.json`` and its images); nothing is recomputed.
"""

from auditkit.viewer.data import build_payload, report_folder
from auditkit.viewer.page import export_html, render_page
from auditkit.viewer.server import make_server, safe_file

__all__ = ["build_payload", "export_html", "make_server", "render_page", "report_folder", "safe_file"]
