"""Notebook 01's widget: what a linear probe reads from the mean and from the covariance, and the
covariance's rank, as the correlation rho, the number of positions M and of channels C change;
and the notebook's figures of the second-order set and of a network's covariances.

    second_order_positions(n, positions, channels, rho)  the second-order set's classes (its
                                   correlation matrices R_k) with M independent positions
    largest_rho(channels, num_classes)  the rho above which some R_k is no longer positive definite
    probe_and_rank(rho, positions, channels)    first- vs second-order linear probe accuracy and
                                   the rank of every test sample's covariance
    rank_against_positions(channels, positions)  the covariance's rank at each number of positions
    probe_and_rank_view(rho, positions, channels)  the widget's callback: all three, drawn
    centring_share(image_size, smoothing)  a, the share of a pixel's variance that a
                                   second_order image's own mean carries: E[Sigma] = (1 - a) R_k
    centring_share_figure(image_size, smoothing, measured)  a against the blur width, with the
                                   generator's blur and the values measured on its images
    class_covariance_figure(sigma, labels, reference)  each class's R_k above the mean
                                   covariance of its samples
    second_order_figure(images, labels, class_names, mean, std)  the images, their pixels'
                                   tilt, and their means (one cloud) beside their covariances
                                   (clusters)
    feature_covariance_figure(sigma, positions)  a network's covariances (or correlations)
                                   and their spectra against the bound rank(Sigma) <= min(C, M - 1)
    saved_bytes(channels, positions)  bytes per sample each covariance form keeps for the backward
    saved_bytes_figure(channels)   those bytes against M, log-log: where I_hat's M^2 passes X's cM

The numbers a figure shows come from :func:`probe_and_rank`, so a test (or a reader) can check
them without reading pixels.

Examples:
    >>> r = probe_and_rank(0.2, positions=5, channels=8, num_train=100, num_test=50)
    >>> r.rank_bound, sorted(set(r.ranks.tolist()))          # min(C, M - 1), every test sample
    (4, [4])
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, NullLocator, ScalarFormatter

from ..data import normalize
from ..data.second_order import correlation_matrices, smooth_unit_variance
from ..ops import covariance, triu_vec
from ..root_check import numerical_rank
from ..train.linear_probe import linear_probe
from ._axes import _figure, _integer_ticks, _title
from .images import CHOSEN, OTHER

ZERO_RTOL = 1e-10
"""An eigenvalue of a float64 covariance at most this times the largest counts as zero: the
eigenvalues that centring makes exactly zero come out near 1e-16 times the largest, those of a
full-rank sample covariance of Gaussian data far above 1e-10."""


def default_num_classes(channels: int) -> int:
    """8 classes (the notebook's set), or all 2^(C(C-1)/2) sign patterns when C = 2 has fewer."""
    return min(8, 2 ** (channels * (channels - 1) // 2))


def largest_rho(channels: int, num_classes: int) -> float:
    """The supremum of the rho for which every R_k = I + rho S_k of the set is positive definite.

    S_k is the k-th sign pattern (zero diagonal, +-1 off it), so the smallest eigenvalue of R_k
    is 1 + rho lambda_min(S_k), positive for rho < 1 / max_k(-lambda_min(S_k)). For C = 3 and
    8 classes this is 0.5 (the all-negative pattern has lambda_min = -2).
    """
    tiny = 1e-3
    signs = (correlation_matrices(channels, num_classes, tiny)
             - torch.eye(channels, dtype=torch.float64)) / tiny
    return float(1.0 / (-torch.linalg.eigvalsh(signs)[:, 0]).max())


def second_order_positions(
    num_samples: int,
    positions: int,
    channels: int = 3,
    rho: float = 0.25,
    *,
    num_classes: int | None = None,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Samples of the second-order set's classes as (N, C, M) float64 features.

    The classes are those of :mod:`gsoplib.data.second_order` (class k: mean 0, correlation
    matrix R_k with +-rho off the diagonal in the k-th sign pattern), but the M positions are
    independent draws x_m = L_k z_m (L_k L_k^T = R_k, z_m ~ N(0, I)) instead of a smooth image,
    and nothing is quantised: M is exactly the number of samples the covariance averages over.
    Then E[Sigma] = (1 - 1/M) R_k for the biased (maximum-likelihood) estimate of GM-SOP Eq. 5.

    Returns:
        features (N, C, M) float64 and balanced labels (N,) int64, reproducible from ``seed``.
    """
    num_classes = num_classes or default_num_classes(channels)
    chol = torch.linalg.cholesky(correlation_matrices(channels, num_classes, rho))
    g = torch.Generator().manual_seed(seed)
    labels = (torch.arange(num_samples) % num_classes)[torch.randperm(num_samples, generator=g)]
    z = torch.randn(num_samples, channels, positions, generator=g, dtype=torch.float64)
    return chol[labels] @ z, labels


def centring_share(image_size: int = 32, smoothing: float = 1.5) -> float:
    """a = Var(image mean) / Var(pixel) for the ``second_order`` generator's smooth field.

    The field is stationary with autocorrelation c(d), c(0) = 1, over the circular displacements
    d of an S x S image (M = S^2 pixels), so its mean mu = (1/M) sum_p x_p has variance
    (1/M^2) sum_p sum_q c(p - q) = (1/M) sum_d c(d) = a. With x_p = L_k z_p (channels mixed per
    pixel, L_k L_k^T = R_k) the biased covariance (GM-SOP Eq. 5, Sigma = X J_hat X^T) has
    E[Sigma] = E[(1/M) X X^T] - E[mu mu^T] = R_k - a R_k = (1 - a) R_k (notebook 01, section 5).

    c is taken from the generator itself, not from a formula: its blur (circular padding,
    rescaled to unit variance) applied to a one-pixel impulse gives the impulse response
    h (S, S); c = h * h, the circular autocorrelation, computed with the FFT as
    ifft2(|fft2(h)|^2). Independent pixels (smoothing 0) give c = delta and a = 1/M.

    >>> round(centring_share(32, 1.5), 4), centring_share(32, 0.0) == 1 / 1024
    (0.0276, True)
    """
    impulse = torch.zeros(1, 1, image_size, image_size, dtype=torch.float64)
    impulse[0, 0, 0, 0] = 1.0
    h = smooth_unit_variance(impulse, smoothing)[0, 0]                  # (S, S)
    autocorrelation = torch.fft.ifft2(torch.fft.fft2(h).abs().square()).real
    return float(autocorrelation.sum() / image_size**2)


def centring_share_figure(
    image_size: int = 32,
    smoothing: float = 1.5,
    measured: dict[str, tuple[float, float]] | None = None,
    *,
    widths: np.ndarray | None = None,
    figsize=(7.0, 3.2),
) -> Figure:
    """a, the share of the variance an image's own mean removes (E[Sigma] = (1 - a) R_k), against
    the blur width sigma of the ``second_order`` generator, for S x S images (M = S^2 pixels).

    The curve is :func:`centring_share` at each width in ``widths`` (default 0 to 4 pixels); for
    the separable, normalised Gaussian kernel kappa it is a = 1 / (M (sum_t kappa_t^2)^2), and
    1/M for independent pixels (sigma = 0, GM-SOP Eq. 5's biased estimate shrinks by 1 - 1/M). The
    generator's ``smoothing`` is marked, with ``measured``: {name: (a, standard error)} drawn as
    points with 2-standard-error bars at that width, where they were measured (each with its
    own marker and colour, the later ones hollow, so overlapping points stay distinguishable).
    The title gives a at ``smoothing`` and as how many independent pixels 1/a counts.
    """
    widths = np.linspace(0.0, 4.0, 41) if widths is None else np.asarray(widths, dtype=float)
    curve = np.array([centring_share(image_size, float(w)) for w in widths])
    a = centring_share(image_size, smoothing)
    fig = _figure(figsize, left=0.12, right=0.97, bottom=0.16, top=0.86)
    ax = fig.subplots()
    ax.semilogy(widths, curve, "-", color=OTHER, label="a = 1 / (M (sum_t kappa_t^2)^2)")
    ax.axhline(1 / image_size**2, color="k", ls=":", lw=1,
               label=f"1/M = 1/{image_size**2}: independent pixels")
    ax.axvline(smoothing, color=CHOSEN, ls="--", lw=1,
               label=f"the generator's blur, sigma = {smoothing:g}")
    points = (measured or {}).items()
    for i, (name, (value, se)) in enumerate(points):
        color = ("tab:blue", "tab:green", "tab:red")[i % 3]
        ax.errorbar(smoothing, value, yerr=2 * se, fmt="os^"[i % 3], ms=4 + 2 * i,
                    capsize=3 + 2 * i, color=color, mfc=color if i == 0 else "none",
                    label=f"measured at sigma = {smoothing:g}, {name} (+-2 se)")
    ax.set_xlabel("blur width sigma (pixels)")
    ax.set_ylabel("a = Var(image mean) / Var(pixel)")
    ax.legend(fontsize=7, loc="lower right")
    _title(ax, f"{image_size} x {image_size} images: a = {a:.4f} at sigma = {smoothing:g}, "
               f"1/a = {1 / a:.0f} independent pixels of {image_size**2}")
    return fig


def channel_accuracy_figure(
    test: dict[int, list[float]],
    train: dict[int, list[float]],
    markers: dict[str, tuple[int, list[float]]] | None = None,
    *,
    title: str | None = None,
    bayes: dict[int, float] | None = None,
    figsize=(10.5, 3.8),
) -> Figure:
    """The covariance probe's accuracy against the number of channels C, one point per draw.

    ``test`` and ``train``: {C: [accuracy of each draw]} of the linear probe on triu_vec of
    GM-SOP Eq. 5's Sigma (d = C(C+1)/2 features); test points are filled, train points open,
    each with a line through the means over the draws. ``markers``: {label: (C, [accuracy of
    each draw])}, controls drawn in a second panel (fig.axes[1], same accuracy axis), one column
    per control named by its label (which should name its C), with the mean as a short bar; the
    left panel's C axis holds the probe alone.
    The title names the C with the best mean test accuracy, unless ``title`` (the finding, in
    the caller's words) replaces it. ``bayes``: {C: accuracy} of the Bayes rule with the true
    R_k (the largest log p(X | k) = -(M/2)(tr(R_k^-1 S) + log det R_k), S = (1/M) X X^T),
    drawn as a dashed line on the left panel.
    """
    fig = _figure(figsize, left=0.07, right=0.78 if markers else 0.72,
                  bottom=0.33 if markers else 0.15, top=0.86)
    if markers:
        ax, ac = fig.subplots(1, 2, sharey=True,
                              gridspec_kw={"width_ratios": [3, 2.2], "wspace": 0.06})
    else:
        ax, ac = fig.subplots(), None
    channels = sorted(test)
    for part, values, fill in (("test", test, CHOSEN), ("train", train, "none")):
        means = [float(np.mean(values[c])) for c in channels]
        ax.plot(channels, means, "-", color=CHOSEN, lw=1, alpha=1.0 if part == "test" else 0.5,
                label=f"{part}: mean over draws")
        for c in channels:
            ax.plot([c] * len(values[c]), values[c], "o", ms=5, color=CHOSEN, mfc=fill,
                    label=f"{part}: one draw" if c == channels[0] else None)
    if bayes:
        known = sorted(bayes)
        ax.plot(known, [bayes[c] for c in known], "--", color="k", lw=1,
                label="Bayes rule, true R_k")
    ax.set_xticks(channels)
    ax.set_xlabel("channels C (d = C(C+1)/2 features)")
    ax.set_ylabel("accuracy of the linear probe")
    best = max(channels, key=lambda c: float(np.mean(test[c])))
    _title(ax, title or f"best mean test accuracy at C = {best}: {float(np.mean(test[best])):.3f}")
    if ac is not None:
        colors = ("tab:green", "tab:red", "tab:purple", "tab:brown", "tab:olive", "tab:cyan")
        for i, (_c, values) in enumerate(markers.values()):
            color = colors[i % len(colors)]
            ac.plot([i] * len(values), values, "s^Dv<>"[i % 6], ms=5, color=color,
                    label="test, one draw" if i == 0 else None)
            ac.plot([i - 0.3, i + 0.3], [float(np.mean(values))] * 2, "-", color=color, lw=2,
                    label="test, mean over draws" if i == 0 else None)
        ac.set_xticks(range(len(markers)))
        ac.set_xticklabels([textwrap.fill(label, 20) for label in markers], fontsize=6.5,
                           rotation=35, ha="right", rotation_mode="anchor")
        ac.set_xlim(-0.6, len(markers) - 0.4)
        ac.set_title("controls, on the same draws", fontsize=8)
    handles, labels = ax.get_legend_handles_labels()
    if ac is not None:
        more = ac.get_legend_handles_labels()
        handles, labels = handles + more[0], labels + [f"control: {name}" for name in more[1]]
    (ac or ax).legend(handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.03, 1.0))
    return fig


def class_covariance_figure(
    sigma: torch.Tensor,
    labels: torch.Tensor,
    reference: torch.Tensor,
    class_names: list[str] | None = None,
    *,
    colorbar_label: str = "entry value",
    figsize=(13.0, 3.6),
) -> Figure:
    """Each class's correlation matrix R_k (top row) above the mean covariance of its samples,
    mean_{n: y_n = k} Sigma_n (bottom row), every entry written on its cell.

    Args:
        sigma: (N, C, C) covariances, Sigma = (1/M) X_c X_c^T (GSoP-Net Sec. 3.1, GM-SOP Eq. 5).
        labels: (N,) class indices in [0, K).
        reference: (K, C, C) the classes' R_k
            (:func:`gsoplib.data.second_order.correlation_matrices`).
        class_names: K titles (default "class k").
        colorbar_label: what the shared colour bar's values are.

    One diverging colour scale (-1 to 1) for both rows, so equal colours mean equal values. The
    bottom row is (1 - a) R_k in expectation (notebook 01, section 5): the same signs, shrunk.
    The suptitle gives the entrywise factor mean Sigma / R_k, averaged over classes and entries,
    on the diagonal and off it (off it signed by R_k, so +-rho count alike).
    """
    num_classes, channels = reference.shape[0], reference.shape[-1]
    names = class_names or [f"class {k}" for k in range(num_classes)]
    means = torch.stack([sigma[labels == k].mean(0) for k in range(num_classes)]).double()
    reference = reference.double()
    ratio = means / reference                                            # (K, C, C)
    diagonal = torch.eye(channels, dtype=torch.bool)
    fig = _figure(figsize, left=0.06, right=0.9, bottom=0.04, top=0.8, wspace=0.1, hspace=0.25)
    axes = fig.subplots(2, num_classes, squeeze=False)
    for k in range(num_classes):
        for row, (matrix, what) in enumerate(((reference[k], "R_k"), (means[k], "mean Sigma"))):
            ax = axes[row, k]
            image = ax.imshow(matrix.numpy(), cmap="RdBu_r", vmin=-1, vmax=1,
                              interpolation="nearest")
            for (i, j), value in np.ndenumerate(matrix.numpy()):
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=6,
                        color="white" if abs(value) > 0.6 else "black")
            ax.set_xticks([])
            ax.set_yticks([])
            _title(ax, names[k] if row == 0 else "", fontsize=8)
            if k == 0:
                ax.set_ylabel(what, fontsize=8)
    bar = fig.colorbar(image, ax=axes.ravel().tolist(), fraction=0.02, pad=0.01)
    bar.set_label(colorbar_label, fontsize=7)
    fig.suptitle(f"top: each class's R_k; bottom: the mean Sigma of its samples ({len(labels)} in "
                 f"all): the same signs, shrunk by mean Sigma / R_k = "
                 f"{ratio[:, diagonal].mean():.3f} on the diagonal, "
                 f"{ratio[:, ~diagonal].mean():.3f} off it", fontsize=9)
    return fig


def second_order_figure(
    images: torch.Tensor,
    labels: torch.Tensor,
    class_names: list[str],
    mean,
    std,
    *,
    pair_classes: tuple[int, int] = (0, 4),
    num_points: int = 1500,
    figsize=(13.0, 5.6),
) -> Figure:
    """The ``second_order`` images to the eye and to their first- and second-order statistics.

    Args:
        images: (N, 3, S, S) uint8 images; labels: (N,) classes in [0, K).
        class_names: K names (``corr(+,+,-)``: the signs of corr(x_0, x_1), corr(x_0, x_2),
            corr(x_1, x_2)); mean, std: the per-channel normalisation
            (:func:`gsoplib.data.normalize`), applied before any statistic.
        pair_classes: two classes whose corr(x_0, x_1) signs differ (default corr(+,+,+) and
            corr(-,+,+)).

    Top row: one image per class, channels shown as RGB. Bottom row: (a) channel 0 against
    channel 1 at ``num_points`` pixels of each of the two ``pair_classes``, each cloud with the
    line through the origin whose slope is that class's measured per-pixel correlation
    corr(x_0, x_1) (+-rho of R_k; not a least-squares fit); (b) every image's channel means
    mu_0 against mu_1, coloured by class (E[mu] = 0 for every class: one cloud); (c) every image's
    covariances Sigma_01 against Sigma_02 (Sigma = (1/M) X_c X_c^T, GSoP-Net Sec. 3.1),
    coloured by class: one cluster per sign pair, E[Sigma] = (1 - a) R_k (notebook 01,
    section 4), each holding the two classes that differ only in the sign of Sigma_12.
    Panel (a)'s legend gives each class's measured correlation.
    """
    x = normalize(images, mean, std, dtype=torch.float64)
    flat = x.flatten(2)                                                  # (N, 3, M)
    mu = flat.mean(dim=-1)                                               # (N, 3)
    sigma = covariance(flat)                                             # (N, 3, 3)
    num_classes = len(class_names)
    colors = [f"C{k}" for k in range(num_classes)]
    fig = _figure(figsize, left=0.05, right=0.98, bottom=0.1, top=0.86)
    outer = fig.add_gridspec(2, 1, height_ratios=(1.0, 2.2), hspace=0.4)
    for k, cell in enumerate(outer[0].subgridspec(1, num_classes, wspace=0.15)):
        ax = fig.add_subplot(cell)
        ax.imshow(images[labels == k][0].permute(1, 2, 0).numpy(), interpolation="nearest")
        ax.set_axis_off()
        _title(ax, class_names[k], fontsize=8)
    ap, am, ac = (fig.add_subplot(cell) for cell in outer[1].subgridspec(1, 3, wspace=0.28))
    g = torch.Generator().manual_seed(0)
    for k in pair_classes:
        pixels = flat[labels == k][:, :2].transpose(0, 1).reshape(2, -1)    # (2, pixels)
        pick = torch.randperm(pixels.shape[1], generator=g)[:num_points]
        x0, x1 = pixels[:, pick].numpy()
        r = float(torch.corrcoef(pixels)[0, 1])
        ap.scatter(x0, x1, s=2, alpha=0.25, color=colors[k])
        line = np.array([-3.0, 3.0])
        ap.plot(line, r * line, color=colors[k], lw=2,
                label=f"{class_names[k]}: line of slope corr(x_0, x_1) = {r:+.2f}")
    ap.set_xlim(-3.5, 3.5)
    ap.set_ylim(-3.5, 3.5)
    ap.set_xlabel("pixel value, channel 0 (normalised)")
    ap.set_ylabel("pixel value, channel 1")
    ap.legend(fontsize=7, loc="upper left", markerscale=3)
    _title(ap, f"(a) pixels of two classes ({num_points} each)")
    for k in range(num_classes):
        chosen = labels == k
        am.scatter(mu[chosen, 0].numpy(), mu[chosen, 1].numpy(), s=3, alpha=0.5, color=colors[k],
                   label=class_names[k])
        ac.scatter(sigma[chosen, 0, 1].numpy(), sigma[chosen, 0, 2].numpy(), s=3, alpha=0.5,
                   color=colors[k])
    am.set_xlabel("image mean of channel 0, mu_0")
    am.set_ylabel("mu_1")
    am.legend(fontsize=6, loc="upper left", ncol=2, markerscale=3, handletextpad=0.1)
    _title(am, f"(b) channel means, {len(labels)} images: one cloud")
    for ax in (am, ac):
        ax.axhline(0, color="0.6", lw=0.6)
        ax.axvline(0, color="0.6", lw=0.6)
    ac.set_xlabel("covariance of channels 0 and 1, Sigma_01")
    ac.set_ylabel("Sigma_02")
    _title(ac, "(c) covariances: a cluster per sign pair\n(Sigma_12's sign splits each in two)")
    fig.suptitle("the means overlap, the covariances separate: the classes differ only in the "
                 "signs of the channel correlations", fontsize=10)
    return fig


def feature_covariance_figure(
    sigma: torch.Tensor,
    positions: int,
    *,
    image: int = 0,
    source: str = "features",
    correlation: bool = False,
    noise_median: float | None = None,
    figsize=(12.0, 4.0),
) -> Figure:
    """One image's covariance of C convolutional channels over M positions, and the spectra of
    all N images against the bound rank(Sigma) <= min(C, M - 1).

    Args:
        sigma: (N, C, C) covariances, Sigma = (1/M) X_c X_c^T (GSoP-Net Sec. 3.1, GM-SOP Eq. 5),
            in float64 (in float32 the eigenvalues that centring makes zero come out near 1e-7
            times the largest and do not read as zero).
        positions: M, the positions each Sigma averages over.
        image: whose Sigma the heat map shows. source: named in the titles.
        correlation: False draws Sigma[image] itself, on a diverging scale symmetric about its
            largest |Sigma_ij|; True draws its correlation D^-1/2 Sigma D^-1/2 (D = diag Sigma)
            on -1..1, so that channels with a large variance do not set the colours for all
            (a channel with zero variance has no correlation: its row and column stay blank),
            and the title gives the median and the largest channel variance.
        noise_median: with ``correlation``, the median |correlation| of a noise baseline (for
            example the same maps with each channel's positions shuffled), added to the title
            beside the image's own median |correlation| off the diagonal.

    Left: the heat map. Right: each image's eigenvalues
    over its largest (median and 10-90% range over the N images), with the zeros (at most
    ZERO_RTOL) drawn at the bottom and min(C, M - 1) as a dashed line when it is below C. The
    right title gives the numerical rank of every image's Sigma (:func:`numerical_rank`).
    """
    sigma = sigma.detach().double()
    channels = sigma.shape[-1]
    bound = min(channels, positions - 1)
    eigenvalues = torch.linalg.eigvalsh(sigma).flip(-1)
    ranks = numerical_rank(sigma, rtol=ZERO_RTOL)
    fig = _figure(figsize, left=0.06, right=0.98, bottom=0.14,
                  top=0.76 if noise_median is not None else 0.82, wspace=0.3)
    ah, ae = fig.subplots(1, 2, gridspec_kw={"width_ratios": (1.0, 1.5)})
    one = sigma[image]
    if correlation:
        variances = one.diagonal()
        scale = torch.where(variances > 0, variances.rsqrt(), torch.full_like(variances, np.nan))
        values, limit = (scale[:, None] * one * scale[None, :]).numpy(), 1.0
        label = "correlation of channels i and j"
        heading = (f"{source}: correlation, image {image}\n(channel variances: median "
                   f"{float(variances.median()):.2f}, largest {float(variances.max()):.2f})")
        if noise_median is not None:
            off = ~torch.eye(channels, dtype=torch.bool)
            own = float(np.nanmedian(np.abs(values[off.numpy()])))
            heading += (f"\nmedian |correlation| {own:.2f}; positions shuffled (noise alone) "
                        f"{noise_median:.2f}")
    else:
        values = one.numpy()
        limit = float(np.abs(values).max())
        label = "Sigma_ij, covariance of channels i and j"
        heading = f"{source}: Sigma of image {image}, {channels} x {channels}"
    shown = ah.imshow(values, cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
    ah.set_xlabel("channel j")
    ah.set_ylabel("channel i")
    fig.colorbar(shown, ax=ah, fraction=0.046, pad=0.03).set_label(label, fontsize=8)
    _title(ah, heading)
    _spectrum_panel(ae, eigenvalues / eigenvalues[:, :1], bound, f"{len(sigma)} images")
    low, high = int(ranks.min()), int(ranks.max())
    rank, zeros = ((f"{low}", f"{channels - low} zero eigenvalues each") if low == high else
                   (f"{low} to {high}", f"{channels - high} to {channels - low} zero eigenvalues"))
    _title(ae, f"rank of Sigma: {rank} in the {len(sigma)} images (bound min(C, M - 1) = "
               f"{bound}): {zeros}")
    why = (f"so rank(Sigma) <= M - 1 = {positions - 1} < C" if bound < channels
           else "so rank(Sigma) <= C: M is large enough for a full rank")
    fig.suptitle(f"{source}: C = {channels} channels at M = {positions} positions, {why}",
                 fontsize=10)
    return fig


def rank_against_positions(
    channels: int,
    positions: list[int],
    rho: float = 0.25,
    *,
    num_samples: int = 20,
    seed: int = 0,
) -> torch.Tensor:
    """(len(positions), num_samples) numerical rank of Sigma for num_samples draws of
    :func:`second_order_positions` at each M in ``positions`` (float64, eigenvalues above
    ZERO_RTOL times the largest). Sigma = (1/M) X P X^T with P = I - 1 1^T / M of rank M - 1,
    so every entry is at most min(C, M - 1), and equal to it for data in general position.
    """
    return torch.stack([
        numerical_rank(covariance(second_order_positions(num_samples, m, channels, rho,
                                                         seed=seed + m)[0]), rtol=ZERO_RTOL)
        for m in positions
    ])


@dataclass
class ProbeAndRank:
    """What :func:`probe_and_rank` measured at one (rho, M, C).

    gap_accuracy, covariance_accuracy: test accuracy of the linear probe on the C channel means
    and on triu(Sigma) (C (C + 1) / 2 numbers); chance = 1 / num_classes.
    covariance_train_accuracy: the triu(Sigma) probe's accuracy on its own training samples (far
    above its test accuracy when C (C + 1) / 2 nears num_train: it fits noise). ranks: (N_test,)
    numerical rank of each test sample's Sigma (float64, eigenvalues above ZERO_RTOL times the
    largest); rank_bound = min(C, M - 1). eigenvalues: (N_test, C) each sample's eigenvalues
    divided by its largest, descending.
    """

    rho: float
    positions: int
    channels: int
    num_classes: int
    gap_accuracy: float
    covariance_accuracy: float
    covariance_train_accuracy: float
    ranks: torch.Tensor
    rank_bound: int
    eigenvalues: torch.Tensor

    @property
    def chance(self) -> float:
        return 1.0 / self.num_classes


def probe_and_rank(
    rho: float = 0.25,
    positions: int = 64,
    channels: int = 3,
    *,
    num_train: int = 1000,
    num_test: int = 1000,
    seed: int = 0,
) -> ProbeAndRank:
    """Draw train and test sets (:func:`second_order_positions`), pool each sample by its mean
    (GAP, (N, C)) and by triu(Sigma) ((N, C (C + 1) / 2), Sigma = (1/M) X_c X_c^T, GSoP-Net
    Sec. 3.1), fit :func:`gsoplib.train.linear_probe` on each, and take the numerical rank of every
    test sample's Sigma. Sigma = (1/M) X P X^T with the centring projector P of rank M - 1, so
    rank(Sigma) <= min(C, M - 1): below C whenever M <= C (the "small sample size" GSoP-Net
    Sec. 4.1 avoids by keeping 14 x 14 positions at the last stage).

    Raises ValueError if rho is not below :func:`largest_rho` for these channels.
    """
    num_classes = default_num_classes(channels)
    x, labels = second_order_positions(num_train + num_test, positions, channels, rho,
                                       num_classes=num_classes, seed=seed)
    sigma = covariance(x)
    pooled = {"gap": x.mean(dim=-1).float(), "covariance": triu_vec(sigma).float()}
    train, test = slice(0, num_train), slice(num_train, None)
    fits = {
        name: linear_probe(f[train], labels[train], f[test], labels[test],
                           num_classes=num_classes)
        for name, f in pooled.items()
    }
    eigenvalues = torch.linalg.eigvalsh(sigma[test]).flip(-1)
    return ProbeAndRank(
        rho=rho, positions=positions, channels=channels, num_classes=num_classes,
        gap_accuracy=fits["gap"].test_accuracy,
        covariance_accuracy=fits["covariance"].test_accuracy,
        covariance_train_accuracy=fits["covariance"].train_accuracy,
        ranks=numerical_rank(sigma[test], rtol=ZERO_RTOL),
        rank_bound=min(channels, positions - 1),
        eigenvalues=eigenvalues / eigenvalues[:, :1],
    )


def _message(text: str, figsize) -> Figure:
    fig = _figure(figsize)
    ax = fig.subplots()
    ax.set_axis_off()
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, fontsize=10)
    return fig


def _spectrum_panel(ax, eigenvalues: torch.Tensor, rank_bound: int, what: str) -> None:
    """Eigenvalues (N, C), each row over its largest, descending: the median over the N rows
    with the 10-90% range shaded; when rank_bound < C, the zeros (at most ZERO_RTOL) drawn at the
    bottom and the bound min(C, M - 1) as a dashed line."""
    channels = eigenvalues.shape[-1]
    floor = ZERO_RTOL * 1e-6
    shown = eigenvalues.clamp_min(floor).numpy()
    index = np.arange(1, channels + 1)
    low, mid, high = np.quantile(shown, [0.1, 0.5, 0.9], axis=0)
    zero = mid <= ZERO_RTOL
    ax.fill_between(index, low, high, color=CHOSEN, alpha=0.2, label=f"10-90% of {what}")
    ax.semilogy(index[~zero], mid[~zero], "o-", color=CHOSEN, ms=4 if channels <= 16 else 2,
                label="median")
    if rank_bound < channels:
        ax.semilogy(index[zero], mid[zero], "o", color=OTHER, ms=4 if channels <= 16 else 2,
                    label="zero eigenvalues (drawn at the bottom)")
        ax.axvline(rank_bound + 0.5, color="k", ls="--", lw=1,
                   label=f"min(C, M - 1) = {rank_bound}")
        ax.axhline(ZERO_RTOL, color="0.5", ls=":", lw=0.8,
                   label=f"zero: at most {ZERO_RTOL:g} x largest")
        ax.set_ylim(floor / 10, 5)
    _integer_ticks(ax, channels, start=1)
    ax.set_xlabel("eigenvalue index i (largest first)")
    ax.set_ylabel("lambda_i / lambda_1 of Sigma")
    ax.legend(fontsize=7, loc="center left" if rank_bound < channels else "lower left")


def probe_and_rank_view(
    rho: float = 0.25,
    positions: int = 64,
    channels: int = 3,
    *,
    num_train: int = 1000,
    num_test: int = 1000,
    seed: int = 0,
    clamp_rho: bool = True,
    figsize=(14.0, 3.4),
) -> Figure:
    """The widget's callback: :func:`probe_and_rank` at (rho, M, C), drawn in three panels.

    Left: test accuracy of the two linear probes (mean: C features; triu(Sigma): C (C + 1) / 2)
    against chance, with the triu(Sigma) probe's accuracy on its own ``num_train`` training
    samples (far above the test accuracy when it fits noise). Middle: each test sample's
    eigenvalues of Sigma over its largest, descending
    (the median over samples, the 10-90% range shaded), zeros (at most ZERO_RTOL) drawn at the
    bottom with the bound min(C, M - 1) on the rank, both only when the bound is below C.
    Right: :func:`rank_against_positions` for this C at M = 2 .. 2C + 2 and the chosen M, against
    min(C, M - 1): the rank grows as M - 1 until it reaches C, whatever the chosen M.
    A rho at or above :func:`largest_rho` (some R_k = I + rho S_k would not be positive
    definite: 0.256 for C = 8, 0.228 for C = 16) is lowered, with ``clamp_rho``, to the largest
    two-decimal value below it, and the suptitle says so; without ``clamp_rho``, or for rho < 0
    or M < 2, the figure is one sentence instead of an error, so a slider moved too far reads as
    a message.
    """
    if positions < 2:
        return _message(f"M = {positions}: a covariance needs at least 2 positions.", figsize)
    limit = largest_rho(channels, default_num_classes(channels))
    valid = limit * (1 - 1e-5)         # correlation_matrices wants the smallest eigenvalue > 1e-6
    asked, lowered = rho, clamp_rho and rho >= valid
    if lowered:
        rho = math.floor(valid * 100) / 100
    if not 0 <= rho < valid:
        return _message(
            f"rho = {rho:g} is outside [0, {limit:.3f}) for C = {channels}: some class's matrix "
            f"I + rho S_k would not be positive definite, so it is no correlation matrix.",
            figsize)
    r = probe_and_rank(rho, positions, channels, num_train=num_train, num_test=num_test,
                       seed=seed)
    fig = _figure(figsize, left=0.11, right=0.99, bottom=0.16, top=0.8, wspace=0.3)
    ax, ae, ar = fig.subplots(1, 3)
    names = [f"mean (GAP)\n{channels} features",
             f"triu(Sigma)\n{channels * (channels + 1) // 2} features"]
    ax.barh(names, [r.gap_accuracy, r.covariance_accuracy], color=[OTHER, CHOSEN])
    ax.plot([r.covariance_train_accuracy], [1], "D", color="k", mfc="none", ms=7, clip_on=False,
            label=f"triu(Sigma) on its {num_train} training samples")
    ax.axvline(r.chance, color="k", ls="--", lw=1, label=f"chance 1/{r.num_classes}")
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"test accuracy ({num_test} samples)")
    ax.legend(fontsize=7, loc="lower right")
    _title(ax, f"linear probe: triu(Sigma) {r.covariance_accuracy:.2f} "
               f"(train {r.covariance_train_accuracy:.2f}), mean {r.gap_accuracy:.2f}")

    _spectrum_panel(ae, r.eigenvalues, r.rank_bound, "samples")
    low_rank, high_rank = int(r.ranks.min()), int(r.ranks.max())
    ranks = f"{low_rank}" if low_rank == high_rank else f"{low_rank} to {high_rank}"
    where = "every test sample" if low_rank == high_rank else "the test samples"
    _title(ae, f"rank of Sigma: {ranks} in {where} (bound {r.rank_bound})")

    sizes = sorted(set(range(2, 2 * channels + 3)) | {positions})
    rank = rank_against_positions(channels, sizes, rho, seed=seed)
    bound = np.minimum(channels, np.array(sizes) - 1)
    ar.plot(sizes, bound, "--", color="k", lw=1, label="min(C, M - 1)")
    ar.plot(sizes, rank.min(dim=1).values.numpy(), "o", color=CHOSEN, ms=5, mfc="none",
            label=f"rank, fewest of {rank.shape[1]} samples")
    ar.plot(sizes, rank.max(dim=1).values.numpy(), "x", color=CHOSEN, ms=4,
            label="rank, most")
    ar.axvline(positions, color=OTHER, lw=1, ls=":", label=f"chosen M = {positions}")
    ar.set_xscale("log", base=2)
    ar.set_xticks(sorted({2, channels + 1, 2 * channels + 2, positions}))   # sampled Ms only
    ar.xaxis.set_minor_locator(NullLocator())
    ar.xaxis.set_major_formatter(ScalarFormatter())
    ar.set_xlabel("positions M (log scale)")
    ar.set_ylabel("rank of Sigma")
    ar.set_ylim(0, channels + 1)
    ar.yaxis.set_major_locator(MaxNLocator(integer=True))
    ar.legend(fontsize=7, loc="lower right")
    exact = bool((rank == torch.as_tensor(bound)[:, None]).all())
    _title(ar, f"C = {channels}: rank = min(C, M - 1) "
               f"{'in every sample' if exact else 'NOT in every sample'},\n"
               f"so below C = {channels} for every M <= {channels}")
    note = (f" (the {asked:g} asked for lowered below {limit:.3f}, the largest valid rho for "
            f"C = {channels})" if lowered else "")
    fig.suptitle(f"rho = {rho:g}{note}, M = {positions} positions, C = {channels} channels, "
                 f"{r.num_classes} classes, {num_train} training samples, seed {seed}",
                 fontsize=10)
    return fig


FORMS = {
    "authors": ("the authors' layer (authors_covpool)", 1),
    "autograd": ("plain autograd through Eq. 5 (covariance_centring_matrix)", 2),
    "gsoplib": ("gsoplib's covariance (X alone)", None),
}
"""The forms :func:`saved_bytes` counts: a label, and how many (C, M) matrices each keeps beside
I_hat (None: no I_hat at all, X alone). The labels name the functions, not what they keep or
the byte formulas: notebook 01's exercise 3 asks the reader to derive those."""


def saved_bytes(channels: int, positions, form: str) -> np.ndarray:
    """Bytes per sample (float32) a covariance form keeps for the backward, at C channels and
    M positions (``positions`` a number or an array).

    "authors": the authors' autograd function saves X (C x M) and its per-sample copy of
    GM-SOP Eq. 5's I_hat (M x M): 4 (M^2 + CM)
    (:func:`gsoplib.ops.authors_covpool.authors_covpool`).
    "autograd": plain autograd through (X I_hat) X^T keeps the inputs of both products, X, I_hat
    and X I_hat (X^T is a view of X): 4 (M^2 + 2CM)
    (:func:`gsoplib.ops.covariance_centring_matrix`).
    "gsoplib": :func:`gsoplib.ops.covariance` keeps X alone: 4 CM.

    >>> int(saved_bytes(128, 784, "authors")), int(saved_bytes(128, 784, "autograd"))
    (2860032, 3261440)
    """
    m = np.asarray(positions, dtype=np.float64)
    copies = FORMS[form][1]
    return 4 * (channels * m if copies is None else m * m + copies * channels * m)


def saved_bytes_figure(
    channels: int = 128,
    *,
    marks: dict[int, str] | None = None,
    measured: dict[str, dict[int, int]] | None = None,
    finding_at: int = 784,
    figsize=(11.0, 4.0),
) -> Figure:
    """Bytes per sample kept for the backward against the number of positions M, log-log, for
    the three forms of :func:`saved_bytes` at C = ``channels``, M = 49 (7 x 7) to 3136 (56 x 56).

    ``marks``: {M: what it is} drawn as dotted vertical lines (default the GSoP-Net blocks' 196,
    784 and 3136 positions). ``measured``: {form: {M: bytes}} measured values (for example with
    :func:`gsoplib.ops.saved_tensor_bytes`), drawn as hollow markers on their form's line. The
    crossing M = C, where I_hat's M^2 numbers pass X's CM, is marked; the title gives it and how
    many times X I_hat is at ``finding_at`` (M / C).
    """
    marks = marks if marks is not None else {
        196: "last stage, 14 x 14", 784: "first block, 28 x 28", 3136: "stride 1, 56 x 56"}
    m = np.geomspace(49, 3136, 200)
    fig = _figure(figsize, left=0.09, right=0.6, bottom=0.14, top=0.88)
    ax = fig.subplots()
    styles = {"authors": ("tab:red", "-"), "autograd": ("tab:purple", "--"),
              "gsoplib": (CHOSEN, "-")}
    for form, (label, _) in FORMS.items():
        color, ls = styles[form]
        ax.loglog(m, saved_bytes(channels, m, form) / 1e6, ls, color=color, label=label)
    ax.loglog(m, 4 * m * m / 1e6, ":", color=OTHER, lw=1, label="I_hat alone: 4 M^2")
    for i, (form, points) in enumerate((measured or {}).items()):
        ax.loglog(list(points), [v / 1e6 for v in points.values()], "o", mfc="none", ms=7,
                  color=styles[form][0],
                  label="measured (saved_tensor_bytes), on its line" if i == 0 else None)
    ax.axvline(channels, color="0.4", lw=0.8)
    ax.text(channels / 1.05, 0.013, f"M = C = {channels}:\nM^2 = CM", fontsize=7, color="0.3",
            ha="right")
    for positions, what in marks.items():
        ax.axvline(positions, color="k", ls=":", lw=0.8)
        ax.text(positions / 1.05, 70, f"M = {positions}\n{what}", fontsize=7, va="top",
                ha="right")
    ax.set_xlim(49, 3136 * 1.1)
    ax.set_ylim(0.01, 100)
    ax.set_xticks(sorted({49, channels, *marks}))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.set_xlabel("positions M = H W (log scale)")
    ax.set_ylabel("MB kept for the backward, per sample\n(float32, log scale)")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    _title(ax, f"C = {channels}: I_hat's M^2 passes X's CM at M = C = {channels}; at "
               f"M = {finding_at} I_hat is {finding_at / channels:.1f}x X")
    return fig
