"""GSoP blocks and first-order baselines: shapes, gradients, hand-counted parameters, the paper's
Table 2, what each step computes, the code's quirks as options, and the factory."""

import pytest
import torch
from torch import nn

from gsoplib.blocks import (
    CBAM,
    SE,
    GSoPChannel,
    GSoPFusion,
    GSoPPosition,
    create_block,
    list_blocks,
)
from gsoplib.ops import covariance, position_covariance


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def recorded(module: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Run ``module`` once and return what each of its taps saw."""
    seen, handles = {}, []
    for name, sub in module.named_modules():
        if type(sub).__name__ == "Tap":
            handles.append(sub.register_forward_hook(
                lambda m, i, o, name=name: seen.__setitem__(name, o.detach().clone())))
    try:
        seen["out"] = module(x)
    finally:
        for h in handles:
            h.remove()
    return seen


BLOCK_KW = {
    "gsop": {"rd_channels": 8},
    "gsop_pos": {"rd_channels": 8, "pool_size": 4},
    "gsop_fuse_avg": {"rd_channels": 8, "pool_size": 4},
    "gsop_fuse_max": {"rd_channels": 8, "pool_size": 4},
    "gsop_fuse_cat": {"rd_channels": 8, "pool_size": 4},
    "se": {"rd_ratio": 1 / 4},
    "cbam": {"rd_ratio": 1 / 4},
}


def test_factory_knows_every_block_and_names_them_when_asked_for_another():
    assert set(list_blocks()) == set(BLOCK_KW)
    with pytest.raises(ValueError, match=r"unknown block 'gsop_fancy'\. .*Known blocks: gsop, "):
        create_block("gsop_fancy", 16)


@pytest.mark.parametrize("name", list(BLOCK_KW))
@pytest.mark.parametrize("size", [(7, 7), (28, 28), (9, 13), (1, 1)])
def test_every_block_keeps_the_shape_and_passes_gradients(name, size):
    block = create_block(name, 16, **BLOCK_KW[name])
    x = torch.randn(3, 16, *size, requires_grad=True)
    y = block(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    y.square().sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for pname, p in block.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname


def test_channel_block_parameters_match_a_hand_count():
    C, c = 48, 12
    # reduce conv + bias, BN, row BN, row conv (4 filters of length c per row) + bias, expand + bias
    expected = C * c + c + 2 * c + 2 * c + 4 * c * c + 4 * c + 4 * c * C + C
    assert n_params(GSoPChannel(C, c)) == expected


def test_position_block_parameters_match_a_hand_count():
    C, c, side = 48, 12, 5
    hw = side * side
    expected = C * c + c + 2 * c + 2 * hw + 4 * hw * hw + 4 * hw + 4 * hw * hw + hw
    assert n_params(GSoPPosition(C, c, side)) == expected


def test_first_order_parameters_match_a_hand_count():
    C, rd = 64, 4
    assert n_params(SE(C)) == 2 * C * rd + rd + C
    assert n_params(CBAM(C)) == 2 * C * rd + 7 * 7 * 2 + 2


@pytest.mark.parametrize("block, paper_millions", [
    (lambda: GSoPChannel(1024, 128), 0.72),
    (lambda: GSoPPosition(1024, 128, pool_size=8), 0.16),
])
def test_table2_block_parameters_at_conv4(block, paper_millions):
    measured = n_params(block()) / 1e6
    print(f"Table 2: {measured:.3f} M measured vs {paper_millions} M in the paper")
    assert measured == pytest.approx(paper_millions, rel=0.05)


def test_channel_block_computes_covariance_row_embedding_and_sigmoid_scaling():
    block = GSoPChannel(16, 6).eval()
    for bn in (block.reduce[1], block.embed.bn):
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
    x = torch.randn(2, 16, 7, 7)
    seen = recorded(block, x)
    z = block.reduce(x)
    torch.testing.assert_close(seen["tap_cov"], covariance(z))
    bn = block.embed.bn
    rows = (covariance(z) - bn.running_mean[:, None]) / torch.sqrt(bn.running_var[:, None] + bn.eps)
    rows = rows * bn.weight[:, None] + bn.bias[:, None]
    torch.testing.assert_close(seen["tap_cov_bn"], rows)
    # Row-wise conv: row i of the normalised covariance gets its own 4 filters of length c.
    w = block.embed.conv.weight.view(6, 4, 6)
    embedded = torch.einsum("bik,ijk->bij", rows, w).reshape(2, 24) + block.embed.conv.bias
    weights = torch.sigmoid(block.expand(embedded[:, :, None, None]))
    torch.testing.assert_close(seen["tap_channel_weights"], weights)
    assert ((weights > 0) & (weights < 1)).all()
    torch.testing.assert_close(seen["out"], x * weights)


def test_position_block_computes_pooled_position_covariance_and_upsampled_weights():
    block = GSoPPosition(16, 6, pool_size=4).eval()
    x = torch.randn(2, 16, 12, 12)
    seen = recorded(block, x)
    pooled = torch.nn.functional.adaptive_avg_pool2d(block.reduce(x), 4)
    torch.testing.assert_close(seen["tap_pos_cov"], position_covariance(pooled))
    assert seen["tap_pos_cov"].shape == (2, 16, 16)
    assert seen["tap_pos_weights_pooled"].shape == (2, 1, 4, 4)
    full = seen["tap_pos_weights"]
    assert full.shape == (2, 1, 12, 12)
    torch.testing.assert_close(seen["out"], x * full)
    # Upsampling only resizes: averaging the full map back over 3x3 cells gives the pooled one
    # for the box resize the authors' code uses.
    box = GSoPPosition(16, 6, pool_size=4, upsample="box").eval()
    box.load_state_dict(block.state_dict())
    seen_box = recorded(box, x)
    torch.testing.assert_close(
        torch.nn.functional.avg_pool2d(seen_box["tap_pos_weights"], 3),
        seen_box["tap_pos_weights_pooled"])
    assert not torch.allclose(seen_box["tap_pos_weights"], full)


def test_position_block_on_a_map_smaller_than_its_pool_size():
    block = GSoPPosition(16, 6, pool_size=8)
    seen = recorded(block, torch.randn(2, 16, 7, 7))
    assert seen["tap_pos_cov"].shape == (2, 64, 64)
    assert seen["tap_pos_weights"].shape == (2, 1, 7, 7)


@pytest.mark.parametrize("block_cls", [GSoPChannel, GSoPPosition])
def test_leading_relu_quirk_is_off_by_default_and_changes_the_result_when_on(block_cls):
    torch.manual_seed(1)
    paper = block_cls(16, 6).eval()
    quirk = block_cls(16, 6, pre_relu=True).eval()
    quirk.load_state_dict(paper.state_dict())
    x = torch.randn(2, 16, 8, 8)
    assert not torch.allclose(paper(x), quirk(x))
    torch.testing.assert_close(paper(x.relu()), quirk(x.relu()))


def test_stride2_reduction_quirk_covariance_uses_a_quarter_of_the_positions():
    block = GSoPChannel(16, 6, rd_stride=2).eval()
    x = torch.randn(2, 16, 8, 8)
    seen = recorded(block, x)
    z = block.reduce(x)
    assert z.shape[-2:] == (4, 4)
    torch.testing.assert_close(seen["tap_cov"], covariance(z))
    assert seen["out"].shape == x.shape


def test_activation_between_the_two_convs_is_an_option():
    assert isinstance(GSoPChannel(16, 6).mid_act, nn.Identity)
    torch.manual_seed(2)
    plain, act = GSoPChannel(16, 6).eval(), GSoPChannel(16, 6, mid_act=True).eval()
    act.load_state_dict(plain.state_dict())
    x = torch.randn(2, 16, 5, 5)
    assert not torch.allclose(plain(x), act(x))


@pytest.mark.parametrize("fusion", ["avg", "max", "cat"])
def test_fusion_combines_both_blocks_as_table_4b_says(fusion):
    block = GSoPFusion(16, 6, fusion, pool_size=4).eval()
    x = torch.randn(2, 16, 9, 9)
    a, b = block.channel(x), block.position(x)
    expected = {
        "avg": lambda: (a + b) / 2,
        "max": lambda: torch.maximum(a, b),
        "cat": lambda: block.merge(torch.cat([a, b], 1)),
    }[fusion]()
    torch.testing.assert_close(block(x), expected)
    extra = 2 * 16 * 16 if fusion == "cat" else 0
    assert n_params(block) == n_params(block.channel) + n_params(block.position) + extra


def test_bad_choices_are_one_sentence():
    with pytest.raises(ValueError, match="fusion must be one of avg, max, cat, got 'sum'"):
        GSoPFusion(16, fusion="sum")
    with pytest.raises(ValueError, match="upsample must be one of"):
        GSoPPosition(16, upsample="cubic")
    with pytest.raises(ValueError, match="gate_layer must be one of"):
        SE(16, gate_layer="tanh")


@pytest.mark.parametrize("name", ["gsop", "gsop_pos"])
def test_dead_channels_give_finite_outputs_and_gradients(name):
    block = create_block(name, 16, **BLOCK_KW[name])
    x = torch.zeros(2, 16, 7, 7, requires_grad=True)
    block(x).sum().backward()
    assert torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in block.parameters())


@pytest.mark.parametrize("name", ["gsop", "gsop_pos", "se", "cbam"])
def test_gradcheck_float64(name):
    kw = {"gsop": {"rd_channels": 3}, "gsop_pos": {"rd_channels": 3, "pool_size": 2},
          "se": {"rd_channels": 2}, "cbam": {"rd_channels": 2, "spatial_kernel": 3}}[name]
    block = create_block(name, 4, **kw).double().eval()
    x = torch.randn(2, 4, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(block, (x,), eps=1e-6, atol=1e-5)


def test_blocks_under_bf16_autocast_keep_float32_covariance():
    block = GSoPChannel(16, 6)
    x = torch.randn(2, 16, 7, 7)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        seen = recorded(block, x)
    assert seen["tap_cov"].dtype == torch.float32
    assert torch.isfinite(seen["out"]).all()
