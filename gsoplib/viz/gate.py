"""Figures of a GM-SOP head: one image's N gate logits and weights with the K chosen (GM-SOP
Eq. 2-3), and a batch's weights and component usage."""

from __future__ import annotations

import numpy as np
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..probe import Inspection
from ._axes import _figure, _integer_ticks, _record, _title
from .images import CHOSEN, OTHER


def gate_choices(insp: Inspection, path: str, image: int = 0, *, figsize=(10.0, 3.4),
                 title: str | None = None) -> Figure:
    """The gate of a GM-SOP head for one image (GM-SOP Eq. 2-3).

    Left: the N gate logits, the K chosen (top-k) highlighted. Right: the weights omega,
    exactly K non-zero and summing to 1, each chosen bar labelled with the norm of that
    component's representation. ``title`` replaces the figure title (default the mixture, the
    image and the components it chose).
    """
    record = _record(insp, path, image, "tap_gate_weights", "tap_gate_clean_logits")
    t = record.tensors
    logits = t.get("tap_gate_noisy_logits", t.get("tap_gate_clean_logits"))
    weights = t.get("tap_gate_weights")
    n = (weights if weights is not None else logits).shape[1]
    if "tap_gate_indices" in t:
        chosen = t["tap_gate_indices"][0].tolist()
    else:
        chosen = weights[0].nonzero().flatten().tolist()
    colours = [CHOSEN if i in chosen else OTHER for i in range(n)]
    panels = [x for x in (logits, weights) if x is not None]
    fig = _figure(figsize, left=0.07, right=0.98, bottom=0.16, wspace=0.25)
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    x = np.arange(n)
    if logits is not None:
        axes[0].bar(x, logits[0].double().numpy(), color=colours)
        _title(axes[0], f"gate logits: the top {len(chosen)} of {n} chosen")
        axes[0].set_ylabel("logit")
    if weights is not None:
        ax = axes[-1]
        w = weights[0].double().numpy()
        bars = ax.bar(x, w, color=colours)
        norms = t.get("tap_component_norms")
        if norms is not None and norms.shape[1] == len(chosen):
            by_component = dict(zip(chosen, norms[0].tolist()))
            labels = [f"{by_component[i]:.3g}" if i in by_component else "" for i in x]
            ax.bar_label(bars, labels=labels, fontsize=7, rotation=90, padding=2)
        ax.set_ylim(0, max(w.max() * 1.4, 1e-6))
        _title(ax, "weights omega (bar labels: the L2 norm of each chosen\n"
                   "component's output, before it is weighted)")
        ax.set_ylabel("weight")
    for ax in axes:
        ax.set_xlabel("component", fontsize=9)
        _integer_ticks(ax, n)
        ax.tick_params(labelsize=8)
    fig.suptitle(title or f"{record.label} ({record.kind}), image {image % insp.batch_size}: "
                 f"chose {', '.join(map(str, chosen))}", fontsize=10)
    return fig


def gate_usage(insp: Inspection, path: str, *, figsize=(10.0, 4.0)) -> Figure:
    """The gate across the batch: an images x components grid of weights omega, and how many
    images chose each component (the balance loss, GM-SOP Eq. 4, pushes these to be even)."""
    record = insp[path]
    w = record.require("tap_gate_weights").double().numpy()
    b, n = w.shape
    k = int((w[0] > 0).sum())
    fig = _figure(figsize, left=0.07, right=0.98, wspace=0.3)
    axes = fig.subplots(1, 2, width_ratios=[1.4, 1])
    im = axes[0].imshow(w, cmap="Blues", aspect="auto", interpolation="nearest",
                        norm=Normalize(0, max(w.max(), 1e-6)))
    axes[0].set_xlabel("component")
    axes[0].set_ylabel("image")
    _title(axes[0], f"gate weights, {b} images x {n} components")
    for ax in axes:
        _integer_ticks(ax, n)
    axes[0].yaxis.set_major_locator(MaxNLocator(min(b, 8), integer=True))
    fig.colorbar(im, ax=axes[0], label="omega", pad=0.02)
    counts = (w > 0).sum(axis=0)
    axes[1].bar(np.arange(n), counts, color=CHOSEN)
    axes[1].axhline(b * k / n, color="k", ls="--", lw=1, label=f"even use ({b}*{k}/{n})")
    axes[1].set_xlabel("component")
    axes[1].set_ylabel("images choosing it")
    _title(axes[1], "usage")
    axes[1].legend(fontsize=8)
    fig.suptitle(f"{record.label} ({record.kind})", fontsize=10)
    return fig

