"""Block ablation: what a trained network predicts when an attention block's weights are 1.

A GSoP block (GSoP-Net Sec. 3.1-3.2), SE or CBAM returns ``x * w`` with w its channel weights
(B, C, 1, 1) or position weights (B, 1, H, W). Forcing w = 1 makes the block the identity, as if
it had never been inserted, while every other layer keeps its trained weights. Comparing the
predictions with and without shows what the block's weighting contributes (a post-hoc ablation,
not a retrained network without the block, which would have adapted to its absence).

Examples:
    >>> import torch
    >>> from gsoplib.pretrained import load_pretrained
    >>> model = load_pretrained("fmnist_small_gsop1").model
    >>> x, labels = torch.rand(4, 1, 28, 28), torch.tensor([0, 1, 2, 3])
    >>> with ablate(model, "layer3.2.attn"):
    ...     logits = model(x)                       # layer3.2.attn returns its input unchanged
    >>> effect = ablation_effect(model, x, ["layer3.2.attn"], labels)
    >>> effect.flipped.shape, 0 <= effect.top1_after <= 1
    (torch.Size([4]), True)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from .taps import Tap, part_paths

#: The taps through which a block's multiplicative weights pass before ``x * w``.
WEIGHT_TAPS = ("tap_channel_weights", "tap_pos_weights")


def weight_taps(model: nn.Module, path: str) -> list[Tap]:
    """The weight taps (:data:`WEIGHT_TAPS`) directly owned by the block at ``path``.

    Raises:
        ValueError: no module at ``path``, or one without channel or position weights.
    """
    modules = dict(model.named_modules())
    if path not in modules:
        blocks = [p for p in part_paths(model) if _own_taps(modules[p])]
        raise ValueError(f"no module {path!r} in {type(model).__name__}; blocks with weights: "
                         f"{', '.join(blocks) or 'none'}")
    found = _own_taps(modules[path])
    if not found:
        raise ValueError(f"{path!r} ({type(modules[path]).__name__}) has no channel or position "
                         f"weights to set to 1")
    return found


def _own_taps(module: nn.Module) -> list[Tap]:
    return [m for name, m in module.named_children() if isinstance(m, Tap) and name in WEIGHT_TAPS]


def ablatable_blocks(model: nn.Module) -> list[str]:
    """Paths of the blocks :func:`ablate` accepts, in module order."""
    modules = dict(model.named_modules())
    return [p for p in part_paths(model) if _own_taps(modules[p])]


@contextmanager
def ablate(model: nn.Module, paths: str | Sequence[str]) -> Iterator[nn.Module]:
    """Within the block, the weights of the blocks at ``paths`` are 1: each returns its input.

    A forward hook on each block's weight tap replaces the weights by ones of the same shape and
    dtype; no parameter or buffer is touched, and the hooks are removed on exit (also on error),
    so the model afterwards computes exactly what it computed before. Yields the model.
    """
    paths = [paths] if isinstance(paths, str) else list(paths)
    found = [tap for path in paths for tap in weight_taps(model, path)]
    handles = [tap.register_forward_hook(lambda m, args, out: torch.ones_like(out))
               for tap in found]
    try:
        yield model
    finally:
        for handle in handles:
            handle.remove()


@dataclass
class AblationEffect:
    """Predictions of B images with and without the ablation of ``paths``.

    probs_before, probs_after: (B, K) softmax probabilities; predicted_before, predicted_after:
    (B,) class indices; flipped: (B,) bool, the top-1 class changed; labels: (B,) or None;
    top1_before / top1_after: accuracy against labels (None without labels); mean_abs_change:
    mean over images of max_k |p_after - p_before|.
    """

    paths: list[str]
    probs_before: torch.Tensor
    probs_after: torch.Tensor
    labels: torch.Tensor | None = None

    @property
    def predicted_before(self) -> torch.Tensor:
        return self.probs_before.argmax(dim=1)

    @property
    def predicted_after(self) -> torch.Tensor:
        return self.probs_after.argmax(dim=1)

    @property
    def flipped(self) -> torch.Tensor:
        return self.predicted_before != self.predicted_after

    @property
    def top1_before(self) -> float | None:
        return None if self.labels is None else _accuracy(self.predicted_before, self.labels)

    @property
    def top1_after(self) -> float | None:
        return None if self.labels is None else _accuracy(self.predicted_after, self.labels)

    @property
    def mean_abs_change(self) -> float:
        return float((self.probs_after - self.probs_before).abs().amax(dim=1).mean())

    def summary(self) -> str:
        """One line: which blocks, how many predictions changed, the accuracy before and after."""
        what = ", ".join(self.paths) if self.paths else "nothing"
        line = (f"ablating {what}: {int(self.flipped.sum())} of {len(self.flipped)} top-1 "
                f"predictions change, largest probability change {self.mean_abs_change:.3f} "
                f"on average")
        if self.labels is not None:
            line += f"; top-1 {self.top1_before:.1%} -> {self.top1_after:.1%}"
        return line


def _accuracy(predicted: torch.Tensor, labels: torch.Tensor) -> float:
    return float((predicted == labels.to(predicted.device)).double().mean())


@torch.no_grad()
def ablation_effect(
    model: nn.Module,
    images: torch.Tensor,
    paths: str | Sequence[str],
    labels: torch.Tensor | None = None,
    batch_size: int = 500,
) -> AblationEffect:
    """Run ``model`` in eval on ``images`` (B, C, H, W) as it is and with ``paths`` ablated
    (:func:`ablate`); restores the model's train/eval mode. An empty ``paths`` ablates nothing
    (both runs agree)."""
    paths = [paths] if isinstance(paths, str) else list(paths)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device

    def probabilities() -> torch.Tensor:
        return torch.cat([
            model(images[s : s + batch_size].to(device)).float().softmax(dim=1).cpu()
            for s in range(0, len(images), batch_size)
        ])

    try:
        before = probabilities()
        with ablate(model, paths):
            after = probabilities()
    finally:
        model.train(was_training)
    return AblationEffect(paths, before, after, None if labels is None else labels.cpu())


__all__ = [
    "WEIGHT_TAPS",
    "AblationEffect",
    "ablatable_blocks",
    "ablate",
    "ablation_effect",
    "weight_taps",
]
