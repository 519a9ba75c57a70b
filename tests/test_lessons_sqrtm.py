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
