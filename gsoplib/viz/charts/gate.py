"""Interactive charts of a GM-SOP head: one image's N gate logits and weights with the K chosen
(GM-SOP Eq. 2-3), the batch's weights image by image, and the mean weight per class."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ...class_usage import class_component_usage
from ...probe import Inspection
from .blocks import CHOSEN, OTHER
from .spec import FIT_WIDTH, Chart, field, tips, when
from .tables import gate_table, gate_weights_table


def gate_chart(insp: Inspection, path: str, image: int = 0, name: str | None = None) -> Chart:
    """All N gate logits and weights omega of one image, the K chosen highlighted; hover a bar
    for its component, logit, weight and whether it was chosen. A chosen component's weight is
    also marked by a point and its value, so a weight near zero (a gate that put everything on
    one of its K) is seen as chosen, not missing. ``name``: the image's name in the title
    (default "image <index>"). Dataset ``gate`` (component, logit, weight, chosen)."""
    data = gate_table(insp, path, image)
    k, n = int(data["chosen"].sum()), len(data)
    chosen = ", ".join(str(c) for c in data.loc[data.chosen, "component"])
    encoding = {
        "x": field("component:O"), "color": when("datum.chosen", CHOSEN, OTHER),
        "tooltip": tips("component:O", field("logit:Q", format=".4g"),
                        field("weight:Q", format=".4f"), "chosen:N"),
    }
    width = max(200, 22 * n)
    panels = []
    if data["logit"].notna().any():
        panels.append({"data": {"name": "gate"}, "width": width, "height": 160,
                       "title": f"gate logits: the top {k} of {n} chosen", "mark": {"type": "bar"},
                       "encoding": {**encoding, "y": field("logit:Q")}})
    if data["weight"].notna().any():
        kept = {"data": {"name": "gate"}, "transform": [{"filter": "datum.chosen"}]}
        panels.append({
            "width": width, "height": 160, "title": f"weights omega of the {k} chosen (sum 1)",
            "layer": [
                {"data": {"name": "gate"}, "mark": {"type": "bar"},
                 "encoding": {**encoding, "y": field("weight:Q", scale={"domain": [0, 1]})}},
                {**kept, "mark": {"type": "point", "filled": True, "color": CHOSEN, "size": 40},
                 "encoding": {"x": field("component:O"), "y": field("weight:Q"),
                              "tooltip": encoding["tooltip"]}},
                {**kept, "mark": {"type": "text", "dy": -10, "fontSize": 10},
                 "encoding": {"x": field("component:O"), "y": field("weight:Q"),
                              "text": field("weight:Q", format=".2f")}},
            ]})
    record = insp[path]
    return Chart({"hconcat": panels,
                  "title": f"{record.label} ({record.kind}), "
                           f"{name or f'image {image % insp.batch_size}'}: chose {chosen}"},
                 {"gate": data})


def gate_usage_chart(insp: Inspection, path: str, names: Sequence[str] | None = None, *,
                     max_width: int = FIT_WIDTH) -> Chart:
    """The gate over the batch: an images x components grid of omega; how many images chose
    each component against even use B K / N; and each component's importance, the sum of its
    weights over the images (GM-SOP Eq. 4's I_n), against even B / N. A component chosen often
    but given little weight shows in the second and not in the third. Datasets ``weights``
    (image, name, component, weight), ``usage`` (component, chose, importance) and ``even``
    (chose, importance). The panels narrow so that the chart fits ``max_width`` pixels."""
    data = gate_weights_table(insp, path, names)
    b = int(data["image"].max()) + 1
    n = int(data["component"].max()) + 1
    k = int((data[data.image == 0]["weight"] > 0).sum())
    # three panels, the grid's axis and legend (about 230 px) within max_width
    width = max(100, min(max(160, 20 * n), (max_width - 230) // 3))
    grid = {
        "data": {"name": "weights"}, "width": width, "height": min(400, max(120, 10 * b)),
        "title": ["gate weights omega", f"{b} images x {n} components"], "mark": {"type": "rect"},
        "encoding": {
            "x": field("component:O"), "y": field("image:O", axis={"labels": b <= 40}),
            "color": field("weight:Q", scale={"scheme": "blues"}, title="omega"),
            "tooltip": tips("image:O", "name:N", "component:O",
                            field("weight:Q", format=".4f")),
        }}
    usage = (data.assign(chose=data["weight"] > 0, importance=data["weight"])
             .groupby("component", as_index=False)[["chose", "importance"]].sum())

    def counted(column: str, title: str, even: str) -> dict:
        return {
            "width": width, "height": 200, "title": [title, "(dashed: even use)"],
            "layer": [
                {"data": {"name": "usage"}, "mark": {"type": "bar", "color": CHOSEN},
                 "encoding": {"x": field("component:O"), "y": field(f"{column}:Q", title=title),
                              "tooltip": tips("component:O",
                                              field(f"{column}:Q", title=title, format=".4g"))}},
                {"data": {"name": "even"}, "mark": {"type": "rule", "strokeDash": [4, 3]},
                 "encoding": {"y": field(f"{column}:Q"),
                              "tooltip": tips(field(f"{column}:Q", title=even, format=".4g"))}},
            ]}

    return Chart({"hconcat": [
        grid,
        counted("chose", "images choosing it", f"even use {b}*{k}/{n}"),
        counted("importance", "sum of its weights", f"even importance {b}/{n}"),
    ]}, {"weights": data, "usage": usage,
         "even": pd.DataFrame({"chose": [b * k / n], "importance": [b / n]})})


def class_usage_chart(insp: Inspection, path: str, labels: Sequence[str] | None = None
                      ) -> Chart:
    """A classes x components grid of the mean gate weight omega
    (:func:`gsoplib.class_usage.class_component_usage`), hover for the class's image count.
    Dataset ``classes`` (class, images, component, mean_weight)."""
    names, usage, counts = class_component_usage(insp, path, labels)
    rows = [(name, int(c), j, float(usage[i, j])) for i, (name, c) in
            enumerate(zip(names, counts)) for j in range(usage.shape[1])]
    data = pd.DataFrame(rows, columns=["class", "images", "component", "mean_weight"])
    return Chart({
        "data": {"name": "classes"}, "width": max(160, 20 * usage.shape[1]),
        "height": 20 * len(names),
        "title": f"{insp[path].label}: mean gate weight per class ({int(counts.sum())} images)",
        "mark": {"type": "rect"},
        "encoding": {
            "x": field("component:O"),
            # every class named, however long its name
            "y": field("class:N", sort=list(names), axis={"labelOverlap": False,
                                                          "labelLimit": 200}),
            "color": field("mean_weight:Q", scale={"scheme": "blues"}, title="mean omega"),
            "tooltip": tips("class:N", "images:Q", "component:O",
                            field("mean_weight:Q", format=".4f", title="mean omega")),
        }}, {"classes": data})
