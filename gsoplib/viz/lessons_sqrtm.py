"""Helpers for notebook 02 (the matrix square root) that are statistics, not figures.

    :func:`probe_correct`   per-test-image correctness of the linear probe of notebook 01, so
                            two normalisations scored on the same images can be compared
                            pairwise (McNemar) rather than through one accuracy's binomial error
    :func:`t_two_sided_p`   two-sided p-value of Student's t (for Welch's and the pooled t-test
                            on a handful of seeds), by numerical integration of the density
"""

from __future__ import annotations

import math

import torch

from ..train.linear_probe import linear_probe


def probe_correct(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    *,
    num_classes: int,
    steps: int = 300,
    lr: float = 0.1,
    seed: int = 0,
) -> torch.Tensor:
    """Which test images the linear probe classifies correctly: :func:`gsoplib.train.linear_probe`'s
    ``test_correct``, so ``probe_correct(...).float().mean()`` is its ``test_accuracy``.

    Args:
        train_features: (N, D) float. train_labels: (N,) int64.
        test_features: (M, D) float. test_labels: (M,) int64.
    Returns:
        (M,) bool: prediction == label per test image.
    """
    return linear_probe(train_features, train_labels, test_features, test_labels, steps=steps,
                        lr=lr, seed=seed, num_classes=num_classes).test_correct


def t_two_sided_p(t: float, df: float, points: int = 200_001) -> float:
    """Two-sided p-value P(|T| >= |t|) of Student's t with ``df`` degrees of freedom.

    Density f(x) = Gamma((df + 1)/2) / (sqrt(df pi) Gamma(df/2)) (1 + x^2/df)^(-(df + 1)/2);
    P(|T| < |t|) is its integral over (-|t|, |t|) by the trapezoidal rule on ``points`` points,
    so the result is accurate to about 1e-8 for the t and df of a few seeds.

    Args:
        t: the statistic (a float). df: degrees of freedom (> 0; Welch's df need not be whole).
    Returns:
        the p-value, a float in [0, 1].
    """
    if df <= 0:
        raise ValueError(f"df must be positive, got {df}")
    x = torch.linspace(-abs(t), abs(t), points, dtype=torch.float64)
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    density = torch.exp(log_c - (df + 1) / 2 * torch.log1p(x**2 / df))
    return float(min(1.0, max(0.0, 1.0 - torch.trapezoid(density, x).item())))


__all__ = ["probe_correct", "t_two_sided_p"]
