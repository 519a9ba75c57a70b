"""gsoplib.viz.lessons_sqrtm: the per-image probe and Student's t p-value of notebook 02."""

from __future__ import annotations

import math

import pytest
import torch

from gsoplib.train import linear_probe
from gsoplib.viz.lessons_sqrtm import probe_correct, t_two_sided_p


def test_probe_correct_averages_to_linear_probes_test_accuracy():
    g = torch.Generator().manual_seed(0)
    centres = 2 * torch.randn(3, 6, generator=g)
    labels = torch.randint(0, 3, (90,), generator=g)
    features = centres[labels] + 1.5 * torch.randn(90, 6, generator=g)
    correct = probe_correct(features[:60], labels[:60], features[60:], labels[60:], num_classes=3)
    result = linear_probe(features[:60], labels[:60], features[60:], labels[60:], num_classes=3)
    assert correct.shape == (30,) and correct.dtype == torch.bool
    assert correct.float().mean().item() == result.test_accuracy
    assert 0 < correct.sum() < 30, "noisy classes: some test images right, some wrong"


def test_t_p_value_matches_tabulated_quantiles():
    assert t_two_sided_p(2.776445, 4) == pytest.approx(0.05, abs=1e-6)   # t_{0.975, 4}
    assert t_two_sided_p(12.7062, 1) == pytest.approx(0.05, abs=1e-4)    # t_{0.975, 1}
    assert t_two_sided_p(1.959964, 1e6) == pytest.approx(0.05, abs=1e-5)  # the normal limit
    assert t_two_sided_p(0.0, 3) == pytest.approx(1.0)
    assert t_two_sided_p(-3.0, 5) == t_two_sided_p(3.0, 5) < t_two_sided_p(2.0, 5)
    with pytest.raises(ValueError):
        t_two_sided_p(1.0, 0)
    assert math.isfinite(t_two_sided_p(50.0, 2.2))


def test_welch_p_matches_the_t_test_by_hand():
    from gsoplib.viz.lessons_sqrtm import welch_p

    a, b = [93.35, 94.00, 95.30], [96.85, 97.70, 97.90]
    va = torch.tensor(a, dtype=torch.float64).var().item() / 3
    vb = torch.tensor(b, dtype=torch.float64).var().item() / 3
    t = (sum(a) / 3 - sum(b) / 3) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / 2 + vb**2 / 2)
    assert welch_p(a, b) == pytest.approx(t_two_sided_p(t, df))
    assert welch_p(a, b) < 0.05 < welch_p(a, [93.0, 95.0, 96.0])
    with pytest.raises(ValueError):
        welch_p([1.0], [1.0, 2.0])


def test_permutation_p_floor_and_overlap():
    from gsoplib.viz.lessons_sqrtm import permutation_p

    assert permutation_p([1.0, 2.0, 3.0], [4.0, 5.0, 6.0]) == pytest.approx(2 / 20)   # the floor
    assert permutation_p([1.0, 5.0, 3.0], [2.0, 4.0, 3.0]) == pytest.approx(1.0)      # equal means
    assert permutation_p([1.0, 2.0], [3.0, 4.0, 5.0]) == pytest.approx(2 / 10)        # C(5, 2) = 10


def test_variance_ratio_p_closed_form():
    from gsoplib.viz.lessons_sqrtm import variance_ratio_p

    f, p = variance_ratio_p([0.0, 1.0, 2.0], [0.0, 2.0, 4.0])
    assert f == pytest.approx(4.0) and p == pytest.approx(2 / 5)
    assert variance_ratio_p([0.0, 1.0, 2.0], [0.0, 1.0, 2.0]) == pytest.approx((1.0, 1.0))
    f_big, p_big = variance_ratio_p([99.15, 98.45, 98.65], [96.65, 98.65, 92.85])
    assert f_big > 60 and p_big < 0.05
    with pytest.raises(ValueError):
        variance_ratio_p([1.0, 2.0], [1.0, 2.0, 3.0])
