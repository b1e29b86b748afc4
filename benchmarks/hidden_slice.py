"""Is the phantom's planted hidden slice found? Phantom -> smallcnn -> predict (+embeddings) -> audit -> slices.

Generates a phantom with only the ``hidden_slice`` flaw on (a latent quarter
of patients with a chest-drain-like tube and fainter lesions, named by no
column), trains smallcnn, audits its predictions with the embeddings, and
compares the audit's discovered slices with phantom.json's membership:
the flagged slice's share of hidden-slice images (precision), the share of
the hidden slice's test images it holds (recall), and the true AUROC gap.

Usage: python benchmarks/hidden_slice.py [--n 3000] [--epochs 8] [--strength 0.8] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd


def _cli(*args: str) -> None:
    subprocess.run([str(Path(sys.executable).parent / "auditkit"), "-q", *args], check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--strength", type=float, default=0.8)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--reuse", action="store_true", help="Use the outputs already in --out (no re-run).")
    args = parser.parse_args()

    from auditkit.data.phantom import PhantomConfig, generate_phantom

    root = args.out or Path(tempfile.mkdtemp(prefix="hidden_slice_"))
    t0 = time.perf_counter()
    config = PhantomConfig(n_images=args.n, size=args.size, seed=0).with_flaws(
        ("hidden_slice",), {"hidden_slice": args.strength}
    )
    if args.reuse:
        class _P:  # the one path the summary reads
            truth_path = root / "phantom" / "phantom.json"

        phantom = _P()
    else:
        phantom = generate_phantom(root / "phantom", config, force=True)
    if not args.reuse:
        _run_pipeline(root, phantom, args)
    _summary(root, phantom, args, t0)
    return 0


def _run_pipeline(root: Path, phantom, args) -> None:  # type: ignore[no-untyped-def]
    _cli("train", "--manifest", str(phantom.manifest_path), "--arch", "smallcnn", "--out", str(root / "model"),
         "--epochs", str(args.epochs), "--device", "cpu", "--force")  # fmt: skip
    _cli("predict", "--model", str(root / "model"), "--manifest", str(phantom.manifest_path),
         "--out", str(root / "preds.parquet"), "--embeddings", str(root / "emb.parquet"), "--force")  # fmt: skip
    (root / "audit.yaml").write_text("n_boot: 500\nattributes: [sex, age_group]\nmmd_permutations: 0\n")
    _cli("audit", "--predictions", str(root / "preds.parquet"), "--embeddings", str(root / "emb.parquet"),
         "--config", str(root / "audit.yaml"), "--out", str(root / "audit"), "--no-explain", "--no-report", "--force")  # fmt: skip


def _summary(root: Path, phantom, args, t0: float) -> None:  # type: ignore[no-untyped-def]
    from sklearn.metrics import roc_auc_score

    from auditkit.audit.predictions import read_embeddings
    from auditkit.stats.slices import candidate_slices

    results = json.loads((root / "audit" / "results.json").read_text())
    truth = pd.DataFrame(json.loads(phantom.truth_path.read_text())["images"]).set_index("id")
    preds = pd.read_parquet(root / "preds.parquet").set_index("id")
    test = preds[preds["split"] == "test"]
    hidden = truth.loc[test.index, "hidden_slice"].to_numpy(bool)
    y = test["y_true"].to_numpy()
    s = test["score"].to_numpy() if "score" in test else test.filter(like="score_").iloc[:, -1].to_numpy()
    block = results["clinical"]["slices"]["test"]
    print(f"phantom {args.n} images {args.size}px, hidden_slice strength {args.strength}, smallcnn {args.epochs} epochs, "
          f"{time.perf_counter() - t0:.0f} s; internal test {len(test)} images, {hidden.sum()} in the hidden slice")  # fmt: skip
    print(f"true AUROC: hidden slice {roc_auc_score(y[hidden], s[hidden]):.3f}, "
          f"rest {roc_auc_score(y[~hidden], s[~hidden]):.3f}")  # fmt: skip
    print(f"slices: {block['n_slices']}, flagged: {block['n_flagged']}")
    # the audit's clustering is deterministic: redo it to see which images each slice holds
    settings = results["clinical"]["settings"]["slices"]
    emb = read_embeddings(root / "emb.parquet", list(test.index.astype(str)))
    meta = (pd.get_dummies(test[["sex", "age_group"]].astype(str)).to_numpy(dtype=float)
            if settings["use_attributes"] else None)
    labels = candidate_slices(emb, n_slices=block["n_slices"], metadata=meta,
                              metadata_weight=settings["attribute_weight"], n_components=settings["n_components"],
                              random_state=results["run"]["seed"])  # fmt: skip
    for rec in block["records"]:
        inside = labels == rec["slice"]
        if inside.sum() != rec["n"]:
            print(f"  (slice {rec['slice']}: re-clustering differs from the audit's, {inside.sum()} vs {rec['n']})")
        rec["precision"] = float(hidden[inside].mean()) if inside.any() else float("nan")
        rec["recall"] = float(hidden[inside].sum() / max(hidden.sum(), 1))
    for rec in block["records"]:
        gap = rec["auroc_gap"]
        print(f"  slice {rec['slice']}: n={rec['n']}, AUROC gap {gap.get('estimate')}, p_adj {gap.get('p_adjusted')}, "
              f"flagged {rec['flagged']}, share hidden {rec['precision']:.2f}, holds {rec['recall']:.0%} of the hidden slice, "
              f"representative ids in hidden slice "
              f"{sum(bool(truth.loc[i, 'hidden_slice']) for i in rec['representative_ids'])}/{len(rec['representative_ids'])}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
