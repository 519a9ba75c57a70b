"""Shared pieces of the figures: a Figure with fixed margins (no pyplot), titles, maps and
tick helpers, and the check that an Inspection holds what a figure needs."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..probe import BlockRecord, Inspection
from .images import display_image


def _figure(figsize: tuple[float, float], **margins: float) -> Figure:
    # Fixed margins rather than a constrained layout: these figures have known contents, and
    # the layout solver would double their drawing time (the explorer draws a dozen per image).
    fig = Figure(figsize=figsize)
    fig.subplots_adjust(**{"left": 0.07, "right": 0.97, "bottom": 0.14, "top": 0.84, **margins})
    return fig


def _record(insp: Inspection, path: str, image: int, *taps: str) -> BlockRecord:
    """The record at ``path`` for image ``image``, which must hold one of ``taps`` (if any)."""
    if not -insp.batch_size <= image < insp.batch_size:
        raise IndexError(f"image {image} is out of range for a batch of {insp.batch_size}")
    record = insp[path]
    if taps and not any(t in record for t in taps):
        raise ValueError(
            f"{record.label} ({record.kind}) has none of the taps {', '.join(taps)}; "
            f"it has {', '.join(record.tensors) or 'none'}"
        )
    one = record.select(image % insp.batch_size)
    if one is None:
        raise ValueError(f"{record.label} did not see image {image} (the gate did not choose it)")
    return one


def _title(ax, text: str, fontsize: int = 9) -> None:
    # y=1.0 pins the title just above its axes. Left to matplotlib, every title's height is
    # re-derived at each draw from the bounding boxes of all tick labels, a third of the drawing
    # time of these figures, and none of them has tick labels above an axes.
    ax.set_title(text, fontsize=fontsize, y=1.0)


def _map_ax(ax, values: np.ndarray, title: str, cmap: str = "magma", norm=None, alpha=None):
    im = ax.imshow(values, cmap=cmap, norm=norm, alpha=alpha, interpolation="nearest")
    _title(ax, title)
    ax.set_axis_off()
    return im


def _input_ax(ax, image, title: str = "input") -> np.ndarray:
    shown = display_image(image)
    ax.imshow(shown, cmap="gray" if shown.ndim == 2 else None, interpolation="nearest")
    _title(ax, title)
    ax.set_axis_off()
    return shown


def _integer_ticks(ax, n: int, start: int = 0) -> None:
    """Every integer x tick when there are at most 16, else about 8 of them."""
    if n <= 16:
        ax.set_xticks(np.arange(start, start + n))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(8, integer=True))


def _mosaic(maps: Sequence[Sequence[np.ndarray]], gap: int, row_gap: int) -> np.ndarray:
    """Rows of equally shaped (h, w) maps as one array with NaN gaps (drawn blank); a row
    starts every h + row_gap pixels, a column every w + gap."""
    h, w = maps[0][0].shape
    cols = max(len(r) for r in maps)
    out = np.full((len(maps) * (h + row_gap) - row_gap, cols * (w + gap) - gap), np.nan)
    for i, row in enumerate(maps):
        for j, m in enumerate(row):
            out[i * (h + row_gap) : i * (h + row_gap) + h, j * (w + gap) : j * (w + gap) + w] = m
    return out

