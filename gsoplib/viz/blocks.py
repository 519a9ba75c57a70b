"""Figures of one image and one block: the prediction, channel weights (GSoP-Net Sec. 3.1; SE,
CBAM), position weights (Sec. 3.2) and covariance matrices with their spectrum."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize, TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullLocator

from ..probe import Inspection
from ._axes import _figure, _input_ax, _map_ax, _mosaic, _record, _title
from .charts.tables import with_exact_root
from .images import CHOSEN, DIVERGING, OTHER, _resize


def prediction(insp: Inspection, image: int = 0, *, figsize=(5.0, 2.6)) -> Figure:
    """Top-k class probabilities of one image, best at the top."""
    top = insp.top[image]
    fig = _figure(figsize, left=0.3, right=0.95, bottom=0.2)
    ax = fig.subplots()
    names = [p.name for p in top][::-1]
    probs = [p.probability for p in top][::-1]
    bars = ax.barh(names, probs, color=[OTHER] * (len(top) - 1) + [CHOSEN])
    ax.bar_label(bars, labels=[f"{p:.1%}" for p in probs], fontsize=8, padding=2)
    ax.set_xlim(0, 1.18)
    ax.set_xlabel("probability")
    _title(ax, f"image {image % insp.batch_size}: top-{len(top)} classes", 10)
    return fig


def channel_weights(
    insp: Inspection, path: str, image: int = 0, *, show: int = 4, figsize=(9.0, 5.0),
    title: str | None = None, rows: tuple[str, str] = ("boosted", "suppressed"),
) -> Figure:
    """Channel weights of a GSoP channel block (GSoP-Net Sec. 3.1), SE or CBAM for one image.

    Top: all C weights sorted from most boosted (green) to most suppressed (red); they are
    sigmoid outputs in (0, 1) and the block returns x * w. Below: the block input's feature maps
    of the ``show`` most boosted (first row) and most suppressed channels (second row), on one
    shared colour scale. ``title`` replaces the top panel's title (default the block, its kind
    and the weights' min / median / max); ``rows`` labels the two rows of maps.
    """
    record = _record(insp, path, image, "tap_channel_weights")
    weights = record["tap_channel_weights"].flatten().double().numpy()
    c = len(weights)
    order = np.argsort(-weights, kind="stable")
    maps = record.tensors.get("tap_input", record.tensors.get("tap_output"))
    show = min(show, c // 2) if maps is not None and maps.dim() == 4 else 0
    fig = _figure(figsize, left=0.08, bottom=0.04, top=0.9, hspace=0.45)
    grid = fig.add_gridspec(2 if show else 1, 1, height_ratios=[1, 1.25][: 2 if show else 1])
    ax = fig.add_subplot(grid[0])
    sorted_w = weights[order]
    edges = np.arange(c + 1) - 0.5
    spans = ((0, show, "tab:green"), (show, c - show, OTHER), (c - show, c, "tab:red"))
    for lo, hi, colour in spans:
        if hi > lo:
            ax.stairs(sorted_w[lo:hi], edges[lo : hi + 1], fill=True, color=colour)
    ax.set_xlim(-0.5, c - 0.5)
    ax.set_ylim(0, 1)
    # The x axis is a rank, not a channel id (those are in the labels below): a few ticks do.
    # Every tick is two markers and a text to lay out, the bulk of drawing these figures.
    ax.xaxis.set_major_locator(MaxNLocator(6, integer=True))
    ax.set_yticks([0, 0.5, 1])
    ax.set_xlabel("channels, sorted by weight", fontsize=9)
    ax.set_ylabel("weight")
    _title(ax, title or f"{record.label} ({record.kind}): {c} channel weights, min "
           f"{weights.min():.2f} / median {np.median(weights):.2f} / max {weights.max():.2f}", 10)
    if show:
        fmap = maps[0].double().numpy()
        rows_named, rows = rows, [order[:show], order[::-1][:show]]
        h, w = fmap.shape[-2:]
        # Room above the second row for its labels, in pixels of the maps.
        row_gap = 2 + h // 4
        mosaic = _mosaic([[fmap[ch] for ch in row] for row in rows], 1, row_gap)
        mx = fig.add_subplot(grid[1])
        im = _map_ax(mx, mosaic, "", "viridis")
        for i, (what, row) in enumerate(zip(rows_named, rows)):
            top = i * (h + row_gap)
            mx.text(-0.05 * w, top + h / 2, what, ha="right", va="center", rotation=90,
                    fontsize=8)
            for j, ch in enumerate(row):
                mx.text(j * (w + 1) + w / 2, top - 0.6, f"ch {ch}: {weights[ch]:.2f}",
                        ha="center", va="bottom", fontsize=7)
        fig.colorbar(im, ax=mx, label="block input", shrink=0.9, pad=0.02, ticks=MaxNLocator(4))
    return fig


def position_weights(insp: Inspection, path: str, image: int = 0, *, figsize=(8.0, 3.6),
                     title: str | None = None, grid_ticks: bool = False) -> Figure:
    """Position weight map of a GSoP position block (GSoP-Net Sec. 3.2) or CBAM, one image.

    Left: the pooled h x w map the block computed (when tapped). Right: the map at the block's
    resolution, resized bilinearly onto the input. One colour scale spans the map's range.
    ``title`` replaces the figure title (default the block and its kind). ``grid_ticks`` numbers
    the pooled map's rows and columns from 0 and labels its axes, for a text that names a cell.
    """
    record = _record(insp, path, image, "tap_pos_weights", "tap_pos_weights_pooled")
    t = record.tensors
    full = t.get("tap_pos_weights", t.get("tap_pos_weights_pooled")).double().squeeze().numpy()
    pooled = t.get("tap_pos_weights_pooled")
    pooled = None if pooled is None else pooled.double().squeeze().numpy()
    lo = min(full.min(), pooled.min()) if pooled is not None else full.min()
    hi = max(full.max(), pooled.max()) if pooled is not None else full.max()
    norm = Normalize(lo, hi if hi > lo else lo + 1e-6)
    fig = _figure(figsize, left=0.02, right=0.92, bottom=0.04, wspace=0.08)
    axes = list(np.atleast_1d(fig.subplots(1, 2 if pooled is not None else 1)))
    if pooled is not None:
        _map_ax(axes[0], pooled, f"pooled weights {pooled.shape[0]}x{pooled.shape[1]}",
                norm=norm)
        if grid_ticks:
            axes[0].set_axis_on()
            axes[0].set_xticks(range(pooled.shape[1]))
            axes[0].set_yticks(range(pooled.shape[0]))
            axes[0].tick_params(labelsize=7, length=2)
            axes[0].set_xlabel("column", fontsize=8)
            axes[0].set_ylabel("row", fontsize=8)
    base = _input_ax(axes[-1], insp.inputs[image],
                     f"weights {full.shape[0]}x{full.shape[1]} on the input")
    axes[-1].imshow(_resize(full, base.shape[:2]), cmap="magma", norm=norm, alpha=0.6,
                    interpolation="bilinear")
    # A colorbar of the opaque colormap: the overlay's alpha would wash it out.
    fig.colorbar(ScalarMappable(norm, "magma"), ax=axes, label="position weight", shrink=0.85,
                 pad=0.02)
    fig.suptitle(title or f"{record.label} ({record.kind})", fontsize=10)
    return fig


def _spectrum(ax, matrices: Sequence[tuple[str, np.ndarray]], rank: int | None = None,
              title: str = "eigenvalue spectrum") -> None:
    for label, m in matrices:
        evals = np.linalg.eigvalsh((m + m.T) / 2)[::-1]
        top = evals[0] if evals[0] > 0 else 1.0
        ax.semilogy(np.arange(1, len(evals) + 1), np.clip(evals / top, 1e-12, None),
                    label=label, lw=1.5)
    ax.xaxis.set_major_locator(MaxNLocator(5, integer=True))
    ax.set_xlabel("index", fontsize=9)
    ax.set_ylabel("eigenvalue / largest", fontsize=9)
    if rank is not None:
        ax.axvline(rank + 0.5, color="0.4", ls="--", lw=1, label=f"rank {rank}: round-off beyond")
    _title(ax, title)
    # Decades only, labelled in plain text: a log axis's minor ticks and its mathtext labels
    # (10^-k, parsed at every draw) cost more to draw than the heatmaps.
    ax.yaxis.set_major_locator(LogLocator(numticks=5))
    ax.yaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"1e{round(np.log10(v))}"))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def _diverging(fig: Figure, ax, m: np.ndarray, title: str, quantile: float | None = None,
               label: str | None = None) -> None:
    top = float(np.abs(m).max())
    lim = (float(np.quantile(np.abs(m), quantile)) if quantile is not None else top) or 1.0
    im = _map_ax(ax, m, title, DIVERGING, TwoSlopeNorm(0.0, -lim, lim))
    # Entries beyond a quantile's limit saturate; the colorbar's pointed ends say so.
    extend = "both" if lim < top else "neither"
    fig.colorbar(im, ax=ax, shrink=0.8, pad=0.03, ticks=MaxNLocator(4, symmetric=True),
                 extend=extend, **({"label": label} if label else {}))


def covariance(
    insp: Inspection,
    path: str,
    image: int = 0,
    *,
    figsize=(12.0, 3.6),
    color_quantile: float | None = None,
    rank: int | None = None,
    title: str | None = None,
    spectrum_title: str = "eigenvalue spectrum",
    axis_labels: tuple[str, str] | None = None,
    colorbar_label: str | None = None,
) -> Figure:
    """Covariance heatmaps of one image (diverging colours centred at 0) and their spectrum.

    gsop_channel: the c x c covariance and its row-BN output (GSoP-Net Sec. 3.1);
    isqrt_cov: the covariance and its Newton-Schulz output (iSQRT-COV); gsop_position: the
    hw x hw position covariance (Sec. 3.2). The spectrum shows eigenvalues over the largest;
    beside a Newton-Schulz output it also draws the exact root of the covariance, whose
    eigenvalues are the square roots of the covariance's: three or five iterations flatten the
    spectrum only partway towards it.

    Options (the defaults draw the figure the explorer shows): ``color_quantile`` in (0, 1]
    sets each (C, C) heatmap's colour limit to that quantile of its |entries| instead of the
    largest, so that a few large entries do not leave the rest white (those beyond saturate);
    ``rank`` draws a dashed line after the first ``rank`` eigenvalues, the covariance's
    numerical rank (round-off to its right); ``title`` replaces the figure title (default the
    block and its kind) and ``spectrum_title`` the spectrum panel's; ``axis_labels`` (x, y),
    e.g. ("channel j", "channel i"), numbers the heatmaps' columns and rows and labels them, and
    ``colorbar_label`` labels their colorbars.
    """
    if color_quantile is not None and not 0 < color_quantile <= 1:
        raise ValueError(f"color_quantile must be in (0, 1], got {color_quantile}")
    record = _record(insp, path, image, "tap_cov", "tap_pos_cov")
    t = record.tensors
    names = [("tap_pos_cov", "position covariance"), ("tap_cov", "covariance (before)"),
             ("tap_cov_bn", "after row-wise BN"), ("tap_cov_sqrt", "Newton-Schulz output")]
    mats = [(label, t[k][0].double().squeeze().numpy()) for k, label in names if k in t]
    fig = _figure(figsize, left=0.04 if axis_labels else 0.01, right=0.98,
                  bottom=0.17 if axis_labels else 0.15, wspace=0.45 if axis_labels else 0.25)
    axes = fig.subplots(1, len(mats) + 1, width_ratios=[1] * len(mats) + [1.1])
    for ax, (label, m) in zip(axes, mats):
        shown = f"{label} {m.shape[0]}x{m.shape[1]}"
        if color_quantile is not None and color_quantile < 1:
            shown += f"\ncolours to its {color_quantile:.0%} quantile of |entry|"
        _diverging(fig, ax, m, shown, color_quantile, colorbar_label)
        if axis_labels:
            ax.set_axis_on()
            ax.xaxis.set_major_locator(MaxNLocator(4, integer=True))
            ax.yaxis.set_major_locator(MaxNLocator(4, integer=True))
            ax.tick_params(labelsize=7, length=2)
            ax.set_xlabel(axis_labels[0], fontsize=8)
            ax.set_ylabel(axis_labels[1], fontsize=8)
    # Row-BN breaks symmetry, so only symmetric matrices enter the spectrum.
    _spectrum(axes[-1], [(lbl, m) for lbl, m in with_exact_root(mats) if "BN" not in lbl],
              rank, spectrum_title)
    fig.suptitle(title or f"{record.label} ({record.kind})", fontsize=10)
    return fig

