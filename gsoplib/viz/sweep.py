"""The figure of the where-second-order-pooling-pays sweep (``benchmarks/compare.py --sweep``):
test accuracy against backbone size, a line per pooling, one panel per dataset."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from ._axes import _figure, _title

#: One colour and marker per pooling, the same in every panel.
STYLES = {"GAP": ("tab:grey", "o"), "GSoP blocks + GAP": ("tab:blue", "s"),
          "iSQRT-COV head": ("tab:orange", "^"), "GM-SOP head": ("tab:green", "D")}


def sweep_figure(rows: Sequence[dict], backbones: Sequence[str], *,
                 datasets: Sequence[str] | None = None, poolings: Sequence[str] | None = None,
                 figsize: tuple[float, float] | None = None) -> Figure:
    """Test top-1 (mean and std over seeds, error bars) against the backbone, smallest first,
    a line per pooling, a panel per dataset. ``rows``: the sweep's summary (dataset, backbone,
    pooling, test_top1, test_top1_std, seeds, params); ``datasets`` and ``poolings`` pick which
    are drawn (default: all in ``rows``)."""
    if not rows:
        raise ValueError("sweep_figure needs at least one row")
    datasets = list(datasets or dict.fromkeys(r["dataset"] for r in rows))
    poolings = list(poolings or dict.fromkeys(r["pooling"] for r in rows))
    fig = _figure(figsize or (5.5 * len(datasets), 4.2), left=0.08, right=0.98, bottom=0.28,
                  top=0.86, wspace=0.25)
    axes = np.atleast_1d(fig.subplots(1, len(datasets)))
    x = np.arange(len(backbones))
    for ax, dataset in zip(axes, datasets):
        for j, pooling in enumerate(poolings):
            cells = {r["backbone"]: r for r in rows
                     if r["dataset"] == dataset and r["pooling"] == pooling}
            shown = [i for i, b in enumerate(backbones) if b in cells]
            if not shown:
                continue
            colour, marker = STYLES.get(pooling, (None, "o"))
            offset = (j - (len(poolings) - 1) / 2) * 0.06
            ax.errorbar(x[shown] + offset, [cells[backbones[i]]["test_top1"] for i in shown],
                        yerr=[cells[backbones[i]]["test_top1_std"] for i in shown], capsize=3,
                        marker=marker, color=colour, label=pooling)
        seeds = sorted({r["seeds"] for r in rows if r["dataset"] == dataset})
        ax.set_xticks(x, list(backbones), rotation=20, ha="right", fontsize=7)
        ax.set_xlabel("backbone, smallest first")
        ax.set_ylabel("test top-1 % (mean +- std)")
        ax.legend(fontsize=7, loc="lower right")
        _title(ax, f"{dataset}: {'/'.join(map(str, seeds))} seeds per point")
    return fig


__all__ = ["STYLES", "sweep_figure"]
