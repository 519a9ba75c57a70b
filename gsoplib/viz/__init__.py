"""Figures and images of what a network's second-order parts computed (from an Inspection).

One module per subject: ``images`` (arrays, PIL overlays, PNG encoding), ``blocks`` (prediction,
channel and position weights, covariance), ``gate`` (GM-SOP gate), ``curves`` (Newton-Schulz,
training), ``attribution``, ``figures`` (every figure of a block or an image). The names below
are re-exported here.

Every function returns a :class:`matplotlib.figure.Figure` built without pyplot (no global
state, safe in a Streamlit thread, never shown) or a PIL image. Figures have the ``figsize``
they are given, in inches; :func:`to_pil` renders one at ``dpi`` to an image of
``figsize * dpi`` pixels.

Figures from an :class:`~gsoplib.probe.Inspection`, for one image and one block path:
    :func:`prediction`         top-k class probabilities
    :func:`channel_weights`    sorted channel weights, the top and bottom channels' feature maps
                               (GSoP-Net Sec. 3.1; SE, CBAM)
    :func:`position_weights`   the position weight map, pooled and overlaid on the input (Sec. 3.2)
    :func:`covariance`         covariance heatmaps before/after normalisation, eigenvalue spectrum
    :func:`gate_choices`       the gate's N logits and weights, the K chosen highlighted (GM-SOP
                               Eq. 2-3)
    :func:`gate_usage`         across a batch: images x components weights and a usage histogram
    :func:`block_figures`      all of the above that apply to one block, for one image
    :func:`figures`            the prediction and every block's figures, for one image
Interactive Vega-Lite charts of the same numbers (hover, selections, maps over the original
photo; what the explorer shows and a notebook renders): :mod:`gsoplib.viz.charts`, imported
on its own (it needs pandas, which the ``app`` and ``notebooks`` extras bring).

Others: :func:`training_curves` (metrics JSONL), :func:`step_curves` (runs step by step),
:func:`newton_schulz_convergence` (error per iteration, iSQRT-COV), :func:`attribution_figure`;
PIL images :func:`overlay`, :func:`heatmap_image`, :func:`display_image`.
"""

from .attribution import attribution_figure
from .blocks import channel_weights, covariance, position_weights, prediction
from .curves import newton_schulz_convergence, step_curves, training_curves
from .figures import block_figures, figures
from .gate import gate_choices, gate_usage
from .images import CHOSEN, DIVERGING, OTHER, display_image, heatmap_image, overlay, to_pil, to_png

__all__ = [
    "CHOSEN",
    "DIVERGING",
    "OTHER",
    "attribution_figure",
    "block_figures",
    "channel_weights",
    "covariance",
    "display_image",
    "figures",
    "gate_choices",
    "gate_usage",
    "heatmap_image",
    "newton_schulz_convergence",
    "overlay",
    "position_weights",
    "prediction",
    "to_pil",
    "to_png",
    "step_curves",
    "training_curves",
]
