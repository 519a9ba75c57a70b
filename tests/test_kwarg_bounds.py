"""Every keyword argument a checkpoint's metadata may set is declared, bounded and checked
before its model is built (gsoplib.models.kwarg_bounds, checkpoint loading step 3)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
import safetensors.torch
import torch

from gsoplib import checkpoint
from gsoplib.blocks import BLOCKS
from gsoplib.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from gsoplib.models import create_model, list_models, model_kwargs
from gsoplib.models.backbones import backbone_model
from gsoplib.models.kwarg_bounds import (
    BACKBONE_BOUNDS,
    BLOCK_BOUNDS,
    HEAD_BOUNDS,
    MAX_COMPONENTS,
    MAX_DEPTH,
    MAX_ITERS,
    NOT_FROM_FILES,
    RESNET_BOUNDS,
    KwargError,
    accepted,
    check_model_kwargs,
)
from gsoplib.models.resnet import HEADS, ResNet

KWARGS = {"num_classes": 3, "in_chans": 1, "widths": [4, 4, 4], "stem_width": 4,
          "head_kwargs": {"rd_channels": 4}}


@pytest.fixture(scope="module")
def gsop2(tmp_path_factory) -> Path:
    """A tiny untrained small_gsop2 (iSQRT-COV head: iters, feature scale...) on 8x8 images."""
    torch.manual_seed(0)
    return save_checkpoint(
        tmp_path_factory.mktemp("bounds") / "gsop2.safetensors",
        create_model("small_gsop2", **KWARGS).eval(), model_name="small_gsop2",
        model_kwargs=KWARGS, classes=["a", "b", "c"], input_size=(8, 8), in_chans=1,
        mean=(0.5,), std=(0.25,), dataset="toy",
    )


def _with_head_kwargs(source: Path, target: Path, **changes) -> Path:
    """``source`` with its metadata's head kwargs changed; weights and checksum untouched."""
    tensors = safetensors.torch.load_file(str(source))
    with safetensors.safe_open(str(source), "pt") as f:
        meta = json.loads(f.metadata()[checkpoint.METADATA_KEY])
    meta["model"]["kwargs"]["head_kwargs"].update(changes)
    target.write_bytes(safetensors.torch.save(
        tensors, metadata={checkpoint.METADATA_KEY: json.dumps(meta)}))
    return target


def test_every_zoo_configuration_is_within_the_bounds():
    for name in list_models():
        check_model_kwargs(model_kwargs(name))
    check_model_kwargs(model_kwargs("resnet18_gmsop_128_32"))  # GM-SOP's largest mixture


@pytest.mark.parametrize("factory,bounds", [
    (ResNet, RESNET_BOUNDS), (backbone_model, BACKBONE_BOUNDS),
    *[(cls, HEAD_BOUNDS) for cls in HEADS.values()],
    *[(cls, BLOCK_BOUNDS) for cls in dict.fromkeys(BLOCKS.values())],
], ids=lambda v: getattr(v, "__name__", "bounds"))
def test_every_constructor_argument_is_declared_or_said_why_not(factory, bounds):
    """A new argument on a head, block or the ResNet fails here until it has a bound: a file
    could otherwise set it unchecked, or could not set it at all."""
    undeclared = [p for p in accepted(factory) if p not in bounds]
    assert not undeclared, f"{factory.__name__}: {undeclared} have no bound"
    assert set(NOT_FROM_FILES) >= {"act_layer", "weights"}


@pytest.mark.parametrize("value,expected", [
    (10**9, f"a whole number from 1 to {MAX_ITERS}"),
    (-3, f"a whole number from 1 to {MAX_ITERS}"),
    ("five", f"a whole number from 1 to {MAX_ITERS}"),
    (3.0, "a whole number"),
    (True, "a whole number"),
])
def test_hostile_iterations_are_one_checkpoint_error_naming_the_field(value, expected, gsop2,
                                                                     tmp_path):
    """iters=10**9 loaded and its first forward pass never ended; -3 and "five" escaped as a
    bare ValueError and a TypeError."""
    path = _with_head_kwargs(gsop2, tmp_path / "hostile.safetensors", iters=value)
    start = time.perf_counter()
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    elapsed = time.perf_counter() - start
    message = str(info.value)
    assert elapsed < 1.0, f"refusing took {elapsed:.2f} s"
    assert "model.kwargs.head_kwargs.iters" in message and expected in message, message
    assert "\n" not in message and str(path) in message


def test_an_unknown_argument_is_refused_not_passed_through(gsop2, tmp_path):
    path = _with_head_kwargs(gsop2, tmp_path / "unknown.safetensors", iterations=5)
    with pytest.raises(CheckpointError, match=r"head_kwargs.iterations is not an argument "
                                              r"head 'isqrt' takes \(it takes rd_channels, iters"):
        load_checkpoint(path)


def test_a_value_within_its_bound_loads_and_changes_what_is_computed(gsop2, tmp_path):
    """The bounds refuse only what is outside them: iters 1 rebuilds a head that computes
    something else from the same weights."""
    x = torch.randn(2, 1, 8, 8)
    base = load_checkpoint(gsop2).model(x)
    one = load_checkpoint(_with_head_kwargs(gsop2, tmp_path / "one.safetensors", iters=1))
    assert one.model.head.pool.iters == 1
    assert not torch.allclose(one.model(x), base)


@pytest.mark.parametrize("kwargs,field", [
    ({"layers": [10**7] * 3}, "model.kwargs.layers"),
    ({"layers": [MAX_DEPTH + 1] * 3}, "model.kwargs.layers"),
    ({"layers": [3, 3]}, "model.kwargs.widths"),
    ({"stem": "imagenet2"}, "model.kwargs.stem"),
    ({"blocks": "Q,-,-"}, "model.kwargs.blocks"),
    ({"where": 0}, "model.kwargs.where"),
    ({"omit_last_block": 1}, "model.kwargs.omit_last_block"),
    ({"block_kwargs": {"rd_channels": 0}}, "model.kwargs.block_kwargs.rd_channels"),
    ({"block_kwargs": {"act_layer": "ReLU"}}, "model.kwargs.block_kwargs.act_layer"),
    ({"block_kwargs": [{}, {"pool_size": 7}, {}]}, "model.kwargs.block_kwargs[1].pool_size"),
    ({"head": "gated_mixture", "head_kwargs": {"num_components": MAX_COMPONENTS + 1}},
     "model.kwargs.head_kwargs.num_components"),
    ({"head": "gated_mixture", "head_kwargs": {"gate": "switch"}},
     "model.kwargs.head_kwargs.gate"),
    ({"head": "gated_mixture", "head_kwargs": {"alpha": float("inf")}},
     "model.kwargs.head_kwargs.alpha"),
    ({"head": "gated_mixture", "head_kwargs": {"sop_channels": [64, -1]}},
     "model.kwargs.head_kwargs.sop_channels"),
    ({"head_kwargs": {"dropout": 1.5}}, "model.kwargs.head_kwargs.dropout"),
    ({"head_kwargs": []}, "model.kwargs.head_kwargs"),
    ({"widthz": [4, 4, 4]}, "model.kwargs.widthz"),
])
def test_each_kind_of_field_is_bounded(kwargs, field):
    with pytest.raises(KwargError) as info:
        check_model_kwargs(model_kwargs("small_gsop1", **kwargs))
    assert info.value.field == field, str(info.value)


def test_a_pretrained_backbone_file_may_not_name_a_weights_file():
    """A checkpoint's tensors are its weights; a path from a file is never read."""
    good = {"blocks": "C,C,C,√", "head": "isqrt", "last_stride": 1, "num_classes": 200}
    check_model_kwargs(good, backbone=True)
    with pytest.raises(KwargError, match="weights is not an argument a pretrained backbone"):
        check_model_kwargs({**good, "weights": "/etc/passwd"}, backbone=True)


def test_the_documentation_states_the_argument_bounds():
    page = Path(__file__).resolve().parent.parent / "docs" / "checkpoints.md"
    readme = " ".join(page.read_text().split())
    assert f"Newton-Schulz iterations 1 to {MAX_ITERS}" in readme
    assert f"1 to {MAX_DEPTH} residual blocks a stage" in readme
    assert f"1 to {MAX_COMPONENTS} mixture components" in readme
    assert re.search(r"an unknown one is refused", readme)


def test_training_refuses_arguments_its_checkpoint_could_not_be_loaded_with(tmp_path):
    """Hours of training would end in a file that loading refuses: the trainer says so first."""
    from gsoplib.train import TrainConfig, Trainer

    config = TrainConfig(
        model="small_gsop2", dataset="second_order", out_dir=str(tmp_path), recipe="fast",
        epochs=1, data_options={"num_train": 64, "num_test": 32}, device="cpu", progress=False,
        model_kwargs={"head_kwargs": {"iters": MAX_ITERS + 1}},
    )
    with pytest.raises(KwargError, match=r"model_kwargs.head_kwargs.iters 21; expected a whole "
                                         r"number from 1 to 20"):
        Trainer(config)
    assert not (tmp_path / "model.safetensors").exists()
