"""User models: module:factory and TorchScript, and files that must never be unpickled."""

from __future__ import annotations

import pickle
import textwrap

import pytest
import torch

from auditkit.errors import CheckpointError, InvalidInputError
from auditkit.nets import custom
from auditkit.nets.smallcnn import SmallCNN

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")

USER_MODULE = textwrap.dedent(
    """
    import torch
    from torch import nn

    def with_args(in_channels, num_classes):
        return nn.Sequential(nn.Conv2d(in_channels, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                             nn.Linear(4, num_classes))

    def fixed():
        return nn.Sequential(nn.Conv2d(1, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5))

    def not_a_model():
        return "model"
    """
)


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "user_nets_for_auditkit.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "user_nets_for_auditkit"


def test_factory_receives_channels_and_classes_when_it_names_them(user_module):
    model = custom.build_factory_model(f"{user_module}:with_args", in_channels=3, num_classes=4)
    assert model(torch.zeros(2, 3, 8, 8)).shape == (2, 4)
    assert custom.infer_in_channels(model) == 3


def test_factory_without_parameters_is_called_bare_and_shape_is_checked(user_module):
    model = custom.build_factory_model(f"{user_module}:fixed", in_channels=1, num_classes=2)
    with pytest.raises(InvalidInputError, match=r"returns \(2, 5\).*2 classes"):
        custom.check_output_shape(
            model, in_channels=1, num_classes=2, input_size=(8, 8), device=torch.device("cpu"), where="--arch"
        )
    assert model.training  # the caller's mode is restored


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_such_module_xyz:make", "cannot import module 'no_such_module_xyz'"),
        ("{mod}:missing", "has no attribute 'missing'"),
        ("{mod}:not_a_model", "returned a str, not a torch.nn.Module"),
        ("resnet 18", "not of the form"),
    ],
)
def test_bad_factories_are_input_errors(user_module, spec, message):
    with pytest.raises(InvalidInputError, match=message):
        custom.build_factory_model(spec.format(mod=user_module), in_channels=1, num_classes=2)


def test_torchscript_archive_round_trips_the_eager_outputs(tmp_path):
    torch.manual_seed(0)
    eager = SmallCNN(1, 2).eval()
    path = tmp_path / "model.pt"
    torch.jit.script(eager).save(str(path))
    loaded = custom.load_torchscript(path).eval()
    x = torch.randn(3, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), eager(x))


class _Payload:
    """Unpickling this creates the sentinel file: proof that code ran."""

    def __init__(self, sentinel):
        self.sentinel = str(sentinel)

    def __reduce__(self):
        return (open, (self.sentinel, "w"))


def test_torchscript_loader_never_unpickles_a_plain_pickle(tmp_path):
    sentinel = tmp_path / "pwned"
    legacy = tmp_path / "model.pt"
    legacy.write_bytes(pickle.dumps(_Payload(sentinel)))
    with pytest.raises(CheckpointError, match="not a TorchScript archive"):
        custom.load_torchscript(legacy)
    assert not sentinel.exists()


def test_torchscript_loader_never_unpickles_a_torch_save_archive(tmp_path):
    sentinel = tmp_path / "pwned"
    archive = tmp_path / "model.pt"
    torch.save({"model": _Payload(sentinel)}, str(archive))  # a zip with data.pkl, not TorchScript
    with pytest.raises(CheckpointError, match="not a loadable TorchScript archive"):
        custom.load_torchscript(archive)
    assert not sentinel.exists()
