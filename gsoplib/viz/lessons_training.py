"""Notebook 05's lesson on the warm-up: a tiny network trained for a few dozen SGD steps on a
fixed set of batches, with and without a linear warm-up of its learning rate, its loss drawn step
by step.

    HEADS                          the poolings the widget offers (the sweep's smallest backbone)
    fixed_batches(num_batches, batch_size)
                                   the second-order set's first images, normalised, in batches
    warmup_run(peak_lr, warmup_steps, head, grad_clip, seed, steps)
                                   one run: the loss and the learning rate at every step
    warmup_figure(run, reference)  loss and learning rate per step, a run against a reference
    warmup_view(peak_lr, warmup_steps, head, grad_clip, seed, steps)
                                   notebook 05's widget callback: the chosen run against the same
                                   run without warm-up, drawn, the finding in the title

and two pieces of notebook 05's section on the bundled checkpoints:

    bundled_figure(rows, test_images)
                                   the bundled checkpoints' test accuracy (%, full axis) per
                                   dataset, or their test errors with binomial standard errors
    PAIR_MISSES, per_image_correct(name, images, labels)
                                   which test images the two bundled second-order models get
                                   wrong, for their paired (McNemar) comparison
    depth_figure(accuracy, chance) linear-probe accuracy of GAP and the covariance against the
                                   depth of an untrained network (notebook 05, section 7)
    fc_input_norm(model, x)        the mean squared norm of what a model's classifier reads
    smoothed_target_entropy(num_classes, smoothing), with_loss_floor(fig, floor)
                                   H(q), the lowest loss under label smoothing, and its line on
                                   gsoplib.viz.step_curves' loss panel

The optimiser is the ``fast`` recipe's (notebook 05 builds its step from scratch and checks it
against ``torch.optim.SGD``): with momentum mu = 0.9, Nesterov, weight decay lambda = 5e-4 and the
gradient's norm clipped at ``grad_clip`` (0: not clipped), step i does

    g <- clip(grad L(w)) + lambda w,   b <- mu b + g,   w <- w - eta_i (g + mu b),

at the rate eta_i = peak_lr * s_i, where s is :func:`gsoplib.train.lr_factor` read in steps (the
trainer's rule with an epoch of S = ``num_batches`` steps): a linear warm-up over the first W =
``warmup_steps`` steps, then a cosine to 0 at step T = ``steps``,

    s_i = min(1, i / W) * (1 + cos(pi * clamp((i - W) / (T - W), 0, 1))) / 2.

The loss is the recipe's cross-entropy with label smoothing 0.1 on the 8 classes of the
second-order set: ln 8 = 2.08 for a network that knows nothing, 0.47 at best (the entropy of
the smoothed target, notebook 05's curves of real runs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from ..data import load_dataset, normalize
from ..models import create_model
from ..pretrained import load_pretrained
from ..train import lr_factor
from ._axes import _figure, _title

#: The widget's poolings on the sweep's smallest backbone (``benchmarks/compare.py``'s
#: "1 stage x 8": a CIFAR stem and one basic block of 8 channels): GAP, or the covariance of the
#: 8 channels, its Newton-Schulz root (3 iterations) and an fc on its 36 entries, with the
#: features as the paper's layer gives them (x1) or scaled by 4 as in the small zoo (x4).
HEADS = {
    "GAP": {},
    "iSQRT-COV x1": {"blocks": "√", "head_kwargs": {"rd_channels": None, "iters": 3}},
    "iSQRT-COV x4": {"blocks": "√", "head_kwargs": {"rd_channels": None, "iters": 3,
                                                    "feature_scale": 4.0}},
}
BACKBONE = {"block": "basic", "layers": (1,), "widths": (8,), "stem": "cifar", "stem_width": 8,
            "blocks": "-"}
# The fast recipe's optimiser (gsoplib.train.recipes.RECIPES["fast"]).
MOMENTUM, WEIGHT_DECAY, LABEL_SMOOTHING = 0.9, 5e-4, 0.1


@lru_cache(maxsize=2)
def fixed_batches(num_batches: int = 8, batch_size: int = 32) -> tuple[tuple, tuple, int]:
    """The first ``num_batches * batch_size`` images of the second-order set's training stream
    (generated, seed 0), normalised, as ``num_batches`` batches: images (batch_size, 3, 32, 32)
    and labels (batch_size,), and the number of classes (8). The same batches in every run."""
    split = load_dataset("second_order", train=True, num_train=num_batches * batch_size)
    images = normalize(split.images, split.info.mean, split.info.std)
    return images.split(batch_size), split.labels.split(batch_size), split.info.num_classes


@dataclass(frozen=True)
class WarmupRun:
    """One run of :func:`warmup_run`. losses: the training loss of each step, on that step's
    batch before the update (T values, fewer if a loss was not finite: the run stops there);
    lrs: the rate each step used, eta_i = peak_lr * s_i (T values); grad_norms: the gradient's
    norm ||grad L(w)||_2 over all parameters at each step, before clipping (one per loss), so
    ``grad_norms[i] > grad_clip`` says where the clip engaged."""

    head: str
    peak_lr: float
    warmup_steps: int
    grad_clip: float
    seed: int
    losses: tuple[float, ...]
    lrs: tuple[float, ...]
    num_batches: int
    grad_norms: tuple[float, ...] = ()

    @property
    def diverged(self) -> bool:
        """True when a loss was not finite (NaN or inf)."""
        return len(self.losses) < len(self.lrs)

    @property
    def highest(self) -> float:
        """The largest loss of the run (inf when it diverged)."""
        return math.inf if self.diverged else max(self.losses)

    @property
    def final(self) -> float:
        """The mean loss of the last pass over the batches (inf when it diverged)."""
        return math.inf if self.diverged else float(np.mean(self.losses[-self.num_batches:]))


def warmup_run(peak_lr: float = 0.2, warmup_steps: int = 16, head: str = "iSQRT-COV x4",
               grad_clip: float = 5.0, seed: int = 0, steps: int = 64) -> WarmupRun:
    """Train ``head`` on the sweep's smallest backbone for ``steps`` SGD steps, cycling through
    :func:`fixed_batches` in order (8 batches of 32: images (32, 3, 32, 32), labels (32,)), at
    eta_i = peak_lr * s_i (module docstring); ``seed`` sets the initial weights. One torch
    thread, so a run repeats exactly on one machine: about a second on a CPU core. Runs are
    cached by their settings, so the widget's reference run is not trained twice."""
    if head not in HEADS:
        raise ValueError(f"unknown head {head!r}; valid: {', '.join(HEADS)}")
    if not 0 <= warmup_steps < steps:
        raise ValueError(f"warmup_steps must be in [0, {steps}), got {warmup_steps}")
    return _run(float(peak_lr), int(warmup_steps), head, float(grad_clip), int(seed), int(steps))


@lru_cache(maxsize=64)
def _run(peak_lr: float, warmup_steps: int, head: str, grad_clip: float, seed: int,
         steps: int) -> WarmupRun:
    images, labels, classes = fixed_batches()
    S = len(images)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(seed)
        model = create_model("small_vanilla", num_classes=classes, in_chans=3,
                             **{**BACKBONE, **HEADS[head]}).train()
        optimizer = torch.optim.SGD(model.parameters(), lr=peak_lr, momentum=MOMENTUM,
                                    weight_decay=WEIGHT_DECAY, nesterov=True)
        losses, lrs, norms = [], [], []
        for i in range(steps):
            lr = peak_lr * lr_factor(i / S, steps / S, "cosine", warmup_epochs=warmup_steps / S)
            optimizer.param_groups[0]["lr"] = lr
            lrs.append(lr)
            loss = F.cross_entropy(model(images[i % S]), labels[i % S],
                                   label_smoothing=LABEL_SMOOTHING)
            if not torch.isfinite(loss):
                lrs += [peak_lr * lr_factor(j / S, steps / S, "cosine",
                                            warmup_epochs=warmup_steps / S)
                        for j in range(i + 1, steps)]
                break
            losses.append(loss.item())
            optimizer.zero_grad()
            loss.backward()
            # max_norm inf measures the norm and leaves the gradient as it is (a factor of 1)
            norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(),
                                                              grad_clip or math.inf)))
            optimizer.step()
    finally:
        torch.set_num_threads(threads)
    return WarmupRun(head, peak_lr, warmup_steps, grad_clip, seed, tuple(losses), tuple(lrs), S,
                     tuple(norms))


def _summary(run: WarmupRun) -> str:
    """The run's finding in words: where it diverged, or its highest and final loss, the final
    one flagged when it is within 5% of ln 8 (a network that learned nothing)."""
    if run.diverged:
        return f"diverged (loss not finite at step {len(run.losses)})"
    nothing = " (ln 8: nothing learned)" if run.final > 0.95 * math.log(8) else ""
    return f"loss peaks at {run.highest:.3g}, ends at {run.final:.2f}{nothing}"


def warmup_figure(run: WarmupRun, reference: WarmupRun | None = None,
                  figsize: tuple[float, float] = (11.0, 3.8)) -> Figure:
    """Left: the training loss per step of ``run`` (and of ``reference``, grey), log scale, with
    ln K (a network that knows nothing) dotted; right: the learning rate per step of both. The
    left title states each run's highest and final loss (or where it diverged)."""
    fig = _figure(figsize, left=0.07, right=0.98, bottom=0.14, top=0.8, wspace=0.25)
    loss_ax, lr_ax = fig.subplots(1, 2, width_ratios=[1.5, 1])
    shown = [(reference, "tab:grey"), (run, "tab:red")] if reference is not None else [
        (run, "tab:red")]
    for r, colour in shown:
        label = f"warm-up {r.warmup_steps} steps" if r.warmup_steps else "no warm-up"
        loss_ax.plot(range(len(r.losses)), r.losses, color=colour, lw=1.2, label=label)
        lr_ax.plot(range(len(r.lrs)), r.lrs, color=colour, lw=1.2, label=label)
    loss_ax.axhline(math.log(8), color="black", lw=0.8, ls=":", label="ln 8: knows nothing")
    spread = max(r.highest for r, _ in shown) / min(min(r.losses, default=1.0) for r, _ in shown)
    log = spread > 20   # a log scale only where a spike would flatten the rest of the curve
    if log:
        loss_ax.set_yscale("log")
    loss_ax.set_xlabel(f"SGD step ({run.num_batches} fixed batches of the second-order set, "
                       "in turn)")
    loss_ax.set_ylabel("training loss" + (" (log scale)" if log else ""))
    loss_ax.set_xlim(-1, len(run.lrs))
    loss_ax.legend(fontsize=7, loc="upper right")
    clip = f"clip {run.grad_clip:g}" if run.grad_clip else "no clipping"
    head = f"{run.head}, peak lr {run.peak_lr:g}, {clip}, seed {run.seed}"
    if reference is None:
        title = f"{head}\n{'no warm-up' if not run.warmup_steps else 'warm-up'}: {_summary(run)}"
    else:
        title = (f"{head}\nwarm-up {run.warmup_steps} steps: {_summary(run)}; "
                 f"without: {_summary(reference)}")
    _title(loss_ax, title)
    lr_ax.set_xlabel("SGD step")
    lr_ax.set_ylabel("learning rate")
    lr_ax.legend(fontsize=7, loc="upper right")
    _title(lr_ax, f"linear warm-up to {run.peak_lr:g}, then a cosine to 0")
    return fig


def warmup_view(peak_lr: float = 0.2, warmup_steps: int = 16, head: str = "iSQRT-COV x4",
                grad_clip: float = 5.0, seed: int = 0, steps: int = 64) -> Figure:
    """Notebook 05's widget callback: :func:`warmup_run` at the chosen settings and, when it
    warms up, the same run without warm-up as the reference, drawn by :func:`warmup_figure`."""
    run = warmup_run(peak_lr, warmup_steps, head, grad_clip, seed, steps)
    reference = (warmup_run(peak_lr, 0, head, grad_clip, seed, steps) if warmup_steps else None)
    return warmup_figure(run, reference)


#: The second-order set's test images (indices into its 2,000) that each bundled second-order
#: model classifies wrongly, found by :func:`per_image_correct` on all 2,000 (about 20 s on one
#: CPU thread; ``tests/test_lessons_training.py`` repeats it). With the metadata's error counts
#: (8 and 2) they fix the paired outcomes: notebook 05 re-evaluates only these 9 images.
PAIR_MISSES = {"second_order_small_vanilla": (116, 192, 656, 795, 1053, 1088, 1532, 1795),
               "second_order_small_gsop1": (939, 1088)}


@torch.no_grad()
def per_image_correct(name: str, images: torch.Tensor, labels: torch.Tensor,
                      batch_size: int = 500) -> torch.Tensor:
    """Which images the bundled checkpoint ``name`` classifies correctly, in eval mode, the
    images normalised with the checkpoint's own mean and std: images (S, C, H, W) in [0, 1],
    labels (S,) -> (S,) bool, prediction argmax_k f(x)_k == label."""
    ckpt = load_pretrained(name)
    model = ckpt.model.eval()
    x = normalize(images, ckpt.mean, ckpt.std)
    predicted = torch.cat([model(x[i:i + batch_size]).argmax(1)
                           for i in range(0, len(x), batch_size)])
    return predicted == labels


def bundled_figure(rows: list[dict], test_images: dict[str, int],
                   count_errors: tuple[str, ...] = ("second_order",),
                   figsize: tuple[float, float] = (11.0, 3.4),
                   note: str | None = None) -> Figure:
    """The bundled checkpoints, a panel per dataset, a bar per checkpoint labelled with its
    model and epochs. ``rows``: dicts with "model", "data", "epochs" and "test top-1" (a
    fraction); ``test_images``: the test set's size n per dataset. A dataset of
    ``count_errors`` shows its test errors e = round(n (1 - p)) with the binomial standard
    error sqrt(n p (1 - p)) as bars; any other its test top-1 in % on the whole 0-100 axis,
    each bar's value written on it. Titles state the spread and that unequal budgets, or one
    seed each, rank nothing. ``note`` (optional) is written inside the last error-count panel,
    e.g. the paired test the independent +-1 SE bars do not show."""
    datasets = list(dict.fromkeys(r["data"] for r in rows))
    fig = _figure(figsize, left=0.14, right=0.98, bottom=0.16, top=0.8, wspace=0.55)
    axes = np.atleast_1d(fig.subplots(1, len(datasets), width_ratios=[
        3 if d not in count_errors else 1.6 for d in datasets]))
    for ax, data in zip(axes, datasets):
        chosen = sorted((r for r in rows if r["data"] == data), key=lambda r: r["test top-1"])
        labels = [f"{r['model']} ({r['epochs']} ep.)" for r in chosen]
        spent = sorted({r["epochs"] for r in chosen})
        budget = (f"{spent[0]}-{spent[-1]} epochs, unequal budgets" if len(spent) > 1
                  else f"{spent[0]} epochs, one seed each")
        n = test_images[data]
        if data in count_errors:
            p = np.array([r["test top-1"] for r in chosen])
            errors = np.round(n * (1 - p)).astype(int)
            se = np.sqrt(n * p * (1 - p))
            ax.barh(labels, errors, xerr=se, capsize=4, color="tab:blue")
            for i, e in enumerate(errors):
                ax.text(e + se[i] + 0.3, i, f"{e}", va="center", fontsize=8)
            ax.set_xlim(0, max(errors + se) * 1.4)
            ax.set_xlabel(f"test errors of {n:,} (bar: +-1 binomial SE)")
            each = ", ".join(f"{r['model']} {e}" for r, e in zip(chosen, errors))
            _title(ax, f"{data}: {each} test errors of {n:,}\n{budget}: a hint, no ranking")
            if note:
                ax.text(0.98, 0.96, note, transform=ax.transAxes, ha="right", va="top",
                        fontsize=8, bbox={"facecolor": "white", "edgecolor": "0.7"})
        else:
            top1 = [100 * r["test top-1"] for r in chosen]
            ax.barh(labels, top1, color="tab:blue")
            for i, v in enumerate(top1):
                ax.text(v - 1, i, f"{v:.1f}%", va="center", ha="right", color="white",
                        fontsize=8)
            ax.set_xlim(0, 100)
            ax.set_xlabel(f"test top-1 % ({n:,} test images)")
            _title(ax, f"{data}: {min(top1):.1f}-{max(top1):.1f}% test top-1\n"
                       f"{budget}: no ranking")
        ax.tick_params(axis="y", labelsize=8)
    return fig


__all__ = ["HEADS", "PAIR_MISSES", "WarmupRun", "bundled_figure", "depth_figure", "fc_input_norm",
           "fixed_batches", "per_image_correct", "smoothed_target_entropy", "warmup_figure",
           "warmup_run", "warmup_view", "with_loss_floor"]


def depth_figure(accuracy: dict[str, dict[str, float]], chance: float,
                 figsize: tuple[float, float] = (7.0, 3.4),
                 network: str = "an untrained network") -> Figure:
    """Linear-probe test top-1 (%) against depth: ``accuracy[where][pooling]``, ``where`` in
    order from the input (e.g. the image, the stem, each stage), ``pooling`` "gap" or
    "covariance"; chance (%) dotted. The title states, for each pooling, the first point, its
    highest where that lies in between (naming the depth), and the last, then the chance;
    ``network`` names the network in it."""
    fig = _figure(figsize, left=0.1, right=0.98, bottom=0.2, top=0.82)
    ax = fig.subplots()
    where = list(accuracy)
    for pooling, colour in (("gap", "tab:grey"), ("covariance", "tab:blue")):
        ax.plot(range(len(where)), [accuracy[w][pooling] for w in where], marker="o",
                color=colour, label=pooling)
    ax.axhline(chance, color="black", lw=0.8, ls=":", label=f"chance ({chance:g}%)")
    ax.set_xticks(range(len(where)), [f"after {w}" for w in where], fontsize=7)
    ax.set_ylim(0, 100)
    ax.set_ylabel("probe test top-1 %")
    ax.legend(fontsize=7, loc="upper right")
    def path(pooling: str) -> str:
        top = max(where, key=lambda w: accuracy[w][pooling])
        inner = (f" -> {accuracy[top][pooling]:.0f}% after the {top}"
                 if top not in (where[0], where[-1]) else "")
        name = "GAP" if pooling == "gap" else pooling
        return (f"{name} {accuracy[where[0]][pooling]:.0f}%{inner}"
                f" -> {accuracy[where[-1]][pooling]:.0f}%"
                + (f" after {where[-1]}" if inner else ""))
    _title(ax, f"{network} loses the set with depth: {path('covariance')}; {path('gap')} "
               f"(chance {chance:g}%)")
    return fig


@torch.no_grad()
def fc_input_norm(model: torch.nn.Module, x: torch.Tensor) -> float:
    """The mean over the batch of ||f||_2^2, f the input of ``model.head.fc`` (B, D) for images
    x (B, C, H, W), in the model's current mode. For a linear classifier z = W f + b an SGD step
    dW = -eta g f^T, db = -eta g moves the logits of f by -eta (||f||^2 + 1) g: ||f||^2 + 1
    scales the classifier's effective rate."""
    seen = []
    hook = model.head.fc.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    try:
        model(x)
    finally:
        hook.remove()
    return float(seen[0].square().sum(1).mean())


def smoothed_target_entropy(num_classes: int, smoothing: float) -> float:
    """H(q) = -sum_k q_k ln q_k for the smoothed target q = (1 - eps) 1_y + eps / K (K =
    ``num_classes``, eps = ``smoothing``): the cross-entropy against q is H(q) + KL(q || p) >= H(q),
    so no loss under label smoothing lies below it (0.467 for K = 8, eps = 0.1)."""
    if num_classes < 2 or not 0.0 < smoothing < 1.0:
        raise ValueError("need num_classes >= 2 and 0 < smoothing < 1, "
                         f"got {num_classes}, {smoothing}")
    on, off = 1.0 - smoothing + smoothing / num_classes, smoothing / num_classes
    return -(on * math.log(on) + (num_classes - 1) * off * math.log(off))


def with_loss_floor(fig: Figure, floor: float,
                    label: str = "H(q): floor under label smoothing") -> Figure:
    """Draws a horizontal dashed line at ``floor`` on the first panel of ``fig`` (the loss panel
    of :func:`gsoplib.viz.step_curves`), labelled in its legend; returns ``fig``."""
    ax = fig.axes[0]
    ax.axhline(floor, color="black", lw=0.9, ls="--", label=f"{label} ({floor:.3f})")
    ax.legend(fontsize=7)
    return fig
