"""Combining the K chosen of N component models per sample (GM-SOP Sec. 2.1, Eq. 1-3).

Only the K chosen CMs run for a sample (:func:`dispatch_mixture`): the samples are grouped by CM,
each CM runs once on its sub-batch, and the results are gathered back per sample.
:func:`grouped_mixture` runs the same K of N as batched GEMMs over padded groups (fewer kernels,
for GPUs). Running all N and masking (:func:`dense_masked_mixture`) gives the same output and
gradients at N/K times the component cost; it is kept as the reference for tests and benchmarks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from .components import SRSOP, ComponentModel, GlobalAvgPool, sr_sop

EXECUTIONS = ("dispatch", "dense", "grouped")


def dispatch_mixture(
    x: torch.Tensor,
    components: Sequence[nn.Module],
    indices: torch.Tensor,
    top_weights: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of the K chosen CMs per sample, running each CM only on the samples routed to it.

    The B*K (sample, CM) pairs are sorted by CM, CM n runs once on its contiguous sub-batch (not
    at all when no sample chose it), and the outputs are put back in sample-major order. The
    weighted sum over each sample's K outputs is a batched matmul rather than an index_add, so it
    is deterministic on GPUs. No loop over samples; one host sync for the sub-batch sizes.

    Args:
        x: (B, C, H, W). components: N modules (B', C, H, W) -> (B', D).
        indices, top_weights: (B, K) from the gate.

    Returns:
        (representation (B, D), per-pair outputs (B, K, D) in the order of ``indices``).
    """
    batch, k = indices.shape
    flat = indices.reshape(-1)
    order = flat.argsort(stable=True)
    counts = torch.bincount(flat, minlength=len(components)).tolist()
    # One gather per CM: a single (B*K, C, H, W) gather is a buffer too large for the CPU
    # allocator to reuse, and costs more in page faults than the copy itself.
    samples = (order // k).split(counts)
    outputs = torch.cat(
        [cm(x.index_select(0, rows)) for cm, rows in zip(components, samples) if rows.numel()]
    )
    reps = outputs.index_select(0, order.argsort()).view(batch, k, -1)
    return torch.bmm(top_weights.to(reps.dtype).unsqueeze(1), reps).squeeze(1), reps


def _stacked_projection(components: Sequence[ComponentModel]) -> list[torch.Tensor]:
    """The 1x1 conv weights of N CMs stacked per step: [(N, out_j, in_j)] for j = 1..J."""
    steps = [
        [m for m in cm.project if isinstance(m, nn.Conv2d)] for cm in components
    ]
    for convs in steps:
        for conv in convs:
            if conv.kernel_size != (1, 1) or conv.bias is not None or conv.stride != (1, 1):
                raise ValueError("grouped execution needs CMs of bias-free 1x1 convs + ReLU")
        if len(convs) != len(steps[0]) or len(convs) * 2 != len(components[0].project):
            raise ValueError("grouped execution needs CMs of 1x1 conv + ReLU steps without BN")
    return [
        torch.stack([convs[j].weight.flatten(1) for convs in steps]) for j in range(len(steps[0]))
    ]


def grouped_mixture(
    x: torch.Tensor,
    components: Sequence[ComponentModel],
    indices: torch.Tensor,
    top_weights: torch.Tensor,
    capacity_factor: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`dispatch_mixture` with all N CMs run at once as batched GEMMs over padded groups.

    The (sample, CM) pairs are placed in an (N, capacity) grid, row n holding the samples routed
    to CM n in batch order; the CMs' 1x1 convs become one batched GEMM per step over the stacked
    weights (N, out, in), and covariance, Newton-Schulz and the pooling run once over all
    N * capacity rows. A handful of kernels instead of a few per CM, and N * capacity / (B * K)
    times the dispatched work, close to 1 when the balance loss keeps the routing even.

    capacity_factor None: capacity is the largest sub-batch, read with one host sync; the result
        equals :func:`dispatch_mixture` (to float rounding). A float: capacity is
        min(B, ceil(capacity_factor * B * K / N)), known without reading the device, so a
        training step has no host sync; pairs past a CM's capacity (the latest samples of the
        batch routed to it) are dropped, contributing zero, as in capacity-limited MoE layers.
        capacity_factor >= N / K never drops.

    CMs must be :class:`ComponentModel` of bias-free 1x1 convs + ReLU steps (the SR-SOP and GAP
    CMs of this module). Their ``pool`` modules are not called, so SR-SOP's per-CM taps
    (tap_cov, tap_cov_sqrt) record nothing on this path. Returns what :func:`dispatch_mixture`
    returns; dropped pairs have zero rows in the per-pair outputs.
    """
    batch, k = indices.shape
    n_cm = len(components)
    weights = _stacked_projection(components)
    flat = indices.reshape(-1)
    order = flat.argsort(stable=True)
    # scatter_add, not bincount: CUDA's bincount reads the input's maximum back to the host.
    counts = torch.zeros(n_cm, dtype=torch.long, device=flat.device)
    counts.scatter_add_(0, flat, torch.ones_like(flat))
    if capacity_factor is None:
        capacity = int(counts.max())
    else:
        capacity = min(batch, max(1, math.ceil(capacity_factor * batch * k / n_cm)))
    sorted_cm = flat.index_select(0, order)
    rank = torch.arange(flat.numel(), device=flat.device) - (counts.cumsum(0) - counts)[sorted_cm]
    kept = rank < capacity
    # Dropped pairs point at one spare slot past the grid: its row is never read back as a kept
    # pair's output, and it reads a row of zeros.
    slot_sorted = torch.where(kept, sorted_cm * capacity + rank, n_cm * capacity)
    sample_of_slot = torch.zeros(n_cm * capacity + 1, dtype=torch.long, device=flat.device)
    sample_of_slot.scatter_(0, slot_sorted, order // k)
    slot_of_pair = torch.empty_like(slot_sorted).scatter_(0, order, slot_sorted)

    # (N * capacity, M, C) channels-last rows: each 1x1 conv is a (N, capacity * M, C) bmm.
    m = x.shape[-2] * x.shape[-1]
    z = x.flatten(2).transpose(1, 2).index_select(0, sample_of_slot[:-1])
    z = z.reshape(n_cm, capacity * m, -1)
    for w in weights:
        z = torch.relu(torch.bmm(z, w.to(z.dtype).transpose(1, 2)))
    z = z.reshape(n_cm * capacity, m, -1)
    pool = components[0].pool
    if isinstance(pool, SRSOP):
        out = sr_sop(z.transpose(1, 2), pool.iters)
    elif isinstance(pool, GlobalAvgPool):
        out = z.mean(dim=1)
    else:
        raise ValueError(f"grouped execution does not know the pool {type(pool).__name__}")
    out = torch.cat([out, out.new_zeros(1, out.shape[1])])
    reps = out.index_select(0, slot_of_pair).view(batch, k, -1)
    return torch.bmm(top_weights.to(reps.dtype).unsqueeze(1), reps).squeeze(1), reps


def all_components(x: torch.Tensor, components: Sequence[nn.Module]) -> torch.Tensor:
    """Every CM on every sample: (B, C, H, W) -> (B, N, D)."""
    return torch.stack([cm(x) for cm in components], dim=1)


def dense_masked_mixture(
    x: torch.Tensor, components: Sequence[nn.Module], weights: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference: run all N CMs on every sample and weight by the (B, N) gate, zeros included.

    Same output and gradients as :func:`dispatch_mixture` at N/K times the component cost; this
    is what GM-SOP avoids (Sec. 2.1). Returns (representation (B, D), all outputs (B, N, D)).
    """
    reps = all_components(x, components)
    return torch.bmm(weights.to(reps.dtype).unsqueeze(1), reps).squeeze(1), reps
