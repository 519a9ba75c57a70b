"""Figures from tensors and files: Newton-Schulz error per iteration (iSQRT-COV), training
curves from a metrics JSONL, and step-by-step curves of several runs."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from ..ops import newton_schulz_errors
from ._axes import _figure, _integer_ticks, _title
from .images import CHOSEN, OTHER


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



def step_curves(runs: Sequence[Mapping], *, title: str = "", figsize=(12.0, 3.6)) -> Figure:
    """Several runs step by step, a line per run: the training loss and top-1 of each logged
    interval (``steps.jsonl``: step, fractional epoch, lr, train_loss, train_top1) with the
    per-epoch test top-1 as points, and the learning rate, warm-up included, against the epoch.

    runs: mappings with ``model`` (the legend), ``steps`` (the step rows) and optionally
    ``epochs`` (metrics rows with ``epoch`` and ``test_top1``) and ``warmup_steps``.
    """
    if not runs:
        raise ValueError("step_curves needs at least one run")
    fig = _figure(figsize, left=0.06, right=0.98, bottom=0.16, top=0.84, wspace=0.28)
    loss_ax, top1_ax, lr_ax = fig.subplots(1, 3)
    for run in runs:
        steps = run["steps"]
        if not steps:
            raise ValueError(f"run {run.get('model')!r} has no step rows")
        t = [r["epoch"] for r in steps]
        (line,) = loss_ax.plot(t, [r["train_loss"] for r in steps], lw=1.2, label=run["model"])
        top1_ax.plot(t, [r["train_top1"] for r in steps], lw=1.0, color=line.get_color(),
                     alpha=0.6)
        tests = [(r["epoch"], r["test_top1"]) for r in run.get("epochs", ())]
        if tests:
            top1_ax.plot(*zip(*tests), "o", color=line.get_color(), ms=5,
                         label=f"{run['model']}: test")
        lr_ax.plot(t, [r["lr"] for r in steps], color=line.get_color(), lw=1.2,
                   label=run["model"])
    warm = [run["warmup_steps"] / run["steps"][-1]["step"] * run["steps"][-1]["epoch"]
            for run in runs if run.get("warmup_steps")]
    for ax, label in ((loss_ax, "training loss (incl. the balance loss)"),
                      (top1_ax, "top-1: training (lines), test (points)"),
                      (lr_ax, "learning rate")):
        if warm:
            ax.axvspan(0, max(warm), color=OTHER, alpha=0.15, lw=0)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    loss_ax.legend(fontsize=7)
    top1_ax.legend(fontsize=6, loc="lower right")
    _title(lr_ax, "shaded: the warm-up" if warm else "learning rate")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
