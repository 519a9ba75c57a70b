"""What each class uses: GM-SOP gate weights and GSoP channel weights grouped by class.

GM-SOP (Sec. 3, Eq. 2-3) routes every image to the K of N component models with the largest
gate logits and weighs them by omega. Averaging omega over the images of one class shows whether
classes share components or each class has its own; :func:`gsoplib.viz.gate_usage` shows the
same weights image by image.

Examples:
    >>> import torch
    >>> from gsoplib.pretrained import load_pretrained
    >>> from gsoplib.probe import probe
    >>> ck = load_pretrained("fmnist_small_gmsop")
    >>> images, labels = torch.rand(8, 1, 28, 28), [ck.classes[i % 2] for i in range(8)]
    >>> insp = probe(ck.model, images, class_names=ck.classes)
    >>> names, usage, counts = class_component_usage(insp, "head", labels)
    >>> names, usage.shape                                     # usage: (classes, N)
    (['T-shirt/top', 'Trouser'], (2, 8))
    >>> print(gate_report(insp, "head", labels).verdict)      # 8 images: too few to judge
    Too few images to judge the gate: 8 of the 20 its statistics need ...
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .heads.gate import GateDiagnostics, gate_diagnostics
from .probe import Inspection


def _group_by_class(
    insp: Inspection, values: np.ndarray, labels: Sequence[str] | None
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Mean of the rows of ``values`` (B, D) per class: (names, means (classes, D), counts)."""
    if labels is None:
        labels = [top[0].name for top in insp.top]
    labels = list(labels)
    if len(labels) != values.shape[0]:
        raise ValueError(f"labels has {len(labels)} entries for a batch of {values.shape[0]}")
    order = {name: i for i, name in enumerate(insp.class_names)}
    names = sorted(set(labels), key=lambda n: (order.get(n, len(order)), n))
    members = np.array([[label == name for label in labels] for name in names])
    counts = members.sum(axis=1)
    return names, members @ values / counts[:, None], counts


def class_channel_weights(
    insp: Inspection, path: str, labels: Sequence[str] | None = None
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Mean channel weights per class of the block at ``path`` (GSoP-Net Sec. 3.1; SE, CBAM).

    Args:
        insp: an inspection of B images; the record at ``path`` holds ``tap_channel_weights``
            (B, C, 1, 1).
        labels: B class names, one per image; default each image's predicted class.

    Returns:
        (names, weights, counts) as :func:`class_component_usage`, weights (len(names), C) the
        mean of each channel's weight over each class's images.
    """
    record = insp[path]
    weights = record.require("tap_channel_weights").double().flatten(1).numpy()
    return _group_by_class(insp, weights, labels)


def class_component_usage(
    insp: Inspection, path: str, labels: Sequence[str] | None = None
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Mean gate weight omega per class and component.

    Args:
        insp: an inspection of B images through a model with a gated mixture at ``path``.
        path: the mixture's module path (its record holds ``tap_gate_weights``, (B, N)).
        labels: B class names, one per image (e.g. the true classes); default each image's
            predicted class.

    Returns:
        (names, usage, counts): the classes present, in ``insp.class_names`` order (names not
        among them last, sorted); usage (len(names), N) the mean of omega over each class's
        images (each row sums to 1); counts (len(names),) how many images each class has.
    """
    record = insp[path]
    return _group_by_class(insp, record.require("tap_gate_weights").double().numpy(), labels)


def gate_report(
    insp: Inspection, path: str, labels: Sequence[str] | None = None
) -> GateDiagnostics:
    """:func:`gsoplib.heads.gate.gate_diagnostics` of the gate at ``path`` over the inspected
    images: usage, chosen sets, ties and, with ``labels`` (one class name per image), the
    dependence of the choice on the class."""
    record = insp[path]
    missing = {"tap_gate_indices", "tap_gate_weights"} - set(record.tensors)
    if missing:
        raise ValueError(f"{record.label} ({record.kind}) has no {', '.join(sorted(missing))}")
    return gate_diagnostics(
        record["tap_gate_indices"], record["tap_gate_weights"], None if labels is None else
        list(labels)
    )


def class_usage_figure(
    insp: Inspection,
    path: str,
    labels: Sequence[str] | None = None,
    *,
    figsize: tuple[float, float] = (8.0, 3.8),
) -> Figure:
    """A classes x components grid of the mean gate weight (see :func:`class_component_usage`),
    rows labelled with the class and its number of images."""
    names, usage, counts = class_component_usage(insp, path, labels)
    n = usage.shape[1]
    fig = Figure(figsize=figsize)
    fig.subplots_adjust(left=0.22, right=0.97, bottom=0.15, top=0.86)
    ax = fig.subplots()
    im = ax.imshow(usage, cmap="Blues", aspect="auto", interpolation="nearest",
                   norm=Normalize(0, max(float(usage.max()), 1e-6)))
    ax.set_yticks(np.arange(len(names)), [f"{name} ({c})" for name, c in zip(names, counts)],
                  fontsize=8)
    if n <= 16:
        ax.set_xticks(np.arange(n))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(8, integer=True))
    ax.set_xlabel("component")
    ax.set_title(f"{insp[path].label}: mean gate weight per class ({int(counts.sum())} images)",
                 fontsize=10)
    fig.colorbar(im, ax=ax, label="mean omega", pad=0.02)
    return fig


__all__ = ["class_channel_weights", "class_component_usage", "class_usage_figure", "gate_report"]
