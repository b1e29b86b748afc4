"""Checkpoint files: safetensors told by structure, weights fenced inside the folder, hashes not leaked."""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
import struct

import pytest
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from auditkit.errors import CheckpointError
from auditkit.nets import load_checkpoint
from auditkit.nets.weights import read_safetensors, sniff_format


def _safetensors_with_low_byte_0x80() -> bytes:
    tensors = {"w": torch.arange(6, dtype=torch.float32).reshape(2, 3)}
    for pad in range(400):
        data = st_save(tensors, metadata={"pad": "x" * pad})
        (header_len,) = struct.unpack("<Q", data[:8])
        if header_len & 0xFF == 0x80:
            return data
    raise AssertionError("no padding gave a 0x80 low byte")  # pragma: no cover


def test_safetensors_whose_header_length_starts_like_a_pickle_is_read(tmp_path):
    data = _safetensors_with_low_byte_0x80()
    assert data[:1] == b"\x80"  # the byte a pickle's PROTO opcode also starts with
    path = tmp_path / "w.safetensors"
    path.write_bytes(data)
    assert sniff_format(path) == "safetensors"
    torch.testing.assert_close(read_safetensors(path)["w"], st_load(data)["w"])  # oracle: safetensors itself
    real_pickle = tmp_path / "p.bin"
    real_pickle.write_bytes(pickle.dumps({"a": 1}, protocol=2))
    assert sniff_format(real_pickle) == "pickle"


def test_checkpoint_with_a_0x80_header_loads(tiny_model, tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(tiny_model, folder)
    state = st_load((folder / "weights.safetensors").read_bytes())
    for pad in range(400):
        data = st_save(state, metadata={"pad": "x" * pad})
        if data[0] == 0x80:
            break
    (folder / "weights.safetensors").write_bytes(data)
    meta = json.loads((folder / "model.json").read_text())
    meta["weights"]["sha256"] = meta["sha256"] = hashlib.sha256(data).hexdigest()
    (folder / "model.json").write_text(json.dumps(meta))
    loaded = load_checkpoint(folder, device="cpu")
    for key, value in loaded.model.state_dict().items():
        torch.testing.assert_close(value, state[key], rtol=0, atol=0)


@pytest.mark.parametrize("name", ["../outside.safetensors", "/etc/hostname", "sub/../../outside.safetensors", "", 7])
def test_weights_named_outside_the_folder_are_refused(tiny_model, tmp_path, name):
    folder = tmp_path / "m"
    shutil.copytree(tiny_model, folder)
    shutil.copy(folder / "weights.safetensors", tmp_path / "outside.safetensors")
    meta = json.loads((folder / "model.json").read_text())
    meta["weights"]["file"] = name
    (folder / "model.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError) as refused:
        load_checkpoint(folder, device="cpu")
    assert "inside its folder" in str(refused.value) or "missing" in str(refused.value)


def test_hash_mismatch_names_no_hash(tiny_model, tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(tiny_model, folder)
    other = st_save({"w": torch.zeros(3)})
    (folder / "weights.safetensors").write_bytes(other)
    with pytest.raises(CheckpointError, match="does not match the SHA-256") as refused:
        load_checkpoint(folder, device="cpu")
    actual = hashlib.sha256(other).hexdigest()
    recorded = json.loads((folder / "model.json").read_text())["weights"]["sha256"]
    for digest in (actual, recorded):
        assert digest[:6] not in str(refused.value)


@pytest.mark.parametrize("kind", ["volume", "multilabel"])
def test_a_json_nesting_bomb_in_any_model_json_reader_is_a_checkpoint_error(tmp_path, kind):
    """The 3-D and multi-label loaders read model.json too: 100,000 nested arrays end in one CheckpointError."""
    from auditkit.errors import CheckpointError
    from auditkit.train.multilabel import is_multilabel_checkpoint, load_multilabel_model
    from auditkit.train.volumes import is_volume_checkpoint, load_volume_model

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.json").write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    assert not is_volume_checkpoint(folder) and not is_multilabel_checkpoint(folder)
    loader = load_volume_model if kind == "volume" else load_multilabel_model
    with pytest.raises(CheckpointError):
        loader(folder)


def test_a_review_file_nested_too_deeply_is_one_input_error(tmp_path):
    from auditkit.errors import InvalidInputError
    from auditkit.report.sections.review import read_review

    path = tmp_path / "review.json"
    path.write_text('{"a":' * 100_000 + "1" + "}" * 100_000, encoding="utf-8")
    with pytest.raises(InvalidInputError, match="not a JSON review file"):
        read_review(path)


@pytest.mark.parametrize("kind", ["volume", "multilabel"])
def test_3d_and_multilabel_checkpoints_keep_weights_inside_their_folder_and_name_a_malformed_field(tmp_path, kind):
    """The task-kind loaders use the 2-D checkpoint's fence and SHA-256 check; a missing field is one CheckpointError."""
    from auditkit.train.multilabel import load_multilabel_model
    from auditkit.train.volumes import load_volume_model

    loader = load_volume_model if kind == "volume" else load_multilabel_model
    outside = tmp_path / "outside.safetensors"
    outside.write_bytes(b"not weights")
    folder = tmp_path / "model"
    folder.mkdir()
    record = {"task": {"kind": kind}, "weights": {"file": "../outside.safetensors",
                                                  "sha256": hashlib.sha256(b"not weights").hexdigest()}}
    (folder / "model.json").write_text(json.dumps(record), encoding="utf-8")
    with pytest.raises(CheckpointError, match="outside the checkpoint folder"):
        loader(folder)
    (folder / "weights.safetensors").write_bytes(b"not weights")
    record["weights"]["file"] = "weights.safetensors"
    (folder / "model.json").write_text(json.dumps(record), encoding="utf-8")  # no arch, classes, preprocess
    with pytest.raises(CheckpointError, match="is malformed"):
        loader(folder)
    record["weights"]["sha256"] = "0" * 64
    (folder / "model.json").write_text(json.dumps(record), encoding="utf-8")
    with pytest.raises(CheckpointError, match="does not match the SHA-256") as refused:
        loader(folder)
    assert hashlib.sha256(b"not weights").hexdigest()[:8] not in str(refused.value)
