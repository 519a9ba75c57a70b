"""The GM-SOP gate's forms, Shazeer's load loss, and the gate diagnostics (gsoplib.heads.gate)."""

from __future__ import annotations

import math

import pytest
import torch

from gsoplib.heads.gate import (
    GateRecorder,
    NoisyTopKGate,
    diagnose_gate,
    gate_diagnostics,
    load_loss,
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
    indices, weights = choices(torch.zeros(200, 8), 4)
    labels = torch.arange(200) % 10
    diag = gate_diagnostics(indices, weights, labels)
    assert diag.degenerate
    text = diag.verdict
    assert text.startswith("The gate is degenerate:") and text.endswith(".")
    assert "tie at 1/K = 0.2500" in text
    assert "100% of images choose the same experts {0, 1, 2, 3}" in text
    assert "experts 4, 5, 6, 7 are chosen by under 12.5% of images" in text
    assert "bits about the class" in text
    assert diag.weight_deviation == 0.0 and diag.mutual_information == pytest.approx(0.0)


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
    gate = NoisyTopKGate(5, 4, 2).train()
    f = 3.0 + 2.0 * torch.randn(256, 5)
    for _ in range(120):
        gate(f)
    gate.eval()
    torch.testing.assert_close(gate.norm.running_mean, f.mean(0), atol=1e-3, rtol=0)
    with torch.no_grad():
        gate.w_gate.copy_(torch.eye(4, 5))
    clean = gate(f).clean_logits
    assert clean.mean(0).abs().max() < 1e-2 and (clean.std(0) - 1).abs().max() < 1e-2
    one = NoisyTopKGate(5, 4, 2).train()(f[:1])  # a batch of one uses the running statistics
    assert one.indices.shape == (1, 2)


def test_gate_forms_and_overrides():
    assert NoisyTopKGate(4, 4, 2).noise == "expert"
    release = NoisyTopKGate(4, 4, 2, form="release")
    assert release.noise == "sample" and release.random_ties
    assert (release.w_gate == 0.25).all()
    mixed = NoisyTopKGate(4, 4, 2, noise="sample", form="live")
    assert mixed.noise == "sample" and not mixed.random_ties
    with pytest.raises(ValueError, match="gate form 'paper'; expected one of release, live"):
        NoisyTopKGate(4, form="paper")


def test_bundled_zoo_mixtures_default_to_the_live_gate():
    for name in ("small_gmsop", "small_gmgap", "resnet18_gmsop_16_8"):
        gate = create_model(name, num_classes=10).head.gate
        assert gate.form == "live" and gate.noise == "expert", name


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
