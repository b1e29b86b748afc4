"""Fixtures of the explain tests; the tiny hand-set models live in explain_tiny_models.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch import nn

# --import-mode=importlib keeps test folders off sys.path; the helper module is named uniquely.
sys.path.insert(0, str(Path(__file__).parent))

from explain_tiny_models import ConvGapLinear


@pytest.fixture
def conv_gap_linear() -> ConvGapLinear:
    return ConvGapLinear(a=[1.0, -2.0], w=[[0.5, 1.5], [-1.0, 0.25]], b=[0.1, -0.2]).eval()


@pytest.fixture(scope="module")
def resnet18() -> nn.Module:
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=3)
    # Non-trivial BatchNorm statistics so the maps are not degenerate.
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    return model.eval()
