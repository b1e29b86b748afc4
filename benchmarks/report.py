"""Benchmark: render a full audit report with 200 saliency overlays to PDF/A-3b.

Compares, side by side in one run, the two ways of embedding the gallery
panels (PNG, which WeasyPrint re-encodes, vs JPEG, which it passes through)
on the same results.json: 100 gallery cases x (image + Grad-CAM + IG) at
256 x 256 px, plus every other section (2 internal cohorts, 1 external site,
2 attributes and their intersection, gate). Each variant runs in a fresh
subprocess so peak memory (ru_maxrss) is its own; runs alternate and repeat,
and medians are reported because the CPU is shared.

Usage: .venv/bin/python benchmarks/report.py [--repeats 3] [--cases 100]
Goal (issue 5): under 10 s and 1.5 GiB on 2 cores, at least 4 pages/s.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _factory():
    spec = importlib.util.spec_from_file_location("report_factory", ROOT / "tests" / "report" / "factory.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def child(results_path: str, panel_format: str) -> None:
    """Render once and print seconds, pages and peak RSS as JSON (runs in a fresh process)."""
    from io import BytesIO

    from pypdf import PdfReader

    from auditkit.progress import set_quiet
    from auditkit.report import build_context, render_html
    from auditkit.report.pdf import audit_datetime, evidence_files, html_to_pdf
    from auditkit.report.render import read_results

    set_quiet(True)
    start = time.perf_counter()
    cpu_start = time.process_time()
    path, raw, results = read_results(results_path)
    attachments = evidence_files(results, results_bytes=raw)
    context = build_context(results, report_dir=path.parent, results_sha256="0" * 64,
                            attachments=[a.summary() for a in attachments], panel_format=panel_format)
    html = render_html(context, inline_assets=False)
    t_context = time.perf_counter()
    pdf = html_to_pdf(html, report_dir=path.parent, assets=context["assets"],
                      attachments=attachments, created=audit_datetime(results))
    end = time.perf_counter()
    cpu = time.process_time() - cpu_start
    pages = len(PdfReader(BytesIO(pdf)).pages)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": end - start, "cpu_seconds": cpu, "context_seconds": t_context - start, "pdf_seconds": end - t_context,
                      "pages": pages, "peak_mib": peak_kib / 1024, "pdf_mib": len(pdf) / 2**20}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cases", type=int, default=100, help="gallery cases (2 overlays each)")
    parser.add_argument("--child", nargs=2, metavar=("RESULTS", "FORMAT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    factory = _factory()
    with tempfile.TemporaryDirectory(prefix="auditkit-bench-report-") as tmp:
        results_path = factory.write_results(Path(tmp), n_gallery=args.cases, image_size=256, overlay_format="png")
        runs: dict[str, list[dict]] = {"png": [], "jpeg": []}
        for _ in range(args.repeats):
            for fmt in ("png", "jpeg"):
                out = subprocess.run([sys.executable, __file__, "--child", str(results_path), fmt],
                                     check=True, capture_output=True, text=True)
                runs[fmt].append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"report benchmark: {args.cases} gallery cases = {2 * args.cases} overlays + {args.cases} images, "
          f"256x256 px sources, {args.repeats} runs each (medians); {platform.machine()}, "
          f"python {platform.python_version()}")
    print(f"{'panels':<8}{'seconds':>9}{'cpu s':>8}{'context':>9}{'pdf':>8}{'pages':>7}{'pages/s':>9}"
          f"{'peak MiB':>10}{'PDF MiB':>9}")
    medians = {}
    for fmt, rows in runs.items():
        med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        medians[fmt] = med
        print(f"{fmt:<8}{med['seconds']:>9.2f}{med['cpu_seconds']:>8.2f}{med['context_seconds']:>9.2f}{med['pdf_seconds']:>8.2f}"
              f"{med['pages']:>7.0f}{med['pages'] / med['seconds']:>9.2f}{med['peak_mib']:>10.0f}{med['pdf_mib']:>9.2f}")
    ratio = medians["png"]["seconds"] / medians["jpeg"]["seconds"]
    print(f"ratio PNG/JPEG total time: {ratio:.2f}x; PDF stage: "
          f"{medians['png']['pdf_seconds'] / medians['jpeg']['pdf_seconds']:.2f}x")
    jpeg = medians["jpeg"]
    ok = jpeg["seconds"] < 10 and jpeg["peak_mib"] < 1536 and jpeg["pages"] / jpeg["seconds"] >= 4
    print(f"goal (<10 s, <1.5 GiB, >=4 pages/s) with JPEG panels: {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
