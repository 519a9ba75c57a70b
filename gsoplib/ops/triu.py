"""Upper-triangular vectorisation of symmetric matrices (iSQRT-COV's Triuvec, row-major)."""

from __future__ import annotations

import math

import torch


def triu_dim(n: int) -> int:
    """Length of the vectorised upper triangle of an (n, n) matrix: n(n+1)/2 (128 -> 8256)."""
    return n * (n + 1) // 2


def triu_vec(a: torch.Tensor) -> torch.Tensor:
    """(B, n, n) -> (B, n(n+1)/2): the upper triangle, diagonal included, row by row.

    Row-major like fast-MPN-COV (the GSoP repository's copy is column-major, so weights of a
    layer after it do not transfer between the two). Off-diagonals are not scaled by sqrt(2).
    """
    if a.dim() != 3 or a.shape[-1] != a.shape[-2]:
        raise ValueError(f"triu_vec expects (B, n, n), got shape {tuple(a.shape)}")
    n = a.shape[-1]
    rows, cols = torch.triu_indices(n, n, device=a.device)
    return a[:, rows, cols]


def triu_unvec(v: torch.Tensor, symmetric: bool = True) -> torch.Tensor:
    """(B, n(n+1)/2) -> (B, n, n), the inverse of :func:`triu_vec`.

    With ``symmetric`` the lower triangle mirrors the upper one; otherwise it is zero.
    """
    if v.dim() != 2:
        raise ValueError(f"triu_unvec expects (B, n(n+1)/2), got shape {tuple(v.shape)}")
    length = v.shape[-1]
    n = (math.isqrt(8 * length + 1) - 1) // 2
    if triu_dim(n) != length:
        raise ValueError(f"length {length} is not n(n+1)/2 for any integer n")
    rows, cols = torch.triu_indices(n, n, device=v.device)
    out = v.new_zeros(v.shape[0], n, n)
    out[:, rows, cols] = v
    if symmetric:
        out = out + torch.triu(out, diagonal=1).transpose(1, 2)
    return out
