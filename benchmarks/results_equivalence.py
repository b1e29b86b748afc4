"""Before/after check of a refactor: every number of several audits compared with a stored baseline.

Usage (from the repository root)::

    .venv/bin/python benchmarks/results_equivalence.py write /tmp/baseline   # on the old tree
    .venv/bin/python benchmarks/results_equivalence.py compare /tmp/baseline  # on the new tree

To produce the baseline from a commit without touching the working tree::

    git archive <commit> | tar -x -C /tmp/old
    PYTHONPATH=/tmp/old .venv/bin/python benchmarks/results_equivalence.py write /tmp/baseline

The baseline of issue 13 (the registries) is commit 20ce455, the tree before it.

Cases (each runs the public entry points, so it works on any tree):

* ``binary``: a synthetic binary table (two images per patient, three sites,
  ``sex``/``age_group`` and their intersection, fairness on test and the
  external site), percentile intervals;
* ``bca``: the same table without patient clusters, BCa intervals, class
  strata, DeLong AUROC, BH adjustment and ``n_bins: 10``;
* ``multiclass``: a three-class table;
* ``phantom``: a tiny phantom, a smallcnn trained for two epochs, and the
  audit with Grad-CAM and IG explanations (``--model --manifest``);
* ``factory``: the report tests' results.json (tests/report/factory.py).

For each case it keeps results.json, summary.md and the report context
(every display string of the dossier, figures as hashes). ``compare``
flattens each to ``path -> value`` and prints every difference; the exit
status is 1 when any difference is not listed in :data:`EXPECTED`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]

#: Intended differences: (case glob, path regex, why). Keep in step with the issue notes.
EXPECTED: list[tuple[str, str, str]] = [
    ("*", r"calibration\.[^.]+\.binning\.", "H13: the binning text follows n_bins"),
    ("*", r"external\.[^.]+\.calibration\.binning\.", "H13: the binning text follows n_bins"),
    ("*", r"\.(ece)\.method$", "H13: the ECE method text follows n_bins"),
    ("*", r"^calibration\.binning$", "H13: the report's binning sentence follows n_bins"),
    ("*", r"(^|\.)fairness\.[^.]+\.(gap|ratio)\.[^.]+\.(ci_low|ci_high|method|reason|groups(\[\d+\])?)$",
     "H14a (da1a503): max-min gaps and ratios get simultaneous-projection intervals"),
    ("*", r"^run\.config_sha256$", "H13: the config lists fairness_primary_metrics in the registry's order"),
    ("*", r"manifest_path$|^created$|\.created$|library_versions|reproducibility\.versions|config_sha256|\.sha256$|\.path$"
     r"|tool\.version", "run-specific (paths, dates, versions)"),
    ("*", r"\.figure$|\.figures?\[|_figure$|\.svg$", "figure bytes: SVG coordinates carry the float noise"),
    ("*", r"(^|\.)ece_debiased\.(ci_low|ci_high|method)$",
     "H14 (issue 14): the debiased L2 ECE takes the normal interval (its percentile interval covered 0.80-0.88)"),
    ("*", r"^external\.[^.]+\.subgroups(\.|\[|$)", "H14 (issue 14): NEW external.<site>.subgroups"),
    ("*", r"^gallery(\[|\.|$)", "H14 (issue 14): the gallery adds the worst cases of results.json failures"),
    ("*", r"^saliency\.[^.]+\.faithfulness\.",
     "H14 (issue 14): deletion/insertion on the calibrated probability; NEW faithfulness.score"),
    ("*", r"^fairness\.(attributes\[\d+\]\.(gaps|ratios)\[|gap_forest$)", "H14 (issue 14): the report's gap/ratio CIs"),
    ("*", r"rows\[metric=ECE \(debiased\)\]", "H14 (issue 14): the report's debiased-ECE CIs (normal interval)"),
    ("*", r"^explanations\.gallery\[", "H14 (issue 14): worst cases first; the test cohort first within a category"),
    ("*", r"^model_card\.external_subgroups$|^checklist\.groups\[\d+\]\.rows\[\d+\]\.text$",
     "H14 (issue 14): external subgroup rates exist; the CHAI card is named"),
]


# --------------------------------------------------------------------------- inputs


def binary_table(n: int = 1200, *, seed: int = 0, images_per_patient: int = 2) -> pd.DataFrame:
    """Return a binary predictions table (the audit tests' generator, with planted underdiagnosis)."""
    rng = np.random.default_rng(seed)
    n_patients = n // images_per_patient
    pid = np.repeat(np.arange(n_patients), images_per_patient)
    n = len(pid)
    site = np.where(rng.random(n_patients) < 0.25, "C", np.where(rng.random(n_patients) < 0.5, "A", "B"))[pid]
    split = np.where(site == "C", "external", rng.choice(["train", "val", "test"], n_patients, p=[0.2, 0.4, 0.4])[pid])
    y = (rng.random(n_patients) < 0.35).astype(int)[pid]
    sex = np.where(rng.random(n_patients) < 0.5, "F", "M")[pid]
    age = rng.choice(["<40", "40-60", "60+"], n_patients)[pid]
    z = rng.normal(size=n) + 2.0 * y - 1.0 - 0.8 * y * (sex == "F") + 0.4 * (site == "C")
    frame = pd.DataFrame({
        "id": [f"img{i:05d}" for i in range(n)], "y_true": y, "score": 1 / (1 + np.exp(-z)),
        "patient_id": [f"p{p}" for p in pid], "site": site, "split": split, "sex": sex, "age_group": age,
    })  # fmt: skip
    if images_per_patient == 1:
        frame = frame.drop(columns="patient_id")
    return frame


def multiclass_table(n: int = 900, seed: int = 1) -> pd.DataFrame:
    """Return a three-class predictions table with val/test/external rows and a sex column."""
    rng = np.random.default_rng(seed)
    classes = np.array(["normal", "benign", "malignant"])
    y = rng.choice(3, n, p=[0.5, 0.3, 0.2])
    logits = rng.normal(size=(n, 3))
    logits[np.arange(n), y] += 1.5
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    site = rng.choice(["A", "B", "C"], n, p=[0.4, 0.4, 0.2])
    split = np.where(site == "C", "external", rng.choice(["val", "test"], n))
    frame = pd.DataFrame({"id": [f"m{i}" for i in range(n)], "y_true": classes[y], "site": site, "split": split,
                          "sex": rng.choice(["F", "M"], n)})
    for k, name in enumerate(classes):
        frame[f"score_{name}"] = p[:, k]
    return frame


# --------------------------------------------------------------------------- cases


def _audit(out: Path, *, run: dict[str, Any], overrides: dict[str, Any]) -> Path:
    from auditkit.audit.config import build_config
    from auditkit.audit.run import run_audit

    config = build_config(run={"out": out, "force": True, **run}, overrides={"date": "2026-01-01", **overrides})
    run_audit(config)
    return out / "results.json"


def case_binary(work: Path) -> Path:
    path = work / "binary.csv"
    binary_table().to_csv(path, index=False)
    return _audit(work / "out", run={"predictions": path}, overrides={
        "attributes": ["sex", "age_group"], "intersections": ["sex+age_group"], "n_boot": 200, "seed": 3,
        "fairness_cohorts": ["test", "external"],
    })  # fmt: skip


def case_bca(work: Path) -> Path:
    path = work / "bca.csv"
    binary_table(images_per_patient=1, seed=4).to_csv(path, index=False)
    return _audit(work / "out", run={"predictions": path}, overrides={
        "attributes": ["sex"], "n_boot": 200, "seed": 5, "ci_method": "bca", "stratify": "class",
        "auroc_ci": "delong", "multiplicity": "bh", "n_bins": 10, "ci_level": 0.9,
        "operating_point": "sensitivity:0.8",
    })  # fmt: skip


def case_multiclass(work: Path) -> Path:
    path = work / "multi.csv"
    multiclass_table().to_csv(path, index=False)
    return _audit(work / "out", run={"predictions": path}, overrides={
        "attributes": ["sex"], "n_boot": 100, "seed": 2,
    })  # fmt: skip


def case_phantom(work: Path) -> Path:
    from auditkit.data.phantom import PhantomConfig, generate_phantom
    from auditkit.train import train

    phantom = generate_phantom(work / "phantom", PhantomConfig(n_images=320, size=32, seed=0))
    model = train(
        phantom.manifest_path, arch="smallcnn", out=work / "model", epochs=2, batch_size=32, lr=3e-3,
        seed=0, device="cpu", input_size=(32, 32), augment=False, num_workers=0,
    )  # fmt: skip
    return _audit(work / "out", run={"model": model.model_dir, "manifest": phantom.manifest_path, "device": "cpu"},
                  overrides={
        "attributes": ["sex"], "n_boot": 100, "seed": 0, "mmd_permutations": 50,
        "saliency": {"methods": ["gradcam", "ig"], "max_images": 12, "max_val_images": 8, "ig_steps": 8,
                     "sanity_images": 4, "faithfulness_images": 4, "stability_images": 4, "n_boot": 50},
    })  # fmt: skip


def case_factory(work: Path) -> Path:
    spec = importlib.util.spec_from_file_location("h13_factory", ROOT / "tests" / "report" / "factory.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["h13_factory"] = module
    spec.loader.exec_module(module)
    return Path(module.write_results(work))


CASES = {"binary": case_binary, "bca": case_bca, "multiclass": case_multiclass, "phantom": case_phantom,
         "factory": case_factory}


# --------------------------------------------------------------------------- capture


def _strip(value: Any) -> Any:
    """Return the report context as JSON: figures and images replaced by a hash of their bytes."""
    if isinstance(value, dict):
        return {str(k): _strip(v) for k, v in value.items() if k != "assets"}
    if isinstance(value, (list, tuple)):
        return [_strip(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return "bytes:" + hashlib.sha256(value).hexdigest()[:16]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(type(value))


def capture(case: str, work: Path, dest: Path) -> None:
    """Run ``case`` in ``work`` and keep its results.json, summary.md and report context in ``dest``."""
    from auditkit.audit.summary import render_summary
    from auditkit.progress import set_quiet
    from auditkit.report.context import build_context

    set_quiet(True)
    work.mkdir(parents=True, exist_ok=True)
    results = CASES[case](work)
    doc = json.loads(results.read_text("utf-8"))
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "results.json").write_text(json.dumps(doc, indent=1, sort_keys=True), "utf-8")
    (dest / "summary.md").write_text(render_summary(doc), "utf-8")
    context = build_context(doc, report_dir=results.parent, results_sha256="fixed")
    (dest / "report.json").write_text(json.dumps(_strip(context), indent=1, sort_keys=True), "utf-8")


# --------------------------------------------------------------------------- compare


def _item_key(item: Any, i: int) -> str:
    # rows of a report table are matched by their metric, not their position (H13 reordered
    # the discrimination table to the registry's order: FNR/FPR before LR+/LR-)
    if isinstance(item, dict) and isinstance(item.get("metric"), str):
        return f"[metric={_normalise(item['metric'])}]"
    return f"[{i}]"


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Return ``{dotted.path: leaf}`` of a JSON value (list items by index, table rows by metric)."""
    out: dict[str, Any] = {}
    if isinstance(value, dict):
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        # lists of names are compared as sets in order: H13's registry order changed the order of
        # fairness_primary_metrics (auroc, ppv, npv, fnr, fpr, ...) and of the gap family's labels
        for i, v in enumerate(sorted(value)):
            out[f"{prefix}[{i}]"] = v
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.update(flatten(v, f"{prefix}{_item_key(v, i)}"))
    else:
        out[prefix] = value
    return out


#: Intended text changes applied to the baseline before comparing (old -> new).
RENAMES = (
    ("ECE (15 equal-width bins)", "ECE (equal-width bins)"),  # H13: the label no longer states 15 bins
)


def _normalise(value: Any) -> Any:
    if isinstance(value, str):
        for old, new in RENAMES:
            value = value.replace(old, new)
    return value


#: Relative tolerance of a float comparison. The same tree on the same machine reproduces its own
#: numbers only to about 1e-7 (BLAS kernels round differently with memory alignment, and the
#: temperature fit's optimiser amplifies that), so "identical" means within this tolerance.
RTOL = 1e-5


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return math.isclose(a, b, rel_tol=RTOL, abs_tol=1e-9)
    return a == b


def _expected(case: str, path: str) -> str | None:
    import fnmatch

    for pattern, regex, why in EXPECTED:
        if fnmatch.fnmatch(case, pattern) and re.search(regex, path):
            return why
    return None


def compare(case: str, old: Path, new: Path) -> tuple[int, int]:
    """Print the differences of one case; return (unexpected, expected) counts.

    A value present only in the new document (a section or key added since the baseline) is
    not a difference of the numbers: such additions are counted per top-level key and listed.
    """
    unexpected = expected = 0
    added: dict[str, int] = {}
    for name in ("results.json", "summary.md", "report.json"):
        a_text, b_text = (old / name).read_text("utf-8"), (new / name).read_text("utf-8")
        if name.endswith(".md"):
            # lines compared as a sorted multiset: H13 put summary.md's rows in the registry's order
            a, b = ({f"line{i}": x for i, x in enumerate(sorted(text.splitlines()))} for text in (a_text, b_text))
        else:
            a, b = flatten(json.loads(a_text)), flatten(json.loads(b_text))
        a = {k: _normalise(v) for k, v in a.items()}
        for path in sorted(set(a) | set(b)):
            if path in a and path in b and _same(a[path], b[path]):
                continue
            why = _expected(case, path)
            if why is None and path not in a:
                added.setdefault(name + ": " + re.split(r"[.\[]", path)[0], 0)
                added[name + ": " + re.split(r"[.\[]", path)[0]] += 1
                continue
            if why is None:
                unexpected += 1
            else:
                expected += 1
            tag = "expected" if why else "UNEXPECTED"
            if why is None or "--verbose" in sys.argv:
                print(f"  {tag} {case}/{name}: {path}: {a.get(path, '<absent>')!r} -> "
                      f"{b.get(path, '<absent>')!r}" + (f"  [{why}]" if why else ""))
    for where, count in sorted(added.items()):
        print(f"  added {case}/{where}: {count} new values")
    return unexpected, expected


def main(argv: list[str]) -> int:
    """Run ``write DIR`` or ``compare DIR`` [case ...]."""
    import tempfile

    if len(argv) < 2 or argv[0] not in ("write", "compare"):
        print(__doc__)
        return 2
    mode, base = argv[0], Path(argv[1])
    cases = [c for c in argv[2:] if not c.startswith("--")] or list(CASES)
    total = 0
    for case in cases:
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            if mode == "write":
                capture(case, Path(tmp) / "work", base / case)
                print(f"{case}: baseline written ({time.perf_counter() - start:.1f} s)")
                continue
            capture(case, Path(tmp) / "work", Path(tmp) / "new")
            bad, ok = compare(case, base / case, Path(tmp) / "new")
            total += bad
            print(f"{case}: {bad} unexpected and {ok} expected differences ({time.perf_counter() - start:.1f} s)")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
