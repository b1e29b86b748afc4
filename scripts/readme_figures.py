"""Regenerate the README's demo figures from demo runs of the current code.

Usage (from the repository root)::

    .venv/bin/python scripts/readme_figures.py --run            # runs `auditkit demo` (timed), rewrites README.md
    .venv/bin/python scripts/readme_figures.py --run --quick-timing --clean --volumes
    .venv/bin/python scripts/readme_figures.py --check          # exits 1 when README.md differs from the runs

Every figure the README quotes about the demo sits between ``<!-- figures:NAME -->``
and ``<!-- /figures:NAME -->`` markers; this script writes those blocks from
the demo folders (``reports/demo`` and, when asked, ``reports/demo-clean``,
``reports/demo-volumes``), so the README cannot drift from what the demo prints.
A block whose folder is absent is left as it is (and named on stderr).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
AUDITKIT = [sys.executable, "-m", "auditkit", "--quiet"]


def _get(doc: dict[str, Any], path: str) -> Any:
    node: Any = doc
    for key in path.split("."):
        node = node[key]
    return node


def _num(value: float, digits: int = 3) -> str:
    """Return ``value`` with a typographic minus, as the README's tables print numbers."""
    return f"{value:.{digits}f}".replace("-", "\u2212")


def _interval(est: dict[str, Any], digits: int = 3) -> str:
    low, high = est.get("ci_low"), est.get("ci_high")
    if low is None or high is None:
        return _num(est["estimate"], digits)
    joiner = " to " if low < 0 or high < 0 else "\u2013"
    return f"{_num(est['estimate'], digits)} ({_num(low, digits)}{joiner}{_num(high, digits)})"


def _run_demo(out: Path, *extra: str) -> float:
    """Return the wall seconds of ``auditkit demo --out out --force`` (run here, now)."""
    start = time.perf_counter()
    subprocess.run([*AUDITKIT, "demo", "--out", str(out), "--force", *extra], check=True, cwd=ROOT)
    return time.perf_counter() - start


def _pages(pdf: Path) -> int:
    from pypdf import PdfReader

    return len(PdfReader(str(pdf)).pages)


def _limit(results: dict[str, Any], rule: str, metric: str) -> float:
    for check in _get(results, "gate.rules"):
        if check["id"] == rule and check["metric"] == metric:
            return float(check["threshold"])
    raise KeyError(f"no gate check {rule} on {metric}")


def demo_block(folder: Path) -> str:
    """Return the README's table of planted flaws and the sentences under it, from a full demo's audit."""
    results = json.loads((folder / "audit" / "results.json").read_text("utf-8"))
    rows = ["   | planted flaw | rule that catches it | checked metric | estimate (95% CI) | verdict |",
            "   | --- | --- | --- | --- | --- |"]  # fmt: skip
    for finding in results["expected_findings"]:
        check = finding["checks"][0]
        verdict = "fail: CAUGHT" if finding["caught"] else f"{check['verdict']}: MISSED"
        limit = _limit(results, finding["rule"], check["metric"])
        rows.append(
            f"   | {finding['name'].replace('_', ' ')} | `{finding['rule']}` | `{check['metric']}` | "
            f"{_interval(check)}, limit {_num(limit, 2)} | {verdict} |"
        )
    groups = _get(results, "fairness.sex.groups")
    fnr = {g: groups[g]["fnr"]["estimate"] for g in groups}
    internal = _get(results, "discrimination.test.auroc.estimate")
    external = _get(results, "external.site_C.discrimination.auroc.estimate")
    pages = _pages(folder / "audit" / "report.pdf")
    text = "\n".join(rows) + (
        f"\n\n   The female false-negative rate is {fnr['F']:.2f} against {fnr['M']:.2f} for men at the frozen\n"
        f"   operating point; the internal AUROC of {internal:.2f} drops to {external:.2f} at `site_C`;\n"
        "   healthy images carrying the marker look diseased to the model, and Grad-CAM\n"
        f"   puts {_get(results, 'saliency.gradcam.shortcut_score.estimate'):.0%} of its mass in that corner "
        "(a diffuse map puts 1/16 there).\n"
        f"5. **Where it shows in the report** (`reports/demo/audit/report.pdf`, {pages}\n"
        "   pages): the cover gives the overall FAIL;"
    )
    return text


def timing_block(full_seconds: float | None, quick_seconds: float | None) -> str | None:
    """Return the sentence on how long the demo takes (None when it was not timed here)."""
    if full_seconds is None:
        return None
    quick = f" (`--quick`: about {quick_seconds / 60:.0f} min)" if quick_seconds else ""
    return (
        f"`make demo` (or `auditkit demo --out reports/demo`) takes about {full_seconds / 60:.0f} minutes on\n"
        f"a 2-core CPU{quick} and never downloads anything:"
    )


def clean_block(folder: Path) -> str:
    """Return the sentence on the flaw-free demo's figures."""
    results = json.loads((folder / "audit" / "results.json").read_text("utf-8"))
    internal = _get(results, "discrimination.test.auroc.estimate")
    delta = _get(results, "external.site_C.delta.auroc.estimate")
    shortcut = _get(results, "saliency.gradcam.shortcut_score.estimate")
    verdict = "passes" if _get(results, "gate.passed") else "FAILS"
    return (
        f"`auditkit demo --clean` runs the same on the flaw-free phantom: it {verdict} the\n"
        f"same policy (internal AUROC {internal:.2f}, external minus internal AUROC {_num(delta, 2)},\n"
        f"shortcut score {shortcut:.2f})."
    )


def volumes_block(folder: Path) -> str:
    """Return the sentence on the quick 3-D demo's figures."""
    results = json.loads((folder / "audit" / "results.json").read_text("utf-8"))
    delta = _get(results, "external.site_C.delta.auroc")
    saliency = json.loads((folder / "audit" / "volume_saliency.json").read_text("utf-8"))["summary"]
    return (
        "With `--quick` (120 volumes of 24^3) the `external-auroc-delta` rule catches the site\n"
        f"shift (external minus internal AUROC {_num(delta['estimate'], 2)}, 95% CI {_num(delta['ci_low'], 2)} to "
        f"{_num(delta['ci_high'], 2)}) and Grad-CAM puts\n"
        f"{saliency['median_shortcut_ratio_marked']:.0f}x the marker box's share of the volume into the box on marked volumes\n"
        "(`audit/volume_saliency.json`, slice panels in `audit/volume_panels/`)."
    )


def replace_block(text: str, name: str, body: str) -> str:
    """Return ``text`` with the block ``name`` between its markers replaced by ``body``."""
    pattern = re.compile(rf"(<!-- figures:{name} -->\n)(.*?)(\n *<!-- /figures:{name} -->)", re.S)
    if not pattern.search(text):
        raise SystemExit(f"README.md has no <!-- figures:{name} --> block")
    return pattern.sub(lambda m: m.group(1) + body + m.group(3), text)


def main(argv: list[str] | None = None) -> int:
    """Return 0 after rewriting README.md's figure blocks (1 with --check when they are stale)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="store_true", help="run the demo(s) first (timed)")
    parser.add_argument("--quick-timing", action="store_true", help="also time `auditkit demo --quick`")
    parser.add_argument("--clean", action="store_true", help="also the flaw-free demo (reports/demo-clean)")
    parser.add_argument("--volumes", action="store_true", help="also the quick 3-D demo (reports/demo-volumes)")
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when README.md is stale")
    args = parser.parse_args(argv)
    demo, clean, volumes = ROOT / "reports/demo", ROOT / "reports/demo-clean", ROOT / "reports/demo-volumes"
    full_s = quick_s = None
    if args.run:
        full_s = _run_demo(demo)
        if args.quick_timing:
            quick_s = _run_demo(ROOT / "reports/demo-quick", "--quick")
        if args.clean:
            _run_demo(clean, "--clean")
        if args.volumes:
            _run_demo(volumes, "--volumes", "--quick")
    text = original = README.read_text("utf-8")
    blocks = {"demo": demo_block(demo) if (demo / "audit/results.json").exists() else None,
              "demo-time": timing_block(full_s, quick_s),
              "clean": clean_block(clean) if (clean / "audit/results.json").exists() else None,
              "volumes": volumes_block(volumes) if (volumes / "audit/results.json").exists() else None}  # fmt: skip
    for name, body in blocks.items():
        if body is None:
            print(f"readme_figures: block {name!r} left as it is (no run to take it from)", file=sys.stderr)
            continue
        text = replace_block(text, name, body)
    if args.check:
        checked = [name for name, body in blocks.items() if body is not None]
        if text != original:
            print("README.md is stale: run scripts/readme_figures.py")
            return 1
        print(f"README.md is up to date in the blocks checked ({', '.join(checked) or 'none'})")
        return 0 if checked else 1  # nothing to compare against proves nothing
    README.write_text(text, "utf-8")
    if full_s is not None:
        print(f"demo: {full_s:.0f} s" + (f", quick: {quick_s:.0f} s" if quick_s else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
