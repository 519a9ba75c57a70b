"""gsoplib.attribution against direct formulas; hooks, modes and requires_grad left as found."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from test_probe import CLASSES, hook_count, toy_net

from gsoplib import attribution as A


@pytest.fixture
def images() -> torch.Tensor:
    torch.manual_seed(3)
    return torch.randn(2, 1, 16, 16)


def _logits(model, x):
    with torch.no_grad():
        return model(x)


def reference_grad_cam(model, x, layer, target):
    """Grad-CAM by hand (Selvaraju et al. Eq. 1-2): alpha_k = spatial mean of d y_c / d A^k,
    ReLU(sum_k alpha_k A^k), bilinear upsampling."""
    saved = {}

    def keep(module, args, out):
        # The network goes on with a copy: the residual add after a block runs in place.
        saved["A"] = out
        return out.clone()

    handle = model.get_submodule(layer).register_forward_hook(keep)
    try:
        logits = model(x)
    finally:
        handle.remove()
    feats = saved["A"]
    score = logits.gather(1, target.view(-1, 1)).sum()
    grads = torch.autograd.grad(score, feats)[0]
    cam = F.relu((grads.mean((2, 3), keepdim=True) * feats).sum(1, keepdim=True))
    return F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]


@pytest.mark.parametrize("layer", [None, "layer1.attn", "layer2.attn"])
def test_grad_cam_matches_the_paper_formula(images, layer):
    model = toy_net("isqrt")
    target = _logits(model, images).argmax(1)
    cam = A.grad_cam(model, images, layer=layer)
    expected = reference_grad_cam(model, images, layer or "layer3", target)
    assert cam.shape == (2, 16, 16) and (cam >= 0).all()
    assert cam.abs().max() > 0
    torch.testing.assert_close(cam, expected.detach(), rtol=1e-4, atol=1e-9)


def test_grad_cam_explicit_target_and_the_last_stage(images):
    model = toy_net("mixture")
    assert A.last_stage(model, images) == "layer3"
    target = torch.tensor([1, 4])
    cam = A.grad_cam(model, images, target)
    torch.testing.assert_close(cam, reference_grad_cam(model, images, "layer3", target).detach(),
                               rtol=1e-4, atol=1e-9)
    assert not torch.allclose(cam, A.grad_cam(model, images, 0))


def test_integrated_gradients_are_complete(images):
    """Sum of the attributions = f(x) - f(baseline) for the target (IG's completeness axiom)."""
    model = toy_net("isqrt").double()
    x = images.double()
    target = _logits(model, x).argmax(1)
    attr = A.integrated_gradients(model, x, n_steps=128, internal_batch_size=64)
    assert attr.shape == (2, 16, 16)
    gap = (_logits(model, x) - _logits(model, torch.zeros_like(x))).gather(1, target[:, None])
    torch.testing.assert_close(attr.double().sum((1, 2)), gap[:, 0], rtol=0.02, atol=1e-4)


def test_occlusion_of_the_whole_image_is_the_score_drop(images):
    model = toy_net("mixture")
    target = _logits(model, images).argmax(1)
    attr = A.occlusion(model, images, window=16, stride=16)
    drop = (_logits(model, images) - _logits(model, torch.zeros_like(images))).gather(
        1, target[:, None])
    torch.testing.assert_close(attr, drop[:, :, None].expand(2, 16, 16), rtol=1e-4, atol=1e-6)
    sliding = A.occlusion(model, images)  # window 4, stride 2
    assert sliding.shape == (2, 16, 16) and sliding.std() > 0


@pytest.mark.parametrize("head", ["isqrt", "mixture"])
@pytest.mark.parametrize("method", A.METHODS)
def test_every_method_leaves_no_hook_and_restores_modes(images, head, method):
    model = toy_net(head)
    model.train()
    model.layer2.eval()
    modes = [m.training for m in model.modules()]
    flags = [p.requires_grad for p in model.parameters()]
    x = images.clone()
    out = A.attribute(model, x, method)
    assert out.shape == (2, 16, 16) and torch.isfinite(out).all() and out.abs().sum() > 0
    assert hook_count(model) == 0
    assert [m.training for m in model.modules()] == modes
    assert [p.requires_grad for p in model.parameters()] == flags
    assert not x.requires_grad and x.grad is None
    assert all(p.grad is None for p in model.parameters())


def test_hooks_removed_and_mode_restored_when_attribution_fails(images):
    model = toy_net("isqrt").train()
    with pytest.raises((IndexError, RuntimeError)):
        A.grad_cam(model, images, CLASSES + 3)
    assert hook_count(model) == 0
    assert all(m.training for m in model.modules())


def test_frozen_parameters_still_get_a_grad_cam(images):
    model = toy_net("isqrt").requires_grad_(False)
    cam = A.grad_cam(model, images)
    assert cam.abs().max() > 0
    assert not any(p.requires_grad for p in model.parameters())


def test_bad_requests_are_clear_errors(images):
    model = toy_net("isqrt")
    with pytest.raises(ValueError, match="unknown attribution method 'saliency'; expected one "
                                         "of gradcam, occlusion, integrated_gradients"):
        A.attribute(model, images, "saliency")
    with pytest.raises(ValueError, match=r"layer 'layer7' is not a module of ToyNet; e\.g\. "
                                         r"stem, layer1"):
        A.grad_cam(model, images, layer="layer7")
    with pytest.raises(ValueError, match="needs a layer with a \\(B, C, H, W\\) output"):
        A.grad_cam(model, images, layer="head")
    with pytest.raises(ValueError, match=f"n_steps must be between 1 and {A.MAX_IG_STEPS}"):
        A.integrated_gradients(model, images, n_steps=A.MAX_IG_STEPS + 1)
    with pytest.raises(ValueError, match="internal_batch_size must be between 1 and "
                                         f"{A.MAX_INTERNAL_BATCH}"):
        A.integrated_gradients(model, images, internal_batch_size=1000)
    with pytest.raises(ValueError, match="occlusion window must be in \\[1, 16\\]"):
        A.occlusion(model, images, window=40)
    with pytest.raises(ValueError, match="normalised float tensor"):
        A.grad_cam(model, images.to(torch.uint8))
    assert hook_count(model) == 0
