"""Checkpoints: round trip through the metadata alone, and refusal of every bad file."""

import json
import pickle
import re
import struct
import time
import zipfile
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
    # once on the meta device to check it against the file, once to build it
    assert built == [("tiny", {"num_classes": 3, "in_chans": 1, "width": 4})] * 2
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


# -- hostile and unlucky files -------------------------------------------------------------------


def _rewrite(source: Path, target: Path, edit) -> Path:
    """``source``'s tensors under its gsoplib metadata changed by ``edit(meta)`` in place; the
    checksum still holds, so only the metadata's own checks can refuse the result."""
    tensors = safetensors.torch.load_file(str(source))
    with safetensors.safe_open(str(source), "pt") as f:
        meta = json.loads(f.metadata()[checkpoint.METADATA_KEY])
    edit(meta)
    blob = safetensors.torch.save(tensors, metadata={checkpoint.METADATA_KEY: json.dumps(meta)})
    target.write_bytes(blob)
    return target


def _refused_by(path, match, model_factory):
    with pytest.raises(CheckpointError, match=match) as info:
        load_checkpoint(path, model_factory=model_factory)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


def test_every_header_length_loads_whatever_its_first_byte(tmp_path):
    """The first 8 bytes are the header's length, little-endian and a multiple of 8: the first
    byte can be any multiple of 8, 0x80 (a pickle's first byte) included."""
    model = Tiny(width=4).eval()
    by_first_byte = {}
    for pad in range(8 * 40):
        path = _save(tmp_path / "m.safetensors", model, train_config={"pad": "x" * pad})
        first = path.read_bytes()[0]
        if first not in by_first_byte:
            by_first_byte[first] = path.rename(tmp_path / f"{pad}.safetensors")
    assert sorted(by_first_byte) == list(range(0, 256, 8))
    x = torch.randn(2, 1, 8, 8)
    for path in by_first_byte.values():
        ck = load_checkpoint(path, model_factory=factory)
        torch.testing.assert_close(ck.model(x), model(x), rtol=0, atol=0)
        assert read_metadata(path)["train"]["pad"] == ck.meta["train"]["pad"]


def test_pickles_and_zip_archives_are_recognised_by_their_signatures(tmp_path):
    files = {"zip.pt": None, "legacy.pt": None}
    torch.save({"w": torch.zeros(2)}, tmp_path / "zip.pt")
    torch.save({"w": torch.zeros(2)}, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    for protocol in range(2, pickle.HIGHEST_PROTOCOL + 1):
        (tmp_path / f"p{protocol}.pkl").write_bytes(pickle.dumps({"w": 1}, protocol=protocol))
        files[f"p{protocol}.pkl"] = None
    with zipfile.ZipFile(tmp_path / "plain.zip", "w") as archive:
        archive.writestr("a.txt", "not a checkpoint")
    files["plain.zip"] = None
    for name in files:
        _refused(tmp_path / name, "pickled PyTorch file")
    # 0x80 without a pickle's protocol byte after it, and "PK" without a zip's: neither format
    for name, data in (("odd.safetensors", b"\x80" + bytes(7) + b"{}"),
                       ("pk.safetensors", b"PK" + bytes(6) + b"{}")):
        (tmp_path / name).write_bytes(data)
        _refused(tmp_path / name, "not a valid safetensors file")


def test_the_model_is_checked_on_the_meta_device_before_it_is_allocated(tmp_path):
    devices = []

    def recording(name, **kwargs):
        devices.append(torch.empty(0).device.type)
        return factory(name, **kwargs)

    source = _save(tmp_path / "m.safetensors")
    wide = _rewrite(source, tmp_path / "wide.safetensors",
                    lambda meta: meta["model"]["kwargs"].update(width=1_000_000))
    message = _refused_by(wide, "does not fit model 'tiny'", recording)
    assert "wrong shape" in message and devices == ["meta"]
    negative = _rewrite(source, tmp_path / "negative.safetensors",
                        lambda meta: meta["model"]["kwargs"].update(width=-4))
    _refused_by(negative, "cannot build", recording)
    assert devices == ["meta", "meta"]
    devices.clear()
    ck = load_checkpoint(source, model_factory=recording)
    assert devices == ["meta", "cpu"]
    assert {t.device.type for t in ck.model.state_dict().values()} == {"cpu"}


def test_a_model_larger_than_its_weights_is_refused(tmp_path):
    """Half-precision weights for a float32 model: the model would take twice the file."""
    path = _save(tmp_path / "half.safetensors", Tiny(width=4).half())
    message = _refused(path, "larger than its weights")
    weights, model = (int(n.replace(",", "")) for n in re.findall(r"([\d,]+) bytes", message))
    assert weights == Path(path).stat().st_size - _header_bytes(path)
    assert model == sum(t.numel() * t.element_size() for t in Tiny(width=4).state_dict().values())


def _header_bytes(path) -> int:
    """The 8-byte length and the header it gives: what is not tensor data."""
    return 8 + struct.unpack("<Q", Path(path).read_bytes()[:8])[0]


@pytest.fixture(scope="module")
def vanilla(tmp_path_factory) -> Path:
    """An untrained small_vanilla for 4 classes of 8x8 grey images, saved by save_checkpoint."""
    from gsoplib.models import create_model

    torch.manual_seed(0)
    kwargs = {"num_classes": 4, "in_chans": 1}
    return save_checkpoint(
        tmp_path_factory.mktemp("vanilla") / "vanilla.safetensors",
        create_model("small_vanilla", **kwargs).eval(), model_name="small_vanilla",
        model_kwargs=kwargs, classes=["a", "b", "c", "d"], input_size=(8, 8), in_chans=1,
        mean=(0.5,), std=(0.25,), dataset="toy",
    )


def test_a_zoo_checkpoint_loads_with_every_check(vanilla):
    ck = load_checkpoint(vanilla)
    assert ck.model_name == "small_vanilla" and ck.classes == ["a", "b", "c", "d"]
    assert ck.model(torch.randn(2, 1, 8, 8)).shape == (2, 4)


@pytest.mark.parametrize("num_classes", [200_000_000, 5, 0, -3, True, 4.0, "4", None])
def test_a_num_classes_that_is_not_the_number_of_class_names_is_refused(
    num_classes, vanilla, tmp_path
):
    """200 000 000 would ask for a 100 GB head and -3 escaped as a RuntimeError: both are one
    sentence now, before any model is built."""
    built = []

    def never(name, **kwargs):
        built.append(name)
        raise AssertionError("the model must not be built")

    path = _rewrite(vanilla, tmp_path / "n.safetensors",
                    lambda meta: meta["model"]["kwargs"].update(num_classes=num_classes))
    message = _refused_by(path, "model.kwargs.num_classes", never)
    assert "4 class names" in message and not built


def _edit(path: str, value):
    """``edit(meta)`` that sets the dotted ``path`` to ``value`` (``DELETE`` removes it)."""

    def edit(meta):
        *parents, leaf = path.split(".")
        node = meta
        for key in parents:
            node = node[key]
        if value is DELETE:
            del node[leaf]
        else:
            node[leaf] = value

    return edit


DELETE = object()
# (dotted field, new value, the field the refusal must name)
DISAGREEING = {
    "3 class names for 4 outputs": ("data.classes", ["a", "b", "c"], "data.classes"),
    "no class names": ("data.classes", [], "data.classes"),
    "class names not strings": ("data.classes", [1, 2, 3, 4], "data.classes"),
    "class names as one string": ("data.classes", "abcd", "data.classes"),
    "empty mean": ("data.mean", [], "data.mean"),
    "mean of the wrong length": ("data.mean", [0.5, 0.5], "data.mean"),
    "mean not numbers": ("data.mean", ["0.5"], "data.mean"),
    "zero std": ("data.std", [0.0], "data.std"),
    "negative std": ("data.std", [-0.25], "data.std"),
    "infinite std": ("data.std", [float("inf")], "data.std"),
    "NaN std": ("data.std", [float("nan")], "data.std"),
    "boolean std": ("data.std", [True], "data.std"),
    "huge input": ("data.input_size", [100_000, 100_000], "data.input_size"),
    "zero input": ("data.input_size", [0, 8], "data.input_size"),
    "one side": ("data.input_size", [8], "data.input_size"),
    "float sides": ("data.input_size", [8.0, 8.0], "data.input_size"),
    "resize below the input": ("data.resize", 4, "data.resize"),
    "resize not a number": ("data.resize", "256", "data.resize"),
    "huge resize": ("data.resize", 10**6, "data.resize"),
    "channels not a number": ("data.in_chans", "1", "data.in_chans"),
    "channels of another model": ("data.in_chans", 3, "data.in_chans"),
    "huge channels": ("data.in_chans", 10**6, "data.in_chans"),
    "data not an object": ("data", [1, 2], "data"),
    "dataset name not a string": ("data.name", 7, "data.name"),
    "options not an object": ("data.options", "none", "data.options"),
    "model name not a string": ("model.name", ["small_vanilla"], "model.name"),
    "kwargs not an object": ("model.kwargs", [4, 1], "model.kwargs"),
    "kwargs channels not the data's": ("model.kwargs.in_chans", 3, "model.kwargs.in_chans"),
    "train not an object": ("train", "fast", "train"),
    "metrics not an object": ("metrics", [0.9], "metrics"),
    "versions not an object": ("versions", 1, "versions"),
    "checksum not a string": ("sha256", 12, "sha256"),
    "no checksum": ("sha256", DELETE, "sha256"),
}


@pytest.mark.parametrize("case", list(DISAGREEING))
def test_metadata_that_disagrees_with_itself_or_has_the_wrong_type_is_refused(
    case, vanilla, tmp_path
):
    field, value, named = DISAGREEING[case]
    path = _rewrite(vanilla, tmp_path / "bad.safetensors", _edit(field, value))
    message = _refused_by(path, re.escape(named), None)
    with pytest.raises(CheckpointError) as info:
        read_metadata(path)  # the metadata alone is enough to refuse it
    assert str(info.value) == message


def test_resize_round_trips_and_is_none_for_files_without_it(vanilla, tmp_path):
    """A checkpoint may say to resize the shorter side, then centre-crop the input size."""
    assert load_checkpoint(vanilla).resize is None
    path = _rewrite(vanilla, tmp_path / "resized.safetensors", _edit("data.resize", 32))
    assert load_checkpoint(path).resize == 32
    old = _rewrite(vanilla, tmp_path / "old.safetensors", _edit("data.resize", DELETE))
    assert load_checkpoint(old).resize is None


def test_class_names_and_channels_must_match_the_built_model(tmp_path):
    """Without num_classes and in_chans in the kwargs, the meta-built model says how many
    outputs and input channels there are."""
    from gsoplib.models import create_model

    model = create_model("small_vanilla").eval()  # its defaults: 10 classes, 1 channel
    source = save_checkpoint(
        tmp_path / "defaults.safetensors", model, model_name="small_vanilla", model_kwargs={},
        classes=[str(i) for i in range(10)], input_size=(8, 8), in_chans=1, mean=(0.5,),
        std=(0.25,),
    )
    assert load_checkpoint(source).model(torch.randn(1, 1, 8, 8)).shape == (1, 10)
    four = _rewrite(source, tmp_path / "four.safetensors", _edit("data.classes", list("abcd")))
    message = _refused_by(four, "4 class names", None)
    assert "10 outputs" in message
    rgb = _rewrite(source, tmp_path / "rgb.safetensors", lambda meta: meta["data"].update(
        in_chans=3, mean=[0.5] * 3, std=[0.25] * 3))
    message = _refused_by(rgb, "data.in_chans 3", None)
    assert "1 input channel" in message


def test_a_model_with_far_more_tensors_than_the_file_holds_is_refused_quickly(vanilla, tmp_path):
    """layers=[10**7] * 3 would build 30 million residual blocks before any check could run:
    the bounds refuse it; within them, 200 blocks a stage is far more than the file holds."""
    path = _rewrite(vanilla, tmp_path / "deep.safetensors",
                    _edit("model.kwargs.layers", [10**7] * 3))
    _refused_by(path, r"model.kwargs.layers \[10000000, .*1 to 200", None)
    path = _rewrite(vanilla, tmp_path / "deeper.safetensors",
                    _edit("model.kwargs.layers", [200] * 3))
    start = time.perf_counter()
    message = _refused_by(path, "more tensors than", None)
    assert time.perf_counter() - start < 10, message


def test_the_documentation_states_the_bounds_loading_enforces():
    page = Path(__file__).resolve().parent.parent / "docs" / "checkpoints.md"
    readme = " ".join(page.read_text().split())
    for stated in (f"1 to {checkpoint.MAX_CLASSES:,} class names",
                   f"1 to {checkpoint.MAX_IN_CHANS} input channels",
                   f"1 to {checkpoint.MAX_INPUT_SIDE} pixels a side"):
        assert stated in readme
    assert float(re.search(r"std of at least (\S+) each", readme)[1]) == checkpoint.MIN_STD


def _as_written_by(version: str):
    """``edit(meta)``: the metadata of a file an older gsoplib wrote, which pinned no head
    keyword arguments."""
    def edit(meta):
        meta["model"]["kwargs"].pop("head_kwargs", None)
        meta["versions"]["gsoplib"] = version

    return edit


def test_a_gm_sop_checkpoint_rebuilds_the_gate_it_was_trained_with(tmp_path):
    """gsoplib 0.1 wrote GM-SOP files whose gate was the release's (then the default) and 0.2
    files with the live gate (then the default), neither naming a gate form in its metadata;
    0.2's live gate has standardisation buffers that 0.1's files lack. Files written today name
    their form, so a later change of the default cannot change what they compute."""
    from gsoplib.models import create_model

    kwargs = {"num_classes": 3, "in_chans": 1}
    common = dict(model_name="small_gmsop", model_kwargs=kwargs, classes=["a", "b", "c"],
                  input_size=(28, 28), in_chans=1, mean=(0.5,), std=(0.25,))
    x = torch.randn(4, 1, 28, 28)
    for form, version in (("release", "0.1.0"), ("live", "0.2.0"), ("mixing", None)):
        torch.manual_seed(0)
        model = create_model("small_gmsop", **kwargs, head_kwargs={"gate": form}).eval()
        written = save_checkpoint(tmp_path / f"{form}.safetensors", model, **common)
        pinned = checkpoint.read_metadata(written)["model"]["kwargs"]["head_kwargs"]
        assert pinned["gate"] == form and pinned["num_components"] == 8 and pinned["k"] == 4
        ck = load_checkpoint(written)
        assert ck.model.head.gate.form == form
        torch.testing.assert_close(ck.model(x), model(x))
        if version is None:
            continue
        legacy = _rewrite(written, tmp_path / f"{form}-legacy.safetensors", _as_written_by(version))
        assert "head_kwargs" not in checkpoint.read_metadata(legacy)["model"]["kwargs"]
        ck = load_checkpoint(legacy)
        assert ck.model.head.gate.form == form and ck.model.head.alpha == 100.0
        assert ck.model.head.gate_detach == (form == "live")
        torch.testing.assert_close(ck.model(x), model(x))
    # The default is pinned too: a file of today's default model names it.
    default = create_model("small_gmsop", **kwargs).eval()
    written = save_checkpoint(tmp_path / "default.safetensors", default, **common)
    pinned = checkpoint.read_metadata(written)["model"]["kwargs"]["head_kwargs"]["gate"]
    assert pinned == default.head.gate.form


def test_an_isqrt_head_rebuilds_the_feature_scale_it_was_trained_with(tmp_path, monkeypatch):
    """gsoplib 0.3 scales the small networks' iSQRT-COV features; a file from 0.2 was trained
    without, and a file from today keeps its scale even if the zoo's default moves again."""
    from gsoplib.models import create_model, zoo

    kwargs = {"num_classes": 3, "in_chans": 1}
    common = dict(model_name="small_gsop2", model_kwargs=kwargs, classes=["a", "b", "c"],
                  input_size=(28, 28), in_chans=1, mean=(0.5,), std=(0.25,))
    x = torch.randn(4, 1, 28, 28)
    torch.manual_seed(0)
    old = create_model("small_gsop2", **kwargs, head_kwargs={"feature_scale": 1.0}).eval()
    written = save_checkpoint(tmp_path / "old.safetensors", old, **common)
    legacy = _rewrite(written, tmp_path / "legacy.safetensors", _as_written_by("0.2.0"))
    ck = load_checkpoint(legacy)
    assert ck.model.head.feature_scale == 1.0
    torch.testing.assert_close(ck.model(x), old(x))
    today = create_model("small_gsop2", **kwargs).eval()
    written = save_checkpoint(tmp_path / "today.safetensors", today, **common)
    scale = today.head.feature_scale
    moved = {**zoo.CONFIGS["small_gsop2"]["kwargs"]["head_kwargs"], "feature_scale": 3 * scale}
    monkeypatch.setitem(zoo.CONFIGS["small_gsop2"]["kwargs"], "head_kwargs", moved)
    ck = load_checkpoint(written)
    assert ck.model.head.feature_scale == scale
    torch.testing.assert_close(ck.model(x), today(x))
