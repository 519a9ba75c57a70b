"""The heads' calling convention: ``head(x)`` -> logits, ``head(x, return_aux=True)`` ->
(logits, aux), aux a float32 scalar the training loop adds to the task loss (zero without a gate).
"""

from __future__ import annotations

import torch


def with_aux(logits: torch.Tensor, aux: torch.Tensor | None, return_aux: bool):
    """``logits`` or (logits, aux) with a zero aux where the head has no auxiliary loss."""
    if not return_aux:
        return logits
    return logits, (logits.new_zeros((), dtype=torch.float32) if aux is None else aux)
