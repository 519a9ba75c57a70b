"""Block ablation (gsoplib.ablation) on the bundled models: forcing a block's weights to 1 makes
it the identity, changes the predictions, and leaves the model exactly as it was; the moved
per-class helpers of gsoplib.class_usage against a direct computation; notebook 06's widget."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gsoplib.ablation import ablatable_blocks, ablate, ablation_effect, weight_taps
from gsoplib.class_usage import class_channel_weights, class_component_usage
from gsoplib.data import load_dataset, normalize
from gsoplib.ops import sqrtm_eigh
from gsoplib.pretrained import load_pretrained
from gsoplib.probe import probe
from gsoplib.root_check import compare_root, numerical_rank
from gsoplib.viz import lessons_ablation


@pytest.fixture(scope="module")
def test_images():
    split = load_dataset("fashion_mnist", train=False)
    x = normalize(split.images[:200], split.info.mean, split.info.std)
    return x, split.labels[:200], list(split.info.classes)


@pytest.fixture(scope="module")
def gsop1():
    return load_pretrained("fmnist_small_gsop1")


def test_ablated_block_is_the_identity_and_the_model_is_restored(gsop1, test_images):
    model, (x, _, _) = gsop1.model.eval(), test_images
    block = dict(model.named_modules())["layer1.2.attn"]
    seen = []
    handle = block.register_forward_hook(lambda m, args, out: seen.append((args[0], out)))
    try:
        with torch.no_grad():
            before = model(x[:16])
            with ablate(model, "layer1.2.attn"):
                during = model(x[:16])
            after = model(x[:16])
    finally:
        handle.remove()
    assert not torch.equal(seen[0][0], seen[0][1])           # the trained block rescales
    assert torch.equal(seen[1][0], seen[1][1])               # ablated: output == input
    assert not torch.allclose(before, during, atol=1e-3)
    assert torch.equal(before, after)
    assert all(not tap._forward_hooks for tap in weight_taps(model, "layer1.2.attn"))


def test_hooks_are_removed_on_error(gsop1):
    model = gsop1.model
    with pytest.raises(RuntimeError, match="inside"):
        with ablate(model, ["layer2.2.attn", "layer3.2.attn"]):
            raise RuntimeError("inside")
    assert all(not t._forward_hooks for p in ablatable_blocks(model) for t in weight_taps(model, p))


def test_ablation_changes_the_predictions_of_the_bundled_model(gsop1, test_images):
    x, y, _ = test_images
    model = gsop1.model.train()                              # restored to train mode afterwards
    effect = ablation_effect(model, x, ["layer1.2.attn"], y)
    assert model.training
    assert effect.flipped.sum() > 5 and effect.top1_after < effect.top1_before - 0.02
    changed = effect.probs_before.argmax(1) != effect.probs_after.argmax(1)
    assert torch.equal(effect.flipped, changed)
    direct = (effect.probs_before.argmax(1) == y).double().mean().item()
    assert effect.top1_before == pytest.approx(direct)
    nothing = ablation_effect(model, x, [], y)
    assert torch.equal(nothing.probs_before, nothing.probs_after) and not nothing.flipped.any()
    assert "0 of 200" in nothing.summary() and "layer1.2.attn" in effect.summary()


def test_position_and_se_blocks_can_be_ablated(test_images):
    x, _, _ = test_images
    for name in ("fmnist_small_gsop_pos", "fmnist_small_se"):
        model = load_pretrained(name).model
        last = ablatable_blocks(model)[-1]
        effect = ablation_effect(model, x[:32], last)
        assert (effect.probs_after - effect.probs_before).abs().max() > 1e-3, name


def test_bad_paths_are_one_sentence(gsop1):
    with pytest.raises(ValueError, match="no module 'layer9' .*layer1.2.attn, layer2.2.attn"):
        weight_taps(gsop1.model, "layer9")
    with pytest.raises(ValueError, match="'layer1' .* has no channel or position weights"):
        with ablate(gsop1.model, "layer1"):
            pass


def test_widget_callback_follows_its_toggles(gsop1, test_images):
    x, y, classes = test_images
    none, fig = lessons_ablation.ablation_view(gsop1.model, x, y, classes, [], index=3)
    assert not none.flipped.any() and len(fig.axes) == 3
    first, _ = lessons_ablation.ablation_view(gsop1.model, x, y, classes, ["layer1.2.attn"])
    both, fig = lessons_ablation.ablation_view(
        gsop1.model, x, y, classes, ["layer1.2.attn", "layer3.2.attn"], index=5)
    assert first.flipped.sum() > 0 and not torch.equal(first.probs_after, both.probs_after)
    assert fig.axes[1].get_title().startswith("predicted ")
    with pytest.raises(IndexError):
        lessons_ablation.ablation_figure(first, x, 500, classes)


def test_class_channel_weights_against_a_direct_mean(gsop1, test_images):
    x, y, classes = test_images
    insp = probe(gsop1.model, x[:60], class_names=gsop1.classes)
    labels = [classes[i] for i in y[:60]]
    names, weights, counts = class_channel_weights(insp, "layer3.2.attn", labels)
    raw = insp["layer3.2.attn"]["tap_channel_weights"].flatten(1).double()
    for name, row, count in zip(names, weights, counts):
        members = [i for i, lab in enumerate(labels) if lab == name]
        assert count == len(members)
        np.testing.assert_allclose(row, raw[members].mean(dim=0).numpy(), rtol=1e-12)
    assert names == [c for c in classes if c in labels]
    pos = probe(load_pretrained("fmnist_small_gsop_pos").model, x[:4])
    with pytest.raises(ValueError, match="has no tap_channel_weights"):
        class_channel_weights(pos, "layer3.2.attn", labels[:4])


def test_class_component_usage_against_a_direct_mean(test_images):
    x, y, classes = test_images
    gm = load_pretrained("fmnist_small_gmsop")
    insp = probe(gm.model, x[:60], class_names=gm.classes)
    labels = [classes[i] for i in y[:60]]
    names, usage, counts = class_component_usage(insp, "head", labels)
    raw = insp["head"]["tap_gate_weights"].double()
    for name, row in zip(names, usage):
        members = [i for i, lab in enumerate(labels) if lab == name]
        np.testing.assert_allclose(row, raw[members].mean(dim=0).numpy(), rtol=1e-12)
    assert sum(counts) == 60


def test_root_check_on_the_bundled_gsop2_head(test_images):
    x, _, _ = test_images
    model = load_pretrained("fmnist_small_gsop2").model
    record = probe(model, x[:8]).of_kind("isqrt_cov")[0]
    check = compare_root(record["tap_cov"], record["tap_cov_sqrt"])
    # 3 Newton-Schulz iterations on a 64 x 64 covariance of 7 x 7 = 49 centred positions
    assert (check.rank == 48).all()
    assert ((check.relative_error > 0.25) & (check.relative_error < 0.4)).all()
    err = check.eigenvalue_error()
    assert err[:, 0].abs().max() < 0.05 and (err[:, 40:48] < -0.8).all()
    assert err[:, 48:].isnan().all()
    exact = compare_root(record["tap_cov"], sqrtm_eigh(record["tap_cov"].double()))
    assert exact.relative_error.max() < 1e-10
    assert exact.eigenvalue_error().nan_to_num().abs().max() < 1e-6
    a = torch.diag_embed(torch.tensor([[3.0, 1.0, 0.0, 0.0]]))
    assert numerical_rank(a).item() == 2
