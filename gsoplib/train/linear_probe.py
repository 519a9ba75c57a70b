"""A linear probe: how much of a classification a fixed feature vector already carries.

Multinomial logistic regression on standardised features, trained full-batch with Adam. It
measures features (GAP against covariance pooling in notebook 01), it does not train networks:
for those see :class:`gsoplib.train.Trainer`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class LinearProbeResult:
    """Accuracies (fractions in [0, 1]) of a :func:`linear_probe` classifier, and which test
    samples it got right (``test_correct``, (N',) bool: the outcomes ``test_accuracy``
    averages, for paired tests between probes scored on the same samples)."""

    train_accuracy: float
    test_accuracy: float
    num_classes: int
    steps: int
    test_correct: torch.Tensor | None = field(default=None, compare=False, repr=False)


def linear_probe(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    *,
    steps: int = 300,
    lr: float = 0.1,
    seed: int = 0,
    num_classes: int | None = None,
) -> LinearProbeResult:
    """Fit a linear classifier on ``train_features`` and report its train and test accuracy.

    The features are standardised with the training set's per-feature mean and standard
    deviation (the same transform is applied to the test features), then
    ``logits = W f + b`` (``nn.Linear(D, num_classes)``) is trained for ``steps`` full-batch Adam
    steps on the cross-entropy loss, i.e. multinomial logistic regression.

    Args:
        train_features: (N, D) float. train_labels: (N,) int64 class indices.
        test_features: (N', D) float. test_labels: (N',) int64.
        steps: Adam steps on the whole training set. lr: Adam's learning rate.
        seed: initialises the classifier; the global random state is left as it was.
        num_classes: default ``max(label) + 1`` over both label sets.

    Returns:
        :class:`LinearProbeResult` with ``train_accuracy`` and ``test_accuracy``. Deterministic
        on a CPU for a given seed and thread count.
    """
    if train_features.dim() != 2 or test_features.dim() != 2:
        raise ValueError(
            f"linear_probe expects (N, D) features, got {tuple(train_features.shape)} and "
            f"{tuple(test_features.shape)}"
        )
    if train_features.shape[1] != test_features.shape[1]:
        raise ValueError("train and test features have different dimensions")
    if len(train_features) != len(train_labels) or len(test_features) != len(test_labels):
        raise ValueError("features and labels differ in length")
    if num_classes is None:
        num_classes = int(max(train_labels.max(), test_labels.max())) + 1
    train_features, test_features = train_features.detach(), test_features.detach()
    centre = train_features.mean(0)
    scale = train_features.std(0).clamp_min(torch.finfo(train_features.dtype).tiny)
    a, b = (train_features - centre) / scale, (test_features - centre) / scale
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        classifier = nn.Linear(a.shape[1], num_classes, dtype=a.dtype, device=a.device)
    optimizer = torch.optim.Adam(classifier.parameters(), lr=lr)
    with torch.enable_grad():
        for _ in range(steps):
            optimizer.zero_grad()
            F.cross_entropy(classifier(a), train_labels).backward()
            optimizer.step()
    with torch.no_grad():
        train_accuracy = (classifier(a).argmax(1) == train_labels).float().mean().item()
        test_correct = classifier(b).argmax(1) == test_labels
    return LinearProbeResult(train_accuracy, test_correct.float().mean().item(), num_classes,
                             steps, test_correct)


__all__ = ["LinearProbeResult", "linear_probe"]
