"""gsop convert: files laid out as the authors' code writes them, with
random weights, become checkpoints whose outputs equal gsoplib's code-faithful networks.

The authors' layout is written here from section 11's key names, independently of
gsoplib.convert's tables; GSoP-Net2's logits are also computed here straight from the head's
square root, vectorised column by column as the GSoP repo's Triuvec does, with the fc weights in
the authors' order.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from authors_files import (
    GSOP_CODE,
    MPNCOV_CODE,
    authors_layout,
    column_major_fc,
    main_py_file,
    randomise,
)
from torch import nn

from gsoplib.checkpoint import load_checkpoint
from gsoplib.convert import ConversionError, convert, convert_state_dict, imagenet_classes
from gsoplib.models import create_model

ROOT = Path(__file__).resolve().parents[1]
@pytest.fixture(scope="module")
def gsop1():
    torch.manual_seed(1)
    return randomise(create_model("resnet50_gsop1", **GSOP_CODE), 1)


@pytest.fixture(scope="module")
def gsop2():
    torch.manual_seed(2)
    return randomise(create_model("resnet50_gsop2", **GSOP_CODE,
                                   head_kwargs={"rd_channels": 256, "iters": 3}), 2)


@pytest.fixture(scope="module")
def image():
    return torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0),
                       dtype=torch.float64)


def _logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.double()(x)


def test_the_layout_written_here_is_section_11s(gsop1, gsop2):
    state1, state2 = authors_layout(gsop1), authors_layout(gsop2)
    for key in ("conv1.weight", "bn1.running_var", "layer1.2.conv_for_DR.weight",
                "layer1.2.bn_for_DR.bias", "layer2.3.row_bn.weight",
                "layer3.5.row_conv_group.weight", "layer4.2.fc_adapt_channels.bias",
                "layer4.0.downsample.0.weight", "layer4.0.downsample.1.running_mean",
                "fc.weight"):
        assert key in state1, key
    assert state1["layer3.5.row_conv_group.weight"].shape == (512, 1, 128, 1)  # 128 -> 4 x 128
    assert state1["fc.weight"].shape == (1000, 2048)
    assert state2["layer_reduce.weight"].shape == (256, 2048, 1, 1)
    assert "layer_reduce_bn.running_mean" in state2
    assert state2["fc.weight"].shape == (1000, 32896)
    assert not [k for k in state2 if k.startswith("layer4.2.conv_for_DR")]  # Net2: C,C,C,tick


def test_gsop_net1_from_main_py_equals_the_code_faithful_network(tmp_path, gsop1, image):
    src = main_py_file(tmp_path / "gsopnet1.pth.tar", authors_layout(gsop1))
    out = convert(src, "gsop-net", "resnet50_gsop1", tmp_path / "gsop1.safetensors")
    ck = load_checkpoint(out)
    torch.testing.assert_close(_logits(ck.model, image), _logits(gsop1, image),
                               rtol=1e-12, atol=1e-12)
    kwargs = ck.meta["model"]["kwargs"]
    assert kwargs["block_kwargs"] == GSOP_CODE["block_kwargs"]
    assert kwargs["last_stride"] == 1
    # The same weights in the paper's network (no leading ReLU, stride-1 reduction) load
    # strictly and compute something else: why the choices are recorded.
    paper = create_model("resnet50_gsop1", last_stride=1)
    paper.load_state_dict(ck.model.state_dict())
    assert not torch.allclose(_logits(paper.eval(), image), _logits(gsop1, image), rtol=1e-3)
    data = ck.meta["data"]
    assert ck.input_size == (224, 224) and ck.resize == 256
    assert ck.mean == (0.485, 0.456, 0.406) and ck.std == (0.229, 0.224, 0.225)
    assert len(ck.classes) == 1000 and ck.classes[:2] == ["tench", "goldfish"]
    assert data["name"] == "imagenet"
    origin = ck.meta["train"]["converted_from"]
    assert origin["source"] == "gsop-net" and origin["epoch"] == 100
    assert origin["best_prec1"] == pytest.approx(77.98)


def test_gsop_net2_column_major_head_gives_the_authors_logits(tmp_path, gsop2, image):
    state = authors_layout(gsop2)
    fc_authors = column_major_fc(state["fc.weight"], 256)
    state["fc.weight"] = fc_authors
    torch.save(state, tmp_path / "gsopnet2.pth")
    ck = load_checkpoint(convert(tmp_path / "gsopnet2.pth", "gsop-net", "resnet50_gsop2",
                                 tmp_path / "gsop2.safetensors"))
    model = ck.model.double()
    roots = []
    handle = model.head.pool.tap_cov_sqrt.register_forward_hook(lambda m, a, o: roots.append(o))
    try:
        logits = _logits(model, image)
    finally:
        handle.remove()
    # Triuvec: the upper triangle's ones, transposed, flattened; the input at those places.
    mask = torch.ones(256, 256).triu().t().reshape(-1).nonzero().squeeze(1)
    features = roots[0].reshape(1, -1)[:, mask]
    authors = features @ fc_authors.double().t() + state["fc.bias"].double()
    torch.testing.assert_close(logits, authors, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(logits, _logits(gsop2, image), rtol=1e-9, atol=1e-9)
    # Read row by row, the authors' weights would give other logits (the permutation matters).
    rows, cols = torch.triu_indices(256, 256)
    row_major = roots[0][:, rows, cols].reshape(1, -1)
    unpermuted = row_major @ fc_authors.double().t() + state["fc.bias"].double()
    assert (unpermuted - authors).abs().max() > 0.1 * authors.abs().max()


@pytest.mark.parametrize("name", ["resnet50_isqrt", "resnet101_isqrt"])
def test_fast_mpn_cov_plain_state_dict_from_torch_0_4(tmp_path, name, image):
    torch.manual_seed(3)
    reference = randomise(create_model(name, **MPNCOV_CODE), 3)
    state = authors_layout(reference, drop_batches_tracked=True)
    assert "layer3.22.conv3.weight" in state or name == "resnet50_isqrt"
    torch.save(state, tmp_path / f"mpncov{name}.pth")
    ck = load_checkpoint(convert(tmp_path / f"mpncov{name}.pth", "fast-mpn-cov", name,
                                 tmp_path / "out.safetensors"))
    torch.testing.assert_close(_logits(ck.model, image), _logits(reference, image),
                               rtol=1e-12, atol=1e-12)
    assert ck.meta["model"]["kwargs"]["head_kwargs"] == {"rd_channels": 256, "iters": 5}
    assert int(ck.model.stem[1].num_batches_tracked) == 0


@pytest.mark.parametrize(
    "key",
    ["conv1.weight", "layer1.2.conv_for_DR.weight", "layer2.3.bn_for_DR.running_var",
     "layer3.5.row_conv_group.bias", "layer4.2.fc_adapt_channels.weight",
     "layer2.0.downsample.1.weight", "fc.bias"],
)
def test_every_authors_key_is_consumed(gsop1, key):
    state = authors_layout(gsop1)
    del state[key]
    with pytest.raises(ConversionError, match=f"missing {key.replace('.', '[.]')}"):
        convert_state_dict(state, "gsop-net", "resnet50_gsop1")


def _one_sentence(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message and message.endswith(".")
    return message


def test_refusals_name_what_did_not_fit(tmp_path, gsop1, gsop2):
    state = authors_layout(gsop1)
    extra = {**state, "layer2.3.conv_for_DR_spatial.weight": torch.zeros(128, 512, 1, 1)}
    with pytest.raises(ConversionError) as error:
        convert_state_dict(extra, "gsop-net", "resnet50_gsop1")
    assert "unexpected layer2.3.conv_for_DR_spatial.weight" in _one_sentence(error)
    assert "position-wise" in str(error.value)

    net2 = authors_layout(gsop2)
    net2["fc.weight"] = torch.zeros(1000, 2048)
    with pytest.raises(ConversionError) as error:
        convert_state_dict(net2, "gsop-net", "resnet50_gsop2")
    assert "wrong shape fc.weight (1000, 2048) (expected (1000, 32896))" in _one_sentence(error)

    with pytest.raises(ConversionError) as error:  # a Net2 file called Net1
        convert_state_dict(authors_layout(gsop2), "gsop-net", "resnet50_gsop1")
    assert "unexpected layer_reduce.weight" in _one_sentence(error)

    with pytest.raises(ConversionError, match="not in fast-mpn-cov's releases"):
        convert_state_dict(state, "fast-mpn-cov", "resnet50_gsop1")


def test_another_architecture_is_refused(tmp_path):
    import torchvision

    path = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    with pytest.raises(ConversionError) as error:
        convert(path, "gsop-net", "resnet50_gsop1", tmp_path / "out.safetensors")
    assert "residual stages of [2, 2, 2, 2] blocks" in _one_sentence(error)
    assert "another architecture" in str(error.value)
    torch.save(torchvision.models.resnet50().state_dict(), path)
    with pytest.raises(ConversionError) as error:  # a plain ResNet-50: no GSoP blocks
        convert(path, "gsop-net", "resnet50_gsop1", tmp_path / "out.safetensors")
    assert "missing layer1.2.bn_for_DR.bias" in _one_sentence(error)
    assert not (tmp_path / "out.safetensors").exists()


class _RunsCode:
    """A pickle payload that would create a folder when unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def test_a_pickle_with_code_is_refused_and_nothing_runs(tmp_path, gsop1):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pth.tar"
    torch.save({"state_dict": authors_layout(gsop1), "extra": _RunsCode(marker)}, path)
    with pytest.raises(ConversionError) as error:
        convert(path, "gsop-net", "resnet50_gsop1", tmp_path / "out.safetensors")
    assert "code a pickle would run" in _one_sentence(error)
    assert "mkdir" in str(error.value)
    assert not marker.exists()


def test_corrupt_truncated_missing_and_non_state_dict_files(tmp_path):
    good = tmp_path / "good.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, good)
    blob = good.read_bytes()
    cases = {
        "truncated.pth": blob[: len(blob) // 2],
        "noise.pth": bytes(range(256)) * 8,
        "empty.pth": b"",
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ConversionError) as error:
            convert(tmp_path / name, "gsop-net", "resnet50_gsop1", tmp_path / "o.safetensors")
        assert "corrupt or truncated" in _one_sentence(error), name
    torch.save([torch.zeros(2)], tmp_path / "list.pth")
    with pytest.raises(ConversionError) as error:
        convert(tmp_path / "list.pth", "gsop-net", "resnet50_gsop1", tmp_path / "o.safetensors")
    assert "holds a list that is not a state dict" in _one_sentence(error)
    torch.save({"epoch": 3, "conv1.weight": torch.zeros(1)}, tmp_path / "mixed.pth")
    with pytest.raises(ConversionError) as error:
        convert(tmp_path / "mixed.pth", "gsop-net", "resnet50_gsop1", tmp_path / "o.safetensors")
    assert "not tensors (epoch)" in _one_sentence(error)
    with pytest.raises(ConversionError) as error:
        convert(tmp_path / "absent.pth", "gsop-net", "resnet50_gsop1", tmp_path / "o.safetensors")
    assert "does not exist" in _one_sentence(error)


def test_imagenet_classes_come_from_torchvision_offline():
    classes = imagenet_classes()
    assert len(classes) == 1000 and len(set(classes)) == 1000
    assert classes[0] == "tench" and classes[-1] == "toilet tissue"


def _gsop(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "gsoplib.cli", *args], capture_output=True,
                          text=True, env=env, timeout=300)


def test_gsop_convert_command(tmp_path, gsop1):
    src = main_py_file(tmp_path / "gsopnet1.pth.tar", authors_layout(gsop1))
    out = tmp_path / "gsop1.safetensors"
    done = _gsop("convert", str(src), "--from", "gsop-net", "--model", "resnet50_gsop1",
                 "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert str(out) in done.stdout
    assert load_checkpoint(out).model_name == "resnet50_gsop1"
    failed = _gsop("convert", str(tmp_path / "none.pth"), "--from", "fast-mpn-cov", "--model",
                   "resnet50_isqrt", "--out", str(out))
    assert failed.returncode == 2
    lines = failed.stderr.strip().splitlines()
    assert len(lines) == 1 and "none.pth does not exist" in lines[0]
