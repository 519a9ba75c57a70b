"""Attribution maps over the input image (captum results from gsoplib.attribution)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize, TwoSlopeNorm
from matplotlib.figure import Figure

from ._axes import _figure, _input_ax
from .images import DIVERGING, _array, _resize


def attribution_figure(
    image,
    maps: Mapping[str, torch.Tensor],
    *,
    alpha: float = 0.5,
    figsize=None,
    units: Mapping[str, str] | None = None,
    limits: Mapping[str, float] | None = None,
) -> Figure:
    """The input and one overlay per attribution map (name -> (H, W)), each with a colorbar.

    Each map's name is its panel's title. Non-negative maps (Grad-CAM) use 'jet' from 0; signed
    maps (Integrated Gradients, Occlusion) a diverging colormap centred at 0, so red supports
    the target and blue opposes it. ``units`` (name -> text, e.g. from
    :data:`gsoplib.attribution.UNITS`) labels the colorbar of each map it names.

    ``limits`` (name -> a positive number) sets the colour limit of each map it names instead of
    the map's own largest absolute value: the colours of a signed map then span -limit to
    +limit, of a non-negative one 0 to limit (values beyond saturate). Give two maps the same
    limit to compare their colours; maps it does not name keep their own scale.
    """
    figsize = figsize or (2.8 * (len(maps) + 1), 3.0)
    fig = _figure(figsize, left=0.01, right=0.93, bottom=0.04, wspace=0.35)
    axes = np.atleast_1d(fig.subplots(1, len(maps) + 1))
    base = _input_ax(axes[0], image)
    for ax, (name, heat) in zip(axes[1:], maps.items()):
        h = _resize(_array(heat).squeeze(), base.shape[:2])
        _input_ax(ax, image, name)
        given = (limits or {}).get(name)
        if given is not None and not given > 0:
            raise ValueError(f"the colour limit of {name!r} must be positive, got {given}")
        if h.min() >= 0:
            norm, cmap = Normalize(0, given or h.max() or 1.0), "jet"
        else:
            lim = float(given or np.abs(h).max())
            norm, cmap = TwoSlopeNorm(0.0, -lim, lim), DIVERGING
        ax.imshow(h, cmap=cmap, norm=norm, alpha=alpha, interpolation="bilinear")
        label = (units or {}).get(name)
        fig.colorbar(ScalarMappable(norm, cmap), ax=ax, shrink=0.75, pad=0.03,
                     **({"label": label} if label else {}))
    return fig
