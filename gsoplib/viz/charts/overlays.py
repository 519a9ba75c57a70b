"""Maps over the original photo: a position weight map (GSoP-Net Sec. 3.2, CBAM) or attribution
maps, laid on the region of the photo the model input came from, with an opacity slider."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch
from PIL import Image

from ...probe import Inspection
from ..images import display_image
from .spec import FIT_WIDTH, Chart, field, slider, tips
from .tables import HEAT_SIDE, heat_cells, one_image

OPACITY = "opacity"
PHOTO_PX = 320
"""Longest side the photo is sent at: enough to see it under a map, small to send."""


def photo_url(photo: Image.Image, max_side: int = PHOTO_PX) -> str:
    """``photo`` as a JPEG data URL, its longest side at most ``max_side``."""
    small = photo.convert("RGB")
    small.thumbnail((max_side, max_side))
    buffer = io.BytesIO()
    small.save(buffer, "JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def input_photo(image: torch.Tensor) -> Image.Image:
    """A normalised (C, H, W) model input as a picture (what to draw on without the photo)."""
    a = display_image(image)
    return Image.fromarray(np.uint8(np.clip(a, 0, 1) * 255 + 0.5))


def _over_photo(cells: pd.DataFrame, key: str, photo: Image.Image, box, *, title,
                scale: dict, legend: str | None, width: int, method: str | None = None) -> dict:
    """A layer of the photo (dataset ``photo``), the heat cells (dataset ``key``, drawn at the
    :data:`OPACITY` parameter's opacity) and the input's region outlined."""
    pw, ph = photo.size
    left, top = min(0.0, box[0]), min(0.0, box[1])
    right, bottom = max(float(pw), box[2]), max(float(ph), box[3])
    height = round(width * (bottom - top) / (right - left))
    axis = {"labels": False, "ticks": False, "grid": False, "title": None, "domain": False}
    x = field("x:Q", scale={"domain": [left, right], "nice": False, "zero": False}, axis=axis)
    y = field("y:Q", scale={"domain": [top, bottom], "nice": False, "zero": False,
                            "reverse": True}, axis=axis)
    where = {"x": x, "x2": {"field": "x2"}, "y": y, "y2": {"field": "y2"}}
    return {"width": width, "height": height, "title": title, "layer": [
        {"data": {"name": "photo"}, "mark": {"type": "image", "aspect": False},
         "encoding": {**where, "url": field("url:N")}},
        {"data": {"name": key}, "mark": {"type": "rect", "opacity": {"expr": OPACITY}},
         # The method's name is added in the browser, for the tooltip, not sent per cell.
         "transform": [{"calculate": json.dumps(method or legend or "value"), "as": "method"}],
         "encoding": {**where,
                      # the colour bar under the panel, as wide as it, opaque whatever the
                      # map's opacity
                      "color": field("value:Q", scale=scale, legend={
                          "title": legend, "gradientOpacity": 1, "orient": "bottom",
                          "gradientLength": max(60, width - 20), "titleLimit": width}),
                      "tooltip": tips("method:N", "row:O", "col:O",
                                      field("value:Q", format=".4g", title=legend or "value"))}},
        {"data": {"name": "outline"},
         "mark": {"type": "rect", "fill": None, "stroke": "white", "strokeDash": [4, 3]},
         "encoding": where},
    ]}


def _photo_frames(photo: Image.Image, box) -> dict[str, pd.DataFrame]:
    pw, ph = photo.size
    return {"photo": pd.DataFrame({"url": [photo_url(photo)], "x": [0.0], "x2": [float(pw)],
                                   "y": [0.0], "y2": [float(ph)]}),
            "outline": pd.DataFrame({"x": [box[0]], "x2": [box[2]], "y": [box[1]],
                                     "y2": [box[3]]})}


def _opacity(value: float) -> dict:
    return slider(OPACITY, value, "map opacity ")


def position_weights_chart(
    insp: Inspection, path: str, image: int = 0, *, photo: Image.Image | None = None,
    box: tuple[float, float, float, float] | None = None, opacity: float = 0.6,
    width: int = 320,
) -> Chart:
    """The position weight map of one image (GSoP-Net Sec. 3.2; CBAM) over the original photo.

    photo: the picture the model input was made from (default the model input itself); box:
    where the input lies in it, (left, top, right, bottom) in its pixels
    (:func:`gsoplib.images.crop_box`; default the whole photo). Each cell of the map is a
    rectangle over the photo (dataset ``cells``: x, x2, y, y2, row, col, value): hover it for
    its position and weight; a slider sets the map's opacity (the :data:`OPACITY`
    parameter). The pooled map is not drawn here."""
    record = one_image(insp, path, image, "tap_pos_weights", "tap_pos_weights_pooled")
    t = record.tensors
    full = t.get("tap_pos_weights", t.get("tap_pos_weights_pooled"))[0].squeeze()
    photo = photo if photo is not None else input_photo(insp.inputs[image])
    box = box or (0.0, 0.0, float(photo.width), float(photo.height))
    cells = heat_cells(full, box, max_side=max(full.shape))
    h, w = full.shape
    panel = _over_photo(
        cells, "cells", photo, box, scale={"scheme": "magma"}, legend="position weight",
        title=f"{record.label} ({record.kind}): weights {h}x{w} over the photo", width=width)
    return Chart({**panel, "params": [_opacity(opacity)]},
                 {"cells": cells, **_photo_frames(photo, box)})


def attribution_chart(
    maps: Mapping[str, torch.Tensor], photo: Image.Image,
    box: tuple[float, float, float, float] | None = None, *, opacity: float = 0.5,
    width: int = 280, max_side: int = HEAT_SIDE, units: Mapping[str, str] | None = None,
    max_width: int = FIT_WIDTH,
) -> Chart:
    """Attribution maps (name -> (H, W) over the model input) over the original photo, one
    panel each (datasets ``map-0``, ``map-1``, ...). Non-negative maps (Grad-CAM) are divided by
    their largest value and drawn in 'turbo' from 0 to 1, the largest value in the panel's
    title; signed ones (Integrated Gradients, Occlusion) as they are, red-blue centred at 0
    (red supports the target). ``units``: name -> the colour bar's title (what a value is,
    :data:`gsoplib.attribution.UNITS`). Maps are average-pooled to ``max_side`` cells a side;
    hover a cell for the method, its position and value; one slider sets the opacity of every
    panel, and the colour bars stay opaque."""
    box = box or (0.0, 0.0, float(photo.width), float(photo.height))
    panels, frames = [], _photo_frames(photo, box)
    units = units or {}
    # each panel with its colour bar (~100 px), 20 px apart, within max_width
    width = max(100, min(width, (max_width - 120 * len(maps)) // max(1, len(maps))))
    for i, (name, heat) in enumerate(maps.items()):
        cells = heat_cells(heat, box, max_side)
        lo, hi = float(cells["value"].min()), float(cells["value"].max())
        title = name
        if lo >= 0:
            if hi > 0:
                cells["value"] = (cells["value"] / hi).astype(cells["value"].dtype)
            title = [name, "divided by its largest", f"value, {hi:.3g}"]
            scale = {"scheme": "turbo", "domain": [0, 1]}
        else:
            lim = max(abs(lo), abs(hi))
            scale = {"scheme": "redblue", "reverse": True, "domain": [-lim, lim]}
        frames[f"map-{i}"] = cells
        panels.append(_over_photo(cells, f"map-{i}", photo, box, title=title, scale=scale,
                                  legend=units.get(name, f"{name} attribution"), width=width,
                                  method=name))
    return Chart({"hconcat": panels, "params": [_opacity(opacity)],
                  "resolve": {"scale": {"color": "independent"}}}, frames)
