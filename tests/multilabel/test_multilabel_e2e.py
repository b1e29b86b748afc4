"""Multi-label end to end: phantom images -> sigmoid/BCE training -> predictions per finding -> audit -> gate.

Planted truth (auditkit.data.phantom.multilabel): women's nodules are faint
(an underdiagnosis gap in ``nodule`` only) and a corner marker rides on the
internal sites' effusions and never on the external site's (a shortcut in
``effusion`` only); ``opacity`` is clean. The gate must fail exactly those two
checks: nodule's FNR gap by sex and effusion's external AUROC drop. Oracles:
the planted flaws, scikit-learn's AUROC per finding on the audit's test rows,
and PyTorch's own BCE-with-logits on the labelled cells for the masked loss.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from auditkit.data.phantom.multilabel import FINDINGS
from auditkit.train.multilabel import is_multilabel_checkpoint, masked_bce


def test_masked_bce_is_torchs_bce_over_the_labelled_cells():
    logits = torch.tensor([[0.3, -1.2], [2.0, 0.1], [-0.5, 0.7]])
    targets = torch.tensor([[1.0, float("nan")], [0.0, 1.0], [float("nan"), 0.0]])
    pos_weight = torch.tensor([2.0, 0.5])
    known = ~torch.isnan(targets)
    cells = [
        torch.nn.functional.binary_cross_entropy_with_logits(
            logits[i, k : k + 1], targets[i, k : k + 1], pos_weight=pos_weight[k : k + 1]
        )
        for i, k in zip(*np.nonzero(known.numpy()), strict=True)
    ]
    assert float(masked_bce(logits, targets, pos_weight)) == pytest.approx(float(torch.stack(cells).mean()))


@pytest.mark.slow
def test_the_audit_catches_each_flaw_in_its_own_finding_only(audited):
    from sklearn.metrics import roc_auc_score

    root, model, table, code, document, _ = audited
    meta = json.loads((model / "model.json").read_text(encoding="utf-8"))
    assert is_multilabel_checkpoint(model) and meta["output"]["activation"] == "sigmoid"
    assert meta["task"]["findings"] == list(FINDINGS)
    assert code == 1
    gate = json.loads((root / "audit" / "gate.json").read_text(encoding="utf-8"))
    failed = sorted(c["metric"] for c in gate["rules"] if c["verdict"] == "fail")
    assert failed == ["findings.effusion.external.site_C.delta.auroc", "findings.nodule.fairness.sex.gap.fnr"]
    for finding in FINDINGS:
        labels = pd.to_numeric(table[f"label_{finding}"], errors="coerce")
        kept = labels.isin([0, 1]) & (table["split"] == "test")
        expected = roc_auc_score(labels[kept].astype(int), table.loc[kept, f"score_{finding}"])
        got = document["findings"][finding]["discrimination"]["test"]["auroc"]["estimate"]
        assert got == pytest.approx(expected)
