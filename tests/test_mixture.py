"""GM-SOP head (NeurIPS 2018): gate (Eq. 2-3), balance loss (Eq. 4), components (Eq. 5-6),
sparse dispatch against a dense masked reference, baselines, and the Fig. 2 balance effect."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from gsoplib.heads.mixture import (
    AverageMixtureHead,
    ComponentHead,
    GatedMixtureHead,
    NoisyTopKGate,
    balance_loss,
    parametric_gap,
    parametric_srsop,
    top_k_softmax,
)
from gsoplib.ops import sqrtm_eigh, triu_vec
from gsoplib.taps import taps

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def small_head(component="sop", execution="dispatch", **kw):
    """A GM head small enough for float64 checks: 6 CMs, K = 3, SR-SOP 12 -> 6 channels."""
    kw = {"num_classes": 5, "sop_channels": (12, 6), "gap_dim": 7, **kw}
    return GatedMixtureHead(8, component, 6, 3, execution=execution, **kw)


def assert_k_sparse_distribution(weights, indices, k):
    nonzero = weights != 0
    assert torch.all(nonzero.sum(dim=1) == k)
    torch.testing.assert_close(
        weights.sum(dim=1), torch.ones(weights.shape[0], dtype=weights.dtype)
    )
    chosen = torch.zeros_like(nonzero).scatter(1, indices, True)
    assert torch.equal(chosen, nonzero), "the non-zeros are not the chosen indices"


# ---------------------------------------------------------------------------------------------
# Gate


@pytest.mark.parametrize("noise", ["sample", "expert"])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("k", [1, 3, 8, 16])
def test_gate_weights_have_exactly_k_nonzeros_summing_to_one(noise, training, k):
    gate = NoisyTopKGate(20, num_experts=16, k=k, noise=noise, init="normal").train(training)
    torch.nn.init.normal_(gate.w_gate)
    torch.nn.init.normal_(gate.w_noise)
    out = gate(torch.randn(64, 20))
    assert out.indices.shape == (64, k) and out.top_weights.shape == (64, k)
    assert_k_sparse_distribution(out.weights, out.indices, k)


@pytest.mark.parametrize("training", [True, False])
def test_gate_weights_stay_k_sparse_with_ties_and_huge_logit_gaps(training):
    # Constant initialisation (the release): every logit of a sample ties.
    gate = NoisyTopKGate(10, num_experts=16, k=8, noise="sample", form="release",
                         random_ties=False).train(training)
    out = gate(torch.randn(32, 10))
    assert torch.all(out.clean_logits == out.clean_logits[:, :1])
    assert_k_sparse_distribution(out.weights, out.indices, 8)
    torch.testing.assert_close(out.top_weights, torch.full((32, 8), 1 / 8))
    # Gaps that underflow a float32 softmax (exp(-1000) == 0) still leave k non-zeros.
    logits = torch.tensor([[0.0, -1000.0, 5.0, -3000.0, 7.0, 7.0]])
    weights, indices, _ = top_k_softmax(logits, 4)
    assert_k_sparse_distribution(weights, indices, 4)


def test_top_k_softmax_is_eq3_topk_on_raw_logits_then_softmax_over_the_kept():
    logits = torch.randn(50, 16, dtype=torch.float64)
    weights, indices, top_weights = top_k_softmax(logits, 5)
    kth = logits.sort(dim=1, descending=True).values[:, 4:5]
    masked = logits.masked_fill(logits < kth, float("-inf"))  # Eq. 3 literally
    torch.testing.assert_close(weights, masked.softmax(dim=1))
    torch.testing.assert_close(top_weights, weights.gather(1, indices))
    assert torch.all(top_weights[:, :-1] >= top_weights[:, 1:]), "indices are not best first"


def test_ties_go_to_the_lower_index_in_eval_and_to_a_random_one_in_training():
    tied = torch.zeros(4000, 8)
    _, indices, _ = top_k_softmax(tied, 2)
    assert torch.equal(indices, torch.tensor([[0, 1]]).expand(4000, 2))
    _, indices, _ = top_k_softmax(tied, 2, random_ties=True)
    counts = torch.bincount(indices.flatten(), minlength=8).double()
    expected = 4000 * 2 / 8
    assert torch.all((counts - expected).abs() < 0.1 * expected), counts  # uniform within 10%
    assert torch.all(indices[:, 0] != indices[:, 1])


@pytest.mark.parametrize("noise", ["sample", "expert"])
def test_gate_is_noiseless_and_deterministic_in_eval(noise):
    gate = NoisyTopKGate(12, num_experts=16, k=4, noise=noise)
    torch.nn.init.normal_(gate.w_gate, std=0.01)
    torch.nn.init.normal_(gate.w_noise)
    f = torch.randn(40, 12)
    gate.eval()
    first, second = gate(f), gate(f)
    assert torch.equal(first.noisy_logits, first.clean_logits)
    assert torch.equal(first.indices, second.indices) and torch.equal(first.weights, second.weights)
    gate.train()
    noisy = gate(f)
    assert not torch.equal(noisy.noisy_logits, noisy.clean_logits)
    assert not torch.equal(noisy.indices, first.indices), "training noise never changed a choice"


def test_noise_follows_eq2_one_gamma_per_sample_or_per_expert():
    f = torch.randn(2000, 6, dtype=torch.float64)
    for noise, per_expert in [("sample", False), ("expert", True)]:
        gate = NoisyTopKGate(6, num_experts=5, k=2, noise=noise, input_norm="none", form="live")
        torch.nn.init.normal_(gate.w_gate)
        torch.nn.init.normal_(gate.w_noise)
        out = gate(f)
        torch.testing.assert_close(out.clean_logits, f @ gate.w_gate.detach().double().T)
        scale = F.softplus(f @ gate.w_noise.detach().double().T) + gate.noise_epsilon
        gamma = (out.noisy_logits - out.clean_logits).detach() / scale
        spread = (gamma - gamma[:, :1]).abs().max().item()
        assert (spread > 0.1) if per_expert else (spread < 1e-4), (noise, spread)
        assert abs(gamma.mean().item()) < 0.1 and abs(gamma.std().item() - 1) < 0.1


def test_gate_rejects_bad_arguments_naming_the_choices():
    with pytest.raises(ValueError, match="sample, expert"):
        NoisyTopKGate(4, noise="gumbel")
    with pytest.raises(ValueError, match="k must be between 1 and num_experts=4"):
        NoisyTopKGate(4, num_experts=4, k=5)


# ---------------------------------------------------------------------------------------------
# Balance loss


def test_balance_loss_is_zero_for_even_importance_and_grows_with_imbalance():
    even = torch.full((8, 4), 0.25)
    assert balance_loss(even).item() == 0.0
    permuted_one_hot = torch.eye(4).repeat(2, 1)  # every CM gets two whole samples
    assert balance_loss(permuted_one_hot).item() == 0.0
    losses = []
    for skew in [0.0, 0.1, 0.3, 0.6, 0.9]:
        w = torch.full((8, 4), (1 - skew) / 4)
        w[:, 0] += skew
        losses.append(balance_loss(w).item())
    assert all(b > a for a, b in zip(losses, losses[1:])), losses


def test_balance_loss_is_alpha_times_the_squared_coefficient_of_variation():
    w = torch.rand(10, 6, dtype=torch.float64).softmax(dim=1)
    importance = w.sum(dim=0)
    for unbiased, ddof in [(True, 1), (False, 0)]:
        var = ((importance - importance.mean()) ** 2).sum() / (6 - ddof)
        expected = 100 * var / importance.mean() ** 2
        torch.testing.assert_close(balance_loss(w, 100, unbiased), expected)
    assert balance_loss(w, alpha=0.0).item() == 0.0
    torch.testing.assert_close(balance_loss(w, 7.0), 0.07 * balance_loss(w))


# ---------------------------------------------------------------------------------------------
# Component models


def direct_covariance(z):
    z = z.flatten(2)
    zc = z - z.mean(dim=2, keepdim=True)
    return zc @ zc.transpose(1, 2) / z.shape[2]


def test_parametric_srsop_is_two_relu_1x1_convs_then_the_square_root_covariance():
    cm = parametric_srsop(10, channels=(16, 6), iters=30).double()
    assert cm.dim == 21
    x = torch.randn(3, 10, 5, 5, dtype=torch.float64)
    w1, w2 = (conv.weight.squeeze(-1).squeeze(-1) for conv in cm.project[::2])
    z = torch.relu(
        torch.einsum("oc,bchw->bohw", w2, torch.relu(torch.einsum("oc,bchw->bohw", w1, x)))
    )
    expected = triu_vec(sqrtm_eigh(direct_covariance(z)))  # Eq. 5-6 with an exact root
    torch.testing.assert_close(cm(x), expected, atol=1e-7, rtol=1e-6)


def test_release_srsop_component_is_8256d_with_65k_parameters():
    cm = parametric_srsop(128)
    assert cm.dim == 8256 == cm(torch.randn(2, 128, 8, 8)).shape[1]
    assert sum(p.numel() for p in cm.parameters()) == 128 * 256 + 256 * 128  # no bias, no BN
    plain = parametric_srsop(128, channels=())
    assert plain.dim == 8256 and sum(p.numel() for p in plain.parameters()) == 0


def test_parametric_gap_is_relu_1x1_conv_then_average():
    cm = parametric_gap(6, dim=9).double()
    x = torch.randn(4, 6, 3, 5, dtype=torch.float64)
    weight = cm.project[0].weight.squeeze(-1).squeeze(-1)
    expected = torch.relu(torch.einsum("oc,bchw->bohw", weight, x)).mean(dim=(2, 3))
    torch.testing.assert_close(cm(x), expected)


def test_unknown_component_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown component 'vlad'; expected one of sop, gap"):
        GatedMixtureHead(8, "vlad")
    with pytest.raises(ValueError, match="dispatch, dense"):
        GatedMixtureHead(8, execution="masked")


# ---------------------------------------------------------------------------------------------
# Sparse dispatch against the dense masked computation


def dense_reference(head, x):
    """All N CMs on the whole batch, one by one, weighted by the (B, N) gate: the masked form."""
    gate = head.gate(head.gate_branch(x.detach() if head.gate_detach else x))
    rep = sum(gate.weights[:, n : n + 1] * cm(x) for n, cm in enumerate(head.components))
    return head.classifier(rep), balance_loss(gate.weights, head.alpha, head.unbiased)


def outputs_and_grads(fn, head, x, upstream):
    head.zero_grad(set_to_none=True)
    x = x.detach().requires_grad_(True)
    torch.manual_seed(123)  # the same gate noise, tie-breaks and dropout for every path
    logits, aux = fn(x)
    ((logits * upstream).sum() + aux).backward()
    grads = {n: p.grad for n, p in head.named_parameters()}
    return logits.detach(), aux.detach(), x.grad, grads


@pytest.mark.parametrize("component", ["sop", "gap"])
@pytest.mark.parametrize("training", [True, False])
def test_dispatch_gives_the_dense_masked_output_and_gradients(component, training):
    head = small_head(component, gate_init="normal", noise="expert").double().train(training)
    for p in head.gate.parameters():
        torch.nn.init.normal_(p, std=0.05)
    x = torch.randn(10, 8, 4, 4, dtype=torch.float64)
    upstream = torch.randn(10, 5, dtype=torch.float64)
    if not training:
        head.classifier[0].running_var.uniform_(0.5, 2.0)  # eval BN is not the identity
    got = outputs_and_grads(lambda x: head(x, return_aux=True), head, x, upstream)
    ref = outputs_and_grads(lambda x: dense_reference(head, x), head, x, upstream)
    torch.testing.assert_close(got[0], ref[0])
    torch.testing.assert_close(got[1], ref[1])
    torch.testing.assert_close(got[2], ref[2])
    for name, param in head.named_parameters():
        # A CM no sample chose has no gradient under dispatch; the masked form gives it zeros.
        # (The noise weights get none in eval on either path.)
        dispatched, masked = (g[3][name] for g in (got, ref))
        zeros = torch.zeros_like(param)
        torch.testing.assert_close(
            zeros if dispatched is None else dispatched, zeros if masked is None else masked
        )
    masked = small_head(component, execution="dense", gate_init="normal", noise="expert")
    masked.double().train(training).load_state_dict(head.state_dict())
    dense = outputs_and_grads(lambda x: masked(x, return_aux=True), masked, x, upstream)
    torch.testing.assert_close(dense[0], ref[0])
    torch.testing.assert_close(dense[2], ref[2])


def test_dispatch_runs_each_cm_only_on_the_samples_routed_to_it():
    head = small_head("sop").eval()
    torch.nn.init.normal_(head.gate.w_gate)
    seen = {}

    def record(n):
        def hook(module, inputs, output):
            seen[n] = seen.get(n, 0) + inputs[0].shape[0]

        return hook

    for n, cm in enumerate(head.components):
        cm.register_forward_hook(record(n))
    x = torch.randn(20, 8, 4, 4)
    head(x)
    indices = head.gate(head.gate_branch(x)).indices
    counts = torch.bincount(indices.flatten(), minlength=6)
    assert sum(seen.values()) == 20 * 3, "the CMs ran on more than B*K samples"
    assert all(seen.get(n, 0) == counts[n] for n in range(6)), (seen, counts)


def test_a_cm_nobody_chose_does_not_run_and_gets_no_gradient():
    head = small_head("gap", gate_branch="gap", gate_input_norm="none").train()
    with torch.no_grad():
        head.gate.w_gate.zero_()
        head.gate.w_noise.fill_(-50.0)  # softplus ~ 0: no noise, so the ties decide
        head.gate.w_gate[:3] = 1.0  # CMs 0-2 always win on a positive gate input
    x = torch.rand(6, 8, 3, 3) + 0.5
    logits, aux = head(x, return_aux=True)
    (logits.sum() + aux).backward()
    assert all(head.components[n].project[0].weight.grad is not None for n in range(3))
    assert all(head.components[n].project[0].weight.grad is None for n in range(3, 6))


def test_taps_expose_the_gate_and_the_chosen_components():
    head = small_head("sop").train()
    records = {}
    for path, tap in taps(head).items():
        tap.register_forward_hook(lambda m, inp, out, path=path: records.update({path: inp[0]}))
    x = torch.randn(7, 8, 4, 4)
    torch.manual_seed(5)
    head(x)
    got = dict(records)  # the reference calls below run the taps again
    assert got["gate.tap_gate_clean_logits"].shape == (7, 6)
    assert got["gate.tap_gate_noisy_logits"].shape == (7, 6)
    assert got["gate.tap_gate_weights"].shape == (7, 6)
    indices = got["gate.tap_gate_indices"]
    assert indices.shape == (7, 3)
    assert_k_sparse_distribution(got["gate.tap_gate_weights"], indices, 3)
    norms = got["tap_component_norms"]
    expected = torch.stack(
        [head.components[int(n)](x[b : b + 1]).norm() for b in range(7) for n in indices[b]]
    ).view(7, 3)
    torch.testing.assert_close(norms, expected, rtol=1e-4, atol=1e-5)
    for n, cm in enumerate(head.components):
        routed = (indices == n).any(dim=1)
        if not routed.any():
            assert f"components.{n}.pool.tap_cov" not in got
            continue
        expected = direct_covariance(cm.project(x[routed]))
        cov = got[f"components.{n}.pool.tap_cov"]
        torch.testing.assert_close(cov, expected, rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# Baselines and the head contract


def test_average_head_is_the_equal_weight_mean_of_all_components():
    head = AverageMixtureHead(8, "sop", 4, num_classes=5, sop_channels=(12, 6)).double().eval()
    x = torch.randn(3, 8, 4, 4, dtype=torch.float64)
    expected = head.classifier(sum(cm(x) for cm in head.components) / 4)
    logits, aux = head(x, return_aux=True)
    torch.testing.assert_close(logits, expected)
    assert aux.item() == 0.0 and aux.dim() == 0


@pytest.mark.parametrize(
    "make",
    [
        lambda: small_head("sop"),
        lambda: small_head("gap"),
        lambda: AverageMixtureHead(8, "gap", 4, num_classes=5, gap_dim=7),
        lambda: ComponentHead(8, "sop", num_classes=5, sop_channels=(12, 6)),
        lambda: ComponentHead(8, "gap", num_classes=5, gap_dim=512),
    ],
)
def test_heads_follow_the_return_aux_contract(make):
    head = make().train()
    x = torch.randn(4, 8, 5, 5)
    logits = head(x)
    assert logits.shape == (4, 5)
    logits, aux = head(x, return_aux=True)
    assert logits.shape == (4, 5) and aux.dim() == 0 and torch.isfinite(aux)
    (logits.sum() + aux).backward()


def test_dead_features_give_finite_outputs_and_gradients():
    head = small_head("sop").train()
    x = torch.zeros(4, 8, 4, 4, requires_grad=True)
    logits, aux = head(x, return_aux=True)
    (logits.sum() + aux).backward()
    assert torch.isfinite(logits).all() and torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in head.parameters() if p.grad is not None)


def test_bfloat16_autocast_keeps_gate_and_pooling_in_float32():
    head = small_head("sop").train()
    records = {}
    head.gate.tap_gate_weights.register_forward_hook(lambda m, i, o: records.update(w=i[0]))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits, aux = head(torch.randn(6, 8, 4, 4), return_aux=True)
    assert records["w"].dtype == torch.float32 and aux.dtype == torch.float32
    assert_k_sparse_distribution(records["w"], records["w"].topk(3).indices, 3)
    assert torch.isfinite(logits.float()).all()


# ---------------------------------------------------------------------------------------------
# Fig. 2: the balance loss keeps many components busy


def busy_components_after_training(alpha: float, seed: int = 0) -> tuple[int, float]:
    """GM-GAP-16-4 with the release's gate on a 10-class toy set, 150 SGD steps; returns the
    number of CMs that receive at least a quarter of an even share of the eval-time assignments,
    and their CV. (The live gate's Fig. 2 is measured by benchmarks/balance.py.)"""
    torch.manual_seed(seed)
    classes, samples, batch = 10, 512, 64
    x = torch.randn(classes, 8, 1, 1)
    labels = torch.randint(0, classes, (samples,))
    x = x[labels] + 0.8 * torch.randn(samples, 8, 4, 4)
    head = GatedMixtureHead(
        8, "gap", 16, 4, num_classes=classes, gap_dim=16, alpha=alpha, dropout=0.0,
        gate="release",
    )
    opt = torch.optim.SGD(head.parameters(), lr=0.02, momentum=0.9)
    for _ in range(150):
        idx = torch.randint(0, samples, (batch,))
        logits, aux = head(x[idx], return_aux=True)
        loss = F.cross_entropy(logits, labels[idx]) + aux
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        load = torch.bincount(head.gate(head.gate_branch(x)).indices.flatten(), minlength=16)
    even_share = samples * 4 / 16
    return int((load > even_share / 4).sum()), (load.double().std() / load.double().mean()).item()


def test_balance_loss_spreads_samples_over_more_components_fig2():
    busy_off, cv_off = busy_components_after_training(alpha=0.0)
    busy_on, cv_on = busy_components_after_training(alpha=100.0)
    # The paper: ~4 of 16 busy without the loss, most with alpha = 100. Asserted loosely.
    assert busy_on >= 14, busy_on
    assert busy_off <= busy_on - 3, (busy_off, busy_on)
    assert cv_on < 0.5 * cv_off, (cv_on, cv_off)


# ---------------------------------------------------------------------------------------------
# Benchmark script


@pytest.mark.slow
def test_mixture_benchmark_quick_run_writes_rows(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            str(BENCHMARKS / "mixture.py"),
            "--quick",
            "--device",
            "cpu",
            "--out",
            str(tmp_path),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    result = json.loads((tmp_path / "mixture-cpu.json").read_text())
    methods = {row["method"] for row in result["rows"]}
    assert {"GM-SOP-16-8 (dispatch)", "GM-SOP-16-8 (dense masked)", "Ave-SOP-16", "SR-SOP"} <= (
        methods
    )
    assert all(row["fwd_bwd_ms"] > 0 for row in result["rows"])
    assert result["machine"]["cpu_count"] >= 1
    assert "| GM-SOP-16-8 (dispatch) |" in out.stdout
