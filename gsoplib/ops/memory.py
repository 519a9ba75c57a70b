"""What autograd keeps for the backward pass: bytes of the tensors a forward pass saves.

Measured with ``torch.autograd.graph.saved_tensors_hooks``: every tensor an operation saves for
its backward (``ctx.save_for_backward`` included) goes through the pack hook while ``fn`` builds
its graph. This is the activation memory of training, the quantity the memory-efficient
Newton-Schulz backward (:func:`gsoplib.ops.sqrtm_newton_schulz`) and the covariance's own
backward (which saves only X) are designed to reduce.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def saved_tensor_bytes(fn: Callable[[], object], *, unique_storages: bool = True) -> int:
    """Bytes that the autograd graph built by ``fn()`` keeps for its backward.

    Args:
        fn: called once with no arguments; it runs a forward pass on tensors that require
            grad (for example ``lambda: sqrtm_newton_schulz(leaf, iters=5)``). Its result is
            discarded.
        unique_storages: True counts each saved storage once, at its full size
            (``untyped_storage().nbytes()``): a tensor saved twice, or saved together with a view
            of it (``x`` and ``x.transpose(1, 2)``), is one buffer in memory. False adds
            ``numel() * element_size()`` for every saved tensor, repeats and views included:
            the sum over what the operations ask to save (what ``benchmarks/harness.py``
            reports).

    Returns:
        The number of bytes, an int; 0 when nothing requires grad.
    """
    seen: dict[tuple[torch.device, int], int] = {}
    kept: list[torch.Tensor] = []  # hold the saved tensors so no address is reused meanwhile
    total = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        if unique_storages:
            storage = t.untyped_storage()
            seen[(t.device, storage.data_ptr())] = storage.nbytes()
            kept.append(t)
        else:
            total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values()) if unique_storages else total


__all__ = ["saved_tensor_bytes"]
