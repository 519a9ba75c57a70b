"""Helpers for notebook 02 (the matrix square root) that are statistics, not figures.

    :func:`probe_correct`   per-test-image correctness of the linear probe of notebook 01, so
                            two normalisations scored on the same images can be compared
                            pairwise (McNemar) rather than through one accuracy's binomial error
    :func:`t_two_sided_p`   two-sided p-value of Student's t (for Welch's and the pooled t-test
                            on a handful of seeds), by numerical integration of the density
    :func:`welch_t`         Welch's t and its degrees of freedom for two lists of seeds
    :func:`welch_p`         Welch's t-test of two lists of seeds: two-sided p
    :func:`permutation_p`   the exact two-sided permutation test of a difference of means
    :func:`variance_ratio_p` the F-test of two seed spreads, for three seeds a side
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

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


def welch_t(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Welch's t of two settings' seeds and its Welch-Satterthwaite degrees of freedom.

    t = (mean_a - mean_b) / sqrt(v_a + v_b) with v = s^2 / n (sample variance s^2, n - 1), and
    df = (v_a + v_b)^2 / (v_a^2 / (n_a - 1) + v_b^2 / (n_b - 1)).

    Args:
        a, b: sequences of at least two floats each, not all equal on both sides.
    Returns:
        (t, df).
    """
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"Welch's test needs two or more seeds a side, got {len(a)} and {len(b)}")
    ta, tb = torch.tensor(list(a), dtype=torch.float64), torch.tensor(list(b), dtype=torch.float64)
    va, vb = ta.var().item() / len(a), tb.var().item() / len(b)
    if va + vb == 0:
        raise ValueError("Welch's test: every seed gives the same value on both sides")
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return (ta.mean() - tb.mean()).item() / math.sqrt(va + vb), df


def welch_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Welch's t-test of two settings' seeds (e.g. test top-1 %): the two-sided p of
    :func:`t_two_sided_p` at :func:`welch_t`'s t and degrees of freedom, a float in [0, 1]."""
    return t_two_sided_p(*welch_t(a, b))


def permutation_p(a: Sequence[float], b: Sequence[float]) -> float:
    """The exact two-sided permutation test of mean_a - mean_b: the share of all C(n_a + n_b, n_a)
    ways to split the pooled values into groups of n_a and n_b whose |difference of means| is at
    least the observed one (the observed split counted). With 3 + 3 seeds there are 20 splits and
    the two-sided p cannot go below 2/20 = 0.10 (the observed split and its mirror).

    Args:
        a, b: sequences of floats (at least one each).
    Returns:
        the p-value, a float in (0, 1].
    """
    pooled, n_a, n_b = list(a) + list(b), len(a), len(b)
    total = sum(pooled)
    observed = abs(sum(a) / n_a - sum(b) / n_b)
    splits = list(itertools.combinations(range(n_a + n_b), n_a))
    hits = 0
    for chosen in splits:
        first = sum(pooled[i] for i in chosen)
        hits += abs(first / n_a - (total - first) / n_b) >= observed - 1e-9
    return hits / len(splits)


def variance_ratio_p(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """The F-test of two seed spreads, three values a side: F = larger / smaller sample variance.

    With n = 3 each, 2 s^2 / sigma^2 is chi^2 with 2 df, an exponential variable, and for
    independent exponentials X, Y: P(X / Y >= f) = E[exp(-f Y)] = 1 / (1 + f). So under equal
    variances (and normal seeds) the two-sided p of F >= 1 is min(1, 2 / (1 + F)).

    Args:
        a, b: sequences of exactly three floats each, neither all equal.
    Returns:
        (F, p): the variance ratio (>= 1) and its two-sided p-value.
    """
    if len(a) != 3 or len(b) != 3:
        raise ValueError(f"variance_ratio_p needs three values a side, got {len(a)} and {len(b)}")
    va = torch.tensor(list(a), dtype=torch.float64).var().item()
    vb = torch.tensor(list(b), dtype=torch.float64).var().item()
    if va == 0 or vb == 0:
        raise ValueError("variance_ratio_p: a side with zero spread")
    f = max(va / vb, vb / va)
    return f, min(1.0, 2 / (1 + f))


__all__ = [
    "permutation_p",
    "probe_correct",
    "t_two_sided_p",
    "variance_ratio_p",
    "welch_p",
    "welch_t",
]
