"""Linear probes on frozen features (gsoplib.linear_probe): the pooled features are the formulas,
the feature map is the head's input, and a probe reads what each pooling keeps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gsoplib.linear_probe import (
    few_label_subset,
    fit_linear_probe,
    last_feature_map,
    pool_features,
)
from gsoplib.models import create_model
from gsoplib.ops import sqrtm_newton_schulz


def test_pooled_features_are_the_direct_formulas():
    torch.manual_seed(0)
    maps = torch.randn(3, 5, 4, 6)
    gap = pool_features(maps, "gap")
    np.testing.assert_allclose(gap.numpy(), maps.double().mean(dim=(2, 3)).numpy(), rtol=1e-12)
    cov = pool_features(maps, "covariance")
    assert cov.shape == (3, 15)
    for b in range(3):
        direct = np.cov(maps[b].double().flatten(1).numpy(), bias=True)   # 1/M, as the paper
        rows, cols = np.triu_indices(5)
        np.testing.assert_allclose(cov[b].numpy(), direct[rows, cols], rtol=1e-10, atol=1e-12)
    root = pool_features(maps, "root")
    full = sqrtm_newton_schulz(torch.from_numpy(np.stack(
        [np.cov(m.double().flatten(1).numpy(), bias=True) for m in maps])), iters=3)
    rows, cols = np.triu_indices(5)
    np.testing.assert_allclose(root.numpy(), full.numpy()[:, rows, cols], rtol=1e-8, atol=1e-10)
    with pytest.raises(ValueError, match="unknown pooling 'max'; valid: gap, covariance, root"):
        pool_features(maps, "max")


def test_the_last_feature_map_is_what_the_gap_head_reads():
    torch.manual_seed(1)
    model = create_model("small_vanilla", num_classes=4, in_chans=1).train()
    images = torch.randn(10, 1, 28, 28)
    maps = last_feature_map(model, images, batch_size=4)
    assert maps.shape == (10, 64, 7, 7) and model.training       # the mode is given back
    with torch.no_grad():
        logits = model.eval()(images)
        np.testing.assert_allclose(model.head.fc(maps.mean(dim=(2, 3))).numpy(), logits.numpy(),
                                   rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="has no `head` module"):
        last_feature_map(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3)), images)


def test_few_label_subsets_take_as_many_of_each_class_and_are_seeded():
    labels = torch.arange(100) % 4
    keep = few_label_subset(labels, per_class=5, seed=0)
    assert torch.bincount(labels[keep]).tolist() == [5, 5, 5, 5]
    assert torch.equal(keep, few_label_subset(labels, per_class=5, seed=0))
    assert not torch.equal(keep, few_label_subset(labels, per_class=5, seed=1))
    with pytest.raises(ValueError, match="class 0 has 25 samples, fewer than 30"):
        few_label_subset(labels, per_class=30)


def correlated_maps(samples: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two classes whose maps have the same channel means and variances; only the correlation
    of channels 0 and 1 (+0.8 or -0.8) tells them apart."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(samples) % 2
    z = torch.randn(samples, 4, 49, generator=generator)
    rho = torch.where(labels == 1, 0.8, -0.8).view(-1, 1)
    z[:, 1] = rho * z[:, 0] + (1 - rho ** 2).sqrt() * z[:, 1]
    return z.view(samples, 4, 7, 7), labels


def test_a_probe_reads_a_correlation_from_the_covariance_and_not_from_the_mean():
    train_maps, train_y = correlated_maps(200, seed=0)
    test_maps, test_y = correlated_maps(400, seed=1)
    acc = {pooling: fit_linear_probe(pool_features(train_maps, pooling), train_y,
                                     pool_features(test_maps, pooling), test_y)
           for pooling in ("gap", "covariance", "root")}
    assert acc["covariance"] > 0.95 and acc["root"] > 0.95
    assert acc["gap"] < 0.65                                      # chance is 0.5


def test_a_probe_separates_separable_data_and_not_random_labels():
    torch.manual_seed(2)
    x = torch.randn(300, 6)
    y = (x[:, 0] + x[:, 1] > 0).long()
    assert fit_linear_probe(x[:200], y[:200], x[200:], y[200:]) > 0.95
    noise = torch.randint(0, 3, (300,))
    assert fit_linear_probe(x[:200], noise[:200], x[200:], noise[200:]) < 0.5
