"""Linear probes on frozen features: how much of a task a backbone's last feature map makes
linearly separable when it is pooled by its mean (GAP), its covariance, or the covariance's
Newton-Schulz root (iSQRT-COV), with few labels per class.

The backbone stays fixed (trained, or as initialised); only a multinomial logistic regression
on the pooled features learns. A pooling that wins here reads what the map already holds; it
does not say how a network trained end to end with that pooling would do.

Examples:
    >>> import torch
    >>> from gsoplib.pretrained import load_pretrained
    >>> model = load_pretrained("fmnist_small_vanilla").model
    >>> images, labels = torch.rand(40, 1, 28, 28), torch.arange(40) % 2
    >>> maps = last_feature_map(model, images)
    >>> maps.shape                                                  # (S, C, H, W)
    torch.Size([40, 64, 7, 7])
    >>> x = pool_features(maps, "covariance")
    >>> x.shape                                                     # (S, C (C + 1) / 2)
    torch.Size([40, 2080])
    >>> keep = few_label_subset(labels, per_class=10, seed=0)
    >>> accuracy = fit_linear_probe(x[keep], labels[keep], x, labels, max_iter=20)
    >>> 0 <= accuracy <= 1                                          # test accuracy
    True
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .ops import covariance, sqrtm_newton_schulz, triu_vec

POOLINGS = ("gap", "covariance", "root")
"""gap: the channel means (C); covariance: the upper triangle of the channel covariance over
positions (C (C + 1) / 2, GSoP-Net Sec. 3.1); root: that of its Newton-Schulz square root, 3
iterations, trace-normalised and post-compensated (iSQRT-COV)."""


@torch.no_grad()
def last_feature_map(model: nn.Module, images: torch.Tensor, batch_size: int = 256
                     ) -> torch.Tensor:
    """The input of ``model.head`` (the backbone's last feature map) for every image, in eval
    mode: (S, C, H, W) float32 on the CPU. ``images`` (S, C_in, H_in, W_in), normalised."""
    head = getattr(model, "head", None)
    if not isinstance(head, nn.Module):
        raise ValueError(f"{type(model).__name__} has no `head` module whose input is the last "
                         "feature map; gsoplib's models (gsoplib.models.create_model) have one")
    kept: list[torch.Tensor] = []
    hook = head.register_forward_pre_hook(lambda _, args: kept.append(args[0].float().cpu()))
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        for start in range(0, len(images), batch_size):
            model(images[start:start + batch_size].to(device))
    finally:
        hook.remove()
        model.train(was_training)
    maps = torch.cat(kept)
    if maps.dim() != 4:
        raise ValueError(f"the head's input is {tuple(maps.shape[1:])} per image, not a "
                         "(C, H, W) feature map")
    return maps


def pool_features(maps: torch.Tensor, pooling: str, iters: int = 3) -> torch.Tensor:
    """(S, C, H, W) -> (S, D) by one of :data:`POOLINGS`, in float64."""
    maps = maps.double()
    if pooling == "gap":
        return maps.mean(dim=(2, 3))
    if pooling == "covariance":
        return triu_vec(covariance(maps))
    if pooling == "root":
        return triu_vec(sqrtm_newton_schulz(covariance(maps), iters=iters))
    raise ValueError(f"unknown pooling {pooling!r}; valid: {', '.join(POOLINGS)}")


def few_label_subset(labels: torch.Tensor, per_class: int, seed: int = 0) -> torch.Tensor:
    """Indices of ``per_class`` samples of every class, drawn without replacement (seeded);
    a class with fewer samples is an error."""
    generator = torch.Generator().manual_seed(seed)
    out = []
    for c in labels.unique().tolist():
        where = (labels == c).nonzero().flatten()
        if len(where) < per_class:
            raise ValueError(f"class {c} has {len(where)} samples, fewer than {per_class}")
        out.append(where[torch.randperm(len(where), generator=generator)[:per_class]])
    return torch.cat(out).sort().values


def fit_linear_probe(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor,
                     test_y: torch.Tensor, *, weight_decay: float = 1e-2,
                     max_iter: int = 200) -> float:
    """Test accuracy of a multinomial logistic regression trained on (``train_x``,
    ``train_y``): features standardised with the training set's mean and standard deviation,
    cross-entropy + ``weight_decay`` * ||W||^2 / 2 minimised by L-BFGS in float64 (a convex
    problem: the result does not depend on an initialisation or a learning rate)."""
    train_x, test_x = train_x.double(), test_x.double()
    mean, std = train_x.mean(0), train_x.std(0).clamp_min(1e-8)
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    classes = int(max(train_y.max(), test_y.max())) + 1
    weight = torch.zeros(train_x.shape[1], classes, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(classes, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=max_iter, line_search_fn="strong_wolfe")

    def loss() -> torch.Tensor:
        optimizer.zero_grad()
        value = F.cross_entropy(train_x @ weight + bias, train_y)
        value = value + 0.5 * weight_decay * weight.square().sum()
        value.backward()
        return value

    optimizer.step(loss)
    with torch.no_grad():
        return float(((test_x @ weight + bias).argmax(1) == test_y).double().mean())


__all__ = ["POOLINGS", "few_label_subset", "fit_linear_probe", "last_feature_map",
           "pool_features"]
