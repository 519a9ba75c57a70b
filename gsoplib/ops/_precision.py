"""The numerics contract shared by every op: float32 (or float64) inside, autocast off."""

from __future__ import annotations

import contextlib

import torch


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 stays float64 (gradcheck); every lower precision is computed in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def no_autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """Disable autocast on ``device`` so bf16/fp16 regions never reach covariance or sqrt."""
    return torch.autocast(device_type=device.type, enabled=False)
