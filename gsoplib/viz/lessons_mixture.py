"""Figures of notebook 04's toy mixtures (GM-SOP Fig. 2 in seconds, :mod:`gsoplib.toy_mixture`)
and the functions its widgets call.

    toy_usage_figure(run)        one run: training usage, test share, count CV over the steps
    fig2_figure(runs)            several runs (alpha = 0 and 100) side by side: Fig. 2 in small
    toy_mixture_view(data, ...)  train one toy and draw it: (the run, its figure)
    toy_view(data, ...)          the same, the figure only: the alpha / N / K widget's callback
    importance_cv(run)           the CV of the weights' sums, what the balance loss evens
    train_branch_toy(data, ...)  the toy with a gating branch that learns (the release's
                                 component-shaped one): does the balance loss teach it to shrink f?
    branch_collapse_figure(runs) mean |f| and the kept weights' distance from 1/K over the steps
    router_curves(growth, s)     section 5's experiment: a linear and a cosine router as W_g
                                 grows, effective components and largest kept weight
    router_view(growth, s)       the same drawn, with the cosine bound: the router widget's callback
    load_check_figure(...)       Shazeer's P(s, n) by formula against a simulation, +-2 SE
    class_choice_shares(...)     share of each class's images whose chosen set holds each component
    class_choice_figure(...)     the same as a classes x components heatmap

The benchmarks' committed results (Fig. 3, the saturation table, the balance run) are drawn by
:mod:`gsoplib.viz.gate_benchmarks`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..heads import GatedMixtureHead, NoisyTopKGate
from ..heads.gate import GateDiagnostics, diagnose_gate
from ..toy_mixture import (
    BUSY_FRACTION,
    ToyData,
    ToyMixtureRun,
    train_step,
    train_toy_mixture,
    usage_cv,
)
from ._axes import _figure, _title
from .images import CHOSEN, OTHER


def importance_cv(run: ToyMixtureRun) -> float:
    """CV (population std / mean) of the importance I_n = sum_s omega_sn over the training
    choices ``run.usage`` counts (the last ``window`` steps): what the balance loss
    alpha CV(I)^2 of GM-SOP Eq. 4 evens, where ``run.usage_cv`` is the CV of the choice counts
    (the load). ``run.train.cv2`` is Eq. 4's CV(I)^2 with the sample variance; this rescales it
    by (N - 1) / N so that the two CVs read alike (both 0 when even)."""
    n = run.num_components
    return float((run.train.cv2 * (n - 1) / n) ** 0.5)


def _label(run: ToyMixtureRun) -> str:
    gate = "standardised" if run.standardise else "raw"
    text = (f"alpha = {run.alpha:g} (GM-GAP-{run.num_components}-{run.k}, {run.gate} gate, "
            f"{gate} gate input)")
    if run.k == 1:
        text += ("\nK = 1: every weight is 1, so neither the task loss nor the balance loss "
                 "gives the gate a gradient; alpha changes nothing")
    elif run.k == run.num_components:
        text += ("\nK = N: every component is chosen for every image, so the choice counts are "
                 "even; the balance loss still evens the weights (importance CV "
                 f"{importance_cv(run):.2f})")
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
    _title(ax, f"alpha = {run.alpha:g}: count CV {run.usage_cv:.2f} (importance CV "
               f"{importance_cv(run):.2f}), {run.busy} of {n} busy")


def toy_usage_figure(run: ToyMixtureRun, *, figsize=(12.0, 3.4)) -> Figure:
    """One toy run. Left: each component's share of the last training steps' choices, sorted
    (busy ones, at least BUSY_FRACTION / N, highlighted), titled with the CV of these counts and
    of the importance (:func:`importance_cv`). Middle: the share of test images
    choosing each component in eval (no noise), sorted, against the even K / N. Right: the
    CV of the choice counts over the training steps."""
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
    axes[2].set_ylabel("CV of the choice counts\n(over the last 50 steps)")
    axes[2].set_ylim(bottom=0)
    _title(axes[2], "unevenness of the choice counts while training")
    fig.suptitle(_label(run), fontsize=10)
    return fig


def fig2_figure(
    runs: Sequence[ToyMixtureRun], *, figsize=(11.0, 3.4), titles: Sequence[str] | None = None
) -> Figure:
    """GM-SOP's Fig. 2 in small: the sorted training usage of each run side by side, and every
    run's CV of the choice counts over the steps in one panel. ``titles``: one per panel
    (len(runs) + 1), to state what each shows; by default the runs' numbers."""
    if not runs:
        raise ValueError("fig2_figure needs at least one run")
    if titles is not None and len(titles) != len(runs) + 1:
        raise ValueError(f"fig2_figure needs {len(runs) + 1} titles, got {len(titles)}")
    fig = _figure(figsize, left=0.06, right=0.98, bottom=0.17, top=0.84, wspace=0.3)
    axes = np.atleast_1d(fig.subplots(1, len(runs) + 1))
    for ax, run in zip(axes, runs):
        _usage_bars(ax, run)
    for run in runs:
        steps, cvs = zip(*run.cv_history)
        axes[-1].plot(steps, cvs, label=f"alpha = {run.alpha:g}")
    axes[-1].set_xlabel("training step")
    axes[-1].set_ylabel("CV of the choice counts\n(over the last 50 steps)")
    axes[-1].set_ylim(bottom=0)
    axes[-1].legend(fontsize=7)
    _title(axes[-1], "count CV while training")
    for ax, text in zip(axes, titles or ()):
        _title(ax, text)
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



def toy_view(
    data: ToyData,
    alpha: float = 0.0,
    num_components: int = 16,
    k: int = 4,
    standardise: bool = False,
    gate: str = "live",
) -> Figure | str:
    """The toy widget's callback: :func:`toy_mixture_view` with its defaults (300 steps), the
    figure only (or the sentence when K > N). Trains a GM-GAP-``num_components``-``k`` head on
    the toy's features with the balance loss alpha CV(importance)^2 (GM-SOP Eq. 4)."""
    return toy_mixture_view(data, alpha, num_components, k, standardise, gate=gate)[1]

@dataclass
class BranchToyRun:
    """What :func:`train_branch_toy` measured.

    history: (step, mean |f|, mean |omega_k - 1/K|) every ``every`` steps, read from that
    training step's own forward pass: f (B, D) is the gating branch's output (the gate's input
    of GM-SOP Eq. 2), omega_k (B, K) the kept weights of Eq. 3. train_cv: the CV
    (:func:`~gsoplib.toy_mixture.usage_cv`, population std / mean) of the counts of the last
    ``window`` steps' training choices (the load; the balance loss of Eq. 4 sees the sum of
    the weights, the importance, and evens the counts with it). test: the gate's diagnostics on
    the test features in eval; test_top1: the head's accuracy on them (a fraction).
    """

    gate: str
    alpha: float
    num_components: int
    k: int
    history: list[tuple[int, float, float]]
    train_cv: float
    test: GateDiagnostics
    test_top1: float
    seconds: float = field(default=0.0, compare=False)

    @property
    def label(self) -> str:
        return f"{self.gate}, alpha = {self.alpha:g}"

    def summary(self) -> str:
        """One line: mean |f| first and last, the kept weights' distance from 1/K at the end,
        the CV of the training choice counts, and the eval choice."""
        (_, f0, _), (_, f1, dev) = self.history[0], self.history[-1]
        return (
            f"{self.label:20s} mean |f| {f0:.3f} -> {f1:.4f}, mean |omega - 1/K| {dev:.4f}, "
            f"training count CV {self.train_cv:.3f}; eval: most common set "
            f"{self.test.top_set_share:.0%} of images, top-1 {self.test_top1:.1%}"
        )


def train_branch_toy(
    data: ToyData,
    alpha: float,
    gate: str = "release",
    num_components: int = 8,
    k: int = 4,
    *,
    steps: int = 600,
    batch_size: int = 128,
    lr: float = 1e-2,
    window: int = 50,
    every: int = 25,
    seed: int = 0,
) -> BranchToyRun:
    """The toy mixture of :mod:`gsoplib.toy_mixture` with a gating branch that can learn.

    The toy's own head reads f = the mean of the fixed features, which nothing can shrink. Here
    the gate reads the release's branch (GM-SOP Sec. 2.3, :class:`~gsoplib.heads.GateBranch`
    ``'component'``): a 1x1 conv + BN + ReLU + mean of width 32, as a GAP component, so the
    balance loss alpha * CV(I)^2 (Eq. 4) can change f itself. GM-GAP-N-K of width-32 GAP
    components, no dropout, cross-entropy + the balance loss, Adam at ``lr`` on ``steps``
    batches of ``batch_size`` drawn with ``seed`` (the same for every run). Deterministic on one
    thread for a given seed; about half a second per hundred steps on one CPU thread.

    Args:
        data: :func:`~gsoplib.toy_mixture.toy_data` (features (S, dim, 1, 1)).
        alpha: the balance loss's weight. gate: the gate's form ('release', 'live', 'mixing').
        num_components, k: N and K.

    Returns:
        :class:`BranchToyRun`.
    """
    if not 1 <= window <= steps:
        raise ValueError(f"window must be between 1 and steps={steps}, got {window}")
    start = time.perf_counter()
    torch.manual_seed(seed)
    head = GatedMixtureHead(
        data.dim, component="gap", num_components=num_components, k=k,
        num_classes=len(data.classes), gate=gate, gate_branch="component", gap_dim=32,
        alpha=alpha, dropout=0.0,
    )
    seen: dict = {}
    hooks = [head.gate_branch.register_forward_hook(lambda m, a, out: seen.update(f=out)),
             head.gate.register_forward_hook(lambda m, a, out: seen.update(gate=out))]
    optimiser = torch.optim.Adam(head.parameters(), lr=lr)
    batches = torch.Generator().manual_seed(seed)
    history, chosen = [], []
    head.train()
    for step in range(1, steps + 1):
        train_step(head, optimiser, data, batch_size, batches)
        chosen = (chosen + [seen["gate"].indices.detach()])[-window:]
        if step % every == 0 or step == 1:
            deviation = (seen["gate"].top_weights.detach() - 1 / k).abs().mean()
            history.append((step, float(seen["f"].detach().abs().mean()), float(deviation)))
    for hook in hooks:
        hook.remove()
    counts = torch.cat(chosen).flatten().bincount(minlength=num_components).double()
    test = diagnose_gate(head, data.test_features, data.test_labels)
    with torch.no_grad():
        head.eval()
        top1 = float((head(data.test_features).argmax(1) == data.test_labels).double().mean())
    return BranchToyRun(gate, alpha, num_components, k, history, usage_cv(counts / counts.sum()),
                        test, top1, time.perf_counter() - start)


def branch_collapse_figure(
    runs: Sequence[BranchToyRun], *, title: str = "", figsize=(11.0, 3.6)
) -> Figure:
    """:func:`train_branch_toy` runs over the training steps, a line each. Left (log scale): the
    mean |f| of the gating branch's output (the gate's input, GM-SOP Eq. 2). Right: the mean
    distance of the kept weights omega_k (Eq. 3) from the tie 1/K (0: every kept weight 1/K)."""
    if not runs:
        raise ValueError("branch_collapse_figure needs at least one run")
    fig = _figure(figsize, left=0.08, right=0.98, bottom=0.15, top=0.80 if title else 0.88,
                  wspace=0.3)
    axes = fig.subplots(1, 2)
    for run in runs:
        steps, f_mean, deviation = zip(*run.history)
        axes[0].plot(steps, f_mean, label=run.label)
        axes[1].plot(steps, deviation, label=run.label)
    for ax, ylabel, text in (
        (axes[0], "mean |f| (gating feature, per entry)", "the gate's input, log scale"),
        (axes[1], "mean |omega_k - 1/K| of the kept weights",
         "how far the kept weights are from a tie"),
    ):
        ax.set_xlabel("training step")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=7)
        _title(ax, text)
    axes[0].set_yscale("log")
    axes[1].set_ylim(bottom=0)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


#: The W_g growth factors :func:`router_view` sweeps: 1 to 100, evenly on a log scale.
ROUTER_GROWTH = tuple(float(g) for g in np.geomspace(1.0, 100.0, 21))


def cosine_bound(s: float, k: int) -> float:
    """The largest weight a softmax over K kept cosine logits in [-s, s] can give one
    component, e^(2s) / (e^(2s) + K - 1): its logit s, the other K - 1 at -s."""
    return 1.0 / (1.0 + (k - 1) * float(np.exp(-2.0 * s)))


def router_curves(
    growth: Sequence[float],
    s: float = 2.0,
    *,
    k: int = 4,
    num_experts: int = 8,
    in_features: int = 10,
    samples: int = 512,
    seed: int = 0,
) -> dict[str, dict[str, np.ndarray]]:
    """Notebook 04's section 5 experiment: what growing router weights do to the kept weights.

    ``torch.manual_seed(seed)``, then ``samples`` gating features f ~ N(0, I) (samples,
    in_features), then a gate ``NoisyTopKGate(form='mixing', input_norm='none')`` with cosine
    scale s (its W_g drawn as the gate draws it) and a linear one (``form='live'``); both read
    W_g = g * W_g0 for every growth factor g, in eval (clean logits, GM-SOP Eq. 2 without the
    noise). The linear router's logits W_g f grow with g; the cosine router's s cos(f, w_n) do
    not. For each router and each g: ``effective`` (len(growth),) the mean over images of
    1 / sum_k omega_k^2 over the K kept weights (Eq. 3), ``largest`` (len(growth),) the mean
    largest kept weight, and ``per_image`` (len(growth), samples) each image's largest kept
    weight."""
    torch.manual_seed(seed)
    f = torch.randn(samples, in_features)
    cosine = NoisyTopKGate(in_features, num_experts=num_experts, k=k, form="mixing",
                           input_norm="none", logit_scale=s).eval()
    linear = NoisyTopKGate(in_features, num_experts=num_experts, k=k, form="live",
                           input_norm="none").eval()
    base = cosine.w_gate.detach().clone()
    curves = {name: {"effective": [], "largest": [], "per_image": []}
              for name in ("linear", "cosine")}
    with torch.no_grad():
        for g in growth:
            for name, gate in (("linear", linear), ("cosine", cosine)):
                gate.w_gate.copy_(g * base)
                kept = gate(f).top_weights.double()
                curves[name]["effective"].append((1.0 / kept.square().sum(1)).mean().item())
                curves[name]["largest"].append(kept.max(1).values.mean().item())
                curves[name]["per_image"].append(kept.max(1).values.numpy())
    return {name: {key: np.asarray(v) for key, v in c.items()} for name, c in curves.items()}


def router_view(growth: float = 10.0, s: float = 2.0) -> Figure:
    """The router widget's callback: :func:`router_curves` over :data:`ROUTER_GROWTH` and at
    ``growth`` (K = 4 of N = 8, 512 images), recomputed for the cosine scale s. Left: effective
    components per image against the growth of W_g (log scale). Middle: the mean largest kept
    weight, with the cosine bound e^(2s) / (e^(2s) + K - 1) (:func:`cosine_bound`). Right: the
    histogram over the images of the largest kept weight at ``growth``. The titles give the
    numbers at ``growth``."""
    k = 4
    sweep = sorted(set(ROUTER_GROWTH) | {float(growth)})
    curves = router_curves(sweep, s, k=k)
    at = sweep.index(float(growth))
    bound = cosine_bound(s, k)
    colours = {"linear": OTHER, "cosine": CHOSEN}
    fig = _figure((11.0, 3.6), left=0.06, right=0.98, bottom=0.15, top=0.80, wspace=0.32)
    axes = fig.subplots(1, 3)
    for name, c in curves.items():
        label = "linear W_g f" if name == "linear" else f"cosine, s = {s:g}"
        axes[0].plot(sweep, c["effective"], color=colours[name], label=label)
        axes[1].plot(sweep, c["largest"], color=colours[name], label=label)
        axes[2].hist(c["per_image"][at], bins=np.linspace(1 / k, 1.0, 31), color=colours[name],
                     alpha=0.6, label=label)
    for ax in axes[:2]:
        ax.set_xscale("log")
        ax.axvline(growth, color="black", lw=0.8, ls=":")
        ax.set_xlabel("growth factor of W_g (log scale)")
    axes[0].axhline(k, color="black", lw=0.8, ls="--", label=f"K = {k}: a tie")
    axes[0].axhline(1.5, color=OTHER, lw=0.8, ls=":", label="below 1.5: one component")
    axes[0].set_ylim(0.8, k + 0.2)
    axes[0].set_ylabel(f"effective components (of K = {k})")
    axes[1].axhline(bound, color=CHOSEN, lw=0.8, ls="--", label=f"cosine bound {bound:.3f}")
    axes[1].set_ylim(0.0, 1.05)
    axes[1].set_ylabel("largest kept weight (mean over images)")
    axes[2].axvline(bound, color=CHOSEN, lw=0.8, ls="--", label=f"cosine bound {bound:.3f}")
    axes[2].set_xlabel("largest kept weight of an image")
    axes[2].set_ylabel("images")
    for ax in axes:
        ax.legend(fontsize=7)
    lin, cos = curves["linear"], curves["cosine"]
    flat = np.ptp(cos["effective"]) < 1e-4
    _title(axes[0], f"W_g x {growth:g}: {lin['effective'][at]:.2f} of {k} count (linear),\n"
                    f"{cos['effective'][at]:.2f} (cosine{', at every growth' if flat else ''})")
    _title(axes[1], f"the cosine router (s = {s:g}) stays below {bound:.3f};\n"
                    f"the linear one reaches {lin['largest'][-1]:.2f} at W_g x 100")
    _title(axes[2], f"W_g x {growth:g}: largest weight per image\n"
                    f"(linear mean {lin['largest'][at]:.2f}, cosine {cos['largest'][at]:.2f})")
    return fig


def timing_verdict(ratios: Sequence[float], expected: float) -> str:
    """Notebook 04's section 7 reading of a time ratio a / b measured in several rounds (each
    round times both heads side by side) against the ratio a count of CM evaluations predicts.
    ``ratios``: (R,) one ratio per round. Resolved, and on which side, only when every round
    lies on one side of ``expected``; else, or when the rounds spread (max - min) more than
    their median lies from ``expected``, "not resolved" (the load of the machine moves the
    rounds more than the prediction is off)."""
    ratios = np.asarray(ratios, dtype=float)
    if ratios.size == 0:
        raise ValueError("timing_verdict needs at least one ratio")
    spread, off = float(np.ptp(ratios)), float(np.median(ratios)) - expected
    if spread > abs(off) or (ratios.min() <= expected <= ratios.max()):
        return (f"not resolved: the rounds spread {spread:.2f}, more than their median's "
                f"{abs(off):.2f} from the {expected:.2f} predicted")
    side = "above" if off > 0 else "below"
    return f"resolved: all rounds {side} the {expected:.2f} predicted (spread {spread:.2f})"


def load_check_figure(
    formula: np.ndarray, simulated: np.ndarray, se: np.ndarray, *, title: str = ""
) -> Figure:
    """Shazeer et al.'s P(s, n) (the probability that expert n stays in sample s's top K when
    only its own noise is redrawn, the load loss's smooth count) by the formula against a
    simulation, one point per (s, n). Left: simulated against formula with +-2 SE bars
    (SE = sqrt(P (1 - P) / draws)) and the diagonal. Right: (simulated - formula) / SE per
    pair, with +-2 marked: a wrong formula shows as points far outside, seed noise inside."""
    formula, simulated, se = (np.ravel(np.asarray(a, dtype=float))
                              for a in (formula, simulated, se))
    if not len(formula) == len(simulated) == len(se) > 0:
        raise ValueError("load_check_figure needs formula, simulated and se of one equal length")
    fig = _figure((10.0, 3.8), left=0.08, right=0.98, bottom=0.14,
                  top=0.80 if title else 0.88, wspace=0.3)
    axes = fig.subplots(1, 2)
    axes[0].errorbar(formula, simulated, yerr=2 * se, fmt="o", ms=3, capsize=2, color=CHOSEN,
                     label="simulation, +-2 SE")
    axes[0].plot([0, 1], [0, 1], color="black", lw=0.8, ls="--", label="equal")
    axes[0].set_xlabel("P(s, n) by the formula")
    axes[0].set_ylabel("share of draws that keep n in the top K")
    axes[0].legend(fontsize=7)
    z = np.divide(simulated - formula, se, out=np.zeros_like(se), where=se > 0)
    axes[1].scatter(formula, z, s=12, color=CHOSEN)
    for level in (-2, 2):
        axes[1].axhline(level, color="0.4", lw=0.8, ls=":")
    axes[1].axhline(0, color="black", lw=0.8)
    axes[1].set_xlabel("P(s, n) by the formula")
    axes[1].set_ylabel("(simulated - formula) / SE")
    inside = int((np.abs(z) <= 2).sum())
    _title(axes[0], f"{len(z)} pairs (s, n): the simulation lies on the formula")
    _title(axes[1], f"{inside} of {len(z)} within 2 SE (about 95% expected); "
                    f"largest {np.abs(z).max():.1f} SE")
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def class_choice_shares(indices: torch.Tensor, labels, num_experts: int,
                        num_classes: int | None = None) -> np.ndarray:
    """Share of each class's images whose chosen set (GM-SOP Eq. 3's top K) holds each
    component: indices (S, K) the chosen components, labels (S,) the classes; returns
    (C, N), each row summing to K (an image counts once for each of its K components). A class
    that fixes its K components has K ones in its row; a gate blind to the class gives every
    row the components' overall shares (what :func:`gate_diagnostics`' mutual information
    I(c; n) measures the distance from)."""
    indices = torch.as_tensor(indices).long().cpu()
    labels = torch.as_tensor(labels).long().cpu()
    if indices.ndim != 2 or len(indices) != len(labels) or len(labels) == 0:
        raise ValueError("class_choice_shares needs indices (S, K) and labels (S,), S > 0")
    classes = num_classes or int(labels.max()) + 1
    chosen = torch.zeros(len(labels), num_experts, dtype=torch.float64).scatter_(1, indices, 1.0)
    counts = torch.zeros(classes, num_experts, dtype=torch.float64).index_add_(0, labels, chosen)
    images = torch.bincount(labels, minlength=classes).double().clamp_min(1)[:, None]
    return (counts / images).numpy()


def class_choice_figure(indices: torch.Tensor, labels, num_experts: int, *,
                        class_names: Sequence[str] | None = None, title: str = "") -> Figure:
    """:func:`class_choice_shares` as a heatmap: one row per class, one column per component,
    the share of that class's test images whose chosen set holds the component (0 to 1; each
    row sums to K), the number written in every cell."""
    shares = class_choice_shares(indices, labels, num_experts,
                                 len(class_names) if class_names else None)
    fig = _figure((7.5, 0.42 * len(shares) + 1.6), left=0.2, right=0.95, bottom=0.16,
                  top=0.84 if title else 0.95)
    ax = fig.subplots()
    image = ax.imshow(shares, vmin=0.0, vmax=1.0, cmap="Blues", aspect="auto")
    for (c, n), value in np.ndenumerate(shares):
        ax.text(n, c, f"{value:.2f}", ha="center", va="center", fontsize=7,
                color="white" if value > 0.6 else "black")
    ax.set_xticks(range(num_experts))
    ax.set_yticks(range(len(shares)), labels=list(class_names) if class_names
                  else [str(c) for c in range(len(shares))])
    ax.set_xlabel("component n")
    ax.set_ylabel("class")
    fig.colorbar(image, ax=ax, label="share of the class's images choosing n")
    if title:
        _title(ax, title)
    return fig


__all__ = [
    "ROUTER_GROWTH",
    "BranchToyRun",
    "branch_collapse_figure",
    "class_choice_figure",
    "class_choice_shares",
    "cosine_bound",
    "fig2_figure",
    "importance_cv",
    "load_check_figure",
    "router_curves",
    "router_view",
    "toy_mixture_view",
    "toy_view",
    "toy_usage_figure",
    "train_branch_toy",
]
