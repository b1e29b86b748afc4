"""The training recipe's parts against independent references: schedule, class weights, AUROC, resume state."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.utils.class_weight import compute_class_weight
from torch import nn

from auditkit.errors import CheckpointError
from auditkit.nets.device import make_grad_scaler
from auditkit.train.metrics import balanced_class_weights, selection_auroc
from auditkit.train.schedule import make_scheduler, warmup_cosine_factor
from auditkit.train.state import load_resume_state, restore_rng, save_resume_state


def test_warmup_is_linear_by_hand():
    # warm-up of 3 steps rises 1/4, 2/4, 3/4, then the cosine starts at 1
    values = [warmup_cosine_factor(s, total_steps=20, warmup_steps=3) for s in range(4)]
    assert values == [0.25, 0.5, 0.75, 1.0]
    assert warmup_cosine_factor(20, total_steps=20, warmup_steps=3) == 0.0


def test_cosine_phase_matches_torch_cosine_annealing():
    total, warmup, base = 40, 5, 0.1
    ours = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=base)
    scheduler = make_scheduler(ours, total_steps=total, warmup_steps=warmup)
    reference = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=base)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(reference, T_max=total - warmup, eta_min=0.0)
    for _ in range(warmup):
        ours.step()
        scheduler.step()
    for _ in range(total - warmup):
        assert ours.param_groups[0]["lr"] == pytest.approx(reference.param_groups[0]["lr"], abs=1e-12)
        ours.step()
        scheduler.step()
        reference.step()
        cosine.step()


def test_balanced_class_weights_match_scikit_learn():
    y = np.array([0] * 70 + [1] * 20 + [2] * 10)
    expected = compute_class_weight("balanced", classes=np.arange(3), y=y)
    np.testing.assert_allclose(balanced_class_weights(y, 3), expected)
    with pytest.raises(ValueError, match=r"\[2\]"):
        balanced_class_weights(np.array([0, 1, 1]), 3)


def test_selection_auroc_by_hand_and_against_torchmetrics():
    from torchmetrics.functional.classification import multiclass_auroc

    # binary, by hand: of the 4 (positive, negative) pairs, 3 are ordered correctly
    prob = np.array([[0.9, 0.1], [0.6, 0.4], [0.65, 0.35], [0.2, 0.8]])
    assert selection_auroc(np.array([0, 0, 1, 1]), prob) == 0.75
    assert math.isnan(selection_auroc(np.array([0, 0, 0, 0]), prob))
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(60, 3))
    prob3 = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    y3 = rng.integers(0, 3, size=60)
    expected = multiclass_auroc(torch.tensor(prob3), torch.tensor(y3), num_classes=3, average="macro")
    assert selection_auroc(y3, prob3) == pytest.approx(float(expected), abs=1e-6)


def _tiny():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.3), nn.ReLU(), nn.Linear(8, 2))


def _steps(model, optimizer, scheduler, n):
    for _ in range(n):
        x = torch.randn(16, 4)  # draws from the global RNG, like shuffling and dropout do
        y = (x[:, 0] > 0).long()
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        scheduler.step()


def _fresh():
    model = _tiny()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=1e-2)
    scheduler = make_scheduler(optimizer, total_steps=30, warmup_steps=3)
    return model, optimizer, scheduler


def test_resume_state_continues_exactly_like_an_uninterrupted_run(tmp_path):
    torch.manual_seed(1)
    np.random.seed(1)
    model, optimizer, scheduler = _fresh()
    _steps(model, optimizer, scheduler, 10)
    save_resume_state(
        tmp_path, epoch=1, model=model, optimizer=optimizer, scheduler=scheduler,
        scaler=make_grad_scaler(torch.device("cpu")), history=[{"epoch": 1, "train_loss": 0.5}],
        progress={"best_epoch": 1}, settings={"seed": 1},
    )  # fmt: skip
    expected_numpy = np.random.random()
    _steps(model, optimizer, scheduler, 10)  # the uninterrupted run: the oracle

    resumed, optimizer2, scheduler2 = _fresh()
    torch.manual_seed(999)  # a different process state, undone by the restore
    state = load_resume_state(tmp_path)
    resumed.load_state_dict(state.model)
    optimizer2.load_state_dict(state.optimizer)
    scheduler2.load_state_dict(state.scheduler)
    restore_rng(state.rng_tensors, state.rng_scalars)
    assert np.random.random() == expected_numpy
    _steps(resumed, optimizer2, scheduler2, 10)
    for (name, a), (_, b) in zip(model.state_dict().items(), resumed.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    assert optimizer2.param_groups[0]["lr"] == optimizer.param_groups[0]["lr"]
    assert state.history == [{"epoch": 1, "train_loss": 0.5}] and state.epoch == 1


def test_torn_resume_state_is_refused(tmp_path):
    model, optimizer, scheduler = _fresh()
    save_resume_state(
        tmp_path, epoch=1, model=model, optimizer=optimizer, scheduler=scheduler,
        scaler=make_grad_scaler(torch.device("cpu")), history=[], progress={}, settings={},
    )  # fmt: skip
    tensors = tmp_path / "resume" / "state.safetensors"
    tensors.write_bytes(tensors.read_bytes()[:-4] + b"\x00\x00\x00\x01")
    with pytest.raises(CheckpointError, match="torn"):
        load_resume_state(tmp_path)
    with pytest.raises(CheckpointError, match="nothing to resume"):
        load_resume_state(tmp_path / "elsewhere")


class _AuxNet(nn.Module):
    """Returns torchvision's InceptionOutputs in training mode, like inception_v3 with its auxiliary head."""

    def __init__(self):
        super().__init__()
        self.main = nn.Linear(3, 2)
        self.aux = nn.Linear(3, 2)

    def forward(self, x):
        from torchvision.models.inception import InceptionOutputs

        return InceptionOutputs(self.main(x), self.aux(x)) if self.training else self.main(x)


def test_training_loss_adds_the_auxiliary_loss_at_weight_0_4():
    from auditkit.train.loop import train_one_epoch

    torch.manual_seed(0)
    model = _AuxNet()
    x, y = torch.randn(8, 3), torch.tensor([0, 1] * 4)
    weight = torch.tensor([1.0, 3.0])
    # hand computation with the untouched weights (lr=0 leaves them as they are)
    expected = nn.functional.cross_entropy(model.main(x), y, weight=weight) + 0.4 * nn.functional.cross_entropy(
        model.aux(x), y, weight=weight
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    loss = train_one_epoch(
        model, [(x, y, torch.arange(8))], optimizer=optimizer,
        scheduler=make_scheduler(optimizer, total_steps=1, warmup_steps=0),
        scaler=make_grad_scaler(torch.device("cpu")), class_weight=weight, device=torch.device("cpu"),
    )  # fmt: skip
    assert loss == pytest.approx(float(expected.detach()), rel=1e-6)
