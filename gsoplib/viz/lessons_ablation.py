"""Figures of notebook 06's block ablation (:mod:`gsoplib.ablation`) and its widget's callback.

    ablation_figure(effect, images, index, class_names)   one image's probabilities with and
                                                          without the ablation, and the batch
    ablation_view(model, images, labels, ...)             ablate the ticked blocks and draw
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from ..ablation import AblationEffect, ablation_effect
from ._axes import _figure, _title
from .images import CHOSEN, OTHER, display_image


def ablation_figure(
    effect: AblationEffect,
    images: torch.Tensor,
    index: int,
    class_names: Sequence[str],
    *,
    figsize=(12.0, 3.3),
) -> Figure:
    """Left: image ``index``. Middle: its class probabilities as the model is (grey) and with
    ``effect.paths`` ablated (orange), the true class starred. Right: over the batch, the top-1
    accuracy before and after and how many predictions changed."""
    if not 0 <= index < len(effect.flipped):
        raise IndexError(f"image {index} is out of range for a batch of {len(effect.flipped)}")
    fig = _figure(figsize, left=0.03, right=0.98, bottom=0.3, top=0.85, wspace=0.35)
    grid = fig.add_gridspec(1, 4)
    ax_img = fig.add_subplot(grid[0, 0])
    ax_img.imshow(display_image(images[index]), cmap="gray")
    ax_img.axis("off")
    truth = None if effect.labels is None else int(effect.labels[index])
    _title(ax_img, f"image {index}" + (f": {class_names[truth]}" if truth is not None else ""))
    ax = fig.add_subplot(grid[0, 1:3])
    x = np.arange(len(class_names))
    ax.bar(x - 0.2, effect.probs_before[index].numpy(), 0.4, color=OTHER, label="as trained")
    what = ", ".join(effect.paths) or "nothing"
    ax.bar(x + 0.2, effect.probs_after[index].numpy(), 0.4, color=CHOSEN,
           label=f"weights of {what} set to 1")
    names = [f"*{n}" if i == truth else n for i, n in enumerate(class_names)]
    ax.set_xticks(x, names, rotation=40, ha="right", fontsize=7)
    ax.set_ylim(0, 1.3)                          # room for the legend above the bars
    ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0])
    ax.set_ylabel("probability")
    ax.legend(fontsize=7, loc="upper center", ncol=2, frameon=False)
    before, after = int(effect.predicted_before[index]), int(effect.predicted_after[index])
    _title(ax, f"predicted {class_names[before]} ({effect.probs_before[index, before]:.2f}) -> "
               f"{class_names[after]} ({effect.probs_after[index, after]:.2f})")
    ax_batch = fig.add_subplot(grid[0, 3])
    if effect.labels is not None:
        ax_batch.bar([0, 1], [effect.top1_before, effect.top1_after], color=[OTHER, CHOSEN])
        ax_batch.set_xticks([0, 1], ["as trained", "ablated"], fontsize=8)
        ax_batch.set_ylim(0, 1)
        ax_batch.set_ylabel("top-1 over the batch")
    else:
        ax_batch.axis("off")
    _title(ax_batch, f"{int(effect.flipped.sum())} of {len(effect.flipped)} predictions change")
    return fig


def ablation_view(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor | None,
    class_names: Sequence[str],
    paths: Sequence[str],
    index: int = 0,
) -> tuple[AblationEffect, Figure]:
    """The widget's callback: :func:`~gsoplib.ablation.ablation_effect` of ``paths`` (the ticked
    blocks; none ticked compares the model with itself) and :func:`ablation_figure` of image
    ``index``."""
    effect = ablation_effect(model, images, list(paths), labels)
    return effect, ablation_figure(effect, images, index, class_names)


__all__ = ["ablation_figure", "ablation_view"]
