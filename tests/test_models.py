"""The model family: every named network builds and trains a step, the paper's parameter counts
(GSoP-Net Table 6, GM-SOP Table 3), stage masks in the paper's notation, block placement, and
train/eval differing only in BN, dropout and the gate's noise."""

import copy

import pytest
import torch
from torch import nn

from gsoplib.blocks import GSoPChannel, GSoPPosition
from gsoplib.heads import GatedMixtureHead, GlobalAvgPoolHead, ISqrtCov, ISqrtCovHead
from gsoplib.heads.mixture import NoisyTopKGate
from gsoplib.models import create_model, list_models, model_defaults, parse_mask
from gsoplib.models.resnet import BasicBlock, Bottleneck, PreActBottleneck


def n_params(module: nn.Module) -> float:
    return sum(p.numel() for p in module.parameters()) / 1e6


def attention_blocks(model: nn.Module) -> dict[str, str]:
    return {
        path: type(m).__name__
        for path, m in model.named_modules()
        if path.endswith(".attn") and not isinstance(m, nn.Identity)
    }


SMALL = [name for name in list_models() if name.startswith("small")]


@pytest.mark.parametrize("name", SMALL)
@pytest.mark.parametrize("in_chans, size", [(1, 28), (3, 32), (3, 28), (1, 23)])
def test_every_small_model_trains_a_step_on_grey_and_colour_inputs(name, in_chans, size):
    model = create_model(name, num_classes=7, in_chans=in_chans)
    x = torch.randn(4, in_chans, size, size)
    logits, aux = model(x, return_aux=True)
    assert logits.shape == (4, 7) and aux.shape == ()
    (nn.functional.cross_entropy(logits, torch.arange(4)) + aux).backward()
    missing = [p for p, t in model.named_parameters() if t.grad is None]
    if "gmsop" in name or "gmgap" in name:  # unchosen components legitimately get no gradient
        missing = [p for p in missing if ".components." not in p]
    assert not missing, missing
    assert all(torch.isfinite(t.grad).all() for t in model.parameters() if t.grad is not None)


def test_small_models_are_about_a_third_of_a_million_parameters():
    sizes = {name: n_params(create_model(name)) for name in SMALL}
    print({k: round(v, 3) for k, v in sizes.items()})
    assert all(0.25 <= v <= 0.4 for v in sizes.values()), sizes


@pytest.mark.parametrize("name", [n for n in list_models() if not n.startswith("small")])
def test_every_paper_model_runs_forward_on_a_small_input(name):
    defaults = model_defaults(name)
    model = create_model(name, num_classes=5).eval()
    size = 64 if defaults["input_size"] != 32 else 32
    with torch.no_grad():
        logits = model(torch.randn(2, defaults["in_chans"], size, size))
    assert logits.shape == (2, 5) and torch.isfinite(logits).all()


TABLE6 = {  # GSoP-Net Table 6, CIFAR-100, millions of parameters
    "preresnet164": 1.7, "preresnet164_se": 1.9, "preresnet164_isqrt": 2.5,
    "preresnet164_gsop1": 2.9, "preresnet164_gsop2": 3.6,
}
GMSOP_TABLE3 = {  # GM-SOP Table 3, 1000 classes
    "resnet18_512d": 1.3, "resnet18_gmgap_16_8": 2.3, "resnet18_gmsop_16_8": 10.3,
    "resnet50m_gmsop_16_8": 11.9,
}


@pytest.mark.parametrize("name, paper", {**TABLE6, **GMSOP_TABLE3}.items())
def test_parameter_counts_match_the_papers_tables_within_5_percent(name, paper):
    measured = n_params(create_model(name))
    print(f"{name}: {measured:.3f} M measured, {paper} M in the paper")
    assert measured == pytest.approx(paper, rel=0.05)


def test_table6_block_counts_and_covariance_sizes():
    net1, net2 = create_model("preresnet164_gsop1"), create_model("preresnet164_gsop2")
    assert len(attention_blocks(net1)) == 18
    assert len(attention_blocks(net2)) == 17
    assert all(m.rd_channels == 64 for m in net1.modules() if isinstance(m, GSoPChannel))
    assert isinstance(net2.head, ISqrtCovHead) and net2.head.output_dim == 8256
    assert isinstance(net2.head.dropout, nn.Dropout) and net2.head.dropout.p == 0.5
    assert len(attention_blocks(create_model("preresnet164_se"))) == 54


def test_masks_read_in_the_papers_notation():
    assert parse_mask("C,C,C,-", 4) == (["gsop", "gsop", "gsop", None], False)
    assert parse_mask("-,-,-,√", 4) == ([None] * 4, True)
    assert parse_mask("P, S, gsop_fuse_cat", 3) == (["gsop_pos", "se", "gsop_fuse_cat"], False)
    with pytest.raises(ValueError, match="has 3 entries; this network has 4 stages"):
        parse_mask("C,C,C", 4)
    with pytest.raises(ValueError, match="tick can only be the last entry"):
        parse_mask("√,-,-,-", 4)
    with pytest.raises(ValueError, match="unknown entry 'Q'"):
        parse_mask("Q,-,-,-", 4)


TABLE4CD = ["-,-,-,-", "C,-,-,-", "-,C,-,-", "-,-,C,-", "-,-,-,C", "C,C,C,C", "-,-,-,√",
            "C,C,C,√", "C,C,-,-", "-,C,C,-", "-,-,C,C", "C,-,-,C", "C,C,C,-", "-,C,C,C",
            "C,-,C,C", "C,C,-,C"]


@pytest.mark.parametrize("mask", TABLE4CD)
def test_every_row_of_table_4c_and_4d_is_one_mask_away(mask):
    model = create_model("resnet26", blocks=mask)
    entries = mask.split(",")
    expected = {f"layer{s + 1}.1.attn" for s, e in enumerate(entries) if e == "C"}
    blocks = attention_blocks(model)
    assert set(blocks) == expected and set(blocks.values()) <= {"GSoPChannel"}
    assert isinstance(model.head, ISqrtCovHead if entries[-1] == "√" else GlobalAvgPoolHead)


def test_named_resnet26_and_resnet50_configurations():
    net2 = create_model("resnet26_gsop2")
    assert isinstance(net2.head, ISqrtCovHead) and net2.head.output_dim == 32896
    assert net2.head.pool.iters == 3
    assert len(attention_blocks(net2)) == 3
    assert len(attention_blocks(create_model("resnet50_gsop1"))) == 4
    assert len(attention_blocks(create_model("resnet26_se"))) == 8
    pos = create_model("resnet26_gsop_pos")
    assert {type(m) for m in pos.modules()} >= {GSoPPosition}
    assert not any(isinstance(m, GSoPChannel) for m in pos.modules())
    # No downsampling in conv5_x: a 224 input leaves a 14 x 14 map (Table 3).
    with torch.no_grad():
        assert create_model("resnet26").eval().forward_features(
            torch.randn(1, 3, 224, 224)).shape == (1, 2048, 14, 14)


def test_isqrt_output_dims():
    assert {d: ISqrtCov(8, d).output_dim for d in (256, 128, 64)} == {
        256: 32896, 128: 8256, 64: 2080}


def test_attention_sits_after_the_last_conv_before_the_residual_add():
    class Zero(nn.Module):
        def forward(self, x):
            return torch.zeros_like(x)

    x = torch.randn(2, 8, 6, 6)
    for block in (BasicBlock(8, 8, attn=Zero()), Bottleneck(8, 2, attn=Zero())):
        block.eval()
        torch.testing.assert_close(block(x), torch.relu(x))  # only the identity shortcut left
    pre = PreActBottleneck(8, 2, attn=Zero()).eval()
    torch.testing.assert_close(pre(x), x)


def test_where_every_nth_places_blocks_ending_with_the_last():
    model = create_model("small_gsop1", where=2, layers=(4, 4, 4))
    assert set(attention_blocks(model)) == {
        f"layer{s}.{i}.attn" for s in (1, 2, 3) for i in (1, 3)}
    with pytest.raises(ValueError, match="where must be"):
        create_model("small_gsop1", where="middle")


def test_overrides_update_head_and_block_kwargs_without_losing_the_rest():
    model = create_model("small_gsop2", head_kwargs={"iters": 5})
    assert model.head.pool.iters == 5 and model.head.pool.rd_channels == 64
    model = create_model("small_gsop1", block_kwargs={"pre_relu": True})
    blocks = [m for m in model.modules() if isinstance(m, GSoPChannel)]
    assert blocks and all(isinstance(b.pre_act, nn.ReLU) and b.rd_channels == 32 for b in blocks)


def test_gm_sop_names_accept_any_n_and_k():
    head = create_model("resnet18_gmgap_16_4").head
    assert isinstance(head, GatedMixtureHead) and head.gate.k == 4
    assert len(head.components) == 16
    assert len(create_model("resnet18_avesop_4").head.components) == 4


def test_unknown_model_names_the_known_ones():
    with pytest.raises(ValueError) as err:
        create_model("small_gsop3")
    message = str(err.value)
    assert message.startswith("unknown model 'small_gsop3'. Did you mean small_gsop")
    assert all(name in message for name in list_models())


def test_bad_constructor_arguments_are_one_sentence():
    with pytest.raises(ValueError, match=r"unknown head 'svd'\. Known heads: gap, isqrt"):
        create_model("small_vanilla", head="svd")
    with pytest.raises(ValueError, match="asks for the iSQRT-COV head but head='gap'"):
        create_model("small_vanilla", blocks="-,-,√", head="gap")
    with pytest.raises(ValueError, match="unknown stem 'huge'"):
        create_model("small_vanilla", stem="huge")


def _inference_copy(model: nn.Module) -> nn.Module:
    """The model in train mode with only BN, dropout and the gate switched to eval."""
    twin = copy.deepcopy(model).train()
    for m in twin.modules():
        if isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.Dropout, NoisyTopKGate)):
            m.eval()
    return twin


@pytest.mark.parametrize("name", ["small_gsop1", "small_gsop2", "small_gsop_pos", "small_cbam",
                                  "small_gmsop", "small_gsop_fuse_cat", "preresnet164_gsop2"])
def test_train_eval_switch_changes_nothing_but_bn_dropout_and_gate_noise(name):
    model = create_model(name, num_classes=5)
    with torch.no_grad():  # non-trivial running statistics
        model.train()(torch.randn(8, model_defaults(name)["in_chans"], 28, 28))
    x = torch.randn(3, model_defaults(name)["in_chans"], 28, 28)
    model.eval()
    with torch.no_grad():
        reference = model(x)
        torch.testing.assert_close(_inference_copy(model)(x), reference)
        assert not torch.allclose(copy.deepcopy(model).train()(x), reference)


def test_the_isqrt_head_s_ablations_compute_what_they_say():
    from gsoplib.ops import covariance, sqrtm_newton_schulz, triu_vec

    torch.manual_seed(0)
    x = torch.randn(6, 16, 5, 5)
    base = ISqrtCovHead(16, num_classes=3, rd_channels=8).eval()
    feats = base.features(x)
    torch.testing.assert_close(base(x), base.fc(feats))
    scaled = ISqrtCovHead(16, num_classes=3, rd_channels=8, feature_scale=4.0).eval()
    scaled.load_state_dict(base.state_dict())
    torch.testing.assert_close(scaled(x), base.fc(4.0 * feats))
    bare = ISqrtCovHead(16, num_classes=3, rd_channels=8, compensate=False).eval()
    bare.load_state_dict(base.state_dict())
    cov = covariance(base.pool.reduce(x))
    trace = cov.diagonal(dim1=-2, dim2=-1).sum(-1).view(-1, 1, 1)
    want = triu_vec(sqrtm_newton_schulz(cov, iters=3) / trace.sqrt())
    torch.testing.assert_close(bare.features(x), want)
    zero = ISqrtCovHead(16, num_classes=3, rd_channels=8, fc_init="zeros")
    assert zero.fc.weight.abs().sum() == 0 and zero.fc.bias.abs().sum() == 0
    normed = ISqrtCovHead(16, num_classes=3, rd_channels=8, norm=True).train()
    assert isinstance(normed.norm, torch.nn.BatchNorm1d) and normed(x).shape == (6, 3)
    with pytest.raises(ValueError, match="unknown fc_init 'ones'"):
        ISqrtCovHead(16, num_classes=3, fc_init="ones")


def test_the_small_networks_scale_their_isqrt_features_and_the_paper_s_do_not():
    assert create_model("small_gsop2", num_classes=10, in_chans=1).head.feature_scale == 4.0
    assert create_model("small_isqrt", num_classes=10, in_chans=1).head.feature_scale == 4.0
    with torch.device("meta"):
        assert create_model("resnet50_gsop2").head.feature_scale == 1.0


def test_the_gap_head_with_a_hidden_layer_reads_d_features_and_keeps_the_plain_heads_keys():
    """GlobalAvgPoolHead(hidden=d): GAP -> Linear(C, d) + ReLU -> FC, the sweep's control; the
    default (no hidden layer) has exactly the FC's parameters, so bundled checkpoints load."""
    plain, wide = GlobalAvgPoolHead(8, num_classes=10), GlobalAvgPoolHead(8, 10, hidden=36)
    assert sorted(plain.state_dict()) == ["fc.bias", "fc.weight"]
    assert (plain.output_dim, wide.output_dim) == (8, 36)
    assert sum(p.numel() for p in wide.parameters()) == 8 * 36 + 36 + 36 * 10 + 10
    x = torch.randn(4, 8, 5, 5)
    by_hand = wide.fc(torch.relu(wide.hidden[0](x.mean((2, 3)))))
    torch.testing.assert_close(wide(x), by_hand)
    with pytest.raises(ValueError, match="hidden"):
        GlobalAvgPoolHead(8, 10, hidden=-1)
    scaled = GlobalAvgPoolHead(8, 10, feature_scale=4.0)
    scaled.load_state_dict(plain.state_dict())  # same keys: the scale is not a parameter
    torch.testing.assert_close(scaled(x), plain.fc(4 * x.mean((2, 3))))
