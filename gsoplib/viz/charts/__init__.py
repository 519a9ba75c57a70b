"""Interactive Vega-Lite charts of what a network's second-order parts computed.

Pure functions of an :class:`~gsoplib.probe.Inspection` (no Streamlit, no Altair), each
returning a :class:`~gsoplib.viz.charts.spec.Chart`: a Vega-Lite spec written as a dict and its
data as DataFrames. The explorer shows one with ``st.vega_lite_chart(chart.vega_lite())``, a
notebook by leaving it as a cell's value (JupyterLab renders Vega-Lite itself). The numbers are
the probe's; :mod:`~gsoplib.viz.charts.tables` builds the long-form tables they draw
(``chart.data(name)`` returns one).

One image and one part:
    :func:`prediction_chart`       top-k probabilities
    :func:`covariance_chart`       covariance heatmaps (hover: both indices and the value),
                                   linked eigenvalue spectrum
    :func:`channel_weights_chart`  sorted channel weights; click to select channels
    :func:`feature_maps_chart`     the selected channels' feature maps
    :func:`position_weights_chart` the position weight map over the original photo, opacity
                                   slider
    :func:`gate_chart`             GM-SOP gate: N logits and weights, the K chosen
Across a batch:
    :func:`channel_batch_chart`    the selected channels' weights over the images
    :func:`batch_heatmap_chart`    images x channels, both ordered by similarity; click a row
    :func:`gate_usage_chart`       gate weights per image and component usage
    :func:`class_usage_chart`      mean gate weight per class
Attributions: :func:`attribution_chart` (maps over the original photo). Photos:
:func:`input_photo` (a model input as a picture), :func:`photo_url` (a photo as a data URL).

:func:`vega_lite` (``chart.vega_lite()``) is the dict the explorer passes to
``st.vega_lite_chart``; ``chart.to_dict()`` the same as plain JSON.

Examples:
    >>> import torch
    >>> from gsoplib.pretrained import load_pretrained
    >>> from gsoplib.probe import probe
    >>> insp = probe(load_pretrained("fmnist_small_gsop1").model, torch.rand(1, 1, 28, 28))
    >>> chart = covariance_chart(insp, "layer3.2.attn")  # in a notebook: the chart
    >>> frame = chart.data("spectrum")                   # a DataFrame it draws
"""

from .blocks import (
    CHANNELS,
    IMAGE_ROW,
    MATRIX,
    batch_heatmap_chart,
    channel_batch_chart,
    channel_weights_chart,
    covariance_chart,
    feature_maps_chart,
    prediction_chart,
)
from .gate import class_usage_chart, gate_chart, gate_usage_chart
from .overlays import OPACITY, attribution_chart, input_photo, photo_url, position_weights_chart
from .spec import Chart, vega_lite

__all__ = [
    "CHANNELS",
    "Chart",
    "IMAGE_ROW",
    "MATRIX",
    "OPACITY",
    "attribution_chart",
    "batch_heatmap_chart",
    "channel_batch_chart",
    "channel_weights_chart",
    "class_usage_chart",
    "covariance_chart",
    "feature_maps_chart",
    "gate_chart",
    "gate_usage_chart",
    "input_photo",
    "photo_url",
    "position_weights_chart",
    "prediction_chart",
    "vega_lite",
]
