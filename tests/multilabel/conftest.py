"""The multi-label package's shared fixture: one phantom, one trained sigmoid-head model, one audit of it.

``audited`` -> ``(root, model_dir, table, exit_code, results_document, phantom)``: the
multi-label phantom (600 images, 24 px: women's nodules faint, effusion's marker on
the internal sites only), a smallcnn trained on it for 5 epochs (sigmoid head, BCE),
its predictions table (``predict_multilabel``), and ``auditkit audit --model
--manifest`` of it with a policy (nodule FNR gap, external AUROC delta) and a small
saliency sample, so every finding is also explained. Built once per session.
"""

from __future__ import annotations

import json

import pytest

from auditkit.cli import run
from auditkit.data.phantom.multilabel import MultilabelPhantomConfig, generate_multilabel_phantom
from auditkit.train.multilabel import predict_multilabel, train_multilabel

POLICY = """name: multilabel-phantom
version: "1"
block_on_insufficient: false
rules:
  - id: fnr-gap
    metric: fairness.sex.gap.fnr
    max: 0.1
    use: ci_low
  - id: external-auroc-delta
    metric: external.*.delta.auroc
    min: -0.05
    use: ci_high
"""

SALIENCY = """saliency:
  max_images: 32
  sanity_images: 4
  sanity_blocks: 2
  ig_steps: 16
"""


@pytest.fixture(scope="session")
def audited(tmp_path_factory):
    root = tmp_path_factory.mktemp("multilabel_e2e")
    phantom = generate_multilabel_phantom(root / "data", MultilabelPhantomConfig(n_images=600, size=24))
    model = train_multilabel(phantom.manifest_path, out=root / "model", epochs=5, seed=0, input_size=(24, 24),
                             fractions={"train": 0.5, "val": 0.2, "test": 0.3})  # subgroups of the test split >= 30
    table = predict_multilabel(model, phantom.manifest_path)
    (root / "policy.yaml").write_text(POLICY, encoding="utf-8")
    (root / "audit.yaml").write_text(SALIENCY, encoding="utf-8")
    code = run([  # the model and its manifest: scored per finding, and every finding explained
        "--quiet", "audit", "--model", str(model), "--manifest", str(phantom.manifest_path), "--out",
        str(root / "audit"), "--attributes", "sex", "--n-boot", "200", "--no-report", "--policy",
        str(root / "policy.yaml"), "--config", str(root / "audit.yaml"),
    ])  # fmt: skip
    document = json.loads((root / "audit" / "results.json").read_text(encoding="utf-8"))
    return root, model, table, code, document, phantom
