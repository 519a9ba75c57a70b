"""Multiply-add counts against direct formulas and the papers' GFLOPs, and the zoo's strides."""

import pytest
import torch
from torch import nn

from gsoplib.models import count_multiply_adds, create_model, model_gflops


def test_a_convolution_and_a_linear_layer_count_their_multiply_adds():
    conv = nn.Conv2d(3, 8, 3, padding=1, stride=2)
    # Output 8 x 16 x 16, each value a 3 x 3 x 3 dot product.
    assert count_multiply_adds(conv, 32, 3) == 8 * 16 * 16 * 3 * 3 * 3
    net = nn.Sequential(nn.Flatten(), nn.Linear(2 * 5 * 5, 7))
    assert count_multiply_adds(net, 5, 2) == 50 * 7


def test_counting_runs_without_memory_and_leaves_the_model_as_it_was():
    model = create_model("small_gsop1", num_classes=10, in_chans=1).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert count_multiply_adds(model, 28, 1) > 0
    assert model.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_resnet50_and_the_gsop_nets_gflops_as_the_papers_count_them():
    vanilla = model_gflops("resnet50")
    # He et al. and GSoP-Net Table 5 count ResNet-50 at about 4 GFLOPs (3.86 to 4.1).
    assert 3.8 < vanilla < 4.2
    # Sec. 4.2.1: "the GFLOPs of our networks are 1.58x of the number of vanilla ResNet",
    # from keeping the last stage at stride 1; the authors' GSoP-Net1 measures 6.56 / 4.09.
    for name in ("resnet50_gsop1", "resnet50_gsop2", "resnet50_isqrt"):
        assert model_gflops(name) / vanilla == pytest.approx(1.6, abs=0.06), name
    # First-order attention adds almost nothing.
    assert model_gflops("resnet50_se") / vanilla == pytest.approx(1.0, abs=0.01)


def test_cifar_preresnet164_gflops_match_table_6():
    table6 = {"preresnet164": 0.25, "preresnet164_isqrt": 0.52, "preresnet164_gsop1": 0.55,
              "preresnet164_gsop2": 0.58}
    for name, paper in table6.items():
        assert model_gflops(name) == pytest.approx(paper, rel=0.1), name


@pytest.mark.parametrize(
    ("name", "size", "side"),
    [
        ("resnet50", 224, 7), ("resnet50_se", 224, 7), ("resnet50_cbam", 224, 7),
        ("resnet50_isqrt", 224, 14), ("resnet50_gsop1", 224, 14), ("resnet50_gsop2", 224, 14),
        ("resnet26", 224, 14), ("resnet26_gsop1", 224, 14), ("resnet26_gsop2", 224, 14),
        ("preresnet164", 32, 8), ("preresnet164_isqrt", 32, 16),
        ("preresnet164_gsop1", 32, 16), ("preresnet164_gsop2", 32, 16),
        ("resnet101", 224, 7), ("resnet101_isqrt", 224, 14),
        ("resnet18_gap", 64, 8), ("resnet18_512d", 64, 8), ("resnet18_gmgap_16_8", 64, 8),
        ("resnet18_srsop", 64, 16), ("resnet18_gmsop_16_8", 64, 16),
        ("resnet50m_gmsop_16_8", 64, 16),
    ],
)
def test_last_stage_resolution_of_each_paper_network(name, size, side):
    """GSoP-Net Table 3 (ResNet-26: no downsampling in conv5_x), Sec. 4.2.1 (both GSoP-Nets and
    iSQRT-COV on ResNet-50: 14x14 at 224), Sec. 4.3 (CIFAR: none in the last stage); GM-SOP
    Table 1 (8x8 at 64x64, 16x16 before a second-order head)."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        model = create_model(name).eval()
        features = model.forward_features(torch.empty(1, 3, size, size))
    assert tuple(features.shape[-2:]) == (side, side)


def test_a_model_whose_work_depends_on_the_image_is_refused_in_one_sentence():
    with pytest.raises(ValueError, match="depends on the input's values"):
        model_gflops("small_gmsop")
