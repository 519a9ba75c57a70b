"""Interactive charts of one image and one block: the prediction, covariance matrices with their
linked spectrum, channel weights with a channel selection, feature maps, the same channels over
a batch, and the batch's images x channels heatmap."""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import numpy as np
import pandas as pd

from ...probe import Inspection
from .tables import (
    batch_table,
    batch_weights,
    channel_weights_table,
    covariance_matrices,
    feature_maps_table,
    finished,
    matrix_table,
    spectrum_table,
    tips,
    when,
)

CHANNELS = "channels"
"""The channel weights chart's selection: click a bar (shift-click for more)."""
MATRIX = "matrix"
"""The covariance chart's selection: click a matrix or its spectrum's legend entry."""
IMAGE_ROW = "image_row"
"""The batch heatmap's selection: click a row (an image)."""
CHOSEN, OTHER, BOOSTED, SUPPRESSED = "#ff7f0e", "#9e9e9e", "#2ca02c", "#d62728"


def prediction_chart(insp: Inspection, image: int = 0) -> alt.Chart:
    """Top-k class probabilities of one image, best at the top; hover for the value."""
    top = insp.top[image]
    data = pd.DataFrame({"rank": range(1, len(top) + 1), "class": [p.name for p in top],
                         "index": [p.index for p in top],
                         "probability": [p.probability for p in top]})
    bars = alt.Chart(data).mark_bar().encode(
        x=alt.X("probability:Q", scale=alt.Scale(domain=[0, 1])),
        y=alt.Y("class:N", sort=alt.EncodingSortField("rank"), title=None),
        color=when("datum.rank == 1", CHOSEN, OTHER, alt.ColorValue),
        tooltip=tips("rank:O", "class:N", "index:O", alt.Tooltip("probability:Q", format=".4f")),
    )
    text = bars.mark_text(align="left", dx=3).encode(
        text=alt.Text("probability:Q", format=".1%"), color=alt.ColorValue("black"))
    return finished((bars + text).properties(
        width=360, height=24 * len(top),
        title=f"image {image % insp.batch_size}: top-{len(top)} classes"))


def covariance_chart(insp: Inspection, path: str, image: int = 0, *, side: int = 260
                     ) -> alt.HConcatChart:
    """Every covariance of one image's part at ``path`` as a heatmap (diverging colours centred
    at 0) and the eigenvalue spectrum of the symmetric ones (eigenvalue / largest, log scale).

    Hover a cell for its two channel (or position) indices and value; matrices wider than
    :data:`~gsoplib.viz.charts.tables.MATRIX_SIDE` show block means and the index ranges. The
    :data:`MATRIX` selection links the panels: clicking a spectrum's line or legend entry dims
    the other matrices and spectra. GSoP-Net Sec. 3.1-3.2, iSQRT-COV.
    """
    mats = covariance_matrices(insp, path, image)
    what = "position" if insp[path].kind == "gsop_position" else "channel"
    data = pd.concat([matrix_table(m, name) for name, m in mats], ignore_index=True)
    # concat of two categoricals with other categories gives strings: 20 bytes a cell to send
    data["matrix"] = pd.Categorical(data["matrix"])
    pooled = "rows" in data
    # Block means name the index ranges they cover; single entries their two indices.
    row_field, col_field = ("rows:N", "cols:N") if pooled else ("row:O", "col:O")
    pick = alt.selection_point(name=MATRIX, fields=["matrix"], bind="legend")
    panels = []
    for name, m in mats:
        lim = float(np.abs(m).max()) or 1.0
        axis = alt.Axis(labels=False, ticks=False, title=None)
        title = f"{name} {m.shape[0]}x{m.shape[1]}" + (" (block means)" if pooled else "")
        # Sizes and titles given to the constructor: .properties() validates each against the
        # schema and copies the chart, the larger part of building it.
        panels.append(alt.Chart(data, width=side, height=side, title=title)
                      .transform_filter(alt.datum.matrix == name).mark_rect().encode(
            x=alt.X("col:O", axis=axis), y=alt.Y("row:O", axis=axis),
            color=alt.Color("value:Q", scale=alt.Scale(scheme="redblue", reverse=True,
                                                       domain=[-lim, lim]),
                            legend=alt.Legend(title=None, orient="bottom", gradientLength=side)),
            opacity=when(pick, 1.0, 0.3, alt.OpacityValue),
            tooltip=tips(alt.Tooltip("matrix:N"), alt.Tooltip(row_field, title=f"row {what}"),
                     alt.Tooltip(col_field, title=f"column {what}"),
                     alt.Tooltip("value:Q", format=".4g",
                                 title="mean value" if pooled else "value")),
        ))
    spectrum = spectrum_table(mats)
    # Named: a selection's view unnamed is named by hashing the whole chart's spec.
    line = alt.Chart(spectrum, width=side, height=side, title="eigenvalue spectrum",
                     name="spectrum").mark_line(
        point=alt.OverlayMarkDef(size=12)).encode(
        x=alt.X("index:Q", title="index"),
        y=alt.Y("ratio:Q", scale=alt.Scale(type="log"), title="eigenvalue / largest"),
        color=alt.Color("matrix:N", legend=alt.Legend(orient="bottom", title=None)),
        opacity=when(pick, 1.0, 0.2, alt.OpacityValue),
        tooltip=tips("matrix:N", "index:Q", alt.Tooltip("eigenvalue:Q", format=".4g"),
                 alt.Tooltip("ratio:Q", format=".3g")),
    ).add_params(pick)
    record = insp[path]
    return finished(alt.hconcat(
        *panels, line, title=f"{record.label} ({record.kind})",
        resolve=alt.Resolve(scale=alt.ScaleResolveMap(color="independent"))))


def channel_weights_chart(insp: Inspection, path: str, image: int = 0, *,
                          selected: Sequence[int] = (), width: int = 620) -> alt.Chart:
    """All C channel weights of one image sorted from most boosted to most suppressed (sigmoid
    outputs in (0, 1); the block returns x * w; GSoP-Net Sec. 3.1, SE, CBAM).

    Hover a bar for its channel, weight and rank; click one (shift-click for more) to select
    channels: the :data:`CHANNELS` selection, initially ``selected``.
    """
    data = channel_weights_table(insp, path, image)
    pick = alt.selection_point(name=CHANNELS, fields=["channel"], toggle="event.shiftKey",
                               value=[{"channel": int(c)} for c in selected] or alt.Undefined)
    record = insp[path]
    w = data["weight"]
    title = (f"{record.label} ({record.kind}): {len(data)} channel weights, min {w.min():.2f} "
             f"/ median {w.median():.2f} / max {w.max():.2f}")
    return finished(alt.Chart(data, width=width, height=180, title=title).mark_bar().encode(
        x=alt.X("rank:Q", title="channels, sorted by weight",
                scale=alt.Scale(domain=[-0.5, len(data) - 0.5], nice=False)),
        x2=alt.X2("rank_end:Q"),
        y=alt.Y("weight:Q", scale=alt.Scale(domain=[0, 1])), y2=alt.Y2Datum(0),
        color=when(pick, CHOSEN, OTHER, alt.ColorValue),
        tooltip=tips("channel:O", alt.Tooltip("weight:Q", format=".4f"), "rank:O"),
    ).transform_calculate(rank_end="datum.rank + 0.9").add_params(pick))


def feature_maps_chart(insp: Inspection, path: str, channels: Sequence[int], image: int = 0,
                       *, cell: int = 6) -> alt.FacetChart:
    """The block input's feature maps of ``channels`` for one image, one shared colour scale,
    titled with each channel's weight; hover a cell for its value."""
    data = feature_maps_table(insp, path, channels, image)
    side = int(data["row"].max()) + 1 if len(data) else 1
    axis = alt.Axis(labels=False, ticks=False, title=None)
    return finished(alt.Chart(data).mark_rect().encode(
        x=alt.X("col:O", axis=axis), y=alt.Y("row:O", axis=axis),
        color=alt.Color("value:Q", scale=alt.Scale(scheme="viridis"),
                        legend=alt.Legend(title="block input")),
        tooltip=tips("channel:O", alt.Tooltip("weight:Q", format=".4f"), "row:O", "col:O",
                 alt.Tooltip("value:Q", format=".4g")),
    ).properties(width=side * cell, height=side * cell).facet(
        facet=alt.Facet("channel:O", title="feature maps (block input) of channels"),
        columns=6))


def channel_batch_chart(insp: Inspection, path: str, channels: Sequence[int],
                        names: Sequence[str] | None = None) -> alt.Chart:
    """The weights of ``channels`` for every image of the batch (one line per channel)."""
    w = batch_weights(insp, path)
    names = [f"image {i}" for i in range(len(w))] if names is None else list(names)
    rows = [(i, names[i], int(c), float(w[i, c])) for c in channels for i in range(len(w))]
    data = pd.DataFrame(rows, columns=["image", "name", "channel", "weight"])
    return finished(alt.Chart(data).mark_line(point=True).encode(
        x=alt.X("image:O", title="image"), y=alt.Y("weight:Q", scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("channel:N"),
        tooltip=tips("image:O", "name:N", "channel:O", alt.Tooltip("weight:Q", format=".4f")),
    ).properties(width=max(200, 30 * len(w)), height=180,
                 title=f"the selected channels' weights over the {len(w)} images"))


def batch_heatmap_chart(insp: Inspection, path: str, names: Sequence[str] | None = None, *,
                        selected: int | None = None, max_channels: int = 128) -> alt.Chart:
    """Channel weights of every image (rows) and channel (columns) at ``path``, both ordered
    by similarity (:func:`~gsoplib.viz.charts.tables.similarity_order`); only the
    ``max_channels`` channels that vary most across the images when there are more. Click a
    row to select that image: the :data:`IMAGE_ROW` selection (field ``image``)."""
    data = batch_table(insp, path, names, max_channels)
    b = int(data["image"].max()) + 1
    c = data["channel"].nunique()
    pick = alt.selection_point(name=IMAGE_ROW, fields=["image"],
                               value=alt.Undefined if selected is None
                               else [{"image": int(selected)}])
    record = insp[path]
    total = batch_weights(insp, path).shape[1]
    which = f"the {c} of {total} channels that vary most" if c < total else f"{c} channels"
    return finished(alt.Chart(data).mark_rect().encode(
        x=alt.X("column:O", axis=alt.Axis(labels=False, ticks=False),
                title=f"{which}, ordered by similarity"),
        y=alt.Y("row:O", axis=alt.Axis(labels=False, ticks=False),
                title="images, ordered by similarity"),
        color=alt.Color("weight:Q", scale=alt.Scale(scheme="viridis", domain=[0, 1])),
        opacity=when(pick, 1.0, 0.45, alt.OpacityValue),
        tooltip=tips("name:N", "image:O", "channel:O", alt.Tooltip("weight:Q", format=".4f")),
    ).add_params(pick).properties(
        width=min(720, max(240, 5 * c)), height=min(480, max(120, 14 * b)),
        title=f"{record.label}: channel weights of {b} images"))
