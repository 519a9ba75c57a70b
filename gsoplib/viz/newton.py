"""Figures of the Newton-Schulz square root for notebook 02's widgets (iSQRT-COV; GSoP-Net2).

Each function takes the widget's knobs as keyword arguments with defaults, computes with
:mod:`gsoplib.ops` and returns a :class:`matplotlib.figure.Figure` (no pyplot state):
    :func:`cobweb`                  the scalar map p <- p (3 - p)^2 / 4 from p_0 = lambda, y_k
    :func:`ns_explorer`             error per iteration and the eigenvalue map y_N for a spectrum
    :func:`eigenvalue_maps`         y_N(lambda) against sqrt(lambda), N = 1..10, log axes
    :func:`convergence_by_spectrum` error per iteration, one line per spectrum, N = 3 and 5 marked
    :func:`newton_instability`      plain Newton against Denman-Beavers and Newton-Schulz
    :func:`backward_memory`         saved bytes and matmuls of the two backwards (presets:
                                    :data:`PAPER_SCALES`)
    :func:`accuracy_against_iterations`  measured test accuracy against N from a benchmark JSON
    :func:`head_spectrum`           a trained head's covariance spectra and what the root, y_N
                                    and the logarithm make of them
    :func:`sqrtm_timings`           forward+backward time of eigh and Newton-Schulz against n
                                    from ``benchmarks/results/sqrtm-*.json``
The numbers a figure shows come from a ``*_summary`` function beside it, so a test (or a reader)
can check them without reading pixels.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..heads.isqrt import ISqrtCovHead
from ..ops import newton_schulz_errors
from ..ops.backward_memory import PAPER_SCALES as _PAPER_SCALES
from ..ops.backward_memory import newton_schulz_backward_cost
from ..ops.iterations import (
    denman_beavers_sqrtm,
    example_spectrum,
    iterations_to_tolerance,
    newton_schulz_polynomial,
    newton_schulz_prenormalised,
    ns_scalar_map,
    ns_scalar_orbit,
    ns_scalar_regime,
    plain_newton_sqrtm,
    relative_errors,
)
from ..root_check import RANK_RTOL
from ._axes import _figure, _title
from .curves import newton_schulz_convergence
from .lessons_sqrtm_gradient import null_gradient_figure

#: Paper-scale settings for :func:`backward_memory` (re-exported from
#: :mod:`gsoplib.ops.backward_memory`, which says where each count comes from).
PAPER_SCALES = _PAPER_SCALES

#: The y label of every figure that draws the layer's error against N: notebook 02 calls it
#: e_N = ||sqrt(tr Sigma) Y_N - Sigma^(1/2)||_F / ||Sigma^(1/2)||_F.
ERROR_LABEL = r"error $e_N$ (relative Frobenius)"


def cobweb(lam: float = 2.5, steps: int = 12, figsize=(9.0, 3.6)) -> Figure:
    """Cobweb of p_{k+1} = p_k (3 - p_k)^2 / 4 from p_0 = lam (left) and y_k against
    +-sqrt(lam) (right); the left title names the regime
    (:func:`gsoplib.ops.iterations.ns_scalar_regime`), the right one where y_steps ended.
    The shading is along the p_k axis and applies to every step of the orbit: on (0, 3) the
    factor t_k = (3 - p_k)/2 is positive, on (3, 5) negative (y_k flips sign), above 5 p grows.
    Where the orbit starts (p_0 = lam) gives lam's regime.
    """
    ys, ps = ns_scalar_orbit(lam, steps)
    regime = ns_scalar_regime(lam)
    fig = _figure(figsize, left=0.07, right=0.98, bottom=0.14, top=0.84, wspace=0.28)
    ax, ay = fig.subplots(1, 2)
    top = max(6.0, min(lam * 1.1, 12.0))
    grid = np.linspace(0, top, 400)
    regions = ((0, 3, "tab:green", r"$p_k \in (0, 3)$: $t_k > 0$, $y$ keeps its sign"),
               (3, 5, "tab:orange", r"$p_k \in (3, 5)$: $t_k < 0$, $y$ flips sign"),
               (5, top, "tab:red", r"$p_k > 5$: $p$ grows, diverges"))
    for start, end, color, label in regions:
        ax.axvspan(start, end, color=color, alpha=0.1, label=label)
    ax.plot(grid, ns_scalar_map(grid), color="tab:blue", label=r"$f(p) = p(3-p)^2/4$")
    ax.plot(grid, grid, color="0.5", lw=0.8, label=r"diagonal $p_{k+1} = p_k$")
    finite = [p for p in ps if math.isfinite(p) and p < 1e3]
    xs, zs = [finite[0]], [0.0]
    for p, q in zip(finite, finite[1:]):
        xs += [p, q]
        zs += [q, q]
    ax.plot(xs, zs, color="k", lw=1, marker="o", ms=2.5, label=r"orbit from $p_0 = \lambda$")
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel(r"$p_k = z_k y_k$ (shading: where $p_k$ lies, at every step)")
    ax.set_ylabel(r"$p_{k+1}$")
    ax.legend(fontsize=6.5, loc="upper left")
    _title(ax, f"lambda = {lam:g}: {regime}")
    k = np.arange(len(ys))
    shown = np.clip(np.array(ys, dtype=float), -1e3, 1e3)
    ay.plot(k, shown, marker="o", ms=3, color="k", label=r"$y_k$")
    ay.axhline(math.sqrt(lam), color="tab:green", ls="--", label=r"$+\sqrt{\lambda}$")
    ay.axhline(-math.sqrt(lam), color="tab:orange", ls=":", label=r"$-\sqrt{\lambda}$")
    ay.set_ylim(-3 * math.sqrt(max(lam, 1e-3)) - 1, 3 * math.sqrt(max(lam, 1e-3)) + 1)
    ay.set_xlabel("step k")
    ay.set_ylabel(r"$y_k$ (clipped at $\pm 10^3$)")
    ay.legend(fontsize=7)
    _title(ay, f"y_{steps} = {ys[-1]:.4g} against sqrt(lambda) = {math.sqrt(lam):.4g}")
    return fig


def ns_explorer_summary(
    n: int = 32,
    condition: float = 1e4,
    decay: float = 1.0,
    iters: int = 3,
    prenormalisation: str = "trace",
    tol: float = 1e-3,
    max_iters: int = 20,
) -> dict:
    """The numbers behind :func:`ns_explorer`: the spectrum (``eigenvalues``, float64 (n,)),
    ``errors`` (max_iters,) of Newton-Schulz after each iteration, ``error`` at N = iters,
    ``iterations_to_tol`` (0: not within max_iters) and ``scaled_eigenvalues``, the eigenvalues
    the iteration sees after the pre-normalisation."""
    a, lam = example_spectrum(n, condition, decay)
    iterates = torch.stack(
        [newton_schulz_prenormalised(a, k, prenormalisation) for k in range(1, max_iters + 1)]
    )
    errors = relative_errors(iterates, a)[:, 0]
    scale = {"trace": lam.sum(), "frobenius": lam.norm(), "none": torch.tensor(1.0)}
    return {
        "eigenvalues": lam,
        "scaled_eigenvalues": lam / scale[prenormalisation],
        "errors": errors,
        "error": float(errors[iters - 1]),
        "iterations_to_tol": int(iterations_to_tolerance(errors[:, None], tol)[0]),
    }


def ns_explorer(
    n: int = 32,
    condition: float = 1e4,
    decay: float = 1.0,
    iters: int = 3,
    prenormalisation: str = "trace",
    tol: float = 1e-3,
    max_iters: int = 20,
    figsize=(9.0, 3.6),
) -> Figure:
    """Left: relative error per iteration for an n x n spectrum of the given condition number
    and decay (:func:`gsoplib.ops.iterations.example_spectrum`), N and the tolerance marked.
    Right: what N iterations do to each eigenvalue the iteration sees, y_N against sqrt."""
    s = ns_explorer_summary(n, condition, decay, iters, prenormalisation, tol, max_iters)
    fig = _figure(figsize, left=0.08, right=0.98, bottom=0.14, top=0.84, wspace=0.3)
    ax, am = fig.subplots(1, 2)
    its = np.arange(1, max_iters + 1)
    errors = s["errors"].numpy().clip(1e-17, 1e6)
    ax.semilogy(its, errors, marker="o", ms=3)
    ax.axvline(iters, color="tab:red", ls="--", label=f"N = {iters}: $e_N$ = {s['error']:.3g}")
    ax.axhline(tol, color="0.4", ls=":", label=f"tol {tol:g}")
    ax.set_xlabel("iterations N")
    ax.set_ylabel(ERROR_LABEL)
    ax.legend(fontsize=7)
    hit = s["iterations_to_tol"]
    _title(ax, f"{prenormalisation}: below tol at N = {hit}" if hit else
           f"{prenormalisation}: not below tol in {max_iters}")
    lam = s["scaled_eigenvalues"]
    grid = torch.logspace(math.log10(float(lam.min())) - 0.5, math.log10(float(lam.max())) + 0.3,
                          200, dtype=torch.float64)
    am.loglog(grid, grid.sqrt(), color="k", lw=1, label="sqrt(lambda)")
    mapped = newton_schulz_polynomial(grid, iters).abs().clamp(min=1e-300)
    am.loglog(grid, mapped, color="tab:blue", label=f"|y_{iters}(lambda)|")
    am.loglog(lam, newton_schulz_polynomial(lam, iters).abs().clamp(min=1e-300), "o", ms=3,
              color="tab:red", label="this spectrum")
    am.set_xlabel("eigenvalue the iteration sees")
    am.set_ylabel(r"$|y_N(\lambda)|$ and $\sqrt{\lambda}$")
    am.legend(fontsize=7)
    ratio = newton_schulz_polynomial(lam, iters).abs() / lam.sqrt()
    _title(am, f"n = {n}, condition {condition:g}, decay {decay:g}: y_{iters} / sqrt is "
               f"{float(ratio.min()):.2g} to {float(ratio.max()):.2g}")
    return fig


def eigenvalue_maps(max_iters: int = 10, channels: int | None = 64, figsize=(10.5, 3.6),
                    eigenvalues: torch.Tensor | None = None) -> Figure:
    """y_N(lambda) for N = 1..max_iters against sqrt(lambda), lambda in [1e-6, 1] (left), and
    the ratio y_N / sqrt(lambda) (right); every N its own colour of one sequential map, N = 3
    (the GSoP-Net authors' code, GM-SOP's release) and N = 5 (iSQRT-COV's, as GM-SOP Sec. 3.1
    cites it) drawn thicker; on the right each curve is labelled N=k where its ratio reaches 0.5;
    the left legend sits outside the axes, between the panels (y capped at 2). A dotted line
    at lambda = 1/channels: every eigenvalue of a flat channels x channels covariance after
    trace normalisation. The right title gives
    y_3, y_5 and y_max_iters over sqrt at that lambda (1e-3 when channels is None).

    ``eigenvalues`` (optional, any shape, trace-normalised, e.g. (B, C) of a head's covariances;
    values <= 1e-6 are left out as zeros): drawn as a grey histogram along the right panel's
    lambda axis, on a second y axis (share of those eigenvalues per log-spaced bin), whose label
    gives their median and the share above 1/channels; None draws no histogram."""
    lam = torch.logspace(-6, 0, 300, dtype=torch.float64)
    fig = _figure(figsize, left=0.07, right=0.98, bottom=0.14, top=0.88, wspace=0.78)
    ax, ar = fig.subplots(1, 2)
    ax.loglog(lam, lam.sqrt(), color="k", lw=2.5, label=r"$\sqrt{\lambda}$")
    colors = _sequential(max_iters)
    papers = {3: " (GSoP-Net/GM-SOP code)", 5: " (iSQRT-COV)"}
    for n in range(1, max_iters + 1):
        y = newton_schulz_polynomial(lam, n)
        style = {"lw": 2.2 if n in papers else 1.0, "color": colors[n - 1],
                 "label": f"N = {n}{papers.get(n, '')}"}
        ax.loglog(lam, y, **style)
        ar.semilogx(lam, y / lam.sqrt(), **style)
        cross = int((y / lam.sqrt() >= 0.5).nonzero()[0])       # label each curve where it
        side = "left" if channels and float(lam[cross]) >= 1 / channels else "right"
        ar.text(float(lam[cross]), 0.5, f"N={n}", fontsize=6, color=colors[n - 1],  # reaches 0.5,
                ha=side, va="bottom", rotation=60)      # on the side away from the dotted line
    ar.axhline(1.0, color="k", lw=1.2, ls="--", label="exact root (ratio 1)")
    at = 1 / channels if channels else 1e-3
    for a in (ax, ar):
        if channels:
            a.axvline(at, color="0.4", ls=":",
                      label=f"1/{channels}: a flat {channels}-channel spectrum")
        a.set_xlabel(r"$\lambda$ (trace-normalised eigenvalue)")
    ax.set_ylabel(r"$y_N(\lambda)$, eigenvalue after N iterations")
    ar.set_ylabel(r"$y_N(\lambda) / \sqrt{\lambda}$")
    ax.set_ylim(top=2)                      # the curves reach 1 at lambda = 1
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    handles, labels = ar.get_legend_handles_labels()
    ar.legend(handles[-2:], labels[-2:], fontsize=7, loc="lower right")
    _title(ax, r"small $\lambda$: $y_N \approx (3/2)^N \lambda$, slope 1, not 1/2", fontsize=8)
    shown = [n for n in (3, 5, max_iters) if n <= max_iters]
    ratios = {n: float(newton_schulz_polynomial(torch.tensor([at], dtype=torch.float64), n)[0])
              / math.sqrt(at) for n in dict.fromkeys(shown)}
    _title(ar, rf"at $\lambda$ = {at:.3g}: " + ", ".join(
        rf"$y_{{{n}}} = {r:.2f}\sqrt{{\lambda}}$" for n, r in ratios.items()), fontsize=8)
    if eigenvalues is not None:
        _eigenvalue_histogram(ar, eigenvalues, at)
    return fig


def _eigenvalue_histogram(ax, eigenvalues: torch.Tensor, at: float) -> None:
    """Grey histogram of the non-zero (> 1e-6) ``eigenvalues`` over ax's lambda range, 60 log bins,
    as a share of them, on a twin y axis labelled with their median and the share above ``at``."""
    kept = eigenvalues.detach().double().flatten()
    kept = kept[kept > 1e-6]
    bins = np.logspace(-6, 0, 61)
    ax.figure.subplots_adjust(right=0.91)                       # room for the twin axis' label
    twin = ax.twinx()
    share = np.full(len(kept), 1 / len(kept))
    twin.hist(kept.numpy(), bins=bins, weights=share, color="0.5", alpha=0.35)
    twin.set_ylabel(f"share of the given eigenvalues (grey)\nmedian {float(kept.median()):.2g}, "
                    f"{float((kept > at).double().mean()):.0%} above {at:.3g}", fontsize=7)


def _sequential(count: int) -> list:
    """``count`` colours of matplotlib's viridis, dark to light (N = 1 darkest)."""
    return [colormaps["viridis"](x) for x in np.linspace(0.0, 0.88, count)]


def convergence_by_spectrum(
    matrices: torch.Tensor,
    labels: Sequence[str],
    used: Sequence[int] = (3, 5),
    max_iters: int = 10,
    figsize=(6.0, 3.6),
) -> Figure:
    """:func:`gsoplib.viz.newton_schulz_convergence` (relative error of the trace-normalised
    Newton-Schulz root per iteration (pre-normalise, iterate, post-compensate), one line per
    (n, n) matrix of the (B, n, n) ``matrices``) with a title that states the range of errors
    over the matrices at the first count of ``used`` and at ``max_iters``."""
    fig = newton_schulz_convergence(matrices, max_iters=max_iters, used=tuple(used), labels=labels)
    fig.set_size_inches(*figsize)
    fig.axes[0].set_ylabel(ERROR_LABEL)
    errors = newton_schulz_errors(matrices.detach().cpu(), max_iters=max_iters)
    first, last = errors[used[0] - 1], errors[-1]
    _title(fig.axes[0], f"at N = {used[0]} every matrix is {float(first.min()):.0%}-"
                        f"{float(first.max()):.0%} off the root; at N = {max_iters}, "
                        f"{float(last.min()):.1%}-{float(last.max()):.1%}")
    return fig


def newton_instability(
    conditions: Sequence[float] = (1e2, 1e4), n: int = 32, iters: int = 30, figsize=(9.0, 3.4)
) -> Figure:
    """Relative error per iteration of plain Newton, Denman-Beavers and Newton-Schulz (trace
    pre-normalised) on :func:`~gsoplib.ops.iterations.example_spectrum` spectra, one panel each;
    each title gives the iteration where plain Newton was closest and its error at the end,
    and the larger end error of the two stable iterations. The panels share one y range and
    each has its y label; the legend says which iteration is trace pre-normalised (only
    Newton-Schulz: plain Newton and Denman-Beavers run on the matrix as it is)."""
    fig = _figure(figsize, left=0.08, right=0.98, bottom=0.15, top=0.84, wspace=0.25)
    axes = np.atleast_1d(fig.subplots(1, len(conditions), sharey=True))
    its = np.arange(1, iters + 1)
    for ax, cond in zip(axes, conditions):
        a, _ = example_spectrum(n, cond)
        ns = torch.stack([newton_schulz_prenormalised(a, k) for k in its])
        errors = {}
        raw = "on A as it is"
        for name, iterates, how in (("plain Newton", plain_newton_sqrtm(a, iters), raw),
                                    ("Denman-Beavers", denman_beavers_sqrtm(a, iters), raw),
                                    ("Newton-Schulz", ns, "trace pre-normalised")):
            errors[name] = relative_errors(iterates, a)[:, 0].numpy()
            ax.semilogy(its, errors[name].clip(1e-17), label=f"{name} ({how})")
        ax.set_xlabel("iteration k")
        ax.set_ylabel("relative Frobenius error")
        ax.tick_params(labelleft=True)
        plain = errors["plain Newton"]
        best = int(plain.argmin())
        stable = max(errors["Denman-Beavers"][-1], errors["Newton-Schulz"][-1])
        _title(ax, f"condition {cond:.0e}, {n}x{n}: plain Newton best at k = {its[best]},\n"
                   f"{plain[-1]:.0e} at k = {iters}; the coupled two end <= {stable:.0e}",
               fontsize=8)
        ax.legend(fontsize=6)
    return fig


def backward_memory(batch: int = 160, n: int = 256, iters: int = 3, figsize=(9.0, 3.2)) -> Figure:
    """Saved memory (MB) and batched matmuls of the autograd and the recomputing backward of
    ``sqrtm_newton_schulz`` for ``batch`` matrices n x n in float32
    (:func:`gsoplib.ops.backward_memory.newton_schulz_backward_cost`)."""
    costs = {name: newton_schulz_backward_cost(batch, n, iters, efficient)
             for name, efficient in (("autograd", False), ("memory_efficient", True))}
    fig = _figure(figsize, left=0.17, right=0.98, bottom=0.17, top=0.84, wspace=0.55)
    am, ac = fig.subplots(1, 2)
    names = list(costs)
    mb = [costs[k].saved_bytes / 1e6 for k in names]
    am.barh(names, mb, color=["tab:blue", "tab:green"])
    for i, v in enumerate(mb):
        am.text(v, i, f" {v:,.0f} MB" if v >= 10 else f" {v:.2f} MB", va="center", fontsize=8)
    am.set_xlim(0, max(mb) * 1.45)
    am.set_xlabel("kept for backward (MB)")
    _title(am, f"batch {batch}, {n} x {n}, N = {iters}: {mb[0] / mb[1]:.0f}x less")
    fwd = [costs[k].forward_matmuls for k in names]
    bwd = [costs[k].backward_matmuls for k in names]
    ac.barh(names, fwd, color="0.6", label="forward")
    ac.barh(names, bwd, left=fwd, color=["tab:blue", "tab:green"], label="backward")
    for i, (f, b) in enumerate(zip(fwd, bwd)):
        ac.text(f + b, i, f" {f} + {b}", va="center", fontsize=8)
    ac.set_xlim(0, (fwd[1] + bwd[1]) * 1.35)
    ac.set_xlabel("batched matmuls per training step")
    ac.legend(fontsize=7, loc="lower right")
    _title(ac, f"+{(fwd[1] + bwd[1]) / (fwd[0] + bwd[0]) - 1:.0%} matmuls")
    return fig


class IterationsAccuracy(NamedTuple):
    """One N of a benchmark table: test top-1 (%) mean and sample std over its seeds."""

    iters: int
    mean: float
    std: float
    runs: tuple[float, ...]
    variant: str


def _without_iters(kwargs: Mapping) -> dict:
    head = {k: v for k, v in kwargs.get("head_kwargs", {}).items() if k != "iters"}
    return {**kwargs, "head_kwargs": head}


def accuracy_by_iterations(results: Mapping, table: str) -> list[IterationsAccuracy]:
    """The rows of ``table`` in a ``benchmarks/compare.py --table`` JSON that differ only in
    iSQRT-COV's N (Newton-Schulz iterations of the coupled step), sorted by N.

    results: the loaded JSON (its ``summary`` list). The family is that of the table's first
    row naming ``iters`` in its ``head_kwargs``: same model, same other arguments; a row of
    that family without ``iters`` runs :class:`~gsoplib.heads.isqrt.ISqrtCovHead`'s default.
    """
    rows = [s for s in results["summary"] if s["table"] == table]
    named = [s for s in rows if "iters" in s["model_kwargs"].get("head_kwargs", {})]
    if not named:
        raise ValueError(f"table {table!r} has no row that sets iters (rows: {len(rows)})")
    family = (named[0]["model"], _without_iters(named[0]["model_kwargs"]))
    default = inspect.signature(ISqrtCovHead).parameters["iters"].default
    out = [
        IterationsAccuracy(s["model_kwargs"].get("head_kwargs", {}).get("iters", default),
                           s["test_top1"], s["test_top1_std"], tuple(s["runs"]), s["variant"])
        for s in rows if (s["model"], _without_iters(s["model_kwargs"])) == family
    ]
    return sorted(out)


def within_one_std_of_best(rows: Sequence[IterationsAccuracy]) -> tuple[int, list[int]]:
    """(N of the best mean, the Ns whose mean is within one standard deviation of it).

    "Within" means best.mean - row.mean <= max(best.std, row.std): a difference no larger than
    the seed-to-seed spread of either arm, which a few seeds cannot tell from noise.
    """
    best = max(rows, key=lambda r: r.mean)
    close = [r.iters for r in rows if best.mean - r.mean <= max(best.std, r.std)]
    return best.iters, close


def reference_rows(
    results: Mapping, table: str, variants: Sequence[str]
) -> list[IterationsAccuracy]:
    """Rows of ``table`` named by their ``variant`` label (a benchmark's other arms: a GAP
    baseline, another head), in the order given, as :class:`IterationsAccuracy` with the N of
    their head (:class:`~gsoplib.heads.isqrt.ISqrtCovHead`'s default when not set; 0 for a
    model without ``head_kwargs``)."""
    default = inspect.signature(ISqrtCovHead).parameters["iters"].default
    by_label = {s["variant"]: s for s in results["summary"] if s["table"] == table}
    missing = [v for v in variants if v not in by_label]
    if missing:
        raise ValueError(f"table {table!r} has no rows {missing}; it has {sorted(by_label)}")
    out = []
    for v in variants:
        s = by_label[v]
        head = s["model_kwargs"].get("head_kwargs")
        iters = 0 if head is None else head.get("iters", default)
        out.append(IterationsAccuracy(iters, s["test_top1"], s["test_top1_std"],
                                      tuple(s["runs"]), s["variant"]))
    return out


def accuracy_against_iterations(
    results: Mapping,
    tables: Sequence[str] = ("isqrt_iters", "isqrt_head"),
    labels: Mapping[str, str] | None = None,
    figsize=(9.0, 3.6),
    references: Mapping[str, Sequence[str]] | None = None,
    extra_references: Mapping[str, Sequence[IterationsAccuracy]] | None = None,
    subtitles: Mapping[str, str] | None = None,
) -> Figure:
    """Test top-1 (%) against N, one panel per table of a ``benchmarks/compare.py --table`` JSON
    (:func:`accuracy_by_iterations`): mean and sample std over seeds (error bars), every seed a
    dot just right of its N, N on a log scale. Each title names the best N and those within one
    std of it (:func:`within_one_std_of_best`) under the table's name or its entry in ``labels``,
    and any reference band (below) whose mean lies above every N's mean;
    the x label names the seeds and the epochs (from the JSON's per-run ``rows``).

    references: per table, variant labels of other rows of it to draw beside the N curve
    (:func:`reference_rows`): a row without a Newton-Schulz head (GAP) as a dashed line at its
    mean and a band of +- std across all N, a row with one as a diamond with its error bar
    drawn just left of its N (the legend says so). extra_references: per table, rows from
    elsewhere (another JSON, as :class:`IterationsAccuracy`; ``iters`` 0 for GAP) drawn the
    same way after those of ``references``. subtitles: per table, a text that replaces the
    title's second line (e.g. what the notebook's significance tests resolved).
    """
    fig = _figure(figsize, left=0.08, right=0.98, bottom=0.16, top=0.86, wspace=0.22)
    axes = np.atleast_1d(fig.subplots(1, len(tables), sharey=True))
    shown: list[float] = []
    for ax, table in zip(axes, tables):
        rows = accuracy_by_iterations(results, table)
        its = [r.iters for r in rows]
        ax.errorbar(its, [r.mean for r in rows], yerr=[r.std for r in rows], marker="o",
                    ls="none", capsize=3, color="tab:blue", label="mean ± std over seeds")
        for r in rows:
            ax.plot([r.iters * 1.08] * len(r.runs), r.runs, ".", color="0.4", ms=5)
        ax.plot([], [], ".", color="0.4", label="one seed (right of its N)")
        others = reference_rows(results, table, (references or {}).get(table, ()))
        others += list((extra_references or {}).get(table, ()))
        for r, color in zip(others, ("tab:green", "tab:purple", "tab:brown", "tab:olive")):
            text = f"{r.variant}: {r.mean:.2f} ± {r.std:.2f}"
            if r.iters == 0:
                ax.axhspan(r.mean - r.std, r.mean + r.std, color=color, alpha=0.15)
                ax.axhline(r.mean, color=color, ls="--", lw=1, label=f"{text} (band: ± std)")
            else:
                ax.errorbar([r.iters / 1.05], [r.mean], yerr=[r.std], marker="D", ms=5,
                            ls="none", capsize=3, color=color,
                            label=f"{text} (N = {r.iters}, drawn just left of it)")
        ax.set_xscale("log")
        ax.set_xticks(its, [str(n) for n in its])
        ax.minorticks_off()
        seeds = sorted({len(r.runs) for r in rows})
        epochs = sorted({run["epochs"] for run in results.get("rows", [])
                         if run.get("group") == table and "epochs" in run})
        ax.set_xlabel(f"Newton-Schulz iterations N ({'/'.join(map(str, seeds))} seeds, "
                      f"{'/'.join(map(str, epochs)) or '?'} epochs)")
        best, close = within_one_std_of_best(rows)
        above = [r.variant.split(" (")[-1].rstrip(")") for r in others
                 if r.iters == 0 and r.mean > max(x.mean for x in rows)]
        second = (f"best mean at N = {best}; within 1 std: N = {', '.join(map(str, close))}"
                  + "".join(f"; {a} mean above every N" for a in above))
        _title(ax, f"{(labels or {}).get(table, table)}\n{(subtitles or {}).get(table, second)}",
               fontsize=8)
        ax.legend(fontsize=6.5 if others else 7, loc="lower right")
        shown += [v for r in rows + others for v in (r.mean - r.std, r.mean + r.std, *r.runs)]
    low, high = min(shown), max(shown)
    axes[0].set_ylim(low - 0.45 * (high - low), high + 0.05 * (high - low))  # legends below
    axes[0].set_ylabel("test top-1 (%)")
    return fig


def head_spectrum_summary(covs: torch.Tensor, iters: int = 3, log_eps: float = 1e-6) -> dict:
    """The numbers behind :func:`head_spectrum`, per covariance of the (B, C, C) ``covs``, in
    float64, eigenvalues sorted from the largest down (index 0 is the largest):

    ``eigenvalues`` (B, C); ``quantiles`` (3, C): their 10th, 50th and 90th percentiles over the
    B covariances at each index; ``zeros`` (B,): how many lie at or below
    :data:`gsoplib.root_check.RANK_RTOL` times the largest (numerically zero, as
    :func:`gsoplib.root_check.numerical_rank` counts them); and three maps of every eigenvalue,
    (B, C) each: ``root`` sqrt(lambda) (the exact root, lambda clamped at 0), ``layer``
    sqrt(tr Sigma) y_N(lambda / tr Sigma) (the trace-normalised Newton-Schulz layer with N =
    ``iters``, post-compensated: iSQRT-COV's meta-layer on that eigenvalue) and ``log``
    log(max(lambda, log_eps)) (the matrix logarithm with gsoplib's clamp,
    :func:`gsoplib.ops.normalisations.logm_eigh`).
    """
    lam = torch.linalg.eigvalsh(covs.detach().to(torch.float64)).flip(-1)
    zero = lam <= RANK_RTOL * lam[:, :1]
    positive = lam.clamp(min=0)
    trace = positive.sum(-1, keepdim=True)
    return {
        "eigenvalues": lam,
        "quantiles": torch.quantile(lam, torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64), dim=0),
        "zeros": zero.sum(-1),
        "zero_mask": zero,
        "root": positive.sqrt(),
        "layer": trace.sqrt() * newton_schulz_polynomial(positive / trace, iters),
        "log": lam.clamp(min=log_eps).log(),
        "iters": iters,
    }


def head_spectrum(
    covs: torch.Tensor, iters: int = 3, log_eps: float = 1e-6, figsize=(9.0, 3.6)
) -> Figure:
    """Left: the eigenvalues of the (B, C, C) covariances ``covs`` sorted from the largest
    down, median over the B and its 10-90% band, log y; the numerically zero ones (see
    :func:`head_spectrum_summary`) shaded and drawn at the bottom of the axis. Right: the
    median over the B at each index of sqrt(lambda), of the N = ``iters`` Newton-Schulz layer
    sqrt(tr) y_N(lambda / tr) (left y axis) and of log(max(lambda, log_eps)) (right y axis). The
    title states the zeros per image and what the log and the root make of them.
    """
    s = head_spectrum_summary(covs, iters, log_eps)
    lam, zeros = s["eigenvalues"], s["zeros"]
    count = lam.shape[-1]
    index = np.arange(1, count + 1)
    fig = _figure(figsize, left=0.08, right=0.92, bottom=0.14, top=0.84, wspace=0.3)
    ax, am = fig.subplots(1, 2)
    floor = float(lam[~s["zero_mask"]].min()) / 100
    q10, q50, q90 = (q.clamp(min=floor).numpy() for q in s["quantiles"])
    first_zero = count - int(zeros.min())
    per = (f"{int(zeros.min())}" if zeros.min() == zeros.max()
           else f"{int(zeros.min())}-{int(zeros.max())}")
    for a in (ax, am):
        a.axvspan(first_zero + 0.5, count + 0.5, color="0.85",
                  label=f"numerically zero: {per} per covariance")
        a.set_xlim(0.5, count + 0.5)
        a.set_xlabel("eigenvalue index, largest first")
    ax.fill_between(index, q10, q90, color="tab:blue", alpha=0.25, label="10-90% of covariances")
    ax.semilogy(index, q50, color="tab:blue", label=f"median of {lam.shape[0]:,}")
    ax.set_ylim(floor / 2, float(s["quantiles"][2].max()) * 3)
    ax.set_ylabel(r"eigenvalue $\lambda$ of $\Sigma$ (zeros drawn at the bottom)")
    ax.legend(fontsize=7, loc="lower left")
    _title(ax, f"{lam.shape[0]:,} covariances of {count} channels: largest eigenvalue\n"
               f"{float(lam[:, 0].median()):.1f} (median), {per} zero per covariance", fontsize=8)
    root, layer, log = (s[k].median(0).values.numpy() for k in ("root", "layer", "log"))
    am.plot(index, root, color="k", lw=2, label=r"$\sqrt{\lambda}$ (exact root)")
    am.plot(index, layer, color="tab:blue",
            label=rf"layer, N = {iters}: $\sqrt{{tr}}\,y_{iters}(\lambda/tr)$")
    am.set_ylabel("root and layer (median)")
    am.set_ylim(bottom=-0.05 * float(root.max()))
    al = am.twinx()
    al.plot(index, log, color="tab:red", ls="--",
            label=rf"$\log\max(\lambda, {log_eps:g})$ (right axis)")
    al.set_ylabel(r"$\log \lambda$ (median)", color="tab:red")
    al.tick_params(axis="y", colors="tab:red")
    handles = am.get_legend_handles_labels()[0] + al.get_legend_handles_labels()[0]
    am.legend(handles, [h.get_label() for h in handles], fontsize=6.5, loc="upper right")
    zero_logs = s["log"][s["zero_mask"]]
    _title(am, f"the {per} zero eigenvalues: the log sends them to {float(zero_logs.median()):.1f} "
               f"(median),\nthe root to at most {float(s['root'][s['zero_mask']].max()):.2g}",
           fontsize=8)
    return fig


_TIMED = ("eigh", "NS autograd", "NS memory-efficient")


def sqrtm_timing_summary(results: Mapping) -> dict:
    """Forward+backward milliseconds per (batch B, size n) and method, from a
    ``benchmarks/sqrtm.py`` JSON (its ``rows``; the covariance rows are left out):
    {(B, n): {"eigh": ms, "NS autograd": ms, "NS memory-efficient": ms}}, plus the Newton-Schulz
    iteration count under the key ``"iters"``."""
    out: dict = {}
    iters = {r["iters"] for r in results["rows"] if r.get("method") in _TIMED}
    for r in results["rows"]:
        if r.get("method") in _TIMED:
            out.setdefault((r["B"], r["n"]), {})[r["method"]] = r["fwd_bwd_ms"]
    if len(iters) != 1:
        raise ValueError(f"expected one Newton-Schulz iteration count, found {sorted(iters)}")
    return {"iters": iters.pop(), **out}


def sqrtm_timings(results: Mapping, figsize=(9.0, 3.4), second: Mapping | None = None) -> Figure:
    """Forward+backward time (ms, log scale) against n of eigh, Newton-Schulz with autograd
    and the memory-efficient Newton-Schulz (:func:`sqrtm_timing_summary`), one panel per batch
    size B; each title says at which n eigh is the faster of eigh and autograd Newton-Schulz,
    and by how much at the largest n; the x label names the machine from the JSON.

    ``second``: optional, another ``benchmarks/sqrtm.py`` JSON of the same (B, n) grid at another
    iteration count N (e.g. N = 3 beside N = 5). Its three curves are drawn hollow and dotted,
    its own eigh included (the two runs' eigh times show how far one run's timings move), and
    each title then gives, for each N, the n where eigh is faster and Newton-Schulz's time over
    the same run's eigh time at the largest n."""
    s = sqrtm_timing_summary(results)
    iters = s.pop("iters")
    runs = [(iters, s, "-", None)]
    if second is not None:
        s2 = sqrtm_timing_summary(second)
        iters2 = s2.pop("iters")
        if iters2 == iters or set(s2) != set(s):
            raise ValueError("second: expected the same (B, n) grid at another iteration count")
        runs.append((iters2, s2, ":", "none"))
    batches = sorted({b for b, _ in s})
    fig = _figure(figsize, left=0.08, right=0.98, bottom=0.2, top=0.84, wspace=0.22)
    axes = np.atleast_1d(fig.subplots(1, len(batches), sharey=True))
    machine = results.get("machine", {})
    where = (f"{machine.get('device', '?')}: {machine.get('cpu', '')}, "
             f"{machine.get('torch_threads', '?')} threads").replace(": ,", ",")
    styles = {"eigh": ("k", "s", "-"), "NS autograd": ("tab:blue", "o", "-"),
              "NS memory-efficient": ("tab:green", "^", "--")}
    for ax, b in zip(axes, batches):
        sizes = sorted(n for bb, n in s if bb == b)
        verdicts = []
        for n_iters, timing, dotted, face in runs:
            for method, (color, marker, ls) in styles.items():
                label = method if method == "eigh" else f"{method}, N = {n_iters}"
                if second is not None and method == "eigh":
                    label = f"eigh (run with N = {n_iters})"
                ax.loglog(sizes, [timing[b, n][method] for n in sizes], color=color, marker=marker,
                          ls=ls if face is None else dotted, mfc=face, label=label)
            faster = [n for n in sizes if timing[b, n]["eigh"] < timing[b, n]["NS autograd"]]
            ratio = timing[b, sizes[-1]]["NS autograd"] / timing[b, sizes[-1]]["eigh"]
            verdicts.append((n_iters, faster, ratio))
        ax.set_xticks(sizes, [str(n) for n in sizes])
        ax.minorticks_off()
        ax.set_xlabel(f"matrix size n ({where})", fontsize=8)
        ax.tick_params(labelleft=True)
        last = sizes[-1]
        if second is None:
            (_, faster, ratio), = verdicts
            title = (f"B = {b}: eigh faster at n = {', '.join(map(str, faster)) or 'none'}; "
                     f"n = {last}: NS {ratio:.1f}x eigh's time")
        else:
            title = f"B = {b}, NS time / eigh's at n = {last}: " + ", ".join(
                f"N = {k} {r:.1f}x" for k, _, r in verdicts) + "\neigh faster at n = " + "; ".join(
                f"{', '.join(map(str, f)) or 'none'} (N = {k})" for k, f, _ in verdicts)
        _title(ax, title, fontsize=8)
        ax.legend(fontsize=6 if second is not None else 7, loc="upper left")
    axes[0].set_ylabel("forward + backward (ms, median)")
    return fig


def null_gradient_panels(**kwargs) -> Figure:
    """:func:`gsoplib.viz.lessons_sqrtm_gradient.null_gradient_figure` (same keyword arguments:
    the gradient entry (0, 0) of the root of Sigma + eps I against eps, left, and of Newton-Schulz
    against N, right, at Sigma = diag(0, 1, 2) with G = E_00; eps matched to N by
    eps = tr Sigma / (4 (9/4)^N)) with each marked N's label moved off the curves: below left of
    its diamond on the left panel, whose curve eps^(-1/2) falls to the right, and below right of
    its point on the right panel, whose curve (3/2)^N / sqrt(tr Sigma) rises; the left y range
    is widened downwards so that the lowest label stays inside the axes; the right x axis (N)
    has whole-number ticks only."""
    fig = null_gradient_figure(**kwargs)
    left, right = fig.axes[:2]
    for ann in left.texts:
        ann.set_position((-5, -5))
        ann.set_horizontalalignment("right")
        ann.set_verticalalignment("top")
    for ann in right.texts:
        ann.set_position((8, -4))
        ann.set_verticalalignment("top")
    for ax in (left, right):
        low, high = ax.get_ylim()
        ax.set_ylim(low / 2.5, high)
    right.xaxis.set_major_locator(MaxNLocator(integer=True))   # N counts iterations
    return fig


__all__ = [
    "ERROR_LABEL",
    "PAPER_SCALES",
    "IterationsAccuracy",
    "accuracy_against_iterations",
    "accuracy_by_iterations",
    "backward_memory",
    "cobweb",
    "convergence_by_spectrum",
    "eigenvalue_maps",
    "head_spectrum",
    "head_spectrum_summary",
    "newton_instability",
    "ns_explorer",
    "ns_explorer_summary",
    "null_gradient_panels",
    "reference_rows",
    "sqrtm_timing_summary",
    "sqrtm_timings",
    "within_one_std_of_best",
]
