"""Figures of the gate benchmarks' committed results (GM-SOP Fig. 2 and 3, the saturation table),
drawn from their JSON rows, and the state a row's gate is in. Notebook 04 reads them.

    saturation_figure(rows)      the gate variants of ``benchmarks/gate.py --table saturation``:
                                 effective components against the logit span, and top-1
    saturation_overview(rows)    the same table with each variant's state (mixes, one component,
                                 tied at 1/K) in colour and close variants labelled together
    gate_status(row)             that state, from a row's effective components and weights
    fig3_figure(rows)            GM-SOP's Fig. 3 in small (``benchmarks/fig3.py``): top-1 and
                                 training speed over K, a line per N (``seeds=``: every seed;
                                 ``speed_seeds=True``: every seed's speed too)
    balance_figure(rows)         GM-SOP's Fig. 2 on a whole network (``benchmarks/balance.py``):
                                 training usage and test share per component, per gate form
    mixture_timing_figure(rows)  ``benchmarks/mixture.py``'s times over Ave-SOP's as bars, with
                                 the ratio the count of CM evaluations predicts

The toy mixture's figures (runs trained in seconds) are in :mod:`gsoplib.viz.lessons_mixture`.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from ..heads.gate_analysis import ONE_COMPONENT, TIE_TOLERANCE
from ..toy_mixture import BUSY_FRACTION
from ._axes import _figure, _title
from .images import CHOSEN, OTHER


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


def _seed_range(seeds: Sequence[dict], n: int, k: int, mean: float,
                key: str = "test_top1") -> tuple[float, float]:
    """(mean - lowest, highest - mean) of ``key`` (test top-1) over the seeds of cell (n, k)."""
    accs = [r[key] for r in seeds if r["N"] == n and r["K"] == k]
    if not accs:
        raise ValueError(f"fig3_figure: no seed rows for N = {n}, K = {k}")
    return mean - min(accs), max(accs) - mean


def fig3_figure(
    rows: Sequence[dict],
    *,
    title: str = "",
    figsize=(11.0, 3.6),
    seeds: Sequence[dict] | None = None,
    titles: Sequence[str] | None = None,
    right: str = "effective",
    speed_seeds: bool = False,
) -> Figure:
    """GM-SOP's Fig. 3 in small from ``benchmarks/fig3.py``'s ``summary`` rows (N, K,
    test_top1, test_top1_std, train_images_per_s, effective_components). Left: test top-1
    against K, a line per N, error bars the std over the seeds. Middle: training images/s.
    Right: effective components per image against K (the diagonal: all K count).

    ``seeds``: the file's per-seed ``rows`` (N, K, test_top1). With them the left panel draws
    every seed as a dot and the error bars span the lowest to the highest seed (an accuracy
    range never passes 100%, where mean + std can), the lines of the N shifted apart along K so
    that no bar hides another. ``titles``: three panel titles that state the findings.

    ``right='largest_weight'``: the right panel draws instead the mean largest kept weight
    max_k omega_k (Eq. 3) against K, with the tie 1/K dashed: effective components near K
    cannot tell a mixing gate from a tied one, the largest weight's distance from 1/K can.

    ``speed_seeds=True`` (needs ``seeds``, whose rows then also hold train_images_per_s): the
    middle panel draws every seed's training speed as a dot and the bar from the slowest to
    the fastest seed, through the summary's median, the lines shifted as on the left, so that
    a difference can be read against the spread of the seeds."""
    if not rows:
        raise ValueError("fig3_figure needs at least one row")
    if right not in ("effective", "largest_weight"):
        raise ValueError(
            f"fig3_figure: right must be 'effective' or 'largest_weight', got {right!r}")
    if titles is not None and len(titles) != 3:
        raise ValueError(f"fig3_figure needs 3 titles, got {len(titles)}")
    if speed_seeds and seeds is None:
        raise ValueError("fig3_figure: speed_seeds=True needs the per-seed rows (seeds=)")
    fig = _figure(figsize, left=0.06, right=0.98, bottom=0.15, top=0.80, wspace=0.32)
    axes = fig.subplots(1, 3)
    ks = sorted({r["K"] for r in rows})
    ns = sorted({r["N"] for r in rows})
    for i, n in enumerate(ns):
        line = sorted((r for r in rows if r["N"] == n), key=lambda r: r["K"])
        kk = [r["K"] for r in line]
        means = [r["test_top1"] for r in line]
        if seeds is None:
            axes[0].errorbar(kk, means, yerr=[r["test_top1_std"] for r in line], marker="o",
                             capsize=3, label=f"N = {n}")
        else:
            shift = 2 ** (0.08 * (i - (len(ns) - 1) / 2))    # apart on the log2 K axis
            spans = np.array([_seed_range(seeds, n, r["K"], r["test_top1"]) for r in line]).T
            bars = axes[0].errorbar([k * shift for k in kk], means, yerr=spans, marker="o",
                                    capsize=3, label=f"N = {n}")
            dots = [(r["K"] * shift, r["test_top1"]) for r in seeds if r["N"] == n]
            axes[0].scatter(*zip(*dots), s=16, color=bars.lines[0].get_color(), alpha=0.6,
                            edgecolors="black", linewidths=0.4, zorder=3)
        speeds = [r["train_images_per_s"] for r in line]
        if speed_seeds:
            spans = np.array([_seed_range(seeds, n, r["K"], r["train_images_per_s"],
                                          key="train_images_per_s") for r in line]).T
            bars = axes[1].errorbar([k * shift for k in kk], speeds, yerr=spans, marker="o",
                                    capsize=3, label=f"N = {n}")
            dots = [(r["K"] * shift, r["train_images_per_s"]) for r in seeds if r["N"] == n]
            axes[1].scatter(*zip(*dots), s=16, color=bars.lines[0].get_color(), alpha=0.6,
                            edgecolors="black", linewidths=0.4, zorder=3)
        else:
            axes[1].plot(kk, speeds, marker="o", label=f"N = {n}")
        axes[2].plot(kk, [r["effective_components" if right == "effective" else "largest_weight"]
                          for r in line], marker="o", label=f"N = {n}")
    if right == "effective":
        axes[2].plot(ks, ks, color="black", lw=0.8, ls="--", label="all K count")
        third = "effective components per image"
    else:
        axes[2].plot(ks, [1 / k for k in ks], color="black", lw=0.8, ls="--",
                     label="a tie: every kept weight 1/K")
        axes[2].set_ylim(0.0, 1.05)
        third = "largest kept weight (mean over images)"
    texts = titles or ("accuracy over K", "training speed over K", "how many of the K count")
    accuracy = ("test top-1 % (mean +- std)" if seeds is None
                else "test top-1 % (mean; bar: seed range)")
    for ax, ylabel, text in (
        (axes[0], accuracy, texts[0]),
        (axes[1], "training images / s" + (" (median; bar: seed range)" if speed_seeds
                                            else ""), texts[1]),
        (axes[2], third, texts[2]),
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


def gate_status(row: dict, k: int = 4) -> str:
    """What a gate's diagnostics row says it does, with :mod:`gsoplib.heads.gate_analysis`'s
    thresholds: 'one component' when fewer than ONE_COMPONENT of its K count (inverse Simpson
    index 1 / sum_k omega_k^2, averaged over images), 'tied at 1/K' when its kept weights are on
    average within TIE_TOLERANCE / K of 1/K (the weights say nothing), else 'mixes'."""
    if k >= 2 and row["effective_components"] < ONE_COMPONENT:
        return "one component"
    if k >= 2 and row.get("weight_deviation", 1.0) < TIE_TOLERANCE / k:
        return "tied at 1/K"
    return "mixes"


STATUS_COLOURS = {"mixes": CHOSEN, "one component": OTHER, "tied at 1/K": "tab:blue"}


def _clusters(points: Sequence[tuple[float, float]], dx: float, dy: float) -> list[list[int]]:
    """Single-linkage groups of (log x, y) points closer than (dx, dy) in both coordinates."""
    group = list(range(len(points)))
    for i, (xi, yi) in enumerate(points):
        for j, (xj, yj) in enumerate(points[:i]):
            if abs(xi - xj) < dx and abs(yi - yj) < dy and group[i] != group[j]:
                old = group[i]
                group = [group[j] if g == old else g for g in group]
    return [[i for i, g in enumerate(group) if g == label] for label in dict.fromkeys(group)]


def saturation_overview(
    rows: Sequence[dict],
    *,
    k: int = 4,
    titles: Sequence[str] | None = None,
    figsize=(11.0, 4.4),
    accuracy: str = "bars",
    crowd: int | None = None,
) -> Figure:
    """The gate variants of ``benchmarks/gate.py --table saturation`` (its ``summary`` rows:
    variant, logit_span, effective_components, weight_deviation, test_top1, test_top1_std),
    coloured by :func:`gate_status`. Left: effective components per image (of K; the inverse
    Simpson index of the kept weights omega_k of GM-SOP Eq. 3) against the median span of the
    N clean logits, log scale; variants whose points lie within a fifth of a decade and 0.3
    components of each other share one label, so no name covers another. Right: test top-1
    per variant, mean and std over the seeds, the y range holding every error bar.
    ``titles``: the two panel titles, to state the findings. ``accuracy='points'`` draws the
    right panel as points with error bars instead of bars (a bar's length from a y axis that
    does not start at 0 exaggerates the gaps; a point's position does not). ``crowd``: a
    group of more than this many close variants is labelled by a letter (A, B, ...) and its
    names go to the legend as "A: name, name, ..."; None (default) writes every group's names
    next to its points."""
    if not rows:
        raise ValueError("saturation_overview needs at least one row")
    if accuracy not in ("bars", "points"):
        raise ValueError(
            f"saturation_overview: accuracy must be 'bars' or 'points', got {accuracy!r}")
    if titles is not None and len(titles) != 2:
        raise ValueError(f"saturation_overview needs 2 titles, got {len(titles)}")
    fig = _figure(figsize, left=0.07, right=0.98, bottom=0.37, top=0.88, wspace=0.3)
    axes = fig.subplots(1, 2)
    status = [gate_status(r, k) for r in rows]
    spans = [r["logit_span"] for r in rows]
    effective = [r["effective_components"] for r in rows]
    for name, colour in STATUS_COLOURS.items():
        chosen = [i for i, st in enumerate(status) if st == name]
        if chosen:
            axes[0].scatter([spans[i] for i in chosen], [effective[i] for i in chosen],
                            color=colour, zorder=3, label=name)
    axes[0].set_xscale("log")
    low, high = math.log10(min(spans)), math.log10(max(spans))
    axes[0].set_xlim(10 ** (low - 0.3), 10 ** (high + 0.3))
    axes[0].set_ylim(0.6, k + 0.5)
    letters = iter("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    for group in _clusters([(math.log10(x), y) for x, y in zip(spans, effective)], 0.35, 0.3):
        x = 10 ** (sum(math.log10(spans[i]) for i in group) / len(group))
        y = sum(effective[i] for i in group) / len(group)
        where = (math.log10(x) - low) / max(high - low, 1e-9)
        below = y > (k + 1) / 2
        names = ", ".join(rows[i]["variant"] for i in group)
        if crowd is not None and len(group) > crowd:
            letter = next(letters)
            axes[0].plot([], [], ls="none", marker=f"${letter}$", color="black",
                         label=textwrap.fill(f"{letter}: {names}", 45))
            names = letter
        axes[0].annotate(
            textwrap.fill(names, 30), (x, y),
            fontsize=6.5, xytext=(0, -8 if below else 8), textcoords="offset points",
            va="top" if below else "bottom",
            ha="left" if where < 0.25 else "right" if where > 0.75 else "center",
        )
    axes[0].axhline(k, color="black", lw=0.8, ls="--", label=f"K = {k}: every kept weight 1/K")
    axes[0].axhline(ONE_COMPONENT, color=OTHER, lw=0.8, ls=":",
                    label=f"below {ONE_COMPONENT}: one component")
    axes[0].set_xlabel("median span of the N clean logits (max - min), log scale")
    axes[0].set_ylabel(f"effective components per image (of K = {k})")
    axes[0].legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)
    x = np.arange(len(rows))
    top1 = np.array([r["test_top1"] for r in rows])
    std = np.array([r.get("test_top1_std", 0.0) for r in rows])
    if accuracy == "bars":
        axes[1].bar(x, top1, yerr=std, capsize=2, color=[STATUS_COLOURS[st] for st in status])
    else:
        for i, st in enumerate(status):
            axes[1].errorbar(x[i], top1[i], yerr=std[i], marker="o", capsize=3,
                             color=STATUS_COLOURS[st])
        axes[1].grid(axis="y", lw=0.4, alpha=0.5)
    axes[1].set_xticks(x, [r["variant"] for r in rows], rotation=60, ha="right", fontsize=7)
    axes[1].set_ylim(max(0.0, float((top1 - std).min()) - 3), 100)
    axes[1].set_ylabel("test top-1 % (mean +- std over seeds)")
    texts = titles or ("the wider the logits, the fewer of the K chosen count",
                       "accuracy of each variant, coloured by its state")
    for ax, text in zip(axes, texts):
        _title(ax, text)
    return fig


def balance_figure(
    rows: Sequence[dict],
    *,
    num_components: int = 16,
    k: int = 4,
    titles: Sequence[str] | None = None,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """GM-SOP's Fig. 2 (Left) measured on a whole network, from ``benchmarks/balance.py``'s
    per-seed ``rows`` (gate, alpha, train_usage_sorted, image_share_sorted). A column per gate
    form. Top: each component's share of the last epoch's training choices, components sorted
    by use (the load, a count; the balance loss alpha CV(I)^2 of Eq. 4 sees the importance
    I_n = sum_s omega_sn, and evens the counts with it; even: 1/N). Bottom: the share of
    test images choosing it in eval (even: K/N). Bars: the mean over the seeds of the
    components of the same rank, one colour per alpha; error bars: lowest to highest seed. A
    dotted line at a quarter of the even share: busy above, starved below (the threshold of
    ``benchmarks/balance.py`` and of gate_diagnostics). ``titles``: one per panel, top row
    first, to state the findings."""
    if not rows:
        raise ValueError("balance_figure needs at least one row")
    gates = list(dict.fromkeys(r["gate"] for r in rows))
    if titles is not None and len(titles) != 2 * len(gates):
        raise ValueError(f"balance_figure needs {2 * len(gates)} titles, got {len(titles)}")
    alphas = sorted(dict.fromkeys(r["alpha"] for r in rows))
    n = num_components
    fig = _figure(figsize or (4.8 * len(gates), 5.8), left=0.08, right=0.98, bottom=0.09,
                  top=0.92, wspace=0.22, hspace=0.5)
    axes = fig.subplots(2, len(gates), squeeze=False)
    panels = (("train_usage_sorted", "% of training choices", 100 / n, "training, last epoch"),
              ("image_share_sorted", "% of test images", 100 * k / n, "evaluation, test set"))
    width = 0.8 / len(alphas)
    for col, gate in enumerate(gates):
        for (key, ylabel, even, when), ax in zip(panels, axes[:, col]):
            for j, alpha in enumerate(alphas):
                runs = [r[key] for r in rows if r["gate"] == gate and r["alpha"] == alpha]
                if not runs:
                    continue
                shares = 100 * np.array(runs)
                mean = shares.mean(0)
                spread = np.stack([mean - shares.min(0), shares.max(0) - mean])
                ax.bar(np.arange(n) + (j - (len(alphas) - 1) / 2) * width, mean, width=width,
                       yerr=spread, capsize=1.5,
                       label=f"alpha = {alpha:g} ({len(runs)} seeds; "
                             "error bars: lowest to highest seed)")
            ax.axhline(even, color="0.4", lw=0.8, ls="--", label="even share")
            ax.axhline(even * BUSY_FRACTION, color="0.4", lw=0.8, ls=":",
                       label="a quarter of it: busy above, starved below")
            ax.set_ylabel(ylabel)
            ax.set_ylim(bottom=0)
            ax.set_xticks(range(0, n, 3))
            ax.legend(fontsize=7)
            _title(ax, f"gate '{gate}', GM-GAP-{n}-{k}: {when}")
        axes[1, col].set_xlabel("component, by rank of use")
    for ax, text in zip(axes.flat, titles or ()):
        _title(ax, text)
    return fig



def mixture_timing_figure(
    rows: Sequence[dict],
    *,
    predicted: float | None = None,
    titles: Sequence[str] | None = None,
    figsize: tuple[float, float] = (11.0, 3.2),
) -> Figure:
    """``benchmarks/mixture.py``'s timings as bars: each method's forward + backward time over
    Ave-SOP-N's (``x_vs_ave``), one panel per level ('head', then 'network'), the line 1 (the
    average) and, on the head panel, ``predicted``: the ratio the count of CM evaluations gives
    ((K + 1)/N for dispatch with a gating branch shaped like a CM, GM-SOP Sec. 2.3).

    Args:
        rows: dicts with 'level', 'method', 'fwd_bwd_ms' and 'x_vs_ave', as in
            ``benchmarks/results/mixture-cpu.json``.
        predicted: the head-level prediction to mark (None: no mark).
        titles: one per level; default: the level.
    Returns:
        the Figure (two axes).
    """
    levels = list(dict.fromkeys(r["level"] for r in rows))
    if titles is not None and len(titles) != len(levels):
        raise ValueError(f"mixture_timing_figure needs {len(levels)} titles, got {len(titles)}")
    fig = _figure(figsize, left=0.2, right=0.98, bottom=0.17, top=0.82, wspace=0.75)
    axes = fig.subplots(1, len(levels), squeeze=False)[0]
    for col, (ax, level) in enumerate(zip(axes, levels)):
        mine = [r for r in rows if r["level"] == level]
        y = np.arange(len(mine))[::-1]
        ratios = [r["x_vs_ave"] for r in mine]
        colours = [CHOSEN if "dispatch" in r["method"] else OTHER for r in mine]
        ax.barh(y, ratios, color=colours, height=0.6)
        for yi, r in zip(y, mine):
            ax.text(r["x_vs_ave"] + 0.02, yi, f"{r['x_vs_ave']:.2f}x ({r['fwd_bwd_ms']:.0f} ms)",
                    va="center", fontsize=7)
        ax.set_yticks(y, [r["method"] for r in mine], fontsize=7)
        ax.axvline(1.0, color="black", lw=0.8, ls=":", label="Ave-SOP (1x)")
        if predicted is not None and level == "head":
            ax.axvline(predicted, color="tab:red", lw=1.0, ls="--",
                       label=f"the count of CM evaluations: {predicted:.2f}")
        ax.set_xlim(0, 1.35 * max(ratios))
        ax.set_xlabel("forward + backward time / Ave-SOP's")
        ax.legend(fontsize=7, loc="lower right")
        _title(ax, titles[col] if titles else level)
    return fig


__all__ = [
    "STATUS_COLOURS",
    "balance_figure",
    "fig3_figure",
    "gate_status",
    "mixture_timing_figure",
    "saturation_figure",
    "saturation_overview",
]
