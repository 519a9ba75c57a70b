"""Figures and images of what a network's second-order parts computed (from an Inspection).

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
Others: :func:`training_curves` (metrics JSONL), :func:`newton_schulz_convergence` (error per
iteration, iSQRT-COV), :func:`attribution_figure`; PIL images :func:`overlay`,
:func:`heatmap_image`, :func:`display_image`.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize, TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullLocator
from PIL import Image

from .ops import newton_schulz_errors
from .probe import BlockRecord, Inspection

CHOSEN = "tab:orange"
OTHER = "tab:gray"
DIVERGING = "RdBu_r"


# --------------------------------------------------------------------------------------------
# Arrays and PIL images
# --------------------------------------------------------------------------------------------


def _array(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", torch.float64).numpy()
    return np.asarray(x, dtype=np.float64)


def display_image(image) -> np.ndarray:
    """A normalised model input (C, H, W) or (1, C, H, W) -> (H, W) or (H, W, 3) in [0, 1].

    Each image is min-max scaled on its own, which undoes any per-channel mean/std
    normalisation up to contrast.
    """
    a = _array(image)
    if a.ndim == 4:
        if a.shape[0] != 1:
            raise ValueError(f"display_image takes one image, got a batch of {a.shape[0]}")
        a = a[0]
    if a.ndim != 3 or a.shape[0] not in (1, 3):
        raise ValueError(f"display_image expects (C, H, W) with C in (1, 3), got {a.shape}")
    lo, hi = a.min(), a.max()
    a = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
    return a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)


def _resize(heat: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(h, w) -> (H, W), bilinear (align_corners=False, as Grad-CAM's upsampling)."""
    if heat.shape == tuple(size):
        return heat
    t = torch.from_numpy(np.ascontiguousarray(heat))[None, None]
    return F.interpolate(t, size=size, mode="bilinear", align_corners=False)[0, 0].numpy()


def _unit(heat: np.ndarray) -> np.ndarray:
    """Non-negative maps scale to [0, 1] by their maximum, signed ones by their range."""
    lo, hi = (0.0 if heat.min() >= 0 else heat.min()), heat.max()
    return (heat - lo) / (hi - lo) if hi > lo else np.zeros_like(heat)


def overlay(
    image,
    heat,
    *,
    alpha: float = 0.5,
    cmap: str = "jet",
    size: tuple[int, int] | None = None,
) -> Image.Image:
    """A heat map blended over an image, as a PIL RGB image.

    Args:
        image: normalised model input (C, H, W) or (1, C, H, W); see :func:`display_image`.
        heat: (h, w) map (a position weight map, a Grad-CAM map), resized bilinearly to (H, W)
            and scaled to [0, 1] (by its maximum when non-negative, by its range otherwise).
        alpha: weight of the heat map. cmap: a matplotlib colormap name.
        size: (width, height) of the result in pixels; default the input's.
    """
    base = display_image(image)
    if base.ndim == 2:
        base = np.repeat(base[..., None], 3, axis=2)
    heat = _array(heat).squeeze()
    if heat.ndim != 2:
        raise ValueError(f"overlay expects an (h, w) heat map, got shape {heat.shape}")
    colours = matplotlib.colormaps[cmap](_unit(_resize(heat, base.shape[:2])))[..., :3]
    blended = (1 - alpha) * base + alpha * colours
    out = Image.fromarray(np.uint8(np.clip(blended, 0, 1) * 255 + 0.5), "RGB")
    return out.resize(size, Image.Resampling.BILINEAR) if size else out


def heatmap_image(matrix, *, size: int = 256, cmap: str = DIVERGING) -> Image.Image:
    """A matrix as a size x size PIL RGB image, colours centred at 0 (no matplotlib Figure).

    Symmetric limits [-max|m|, max|m|] make 0 the colormap's middle, so sign is readable.
    Nearest-neighbour scaling keeps each entry a sharp square.
    """
    m = _array(matrix).squeeze()
    if m.ndim != 2:
        raise ValueError(f"heatmap_image expects a matrix, got shape {m.shape}")
    lim = np.abs(m).max() or 1.0
    rgb = matplotlib.colormaps[cmap]((m / lim + 1) / 2)[..., :3]
    img = Image.fromarray(np.uint8(rgb * 255 + 0.5), "RGB")
    return img.resize((size, size), Image.Resampling.NEAREST)


def to_png(fig: Figure, dpi: int = 100) -> bytes:
    """Render a Figure to PNG bytes of figsize * dpi pixels.

    zlib level 1: a few percent larger files than matplotlib's default level 6, encoded about
    four times faster (what a page that draws a dozen figures per image waits for).
    """
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, pil_kwargs={"compress_level": 1})
    return buffer.getvalue()


def to_pil(fig: Figure, dpi: int = 100) -> Image.Image:
    """Render a Figure to a PIL RGBA image of figsize * dpi pixels."""
    with Image.open(io.BytesIO(to_png(fig, dpi))) as image:
        return image.copy()


# --------------------------------------------------------------------------------------------
# Helpers for figures
# --------------------------------------------------------------------------------------------


def _figure(figsize: tuple[float, float], **margins: float) -> Figure:
    # Fixed margins rather than a constrained layout: these figures have known contents, and
    # the layout solver would double their drawing time (the explorer draws a dozen per image).
    fig = Figure(figsize=figsize)
    fig.subplots_adjust(**{"left": 0.07, "right": 0.97, "bottom": 0.14, "top": 0.84, **margins})
    return fig


def _record(insp: Inspection, path: str, image: int, *taps: str) -> BlockRecord:
    if not -insp.batch_size <= image < insp.batch_size:
        raise IndexError(f"image {image} is out of range for a batch of {insp.batch_size}")
    record = insp[path]
    if not any(t in record for t in taps):
        raise ValueError(
            f"{record.label} ({record.kind}) has none of the taps {', '.join(taps)}; "
            f"it has {', '.join(record.tensors) or 'none'}"
        )
    one = record.select(image % insp.batch_size)
    if one is None:
        raise ValueError(f"{record.label} did not see image {image} (the gate did not choose it)")
    return one


def _title(ax, text: str, fontsize: int = 9) -> None:
    # y=1.0 pins the title just above its axes. Left to matplotlib, every title's height is
    # re-derived at each draw from the bounding boxes of all tick labels, a third of the drawing
    # time of these figures, and none of them has tick labels above an axes.
    ax.set_title(text, fontsize=fontsize, y=1.0)


def _map_ax(ax, values: np.ndarray, title: str, cmap: str = "magma", norm=None, alpha=None):
    im = ax.imshow(values, cmap=cmap, norm=norm, alpha=alpha, interpolation="nearest")
    _title(ax, title)
    ax.set_axis_off()
    return im


def _input_ax(ax, image, title: str = "input") -> np.ndarray:
    shown = display_image(image)
    ax.imshow(shown, cmap="gray" if shown.ndim == 2 else None, interpolation="nearest")
    _title(ax, title)
    ax.set_axis_off()
    return shown


def _integer_ticks(ax, n: int, start: int = 0) -> None:
    """Every integer x tick when there are at most 16, else about 8 of them."""
    if n <= 16:
        ax.set_xticks(np.arange(start, start + n))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(8, integer=True))


def _mosaic(maps: Sequence[Sequence[np.ndarray]], gap: int, row_gap: int) -> np.ndarray:
    """Rows of equally shaped (h, w) maps as one array with NaN gaps (drawn blank); a row
    starts every h + row_gap pixels, a column every w + gap."""
    h, w = maps[0][0].shape
    cols = max(len(r) for r in maps)
    out = np.full((len(maps) * (h + row_gap) - row_gap, cols * (w + gap) - gap), np.nan)
    for i, row in enumerate(maps):
        for j, m in enumerate(row):
            out[i * (h + row_gap) : i * (h + row_gap) + h, j * (w + gap) : j * (w + gap) + w] = m
    return out


# --------------------------------------------------------------------------------------------
# Figures from an Inspection
# --------------------------------------------------------------------------------------------


def prediction(insp: Inspection, image: int = 0, *, figsize=(5.0, 2.6)) -> Figure:
    """Top-k class probabilities of one image, best at the top."""
    top = insp.top[image]
    fig = _figure(figsize, left=0.3, right=0.95, bottom=0.2)
    ax = fig.subplots()
    names = [p.name for p in top][::-1]
    probs = [p.probability for p in top][::-1]
    bars = ax.barh(names, probs, color=[OTHER] * (len(top) - 1) + [CHOSEN])
    ax.bar_label(bars, labels=[f"{p:.1%}" for p in probs], fontsize=8, padding=2)
    ax.set_xlim(0, 1.18)
    ax.set_xlabel("probability")
    _title(ax, f"image {image % insp.batch_size}: top-{len(top)} classes", 10)
    return fig


def channel_weights(
    insp: Inspection, path: str, image: int = 0, *, show: int = 4, figsize=(9.0, 5.0)
) -> Figure:
    """Channel weights of a GSoP channel block (GSoP-Net Sec. 3.1), SE or CBAM for one image.

    Top: all C weights sorted from most boosted (green) to most suppressed (red); they are
    sigmoid outputs in (0, 1) and the block returns x * w. Below: the block input's feature maps
    of the ``show`` most boosted (first row) and most suppressed channels (second row), on one
    shared colour scale.
    """
    record = _record(insp, path, image, "tap_channel_weights")
    weights = record["tap_channel_weights"].flatten().double().numpy()
    c = len(weights)
    order = np.argsort(-weights, kind="stable")
    maps = record.tensors.get("tap_input", record.tensors.get("tap_output"))
    show = min(show, c // 2) if maps is not None and maps.dim() == 4 else 0
    fig = _figure(figsize, left=0.08, bottom=0.04, top=0.9, hspace=0.45)
    grid = fig.add_gridspec(2 if show else 1, 1, height_ratios=[1, 1.25][: 2 if show else 1])
    ax = fig.add_subplot(grid[0])
    sorted_w = weights[order]
    edges = np.arange(c + 1) - 0.5
    spans = ((0, show, "tab:green"), (show, c - show, OTHER), (c - show, c, "tab:red"))
    for lo, hi, colour in spans:
        if hi > lo:
            ax.stairs(sorted_w[lo:hi], edges[lo : hi + 1], fill=True, color=colour)
    ax.set_xlim(-0.5, c - 0.5)
    ax.set_ylim(0, 1)
    # The x axis is a rank, not a channel id (those are in the labels below): a few ticks do.
    # Every tick is two markers and a text to lay out, the bulk of drawing these figures.
    ax.xaxis.set_major_locator(MaxNLocator(6, integer=True))
    ax.set_yticks([0, 0.5, 1])
    ax.set_xlabel("channels, sorted by weight", fontsize=9)
    ax.set_ylabel("weight")
    _title(ax, f"{record.label} ({record.kind}): {c} channel weights, min {weights.min():.2f} / "
           f"median {np.median(weights):.2f} / max {weights.max():.2f}", 10)
    if show:
        fmap = maps[0].double().numpy()
        rows = [order[:show], order[::-1][:show]]
        h, w = fmap.shape[-2:]
        # Room above the second row for its labels, in pixels of the maps.
        row_gap = 2 + h // 4
        mosaic = _mosaic([[fmap[ch] for ch in row] for row in rows], 1, row_gap)
        mx = fig.add_subplot(grid[1])
        im = _map_ax(mx, mosaic, "", "viridis")
        for i, (what, row) in enumerate(zip(("boosted", "suppressed"), rows)):
            top = i * (h + row_gap)
            mx.text(-0.05 * w, top + h / 2, what, ha="right", va="center", rotation=90,
                    fontsize=8)
            for j, ch in enumerate(row):
                mx.text(j * (w + 1) + w / 2, top - 0.6, f"ch {ch}: {weights[ch]:.2f}",
                        ha="center", va="bottom", fontsize=7)
        fig.colorbar(im, ax=mx, label="block input", shrink=0.9, pad=0.02, ticks=MaxNLocator(4))
    return fig


def position_weights(insp: Inspection, path: str, image: int = 0, *, figsize=(8.0, 3.6)
                     ) -> Figure:
    """Position weight map of a GSoP position block (GSoP-Net Sec. 3.2) or CBAM, one image.

    Left: the pooled h x w map the block computed (when tapped). Right: the map at the block's
    resolution, resized bilinearly onto the input. One colour scale spans the map's range.
    """
    record = _record(insp, path, image, "tap_pos_weights", "tap_pos_weights_pooled")
    t = record.tensors
    full = t.get("tap_pos_weights", t.get("tap_pos_weights_pooled")).double().squeeze().numpy()
    pooled = t.get("tap_pos_weights_pooled")
    pooled = None if pooled is None else pooled.double().squeeze().numpy()
    lo = min(full.min(), pooled.min()) if pooled is not None else full.min()
    hi = max(full.max(), pooled.max()) if pooled is not None else full.max()
    norm = Normalize(lo, hi if hi > lo else lo + 1e-6)
    fig = _figure(figsize, left=0.02, right=0.92, bottom=0.04, wspace=0.08)
    axes = list(np.atleast_1d(fig.subplots(1, 2 if pooled is not None else 1)))
    if pooled is not None:
        _map_ax(axes[0], pooled, f"pooled weights {pooled.shape[0]}x{pooled.shape[1]}",
                norm=norm)
    base = _input_ax(axes[-1], insp.inputs[image],
                     f"weights {full.shape[0]}x{full.shape[1]} on the input")
    axes[-1].imshow(_resize(full, base.shape[:2]), cmap="magma", norm=norm, alpha=0.6,
                    interpolation="bilinear")
    # A colorbar of the opaque colormap: the overlay's alpha would wash it out.
    fig.colorbar(ScalarMappable(norm, "magma"), ax=axes, label="position weight", shrink=0.85,
                 pad=0.02)
    fig.suptitle(f"{record.label} ({record.kind})", fontsize=10)
    return fig


def _spectrum(ax, matrices: Sequence[tuple[str, np.ndarray]]) -> None:
    for label, m in matrices:
        evals = np.linalg.eigvalsh((m + m.T) / 2)[::-1]
        top = evals[0] if evals[0] > 0 else 1.0
        ax.semilogy(np.arange(1, len(evals) + 1), np.clip(evals / top, 1e-12, None),
                    label=label, lw=1.5)
    ax.xaxis.set_major_locator(MaxNLocator(5, integer=True))
    ax.set_xlabel("index", fontsize=9)
    ax.set_ylabel("eigenvalue / largest", fontsize=9)
    _title(ax, "eigenvalue spectrum")
    # Decades only, labelled in plain text: a log axis's minor ticks and its mathtext labels
    # (10^-k, parsed at every draw) cost more to draw than the heatmaps.
    ax.yaxis.set_major_locator(LogLocator(numticks=5))
    ax.yaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"1e{round(np.log10(v))}"))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def _diverging(fig: Figure, ax, m: np.ndarray, title: str) -> None:
    lim = float(np.abs(m).max()) or 1.0
    im = _map_ax(ax, m, title, DIVERGING, TwoSlopeNorm(0.0, -lim, lim))
    fig.colorbar(im, ax=ax, shrink=0.8, pad=0.03, ticks=MaxNLocator(4, symmetric=True))


def covariance(insp: Inspection, path: str, image: int = 0, *, figsize=(12.0, 3.6)) -> Figure:
    """Covariance heatmaps of one image (diverging colours centred at 0) and their spectrum.

    gsop_channel: the c x c covariance and its row-BN output (GSoP-Net Sec. 3.1);
    isqrt_cov: the covariance and its Newton-Schulz square root (iSQRT-COV); gsop_position: the
    hw x hw position covariance (Sec. 3.2). The spectrum shows eigenvalues over the largest; the
    square root flattens it (its eigenvalues are the square roots of the covariance's).
    """
    record = _record(insp, path, image, "tap_cov", "tap_pos_cov")
    t = record.tensors
    names = [("tap_pos_cov", "position covariance"), ("tap_cov", "covariance (before)"),
             ("tap_cov_bn", "after row-wise BN"), ("tap_cov_sqrt", "after square root")]
    mats = [(label, t[k][0].double().squeeze().numpy()) for k, label in names if k in t]
    fig = _figure(figsize, left=0.01, right=0.98, bottom=0.15, wspace=0.25)
    axes = fig.subplots(1, len(mats) + 1, width_ratios=[1] * len(mats) + [1.1])
    for ax, (label, m) in zip(axes, mats):
        _diverging(fig, ax, m, f"{label} {m.shape[0]}x{m.shape[1]}")
    # Row-BN breaks symmetry, so only symmetric matrices enter the spectrum.
    _spectrum(axes[-1], [(lbl, m) for lbl, m in mats if "BN" not in lbl])
    fig.suptitle(f"{record.label} ({record.kind})", fontsize=10)
    return fig


def gate_choices(insp: Inspection, path: str, image: int = 0, *, figsize=(10.0, 3.4)) -> Figure:
    """The gate of a GM-SOP head for one image (GM-SOP Eq. 2-3).

    Left: the N gate logits, the K chosen (top-k) highlighted. Right: the weights omega,
    exactly K non-zero and summing to 1, each chosen bar labelled with the norm of that
    component's representation.
    """
    record = _record(insp, path, image, "tap_gate_weights", "tap_gate_clean_logits")
    t = record.tensors
    logits = t.get("tap_gate_noisy_logits", t.get("tap_gate_clean_logits"))
    weights = t.get("tap_gate_weights")
    n = (weights if weights is not None else logits).shape[1]
    if "tap_gate_indices" in t:
        chosen = t["tap_gate_indices"][0].tolist()
    else:
        chosen = weights[0].nonzero().flatten().tolist()
    colours = [CHOSEN if i in chosen else OTHER for i in range(n)]
    panels = [x for x in (logits, weights) if x is not None]
    fig = _figure(figsize, left=0.07, right=0.98, bottom=0.16, wspace=0.25)
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    x = np.arange(n)
    if logits is not None:
        axes[0].bar(x, logits[0].double().numpy(), color=colours)
        _title(axes[0], f"gate logits: the top {len(chosen)} of {n} chosen")
        axes[0].set_ylabel("logit")
    if weights is not None:
        ax = axes[-1]
        w = weights[0].double().numpy()
        bars = ax.bar(x, w, color=colours)
        norms = t.get("tap_component_norms")
        if norms is not None and norms.shape[1] == len(chosen):
            by_component = dict(zip(chosen, norms[0].tolist()))
            labels = [f"{by_component[i]:.3g}" if i in by_component else "" for i in x]
            ax.bar_label(bars, labels=labels, fontsize=7, rotation=90, padding=2)
        ax.set_ylim(0, max(w.max() * 1.4, 1e-6))
        _title(ax, "weights omega (labels: representation norm)")
        ax.set_ylabel("weight")
    for ax in axes:
        ax.set_xlabel("component", fontsize=9)
        _integer_ticks(ax, n)
        ax.tick_params(labelsize=8)
    fig.suptitle(f"{record.label} ({record.kind}), image {image % insp.batch_size}: chose "
                 f"{', '.join(map(str, chosen))}", fontsize=10)
    return fig


def gate_usage(insp: Inspection, path: str, *, figsize=(10.0, 4.0)) -> Figure:
    """The gate across the batch: an images x components grid of weights omega, and how many
    images chose each component (the balance loss, GM-SOP Eq. 4, pushes these to be even)."""
    record = insp[path]
    if "tap_gate_weights" not in record:
        raise ValueError(f"{record.label} ({record.kind}) has no tap_gate_weights; "
                         f"it has {', '.join(record.tensors) or 'none'}")
    w = record["tap_gate_weights"].double().numpy()
    b, n = w.shape
    k = int((w[0] > 0).sum())
    fig = _figure(figsize, left=0.07, right=0.98, wspace=0.3)
    axes = fig.subplots(1, 2, width_ratios=[1.4, 1])
    im = axes[0].imshow(w, cmap="Blues", aspect="auto", interpolation="nearest",
                        norm=Normalize(0, max(w.max(), 1e-6)))
    axes[0].set_xlabel("component")
    axes[0].set_ylabel("image")
    _title(axes[0], f"gate weights, {b} images x {n} components")
    for ax in axes:
        _integer_ticks(ax, n)
    axes[0].yaxis.set_major_locator(MaxNLocator(min(b, 8), integer=True))
    fig.colorbar(im, ax=axes[0], label="omega", pad=0.02)
    counts = (w > 0).sum(axis=0)
    axes[1].bar(np.arange(n), counts, color=CHOSEN)
    axes[1].axhline(b * k / n, color="k", ls="--", lw=1, label=f"even use ({b}*{k}/{n})")
    axes[1].set_xlabel("component")
    axes[1].set_ylabel("images choosing it")
    _title(axes[1], "usage")
    axes[1].legend(fontsize=8)
    fig.suptitle(f"{record.label} ({record.kind})", fontsize=10)
    return fig


def block_figures(insp: Inspection, path: str, image: int = 0) -> dict[str, Figure]:
    """Every figure that applies to the block or head at ``path``, for one image, keyed
    'PATH: what'. A mixture also gets the covariance of its highest-weighted component."""
    one = insp.image(image) if insp.batch_size > 1 else insp
    record = one[path]
    t, out = record.tensors, {}
    if "tap_channel_weights" in t:
        out[f"{record.label}: channel weights"] = channel_weights(one, path)
    if "tap_pos_weights" in t or "tap_pos_weights_pooled" in t:
        out[f"{record.label}: position weights"] = position_weights(one, path)
    if {"tap_cov", "tap_pos_cov"} & t.keys():
        out[f"{record.label}: covariance"] = covariance(one, path)
    if "tap_cov_sqrt" in t:
        out[f"{record.label}: Newton-Schulz"] = newton_schulz_convergence(t["tap_cov"])
    if "tap_gate_weights" in t or "tap_gate_clean_logits" in t:
        out[f"{record.label}: gate"] = gate_choices(one, path)
        comps = one.components(path)
        if comps and "tap_gate_indices" in t:
            best = f".components.{int(t['tap_gate_indices'][0, 0])}."
            comps = [c for c in comps if best in c.path + "."] or comps
        if comps and "tap_cov" in comps[0]:
            out[f"{comps[0].label}: covariance"] = covariance(one, comps[0].path)
    return out


def figures(insp: Inspection, image: int = 0) -> dict[str, Figure]:
    """The prediction and :func:`block_figures` of every part, for image ``image``, in network
    order: everything the explorer and the notebooks show for one image."""
    out = {"prediction": prediction(insp, image)}
    one = insp.image(image)
    for record in one.parts():
        out.update(block_figures(one, record.path))
    return out


# --------------------------------------------------------------------------------------------
# Figures from tensors and files
# --------------------------------------------------------------------------------------------


def newton_schulz_convergence(
    matrices: torch.Tensor,
    *,
    max_iters: int = 10,
    used: int | Sequence[int] | None = None,
    labels: Sequence[str] | None = None,
    figsize=(5.0, 3.6),
) -> Figure:
    """Relative error of the Newton-Schulz square root against the exact one per iteration
    (iSQRT-COV; :func:`gsoplib.ops.newton_schulz_errors`), one line per matrix, the median bold.

    matrices: (B, n, n) or (n, n) symmetric PSD. used: mark the iteration count a model uses, or
    several counts (``used=(3, 5)``: GSoP-Net2 / GM-SOP and iSQRT-COV), each a dashed line
    labelled 'N = k'. labels: one legend label per matrix (B names); each matrix is then drawn
    as its own coloured line and there is no median line.
    """
    m = matrices.detach().cpu()
    m = m.unsqueeze(0) if m.dim() == 2 else m
    if labels is not None and len(labels) != m.shape[0]:
        raise ValueError(f"labels: {len(labels)} given for {m.shape[0]} matrices")
    errors = newton_schulz_errors(m, max_iters=max_iters).numpy()
    its = np.arange(1, max_iters + 1)
    fig = _figure(figsize, left=0.17, bottom=0.15, top=0.9)
    ax = fig.subplots()
    if labels is not None:
        for column, label in zip(errors.T, labels):
            ax.semilogy(its, column, marker="o", ms=3, label=label)
    else:
        if errors.shape[1] > 1:
            ax.semilogy(its, errors, color=OTHER, lw=0.8, alpha=0.5)
        ax.semilogy(its, np.median(errors, axis=1), color="tab:blue", lw=2, marker="o",
                    label=f"median of {errors.shape[1]}")
    marks = [] if used is None else [used] if isinstance(used, int) else list(used)
    mark_color = CHOSEN if labels is None else "0.35"  # labelled lines use the colour cycle
    for n, style in zip(marks, ["--", ":", "-.", (0, (1, 3))] * len(marks)):
        ax.axvline(n, color=mark_color, ls=style, label=f"N = {n}")
    ax.set_xlabel("Newton-Schulz iterations N")
    ax.set_ylabel("relative Frobenius error")
    _title(ax, f"Newton-Schulz convergence, {m.shape[-1]}x{m.shape[-1]}")
    _integer_ticks(ax, max_iters, start=1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def training_curves(
    history: str | os.PathLike | Sequence[Mapping], *, title: str = "", figsize=(10.0, 6.5)
) -> Figure:
    """Per-epoch metrics from ``gsop train``'s metrics.jsonl (a path or its rows): loss, top-1,
    learning rate, training images/s; the GM-SOP balance loss when it is not 0 throughout; an
    epochs x components usage grid when the rows carry ``component_usage``. Two rows of panels.
    ``gsop train`` saves this figure beside its metrics (``metrics.png``)."""
    if isinstance(history, str | os.PathLike):
        lines = Path(history).read_text().splitlines()
        history = [json.loads(line) for line in lines if line.strip()]
    if not history:
        raise ValueError("training_curves needs at least one metrics row")
    epochs = [row.get("epoch", i + 1) for i, row in enumerate(history)]
    usage = [row["component_usage"] for row in history if "component_usage" in row]
    panels = [
        ("loss", [("train_loss", "train"), ("test_loss", "test")]),
        ("top-1 accuracy", [("train_top1", "train"), ("test_top1", "test")]),
        ("learning rate (end of epoch)", [("lr", "lr")]),
        ("training images/s", [("images_per_s", "train")]),
    ]
    if any(row.get("aux_loss") for row in history):
        panels.append(("balance loss (aux)", [("aux_loss", "aux")]))
    count = len(panels) + bool(usage)
    fig = _figure(figsize, left=0.08, bottom=0.08, top=0.92, hspace=0.35, wspace=0.35)
    axes = fig.subplots(2, (count + 1) // 2).flatten()
    for ax in axes[count:]:
        ax.remove()
    for ax, (label, series) in zip(axes, panels):
        for key, legend in series:
            points = [(e, row[key]) for e, row in zip(epochs, history) if row.get(key) is not None]
            if points:
                ax.plot(*zip(*points), marker="o", ms=3, label=legend)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        _integer_ticks(ax, len(epochs), start=min(epochs))
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
        else:
            _title(ax, "not recorded", 8)
    if usage:
        ax = axes[len(panels)]
        n = max(len(u) for u in usage)
        grid = np.array([list(u) + [0.0] * (n - len(u)) for u in usage])
        im = ax.imshow(grid, cmap="Blues", aspect="auto", interpolation="nearest")
        ax.set_xlabel("component")
        _integer_ticks(ax, n)
        ax.set_ylabel("epoch (row)")
        _title(ax, "gate usage per epoch")
        fig.colorbar(im, ax=ax, label="fraction of choices")
    if title:
        fig.suptitle(title)
    return fig


def attribution_figure(
    image, maps: Mapping[str, torch.Tensor], *, alpha: float = 0.5, figsize=None
) -> Figure:
    """The input and one overlay per attribution map (name -> (H, W)), each with a colorbar.

    Non-negative maps (Grad-CAM) use 'jet' from 0; signed maps (Integrated Gradients,
    Occlusion) a diverging colormap centred at 0, so red supports the target and blue opposes it.
    """
    figsize = figsize or (2.8 * (len(maps) + 1), 3.0)
    fig = _figure(figsize, left=0.01, right=0.93, bottom=0.04, wspace=0.35)
    axes = np.atleast_1d(fig.subplots(1, len(maps) + 1))
    base = _input_ax(axes[0], image)
    for ax, (name, heat) in zip(axes[1:], maps.items()):
        h = _resize(_array(heat).squeeze(), base.shape[:2])
        _input_ax(ax, image, name)
        if h.min() >= 0:
            norm, cmap = Normalize(0, h.max() or 1.0), "jet"
        else:
            lim = float(np.abs(h).max())
            norm, cmap = TwoSlopeNorm(0.0, -lim, lim), DIVERGING
        ax.imshow(h, cmap=cmap, norm=norm, alpha=alpha, interpolation="bilinear")
        fig.colorbar(ScalarMappable(norm, cmap), ax=ax, shrink=0.75, pad=0.03)
    return fig


__all__ = [
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
    "training_curves",
]
