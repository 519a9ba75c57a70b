"""Interactive charts of one image and one block: the prediction, covariance matrices with their
linked spectrum, channel weights with a channel selection, feature maps, the same channels over
a batch, and the batch's images x channels heatmap."""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ...probe import Inspection
from .spec import FIT_WIDTH, Chart, field, point_selection, tips, when
from .tables import (
    MATRIX_SIDE,
    batch_table,
    batch_weights,
    channel_weights_table,
    covariance_matrices,
    distance_from_exact_root,
    feature_maps_table,
    matrix_table,
    spectrum_table,
    with_exact_root,
)

#: What a covariance panel's matrix is the covariance of, by the kind of part.
COVARIANCE_OF = {
    "gsop_channel": ["covariance of the block's reduced channels c",
                     "(the output of its 1x1 conv)"],
    "isqrt_cov": ["covariance of the channels the head reads", "(after its 1x1 reduction, if any)"],
    "gsop_position": ["covariance of the positions", "of the block's pooled map"],
}

CHANNELS = "channels"
"""The channel weights chart's selection: click a bar (shift-click for more)."""
MATRIX = "matrix"
"""The covariance chart's selection: click a matrix or its spectrum's legend entry."""
IMAGE_ROW = "image_row"
"""The batch heatmap's selection: click a row (an image)."""
CHOSEN, OTHER, BOOSTED, SUPPRESSED = "#ff7f0e", "#9e9e9e", "#2ca02c", "#d62728"
BARE = {"labels": False, "ticks": False, "title": None}
"""An axis with nothing on it (heatmaps: the tooltip names the cell)."""


def prediction_chart(insp: Inspection, image: int = 0, name: str | None = None) -> Chart:
    """Top-k class probabilities of one image, best at the top; hover for the value. ``name``:
    the image's name in the title (default "image <index>")."""
    top = insp.top[image]
    data = pd.DataFrame({"rank": range(1, len(top) + 1), "class": [p.name for p in top],
                         "index": [p.index for p in top],
                         "probability": [p.probability for p in top]})
    x = field("probability:Q", scale={"domain": [0, 1]})
    y = field("class:N", sort={"field": "rank"}, title=None)
    tooltip = tips("rank:O", "class:N", "index:O", field("probability:Q", format=".4f"))
    return Chart({
        "data": {"name": "top"}, "width": 360, "height": 24 * len(top),
        "title": f"{name or f'image {image % insp.batch_size}'}: top-{len(top)} classes",
        "layer": [
            {"mark": {"type": "bar"}, "encoding": {
                "x": x, "y": y, "color": when("datum.rank == 1", CHOSEN, OTHER),
                "tooltip": tooltip}},
            {"mark": {"type": "text", "align": "left", "dx": 3}, "encoding": {
                "x": x, "y": y, "text": field("probability:Q", format=".1%"),
                "color": {"value": "black"}, "tooltip": tooltip}},
        ]}, {"top": data})


def covariance_chart(insp: Inspection, path: str, image: int = 0, *, side: int = 260,
                     max_side: int = MATRIX_SIDE, max_width: int = FIT_WIDTH) -> Chart:
    """Every covariance of one image's part at ``path`` as a heatmap (diverging colours centred
    at 0) and the eigenvalue spectrum of the symmetric ones (eigenvalue / largest, log scale).

    Hover a cell for its two channel (or position) indices and value; matrices wider than
    ``max_side`` (default :data:`~gsoplib.viz.charts.tables.MATRIX_SIDE`) show block means and
    the index ranges. The
    :data:`MATRIX` selection links the panels: clicking a spectrum's line or legend entry dims
    the other matrices and spectra. Datasets: one per matrix, named as its panel ("covariance
    (before)", "Newton-Schulz output", ...: row, col, value[, rows, cols]), and ``spectrum``
    (matrix, index, eigenvalue, ratio). Beside a Newton-Schulz output the spectrum also draws the
    exact root of the covariance (:data:`~gsoplib.viz.charts.tables.EXACT_ROOT`, no panel), and
    that panel's title gives the scale-free distance between the two. Panels narrow from
    ``side`` so that the chart fits ``max_width`` pixels. GSoP-Net Sec. 3.1-3.2, iSQRT-COV.
    """
    mats = covariance_matrices(insp, path, image)
    # every panel and the spectrum within max_width: about 170 px go to the spacing, the
    # spectrum's axis and the padding (measured in Chromium)
    side = max(80, min(side, (max_width - 170) // (len(mats) + 1)))
    what = "position" if insp[path].kind == "gsop_position" else "channel"
    cells = {name: matrix_table(m, max_side) for name, m in mats}
    pooled = any("rows" in c for c in cells.values())
    # Block means name the index ranges they cover; single entries their two indices.
    row_field, col_field = ("rows:N", "cols:N") if pooled else ("row:O", "col:O")
    tooltip = tips("matrix:N", field(row_field, title=f"row {what}"),
                   field(col_field, title=f"column {what}"),
                   field("value:Q", format=".4g", title="mean entry" if pooled else "entry"))
    panels = []
    off = distance_from_exact_root(mats)
    for name, m in mats:
        lim = float(np.abs(m).max()) or 1.0
        # short lines: a title wider than its panel would widen the chart
        title = [name, f"{m.shape[0]}x{m.shape[1]}" + (", block means" if pooled else "")]
        if name == "Newton-Schulz output" and off is not None:
            title += [f"{100 * off:.0f}% from the exact root", "(unit-norm Frobenius)"]
        panels.append({
            "data": {"name": name}, "width": side, "height": side, "title": title,
            # Each matrix its own dataset of (row, col, value): the name is added in the
            # browser, for the tooltip and the MATRIX selection, instead of sent per cell.
            "transform": [{"calculate": json.dumps(name), "as": "matrix"}],
            "mark": {"type": "rect"},
            "encoding": {
                "x": field("col:O", axis=BARE), "y": field("row:O", axis=BARE),
                "color": field("value:Q", scale={"scheme": "redblue", "reverse": True,
                                                 "domain": [-lim, lim]},
                               legend={"title": None, "orient": "bottom",
                                       "gradientLength": side}),
                "opacity": when({"param": MATRIX}, 1.0, 0.3),
                "tooltip": tooltip,
            }})
    spectrum = {
        "data": {"name": "spectrum"}, "width": side, "height": side,
        "title": ["eigenvalue / largest,", "a line per matrix",
                  *(["(row-wise BN's output is not", "symmetric: no line)"]
                    if any(name == "after row-wise BN" for name, _ in mats) else [])],
        "name": "spectrum",
        "params": [point_selection(MATRIX, ["matrix"], bind="legend")],
        "mark": {"type": "line", "point": {"size": 12}},
        "encoding": {
            "x": field("index:Q", title="index"),
            "y": field("ratio:Q", scale={"type": "log"}, title="eigenvalue / largest"),
            "color": field("matrix:N", legend={"orient": "bottom", "title": None,
                                               "direction": "vertical"}),
            "opacity": when({"param": MATRIX}, 1.0, 0.2),
            "tooltip": tips("matrix:N", "index:Q", field("eigenvalue:Q", format=".4g"),
                            field("ratio:Q", format=".3g")),
        }}
    record = insp[path]
    of = COVARIANCE_OF.get(record.kind, ["covariance of the part's input"])
    return Chart({"title": {"text": f"{record.label} ({record.kind})",
                            "subtitle": of},
                  "hconcat": [*panels, spectrum],
                  "resolve": {"scale": {"color": "independent"}}},
                 {**cells, "spectrum": spectrum_table(with_exact_root(mats))})


def channel_weights_chart(insp: Inspection, path: str, image: int = 0, *,
                          selected: Sequence[int] = (), width: int = 620,
                          max_width: int = FIT_WIDTH) -> Chart:
    """All C channel weights of one image sorted from most boosted to most suppressed (sigmoid
    outputs in (0, 1); the block returns x * w; GSoP-Net Sec. 3.1, SE, CBAM).

    Hover a bar for its channel, weight and rank; click one (shift-click for more) to select
    channels: the :data:`CHANNELS` selection, initially ``selected``. Dataset ``weights``
    (channel, weight, rank).
    """
    data = channel_weights_table(insp, path, image)
    width = min(width, max_width - 60)
    record = insp[path]
    w = data["weight"]
    title = (f"{record.label} ({record.kind}): {len(data)} channel weights, min {w.min():.3f} "
             f"/ median {w.median():.3f} / max {w.max():.3f}")
    pick = point_selection(CHANNELS, ["channel"], toggle="event.shiftKey",
                           value=[{"channel": int(c)} for c in selected])
    return Chart({
        "data": {"name": "weights"}, "width": width, "height": 180, "title": title,
        "params": [pick], "transform": [{"calculate": "datum.rank + 0.9", "as": "rank_end"}],
        "mark": {"type": "bar"},
        "encoding": {
            "x": field("rank:Q", title="rank of the weight (0: the largest); hover a bar for "
                                       "its channel",
                       scale={"domain": [-0.5, len(data) - 0.5], "nice": False}),
            "x2": {"field": "rank_end"},
            "y": field("weight:Q", scale={"domain": [0, 1]}), "y2": {"datum": 0},
            "color": when({"param": CHANNELS}, CHOSEN, OTHER),
            "tooltip": tips("channel:O", field("weight:Q", format=".4f"), "rank:O"),
        }}, {"weights": data})


def feature_maps_chart(insp: Inspection, path: str, channels: Sequence[int], image: int = 0,
                       *, cell: int = 6, max_width: int = FIT_WIDTH) -> Chart:
    """The block input's feature maps of ``channels`` for one image, one shared colour scale,
    titled with each channel; hover a cell for its value and the channel's weight. As many maps
    a row as fit ``max_width`` pixels. Dataset ``maps`` (channel, weight, row, col, value)."""
    data = feature_maps_table(insp, path, channels, image)
    side = int(data["row"].max()) + 1 if len(data) else 1
    # maps at most 140 px a side, as many a row (up to 6) as fit beside the legend (~90 px)
    cell = max(1, min(cell, 140 // side))
    columns = max(1, min(6, (max_width - 90) // (side * cell + 25)))
    return Chart({
        "data": {"name": "maps"}, "columns": columns,
        "facet": field("channel:O", title="feature maps (block input) of channels",
                       sort=[int(c) for c in channels]),
        "spec": {
            "width": side * cell, "height": side * cell, "mark": {"type": "rect"},
            "encoding": {
                "x": field("col:O", axis=BARE), "y": field("row:O", axis=BARE),
                "color": field("value:Q", scale={"scheme": "viridis"},
                               legend={"title": "block input"}),
                "tooltip": tips("channel:O", field("weight:Q", format=".4f"), "row:O",
                                "col:O", field("value:Q", format=".4g", title="activation")),
            }}}, {"maps": data})


def channel_batch_chart(insp: Inspection, path: str, channels: Sequence[int],
                        names: Sequence[str] | None = None) -> Chart:
    """The weights of ``channels`` for every image of the batch (one line per channel).
    Dataset ``batch`` (image, name, channel, weight)."""
    w = batch_weights(insp, path)
    names = [f"image {i}" for i in range(len(w))] if names is None else list(names)
    rows = [(i, names[i], int(c), float(w[i, c])) for c in channels for i in range(len(w))]
    data = pd.DataFrame(rows, columns=["image", "name", "channel", "weight"])
    return Chart({
        "data": {"name": "batch"}, "width": max(200, 30 * len(w)), "height": 180,
        "title": f"the selected channels' weights over the {len(w)} images",
        "mark": {"type": "line", "point": True},
        "encoding": {
            "x": field("name:N", title="image", sort={"field": "image"},
                       axis={"labelAngle": -30, "labelLimit": 140}),
            "y": field("weight:Q", scale={"domain": [0, 1]}),
            "color": field("channel:N"),
            "tooltip": tips("image:O", "name:N", "channel:O", field("weight:Q", format=".4f")),
        }}, {"batch": data})


def batch_heatmap_chart(insp: Inspection, path: str, names: Sequence[str] | None = None, *,
                        selected: int | None = None, max_channels: int = 128) -> Chart:
    """Channel weights of every image (rows) and channel (columns) at ``path``, both ordered
    by similarity (:func:`~gsoplib.viz.charts.tables.similarity_order`); only the
    ``max_channels`` channels that vary most across the images when there are more. Click a
    row to select that image: the :data:`IMAGE_ROW` selection (field ``image``). Dataset
    ``grid`` (image, name, channel, weight, row, column)."""
    data = batch_table(insp, path, names, max_channels)
    b = int(data["image"].max()) + 1
    c = data["channel"].nunique()
    pick = point_selection(IMAGE_ROW, ["image"],
                           value=None if selected is None else [{"image": int(selected)}])
    record = insp[path]
    total = batch_weights(insp, path).shape[1]
    which = f"the {c} of {total} channels that vary most" if c < total else f"{c} channels"
    return Chart({
        # the row labels (image names) and the legend beside it
        "data": {"name": "grid"}, "width": min(560, max(240, 5 * c)),
        "height": min(480, max(120, 14 * b)),
        "title": f"{record.label}: channel weights of {b} images",
        "params": [pick, {"name": "rowNames", "value": [
            str(n) for n in data.drop_duplicates("image").sort_values("row")["name"]]}],
        "mark": {"type": "rect"},
        "encoding": {
            "x": field("column:O", axis={"labels": False, "ticks": False},
                       title=f"{which}, ordered by similarity"),
            # rows named by their image (up to 40 of them; hover for any)
            "y": field("row:O", axis={"labels": b <= 40, "ticks": False,
                                      "labelExpr": "rowNames[datum.value]"},
                       title="images, ordered by similarity"),
            "color": field("weight:Q", scale={"scheme": "viridis", "domain": [0, 1]}),
            "opacity": when({"param": IMAGE_ROW}, 1.0, 0.45),
            "tooltip": tips("name:N", "image:O", "channel:O", field("weight:Q", format=".4f")),
        }}, {"grid": data})
