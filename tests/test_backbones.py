"""Second-order parts on pretrained torchvision (and timm) ResNets: the backbone's computation
kept where nothing was inserted, blocks where the paper puts them, fine-tuning, and checkpoints
that rebuild from their metadata."""

import math

import pytest
import torch
import torchvision
from torch import nn

from gsoplib.blocks import GSoPChannel
from gsoplib.checkpoint import load_checkpoint
from gsoplib.models import backbone_model, create_model
from gsoplib.train import TrainConfig, Trainer, read_jsonl


@pytest.fixture(scope="module")
def resnet50_file(tmp_path_factory):
    """A torchvision ResNet-50 state dict on disk, standing in for downloaded weights, with
    non-trivial BN statistics."""
    torch.manual_seed(0)
    net = torchvision.models.resnet50().eval()
    g = torch.Generator().manual_seed(1)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(0.1 * torch.randn(m.num_features, generator=g))
            m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=g))
    path = tmp_path_factory.mktemp("weights") / "resnet50.pth"
    torch.save(net.state_dict(), path)
    return path, net


@pytest.fixture(scope="module")
def image():
    return torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))


def _stage_outputs(stem, stages, x):
    out, x = [], stem(x)
    for stage in stages:
        x = stage(x)
        out.append(x)
    return out


@torch.no_grad()
def test_no_block_and_the_gap_head_is_the_torchvision_network(resnet50_file, image):
    path, reference = resnet50_file
    model = backbone_model("torchvision:resnet50", path).eval()
    assert torch.equal(model(image), reference(image))
    assert model.new_parameter_names() == []  # the pretrained classifier is kept


@torch.no_grad()
def test_blocks_go_after_the_last_bn_of_each_masked_stage(resnet50_file, image):
    path, reference = resnet50_file
    model = backbone_model("torchvision:resnet50", path, blocks="-,C,-,C", num_classes=7).eval()
    blocks = {n: m for n, m in model.named_modules() if isinstance(m, GSoPChannel)}
    assert sorted(blocks) == ["layer2.3.bn3.attn", "layer4.2.bn3.attn"]
    assert blocks["layer2.3.bn3.attn"].channels == 512
    ref_stem = nn.Sequential(reference.conv1, reference.bn1, reference.relu, reference.maxpool)
    ref = _stage_outputs(ref_stem, [reference.layer1, reference.layer2, reference.layer3,
                                    reference.layer4], image)
    ours = _stage_outputs(model.stem, [model.layer1, model.layer2, model.layer3, model.layer4],
                          image)
    assert torch.equal(ours[0], ref[0])  # layer1: nothing inserted
    assert not torch.allclose(ours[1], ref[1])  # layer2: x * weights before the residual add
    # The block sees bn3's output and its weights rescale it before the add: recompute layer2's
    # last unit by hand from the torchvision unit's parts.
    unit, x = reference.layer2[3], _stage_outputs(ref_stem, [reference.layer1,
                                                             reference.layer2[:3]], image)[1]
    branch = unit.bn3(unit.conv3(unit.relu(unit.bn2(unit.conv2(unit.relu(unit.bn1(
        unit.conv1(x))))))))
    expected = torch.relu(blocks["layer2.3.bn3.attn"](branch) + x)
    torch.testing.assert_close(ours[1], expected)
    assert model(image).shape == (1, 7)
    new = model.new_parameter_names()
    assert any(n.startswith("layer2.3.bn3.attn.") for n in new)
    assert any(n.startswith("head.") for n in new)
    assert not any(n.startswith("layer2.3.bn3.bn.") for n in new)  # bn3 itself is pretrained


@torch.no_grad()
def test_last_stride_one_doubles_the_last_map_with_the_same_weights(resnet50_file, image):
    path, _ = resnet50_file
    plain = backbone_model("torchvision:resnet50", path).eval()
    dense = backbone_model("torchvision:resnet50", path, last_stride=1).eval()
    assert plain.forward_features(image).shape[-1] == 2
    assert dense.forward_features(image).shape[-1] == 4
    for (name, a), (_, b) in zip(plain.state_dict().items(), dense.state_dict().items()):
        assert torch.equal(a, b), name
    head = backbone_model("torchvision:resnet50", path, blocks="C,C,C,√", last_stride=1,
                          num_classes=5)
    assert head.head.pool.iters == 5 and head.head.pool.rd_channels == 256
    assert head.eval()(image).shape == (1, 5)


def test_bad_backbones_and_weights_are_one_sentence(tmp_path):
    with pytest.raises(ValueError, match="does not exist; expected a torchvision state dict"):
        backbone_model("torchvision:resnet50", tmp_path / "resnet50.pth")
    torch.save(torchvision.models.resnet18().state_dict(), tmp_path / "resnet18.pth")
    with pytest.raises(ValueError, match="does not fit torchvision:resnet50"):
        backbone_model("torchvision:resnet50", tmp_path / "resnet18.pth")
    with pytest.raises(ValueError, match="is not SOURCE:NAME"):
        backbone_model("keras:resnet50")
    with pytest.raises(ValueError, match="torchvision ResNets are"):
        backbone_model("torchvision:vgg16")


def test_a_torchvision_resnet50_with_gsop_blocks_fine_tunes_and_reloads(resnet50_file,
                                                                      tmp_path):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", 8), ("val", 2)):
        for c, colour in enumerate([(200, 60, 60), (60, 200, 60), (60, 60, 200)]):
            folder = tmp_path / "data" / split / f"c{c}"
            folder.mkdir(parents=True)
            for i in range(n):
                pixels = np.asarray(colour)[None, None] + rng.normal(0, 40, (40, 40, 3))
                Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(folder / f"{i}.png")
    path, reference = resnet50_file
    config = TrainConfig(
        "torchvision:resnet50", "imagefolder", out_dir=str(tmp_path / "run"), recipe="finetune",
        weights=str(path), model_kwargs={"blocks": "C,C,C,C", "head": "isqrt", "last_stride": 1},
        data_root=str(tmp_path / "data"), data_options={"image_size": 32}, batch_size=8,
        epochs=2, lr=0.01, device="cpu", progress=False,
    )
    trainer = Trainer(config)
    factors = sorted(g["lr_factor"] for g in trainer.optimizer.param_groups)
    assert factors == [1.0, 5.0]  # fast-MPN-COV: the new parts' lr x5
    new = set(trainer.model.new_parameter_names())
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    assert torch.equal(before["stem.0.weight"], reference.conv1.weight)  # started pretrained
    trainer.fit()
    after = dict(trainer.model.named_parameters())
    assert all(torch.isfinite(p).all() for p in after.values())
    moved = [n for n in new if not torch.equal(before[n], after[n])]
    assert len(moved) > 0.9 * len(new)
    rows = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert all(math.isfinite(r["train_loss"]) and math.isfinite(r["test_loss"]) for r in rows)
    ck = load_checkpoint(tmp_path / "run" / "model.safetensors")
    kwargs = ck.meta["model"]["kwargs"]
    assert ck.model_name == "torchvision:resnet50" and "weights" not in kwargs
    assert (kwargs["blocks"], kwargs["head"], kwargs["last_stride"]) == ("C,C,C,C", "isqrt", 1)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ck.model(x), trainer.model.eval()(x))


def test_create_model_builds_a_backbone_by_name_without_weights():
    model = create_model("torchvision:resnet18", blocks="C,-,-,C", num_classes=3)
    assert [n for n, m in model.named_modules() if isinstance(m, GSoPChannel)] == [
        "layer1.1.bn2.attn", "layer4.1.bn2.attn"]  # basic blocks: after bn2


@torch.no_grad()
def test_a_timm_resnet_with_its_weights(tmp_path, image):
    timm = pytest.importorskip("timm", reason="timm (the optional extra) is not installed")
    import safetensors.torch

    torch.manual_seed(0)
    reference = timm.create_model("resnet26", pretrained=False).eval()
    path = tmp_path / "model.safetensors"
    safetensors.torch.save_file(reference.state_dict(), str(path))
    model = backbone_model("timm:resnet26", path).eval()
    assert torch.equal(model(image), reference(image))
    gsop = backbone_model("timm:resnet26", path, blocks="C,C,C,√", last_stride=1,
                          num_classes=4).eval()
    assert gsop(image).shape == (1, 4)
    with pytest.raises(ValueError, match="not a timm ResNet"):
        backbone_model("timm:vit_tiny_patch16_224")


def test_a_gated_mixture_head_on_a_backbone_returns_its_balance_loss():
    model = backbone_model("torchvision:resnet18", head="gated_mixture", num_classes=3,
                           last_stride=1,
                           head_kwargs={"component": "sop", "num_components": 4, "k": 2}).train()
    logits, aux = model(torch.randn(4, 3, 64, 64), return_aux=True)
    assert logits.shape == (4, 3) and torch.isfinite(aux) and aux > 0
