"""Notebook 06's figures: the widget on the attribution baseline (occlusion and integrated
gradients of one image from a uniform baseline of any intensity, from black to the dataset's
mean grey, the baseline of :mod:`gsoplib.attribution`), and a GM-SOP gate's choices per class.

    baseline_attributions(model, image, value)   both maps from a uniform baseline ``value``
                                                 (normalised units) and the logit's change
    baseline_view(intensity, model, image, ...)  the widget's callback: both maps, their sums
                                                 over the garment and the background in the titles
    choice_share(indices, labels, n_classes, n)  the share of each class's images that chose each
                                                 component, p(n | y) K
    choice_share_figure(indices, weights, ...)   that share beside the mean gate weight per class
    region_sums(heat, regions)                   a map's positive, negative and net sum per region
    region_sums_figure(maps, regions)            those sums as bars, one panel per map
    class_means(values, labels, n_classes)       the mean of each class's images
    class_mean_weights_figure(weights, ...)      class means of channel weights minus the overall
                                                 mean, classes x channels, one panel per block
    map_grid_figure(grid)                        rows of h x w maps, one colour scale per row
    class_mean_maps_figure(maps, labels, ...)    the class-mean position maps of each block
    spectra_figure(spectra, mark)                eigenvalues / the largest, largest first, log axis
    null_histograms_figure(controls, measured)   a statistic against its shuffles, per block
    eigenvalue_errors_figure(errors)             a root's relative error per eigenvalue index
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from matplotlib.colors import Normalize, TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
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
    limits: tuple[float, float] | None = None,
) -> Figure:
    """The widget's callback: :func:`baseline_attributions` from a uniform baseline of raw
    ``intensity`` (0 black, 1 white; ``mean`` and ``std`` normalise it as the images were), drawn
    with :func:`~gsoplib.viz.attribution_figure`.

    ``garment`` (H, W) bool marks the garment's pixels; each panel's title gives the map's mean
    (occlusion) or sum (integrated gradients) over them and over the rest, the background, and
    the figure's title the intensity and the completeness check (the map's sum against the
    logit's change). ``limits`` (occlusion's, integrated gradients') fixes the two colour scales,
    so that moving the intensity does not rescale the colours; by default each map spans its own
    largest absolute value."""
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
                             units=dict(zip(titles, _UNITS)), figsize=(10.0, 3.6),
                             limits=None if limits is None else dict(zip(titles, limits)))
    fig.subplots_adjust(top=0.8)
    fig.suptitle(f"baseline: uniform intensity {intensity:.2f} ({round(255 * intensity)} of 255); "
                 f"integrated gradients sum to {maps.integrated.sum():.2f}, the logit rises by "
                 f"{maps.change:.2f}", fontsize=10)
    return fig


def choice_share(indices: torch.Tensor, labels: torch.Tensor, n_classes: int,
                 n_components: int) -> torch.Tensor:
    """(n_classes, n_components): the share of each class's images whose gate chose each
    component, from ``indices`` (S, K) (the chosen components, e.g. ``tap_gate_indices``) and
    ``labels`` (S,) class numbers. It is p(n | y) K with p(y, n) the joint of notebook 06's mutual
    information (each image counting 1/K for each of its K choices, GM-SOP Eq. 3's support); each
    row sums to K. A class with no image gets a row of NaN."""
    chosen = torch.zeros(len(indices), n_components, dtype=torch.float64).scatter_(1, indices, 1.0)
    return class_means(chosen, labels, n_classes)


def choice_share_figure(
    indices: torch.Tensor,
    weights: torch.Tensor,
    labels: torch.Tensor,
    classes: list[str],
    *,
    title: str | None = None,
    figsize: tuple[float, float] = (11.0, 4.0),
) -> Figure:
    """Two classes x components grids of a GM-SOP gate over S images: left :func:`choice_share`
    (0 to 1: the share of the class's images that chose the component, what the mutual
    information I(class; component) is computed from), right the mean gate weight omega (GM-SOP
    Eq. 3; ``weights`` (S, N), zero where not chosen) over the class's images, 0 to its largest.
    Rows are labelled with the class and its number of images; ``title`` goes above both."""
    share = choice_share(indices, labels, len(classes), weights.shape[1])
    mean_omega = class_means(weights, labels, len(classes))
    counts = torch.bincount(labels.long(), minlength=len(classes))
    fig = Figure(figsize=figsize)
    fig.subplots_adjust(left=0.14, right=0.97, bottom=0.14, top=0.8, wspace=0.3)
    axes = fig.subplots(1, 2)
    rows = [f"{name} ({int(n)})" for name, n in zip(classes, counts.tolist())]
    panels = ((share, Normalize(0, 1), "share of the class's images\nchoosing the component",
               "which components a class chooses"),
              (mean_omega, Normalize(0, max(float(mean_omega.max()), 1e-6)), "mean omega",
               "mean gate weight omega per class"))
    for ax, (grid, norm, label, heading) in zip(axes, panels):
        im = ax.imshow(grid.numpy(), cmap="Blues", norm=norm, aspect="auto",
                       interpolation="nearest")
        ax.set_yticks(np.arange(len(classes)), rows if ax is axes[0] else [], fontsize=8)
        ax.set_xticks(np.arange(grid.shape[1]))
        ax.set_xlabel("component")
        ax.set_title(heading, fontsize=9)
        fig.colorbar(im, ax=ax, label=label, pad=0.02)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


class RegionSums(NamedTuple):
    """What :func:`region_sums` returns for one region of a map."""

    positive: float   #: the sum of the map's positive values in the region
    negative: float   #: the sum of its negative values there (<= 0)
    net: float        #: positive + negative: the region's share of what the map distributes


def region_sums(heat: torch.Tensor, regions: dict[str, torch.Tensor]) -> dict[str, RegionSums]:
    """Split an attribution map ``heat`` (H, W) over ``regions`` (name -> (H, W) bool masks):
    per region, the sum of its positive values, of its negative values, and the net sum. For
    integrated gradients the nets over regions that cover the image add up to
    y^c(x) - y^c(b) (completeness, Sundararajan et al. 2017, Prop. 1); the positive and negative
    parts say how much of each net is left after cancellation."""
    heat = heat.detach().double()
    out = {}
    for name, mask in regions.items():
        if mask.shape != heat.shape:
            raise ValueError(f"region {name!r} has shape {tuple(mask.shape)}, the map "
                             f"{tuple(heat.shape)}")
        values = heat[mask.bool()]
        positive, negative = values.clamp(min=0).sum().item(), values.clamp(max=0).sum().item()
        out[name] = RegionSums(positive, negative, positive + negative)
    return out


def region_sums_figure(
    maps: dict[str, torch.Tensor],
    regions: dict[str, torch.Tensor],
    *,
    unit: str = "contribution to the class logit",
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """One panel per map (name -> (H, W)) with :func:`region_sums` as horizontal bars: per region
    a red bar for the positive part, a blue one for the negative part and a black diamond, with
    its value written beside it, at the net sum. All panels share the x axis (``unit``), so their
    bars compare; each panel's title is the map's name."""
    figsize = figsize or (1.0 + 3.9 * len(maps), 1.6 + 0.5 * len(regions))
    fig = Figure(figsize=figsize)
    fig.subplots_adjust(left=1.0 / figsize[0], right=1 - 0.2 / figsize[0], bottom=0.85 / figsize[1],
                        top=1 - 0.35 / figsize[1], wspace=0.2)
    axes = np.atleast_1d(fig.subplots(1, len(maps), sharex=True, sharey=True))
    rows = np.arange(len(regions))
    for ax, (name, heat) in zip(axes, maps.items()):
        sums = region_sums(heat, regions)
        pos, neg = ([getattr(v, part) for v in sums.values()] for part in ("positive", "negative"))
        ax.barh(rows, pos, height=0.6, color="#c0392b", label="positive part")
        ax.barh(rows, neg, height=0.6, color="#2e6da4", label="negative part")
        for row, v in zip(rows, sums.values()):
            ax.plot([v.net], [row], "kD", markersize=6, label="net sum" if row == 0 else None)
            ax.annotate(f"net {v.net:+.2f}", (v.net, row), xytext=(4, 7),
                        textcoords="offset points", fontsize=8)
        ax.axvline(0, color="0.3", linewidth=0.8)
        ax.set_yticks(rows, list(regions), fontsize=8)
        ax.tick_params(axis="x", labelsize=8)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel(unit, fontsize=8)
    axes[0].invert_yaxis()                                   # shared: the first region on top
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, frameon=False)
    return fig


def class_means(values: torch.Tensor, labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """(n_classes, ...): the mean of ``values`` (S, ...) over each class's images, ``labels`` (S,)
    class numbers; the w-bar_k of notebook 06's class share
    1 - sum_s ||w_s - w-bar_{y_s}||^2 / sum_s ||w_s - w-bar||^2. A class with no image gets NaN."""
    flat = values.detach().double().flatten(1)                                    # (S, D)
    members = torch.nn.functional.one_hot(labels.long(), n_classes).double()     # (S, classes)
    means = (members.T @ flat) / members.sum(0)[:, None]
    return means.view(n_classes, *values.shape[1:])


def class_mean_weights_figure(
    weights: dict[str, torch.Tensor],
    labels: torch.Tensor,
    classes: list[str],
    *,
    shares: dict[str, float] | None = None,
    title: str | None = None,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """One panel per block (name -> channel weights (S, C)): a classes x channels grid of each
    class's mean weight minus the mean over all S images (w-bar_k - w-bar, what the class share
    counts; red above the mean, blue below, a symmetric scale per panel). Panel widths follow
    the channel counts; with ``shares`` (name -> share) each panel's title gives the share of
    the variance the class explains. Rows are labelled with the class and its number of images;
    every panel's colour bar is labelled "class mean - overall mean weight"."""
    counts = torch.bincount(labels.long(), minlength=len(classes)).tolist()
    widths = [w.shape[1] + 12 for w in weights.values()]
    figsize = figsize or (min(2.5 + 0.14 * sum(widths), 16.0), 4.0)
    fig = Figure(figsize=figsize)
    fig.subplots_adjust(left=1.3 / figsize[0], right=0.98, bottom=0.14, top=0.8, wspace=0.3)
    axes = np.atleast_1d(fig.subplots(1, len(weights), gridspec_kw={"width_ratios": widths}))
    for ax, (name, w) in zip(axes, weights.items()):
        deviation = (class_means(w, labels, len(classes)) - w.detach().double().mean(0)).numpy()
        limit = max(float(np.nanmax(np.abs(deviation))), 1e-6)
        im = ax.imshow(deviation, cmap="RdBu_r", norm=TwoSlopeNorm(0, -limit, limit),
                       aspect="auto", interpolation="nearest")
        rows = [f"{c} ({n})" for c, n in zip(classes, counts)] if ax is axes[0] else []
        ax.set_yticks(np.arange(len(classes)), rows, fontsize=8)
        ax.set_xlabel("channel", fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(axis="both", labelsize=7)
        heading = name if shares is None else f"{name}: the class explains {shares[name]:.0%}"
        ax.set_title(heading, fontsize=9)
        bar = fig.colorbar(im, ax=ax, pad=0.02, fraction=0.05)
        bar.ax.tick_params(labelsize=7)
        bar.set_label("class mean - overall mean weight", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def map_grid_figure(
    grid: dict[str, dict[str, torch.Tensor]],
    *,
    title: str | None = None,
    label: str = "weight",
    cell: float = 1.15,
) -> Figure:
    """Rows of h x w maps: ``grid`` maps a row's name to {column name: map (h, w)}; every row
    has the same columns. One colour scale (viridis, from the row's smallest to its largest
    value, NaN left blank) and one colorbar (``label``) per row, so maps compare along a row.
    Column names head the first row, row names label the first column."""
    columns = list(next(iter(grid.values())))
    if any(list(row) != columns for row in grid.values()):
        raise ValueError("every row of the grid needs the same columns")
    heading = 0.45 + (0.2 * (title.count("\n") + 1) if title else 0.0)   # inches above the maps
    fig = Figure(figsize=(1.6 + cell * (len(columns) + 0.4), 0.15 + heading + cell * len(grid)))
    fig.subplots_adjust(left=1.5 / fig.get_figwidth(), right=0.93, bottom=0.03,
                        top=1 - heading / fig.get_figheight(), wspace=0.08, hspace=0.12)
    axes = np.atleast_2d(fig.subplots(len(grid), len(columns), squeeze=False))
    for r, (row_name, row) in enumerate(grid.items()):
        values = torch.stack([m.detach().double() for m in row.values()])
        norm = Normalize(float(np.nanmin(values.numpy())), float(np.nanmax(values.numpy())))
        for c, (column, heat) in enumerate(row.items()):
            ax = axes[r, c]
            im = ax.imshow(heat.detach().double().numpy(), cmap="viridis", norm=norm,
                           interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(column, fontsize=8)
            if c == 0:
                ax.set_ylabel(row_name, fontsize=8, rotation=0, ha="right", va="center")
        fig.colorbar(im, ax=list(axes[r]), pad=0.01, fraction=0.02).set_label(label, fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def class_mean_maps_figure(
    maps: dict[str, torch.Tensor],
    labels: torch.Tensor,
    classes: list[str],
    *,
    shares: dict[str, float] | None = None,
    title: str | None = None,
    outlines: torch.Tensor | None = None,
) -> Figure:
    """The class-mean position maps: one row per block (name -> pooled maps (S, h, w), GSoP-Net
    Sec. 3.2's weights before upsampling), one column per class, each cell the class's mean
    map over its images (:func:`class_means`), one colour scale per row
    (:func:`map_grid_figure`). With ``shares`` the row names give the share of the maps'
    variance the class explains. With ``outlines`` (S, h, w), e.g. each cell's share of garment
    pixels, every cell also draws the class mean of ``outlines`` as a white contour at 0.5."""
    grid = {}
    for name, m in maps.items():
        means = class_means(m, labels, len(classes))
        row = name if shares is None else f"{name}\nclass explains\n{shares[name]:.0%}"
        grid[row] = dict(zip(classes, means))
    fig = map_grid_figure(grid, title=title, label="class-mean weight")
    if outlines is not None:
        masks = class_means(outlines, labels, len(classes)).numpy()  # (classes, h, w)
        for i, ax in enumerate(fig.axes[:len(grid) * len(classes)]):  # the maps, row by row
            mask = masks[i % len(classes)]
            if np.nanmin(mask) < 0.5 < np.nanmax(mask):
                ax.contour(mask, levels=[0.5], colors="white", linewidths=0.9)
    return fig


def spectra_figure(spectra: dict[str, torch.Tensor], *, mark: int | None = None,
                   floor: float = 1e-18, title: str = "", figsize=(6.4, 3.4)) -> Figure:
    """Each spectrum (name -> (d,) eigenvalues of a symmetric matrix, any order) sorted largest
    first and divided by its largest, lambda_i / lambda_1, on a log axis against the index i
    (1 to d); values below ``floor`` (round-off zeros, negative ones included) are drawn at
    ``floor``. ``mark`` draws a dashed vertical line after index ``mark`` (e.g. a rank bound)."""
    fig = Figure(figsize=figsize)
    fig.subplots_adjust(left=0.13, right=0.97, bottom=0.15, top=0.8)
    ax = fig.subplots()
    for name, values in spectra.items():
        v = values.detach().double().flatten().sort(descending=True).values
        ax.semilogy(np.arange(1, len(v) + 1), (v / v[0]).clamp_min(floor).numpy(), "o-", ms=3,
                    label=name)
    if mark is not None:
        ax.axvline(mark + 0.5, color="grey", ls="--", lw=1, label=f"index {mark} | {mark + 1}")
    ax.set_xlabel("eigenvalue index i (largest first)")
    ax.set_ylabel("lambda_i / lambda_1")
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    return fig


def null_histograms_figure(controls: dict[str, torch.Tensor], measured: dict[str, float], *,
                           xlabel: str = "statistic", title: str = "",
                           figsize=(10.0, 2.9)) -> Figure:
    """One panel per name: the histogram of ``controls[name]`` (the statistic under shuffles,
    (n,)) and a red vertical line at ``measured[name]`` (the statistic on the real pairing); the
    panel title gives where the measured value lies, in standard deviations of the controls from
    their mean, (measured - mean) / sd."""
    if set(controls) != set(measured):
        raise ValueError("controls and measured must name the same panels")
    fig = Figure(figsize=figsize)
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.2, top=0.72, wspace=0.3)
    axes = np.atleast_1d(fig.subplots(1, len(controls)))
    for ax, (name, values) in zip(axes, controls.items()):
        v = values.detach().double().flatten()
        ax.hist(v.numpy(), bins=20, color="grey", label=f"{len(v)} shuffles")
        ax.axvline(measured[name], color="red", lw=2, label="measured")
        z = (measured[name] - v.mean().item()) / v.std().item()
        ax.set_title(f"{name}\nmeasured {z:+.1f} sd from the shuffles' mean", fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(4))
        ax.legend(fontsize=7)
    axes[0].set_ylabel("shuffles")
    fig.suptitle(title, fontsize=10)
    return fig


def eigenvalue_errors_figure(errors: dict[str, torch.Tensor], *, title: str = "",
                             figsize=(6.4, 3.4)) -> Figure:
    """Each curve (name -> (d,) relative errors e_i = mu_i(Y) / sqrt(lambda_i) - 1 of a root's
    eigenvalues, largest eigenvalue first, e.g. ``compare_root(...).eigenvalue_error().mean(0)``)
    in percent against the index i (1 to d), NaNs (past the rank) left out, with the exact
    root's 0% as a dotted line."""
    fig = Figure(figsize=figsize)
    fig.subplots_adjust(left=0.13, right=0.97, bottom=0.15, top=0.8)
    ax = fig.subplots()
    for name, values in errors.items():
        e = values.detach().double().flatten()
        index = torch.arange(1, len(e) + 1)[~e.isnan()]
        ax.plot(index.numpy(), 100 * e[~e.isnan()].numpy(), "o-", ms=3, label=name)
    ax.axhline(0.0, color="grey", ls=":", lw=1, label="exact root")
    ax.set_xlabel("eigenvalue index i (largest first)")
    ax.set_ylabel("relative error of the root's eigenvalue (%)")
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    return fig


__all__ = ["BaselineMaps", "RegionSums", "baseline_attributions", "baseline_view", "choice_share",
           "choice_share_figure", "class_mean_maps_figure", "class_mean_weights_figure",
           "class_means", "eigenvalue_errors_figure", "map_grid_figure", "null_histograms_figure",
           "region_sums", "region_sums_figure", "spectra_figure"]
