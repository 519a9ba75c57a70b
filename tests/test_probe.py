"""probe(model, images) -> Inspection on small self-made networks with the library's tap names,
and on every zoo variant once gsoplib.models exists."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import ImageOps
from torch import nn

from gsoplib.heads.mixture import GatedMixtureHead
from gsoplib.ops import covariance, position_covariance, sqrtm_newton_schulz
from gsoplib.probe import Inspection, block_kind, probe, probe_image
from gsoplib.taps import Tap

# --------------------------------------------------------------------------------------------
# Small networks whose blocks call taps with the names of gsoplib/taps.py
# --------------------------------------------------------------------------------------------


class ToyChannel(nn.Module):
    """A GSoP-like channel block: reduce, covariance, row-BN, row conv, sigmoid, x * w."""

    def __init__(self, channels: int, reduced: int = 4) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, reduced, 1)
        self.row_bn = nn.BatchNorm2d(reduced)
        self.row_conv = nn.Conv2d(reduced, channels, (reduced, 1), groups=1)
        for name in ("tap_input", "tap_cov", "tap_cov_bn", "tap_channel_weights", "tap_output"):
            setattr(self, name, Tap(name))

    def forward(self, x):
        x = self.tap_input(x)
        cov = self.tap_cov(covariance(self.reduce(x)))
        cov = self.tap_cov_bn(self.row_bn(cov.unsqueeze(-1)))
        w = self.tap_channel_weights(torch.sigmoid(self.row_conv(cov)))
        return self.tap_output(x * w)


class ToyPosition(nn.Module):
    """A GSoP-like position block on a 4x4 pooled map."""

    def __init__(self, channels: int, side: int = 4) -> None:
        super().__init__()
        self.side = side
        self.reduce = nn.Conv2d(channels, 4, 1)
        self.fc = nn.Linear(side * side, side * side)
        for name in ("tap_input", "tap_pos_cov", "tap_pos_weights_pooled", "tap_pos_weights",
                     "tap_output"):
            setattr(self, name, Tap(name))

    def forward(self, x):
        x = self.tap_input(x)
        pooled = F.adaptive_avg_pool2d(self.reduce(x), self.side)
        cov = self.tap_pos_cov(position_covariance(pooled))
        w = torch.sigmoid(self.fc(cov.diagonal(dim1=1, dim2=2)))
        w = self.tap_pos_weights_pooled(w.view(-1, 1, self.side, self.side))
        w = self.tap_pos_weights(F.interpolate(w, size=x.shape[-2:], mode="bilinear"))
        return self.tap_output(x * w)


class ToySE(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fc = nn.Conv2d(channels, channels, 1)
        self.tap_input, self.tap_channel_weights, self.tap_output = (
            Tap("tap_input"), Tap("tap_channel_weights"), Tap("tap_output"))

    def forward(self, x):
        x = self.tap_input(x)
        w = self.tap_channel_weights(torch.sigmoid(self.fc(x.mean((2, 3), keepdim=True))))
        return self.tap_output(x * w)


class Residual(nn.Module):
    """conv, then the attention block, then an in-place residual add (as a bottleneck does)."""

    def __init__(self, channels: int, block: nn.Module, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride, 1)
        self.bn = nn.BatchNorm2d(channels)
        self.attn = block
        self.down = nn.AvgPool2d(stride) if stride > 1 else nn.Identity()

    def forward(self, x):
        out = self.attn(self.bn(self.conv(x)))
        out += self.down(x)
        return F.relu(out, inplace=True)


class ToyISqrtHead(nn.Module):
    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.tap_cov, self.tap_cov_sqrt = Tap("tap_cov"), Tap("tap_cov_sqrt")
        self.fc = nn.Linear(channels * channels, num_classes)

    def forward(self, x, return_aux=False):
        root = self.tap_cov_sqrt(sqrtm_newton_schulz(self.tap_cov(covariance(x)), iters=3))
        logits = self.fc(root.flatten(1))
        return (logits, logits.new_zeros(())) if return_aux else logits


class GapHead(nn.Module):
    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x, return_aux=False):
        logits = self.fc(x.mean((2, 3)))
        return (logits, logits.new_zeros(())) if return_aux else logits


C, CLASSES, N_COMPONENTS, K = 8, 5, 4, 2


class ToyNet(nn.Module):
    """stem -> layer1 (channel block) -> layer2 (position block, stride 2) -> layer3 (SE) -> head.

    head: 'gap', 'isqrt' or 'mixture' (the real GM-SOP head, 4 components, top 2).
    blocks=False gives the same network without any tap.
    """

    def __init__(self, head: str = "isqrt", blocks: bool = True, in_chans: int = 1) -> None:
        super().__init__()
        pick = (lambda b: b) if blocks else (lambda b: nn.Identity())
        self.stem = nn.Sequential(nn.Conv2d(in_chans, C, 3, 1, 1), nn.BatchNorm2d(C), nn.ReLU())
        self.layer1 = Residual(C, pick(ToyChannel(C)))
        self.layer2 = Residual(C, pick(ToyPosition(C)), stride=2)
        self.layer3 = Residual(C, pick(ToySE(C)))
        if head == "isqrt" and blocks:
            self.head = ToyISqrtHead(C, CLASSES)
        elif head == "mixture" and blocks:
            self.head = GatedMixtureHead(C, "sop", N_COMPONENTS, K, num_classes=CLASSES,
                                         sop_channels=(6,), gate_branch="gap")
        else:
            self.head = GapHead(C, CLASSES)

    def forward(self, x, return_aux=False):
        return self.head(self.layer3(self.layer2(self.layer1(self.stem(x)))), return_aux)


def toy_net(head: str = "isqrt", blocks: bool = True, in_chans: int = 1) -> ToyNet:
    torch.manual_seed(0)
    model = ToyNet(head, blocks, in_chans)
    # A few training steps' worth of BN statistics, so eval differs from train.
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(8, in_chans, 16, 16))
    return model.eval()


def hook_count(model: nn.Module) -> int:
    """Hooks on the model's modules plus the process-wide module hooks."""
    glob = nn.modules.module
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
        + len(m._backward_pre_hooks)
        for m in model.modules()
    ) + len(glob._global_forward_hooks) + len(glob._global_forward_pre_hooks) + len(
        glob._global_backward_hooks) + len(glob._global_backward_pre_hooks)


@pytest.fixture
def images() -> torch.Tensor:
    return torch.randn(3, 1, 16, 16)


# --------------------------------------------------------------------------------------------
# Keys, shapes, kinds, order
# --------------------------------------------------------------------------------------------


def test_records_keyed_by_module_path_in_network_order_with_kinds_and_shapes(images):
    insp = probe(toy_net("isqrt"), images)
    assert list(insp.blocks) == ["layer1.attn", "layer2.attn", "layer3.attn", "head"]
    assert [r.kind for r in insp.blocks.values()] == ["gsop_channel", "gsop_position", "se",
                                                       "isqrt_cov"]
    ch = insp["layer1.attn"]
    assert list(ch.tensors) == ["tap_input", "tap_cov", "tap_cov_bn", "tap_channel_weights",
                                "tap_output"]
    assert ch["tap_input"].shape == (3, C, 16, 16)
    assert ch["tap_cov"].shape == (3, 4, 4)
    assert ch["tap_channel_weights"].shape == (3, C, 1, 1)
    pos = insp["layer2.attn"]
    assert pos["tap_pos_cov"].shape == (3, 16, 16)
    assert pos["tap_pos_weights_pooled"].shape == (3, 1, 4, 4)
    assert pos["tap_pos_weights"].shape == (3, 1, 8, 8)
    head = insp["head"]
    assert head["tap_cov"].shape == head["tap_cov_sqrt"].shape == (3, C, C)
    assert head.module_type == "ToyISqrtHead"
    assert insp.logits.shape == insp.probabilities.shape == (3, CLASSES)
    assert insp.inputs.shape == (3, 1, 16, 16)
    assert all(t.device.type == "cpu" for r in insp.blocks.values() for t in r.tensors.values())


def test_block_kind_reads_the_tap_names():
    assert block_kind(["tap_input", "tap_cov", "tap_cov_bn", "tap_channel_weights"]) == \
        "gsop_channel"
    assert block_kind(["tap_pos_cov", "tap_pos_weights"]) == "gsop_position"
    assert block_kind(["tap_channel_weights", "tap_pos_weights"]) == "cbam"
    assert block_kind(["tap_input", "tap_channel_weights"]) == "se"
    assert block_kind(["tap_cov", "tap_cov_sqrt"]) == "isqrt_cov"
    assert block_kind(["tap_gate_weights", "tap_component_norms"]) == "gated_mixture"
    assert block_kind(["tap_component_norms"]) == "average_mixture"
    assert block_kind(["tap_something"]) == "custom"


def test_tensors_match_a_direct_computation(images):
    model = toy_net("isqrt")
    insp = probe(model, images)
    block = model.layer1.attn
    with torch.no_grad():
        x = model.layer1.bn(model.layer1.conv(model.stem(images)))
        cov = covariance(block.reduce(x))
        w = torch.sigmoid(block.row_conv(block.row_bn(cov.unsqueeze(-1))))
    rec = insp["layer1.attn"]
    torch.testing.assert_close(rec["tap_input"], x)
    torch.testing.assert_close(rec["tap_cov"], cov)
    torch.testing.assert_close(rec["tap_channel_weights"], w)
    # The residual add runs in place on the block's output: the tap must hold a copy.
    torch.testing.assert_close(rec["tap_output"], x * w)


def test_channel_and_position_weights_lie_in_zero_one(images):
    insp = probe(toy_net(), images)
    for rec in insp.of_kind("gsop_channel", "se"):
        w = rec["tap_channel_weights"]
        assert ((w > 0) & (w < 1)).all(), rec.path
    w = insp["layer2.attn"]["tap_pos_weights"]
    assert ((w > 0) & (w < 1)).all()


# --------------------------------------------------------------------------------------------
# Hooks, modes and outputs untouched
# --------------------------------------------------------------------------------------------


def test_no_hook_remains_and_outputs_and_state_are_unchanged(images):
    model = toy_net("mixture")
    model.train()
    model.layer2.eval()  # a mixed state must come back as it was, module by module
    modes = {name: m.training for name, m in model.named_modules()}
    hooks_before = hook_count(model)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    model.eval()
    with torch.no_grad():
        expected = model(images)
    model.train()
    model.layer2.eval()

    insp = probe(model, images)

    assert hook_count(model) == hooks_before == 0
    assert {name: m.training for name, m in model.named_modules()} == modes
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key  # eval: no BN statistics were updated
    torch.testing.assert_close(insp.logits, expected)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(images), expected)


class Boom(RuntimeError):
    pass


def test_hooks_removed_and_mode_restored_when_the_forward_raises(images):
    model = toy_net("isqrt")

    def explode(module, args, output):
        raise Boom("forward failed after some taps fired")

    handle = model.layer3.register_forward_hook(explode)
    model.train()
    with pytest.raises(Boom):
        probe(model, images)
    handle.remove()
    assert hook_count(model) == 0
    assert all(m.training for m in model.modules())


def test_requires_grad_of_parameters_and_images_is_kept(images):
    model = toy_net("isqrt")
    model.stem.requires_grad_(False)
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    x = images.clone().requires_grad_(True)
    insp = probe(model, x)
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    assert x.requires_grad and x.grad is None
    assert not insp.inputs.requires_grad
    assert not any(t.requires_grad for r in insp.blocks.values() for t in r.tensors.values())


def test_a_model_that_does_not_return_logits_is_a_clear_error(images):
    class Features(nn.Module):
        def __init__(self):
            super().__init__()
            self.block = ToySE(1)

        def forward(self, x):
            return self.block(x)

    model = Features()
    with pytest.raises(TypeError, match=r"logits of shape \(B, num_classes\)"):
        probe(model, images)
    assert hook_count(model) == 0


# --------------------------------------------------------------------------------------------
# GM-SOP gate
# --------------------------------------------------------------------------------------------


def test_gated_mixture_is_one_record_with_exactly_k_gate_weights(images):
    insp = probe(toy_net("mixture"), images)
    mix = insp["head"]
    assert mix.kind == "gated_mixture"
    assert {"tap_gate_clean_logits", "tap_gate_noisy_logits", "tap_gate_indices",
            "tap_gate_weights", "tap_component_norms"} <= set(mix.tensors)
    assert "head.gate" not in insp.blocks  # the gate's taps are folded into its head
    w = mix["tap_gate_weights"]
    assert w.shape == (3, N_COMPONENTS)
    assert ((w != 0).sum(dim=1) == K).all()
    torch.testing.assert_close(w.sum(dim=1), torch.ones(3))
    idx = mix["tap_gate_indices"]
    assert idx.shape == (3, K)
    assert torch.equal(w.topk(K, dim=1).indices.sort(1).values, idx.sort(1).values)
    # eval: no noise, so the noisy logits are the clean ones
    torch.testing.assert_close(mix["tap_gate_noisy_logits"], mix["tap_gate_clean_logits"])
    assert mix["tap_component_norms"].shape == (3, K)


def test_mixture_components_know_which_images_they_saw(images):
    insp = probe(toy_net("mixture"), images)
    idx = insp["head"]["tap_gate_indices"]
    comps = insp.components("head")
    assert comps and all(c.kind == "isqrt_cov" and c.within == "head" for c in comps)
    assert [r.path for r in insp.parts()] == ["layer1.attn", "layer2.attn", "layer3.attn", "head"]
    for comp in comps:
        n = int(comp.path.split(".")[2])
        expected = (idx == n).any(dim=1).nonzero().flatten()
        assert torch.equal(comp.samples, expected)
        assert comp["tap_cov"].shape == (len(expected), 6, 6)
    # one image: only the K components it chose remain, each with one row
    for i in range(3):
        one = insp.image(i)
        chosen = sorted(one["head"]["tap_gate_indices"][0].tolist())
        paths = [r.path for r in one.components("head")]
        assert paths == sorted(paths, key=lambda p: list(insp.blocks).index(p))
        assert sorted(int(p.split(".")[2]) for p in paths) == chosen
        assert all(one[p]["tap_cov"].shape == (1, 6, 6) for p in paths)


# --------------------------------------------------------------------------------------------
# Predictions, selection, export, summaries
# --------------------------------------------------------------------------------------------


def test_probabilities_top_k_and_class_names(images):
    model = toy_net()
    insp = probe(model, images, top_k=3)
    torch.testing.assert_close(insp.probabilities.sum(1), torch.ones(3))
    for i, top in enumerate(insp.top):
        assert len(top) == 3
        assert top[0].index == int(insp.logits[i].argmax())
        assert top[0].name == f"class {top[0].index}"
        assert [p.probability for p in top] == sorted((p.probability for p in top), reverse=True)
    names = list("abcde")
    named = probe(model, images, class_names=names)
    assert named.top[0][0].name == names[named.top[0][0].index]
    assert len(named.top[0]) == 5
    with pytest.raises(ValueError, match="class_names has 2 names but the model has 5 classes"):
        probe(model, images, class_names=["a", "b"])


def test_image_selects_one_image_everywhere(images):
    insp = probe(toy_net(), images)
    one = insp.image(-1)
    assert one.batch_size == 1 and one.logits.shape == (1, CLASSES)
    torch.testing.assert_close(one.logits[0], insp.logits[2])
    torch.testing.assert_close(one["head"]["tap_cov"][0], insp["head"]["tap_cov"][2])
    assert one["layer1.attn"]["tap_input"].shape == (1, C, 16, 16)
    assert one.top == [insp.top[2]]
    with pytest.raises(IndexError, match="image 3 is out of range for a batch of 3"):
        insp.image(3)


def test_taps_selector_reads_only_what_was_asked(images):
    model = toy_net()
    by_name = probe(model, images, taps=["tap_channel_weights"])
    assert list(by_name.blocks) == ["layer1.attn", "layer3.attn"]
    assert all(list(r.tensors) == ["tap_channel_weights"] for r in by_name.blocks.values())
    by_path = probe(model, images, taps="layer2")
    assert list(by_path.blocks) == ["layer2.attn"]
    assert len(by_path["layer2.attn"].tensors) == 5
    with pytest.raises(ValueError, match=r"'layer9' matches no tap; use a tap name \(.*"
                                         r"tap_channel_weights.*\) or a module path \(.*layer1"):
        probe(model, images, taps=["layer9"])
    assert hook_count(model) == 0


def test_a_model_without_second_order_parts_is_probed_and_says_so(images):
    model = toy_net(blocks=False)
    insp = probe(model, images)
    assert not insp.has_second_order and insp.blocks == {}
    assert insp.logits.shape == (3, CLASSES)
    assert "ToyNet has no second-order parts" in insp.summary()
    assert insp.image(0).blocks == {}


def test_summary_names_each_block_with_its_statistics(images):
    insp = probe(toy_net("mixture"), images)
    lines = insp.summary().splitlines()
    assert [line.split(" ")[0] for line in lines] == ["layer1.attn", "layer2.attn",
                                                       "layer3.attn", "head"]
    w = insp["layer1.attn"]["tap_channel_weights"].flatten(1)
    assert f"max {w.max():.3f}" in lines[0]
    assert f"largest {int(w.mean(0).argmax())} (" in lines[0]
    assert "position weights" in lines[1] and "peak at" in lines[1]
    chosen = insp.image(1)["head"]["tap_gate_indices"][0].tolist()
    assert f"gate chose {K}: {chosen[0]} (" in insp.image(1)["head"].summary()


def test_numpy_npz_and_json_exports(images):
    insp = probe(toy_net("mixture"), images, class_names=list("abcde"))
    arrays = insp.to_numpy()
    assert isinstance(arrays["layer1.attn/tap_cov"], np.ndarray)
    assert arrays["head/tap_gate_weights"].shape == (3, N_COMPONENTS)
    buffer = io.BytesIO()
    insp.to_npz(buffer)
    buffer.seek(0)
    with np.load(buffer) as loaded:
        np.testing.assert_array_equal(loaded["logits"], insp.logits.numpy())
        np.testing.assert_array_equal(loaded["layer2.attn/tap_pos_weights"],
                                      insp["layer2.attn"]["tap_pos_weights"].numpy())
        assert list(loaded["class_names"]) == list("abcde")
        comp = insp.components("head")[0]
        np.testing.assert_array_equal(loaded[f"{comp.path}/samples"], comp.samples.numpy())
    data = json.loads(insp.to_json(max_values=64))
    assert data["predictions"][0][0]["name"] in "abcde"
    blocks = {b["path"]: b for b in data["blocks"]}
    assert blocks["head"]["kind"] == "gated_mixture"
    assert blocks["head"]["tensors"]["tap_gate_weights"]["values"] == \
        insp["head"]["tap_gate_weights"].tolist()
    big = blocks["layer1.attn"]["tensors"]["tap_input"]
    assert "values" not in big and big["shape"] == [3, C, 16, 16]
    assert big["max"] == pytest.approx(insp["layer1.attn"]["tap_input"].max().item())


def test_bad_images_are_clear_errors():
    model = toy_net()
    with pytest.raises(ValueError, match="normalised float tensor"):
        probe(model, torch.zeros(1, 1, 16, 16, dtype=torch.uint8))
    with pytest.raises(TypeError, match="images must be a torch.Tensor"):
        probe(model, np.zeros((1, 1, 16, 16)))
    single = probe(model, torch.randn(1, 16, 16))
    assert single.batch_size == 1
    assert isinstance(single, Inspection)


def test_a_module_run_twice_keeps_its_last_call():
    block = ToySE(2)

    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.block = block
            self.fc = nn.Linear(2, 3)

        def forward(self, x):
            return self.fc(self.block(self.block(x)).mean((2, 3)))

    x = torch.rand(2, 2, 5, 5)
    insp = probe(Twice(), x)
    rec = insp["block"]
    assert rec.calls == 2
    with torch.no_grad():
        torch.testing.assert_close(rec["tap_input"], block(x))


# --------------------------------------------------------------------------------------------
# From a checkpoint and an image
# --------------------------------------------------------------------------------------------


def _checkpoint(tmp_path):
    from gsoplib.checkpoint import Checkpoint

    meta = {"model": {"name": "toy", "kwargs": {}},
            "data": {"classes": list("vwxyz"), "in_chans": 1, "input_size": [16, 16],
                     "mean": [0.25], "std": [0.5]}}
    return Checkpoint(toy_net("isqrt"), meta, tmp_path / "toy.safetensors")


def test_probe_image_fits_normalises_and_names_classes(tmp_path):
    from PIL import Image

    ck = _checkpoint(tmp_path)
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (40, 24, 3), dtype=np.uint8), "RGB")
    insp = probe_image(ck, rgb)
    gray = torch.from_numpy(np.asarray(
        ImageOps.fit(rgb.convert("L"), (16, 16), Image.Resampling.LANCZOS), dtype=np.float32))
    x = (gray / 255 - 0.25) / 0.5
    torch.testing.assert_close(insp.inputs, x.view(1, 1, 16, 16))
    with torch.no_grad():
        torch.testing.assert_close(insp.logits, ck.model(x.view(1, 1, 16, 16)))
    assert insp.class_names == list("vwxyz") and insp.top[0][0].name in "vwxyz"
    path = tmp_path / "img.png"
    rgb.save(path)
    torch.testing.assert_close(probe_image(ck, path).logits, insp.logits)
    pixels = torch.randint(0, 256, (2, 1, 16, 16), dtype=torch.uint8)
    assert probe_image(ck, pixels, taps="head").batch_size == 2


def test_probe_image_refuses_what_it_cannot_read(tmp_path):
    ck = _checkpoint(tmp_path)
    with pytest.raises(ValueError, match=r"uint8 pixels must be \(1, 16, 16\)"):
        probe_image(ck, torch.zeros(3, 16, 16, dtype=torch.uint8))
    bad = tmp_path / "not-an-image.png"
    bad.write_text("hello")
    with pytest.raises(ValueError, match="is not an image in a supported format"):
        probe_image(ck, bad)
    with pytest.raises(TypeError, match="image must be a PIL image"):
        probe_image(ck, 3.0)
