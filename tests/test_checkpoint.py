"""Checkpoints: round trip through the metadata alone, and refusal of every bad file."""

import json
import struct
from pathlib import Path

import pytest
import safetensors.torch
import torch
from torch import nn

from gsoplib import checkpoint
from gsoplib.checkpoint import (
    CheckpointError,
    clean_state_dict,
    load_checkpoint,
    load_state,
    read_metadata,
    save_checkpoint,
    save_state,
)


class Tiny(nn.Module):
    """Obeys the model contract: logits, or (logits, aux) with return_aux."""

    def __init__(self, num_classes: int = 3, in_chans: int = 1, width: int = 4):
        super().__init__()
        self.conv = nn.Conv2d(in_chans, width, 3, padding=1)
        self.bn = nn.BatchNorm2d(width)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x, return_aux=False):
        logits = self.fc(torch.relu(self.bn(self.conv(x))).mean((2, 3)))
        return (logits, logits.new_zeros(())) if return_aux else logits


built = []


def factory(name, **kwargs):
    built.append((name, kwargs))
    if name != "tiny":
        raise KeyError(f"unknown model {name!r}; valid models: tiny")
    return Tiny(**kwargs)


def _save(path, model=None, **overrides):
    model = model or Tiny(width=4)
    fields = dict(
        model_name="tiny",
        model_kwargs={"num_classes": 3, "in_chans": 1, "width": 4},
        classes=["a", "b", "c"],
        input_size=(8, 8),
        in_chans=1,
        mean=(0.5,),
        std=(0.25,),
        dataset="toy",
        train_config={"recipe": "fast", "epochs": 2},
        metrics={"test_top1": 0.75},
    )
    fields.update(overrides)
    return save_checkpoint(path, model, **fields)


def test_round_trip_rebuilds_the_model_from_metadata_alone(tmp_path):
    model = Tiny(width=4)
    with torch.no_grad():
        model.bn.running_mean.uniform_()  # buffers travel too
    model.train(False)
    path = _save(tmp_path / "m.safetensors", model)
    built.clear()
    ck = load_checkpoint(path, model_factory=factory)
    assert built == [("tiny", {"num_classes": 3, "in_chans": 1, "width": 4})]
    x = torch.randn(2, 1, 8, 8)
    torch.testing.assert_close(ck.model(x), model(x), rtol=0, atol=0)
    assert not ck.model.training
    assert ck.classes == ["a", "b", "c"] and ck.input_size == (8, 8) and ck.in_chans == 1
    assert ck.mean == (0.5,) and ck.std == (0.25,) and ck.metrics == {"test_top1": 0.75}
    meta = read_metadata(path)
    assert meta["train"] == {"recipe": "fast", "epochs": 2}
    assert meta["versions"]["torch"] == torch.__version__ and meta["versions"]["gsoplib"]
    assert meta["format"] == checkpoint.FORMAT


def test_wrapper_prefixes_are_stripped():
    state = {"module._orig_mod.fc.weight": 1, "_orig_mod.conv.bias": 2, "a._orig_mod.b": 3}
    assert clean_state_dict(state) == {"fc.weight": 1, "conv.bias": 2, "a.b": 3}
    compiled_like = nn.Module()
    compiled_like._orig_mod = Tiny()
    assert checkpoint.unwrap(compiled_like) is compiled_like._orig_mod


def test_metadata_must_be_json(tmp_path):
    with pytest.raises(ValueError, match="JSON-serialisable"):
        _save(tmp_path / "m.safetensors", metrics={"bad": object()})
    assert not list(tmp_path.iterdir())


def _refused(path, match):
    with pytest.raises(CheckpointError, match=match) as info:
        load_checkpoint(path, model_factory=factory)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


class _Marker:
    """Unpickling it would create a file: proof that code ran."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def test_a_pickled_file_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.safetensors"
    torch.save({"weights": _Marker(marker)}, path)
    _refused(path, "pickled PyTorch file")
    with pytest.raises(CheckpointError, match="not a readable resume state"):
        load_state(path)
    assert not marker.exists()


def test_a_truncated_file_is_refused(tmp_path):
    path = _save(tmp_path / "m.safetensors")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 40])
    _refused(path, "corrupt or truncated")
    path.write_bytes(data[:5])
    _refused(path, "corrupt or truncated")


def test_a_flipped_weight_byte_fails_the_checksum(tmp_path):
    path = _save(tmp_path / "m.safetensors")
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    _refused(path, "checksum")


def test_garbage_and_foreign_files_are_refused(tmp_path):
    garbage = tmp_path / "g.safetensors"
    garbage.write_bytes(struct.pack("<Q", 10**12) + b"{}")
    _refused(garbage, "not a valid safetensors file")
    foreign = tmp_path / "f.safetensors"
    safetensors.torch.save_file({"w": torch.zeros(2)}, foreign, metadata={"format": "pt"})
    _refused(foreign, "without gsoplib metadata")
    other = tmp_path / "o.safetensors"
    meta = json.dumps({"format": "somebody-else/9"})
    safetensors.torch.save_file({"w": torch.zeros(2)}, other, metadata={"gsoplib": meta})
    _refused(other, "format 'somebody-else/9'")
    _refused(tmp_path / "missing.safetensors", "does not exist")


def test_a_checkpoint_that_does_not_fit_its_model_is_refused(tmp_path):
    path = _save(tmp_path / "m.safetensors", Tiny(width=6))  # metadata says width 4
    message = _refused(path, "does not fit model 'tiny'")
    assert "wrong shape" in message
    unknown = _save(tmp_path / "u.safetensors", model_name="nonesuch")
    _refused(unknown, "cannot build .*valid models: tiny")


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path):
    path = _save(tmp_path / "m.safetensors")
    before = path.read_bytes()

    def crash(tmp):
        tmp.write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        checkpoint._atomic_write(path, crash)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


def test_resume_state_round_trip_with_optimizer(tmp_path):
    model = Tiny()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(4, 1, 8, 8)).sum().backward()
    opt.step()
    state = {
        "epoch": 3,
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "history": [{"epoch": 1, "loss": 0.5}],
        "config": {"milestones": [1.0], "device": None},
    }
    path = save_state(tmp_path / "resume.pt", state)
    loaded = load_state(path)
    assert loaded["epoch"] == 3 and loaded["history"] == state["history"]
    fresh = torch.optim.SGD(Tiny().parameters(), lr=0.1, momentum=0.9)
    fresh.load_state_dict(loaded["optimizer"])
    buf = next(iter(fresh.state.values()))["momentum_buffer"]
    torch.testing.assert_close(buf, next(iter(opt.state.values()))["momentum_buffer"])
    with pytest.raises(CheckpointError, match="no training state"):
        load_state(tmp_path / "nothing.pt")
