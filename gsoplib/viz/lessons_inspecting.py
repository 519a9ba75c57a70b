"""Notebook 06's widget on the attribution baseline: occlusion and integrated gradients of one
image from a uniform baseline of any intensity, from black to the dataset's mean grey (the
baseline of :mod:`gsoplib.attribution`).

    baseline_attributions(model, image, value)   both maps from a uniform baseline ``value``
                                                 (normalised units) and the logit's change
    baseline_view(intensity, model, image, ...)  the widget's callback: both maps, their sums
                                                 over the garment and the background in the titles
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from .attribution import attribution_figure

#: The colorbar labels of the two maps (as :data:`gsoplib.attribution.UNITS` words them).
_UNITS = ("drop in the class logit", "contribution to the class logit")


class BaselineMaps(NamedTuple):
    """What :func:`baseline_attributions` returns."""

    target: int               #: the class c whose logit y^c the maps explain
    occlusion: torch.Tensor   #: (H, W): mean drop of y^c over the windows covering each pixel
    integrated: torch.Tensor  #: (H, W): integrated gradients, summed over the channels
    change: float             #: y^c(x) - y^c(b): what the integrated gradients add up to


def baseline_attributions(
    model: nn.Module,
    image: torch.Tensor,
    value: float,
    target: int | None = None,
    *,
    window: int = 7,
    stride: int = 3,
    nodes: int = 128,
) -> BaselineMaps:
    """Occlusion and integrated gradients of one normalised image (1, C, H, W) for the logit
    y^c of ``target`` (default: the predicted class), both from the uniform baseline
    b = ``value`` (in normalised units; 0 is gsoplib's grey).

    Occlusion (Zeiler and Fergus 2014): each ``window`` x ``window`` patch on a ``stride`` grid
    is set to b in turn, and each pixel gets the mean drop y^c(x) - y^c(x occluded) of the
    windows covering it: (H, W). With window 7 and stride 3 on 28 x 28, 64 forward passes.

    Integrated gradients (Sundararajan et al. 2017, Eq. 1):
    IG_p = (x_p - b) * int_0^1 dy^c/dx_p (b + a (x - b)) da, the integral a ``nodes``-point
    Gauss-Legendre sum on [0, 1], summed over the channels: (H, W). Completeness: the map sums
    to y^c(x) - y^c(b) (``change``) up to the quadrature's error; from black the logit rises
    within the first few percent of the path, which takes about 128 nodes.
    """
    if image.dim() != 4 or image.shape[0] != 1:
        raise ValueError(f"image must be one normalised image (1, C, H, W), got "
                         f"{tuple(image.shape)}")
    side_h, side_w = image.shape[-2:]
    if not 1 <= window <= min(side_h, side_w) or stride < 1 or nodes < 1:
        raise ValueError(f"need 1 <= window <= {min(side_h, side_w)}, stride >= 1 and nodes >= 1; "
                         f"got window={window}, stride={stride}, nodes={nodes}")
    was_training = model.training
    model.eval()
    try:
        return _maps(model, image, float(value), target, window, stride, nodes)
    finally:
        model.train(was_training)


def _maps(model, image, value, target, window, stride, nodes) -> BaselineMaps:
    side_h, side_w = image.shape[-2:]
    with torch.no_grad():
        logits = model(image)[0]
    c = int(logits.argmax()) if target is None else int(target)
    corners = [(i, j) for i in range(0, side_h - window + 1, stride)
               for j in range(0, side_w - window + 1, stride)]
    windows = torch.zeros(len(corners), side_h, side_w)
    for k, (i, j) in enumerate(corners):
        windows[k, i:i + window, j:j + window] = 1
    baseline = torch.full_like(image, value)
    with torch.no_grad():
        drops = logits[c] - model(torch.where(windows.bool()[:, None], baseline, image))[:, c]
        change = (logits[c] - model(baseline)[0, c]).item()
    occ = (drops[:, None, None] * windows).sum(0) / windows.sum(0)
    points, weights = np.polynomial.legendre.leggauss(nodes)
    alphas = torch.as_tensor((points + 1) / 2, dtype=image.dtype)[:, None, None, None]
    path = (baseline + alphas * (image - baseline)).requires_grad_(True)
    grads, = torch.autograd.grad(model(path)[:, c].sum(), path)
    w = torch.as_tensor(weights / 2, dtype=image.dtype)[:, None, None, None]
    integrated = ((image - baseline) * (w * grads).sum(0)).sum(1)[0].detach()
    return BaselineMaps(c, occ, integrated, change)


def baseline_view(
    intensity: float = 0.05,
    model: nn.Module | None = None,
    image: torch.Tensor | None = None,
    garment: torch.Tensor | None = None,
    mean: float = 0.286,
    std: float = 0.353,
    nodes: int = 128,
) -> Figure:
    """The widget's callback: :func:`baseline_attributions` from a uniform baseline of raw
    ``intensity`` (0 black, 1 white; ``mean`` and ``std`` normalise it as the images were), drawn
    with :func:`~gsoplib.viz.attribution_figure`.

    ``garment`` (H, W) bool marks the garment's pixels; each panel's title gives the map's mean
    (occlusion) or sum (integrated gradients) over them and over the rest, the background, and
    the figure's title the intensity and the completeness check (the map's sum against the
    logit's change)."""
    if model is None or image is None or garment is None:
        raise ValueError("baseline_view needs the model, the image and its garment mask")
    if not 0 <= intensity <= 1:
        raise ValueError(f"intensity must be in [0, 1] (black to white), got {intensity}")
    maps = baseline_attributions(model, image, (intensity - mean) / std, nodes=nodes)
    garment = garment.bool()
    occ_on, occ_off = maps.occlusion[garment].mean().item(), maps.occlusion[~garment].mean().item()
    ig_on, ig_off = maps.integrated[garment].sum().item(), maps.integrated[~garment].sum().item()
    titles = (f"occlusion, windows at {intensity:.2f}: mean\nover the garment {occ_on:+.2f}\n"
              f"over the background {occ_off:+.2f}",
              f"integrated gradients from {intensity:.2f}: sum\nover the garment {ig_on:+.2f}\n"
              f"over the background {ig_off:+.2f}")
    fig = attribution_figure(image[0], dict(zip(titles, (maps.occlusion, maps.integrated))),
                             units=dict(zip(titles, _UNITS)), figsize=(10.0, 3.6))
    fig.subplots_adjust(top=0.8)
    fig.suptitle(f"baseline: uniform intensity {intensity:.2f} ({round(255 * intensity)} of 255); "
                 f"integrated gradients sum to {maps.integrated.sum():.2f}, the logit rises by "
                 f"{maps.change:.2f}", fontsize=10)
    return fig


__all__ = ["BaselineMaps", "baseline_attributions", "baseline_view"]
