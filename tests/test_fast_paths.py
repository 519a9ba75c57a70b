"""Every fast path gives what the plain path gives (issue: GPU performance, item 2).

Tolerances: float64 paths agree to 1e-10 relative (only the order of the sums differs); float32
paths to 1e-5; the bf16 Newton-Schulz is held to a measured bound against float64.
"""

import math

import pytest
import torch
from conftest import requires_cuda, spd_batch

from gsoplib.blocks import GSoPChannel, GSoPPosition, RowwiseEmbedding
from gsoplib.heads.mixture import (
    GatedMixtureHead,
    dispatch_mixture,
    grouped_mixture,
    make_component,
    top_k_softmax,
)
from gsoplib.models import create_model
from gsoplib.ops import covariance, position_covariance, sqrtm_newton_schulz
from gsoplib.ops.compiled import compiled_sqrtm, graphed_sqrtm
from gsoplib.train.evaluation import ComponentUsage

F64 = {"rtol": 1e-10, "atol": 1e-12}


def fwd_bwd(fn, a, grad):
    leaf = a.detach().clone().requires_grad_(True)
    out = fn(leaf)
    out.backward(grad)
    return out.detach(), leaf.grad


# --------------------------------------------------------------------------------------------
# Newton-Schulz
# --------------------------------------------------------------------------------------------


def test_compiled_sqrtm_equals_the_eager_iteration_forward_and_backward():
    a = spd_batch(3, 12, condition=100.0)
    grad = torch.randn_like(a)
    fast = compiled_sqrtm(iters=5, backend="aot_eager")
    y_fast, g_fast = fwd_bwd(fast, a, grad)
    y_plain, g_plain = fwd_bwd(lambda t: sqrtm_newton_schulz(t, iters=5), a, grad)
    torch.testing.assert_close(y_fast, y_plain, **F64)
    torch.testing.assert_close(g_fast, g_plain, **F64)


def test_compiled_and_graphed_sqrtm_refuse_bad_arguments_in_one_sentence():
    with pytest.raises(ValueError, match="iters must be >= 1"):
        compiled_sqrtm(iters=0)
    with pytest.raises(ValueError, match="needs a CUDA device"):
        graphed_sqrtm((2, 4, 4), device="cpu")


def conv_feature_covariances() -> torch.Tensor:
    """(8, 64, 64) covariances of a real network's last-stage features (small ResNet-20)."""
    torch.manual_seed(0)
    model = create_model("small_vanilla", num_classes=10, in_chans=1).double().eval()
    images = torch.rand(8, 1, 28, 28, dtype=torch.float64)
    with torch.no_grad():
        feats = model.forward_features(images)
    return covariance(feats) + 1e-6 * torch.eye(feats.shape[1], dtype=torch.float64)


def relative_error(approx: torch.Tensor, exact: torch.Tensor) -> torch.Tensor:
    return torch.linalg.matrix_norm(approx.double() - exact) / torch.linalg.matrix_norm(exact)


@pytest.mark.parametrize("iters", [3, 5])
def test_bf16_newton_schulz_stays_within_2e2_of_float64_on_conv_covariances(iters):
    cov = conv_feature_covariances()
    exact = sqrtm_newton_schulz(cov, iters=iters)  # float64, the same N: rounding error only
    bf16 = relative_error(
        sqrtm_newton_schulz(cov.float(), iters=iters, matmul_dtype=torch.bfloat16), exact
    )
    fp32 = relative_error(sqrtm_newton_schulz(cov.float(), iters=iters), exact)
    print(f"N={iters}: bf16 {bf16.max():.2e}, fp32 {fp32.max():.2e} relative error vs float64")
    assert bf16.max() < 2e-2
    # bf16 really ran: its rounding error is far above float32's.
    assert bf16.min() > 10 * fp32.max()


@requires_cuda
@pytest.mark.parametrize("dtype", [None, torch.bfloat16])
def test_graphed_and_compiled_sqrtm_equal_eager_on_cuda(dtype):
    a = spd_batch(16, 32, condition=100.0, dtype=torch.float32).cuda()
    grad = torch.randn_like(a)
    # Saved and restored by hand: monkeypatch cannot undo this attribute (cuBLASModule serves
    # it from __getattr__, so monkeypatch records it as absent and undo tries delattr).
    old_tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        plain = fwd_bwd(lambda t: sqrtm_newton_schulz(t, iters=5, matmul_dtype=dtype), a, grad)
        graphed = graphed_sqrtm(a.shape, iters=5, matmul_dtype=dtype)
        compiled = compiled_sqrtm(iters=5, matmul_dtype=dtype)
        tol = {"rtol": 1e-4, "atol": 1e-5} if dtype is None else {"rtol": 2e-2, "atol": 2e-2}
        for fast in (graphed, compiled):
            for _ in range(2):  # the second call replays the graph / reuses the compiled code
                out = fwd_bwd(fast, a, grad)
            torch.testing.assert_close(out[0], plain[0], **tol)
            torch.testing.assert_close(out[1], plain[1], **tol)
        with pytest.raises(ValueError, match="was captured for"):
            graphed(a[:2])
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old_tf32


# --------------------------------------------------------------------------------------------
# Covariance on channels_last input
# --------------------------------------------------------------------------------------------


def test_covariance_of_channels_last_equals_contiguous_and_keeps_its_layout():
    x = torch.randn(3, 6, 5, 4, dtype=torch.float64)
    grad = torch.randn(3, 6, 6, dtype=torch.float64)
    y_plain, g_plain = fwd_bwd(covariance, x, grad)
    y_cl, g_cl = fwd_bwd(covariance, x.contiguous(memory_format=torch.channels_last), grad)
    torch.testing.assert_close(y_cl, y_plain, **F64)
    torch.testing.assert_close(g_cl, g_plain, **F64)
    assert g_cl.is_contiguous(memory_format=torch.channels_last)
    assert g_plain.is_contiguous()


def test_covariance_of_channels_last_makes_no_copy_forward_or_backward():
    x = torch.randn(4, 8, 5, 6).contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    with torch.profiler.profile(record_shapes=True) as prof:
        covariance(x).sum().backward()
    copies = [
        (e.name, e.input_shapes)
        for e in prof.events()
        if e.name in ("aten::copy_", "aten::clone", "aten::contiguous")
        and any(math.prod(s) > 1 for s in e.input_shapes if s)
    ]
    assert copies == []


def test_channels_last_and_position_covariance_gradcheck():
    x = torch.randn(2, 3, 3, 2, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    assert torch.autograd.gradcheck(covariance, (x.requires_grad_(True),))
    z = torch.randn(2, 5, 2, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(position_covariance, (z,))


# --------------------------------------------------------------------------------------------
# Row-wise embedding: grouped conv against einsum
# --------------------------------------------------------------------------------------------


def test_einsum_row_embedding_equals_the_grouped_conv_with_the_same_parameters():
    conv = RowwiseEmbedding(6, impl="conv").double().train()
    fast = RowwiseEmbedding(6, impl="einsum").double().train()
    fast.load_state_dict(conv.state_dict())  # the same parameters: state dicts are shared
    cov = torch.randn(4, 6, 6, dtype=torch.float64)
    grad = torch.randn(4, 24, 1, 1, dtype=torch.float64)
    y_conv, g_conv = fwd_bwd(conv, cov, grad)
    y_fast, g_fast = fwd_bwd(fast, cov, grad)
    torch.testing.assert_close(y_fast, y_conv, **F64)
    torch.testing.assert_close(g_fast, g_conv, **F64)
    n_conv, n_fast = len(list(conv.parameters())), len(list(fast.parameters()))
    assert n_conv == n_fast > 0, f"conv has {n_conv} parameters, einsum {n_fast}"
    for (name, p), q in zip(conv.named_parameters(), fast.parameters()):
        torch.testing.assert_close(q.grad, p.grad, **F64, msg=name)


@pytest.mark.parametrize("block", [GSoPChannel, GSoPPosition])
def test_blocks_with_einsum_rows_equal_the_conv_blocks(block):
    torch.manual_seed(0)
    plain = block(8, 4).double()
    fast = block(8, 4, embed_impl="einsum").double()
    fast.load_state_dict(plain.state_dict())
    x = torch.randn(3, 8, 8, 8, dtype=torch.float64)
    y_plain, g_plain = fwd_bwd(plain, x, torch.ones(3, 8, 8, 8, dtype=torch.float64))
    y_fast, g_fast = fwd_bwd(fast, x, torch.ones(3, 8, 8, 8, dtype=torch.float64))
    torch.testing.assert_close(y_fast, y_plain, **F64)
    torch.testing.assert_close(g_fast, g_plain, **F64)


def test_unknown_row_embedding_impl_is_one_clear_error():
    with pytest.raises(ValueError, match="impl must be one of conv, einsum"):
        RowwiseEmbedding(4, impl="fft")


# --------------------------------------------------------------------------------------------
# Mixture head: grouped execution against dispatch
# --------------------------------------------------------------------------------------------


def mixture_case(component: str = "sop"):
    torch.manual_seed(0)
    comps = torch.nn.ModuleList(
        make_component(component, 10, (8, 6), gap_dim=7) for _ in range(6)
    ).double()
    x = torch.randn(9, 10, 4, 4, dtype=torch.float64)
    _, indices, top_weights = top_k_softmax(torch.randn(9, 6, dtype=torch.float64), 3)
    return comps, x, indices, top_weights


def mixture_grads(fn, comps, x, top_weights):
    comps.zero_grad(set_to_none=True)
    xl, tl = x.clone().requires_grad_(True), top_weights.clone().requires_grad_(True)
    rep, reps = fn(xl, tl)
    (rep.sin().sum() + reps.cos().sum()).backward()
    grads = [p.grad.clone() for p in comps.parameters()]
    return rep.detach(), reps.detach(), xl.grad, tl.grad, grads


@pytest.mark.parametrize("component", ["sop", "gap"])
@pytest.mark.parametrize("capacity_factor", [None, 2.0])  # 2.0 = N / K: never drops
def test_grouped_mixture_equals_dispatch_outputs_and_gradients(component, capacity_factor):
    comps, x, indices, top_weights = mixture_case(component)
    plain = mixture_grads(
        lambda xl, tl: dispatch_mixture(xl, comps, indices, tl), comps, x, top_weights
    )
    fast = mixture_grads(
        lambda xl, tl: grouped_mixture(xl, comps, indices, tl, capacity_factor),
        comps, x, top_weights,
    )
    for got, want in zip(fast[:4], plain[:4]):
        torch.testing.assert_close(got, want, **F64)
    for got, want in zip(fast[4], plain[4]):
        torch.testing.assert_close(got, want, **F64)


def test_grouped_mixture_with_a_small_capacity_drops_the_latest_pairs_of_a_full_component():
    comps, x, indices, top_weights = mixture_case()
    capacity = math.ceil(0.5 * 9 * 3 / 6)  # capacity_factor 0.5 -> 3 samples per component
    rep, reps = grouped_mixture(x, comps, indices, top_weights, capacity_factor=0.5)
    # Expected: dispatch with the weight of every pair past its component's first `capacity`
    # samples (in batch order) set to zero.
    seen = torch.zeros(6, dtype=torch.long)
    keep = torch.zeros_like(indices, dtype=torch.bool)
    for s in range(9):
        for j in range(3):
            n = indices[s, j]
            keep[s, j] = seen[n] < capacity
            seen[n] += 1
    assert not keep.all(), "the case must overflow some component"
    want, want_reps = dispatch_mixture(x, comps, indices, top_weights * keep)
    torch.testing.assert_close(rep, want, **F64)
    torch.testing.assert_close(reps[keep], want_reps[keep], **F64)
    assert torch.all(reps[~keep] == 0)


def test_gated_head_grouped_equals_dispatch_with_the_same_weights():
    torch.manual_seed(0)
    plain = GatedMixtureHead(12, "sop", 6, 3, num_classes=5, sop_channels=(8, 6)).double()
    fast = GatedMixtureHead(
        12, "sop", 6, 3, num_classes=5, sop_channels=(8, 6), execution="grouped"
    ).double()
    torch.nn.init.normal_(plain.gate.w_gate)  # a gate that spreads the samples
    fast.load_state_dict(plain.state_dict())
    plain.eval(), fast.eval()
    x = torch.randn(7, 12, 4, 4, dtype=torch.float64)
    outputs = {}
    for name, head in (("plain", plain), ("fast", fast)):
        logits, aux = head(x, return_aux=True)
        (logits.sin().sum() + aux).backward()
        outputs[name] = logits.detach()
    torch.testing.assert_close(outputs["fast"], outputs["plain"], **F64)
    # A component no sample chose has no gradient under dispatch and a zero one when grouped.
    fast_params = dict(fast.named_parameters())
    assert fast_params.keys() == dict(plain.named_parameters()).keys()
    with_grad = 0
    for name, p in plain.named_parameters():
        q = fast_params[name]
        want = torch.zeros_like(p) if p.grad is None else p.grad
        got = torch.zeros_like(q) if q.grad is None else q.grad
        torch.testing.assert_close(got, want, **F64, msg=name)
        with_grad += p.grad is not None and bool(p.grad.abs().max() > 0)
    assert with_grad > len(fast_params) // 2, "the loss reaches most parameters"


def test_grouped_mixture_refuses_components_it_cannot_stack():
    comps, x, indices, top_weights = mixture_case()
    comps[0].project[0] = torch.nn.Conv2d(10, 8, 1, bias=True).double()
    with pytest.raises(ValueError, match="bias-free 1x1 convs"):
        grouped_mixture(x, comps, indices, top_weights)


# --------------------------------------------------------------------------------------------
# Training loop
# --------------------------------------------------------------------------------------------


def test_component_usage_counts_the_gate_choices_without_reading_the_maximum():
    torch.manual_seed(0)
    model = create_model("small_gmsop", num_classes=10, in_chans=1).eval()
    captured = {}
    gate = model.head.gate
    handle = gate.tap_gate_indices.register_forward_hook(
        lambda m, args, out: captured.setdefault("indices", args[0])
    )
    with ComponentUsage(model) as usage:
        model(torch.randn(6, 1, 28, 28))
        first = captured.pop("indices")
        model(torch.randn(5, 1, 28, 28))
        usage.keep_last(1)  # the diagnostics forget the first batch; the counts do not
    handle.remove()
    both = torch.cat([first, captured["indices"]]).reshape(-1)
    want = torch.bincount(both, minlength=gate.num_experts)
    assert usage.counts.tolist() == want.tolist()
    assert len(usage.counts) == gate.num_experts  # sized from the gate, not from the data
    assert usage.fractions() == pytest.approx((want / want.sum()).tolist())
    assert usage.diagnostics().samples == 5


@requires_cuda
def test_trainer_uses_the_fused_sgd_on_cuda(tmp_path):
    from gsoplib.train import TrainConfig, Trainer

    config = TrainConfig(model="small_gsop1", dataset="fashion_mnist", out_dir=str(tmp_path),
                         device="cuda", train_subset=256, test_subset=128, epochs=1,
                         batch_size=64, progress=False, workers=0)
    trainer = Trainer(config)
    assert trainer.optimizer.defaults["fused"] is True
    trainer.fit()
    assert math.isfinite(trainer.history[-1]["train_loss"])


@requires_cuda
def test_a_gm_sop_training_step_without_host_sync_on_cuda():
    torch.manual_seed(0)
    model = create_model(
        "small_gmsop", num_classes=10, in_chans=1,
        head_kwargs={"execution": "grouped", "capacity_factor": 2.0},
    ).cuda().to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, fused=True)
    x = torch.randn(32, 1, 28, 28, device="cuda").contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (32,), device="cuda")

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits, aux = model(x, return_aux=True)
        loss = torch.nn.functional.cross_entropy(logits.float(), y) + aux.float()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # first call: cuDNN and allocator set-up may synchronise
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        step()
    finally:
        torch.cuda.set_sync_debug_mode("default")
