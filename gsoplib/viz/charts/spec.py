"""Vega-Lite specs written as plain dicts, and the :class:`Chart` every builder returns.

A chart is a Vega-Lite spec (a dict) whose data are named datasets kept as DataFrames until
they are sent: the explorer hands ``chart.vega_lite()`` to ``st.vega_lite_chart`` (Streamlit
sends each frame as Arrow), a notebook shows the chart as a cell's value (JupyterLab renders
the ``application/vnd.vegalite.v5+json`` output that :meth:`Chart._repr_mimebundle_` gives,
with no script fetched from anywhere). Writing the dicts directly, without Altair's object
model, is what makes a chart cost less than the forward pass it shows (benchmarks/explorer.py);
the specs use only what both Vega-Lite 5 (JupyterLab) and 6 (Streamlit) accept, and the tests
validate every builder's spec against the Vega-Lite schema Streamlit's Altair ships.

Helpers: :func:`field` ("channel:O" -> an encoding), :func:`tips` (tooltips), :func:`when`
(a conditional value), :func:`point_selection`, :func:`slider`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

MIMETYPE = "application/vnd.vegalite.v5+json"
"""The output type JupyterLab renders as Vega-Lite (nbformat stores it as JSON)."""
TYPES = {"Q": "quantitative", "O": "ordinal", "N": "nominal"}


def field(shorthand: str, **props) -> dict:
    """An encoding of a column: ``field("channel:O", title="c")`` ->
    {"field": "channel", "type": "ordinal", "title": "c"}."""
    name, _, kind = shorthand.rpartition(":")
    if not name or kind not in TYPES:
        raise ValueError(f"'{shorthand}' is not 'column:T' with T one of {', '.join(TYPES)}")
    return {"field": name, "type": TYPES[kind], **props}


def tips(*fields: str | dict) -> list[dict]:
    """Tooltip entries from shorthands ("channel:O") or encodings made with :func:`field`."""
    return [field(f) if isinstance(f, str) else f for f in fields]


def when(condition: str | dict, then, otherwise) -> dict:
    """A value that is ``then`` where ``condition`` holds, else ``otherwise``: a Vega
    expression ("datum.rank == 1") or a parameter test ({"param": "channels"})."""
    test = {"test": condition} if isinstance(condition, str) else dict(condition)
    return {"condition": {**test, "value": then}, "value": otherwise}


def point_selection(name: str, fields: list[str], *, bind: str | None = None,
                    toggle: str | None = None, value: list[dict] | None = None) -> dict:
    """A point selection parameter over ``fields`` (click; ``toggle`` e.g. "event.shiftKey"
    adds to it; ``bind`` "legend" selects from the legend); ``value``: initially selected."""
    select = {"type": "point", "fields": list(fields)}
    if toggle is not None:
        select["toggle"] = toggle
    param = {"name": name, "select": select}
    if bind is not None:
        param["bind"] = bind
    if value:
        param["value"] = value
    return param


FIT_WIDTH = 760
"""The widest, in pixels, that a chart made to fit (``max_width``) draws itself, axes and
legends included: the explorer's main column in a 1280-pixel window with the sidebar open
holds about 820 pixels of content, a bordered container of compare mode about 790."""


def slider(name: str, value: float, label: str, lo: float = 0.0, hi: float = 1.0,
           step: float = 0.05) -> dict:
    """A variable parameter bound to a range input."""
    return {"name": name, "value": value,
            "bind": {"input": "range", "min": lo, "max": hi, "step": step, "name": label}}


def finished(spec: dict) -> dict:
    """A top-level spec ready to show on its own: its title at the left (a centred title wider
    than a narrow chart is cut off) and sized by its views (``autosize`` "pad", Vega-Lite's
    default, which Streamlit would otherwise set to "fit": axes, legends and titles squeezed
    into the views' width and height)."""
    title = spec.get("title")
    if isinstance(title, (str, list)):
        spec["title"] = {"text": title, "anchor": "start"}
    elif isinstance(title, dict):
        spec["title"] = {"anchor": "start", **title}
    spec["autosize"] = {"type": "pad"}
    return spec


class Chart:
    """One interactive chart: ``spec``, a Vega-Lite dict whose ``{"data": {"name": key}}``
    refer to ``datasets[key]``, DataFrames of the probe's numbers.

    Examples:
        >>> import pandas as pd
        >>> chart = Chart({"mark": "point", "data": {"name": "cells"}},
        ...               {"cells": pd.DataFrame({"x": [1, 2]})})
        >>> chart.data("cells")["x"].tolist()        # a dataset, as the chart draws it
        [1, 2]
        >>> list(chart.vega_lite()["datasets"])    # the spec with the frames under "datasets"
        ['cells']
        >>> chart.to_dict()["datasets"]["cells"]    # plain JSON: the frames as lists of records
        [{'x': 1}, {'x': 2}]
    """

    def __init__(self, spec: dict, datasets: Mapping[str, pd.DataFrame] | None = None):
        self.spec = finished(spec)
        self.datasets = dict(datasets or {})

    @property
    def title(self) -> str:
        title = self.spec.get("title", "")
        return title.get("text", "") if isinstance(title, dict) else str(title)

    def data(self, name: str) -> pd.DataFrame:
        if name not in self.datasets:
            raise KeyError(f"this chart has no dataset '{name}'; it has "
                           f"{', '.join(self.datasets) or 'none'}")
        return self.datasets[name]

    def vega_lite(self) -> dict:
        """The spec with the DataFrames under ``datasets``: what ``st.vega_lite_chart`` takes
        (it converts each frame to Arrow, a fraction of what JSON would cost)."""
        return {**self.spec, "datasets": dict(self.datasets)}

    def to_dict(self) -> dict:
        """The spec as plain JSON, every dataset a list of records (NaN as null)."""
        return {**self.spec,
                "datasets": {name: records(frame) for name, frame in self.datasets.items()}}

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        return {MIMETYPE: self.to_dict(), "text/plain": repr(self)}

    def __repr__(self) -> str:
        rows = sum(len(f) for f in self.datasets.values())
        return f"<Chart '{self.title}': {len(self.datasets)} datasets, {rows} rows>"


def records(frame: pd.DataFrame) -> list[dict]:
    """A DataFrame as JSON-ready records: Python numbers, NaN as None; a float32 column as the
    shortest decimals that read back as the same float32 (0.55488366, not the 17 digits of
    the double it is: half the bytes of a notebook's chart)."""
    columns = {}
    for name in frame.columns:
        column = frame[name]
        if column.dtype == np.float32:
            values = [float(v) for v in column.to_numpy().astype(str)]
        else:
            values = column.tolist()
        columns[str(name)] = [None if isinstance(v, float) and v != v else v for v in values]
    return [dict(zip(columns, row)) for row in zip(*columns.values())]


def vega_lite(chart: Chart) -> dict:
    """``chart.vega_lite()``: the spec the explorer passes to ``st.vega_lite_chart``."""
    return chart.vega_lite()
