"""Figures of notebook 04's toy mixture (GM-SOP Fig. 2 in seconds, :mod:`gsoplib.toy_mixture`)
and the function its widget calls.

    toy_usage_figure(run)        one run: training usage, test share, usage CV over the steps
    fig2_figure(runs)            several runs (alpha = 0 and 100) side by side: Fig. 2 in small
    toy_mixture_view(data, ...)  train one toy and draw it: the alpha / N / K widget's callback
    saturation_figure(rows)      the gate variants of ``benchmarks/gate.py --table saturation``:
                                 effective components against the logit span, and top-1
    fig3_figure(rows)            GM-SOP's Fig. 3 in small (``benchmarks/fig3.py``): top-1 and
                                 training speed over K, a line per N
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..toy_mixture import BUSY_FRACTION, ToyData, ToyMixtureRun, train_toy_mixture
from ._axes import _figure, _title
from .images import CHOSEN, OTHER


def _label(run: ToyMixtureRun) -> str:
    gate = "standardised" if run.standardise else "raw"
    text = (f"alpha = {run.alpha:g} (GM-GAP-{run.num_components}-{run.k}, {run.gate} gate, "
            f"{gate} gate input)")
    if run.k == 1:
        text += ("\nK = 1: every weight is 1, so neither the task loss nor the balance loss "
                 "gives the gate a gradient; alpha changes nothing")
    elif run.k == run.num_components:
        text += "\nK = N: every component is chosen for every image; nothing to balance"
    return text


def _usage_bars(ax, run: ToyMixtureRun) -> None:
    n = run.num_components
    usage = np.sort(np.asarray(run.usage))[::-1]
    busy = usage >= BUSY_FRACTION / n
    ax.bar(np.arange(n), usage, color=[CHOSEN if b else OTHER for b in busy])
    ax.axhline(1 / n, color="black", lw=0.8, ls="--", label="even share 1/N")
    ax.xaxis.set_major_locator(MaxNLocator(8, integer=True))
    ax.set_xlabel("component, most used first")
    ax.set_ylabel("share of training choices")
    ax.legend(fontsize=7, loc="upper right")
    _title(ax, f"alpha = {run.alpha:g}: CV {run.usage_cv:.2f}, {run.busy} of {n} busy")


def toy_usage_figure(run: ToyMixtureRun, *, figsize=(12.0, 3.4)) -> Figure:
    """One toy run. Left: each component's share of the last training steps' choices, sorted
    (busy ones, at least BUSY_FRACTION / N, highlighted). Middle: the share of test images
    choosing each component in eval (no noise), sorted, against the even K / N. Right: the
    usage CV over the training steps."""
    fig = _figure(figsize, left=0.06, right=0.98, bottom=0.17, top=0.74, wspace=0.3)
    axes = fig.subplots(1, 3)
    _usage_bars(axes[0], run)
    n, k = run.num_components, run.k
    share = np.sort(np.asarray(run.test.image_share))[::-1]
    axes[1].bar(np.arange(n), share, color=CHOSEN)
    axes[1].axhline(k / n, color="black", lw=0.8, ls="--", label="even share K/N")
    axes[1].xaxis.set_major_locator(MaxNLocator(8, integer=True))
    axes[1].set_xlabel("component, most used first")
    axes[1].set_ylabel("share of test images")
    axes[1].legend(fontsize=7, loc="upper right")
    _title(axes[1], f"eval: least-used {share[-1]:.1%}, {run.test.effective_components:.2f} "
                    f"effective of K = {k}, top-1 {run.test_top1:.1%}")
    steps, cvs = zip(*run.cv_history)
    axes[2].plot(steps, cvs, color=CHOSEN)
    axes[2].set_xlabel("training step")
    axes[2].set_ylabel("usage CV (last steps)")
    axes[2].set_ylim(bottom=0)
    _title(axes[2], "unevenness of the usage while training")
    fig.suptitle(_label(run), fontsize=10)
    return fig


def fig2_figure(runs: Sequence[ToyMixtureRun], *, figsize=(11.0, 3.4)) -> Figure:
    """GM-SOP's Fig. 2 in small: the sorted training usage of each run side by side, and every
    run's usage CV over the steps in one panel."""
    if not runs:
        raise ValueError("fig2_figure needs at least one run")
    fig = _figure(figsize, left=0.06, right=0.98, bottom=0.17, top=0.84, wspace=0.3)
    axes = np.atleast_1d(fig.subplots(1, len(runs) + 1))
    for ax, run in zip(axes, runs):
        _usage_bars(ax, run)
    for run in runs:
        steps, cvs = zip(*run.cv_history)
        axes[-1].plot(steps, cvs, label=f"alpha = {run.alpha:g}")
    axes[-1].set_xlabel("training step")
    axes[-1].set_ylabel("usage CV (last steps)")
    axes[-1].set_ylim(bottom=0)
    axes[-1].legend(fontsize=7)
    _title(axes[-1], "usage CV while training")
    return fig


def toy_mixture_view(
    data: ToyData,
    alpha: float = 0.0,
    num_components: int = 16,
    k: int = 4,
    standardise: bool = False,
    steps: int = 300,
    gate: str = "live",
) -> tuple[ToyMixtureRun | None, Figure | str]:
    """The widget's callback: train the toy (:func:`~gsoplib.toy_mixture.train_toy_mixture`)
    with the gate of form ``gate`` and draw it (:func:`toy_usage_figure`; its title says when
    K = 1 or K = N leaves alpha nothing to do). A K larger than N gives (None, a sentence
    saying so) instead of an error, so a slider moved past N reads as a message."""
    if k > num_components:
        return None, f"K = {k} is more than N = {num_components}: choose K <= N."
    run = train_toy_mixture(data, num_components, k, alpha, standardise=standardise, steps=steps,
                            gate=gate)
    return run, toy_usage_figure(run)


def saturation_figure(rows: Sequence[dict], *, k: int = 4, figsize=(11.0, 3.8)) -> Figure:
    """The gate variants of ``benchmarks/gate.py --table saturation`` (its ``summary`` rows:
    variant, logit_span, effective_components, largest_weight, test_top1, test_top1_std).
    Left: effective components per image (of K) against the median logit span, log scale, a
    point per variant. Right: test top-1 per variant, mean and std over the seeds."""
    if not rows:
        raise ValueError("saturation_figure needs at least one row")
    fig = _figure(figsize, left=0.07, right=0.98, bottom=0.36, top=0.86, wspace=0.32)
    axes = fig.subplots(1, 2)
    for row in rows:
        one = row["effective_components"] < 1.5
        axes[0].scatter(row["logit_span"], row["effective_components"],
                        color=OTHER if one else CHOSEN, zorder=3)
        axes[0].annotate(row["variant"], (row["logit_span"], row["effective_components"]),
                         fontsize=6, xytext=(3, 3), textcoords="offset points")
    axes[0].set_xscale("log")
    axes[0].axhline(k, color="black", lw=0.8, ls="--", label=f"K = {k}: the kept weights tie")
    axes[0].axhline(1.5, color=OTHER, lw=0.8, ls=":", label="below 1.5: one component")
    axes[0].set_ylim(0.8, k + 0.3)
    axes[0].set_xlabel("median span of the N clean logits (max - min), log scale")
    axes[0].set_ylabel("effective components per image")
    axes[0].legend(fontsize=7, loc="center right")
    _title(axes[0], "the wider the logits, the fewer of the K chosen count")
    x = np.arange(len(rows))
    top1 = [r["test_top1"] for r in rows]
    axes[1].bar(x, top1, yerr=[r.get("test_top1_std", 0.0) for r in rows], capsize=2,
                color=[OTHER if r["effective_components"] < 1.5 else CHOSEN for r in rows])
    axes[1].set_xticks(x, [r["variant"] for r in rows], rotation=60, ha="right", fontsize=7)
    axes[1].set_ylim(max(0.0, min(top1) - 10), 100)
    axes[1].set_ylabel("test top-1 % (mean +- std over seeds)")
    _title(axes[1], "accuracy of each variant (grey: collapsed to one component)")
    return fig


def fig3_figure(rows: Sequence[dict], *, title: str = "", figsize=(11.0, 3.6)) -> Figure:
    """GM-SOP's Fig. 3 in small from ``benchmarks/fig3.py``'s ``summary`` rows (N, K,
    test_top1, test_top1_std, train_images_per_s, effective_components). Left: test top-1
    against K, a line per N, error bars the std over the seeds. Middle: training images/s.
    Right: effective components per image against K (the diagonal: all K count)."""
    if not rows:
        raise ValueError("fig3_figure needs at least one row")
    fig = _figure(figsize, left=0.06, right=0.98, bottom=0.15, top=0.80, wspace=0.32)
    axes = fig.subplots(1, 3)
    ks = sorted({r["K"] for r in rows})
    for n in sorted({r["N"] for r in rows}):
        line = sorted((r for r in rows if r["N"] == n), key=lambda r: r["K"])
        kk = [r["K"] for r in line]
        axes[0].errorbar(kk, [r["test_top1"] for r in line],
                         yerr=[r["test_top1_std"] for r in line], marker="o", capsize=3,
                         label=f"N = {n}")
        axes[1].plot(kk, [r["train_images_per_s"] for r in line], marker="o", label=f"N = {n}")
        axes[2].plot(kk, [r["effective_components"] for r in line], marker="o",
                     label=f"N = {n}")
    axes[2].plot(ks, ks, color="black", lw=0.8, ls="--", label="all K count")
    for ax, ylabel, text in (
        (axes[0], "test top-1 % (mean +- std)", "accuracy over K"),
        (axes[1], "training images / s", "training speed over K"),
        (axes[2], "effective components per image", "how many of the K count"),
    ):
        ax.set_xscale("log", base=2)
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.set_xlabel("K, components chosen per image")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=7)
        _title(ax, text)
    # an accuracy cannot pass 100%, whatever a wide spread's error bar says
    axes[0].set_ylim(top=min(axes[0].get_ylim()[1], 100.5))
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


__all__ = [
    "fig2_figure",
    "fig3_figure",
    "saturation_figure",
    "toy_mixture_view",
    "toy_usage_figure",
]
