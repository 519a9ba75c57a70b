"""What the two Newton-Schulz backwards keep and compute, counted (iSQRT-COV; sqrtm.py).

:func:`gsoplib.ops.sqrtm_newton_schulz` with plain autograd keeps every iterate for backward:
the input, the normalised A, Z_1 and Y_1, then T_k, Y_{k+1}, Z_{k+1} for each middle step and T,
Y_N for the last: 3N (B, n, n) tensors (4 for N = 1), plus three (B,) trace vectors. With
``memory_efficient=True`` it keeps the input only and recomputes the iteration in backward.
Batched matmuls: 3N - 3 forward (1 for N = 1); autograd's backward runs two per forward matmul,
6N - 6; the recomputing backward adds one forward pass, 9N - 9: a training step (forward and
backward) costs 12N - 12 instead of 9N - 9, +33%.

``count_batched_matmuls`` measures the matmuls by intercepting the dispatched aten ops; tests
check these counts and :func:`newton_schulz_saved_bytes` against
:func:`gsoplib.ops.saved_tensor_bytes`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch.utils._python_dispatch import TorchDispatchMode

#: Paper-scale settings: (square roots per batch, n, N). GSoP-Net2's head and the iSQRT-COV
#: recipe at GSoP-Net's ImageNet batch of 160 (GSoP-Net Sec. 4.1). GM-SOP-16-8 at its batch of
#: 256 (GM-SOP Sec. 3.1, Implementation Details) takes nine 128 x 128 roots per image: the K = 8
#: chosen components and the gate, whose prediction layers "share the same architecture with
#: CMs" (GM-SOP Sec. 2.3), an SR-SOP in the authors' release; N = 3 as in that release.
PAPER_SCALES: dict[str, tuple[int, int, int]] = {
    "GSoP-Net2 head: batch 160, 256 x 256, N = 3": (160, 256, 3),
    "iSQRT-COV recipe: batch 160, 256 x 256, N = 5": (160, 256, 5),
    "GM-SOP-16-8: batch 256 x (8 components + gate), 128 x 128, N = 3": (256 * 9, 128, 3),
}

_MATMULS = {torch.ops.aten.bmm.default, torch.ops.aten.baddbmm.default,
            torch.ops.aten.matmul.default, torch.ops.aten.mm.default}


class BackwardCost(NamedTuple):
    """Bytes kept for backward and batched matmuls of one Newton-Schulz square root."""

    saved_bytes: int
    forward_matmuls: int
    backward_matmuls: int


def newton_schulz_saved_bytes(
    batch: int, n: int, iters: int, memory_efficient: bool = False, element_size: int = 4
) -> int:
    """Bytes autograd keeps for ``sqrtm_newton_schulz`` on a fresh (batch, n, n) input.

    element_size: 4 for float32 (the library computes in float32), 8 for float64.
    """
    if memory_efficient:
        return batch * n * n * element_size
    matrices = 4 if iters == 1 else 3 * iters
    return batch * (matrices * n * n + 3) * element_size


def newton_schulz_matmuls(iters: int, memory_efficient: bool = False) -> tuple[int, int]:
    """(forward, backward) batched matmuls of ``sqrtm_newton_schulz`` with N = iters."""
    forward = 1 if iters == 1 else 3 * iters - 3
    return forward, 2 * forward + (forward if memory_efficient else 0)


def newton_schulz_backward_cost(
    batch: int, n: int, iters: int, memory_efficient: bool = False, element_size: int = 4
) -> BackwardCost:
    """:func:`newton_schulz_saved_bytes` and :func:`newton_schulz_matmuls` together."""
    return BackwardCost(
        newton_schulz_saved_bytes(batch, n, iters, memory_efficient, element_size),
        *newton_schulz_matmuls(iters, memory_efficient),
    )


class _CountMatmuls(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in _MATMULS:
            self.count += 1
        return func(*args, **(kwargs or {}))


def count_batched_matmuls(forward: Callable[[], torch.Tensor]) -> tuple[int, int]:
    """(forward, backward) matmul kernels dispatched by ``forward()`` and by the backward of
    its summed output, measured. ``forward`` must return a tensor that requires grad."""
    with _CountMatmuls() as counter:
        out = forward()
    fwd = counter.count
    with _CountMatmuls() as counter:
        out.sum().backward()
    return fwd, counter.count


__all__ = [
    "PAPER_SCALES",
    "BackwardCost",
    "count_batched_matmuls",
    "newton_schulz_backward_cost",
    "newton_schulz_matmuls",
    "newton_schulz_saved_bytes",
]
