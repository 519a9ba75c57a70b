"""The derivations of notebook 06 (inspecting) and its exercises, against gsoplib.

Three coupled Newton-Schulz iterations written out against ``sqrtm_newton_schulz`` and the
eigh distance against ``compare_root`` (section 5); a GSoP channel block without ``mid_act`` is
a sigmoid of one linear functional of its covariance (exercise 1); Grad-CAM on the layer a
GAP + FC head reads is the class activation map (exercise 2); a gate's I(class; component) is
at most log2(N/K) and reaches it (exercise 3); the position block's five steps (section 3);
occlusion and integrated gradients written out (section 7); and the figure options the notebook
uses (a clipped colour scale, the rank line and finding titles; colorbar units).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gsoplib.attribution import grad_cam
from gsoplib.blocks.gsop import GSoPChannel
from gsoplib.data import load_dataset, normalize
from gsoplib.heads.gate import gate_diagnostics
from gsoplib.ops import covariance, sqrtm_newton_schulz
from gsoplib.pretrained import load_pretrained
from gsoplib.root_check import compare_root


def _ns_from_scratch(cov: torch.Tensor, iters: int) -> torch.Tensor:
    trace = cov.diagonal(dim1=1, dim2=2).sum(-1)[:, None, None]
    eye = torch.eye(cov.shape[1], dtype=cov.dtype).expand_as(cov)
    y, z = cov / trace, eye
    for _ in range(iters):
        t = 0.5 * (3 * eye - z @ y)
        y, z = y @ t, t @ z
    return y * trace.sqrt()


def test_newton_schulz_and_the_root_distance_from_scratch():
    # 20 positions of 32 channels: rank 19, as the notebook's head (49 positions, 64 channels)
    cov = covariance(torch.randn(3, 32, 4, 5, dtype=torch.float64))
    for iters in (1, 3, 5):
        torch.testing.assert_close(_ns_from_scratch(cov, iters), sqrtm_newton_schulz(cov, iters))
    lam, u = torch.linalg.eigh(cov)
    exact = u @ torch.diag_embed(lam.clamp(min=0).sqrt()) @ u.transpose(1, 2)
    root = _ns_from_scratch(cov, 3)
    distance = torch.linalg.matrix_norm(root - exact) / torch.linalg.matrix_norm(exact)
    check = compare_root(cov, root)
    torch.testing.assert_close(distance, check.relative_error)
    assert check.rank.tolist() == [19] * 3
    # more iterations come closer: the distance is the iteration's, not a constant
    assert (compare_root(cov, _ns_from_scratch(cov, 10)).relative_error < distance / 3).all()


def _effective_functional(block: GSoPChannel) -> tuple[torch.Tensor, torch.Tensor]:
    """(C, d, d) and (C,): the block's eval-mode weights are sigmoid(<W_c, Sigma> + b_c)."""
    bn, row_conv, expand = block.embed.bn, block.embed.conv, block.expand
    d, e = block.rd_channels, block.embed.expansion
    s = bn.weight / (bn.running_var + bn.eps).sqrt()
    shift = bn.bias - s * bn.running_mean
    k, k_bias = row_conv.weight.view(d, e, d), row_conv.bias.view(d, e)
    v = expand.weight.view(-1, d, e)
    w = torch.einsum("cie,iej->cij", v, k) * s[None, :, None]
    b = torch.einsum("cie,iej,i->c", v, k, shift) + torch.einsum("cie,ie->c", v, k_bias)
    return w, b + expand.bias


def _taps(block: GSoPChannel, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    seen = {}
    hooks = [getattr(block, name).register_forward_hook(
        lambda m, args, out, name=name: seen.__setitem__(name, out)) for name in
        ("tap_cov", "tap_channel_weights")]
    with torch.no_grad():
        block(x)
    for h in hooks:
        h.remove()
    return seen["tap_cov"], seen["tap_channel_weights"].flatten(1)


@pytest.mark.parametrize("mid_act", [False, True])
def test_gsop_channel_weights_are_a_sigmoid_of_a_linear_functional(mid_act):
    torch.manual_seed(0)
    block = GSoPChannel(12, 6, mid_act=mid_act).double()
    for bn in (block.reduce[1], block.embed.bn):      # trained-looking running statistics
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.2, 0.2)
    block.eval()
    cov, weights = _taps(block, torch.randn(5, 12, 6, 6, dtype=torch.float64))
    with torch.no_grad():
        w, b = _effective_functional(block)
        predicted = torch.sigmoid(torch.einsum("cij,bij->bc", w, cov) + b)
        sym = (w + w.transpose(1, 2)) / 2
        torch.testing.assert_close(torch.einsum("cij,bij->bc", sym, cov) + b,
                                   torch.einsum("cij,bij->bc", w, cov) + b)
    if mid_act:   # a ReLU between the row conv and the 1x1 conv breaks the linearity
        assert (predicted - weights).abs().max() > 1e-3
    else:
        torch.testing.assert_close(predicted, weights)


def test_grad_cam_on_the_layer_the_head_reads_is_the_class_activation_map():
    model = load_pretrained("fmnist_small_gsop1").model.eval()
    split = load_dataset("fashion_mnist", train=False)
    x = normalize(split.images[:8], split.info.mean, split.info.std)
    acts = []
    handle = model.layer3.register_forward_hook(lambda m, args, out: acts.append(out.detach()))
    with torch.no_grad():
        logits = model(x)
    handle.remove()
    target, fc, a = logits.argmax(1), model.head.fc, acts[0]
    cam = torch.einsum("bk,bkij->bij", fc.weight[target], a) / a[0, 0].numel()   # CAM / HW
    torch.testing.assert_close(cam.sum((1, 2)), logits.gather(1, target[:, None])[:, 0]
                               - fc.bias[target])
    upsampled = F.interpolate(cam.relu()[:, None], size=x.shape[-2:], mode="bilinear")[:, 0]
    torch.testing.assert_close(grad_cam(model, x, layer="layer3"), upsampled)
    # on an earlier layer the gradient is not constant over the positions: not a CAM
    assert (grad_cam(model, x, layer="layer2") - upsampled).abs().max() > 1e-3


def test_class_component_information_is_at_most_log2_n_over_k():
    n, k, samples = 8, 4, 400
    labels = torch.arange(samples) % 10
    fixed = torch.where((labels % 2 == 0)[:, None], torch.arange(k), torch.arange(k, n))
    weights = torch.zeros(samples, n).scatter_(1, fixed, 1 / k)
    reached = gate_diagnostics(fixed, weights, labels.tolist()).mutual_information
    assert reached == pytest.approx(math.log2(n / k), abs=1e-9)
    generator = torch.Generator().manual_seed(0)
    for _ in range(5):   # any choice at all, even one that follows the class in part
        follows = labels[:, None] % n == torch.arange(n)
        scores = torch.rand(samples, n, generator=generator) + follows
        chosen = scores.topk(k, dim=1).indices
        mi = gate_diagnostics(chosen, torch.zeros(samples, n).scatter_(1, chosen, 1 / k),
                              labels.tolist()).mutual_information
        assert 0.05 < mi <= math.log2(n / k)
    # K = 1 of N: the bound is log2 N, reached when each of N classes fixes its component
    eight = torch.arange(samples) % n
    one = eight[:, None]
    reached = gate_diagnostics(one, torch.zeros(samples, n).scatter_(1, one, 1.0),
                               eight.tolist()).mutual_information
    assert reached == pytest.approx(math.log2(n), abs=1e-9)


def _position_weights_from_scratch(block, x: torch.Tensor) -> torch.Tensor:
    """GSoP-Net Sec. 3.2 in eval mode, as notebook 06 writes it: (B, C, H, W) -> (B, h*w)."""
    bn, conv, size = block.embed.bn, block.embed.conv, block.pool_size
    p = F.adaptive_avg_pool2d(block.reduce(x), size).flatten(2).transpose(1, 2)   # (B, hw, c)
    pc = p - p.mean(-1, keepdim=True)
    sigma = pc @ pc.transpose(1, 2) / p.shape[-1]
    rows = ((sigma - bn.running_mean[:, None]) / (bn.running_var[:, None] + bn.eps).sqrt()
            * bn.weight[:, None] + bn.bias[:, None])
    hw = sigma.shape[-1]
    h = torch.einsum("bij,iej->bie", rows, conv.weight.view(hw, -1, hw)) + conv.bias.view(hw, -1)
    return torch.sigmoid(h.flatten(1).relu() @ block.expand[1].weight.flatten(1).T
                         + block.expand[1].bias)


def _fashion(n: int) -> torch.Tensor:
    split = load_dataset("fashion_mnist", train=False)
    return normalize(split.images[:n], split.info.mean, split.info.std)


def test_position_weights_from_scratch_are_the_blocks():
    """Notebook 06, section 3: the five steps of the position block give its taps."""
    from gsoplib.probe import probe

    model = load_pretrained("fmnist_small_gsop_pos").model.eval()
    insp = probe(model, _fashion(4))
    for record in insp.of_kind("gsop_position"):
        block = model.get_submodule(record.path)
        with torch.no_grad():
            weights = _position_weights_from_scratch(block, record["tap_input"])
        pooled = record["tap_pos_weights_pooled"]
        torch.testing.assert_close(weights.view_as(pooled), pooled, rtol=1e-4, atol=1e-5)
    # the maps are the image's: another image gives another map
    assert (pooled[0] - pooled[1]).abs().max() > 0.05
    from gsoplib import viz

    assert viz.position_weights(insp, record.path, 1, title="a finding")._suptitle.get_text() \
        == "a finding"
    assert viz.position_weights(insp, record.path, 1)._suptitle.get_text() == \
        f"{record.path} (gsop_position)"


def _occlusion_from_scratch(model, image, target, value, window=7, stride=3):
    side = image.shape[-1]
    corners = [(i, j) for i in range(0, side - window + 1, stride)
               for j in range(0, side - window + 1, stride)]
    masks = torch.stack([F.pad(torch.ones(window, window),
                               (j, side - window - j, i, side - window - i)) for i, j in corners])
    with torch.no_grad():
        base = model(image)[0, target]
        drops = base - model(torch.where(masks.bool()[:, None], value, image))[:, target]
    return (drops[:, None, None] * masks).sum(0) / masks.sum(0)


def _integrated_from_scratch(model, image, target, baseline, alphas, weights):
    alphas = torch.as_tensor(alphas, dtype=torch.float32)[:, None, None, None]
    path = (baseline + alphas * (image - baseline)).requires_grad_(True)
    grads, = torch.autograd.grad(model(path)[:, target].sum(), path)
    weights = torch.as_tensor(weights, dtype=torch.float32)[:, None, None, None]
    return ((image - baseline) * (weights * grads).sum(0)).sum(1)


def test_occlusion_and_integrated_gradients_from_scratch_match_gsoplib():
    """Notebook 06, section 7: 64 occluded copies and a Gauss-Legendre path sum are gsoplib's."""
    import numpy as np

    from gsoplib.attribution import integrated_gradients, occlusion

    model = load_pretrained("fmnist_small_gsop1").model.eval()
    images = _fashion(3)
    for n in range(3):
        image = images[n:n + 1]
        with torch.no_grad():
            target = int(model(image).argmax())
        torch.testing.assert_close(_occlusion_from_scratch(model, image, target, 0.0)[None],
                                   occlusion(model, image))
        nodes, node_weights = np.polynomial.legendre.leggauss(16)
        ig = _integrated_from_scratch(model, image, target, torch.zeros_like(image),
                                      (nodes + 1) / 2, node_weights / 2)
        torch.testing.assert_close(ig, integrated_gradients(model, image, n_steps=16))
        # completeness, with enough points (16 nodes can be 10% off on these images)
        riemann = _integrated_from_scratch(model, image, target, torch.zeros_like(image),
                                           (np.arange(128) + 0.5) / 128, np.full(128, 1 / 128))
        with torch.no_grad():
            change = (model(image)[0, target] - model(torch.zeros_like(image))[0, target]).item()
        assert abs(riemann.sum().item() - change) < 0.05 * abs(change)
    # another baseline gives another map: the occlusion depends on what fills the window
    black = (0 - 0.286) / 0.353
    assert (_occlusion_from_scratch(model, image, target, black)
            - _occlusion_from_scratch(model, image, target, 0.0)).abs().max() > 0.1


def test_covariance_figure_options_clip_the_colours_mark_the_rank_and_title():
    from gsoplib import viz
    from gsoplib.probe import probe

    insp = probe(load_pretrained("fmnist_small_gsop2").model, _fashion(2))
    plain = viz.covariance(insp, "head.pool", 0)
    shown = viz.covariance(insp, "head.pool", 0, color_quantile=0.99, rank=48,
                           title="the finding", spectrum_title="the spectrum's finding")
    cov = insp["head.pool"]["tap_cov"][0].double().numpy()
    heat_plain, heat = plain.axes[0].images[0], shown.axes[0].images[0]
    assert heat_plain.norm.vmax == pytest.approx(abs(cov).max())
    assert heat.norm.vmax == pytest.approx(float(np.quantile(abs(cov), 0.99)), rel=1e-6)
    assert heat.norm.vmax < heat_plain.norm.vmax / 2             # a few entries set the old scale
    assert shown._suptitle.get_text() == "the finding"
    assert plain._suptitle.get_text() == "head.pool (isqrt_cov)"
    spectrum = next(ax for ax in shown.axes if ax.get_title() == "the spectrum's finding")
    dashed = [line.get_xdata()[0] for line in spectrum.lines if line.get_linestyle() == "--"]
    assert dashed == [48.5]
    assert "eigenvalue spectrum" in [ax.get_title() for ax in plain.axes]
    extends = [ax._colorbar.extend for ax in shown.axes if hasattr(ax, "_colorbar")]
    assert extends == ["both", "both"]
    assert [ax._colorbar.extend for ax in plain.axes if hasattr(ax, "_colorbar")] == ["neither"] * 2
    with pytest.raises(ValueError, match="color_quantile must be in"):
        viz.covariance(insp, "head.pool", 0, color_quantile=0.0)


def test_attribution_figure_labels_the_colorbars_it_has_units_for():
    from gsoplib import viz
    from gsoplib.attribution import UNITS

    maps = {"Grad-CAM": torch.rand(12, 12), "IG": torch.randn(12, 12)}
    labelled = viz.attribution_figure(torch.randn(1, 12, 12), maps,
                                      units={"IG": UNITS["integrated_gradients"][0]})
    labels = [ax.get_ylabel() for ax in labelled.axes if hasattr(ax, "_colorbar")]
    assert labels == ["", UNITS["integrated_gradients"][0]]
    plain = viz.attribution_figure(torch.randn(1, 12, 12), maps)
    assert [ax.get_ylabel() for ax in plain.axes if hasattr(ax, "_colorbar")] == ["", ""]


def test_channel_weight_and_gate_figures_take_a_finding_title():
    from gsoplib import viz
    from gsoplib.probe import probe

    insp = probe(load_pretrained("fmnist_small_gsop1").model, _fashion(2))
    plain = viz.channel_weights(insp, "layer3.2.attn", 0, show=2)
    shown = viz.channel_weights(insp, "layer3.2.attn", 0, show=2, title="the finding",
                                rows=("largest w", "smallest w"))
    assert plain.axes[0].get_title().startswith("layer3.2.attn (gsop_channel): 64 channel weights")
    assert shown.axes[0].get_title() == "the finding"
    texts = lambda fig: {t.get_text() for t in fig.axes[1].texts}
    assert {"boosted", "suppressed"} <= texts(plain) and {"largest w", "smallest w"} <= texts(shown)
    insp_gm = probe(load_pretrained("fmnist_small_gmsop").model, _fashion(2))
    chosen = insp_gm["head"]["tap_gate_indices"][0].tolist()
    default = viz.gate_choices(insp_gm, "head").get_suptitle()
    assert default.endswith(f"chose {', '.join(map(str, chosen))}")
    titled = viz.gate_choices(insp_gm, "head", title="all four count")
    assert titled.get_suptitle() == "all four count"
