"""Checkpoints: round trip, integrity refusals, and no pickle ever loaded."""

from __future__ import annotations

import hashlib
import json
import sys
import textwrap

import pandas as pd
import pytest
import torch

from auditkit.data.transforms import Preprocess
from auditkit.errors import CheckpointError
from auditkit.nets import load_checkpoint, save_checkpoint
from auditkit.nets.checkpoint import read_splits, write_splits
from auditkit.nets.smallcnn import SmallCNN

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")


def _meta(arch="smallcnn", classes=("normal", "lesion"), channels=1, size=32):
    return {
        "name": "unit",
        "arch": arch,
        "classes": {"classes": list(classes), "positive_class": classes[-1] if len(classes) == 2 else None},
        "input_size": [size, size],
        "in_channels": channels,
        "preprocess": Preprocess(input_size=(size, size), in_channels=channels, mean=(0.4,), std=(0.2,)).to_dict(),
        "target_layer": "features.3",
    }


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(3)
    model = SmallCNN(1, 2).eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics, which a round trip must keep too
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    save_checkpoint(tmp_path / "m", model, _meta())
    return model, tmp_path / "m"


def test_round_trip_gives_the_same_predictions(saved):
    model, folder = saved
    loaded = load_checkpoint(folder, device="cpu")
    x = torch.randn(4, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), model(x), rtol=0, atol=0)
    assert not loaded.model.training
    assert loaded.classes.classes == ("normal", "lesion") and loaded.classes.positive_class == "lesion"
    assert loaded.preprocess == Preprocess(input_size=(32, 32), in_channels=1, mean=(0.4,), std=(0.2,))
    assert loaded.target_layer == "features.3" and loaded.arch == "smallcnn"
    # the recorded hash is the file's hash (oracle: hashlib)
    digest = hashlib.sha256((folder / "weights.safetensors").read_bytes()).hexdigest()
    assert loaded.sha256 == digest == json.loads((folder / "model.json").read_text())["weights"]["sha256"]


def test_a_modified_weights_file_is_refused(saved):
    _, folder = saved
    weights = folder / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01  # one bit of one weight
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"SHA-256.*modified or replaced"):
        load_checkpoint(folder, device="cpu")


class _Payload:
    def __init__(self, sentinel):
        self.sentinel = str(sentinel)

    def __reduce__(self):
        return (open, (self.sentinel, "w"))


def test_a_pickle_in_place_of_the_weights_is_never_unpickled(saved, tmp_path):
    _, folder = saved
    sentinel = tmp_path / "pwned"
    weights = folder / "weights.safetensors"
    torch.save({"fc.weight": _Payload(sentinel)}, str(weights))
    # even with a matching hash in model.json, the format check refuses it
    meta = json.loads((folder / "model.json").read_text())
    meta["weights"]["sha256"] = hashlib.sha256(weights.read_bytes()).hexdigest()
    (folder / "model.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"not safetensors.*never unpickles"):
        load_checkpoint(folder, device="cpu")
    assert not sentinel.exists()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("no_weights", "is missing"),
        ("no_model_json", "has no model.json"),
        ("unknown_arch", "does not know"),
        ("bad_json", "not valid JSON"),
        ("wrong_shape", "does not fit the architecture"),
    ],
)
def test_broken_checkpoints_are_refused_with_the_file_named(saved, damage, message):
    _, folder = saved
    model_json = folder / "model.json"
    if damage == "no_weights":
        (folder / "weights.safetensors").unlink()
    elif damage == "no_model_json":
        model_json.unlink()
    elif damage == "bad_json":
        model_json.write_text("{not json")
    else:
        meta = json.loads(model_json.read_text())
        if damage == "unknown_arch":
            meta["arch"] = "resnet999"
        else:
            meta["classes"] = {"classes": ["a", "b", "c"], "positive_class": None}
        model_json.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=message) as info:
        load_checkpoint(folder, device="cpu")
    assert str(folder) in str(info.value)


def test_missing_folder_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nowhere")


def test_splits_table_round_trips_and_refuses_a_patient_in_two_splits(tmp_path):
    table = pd.DataFrame({"patient_id": ["p2", "p1", "p1", "p3"], "split": ["val", "train", "train", "external"]})
    write_splits(tmp_path, table)
    assert (tmp_path / "splits.csv").read_text() == "patient_id,split\np1,train\np2,val\np3,external\n"
    assert read_splits(tmp_path).to_dict("list") == {"patient_id": ["p1", "p2", "p3"], "split": ["train", "val", "external"]}
    with pytest.raises(ValueError, match="two splits"):
        write_splits(tmp_path, pd.DataFrame({"patient_id": ["p1", "p1"], "split": ["train", "test"]}))


def test_torchscript_checkpoint_round_trips_and_checks_the_archive_hash(tmp_path):
    torch.manual_seed(0)
    eager = SmallCNN(1, 3).eval()
    archive = tmp_path / "user.pt"
    torch.jit.script(eager).save(str(archive))
    meta = {**_meta("torchscript", classes=("a", "b", "c")), "torchscript_source": str(archive)}
    save_checkpoint(tmp_path / "ts", eager, meta)
    with pytest.raises(CheckpointError, match=r"TorchScript model.*--trust-model-code"):
        load_checkpoint(tmp_path / "ts", device="cpu")
    loaded = load_checkpoint(tmp_path / "ts", device="cpu", trust_code=True)
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), eager(x))
    stored = tmp_path / "ts" / "architecture.torchscript.pt"
    torch.jit.script(SmallCNN(1, 3)).save(str(stored))  # a different program under the same name
    with pytest.raises(CheckpointError, match=r"TorchScript archive.*SHA-256"):
        load_checkpoint(tmp_path / "ts", device="cpu", trust_code=True)


def test_factory_checkpoint_round_trips_only_when_its_code_is_trusted(tmp_path, monkeypatch):
    (tmp_path / "user_ckpt_nets.py").write_text(
        textwrap.dedent(
            """
            import pathlib
            from torch import nn
            pathlib.Path(__file__).with_name("imported.marker").touch()
            def net(num_classes):
                return nn.Sequential(nn.Conv2d(1, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, num_classes))
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import user_ckpt_nets

    torch.manual_seed(1)
    model = user_ckpt_nets.net(2).eval()
    save_checkpoint(tmp_path / "f", model, {**_meta("user_ckpt_nets:net"), "target_layer": "0"})
    # Loading a received model folder must not run its code unless asked.
    monkeypatch.delitem(sys.modules, "user_ckpt_nets")
    (tmp_path / "imported.marker").unlink()
    with pytest.raises(CheckpointError, match="--trust-model-code"):
        load_checkpoint(tmp_path / "f", device="cpu")
    assert not (tmp_path / "imported.marker").exists()
    loaded = load_checkpoint(tmp_path / "f", device="cpu", trust_code=True)
    assert (tmp_path / "imported.marker").exists()
    x = torch.randn(3, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), model(x), rtol=0, atol=0)


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("input_size", "32x32", "'input_size' should be two positive integers"),
        ("input_size", [32, 0], "'input_size' should be two positive integers"),
        ("in_channels", "one", "'in_channels' should be a positive integer"),
        ("classes", ["normal", "lesion"], "'classes' should be a mapping"),
        ("weights", "weights.safetensors", "'weights' should be a mapping"),
        ("format_version", "2", "'format_version' should be an integer"),
        ("training", "x", "'training' should be a mapping"),
        ("embedding_layer", 5, "'embedding_layer' should be a module name"),
    ],
)
def test_a_malformed_model_json_field_is_named(saved, field, value, fragment):
    _, folder = saved
    meta = json.loads((folder / "model.json").read_text())
    meta[field] = value
    (folder / "model.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=fragment):
        load_checkpoint(folder, device="cpu")


def test_resume_with_a_corrupt_model_json_exits_2(saved, tmp_path, capsys):
    from auditkit.cli import run

    _, folder = saved
    (folder / "model.json").write_bytes(b"\xff\xfe not json")
    code = run(["train", "--manifest", str(tmp_path / "none.csv"), "--arch", "smallcnn", "--out", str(folder), "--resume"])
    assert code == 2
    err = capsys.readouterr().err
    assert "model.json" in err and "Traceback" not in err


def test_a_newer_format_is_told_to_upgrade_before_its_fields_are_judged(saved):
    _, folder = saved
    meta = json.loads((folder / "model.json").read_text())
    meta.update(format_version=99, input_size="changed in a later format")
    (folder / "model.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="upgrade auditkit"):
        load_checkpoint(folder, device="cpu")


def test_a_factory_that_raises_is_an_input_error(tmp_path, monkeypatch):
    from auditkit.errors import InvalidInputError
    from auditkit.nets.custom import build_factory_model

    (tmp_path / "broken_nets.py").write_text("def net(num_classes):\n    raise ValueError('no such depth')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(InvalidInputError, match=r"broken_nets:net.*ValueError: no such depth"):
        build_factory_model("broken_nets:net", in_channels=1, num_classes=2)
