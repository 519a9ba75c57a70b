"""Interactive charts of a GM-SOP head: one image's N gate logits and weights with the K chosen
(GM-SOP Eq. 2-3), the batch's weights image by image, and the mean weight per class."""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import pandas as pd

from ...class_usage import class_component_usage
from ...probe import Inspection
from .blocks import CHOSEN, OTHER
from .tables import finished, gate_table, gate_weights_table, tips, when


def gate_chart(insp: Inspection, path: str, image: int = 0) -> alt.HConcatChart:
    """All N gate logits and weights omega of one image, the K chosen highlighted; hover a bar
    for its component, logit, weight and whether it was chosen."""
    data = gate_table(insp, path, image)
    k, n = int(data["chosen"].sum()), len(data)
    chosen = ", ".join(str(c) for c in data.loc[data.chosen, "component"])
    base = alt.Chart(data).encode(
        x=alt.X("component:O"),
        color=when("datum.chosen", CHOSEN, OTHER, alt.ColorValue),
        tooltip=tips("component:O", alt.Tooltip("logit:Q", format=".4g"),
                 alt.Tooltip("weight:Q", format=".4f"), "chosen:N"),
    )
    panels = []
    if data["logit"].notna().any():
        panels.append(base.mark_bar().encode(y=alt.Y("logit:Q")).properties(
            width=max(200, 22 * n), height=160, title=f"gate logits: the top {k} of {n} chosen"))
    if data["weight"].notna().any():
        panels.append(base.mark_bar().encode(y=alt.Y("weight:Q")).properties(
            width=max(200, 22 * n), height=160, title=f"weights omega (K = {k}, sum 1)"))
    record = insp[path]
    return finished(alt.hconcat(*panels).properties(
        title=f"{record.label} ({record.kind}), image {image % insp.batch_size}: chose {chosen}"))


def gate_usage_chart(insp: Inspection, path: str, names: Sequence[str] | None = None
                     ) -> alt.HConcatChart:
    """The gate over the batch: an images x components grid of omega, and how many images
    chose each component against even use B K / N (what GM-SOP's balance loss, Eq. 4,
    pushes towards)."""
    data = gate_weights_table(insp, path, names)
    b = int(data["image"].max()) + 1
    n = int(data["component"].max()) + 1
    k = int((data[data.image == 0]["weight"] > 0).sum())
    grid = alt.Chart(data).mark_rect().encode(
        x=alt.X("component:O"), y=alt.Y("image:O", axis=alt.Axis(labels=b <= 40)),
        color=alt.Color("weight:Q", scale=alt.Scale(scheme="blues"), title="omega"),
        tooltip=tips("image:O", "name:N", "component:O", alt.Tooltip("weight:Q", format=".4f")),
    ).properties(width=max(160, 20 * n), height=min(400, max(120, 10 * b)),
                 title=f"gate weights, {b} images x {n} components")
    counts = data.assign(chose=data["weight"] > 0).groupby("component", as_index=False)[
        "chose"].sum()
    bars = alt.Chart(counts).mark_bar(color=CHOSEN).encode(
        x=alt.X("component:O"), y=alt.Y("chose:Q", title="images choosing it"),
        tooltip=tips("component:O", alt.Tooltip("chose:Q", title="images")))
    even = alt.Chart(pd.DataFrame({"even": [b * k / n]})).mark_rule(strokeDash=[4, 3]).encode(
        y=alt.Y("even:Q"), tooltip=tips(alt.Tooltip("even:Q", title=f"even use {b}*{k}/{n}")))
    return finished(alt.hconcat(grid, (bars + even).properties(
        width=max(160, 20 * n), height=200, title="usage (dashed: even use)")))


def class_usage_chart(insp: Inspection, path: str, labels: Sequence[str] | None = None
                      ) -> alt.Chart:
    """A classes x components grid of the mean gate weight omega
    (:func:`gsoplib.class_usage.class_component_usage`), hover for the class's image count."""
    names, usage, counts = class_component_usage(insp, path, labels)
    rows = [(name, int(c), j, float(usage[i, j])) for i, (name, c) in
            enumerate(zip(names, counts)) for j in range(usage.shape[1])]
    data = pd.DataFrame(rows, columns=["class", "images", "component", "mean_weight"])
    return finished(alt.Chart(data).mark_rect().encode(
        x=alt.X("component:O"), y=alt.Y("class:N", sort=list(names)),
        color=alt.Color("mean_weight:Q", scale=alt.Scale(scheme="blues"), title="mean omega"),
        tooltip=tips("class:N", "images:Q", "component:O",
                 alt.Tooltip("mean_weight:Q", format=".4f", title="mean omega")),
    ).properties(width=max(160, 20 * usage.shape[1]), height=18 * len(names),
                 title=f"{insp[path].label}: mean gate weight per class "
                       f"({int(counts.sum())} images)"))
