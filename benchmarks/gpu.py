"""GPU performance of second-order pooling: every figure as a ratio to a baseline of the same run.

    python benchmarks/gpu.py                          # on a CUDA machine: everything (~10 min)
    python benchmarks/gpu.py --only sqrtm covariance  # some sections
    python benchmarks/gpu.py --device cpu --quick     # smoke run on tiny sizes (< 60 s)

Sections (the issue "GPU performance: second-order pooling at close to the hardware's limit"):
    sqrtm       Newton-Schulz forward+backward at B=128, n=128, N=5: eager fp32 / TF32, the
                paper's unfolded iteration, torch.compile, compile with CUDA graphs, an explicit
                CUDA graph, bf16 matmuls, memory-efficient; against eigh and SVD, and against the
                "matmul bound": the same number of bmm calls (3 x (3N - 3)) back to back.
                The bf16 variant's error against a float64 root is recorded too.
    covariance  covariance forward+backward of a channels_last map against a contiguous one,
                the authors' centring matrix, and its GEMMs back to back; copies counted.
    blocks      training images/s (bf16 autocast, channels_last, fused SGD) of vanilla, SE, CBAM,
                GSoP-Net1, GSoP-Net2 (also with the einsum row-wise conv), iSQRT-COV: ResNet-50
                at 224 (batch 128) and the modified ResNet-18 at 64 (with GM-SOP-16-8);
                ratios to vanilla. Also the row-wise conv alone: grouped conv against einsum.
    mixture     GM-SOP-16-8 training step (dispatch, grouped, grouped without host sync)
                against Ave-SOP-16 and vanilla ResNet-18 at 64 x 64 (GM-SOP Table 1).
    fmnist      time to 93% test top-1 of small_gsop1 on Fashion-MNIST with gsoplib.train's
                Trainer and a GPU recipe (:data:`FMNIST_RECIPE`).

Timing: CUDA events after warm-up, medians over repeats, variants timed round-robin
(``harness.round_robin_medians``); perf_counter on a CPU. Each figure carries its baseline and the
ratio value / baseline, and each target of the issue says whether it is met. The JSON (default
``benchmarks/results/gpu-<gpu name>.json``) records the GPU, torch and CUDA versions and the date.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import re
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (  # noqa: E402
    RESULTS_DIR,
    machine_info,
    machine_label,
    markdown_table,
    round_robin_medians,
)

from gsoplib.blocks.gsop import RowwiseEmbedding  # noqa: E402
from gsoplib.models import create_model  # noqa: E402
from gsoplib.ops import (  # noqa: E402
    covariance,
    covariance_centring_matrix,
    sqrtm_eigh,
    sqrtm_newton_schulz,
)
from gsoplib.ops.compiled import compiled_sqrtm, graphed_sqrtm  # noqa: E402

SECTIONS = ("sqrtm", "covariance", "blocks", "mixture", "fmnist")

# The targets on an H100 (ratios from one run).
NS_VS_EIGH_MIN = 50.0
NS_VS_MATMULS_MAX = 2.0
NET1_MIN, NET2_MIN = 0.85, 0.75
GM_VS_AVE_MAX, GM_VS_VANILLA_MIN = 0.55, 0.45
FMNIST_TOP1, FMNIST_SECONDS = 0.93, 60.0

# The GPU recipe for the Fashion-MNIST run: TrainConfig overrides. The "fast" recipe (cosine with
# warm-up, label smoothing, batch 128, lr 0.1) without augmentation takes GSoP-Net1 past 93% in 5
# epochs on a CPU (benchmarks/train_pretrained.sh); one more epoch is the margin for bf16
# autocast. On a GPU the data stay resident in GPU memory (gsoplib.data's ResidentLoader).
FMNIST_RECIPE = {"recipe": "fast", "epochs": 6, "augment": False}

# ResNet-18 of GM-SOP Table 1 (64 x 64 inputs) with the GSoP-Net variants, as create_model
# overrides of resnet18_gap: the zoo names these for ResNet-50 only. GSoP blocks use a 64 x 64
# covariance (the paper's CIFAR size, Table 6): the stages have 16-128 channels.
R18_VARIANTS = {
    "vanilla": ("resnet18_gap", {}),
    "se": ("resnet18_gap", {"blocks": "S,S,S,S", "where": "all"}),
    "cbam": ("resnet18_gap", {"blocks": "A,A,A,A", "where": "all"}),
    "gsop1": ("resnet18_gap", {"blocks": "C,C,C,C", "block_kwargs": {"rd_channels": 64}}),
    "gsop1 (einsum rows)": (
        "resnet18_gap",
        {"blocks": "C,C,C,C", "block_kwargs": {"rd_channels": 64, "embed_impl": "einsum"}},
    ),
    "gsop2": (
        "resnet18_gap",
        {"blocks": "C,C,C,√", "last_stride": 1, "block_kwargs": {"rd_channels": 64},
         "head_kwargs": {"rd_channels": 128, "iters": 3}},
    ),
    "isqrt": (
        "resnet18_gap",
        {"blocks": "-,-,-,√", "last_stride": 1, "head_kwargs": {"rd_channels": 128, "iters": 5}},
    ),
    "gmsop": ("resnet18_gmsop_16_8", {"head_kwargs": {"execution": "grouped"}}),
}
R50_VARIANTS = {
    "vanilla": ("resnet50", {}),
    "se": ("resnet50_se", {}),
    "cbam": ("resnet50_cbam", {}),
    "gsop1": ("resnet50_gsop1", {}),
    "gsop1 (einsum rows)": ("resnet50_gsop1", {"block_kwargs": {"embed_impl": "einsum"}}),
    "gsop2": ("resnet50_gsop2", {}),
    "gsop2 (einsum rows)": ("resnet50_gsop2", {"block_kwargs": {"embed_impl": "einsum"}}),
    "isqrt": ("resnet50_isqrt", {}),
}
# --quick shrinks every network to one residual block per stage and narrow stages, so a CPU smoke
# run builds and steps each variant in well under a second.
QUICK_OVERRIDES = {"layers": (1, 1, 1, 1), "widths": (8, 16, 32, 64)}
QUICK_CLASSES = 10
MIXTURE_VARIANTS = {
    "vanilla ResNet-18": ("resnet18_gap", {}),
    "Ave-SOP-16": ("resnet18_avesop_16", {}),
    "GM-SOP-16-8 (dispatch)": ("resnet18_gmsop_16_8", {}),
    "GM-SOP-16-8 (grouped)": ("resnet18_gmsop_16_8", {"head_kwargs": {"execution": "grouped"}}),
    "GM-SOP-16-8 (grouped, no sync)": (
        "resnet18_gmsop_16_8",
        {"head_kwargs": {"execution": "grouped", "capacity_factor": 1.5}},
    ),
}


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------


def figure(name: str, value: float, unit: str, baseline: str, baseline_value: float,
           **extra) -> dict:
    """One measured figure with its baseline from the same run; ratio = value / baseline."""
    return {"name": name, "value": value, "unit": unit, "baseline": baseline,
            "baseline_value": baseline_value, "ratio": value / baseline_value, **extra}


def target(name: str, value: float | None, op: str, limit: float, about: str) -> dict:
    """One of the issue's targets: ``value op limit`` and whether it holds (None: not reached)."""
    met = value is not None and (value >= limit if op == ">=" else value <= limit)
    return {"name": name, "value": value, "op": op, "limit": limit, "met": bool(met),
            "about": about}


@contextlib.contextmanager
def tf32(enabled: bool):
    """TF32 matmuls on or off for the block (no effect on a CPU)."""
    old = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old


def medians_ms(steps: dict[str, Callable[[], None]], device: torch.device, warmup: int,
               repeats: int) -> dict[str, float]:
    return {k: v * 1e3 for k, v in round_robin_medians(steps, device, warmup, repeats).items()}


# --------------------------------------------------------------------------------------------
# sqrtm
# --------------------------------------------------------------------------------------------


def real_covariances(batch: int, n: int, device: torch.device, dtype=torch.float32):
    """Covariances of ReLU features with a power-law spectrum, like a conv layer's (B, n, n)."""
    g = torch.Generator(device="cpu").manual_seed(0)
    scale = torch.arange(1, n + 1, dtype=torch.float64).pow(-0.75).view(1, n, 1)
    mixing = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))[0]
    feats = torch.relu(mixing @ (torch.randn(batch, n, 4 * n, generator=g, dtype=torch.float64)
                                 * scale))
    return covariance(feats).to(device=device, dtype=dtype)


def sqrtm_svd(a: torch.Tensor) -> torch.Tensor:
    """The SVD-based root U diag(sqrt(s)) V^T of a PSD (B, n, n) batch: a second exact baseline."""
    u, s, vh = torch.linalg.svd(a)
    return (u * s.sqrt().unsqueeze(-2)) @ vh


def sqrtm_unfolded(a: torch.Tensor, iters: int) -> torch.Tensor:
    """iSQRT-COV Eq. 2-4 as written: 3N matmuls and separate scalings, no baddbmm, no folding."""
    n = a.shape[-1]
    trace = torch.diagonal(a, dim1=-2, dim2=-1).sum(-1).clamp(min=1e-5).view(-1, 1, 1)
    eye = torch.eye(n, device=a.device, dtype=a.dtype)
    y, z = a / trace, eye.expand_as(a)
    for _ in range(iters):
        t = 0.5 * (3 * eye - z @ y)
        y, z = y @ t, t @ z
    return y * trace.sqrt()


def fwd_bwd(fn: Callable[[torch.Tensor], torch.Tensor], a: torch.Tensor, grad: torch.Tensor,
            before: Callable[[], None] | None = None) -> Callable[[], None]:
    def step() -> None:
        if before is not None:
            before()
        leaf = a.detach().requires_grad_(True)
        fn(leaf).backward(grad)

    return step


def section_sqrtm(device: torch.device, quick: bool, args) -> dict:
    batch, n, iters = (8, 16, 5) if quick else (128, 128, 5)
    cuda = device.type == "cuda"
    a = real_covariances(batch, n, device)
    grad = torch.randn(batch, n, n, device=device)
    grad = grad + grad.transpose(1, 2)
    notes = []
    variants: dict[str, tuple[Callable[[], None], str]] = {}  # name -> (step, precision)

    def ns(**kw):
        return lambda t: sqrtm_newton_schulz(t, iters=iters, **kw)

    def with_tf32(step, enabled):
        def run():
            with tf32(enabled):
                step()
        return run

    variants["eigh"] = (fwd_bwd(sqrtm_eigh, a, grad), "fp32")
    variants["SVD"] = (fwd_bwd(sqrtm_svd, a, grad), "fp32")
    variants["NS unfolded (paper Eq. 2-4), fp32"] = (
        with_tf32(fwd_bwd(lambda t: sqrtm_unfolded(t, iters), a, grad), False), "fp32")
    variants["NS eager, fp32"] = (with_tf32(fwd_bwd(ns(), a, grad), False), "fp32")
    variants["NS eager, TF32"] = (with_tf32(fwd_bwd(ns(), a, grad), True), "tf32")
    variants["NS memory-efficient, TF32"] = (
        with_tf32(fwd_bwd(ns(memory_efficient=True), a, grad), True), "tf32")
    variants["NS eager, bf16 matmuls"] = (fwd_bwd(ns(matmul_dtype=torch.bfloat16), a, grad),
                                          "bf16")
    backend = args.compile_backend or ("inductor" if cuda else "aot_eager")
    compiled = compiled_sqrtm(iters, backend=backend)
    variants[f"NS torch.compile ({backend}), TF32"] = (
        with_tf32(fwd_bwd(compiled, a, grad), True), "tf32")
    if cuda:
        cg_compiled = compiled_sqrtm(iters, mode="reduce-overhead")
        variants["NS torch.compile + CUDA graphs, TF32"] = (
            with_tf32(fwd_bwd(cg_compiled, a, grad, torch.compiler.cudagraph_mark_step_begin),
                      True), "tf32")
        with tf32(True):
            graphed = graphed_sqrtm(a.shape, iters, device=device)
        variants["NS CUDA graph (make_graphed_callables), TF32"] = (
            with_tf32(fwd_bwd(graphed, a, grad), True), "tf32")
    else:
        notes.append("CUDA-graph variants skipped: they need a CUDA device")

    # The matmul bound: as many (B, n, n) bmm calls as NS forward+backward makes with autograd
    # (3N - 3 forward, two per product backward), back to back, at each precision.
    count = 3 * (3 * iters - 3)
    x, y = torch.randn_like(a), torch.randn_like(a)
    xb, yb = x.bfloat16(), y.bfloat16()

    def chain(p, q, enabled):
        def run():
            with tf32(enabled):
                for _ in range(count):
                    torch.bmm(p, q)
        return run

    bounds = {"fp32": chain(x, y, False), "tf32": chain(x, y, True), "bf16": chain(xb, yb, True)}
    steps = {name: step for name, (step, _) in variants.items()}
    steps.update({f"{count} x bmm, {p}": step for p, step in bounds.items()})
    warmup, repeats = (1, 3) if quick else (5, args.repeats)
    ms = medians_ms(steps, device, warmup, repeats)

    figures = []
    for name, (_, precision) in variants.items():
        if name in ("eigh", "SVD"):
            continue
        figures.append(figure(f"{name}: fwd+bwd", ms[name], "ms", "eigh", ms["eigh"],
                              x_faster_than_eigh=ms["eigh"] / ms[name]))
        bound = f"{count} x bmm, {precision}"
        figures.append(figure(f"{name}: x its matmuls back to back", ms[name], "ms", bound,
                              ms[bound]))
    figures.append(figure("SVD: fwd+bwd", ms["SVD"], "ms", "eigh", ms["eigh"]))
    for p in bounds:
        gflops = count * 2.0 * n**3 * batch / (ms[f"{count} x bmm, {p}"] / 1e3) / 1e9
        figures.append(figure(f"bmm rate, {p}", gflops, "GFLOP/s", "bmm rate, fp32",
                              count * 2.0 * n**3 * batch / (ms[f"{count} x bmm, fp32"] / 1e3)
                              / 1e9))

    # Accuracy of the bf16 variant against float64: the same N iterations in float64 isolate
    # the rounding error; the exact eigh root adds NS's own truncation error (same for all).
    references = {"float64 NS": sqrtm_newton_schulz(a.double(), iters=iters),
                  "float64 eigh": sqrtm_eigh(a.double())}
    errors = {}
    for ref_name, ref in references.items():
        norm = torch.linalg.matrix_norm(ref)
        for label, kw in (("fp32", {}), ("bf16 matmuls", {"matmul_dtype": torch.bfloat16})):
            with tf32(False):
                approx = sqrtm_newton_schulz(a, iters=iters, **kw).double()
            errors[label, ref_name] = float(
                (torch.linalg.matrix_norm(approx - ref) / norm).median())
        figures.append(figure(f"NS bf16 relative error vs {ref_name}",
                              errors["bf16 matmuls", ref_name], "relative Frobenius error",
                              "NS fp32", errors["fp32", ref_name]))

    fp32_class = [name for name, (_, p) in variants.items()
                  if name.startswith("NS") and p in ("fp32", "tf32") and "unfolded" not in name
                  and "memory" not in name]
    best = min(fp32_class, key=ms.__getitem__)
    best_bound = ms[f"{count} x bmm, {variants[best][1]}"]
    targets = [
        target(f"NS fwd+bwd x faster than eigh ({best})", ms["eigh"] / ms[best], ">=",
               NS_VS_EIGH_MIN, f"B={batch}, n={n}, N={iters}"),
        target(f"NS fwd+bwd time / its matmuls back to back ({best})", ms[best] / best_bound,
               "<=", NS_VS_MATMULS_MAX, f"{count} bmm calls at the measured rate"),
        target("NS bf16 relative error vs float64 NS", errors["bf16 matmuls", "float64 NS"],
               "<=", 2e-2, "opt-in bf16 checked against float64 on covariances of ReLU features"),
    ]
    return {"shape": {"B": batch, "n": n, "iters": iters}, "figures": figures,
            "targets": targets, "notes": notes}


# --------------------------------------------------------------------------------------------
# covariance
# --------------------------------------------------------------------------------------------


def count_copies(fn: Callable[[], None]) -> int:
    """Tensor copies (copy_, clone, contiguous) of more than one element during ``fn()``."""
    with torch.profiler.profile(record_shapes=True) as prof:
        fn()
    names = ("aten::copy_", "aten::clone", "aten::contiguous")
    return sum(1 for e in prof.events() if e.name in names
               and any(math.prod(s) > 1 for s in e.input_shapes if s))


def section_covariance(device: torch.device, quick: bool, args) -> dict:
    batch, c, side = (4, 16, 7) if quick else (128, 128, 28)
    m = side * side
    x = torch.randn(batch, c, side, side, device=device)
    x_cl = x.contiguous(memory_format=torch.channels_last)

    def step(fn, t):
        def run():
            leaf = t.detach().requires_grad_(True)
            fn(leaf).sum().backward()
        return run

    p, q = torch.randn(batch, c, m, device=device), torch.randn(batch, m, c, device=device)
    s = torch.randn(batch, c, c, device=device)

    def gemms():  # forward X X^T and backward S X and the mean's S mu: the op's GEMM work
        torch.bmm(p, q)
        torch.bmm(s, p)

    steps = {"channels_last": step(covariance, x_cl), "contiguous": step(covariance, x),
             "GEMMs back to back": gemms,
             "centring matrix (authors)": step(covariance_centring_matrix, x)}
    warmup, repeats = (1, 3) if quick else (5, args.repeats)
    with tf32(False):
        ms = medians_ms(steps, device, warmup, repeats)
        copies = count_copies(step(covariance, x_cl))
    figures = [
        figure("covariance fwd+bwd, channels_last input", ms["channels_last"], "ms",
               "contiguous input", ms["contiguous"]),
        figure("covariance fwd+bwd, channels_last input / its GEMMs", ms["channels_last"], "ms",
               "GEMMs back to back", ms["GEMMs back to back"]),
        figure("covariance fwd+bwd, contiguous", ms["contiguous"], "ms",
               "centring matrix (authors)", ms["centring matrix (authors)"]),
    ]
    targets = [target("copies of a channels_last input", copies, "<=", 0,
                      "one batched GEMM on centred features, no copies")]
    return {"shape": {"B": batch, "C": c, "M": m}, "figures": figures, "targets": targets,
            "notes": []}


# --------------------------------------------------------------------------------------------
# Training steps (blocks, mixture)
# --------------------------------------------------------------------------------------------


def train_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, amp: bool,
               compile_model: bool) -> Callable[[], None]:
    """One SGD step as gsoplib.train runs it: bf16 autocast (float32 covariance and sqrt
    islands inside the ops), channels_last, fused SGD on CUDA, the aux loss, no host sync."""
    cuda = x.device.type == "cuda"
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-4,
                          fused=True if cuda else None)
    net = torch.compile(model) if compile_model else model

    def step() -> None:
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
            logits, aux = net(x, return_aux=True)
        loss = F.cross_entropy(logits.float(), y) + aux.float()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def build(name: str, overrides: dict, num_classes: int, device: torch.device,
          channels_last: bool) -> nn.Module:
    torch.manual_seed(0)
    model = create_model(name, num_classes=num_classes, in_chans=3, **overrides)
    model = model.to(device).train()
    return model.to(memory_format=torch.channels_last) if channels_last else model


def throughput(variants: dict[str, tuple[str, dict]], batch: int, size: int,
               device: torch.device, quick: bool, args):
    """Median step ms of each variant, timed round-robin."""
    cuda = device.type == "cuda"
    num_classes = QUICK_CLASSES if quick else 1000
    x = torch.randn(batch, 3, size, size, device=device)
    if cuda:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, num_classes, (batch,), device=device)
    steps = {}
    for label, (name, kw) in variants.items():
        kw = {**kw, **QUICK_OVERRIDES} if quick else kw
        model = build(name, kw, num_classes, device, channels_last=cuda)
        steps[label] = train_step(model, x, y, amp=cuda, compile_model=args.compile)
    warmup, repeats = (1, 2) if quick else (3, args.repeats)
    return medians_ms(steps, device, warmup, repeats)


def section_blocks(device: torch.device, quick: bool, args) -> dict:
    cuda = device.type == "cuda"
    families = {
        "ResNet-50": (R50_VARIANTS, 2 if quick else 128, 32 if quick else 224),
        "ResNet-18 (GM-SOP Table 1)": (R18_VARIANTS, 2 if quick else 256, 16 if quick else 64),
    }
    figures, targets, specs = [], [], {}
    for family, (variants, batch, size) in families.items():
        ms = throughput(variants, batch, size, device, quick, args)
        specs[family] = {"batch": batch, "input": size,
                         "models": {k: {"name": n, "overrides": kw}
                                    for k, (n, kw) in variants.items()}}
        for label in variants:
            ips, base = batch / ms[label] * 1e3, batch / ms["vanilla"] * 1e3
            figures.append(figure(f"{family} {label}: training images/s", ips, "images/s",
                                  f"{family} vanilla", base, step_ms=ms[label]))
        if family == "ResNet-50":
            for label, limit in (("gsop1", NET1_MIN), ("gsop2", NET2_MIN)):
                best = min((k for k in variants if k.startswith(label)), key=ms.__getitem__)
                targets.append(target(f"ResNet-50 {label} images/s / vanilla ({best})",
                                      ms["vanilla"] / ms[best], ">=", limit,
                                      f"bf16, channels_last, 224, batch {batch}"))

    # The row-wise conv alone (GSoP block, c = 128): grouped conv against the batched einsum.
    d, rows_batch = (16, 4) if quick else (128, 128)
    embeds = {impl: RowwiseEmbedding(d, impl=impl).to(device) for impl in ("conv", "einsum")}
    embeds["einsum"].load_state_dict(embeds["conv"].state_dict())
    cov = torch.randn(rows_batch, d, d, device=device)

    def embed_step(module):
        def run():
            leaf = cov.detach().requires_grad_(True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
                out = module(leaf)
            out.float().sum().backward()
        return run

    warmup, repeats = (1, 3) if quick else (5, args.repeats)
    ms = medians_ms({k: embed_step(m) for k, m in embeds.items()}, device, warmup, repeats)
    figures.append(figure(f"row-wise embedding d={d}, B={rows_batch}: einsum fwd+bwd",
                          ms["einsum"], "ms", "grouped conv", ms["conv"]))
    return {"families": specs, "figures": figures, "targets": targets,
            "notes": [f"torch.compile of the whole model: {'on' if args.compile else 'off'}"]}


def section_mixture(device: torch.device, quick: bool, args) -> dict:
    batch, size = (4, 16) if quick else (256, 64)
    ms = throughput(MIXTURE_VARIANTS, batch, size, device, quick, args)
    figures, targets = [], []
    for label in MIXTURE_VARIANTS:
        figures.append(figure(f"{label}: training step", ms[label], "ms", "Ave-SOP-16",
                              ms["Ave-SOP-16"]))
        figures.append(figure(f"{label}: images/s", batch / ms[label] * 1e3, "images/s",
                              "vanilla ResNet-18", batch / ms["vanilla ResNet-18"] * 1e3))
        if label.startswith("GM-SOP"):
            targets.append(target(f"{label} step / Ave-SOP-16 step", ms[label] / ms["Ave-SOP-16"],
                                  "<=", GM_VS_AVE_MAX, f"64 x 64, batch {batch}"))
            targets.append(target(f"{label} images/s / vanilla ResNet-18",
                                  ms["vanilla ResNet-18"] / ms[label], ">=", GM_VS_VANILLA_MIN,
                                  f"64 x 64, batch {batch}"))
    return {"batch": batch, "input": size, "figures": figures, "targets": targets,
            "models": {k: {"name": n, "overrides": kw} for k, (n, kw) in MIXTURE_VARIANTS.items()},
            "notes": []}


# --------------------------------------------------------------------------------------------
# fmnist
# --------------------------------------------------------------------------------------------


def section_fmnist(device: torch.device, quick: bool, args) -> dict:
    from gsoplib.train import TrainConfig, Trainer

    overrides = dict(FMNIST_RECIPE)
    if quick:
        overrides.update(epochs=1, batch_size=64, train_subset=512, test_subset=256)
    with tempfile.TemporaryDirectory() as out_dir:
        config = TrainConfig(model="small_gsop1", dataset="fashion_mnist", out_dir=out_dir,
                             device=str(device), progress=False, compile=args.compile,
                             workers=0, **overrides)
        trainer = Trainer(config)
        begin = time.perf_counter()
        trainer.fit()
        total = time.perf_counter() - begin
    elapsed, reached = 0.0, None
    curve = []
    for row in trainer.history:
        elapsed += row["epoch_time_s"]
        curve.append({"epoch": row["epoch"], "seconds": elapsed, "test_top1": row["test_top1"]})
        if reached is None and row["test_top1"] >= FMNIST_TOP1:
            reached = elapsed
    final = trainer.history[-1]["test_top1"]
    figures = [
        figure("final test top-1", final, "fraction", f"target {FMNIST_TOP1}", FMNIST_TOP1),
        figure("training wall time", total, "s", f"budget {FMNIST_SECONDS:.0f} s",
               FMNIST_SECONDS),
    ]
    if reached is not None:
        figures.append(figure(f"wall time to {FMNIST_TOP1:.0%} test top-1", reached, "s",
                              f"budget {FMNIST_SECONDS:.0f} s", FMNIST_SECONDS))
    targets = [target(f"seconds to {FMNIST_TOP1:.0%} test top-1 (None: never reached)",
                      reached, "<=", FMNIST_SECONDS,
                      "small_gsop1, from the start of training")]
    return {"recipe": {**overrides, "amp": trainer.amp, "channels_last": trainer.channels_last,
                       "compile": args.compile},
            "curve": curve, "figures": figures, "targets": targets, "notes": []}


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------

RUNNERS = {"sqrtm": section_sqrtm, "covariance": section_covariance, "blocks": section_blocks,
           "mixture": section_mixture, "fmnist": section_fmnist}
COLUMNS = [("name", "figure", "s"), ("value", "value", ".4g"), ("unit", "unit", "s"),
           ("baseline", "baseline", "s"), ("baseline_value", "baseline value", ".4g"),
           ("ratio", "ratio", ".3f")]


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu for a smoke run")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, few repeats")
    parser.add_argument("--out", type=Path, help="JSON path (default results/gpu-<device>.json)")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, help="sections to run")
    parser.add_argument("--repeats", type=int, default=20, help="timed rounds (median)")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile whole models in blocks, mixture and fmnist")
    parser.add_argument("--compile-backend", help="backend of the compiled NS "
                        "(default inductor on CUDA, aot_eager on a CPU)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: on a shared CPU more threads spin "
                        "against each other and a tiny step takes seconds)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit(f"--device {args.device}: this machine has no CUDA GPU; "
                             "use --device cpu for a smoke run")
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.allow_tf32 = True
    info = machine_info(device)
    info.update(gpu=info.get("gpu"), cuda=torch.version.cuda, quick=args.quick,
                date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    out = args.out or RESULTS_DIR / f"gpu-{slug(info['gpu'] or device.type)}.json"
    result = {"machine": info, "sections": {}}
    for name in args.only or SECTIONS:
        begin = time.perf_counter()
        section = RUNNERS[name](device, args.quick, args)
        section["seconds"] = time.perf_counter() - begin
        result["sections"][name] = section
        print(f"\n### {name} ({machine_label(info)}){' quick' if args.quick else ''}, "
              f"{section['seconds']:.1f} s\n")
        print(markdown_table(section["figures"], COLUMNS))
        for t in section["targets"]:
            value = "never" if t["value"] is None else f"{t['value']:.4g}"
            print(f"- {t['name']}: {value} (target {t['op']} {t['limit']}): "
                  f"{'met' if t['met'] else 'MISSED'}")
        for note in section["notes"]:
            print(f"- {note}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
