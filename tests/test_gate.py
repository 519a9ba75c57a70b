"""The GM-SOP gate's forms, Shazeer's load loss, and the gate diagnostics (gsoplib.heads.gate)."""

from __future__ import annotations

import math

import pytest
import torch

from gsoplib.heads.gate import (
    CLASS_BLIND,
    GATE_FORMS,
    GateRecorder,
    NoisyTopKGate,
    diagnose_gate,
    gate_diagnostics,
    load_loss,
    min_images,
    min_images_for_class,
    router_z_loss,
    top_k_softmax,
)
from gsoplib.models import create_model


def choices(logits: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    weights, indices, _ = top_k_softmax(logits, k)
    return indices, weights


def direct_mutual_information(indices, labels, n):
    """I(class; expert) in bits from the joint counts, each sample giving 1/K to each chosen."""
    k = indices.shape[1]
    joint = {}
    for row, y in zip(indices.tolist(), labels):
        for e in row:
            joint[(y, e)] = joint.get((y, e), 0.0) + 1.0 / (len(labels) * k)
    py, pe = {}, {}
    for (y, e), p in joint.items():
        py[y] = py.get(y, 0.0) + p
        pe[e] = pe.get(e, 0.0) + p
    return sum(p * math.log2(p / (py[y] * pe[e])) for (y, e), p in joint.items())


# ---------------------------------------------------------------------------------------------
# Diagnostics


def test_a_gate_whose_class_fixes_its_experts_is_alive_and_fully_class_dependent():
    n, k, classes = 8, 4, 4
    labels = torch.arange(400) % classes
    # Class c prefers experts {2c, 2c+1, 2c+2, 2c+3} mod 8: each expert used by two classes.
    logits = torch.full((400, n), -5.0)
    for c in range(classes):
        for j in range(k):
            logits[labels == c, (2 * c + j) % n] = 3.0 - j
    logits += 0.01 * torch.randn_like(logits)
    indices, weights = choices(logits, k)
    diag = gate_diagnostics(indices, weights, labels)
    assert not diag.degenerate, diag.problems
    assert diag.verdict.startswith("The gate chooses by image")
    assert diag.distinct_sets == classes and diag.top_set_share == pytest.approx(0.25)
    assert diag.usage == pytest.approx([1 / n] * n)
    assert sum(diag.image_share) == pytest.approx(k)
    assert diag.mutual_information == pytest.approx(1.0, abs=1e-9)  # log2(N/K): the maximum
    assert diag.class_dependence == pytest.approx(1.0, abs=1e-9)
    assert diag.weight_deviation > 0.1


def test_mutual_information_matches_the_direct_formula_on_a_random_gate():
    torch.manual_seed(0)
    labels = torch.randint(0, 5, (300,))
    logits = torch.randn(300, 6) + torch.nn.functional.one_hot(labels, 6)[:, :6] * 1.5
    indices, weights = choices(logits, 2)
    diag = gate_diagnostics(indices, weights, labels)
    want = direct_mutual_information(indices, labels.tolist(), 6)
    assert diag.mutual_information == pytest.approx(want, rel=1e-9)
    assert 0 < diag.mutual_information < math.log2(3)


def test_a_tied_constant_gate_is_called_degenerate_for_every_reason_it_has():
    # What the release's collapsed gate does in eval: every logit equal, ties to lower indices.
    indices, weights = choices(torch.zeros(1000, 8), 4)
    labels = torch.arange(1000) % 10
    diag = gate_diagnostics(indices, weights, labels)
    assert diag.degenerate
    text = diag.verdict
    assert text.startswith("The gate is degenerate:") and text.endswith(".")
    assert "tie at 1/K = 0.2500" in text
    assert "100% of images choose the same experts {0, 1, 2, 3}" in text
    assert "experts 4, 5, 6, 7 are chosen by under 12.5% of images" in text
    assert "bits about the class" in text
    assert diag.weight_deviation == 0.0 and diag.mutual_information == pytest.approx(0.0)
    # A tie is the opposite of a collapse to one component: all K count.
    assert diag.effective_components == pytest.approx(4.0) and not diag.collapsed
    assert diag.largest_weight == pytest.approx(0.25) and diag.one_hot_share == 0.0


def test_a_k_1_gate_that_chooses_by_image_is_not_called_tied():
    """At K = 1 the one kept weight is 1 by definition: neither a tie nor a collapse."""
    torch.manual_seed(13)
    labels = torch.arange(1000) % 8                      # class c mostly picks expert c
    logits = 3.0 * torch.nn.functional.one_hot(labels, 8) + torch.randn(1000, 8)
    indices, weights = choices(logits, 1)
    diag = gate_diagnostics(indices, weights, labels, logits=logits)
    assert diag.weight_deviation == 0.0 and diag.effective_components == 1.0
    assert not diag.collapsed and not diag.degenerate, diag.verdict
    assert diag.verdict.startswith("The gate chooses by image")
    # the same weights for every image, all at the lowest index: still a constant choice
    same = gate_diagnostics(*choices(torch.zeros(1000, 8), 1), labels)
    assert same.degenerate and "tie" not in same.verdict
    assert "100% of images choose the same experts {0}" in same.verdict


def one_hot_gate(samples: int, n: int = 8, k: int = 4, spread: float = 60.0):
    """A saturated gate as the live gate trained here: the image picks its K experts, but the
    kept logits lie ``spread`` apart, so the first takes (almost) all the weight."""
    torch.manual_seed(11)
    labels = torch.arange(samples) % 10
    base = torch.randn(10, n)[labels] + 0.3 * torch.randn(samples, n)
    return choices(spread * base, k), labels, spread * base


def test_a_one_hot_gate_that_chooses_by_image_is_called_collapsed():
    (indices, weights), labels, logits = one_hot_gate(2000)
    diag = gate_diagnostics(indices, weights, labels, logits=logits)
    # Every other statistic says alive: the experts are used and the choice follows the class.
    assert min(diag.image_share) > 0.05 and diag.top_set_share < 0.5
    assert diag.class_dependence > 0.3 and diag.weight_deviation > 0.3
    assert diag.effective_components < 1.2 and diag.largest_weight > 0.95
    assert diag.one_hot_share > 0.6 and diag.collapsed and diag.degenerate
    assert "collapsed to one component" in diag.verdict
    assert f"{diag.effective_components:.2f} effective components of K = 4" in diag.verdict
    assert diag.logit_span > 50 and diag.kept_logit_gap > 20


def test_a_mixing_gate_passes_and_its_statistics_are_the_formulas():
    torch.manual_seed(12)
    labels = torch.arange(2000) % 10
    logits = torch.randn(10, 8)[labels] + 0.3 * torch.randn(2000, 8)
    indices, weights = choices(logits, 4)
    diag = gate_diagnostics(indices, weights, labels, logits=logits)
    p = weights.gather(1, indices).double()
    assert diag.effective_components == pytest.approx(float((1 / p.square().sum(1)).mean()))
    assert diag.largest_weight == pytest.approx(float(p[:, 0].mean()))
    assert diag.one_hot_share == pytest.approx(float((p[:, 0] > 0.99).double().mean()))
    top = logits.double().sort(1, descending=True).values
    assert diag.logit_span == pytest.approx(float((top[:, 0] - top[:, -1]).median()))
    assert diag.kept_logit_gap == pytest.approx(float((top[:, 0] - top[:, 3]).median()))
    assert 2.0 < diag.effective_components < 4.0 and not diag.collapsed
    assert not diag.degenerate, diag.verdict
    assert "effective components of K = 4" in diag.verdict


def test_effective_components_renormalise_the_kept_weights():
    # Softmax over all N (weighting='all') keeps weights that sum below 1: the chosen are
    # renormalised first, so two equal kept weights count as two components.
    weights = torch.tensor([[0.3, 0.3, 0.2, 0.2]]).repeat(30, 1)
    indices = torch.tensor([[0, 1]]).repeat(30, 1)
    diag = gate_diagnostics(indices, weights.clone().mul_(torch.tensor([1, 1, 0, 0])))
    assert diag.effective_components == pytest.approx(2.0)
    assert diag.largest_weight == pytest.approx(0.5)


def test_no_verdict_from_too_few_images():
    """Two images cannot show a constant choice or a starved component: the verdict says so."""
    (indices, weights), labels, _ = one_hot_gate(2000)
    two = gate_diagnostics(indices[:2], weights[:2], labels[:2])
    assert not two.judged and not two.degenerate and not two.problems
    assert two.verdict == ("Too few images to judge the gate: 2 of the 20 its statistics need "
                           "(10 per component at an even share).")
    assert min_images(8, 4) == 20 and min_images(16, 8) == 20 and min_images(16, 2) == 80
    enough = gate_diagnostics(indices[:20], weights[:20], labels[:20])
    assert enough.judged and enough.collapsed and enough.degenerate
    # The class clause needs far more: the plug-in MI of 20 images is biased up by ~2 bits.
    assert not enough.class_judged
    assert min_images_for_class(10, 8, 4) == 909
    def bias(images):
        return (10 - 1) * (8 - 1) / (2 * images * math.log(2))

    assert bias(909) <= 0.5 * CLASS_BLIND * math.log2(8 / 4) < bias(908)


def test_a_random_gate_uses_everything_but_is_flagged_blind_to_the_class():
    torch.manual_seed(1)
    indices, weights = choices(torch.randn(4000, 8), 4)
    diag = gate_diagnostics(indices, weights, torch.randint(0, 10, (4000,)))
    assert min(diag.image_share) > 0.4 and diag.top_set_share < 0.05
    assert [p for p in diag.problems if "bits about the class" in p]
    assert len(diag.problems) == 1, diag.problems
    # Without labels there is nothing to say about the class, and nothing else is wrong.
    assert not gate_diagnostics(indices, weights).degenerate


def test_cv2_is_the_balance_statistic_over_all_samples():
    torch.manual_seed(2)
    indices, weights = choices(torch.randn(50, 5), 2)
    importance = weights.double().sum(0)
    want = (importance.std() / importance.mean()).square().item()
    assert gate_diagnostics(indices, weights).cv2 == pytest.approx(want, rel=1e-6)


def test_diagnostics_refuse_mismatched_labels_and_empty_input():
    indices, weights = choices(torch.randn(4, 5), 2)
    with pytest.raises(ValueError, match="labels has 3 entries for 4 samples"):
        gate_diagnostics(indices, weights, [0, 1, 2])
    with pytest.raises(ValueError, match="at least one sample"):
        gate_diagnostics(indices[:0], weights[:0])


# ---------------------------------------------------------------------------------------------
# The gate's forms


def test_the_live_gate_sees_a_feature_the_branch_shrank_the_release_gate_does_not():
    """The collapse's mechanism: a gating feature scaled towards zero ties every release weight
    at 1/K; the live gate standardises the feature first, so its weights do not change."""
    torch.manual_seed(3)
    f = torch.randn(64, 10)
    release = NoisyTopKGate(10, 6, 2, form="release").eval()
    live = NoisyTopKGate(10, 6, 2, form="live").train()
    with torch.no_grad():
        for gate in (release, live):
            gate.w_gate.normal_()
    tiny = 1e-4 * f
    assert (release(f).top_weights - 0.5).abs().mean() > 0.1
    assert (release(tiny).top_weights - 0.5).abs().max() < 1e-3
    # Training mode, batch statistics; the clean logits decide once the noise is gone.
    big, small = (top_k_softmax(live(v).clean_logits, 2) for v in (f, tiny))
    same = (big[1].sort(1).values == small[1].sort(1).values).all(1).float().mean()
    assert same > 0.95, same
    assert (small[2] - 0.5).abs().mean() > 0.1


def test_live_gate_running_statistics_standardise_in_eval():
    torch.manual_seed(4)
    gate = NoisyTopKGate(5, 4, 2, form="live").train()
    f = 3.0 + 2.0 * torch.randn(256, 5)
    for _ in range(120):
        gate(f)
    gate.eval()
    torch.testing.assert_close(gate.norm.running_mean, f.mean(0), atol=1e-3, rtol=0)
    with torch.no_grad():
        gate.w_gate.copy_(torch.eye(4, 5))
    clean = gate(f).clean_logits
    assert clean.mean(0).abs().max() < 1e-2 and (clean.std(0) - 1).abs().max() < 1e-2
    # A batch of one uses the running statistics.
    one = NoisyTopKGate(5, 4, 2, form="live").train()(f[:1])
    assert one.indices.shape == (1, 2)


def test_gate_forms_and_overrides():
    gate = NoisyTopKGate(4, 4, 2)
    assert gate.form == "mixing" and gate.noise == "expert" and gate.router == "cosine"
    assert gate.logit_scale == GATE_FORMS["mixing"]["logit_scale"]
    release = NoisyTopKGate(4, 4, 2, form="release")
    assert release.noise == "sample" and release.random_ties and release.router == "linear"
    assert (release.w_gate == 0.25).all()
    mixed = NoisyTopKGate(4, 4, 2, noise="sample", form="live")
    assert mixed.noise == "sample" and not mixed.random_ties
    with pytest.raises(ValueError, match="form 'paper'; expected one of mixing, release, live"):
        NoisyTopKGate(4, form="paper")
    with pytest.raises(ValueError, match="a cosine router needs init='normal'"):
        NoisyTopKGate(4, 4, 2, form="live", router="cosine")
    with pytest.raises(ValueError, match=r"logit_scale must be in \(0, 100\]"):
        NoisyTopKGate(4, 4, 2, logit_scale=0.0)


def test_bundled_zoo_mixtures_default_to_the_mixing_gate():
    for name in ("small_gmsop", "small_gmgap", "resnet18_gmsop_16_8"):
        gate = create_model(name, num_classes=10).head.gate
        assert gate.form == "mixing" and gate.router == "cosine", name


def test_the_cosine_router_bounds_the_logits_and_ignores_their_scale():
    """r(f) = s cos(f', w_n): every clean logit in [-s, s] however large the gate's weights or
    its feature grow, which is what keeps the softmax over the kept from saturating."""
    torch.manual_seed(8)
    gate = NoisyTopKGate(6, 5, 2, form="mixing", logit_scale=3.0, input_norm="none").eval()
    f = torch.randn(32, 6, dtype=torch.float64)
    gate.double()
    rows = gate.w_gate.detach()
    want = 3.0 * (f / f.norm(dim=1, keepdim=True)) @ (rows / rows.norm(dim=1, keepdim=True)).T
    out = gate(f)
    torch.testing.assert_close(out.clean_logits, want)
    assert out.clean_logits.abs().max() <= 3.0
    with torch.no_grad():
        gate.w_gate.mul_(1e4)
    torch.testing.assert_close(gate(1e3 * f).clean_logits, want)
    # The linear router of the live gate has no such bound.
    live = NoisyTopKGate(6, 5, 2, form="live", input_norm="none").double().eval()
    with torch.no_grad():
        live.w_gate.copy_(1e4 * rows)
    assert live(f).clean_logits.abs().max() > 1e3


def test_a_learned_logit_scale_is_a_parameter_capped_at_its_maximum():
    gate = NoisyTopKGate(6, 5, 2, learn_scale=True, logit_scale=2.0, max_logit_scale=5.0)
    assert isinstance(gate.log_scale, torch.nn.Parameter)
    assert gate.logit_scale == pytest.approx(2.0)
    with torch.no_grad():
        gate.log_scale.fill_(math.log(50.0))
    assert gate.logit_scale == 5.0
    assert gate.eval()(torch.randn(8, 6)).clean_logits.abs().max() <= 5.0
    fixed = NoisyTopKGate(6, 5, 2)
    assert fixed.log_scale is None and "log_scale" not in dict(fixed.named_parameters())


def test_softmax_over_all_keeps_the_chosen_probabilities_and_renormalised_is_the_paper():
    torch.manual_seed(9)
    logits = torch.randn(10, 7, dtype=torch.float64)
    kept, indices, top = top_k_softmax(logits, 3)
    full, indices_all, top_all = top_k_softmax(logits, 3, over="all")
    assert torch.equal(indices, indices_all)
    torch.testing.assert_close(top_all, logits.softmax(-1).gather(1, indices))
    assert (full.sum(1) < 1).all()
    # GShard renormalises the kept probabilities over the K: exactly the softmax over the kept.
    torch.testing.assert_close(top_all / top_all.sum(1, keepdim=True), top)
    with pytest.raises(ValueError, match="unknown gate weighting 'none'"):
        top_k_softmax(logits, 3, over="none")


def test_router_z_loss_is_the_mean_squared_logsumexp():
    torch.manual_seed(10)
    logits = torch.randn(6, 4, dtype=torch.float64) * 5
    want = 1e-3 * sum(math.log(sum(math.exp(v) for v in row)) ** 2 for row in logits.tolist()) / 6
    assert router_z_loss(logits).item() == pytest.approx(want, rel=1e-12)
    head = create_model("small_gmsop", num_classes=3, in_chans=1,
                        head_kwargs={"z_loss_weight": 1e-2, "alpha": 0.0}).head.train()
    recorded = {}
    hook = head.gate.tap_gate_clean_logits.register_forward_hook(
        lambda m, a, o: recorded.setdefault("logits", a[0].detach()))
    _, aux = head(torch.randn(6, 64, 7, 7), return_aux=True)
    hook.remove()
    assert aux.item() == pytest.approx(router_z_loss(recorded["logits"], 1e-2).item(), rel=1e-6)


# ---------------------------------------------------------------------------------------------
# Shazeer's load loss


def direct_load(clean, noisy, scale, k):
    b, n = clean.shape
    load = [0.0] * n
    for s in range(b):
        for e in range(n):
            others = sorted((noisy[s, j].item() for j in range(n) if j != e), reverse=True)
            threshold = others[k - 1]
            z = (clean[s, e].item() - threshold) / scale[s, e].item()
            load[e] += 0.5 * (1 + math.erf(z / math.sqrt(2)))
    return torch.tensor(load, dtype=torch.float64)


def test_load_loss_is_the_cv2_of_the_probability_each_expert_stays_chosen():
    torch.manual_seed(5)
    clean = torch.randn(12, 5, dtype=torch.float64)
    scale = torch.rand(12, 5, dtype=torch.float64) + 0.5
    noisy = clean + scale * torch.randn(12, 5, dtype=torch.float64)
    load = direct_load(clean, noisy, scale, 2)
    want = 0.01 * (load.var(correction=0) / load.mean() ** 2)
    assert load_loss(clean, noisy, scale, 2).item() == pytest.approx(want.item(), rel=1e-9)


def test_load_loss_gives_every_expert_a_gradient_chosen_or_not():
    torch.manual_seed(6)
    clean = torch.randn(16, 6, dtype=torch.float64, requires_grad=True)
    scale = torch.full((16, 6), 0.5, dtype=torch.float64)
    noisy = clean + scale * torch.randn(16, 6, dtype=torch.float64)
    load_loss(clean, noisy, scale, 2).backward()
    assert (clean.grad.abs().sum(0) > 0).all()
    assert load_loss(clean, noisy, scale, 6).item() == 0.0  # k = N: everything always chosen


# ---------------------------------------------------------------------------------------------
# Recorder and model-level diagnosis


def test_diagnose_gate_over_images_and_over_a_loader_agree():
    torch.manual_seed(7)
    model = create_model("small_gmgap", num_classes=3, in_chans=1)
    x, y = torch.randn(40, 1, 28, 28), torch.arange(40) % 3
    model.train()
    whole = diagnose_gate(model, x, y, batch_size=16)
    batches = diagnose_gate(model, [(x[:25], y[:25]), (x[25:], y[25:])])
    assert model.training, "the model's mode is restored"
    assert whole.samples == batches.samples == 40
    assert whole.usage == pytest.approx(batches.usage)
    assert whole.mutual_information == pytest.approx(batches.mutual_information)
    with GateRecorder(model) as rec:
        model.eval()(x[:5])
    assert rec.gate_path == "head.gate" and rec.tensors()[0].shape == (5, 4)


def test_diagnose_gate_refuses_a_model_without_a_gate():
    with pytest.raises(ValueError, match="has no gate to diagnose"):
        diagnose_gate(create_model("small_vanilla", num_classes=3, in_chans=1),
                      torch.randn(2, 1, 28, 28))
