"""Notebook 03's lessons on the channel-wise GSoP block (GSoP-Net Sec. 3.1, Table 2, Table 4a):
what a block costs at each stage of ResNet-26 and each covariance size, and how a trained
block's channel weights differ from an untrained one's.

    block_parameters(channels, c)            Table 2's parameter count, as a formula
    block_multiply_adds(channels, c, M)      Table 2's FLOPs (multiply-adds), as a formula
    placement_model(c, mask)                 the untrained network placement_cost reads, its image
    placement_cost(c, mask)                  ResNet-26 (250-class head, ImageNet-1/4K) with
                                             channel blocks of size c at the stages of ``mask``:
                                             each stage's block counted, the network's totals,
                                             each placed covariance's rank
    placement_figure(cost)                   parameters and multiply-adds per stage, spectra
    placement_view(c, mask)                  notebook 03's second widget callback: both of the above
    weight_spread(weights, labels)           range, spread and class dependence of weights
    trained_weights_figure(trained, untrained, labels, class_names)   trained weights against a
                                             baseline's (and, optionally, a second reference's)
    table2_fit(channels, c, M, hw)           a count of multiply-adds that fits both Table 2 entries
    trained_block(image, block)              one test image through the trained fmnist_small_gsop1:
                                             a block's Sigma, row-BN output and channel weights
    block_view(image, block)                 notebook 03's first widget callback: that, drawn
    gate_probe_figure(weights, labels, accuracy)   SE's and GSoP's weights on second-order images
    reach_figure(changes)                    Sec. 3.3: where a corner change reaches
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode

from ..blocks import GSoPChannel
from ..models import count_multiply_adds, count_parameters, create_model
from ..ops import covariance
from ..probe import probe
from ..root_check import numerical_rank
from ._axes import _figure, _title
from .images import CHOSEN, OTHER

STAGES = ("S2", "S3", "S4", "S5")


def block_parameters(channels: int, c: int) -> int:
    """Parameters of ``GSoPChannel(channels, c)`` (C' = channels): reduce conv C'c + c, its BN
    2c, row BN 2c, row conv 4c^2 + 4c, expand conv 4cC' + C', in all 5C'c + C' + 4c^2 + 9c
    (GSoP-Net Table 2: 0.72 M for C' = 1024, c = 128).

    Examples:
        >>> block_parameters(1024, 128)
        723072
    """
    return 5 * channels * c + channels + 4 * c * c + 9 * c


def block_multiply_adds(channels: int, c: int, positions: int) -> int:
    """Multiply-adds of one channel block on a (1, C', H, W) map with M = HW positions: reduce
    conv C'cM, covariance c^2 M (the (c, M) x (M, c) product), row conv 4c^2, expand conv 4cC'.
    Element-wise work (BN, ReLU, sigmoid, the centring, x * w) is not counted, as in the papers.
    GSoP-Net Table 2 gives 28.1 MFLOPs for C' = 1024, c = 128, M = 14 x 14.

    Examples:
        >>> block_multiply_adds(1024, 128, 14 * 14)
        29491200
    """
    return channels * c * positions + c * c * positions + 4 * c * c + 4 * c * channels


@dataclass
class StageCost:
    """One stage's channel block in ResNet-26 (placed or not).

    channels: C' of the stage's output; positions: M = H * W of its map; params and
    multiply_adds: counted on ``GSoPChannel(C', c)`` at that size (what a block there costs);
    placed: whether the mask puts a block there. For a placed block, rank: the numerical rank of
    its c x c covariance on the probe image, and eigenvalues: (c,) that covariance's
    eigenvalues over the largest, descending; rank_bound = min(c, M - 1): a covariance of M
    centred samples has rank at most M - 1. rank_linear: the numerical rank of the covariance of
    the block's reduced map before its ReLU (conv + BN, an affine map of the block's input), at
    most the rank of the block's input over the positions, e.g. the width of the bottleneck's
    last conv's input (64 at S2). width: that input's channels (the bottleneck's width), the
    bound on rank_linear that the figure marks.
    """

    stage: str
    path: str
    channels: int
    positions: int
    params: int
    multiply_adds: int
    placed: bool
    rank_bound: int
    rank: int | None = None
    eigenvalues: np.ndarray | None = None
    rank_linear: int | None = None
    width: int | None = None


@dataclass
class PlacementCost:
    """ResNet-26 (GSoP-Net Table 3) with channel blocks of covariance size ``c`` at ``mask``.

    params, multiply_adds: the network's, counted (multiply-adds on one image at
    ``input_size``); vanilla_params, vanilla_multiply_adds: the same without blocks;
    num_classes: the classifier's outputs (250 for ImageNet-1/4K, the set of Table 4).
    """

    c: int
    mask: str
    input_size: int
    stages: list[StageCost]
    params: int
    multiply_adds: int
    vanilla_params: int
    vanilla_multiply_adds: int
    num_classes: int = 250

    @property
    def added_params(self) -> int:
        return self.params - self.vanilla_params

    @property
    def added_multiply_adds(self) -> int:
        return self.multiply_adds - self.vanilla_multiply_adds


@lru_cache(maxsize=4)
def _vanilla(input_size: int, num_classes: int = 250) -> tuple[int, int]:
    with FakeTensorMode():
        model = create_model("resnet26", num_classes=num_classes)
    return count_parameters(model), count_multiply_adds(model, input_size)


def _calibrate(model: nn.Module, batch: torch.Tensor) -> list[tuple[int, int]]:
    """Set every BN's running statistics to ``batch``'s (a fresh BN's mean 0 and variance 1
    would leave whole ReLU channels dead) and return each stage's (C', M)."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None                      # a cumulative average: this batch's statistics
    shapes = []
    with torch.no_grad():
        h = model.train().stem(batch)
        for name in model.stage_names:
            h = getattr(model, name)(h)
            shapes.append((h.shape[1], h.shape[2] * h.shape[3]))
    model.eval()
    return shapes


def placement_model(c: int = 128, mask: str = "C,C,C,C", *, input_size: int = 224,
                    seed: int = 0, calibration: int = 4, num_classes: int = 250
                    ) -> tuple[nn.Module, torch.Tensor, list[tuple[int, int]]]:
    """The untrained network that :func:`placement_cost` reads: ResNet-26 with
    ``GSoPChannel(C', c)`` at the stages of ``mask``, its BN statistics set from ``calibration``
    seeded noise images, in eval mode; the noise image (1, 3, input_size, input_size) it is
    probed on; each stage's (C', M). The global random state is left as it was."""
    parts = [p.strip() for p in mask.split(",")]
    if len(parts) != len(STAGES) or not set(parts) <= {"C", "-"}:
        raise ValueError(f"mask must be four of 'C' or '-' separated by commas "
                         f"([S2, S3, S4, S5]), got {mask!r}")
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = create_model("resnet26", blocks=mask, block_kwargs={"rd_channels": c},
                             num_classes=num_classes)
        shapes = _calibrate(model, torch.randn(calibration, 3, input_size, input_size))
        image = torch.randn(1, 3, input_size, input_size)
    return model, image, shapes


def placement_cost(c: int = 128, mask: str = "C,C,C,C", *, input_size: int = 224,
                   seed: int = 0, calibration: int = 4, num_classes: int = 250) -> PlacementCost:
    """Build ResNet-26 with ``GSoPChannel(C', c)`` inside the last bottleneck of each stage
    marked 'C' in ``mask`` ([S2, S3, S4, S5], GSoP-Net Table 4c/4d notation, '-' for none), on
    its bn3 output before the shortcut is added (Sec. 3.4), count its parameters and
    multiply-adds and those of a block at every stage, and run it on one seeded noise image to
    read each placed block's c x c covariance (B = 1). The classifier has ``num_classes``
    outputs: 250 by default, ImageNet-1/4K's classes (Sec. 4, the set of Table 4).

    The network is untrained: its BN statistics are set from ``calibration`` noise images, so
    only what does not depend on training is read from it, the covariance's rank, bounded by
    min(c, M - 1) (GSoP-Net Sec. 4.1 keeps conv5_x at 14 x 14 "to alleviate the problem of
    small sample size"). The global random state is left as it was.
    """
    model, image, shapes = placement_model(c, mask, input_size=input_size, seed=seed,
                                           calibration=calibration, num_classes=num_classes)
    placed = [p.strip() == "C" for p in mask.split(",")]
    insp = probe(model, image, taps=["tap_input", "tap_cov"]) if any(placed) else None
    stages = []
    for s, ((channels, positions), here) in enumerate(zip(shapes, placed)):
        path = f"layer{s + 1}.{len(getattr(model, f'layer{s + 1}')) - 1}.attn"
        with FakeTensorMode():
            block = GSoPChannel(channels, c)
        side = int(round(positions ** 0.5))
        cost = StageCost(STAGES[s], path, channels, positions, count_parameters(block),
                         count_multiply_adds(block, side, channels), here,
                         min(c, positions - 1))
        cost.width = getattr(model, f"layer{s + 1}")[-1].conv3.in_channels
        if here:
            cov = insp[path]["tap_cov"]
            evals = torch.linalg.eigvalsh(cov[0].double()).flip(0)
            cost.rank = int(numerical_rank(cov)[0])
            cost.eigenvalues = (evals / evals[0]).clamp_min(0).numpy()
            attn = model.get_submodule(path)
            with torch.no_grad():                  # conv + BN of the reduce step, no ReLU
                linear = attn.reduce[:2](attn.pre_act(insp[path]["tap_input"]))
            cost.rank_linear = int(numerical_rank(covariance(linear))[0])
        stages.append(cost)
    vanilla_params, vanilla_macs = _vanilla(input_size, num_classes)
    return PlacementCost(c, mask, input_size, stages, count_parameters(model),
                         count_multiply_adds(model, input_size), vanilla_params, vanilla_macs,
                         num_classes)


def placement_figure(cost: PlacementCost, *, figsize=(12.0, 3.6)) -> Figure:
    """Left: each stage's block parameters (M), orange where ``cost.mask`` places one, grey
    where it does not (what a block there would cost). Middle: the same for multiply-adds on one
    image. Right: each placed block's covariance eigenvalues over the largest (log scale) on
    the noise image, with its rank; a dotted line at M - 1 where that is below c, a dashed line
    in the stage's colour at its bottleneck width where that is below both (the bound on the
    rank before the block's ReLU, :attr:`StageCost.width`). The titles
    give the totals added to ResNet-26 and the ranks."""
    fig = _figure(figsize, left=0.06, right=0.98, bottom=0.22, top=0.8, wspace=0.32)
    ax_p, ax_m, ax_s = fig.subplots(1, 3)
    x = np.arange(len(cost.stages))
    colours = [CHOSEN if s.placed else OTHER for s in cost.stages]
    alphas = [1.0 if s.placed else 0.35 for s in cost.stages]
    labels = [f"{s.stage}\nC' = {s.channels}\nM = {s.positions}" for s in cost.stages]
    for ax, values, unit in ((ax_p, [s.params / 1e6 for s in cost.stages],
                              "parameters (millions)"),
                             (ax_m, [s.multiply_adds / 1e6 for s in cost.stages],
                              "multiply-adds (millions)")):
        for xi, v, colour, alpha in zip(x, values, colours, alphas):
            ax.bar(xi, v, color=colour, alpha=alpha)
            ax.text(xi, v, f"{v:.2f}" if v < 10 else f"{v:.0f}", ha="center", va="bottom",
                    fontsize=7)
        ax.set_xticks(x, labels, fontsize=7)
        ax.set_ylabel(f"one block's {unit}", fontsize=9)
        ax.set_xlabel("stage: C' channels, M positions", fontsize=8)
        ax.set_ylim(0, max(values) * 1.3)
    ax_p.legend(handles=[Patch(color=CHOSEN, label="placed"),
                         Patch(color=OTHER, alpha=0.35, label="not placed (if it were)")],
                fontsize=7, loc="upper left", frameon=False)
    _title(ax_p, f"+{cost.added_params / 1e6:.2f} M parameters "
                 f"(+{100 * cost.added_params / cost.vanilla_params:.1f}% of ResNet-26)")
    _title(ax_m, f"+{cost.added_multiply_adds / 1e9:.3f} G multiply-adds at {cost.input_size}"
                 f" (+{100 * cost.added_multiply_adds / cost.vanilla_multiply_adds:.1f}%)")
    placed = [s for s in cost.stages if s.placed]
    bounds = set()
    for s in placed:
        curve, = ax_s.semilogy(np.arange(1, cost.c + 1), np.clip(s.eigenvalues, 1e-12, None),
                               lw=1.4,
                               label=f"{s.stage} (M = {s.positions}): rank {s.rank} of {cost.c}")
        if s.positions - 1 < cost.c and s.positions not in bounds:
            bounds.add(s.positions)
            ax_s.axvline(s.positions - 1, color="k", ls=":", lw=1,
                         label=f"rank bound M - 1 = {s.positions - 1}")
        if s.width is not None and s.width < min(cost.c, s.positions - 1):
            ax_s.axvline(s.width, color=curve.get_color(), ls="--", lw=1,
                         label=f"{s.stage} width bound (before ReLU) = {s.width}")
    ax_s.set_xlabel("eigenvalue index", fontsize=9)
    ax_s.set_ylabel("eigenvalue / largest", fontsize=9)
    ax_s.set_ylim(1e-12, 2)
    if placed:
        ax_s.legend(fontsize=7, loc="lower left")
        ranks = ", ".join(f"{s.stage} {s.rank}" for s in placed)
        _title(ax_s, f"covariance rank (c = {cost.c}): {ranks}")
    else:
        ax_s.text(0.5, 0.5, "no block placed", ha="center", va="center",
                  transform=ax_s.transAxes)
        _title(ax_s, "covariance spectrum")
    head = (f"{cost.num_classes}-class head, ImageNet-1/4K" if cost.num_classes == 250
            else f"{cost.num_classes}-class head")
    fig.suptitle(f"ResNet-26 ({head}) with channel blocks of size c = {cost.c} at "
                 f"[{cost.mask}] (untrained; spectra on one noise image)", fontsize=10)
    return fig


def placement_view(c: int = 128, mask: str = "C,C,C,C", input_size: int = 224) -> Figure:
    """Notebook 03's second widget callback: :func:`placement_cost` of ``c`` and ``mask``, drawn by
    :func:`placement_figure`, with ImageNet-1/4K's 250-class head. Takes about a second on a
    CPU at 224."""
    return placement_figure(placement_cost(c, mask, input_size=input_size))


@dataclass
class WeightSpread:
    """Channel weights (N images, C channels) summarised. low, high: the smallest and largest
    weight; std: their standard deviation over all images and channels; class_range: the median
    over channels of (largest - smallest class mean of that channel's weight); class_share: the
    median over channels of the share of the weight's variance across images that the class
    explains (between-class variance / total variance)."""

    low: float
    high: float
    std: float
    class_range: float
    class_share: float


def _class_means(weights: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return torch.stack([weights[labels == k].mean(0) for k in labels.unique(sorted=True)])


def weight_spread(weights: torch.Tensor, labels: torch.Tensor) -> WeightSpread:
    """:class:`WeightSpread` of ``weights`` (N, C) or (N, C, 1, 1) with class ``labels`` (N,);
    the channel weights of a GSoP block (Sec. 3.1: sigmoid outputs in (0, 1))."""
    w = weights.flatten(1).double()
    means = _class_means(w, labels)
    counts = torch.stack([(labels == k).sum() for k in labels.unique(sorted=True)]).double()
    between = (counts[:, None] * (means - w.mean(0)) ** 2).sum(0) / len(w)
    share = between / w.var(0, unbiased=False).clamp_min(1e-30)
    return WeightSpread(w.min().item(), w.max().item(), w.std().item(),
                        (means.amax(0) - means.amin(0)).median().item(), share.median().item())


def trained_weights_figure(trained: torch.Tensor, untrained: torch.Tensor,
                           labels: torch.Tensor, class_names: Sequence[str], *,
                           untrained_name: str = "untrained", figsize=(12.0, 3.8),
                           reference: torch.Tensor | None = None,
                           reference_name: str = "reference", title: str | None = None,
                           floors: dict[str, tuple[float, float]] | None = None) -> Figure:
    """One block's channel weights (N, C) on the same N images, trained against a baseline
    ``untrained`` (N, C) (``untrained_name`` labels it, e.g. "fresh block, trained backbone" for
    a newly initialised block in an otherwise trained network).

    Left: histograms of all N x C weights of each. Middle: the trained block's class means,
    classes x channels, channels sorted by their mean weight, on the sigmoid's full (0, 1)
    scale. Right: per channel, how far apart its class means lie (largest - smallest), sorted,
    for both blocks, on a log scale. ``reference`` (N, C), optional: a second baseline's weights,
    drawn as an outline (left) and a solid line (right) in a third colour (``REFERENCE``) and
    labelled ``reference_name``; ``title`` (optional) is the figure's title. The left title
    compares the trained weights' standard deviation with the baseline's (``untrained``), not
    the reference's. ``floors`` (optional): per line name ("trained", ``untrained_name``,
    ``reference_name``), the (mean, 95th percentile) of the median class range under shuffled
    labels, drawn in the right panel as a thin dotted line at the mean with its value written
    at the left edge, and a band up to the 95th percentile, in that model's colour; the legend
    names them only when some are drawn. Every model's curve is solid, in its own colour, each
    sorted by its own class ranges.
    """
    t, u = trained.flatten(1).double(), untrained.flatten(1).double()
    st, su = weight_spread(t, labels), weight_spread(u, labels)
    r = reference.flatten(1).double() if reference is not None else None
    sr = weight_spread(r, labels) if r is not None else None
    fig = _figure(figsize, left=0.06, right=0.97, bottom=0.15, top=0.8 if title else 0.85,
                  wspace=0.45)
    grid = fig.add_gridspec(1, 3, width_ratios=[1, 1.3, 1])
    ax_h = fig.add_subplot(grid[0])
    bins = np.linspace(0, 1, 51)
    ax_h.hist(u.flatten().numpy(), bins=bins, color=OTHER, alpha=0.7, density=True,
              label=f"{untrained_name}: {su.low:.2f}-{su.high:.2f}")
    ax_h.hist(t.flatten().numpy(), bins=bins, color=CHOSEN, alpha=0.7, density=True,
              label=f"trained: {st.low:.2f}-{st.high:.2f}")
    if r is not None:
        ax_h.hist(r.flatten().numpy(), bins=bins, color=REFERENCE, histtype="step", lw=1.2,
                  density=True, label=f"{reference_name}: {sr.low:.2f}-{sr.high:.2f}")
    ax_h.set_xlim(0, 1)
    ax_h.set_xlabel("channel weight", fontsize=9)
    ax_h.set_ylabel("density", fontsize=9)
    ax_h.legend(fontsize=7)
    _title(ax_h, f"trained weights spread {st.std / su.std:.1f}x wider (std {st.std:.3f} "
                 f"against {su.std:.3f})")
    ax_c = fig.add_subplot(grid[1])
    means = _class_means(t, labels)
    order = torch.argsort(t.mean(0), descending=True)
    im = ax_c.imshow(means[:, order].numpy(), aspect="auto", cmap="viridis", vmin=0, vmax=1,
                     interpolation="nearest")
    names = [class_names[int(k)] for k in labels.unique(sorted=True)]
    ax_c.set_yticks(np.arange(len(names)), names, fontsize=7)
    ax_c.set_xlabel("channel, sorted by mean weight", fontsize=9)
    fig.colorbar(im, ax=ax_c, label="class-mean weight", shrink=0.9, pad=0.02)
    _title(ax_c, "trained block: class means of each channel's weight")
    ax_r = fig.add_subplot(grid[2])
    lines = [(t, st, CHOSEN, "trained"), (u, su, OTHER, untrained_name)]
    if r is not None:
        lines.append((r, sr, REFERENCE, reference_name))
    lowest = 1.0
    for w, spread, colour, name in lines:
        m = _class_means(w, labels)
        ranges = (m.amax(0) - m.amin(0)).sort(descending=True).values.numpy()
        floor = floors.get(name) if floors else None
        shuffled = f", shuffled {floor[0]:.3f}" if floor else ""
        ax_r.plot(np.arange(1, len(ranges) + 1), ranges, color=colour, ls="-", lw=1.6,
                  label=f"{name}: median {spread.class_range:.3f}{shuffled}")
        lowest = min(lowest, float(ranges.min()))
        if floor:
            ax_r.axhline(floor[0], color=colour, ls=":", lw=0.9)
            ax_r.axhspan(floor[0], floor[1], color=colour, alpha=0.15, lw=0)
            ax_r.text(1, floor[0], f"{floor[0]:.3f}", color=colour, fontsize=6, ha="left",
                      va="bottom")
            lowest = min(lowest, floor[0])
    if floors:
        ax_r.plot([], [], color="0.3", ls=":", lw=0.9,
                  label="shuffled labels: mean (dotted, value at left), 95% (band)")
    ax_r.set_yscale("log")
    ax_r.set_ylim(max(lowest, 1e-4) / 2, 5)             # the legend sits above 1 (weights < 1)
    ax_r.set_xlabel("channel, each model sorted by its class range (descending)", fontsize=8)
    ax_r.set_ylabel("largest - smallest class mean (log)", fontsize=9)
    ax_r.legend(fontsize=6, loc="upper right", handlelength=1.6)
    _title(ax_r, "how much the class moves a channel's weight")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


REFERENCE = "tab:blue"   # trained_weights_figure's second baseline, beside CHOSEN and OTHER


def table2_fit(channels: int = 1024, c: int = 128, positions: int = 196,
               hw: int = 64) -> dict[str, int]:
    """A count of multiply-adds that reproduces both of GSoP-Net Table 2's FLOPs (28.1 M and
    26.2 M for C' = 1024, c = 128, M = 14 x 14, hw = 64); the paper does not state its method.
    A symmetric covariance counted by its upper triangle, c(c+1)/2 M (channel) or
    c hw(hw+1)/2 (position), and the final scaling x * w counted as C'M multiplies; the convs
    as in :func:`block_multiply_adds`:

        channel:  C'cM + c(c+1)/2 M + 4c^2 + 4cC' + C'M
        position: C'cM + c hw(hw+1)/2 + 4(hw)^2 + 4(hw)^2 + C'M

    Examples:
        >>> table2_fit()
        {'channel': 28098816, 'position': 26189824}
    """
    scale = channels * positions
    return {"channel": channels * c * positions + c * (c + 1) // 2 * positions + 4 * c * c
            + 4 * c * channels + scale,
            "position": channels * c * positions + c * hw * (hw + 1) // 2 + 8 * hw * hw + scale}


@lru_cache(maxsize=1)
def _trained_and_test():
    from ..data import load_dataset
    from ..pretrained import load_pretrained
    return load_pretrained("fmnist_small_gsop1").model.eval(), load_dataset("fashion_mnist",
                                                                            train=False)


@dataclass
class TrainedBlock:
    """One test image through a block of the trained ``fmnist_small_gsop1``.

    image, label, class_name: the test image's index and class; block: the block's path;
    image_tensor: (1, 1, 28, 28) normalised; cov: (c, c) its covariance Sigma (c = 32);
    cov_bn: (c, c) after the row-wise BN; weights: (C',) the channel weights
    w = sigmoid(W_e rowconv(rowBN(Sigma)) + b_e) (GSoP-Net Sec. 3.1, Fig. 1b)."""

    image: int
    label: int
    class_name: str
    block: str
    image_tensor: torch.Tensor
    cov: torch.Tensor
    cov_bn: torch.Tensor
    weights: torch.Tensor


def trained_block(image: int = 0, block: str = "layer3.2.attn") -> TrainedBlock:
    """Run test image ``image`` of Fashion-MNIST through the trained ``fmnist_small_gsop1`` and
    read ``block``'s covariance (c, c), its row-BN output (c, c) and channel weights (C',)."""
    from ..data import normalize
    model, test = _trained_and_test()
    x = normalize(test.images[image:image + 1], test.info.mean, test.info.std)
    rec = probe(model, x, taps=[f"{block}.{t}" for t in
                                ("tap_cov", "tap_cov_bn", "tap_channel_weights")])[block]
    label = int(test.labels[image])
    return TrainedBlock(image, label, test.info.classes[label], block, x, rec["tap_cov"][0],
                        rec["tap_cov_bn"][0], rec["tap_channel_weights"].flatten())


@lru_cache(maxsize=3)
def _first64_weights(block: str) -> torch.Tensor:
    """(64, C') channel weights of ``block`` on the first 64 test images, computed once."""
    from ..data import normalize
    model, test = _trained_and_test()
    x = normalize(test.images[:64], test.info.mean, test.info.std)
    rec = probe(model, x, taps=f"{block}.tap_channel_weights")[block]
    return rec["tap_channel_weights"].flatten(1)


def block_view(image: int = 0, block: str = "layer3.2.attn") -> Figure:
    """Notebook 03's widget callback on data: :func:`trained_block` of ``image`` and ``block``,
    drawn. Left to right: the test image; Sigma (c x c, colours centred at 0, limited to the
    98% quantile of |entries|); the row-wise BN output Sigma~ (c x c, the same); the C'
    channel weights in channel order, with the block's weights on the other 63 of the first 64
    test images as a grey band (their range). The matrices' titles give the range over rows of
    each row's standard deviation over its c columns, in this one image; the figure's title
    says how the row-wise BN moved that range."""
    from .blocks import _diverging
    tb = trained_block(image, block)
    first64 = _first64_weights(block)
    others = first64[[i for i in range(64) if i != image]]
    fig = _figure((13.0, 3.4), left=0.02, right=0.98, bottom=0.16, top=0.8, wspace=0.55)
    grid = fig.add_gridspec(1, 4, width_ratios=[0.7, 1, 1, 1.8])
    ax_i = fig.add_subplot(grid[0])
    ax_i.imshow(tb.image_tensor[0, 0].numpy(), cmap="gray", interpolation="nearest")
    ax_i.set_axis_off()
    _title(ax_i, f"test image {image}: {tb.class_name}")
    c = tb.cov.shape[0]
    row_std = tb.cov.std(dim=1)
    bn_std = tb.cov_bn.std(dim=1)
    ax_s, ax_b = fig.add_subplot(grid[1]), fig.add_subplot(grid[2])
    for ax, m, name, label, std, digits in (
            (ax_s, tb.cov, f"Sigma {c}x{c}", "covariance entry", row_std, 3),
            (ax_b, tb.cov_bn, "after row-wise BN", "row-normalised entry", bn_std, 2)):
        _diverging(fig, ax, m.double().numpy(), f"{name}; per-row std over\ncolumns, this image: "
                   f"{std.min():.{digits}f}-{std.max():.{digits}f}", 0.98, label=label)
    for ax in (ax_s, ax_b):                      # _diverging hides the axes; rows and columns shown
        ax.set_axis_on()
        ticks = list(range(0, c, max(c // 4, 1)))
        ax.set_xticks(ticks, [str(t) for t in ticks], fontsize=7)
        ax.set_yticks(ticks, [str(t) for t in ticks], fontsize=7)
        ax.set_xlabel("column j", fontsize=8)
        ax.set_ylabel("row i (channel)", fontsize=8)
    ax_w = fig.add_subplot(grid[3])
    n = len(tb.weights)
    idx = np.arange(n)
    ax_w.fill_between(idx, others.amin(0).numpy(), others.amax(0).numpy(), color=OTHER,
                      alpha=0.3, step="mid", label="63 other test images (range)")
    ax_w.step(idx, tb.weights.numpy(), where="mid", color=CHOSEN, lw=1.4,
              label=f"image {image}")
    ax_w.set_ylim(0, 1)
    ax_w.set_xlim(-0.5, n - 0.5)
    ax_w.set_xlabel("channel", fontsize=9)
    ax_w.set_ylabel("channel weight w", fontsize=9)
    ax_w.legend(fontsize=7, loc="lower right")
    _title(ax_w, f"{n} channel weights: min {tb.weights.min():.2f}, median "
                 f"{tb.weights.median():.2f}, max {tb.weights.max():.2f}")
    fig.suptitle(f"trained fmnist_small_gsop1, block {block} (c = {c}, C' = {n}): row-wise BN "
                 f"lifts the per-row std {row_std.min():.3f}-{row_std.max():.3f} to "
                 f"{bn_std.min():.2f}-{bn_std.max():.2f}", fontsize=10)
    return fig


def reach_figure(changes: dict[str, torch.Tensor], *, patch: int = 4,
                 target: tuple[int, int] = (13, 13), figsize=(14.0, 2.4)) -> Figure:
    """GSoP-Net Sec. 3.3 (Fig. 2), long-range dependency: per label, an (H, W) map of how much
    the output moved, |output(x') - output(x)| averaged over the batch and the channels, when only
    the top-left ``patch`` x ``patch`` corner of x changed. One panel per entry of ``changes``
    (e.g. "3 convs", ..., "SE block"), on one shared log colour scale; positions that did not move
    at all are white. The patch is outlined and ``target`` (row, column) circled; each title gives
    the change there and the share of positions that moved."""
    fig = _figure(figsize, left=0.01, right=0.92, bottom=0.03, top=0.76, wspace=0.3)
    axes = fig.subplots(1, len(changes))
    moved = [c[c > 0] for c in changes.values()]
    top = max(float(m.max()) for m in moved if m.numel())
    low = min(float(m.min()) for m in moved if m.numel())
    norm = LogNorm(vmin=max(low, top * 1e-6), vmax=top)
    cmap = colormaps["viridis"].with_extremes(bad="white")
    for ax, (label, change) in zip(np.atleast_1d(axes), changes.items()):
        im = ax.imshow(np.ma.masked_equal(change.double().numpy(), 0), cmap=cmap, norm=norm,
                       interpolation="nearest")
        ax.add_patch(Rectangle((-0.5, -0.5), patch, patch, fill=False, ec="r", lw=1.2))
        ax.plot(target[1], target[0], "o", mfc="none", mec="r", ms=7)
        ax.set_xticks([]), ax.set_yticks([])
        share = float((change > 0).double().mean())
        _title(ax, f"{label}\n{float(change[target]):.2g} at {target}\n{share:.0%} moved",
               fontsize=7)
    fig.colorbar(im, ax=list(np.atleast_1d(axes)), shrink=0.8, pad=0.01,
                 label="|change| (log; white: 0)")
    return fig


def gate_probe_figure(weights: dict[str, torch.Tensor], labels: torch.Tensor,
                      accuracy: dict[str, float], class_names: Sequence[str] | None = None,
                      *, figsize=None, ncols: int | None = None,
                      title: str = "untrained gates on centred second-order test images, "
                                   "coloured by class") -> Figure:
    """One panel per gate (``ncols`` panels a row, default all in one row): each image's first
    two channel weights w_0, w_1 (of N x K weights), coloured by its class ``labels`` (N,),
    on second-order images (notebook 03 section 4), with a legend of the classes
    (``class_names``, or their numbers); the panel's title gives the largest standard deviation
    of a weight over the images and the linear probe's test ``accuracy`` on all K weights, not
    only the two drawn. On centred images SE's weights are a function of the channel means, all
    0, so every image falls on one point. ``figsize`` defaults to 3.4 inches a row."""
    ncols = ncols or len(weights)
    nrows = -(-len(weights) // ncols)
    figsize = figsize or (11.0, 3.4 * nrows)
    fig = _figure(figsize, left=0.07, right=0.84, bottom=0.16 / nrows, top=1 - 0.27 / nrows,
                  wspace=0.3, hspace=0.5)
    axes = np.atleast_1d(fig.subplots(nrows, ncols)).flatten()
    chance = 1 / len(labels.unique())
    for ax in axes[len(weights):]:
        ax.set_axis_off()
    for ax, (name, w) in zip(axes, weights.items()):
        w = w.flatten(1).double()
        ax.scatter(w[:, 0].numpy(), w[:, 1].numpy(), c=labels.numpy(), cmap="tab10", s=5,
                   vmin=0, vmax=9)
        spread = w.std(dim=0).max().item()
        ax.set_xlabel("channel weight w_0", fontsize=9)
        ax.set_ylabel("channel weight w_1", fontsize=9)
        _title(ax, f"{name}: largest std {spread:.4f}\nlinear probe on all {w.shape[1]} "
                   f"weights {accuracy[name]:.3f} (chance {chance:.3f})")
    classes = labels.unique().tolist()
    names = class_names if class_names is not None else [str(k) for k in classes]
    palette = colormaps["tab10"].colors
    fig.legend(handles=[Patch(color=palette[k], label=names[k]) for k in classes],
               title="class", fontsize=7, title_fontsize=8, loc="center right", frameon=False)
    fig.suptitle(title, fontsize=10)
    return fig


def channel_weights(block: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """A channel-attention block's weights on ``images`` (N, C, H, W), read from its
    ``tap_channel_weights`` (N, C, 1, 1) in one no-grad pass and returned as (N, C): SE's
    w = sigmoid(W_2 ReLU(W_1 mu + b_1) + b_2) of the channel means mu, or a GSoP channel block's
    w = sigmoid(W_e rowconv(rowBN(Sigma)) + b_e) (GSoP-Net Sec. 3.1, Fig. 1b)."""
    seen = []
    hook = block.tap_channel_weights.register_forward_hook(lambda m, a, out: seen.append(out))
    with torch.no_grad():
        block(images)
    hook.remove()
    return seen[0].flatten(1)


def gate_probe_title(accuracy: dict[str, list[float]], chance: float = 0.125) -> str:
    """Title of notebook 03's gate-probe figure (section 4). ``accuracy`` maps "SE, uncentred",
    "SE, centred", "GSoP channel, uncentred" and "GSoP channel, centred" to a linear probe's test
    accuracy on a gate's K = 3 weights w (N, K), one per seed (seed 0 only for "SE, centred",
    whose weights are one constant vector); a range prints as low-high, or as one value when
    both ends round alike."""
    def span(key: str) -> str:
        low, high = f"{min(accuracy[key]):.3f}", f"{max(accuracy[key]):.3f}"
        return low if low == high else f"{low}-{high}"
    seeds = len(accuracy["GSoP channel, uncentred"])
    return (f"probe on 3 untrained weights, seeds 0-{seeds - 1}: SE {span('SE, uncentred')} -> "
            f"{span('SE, centred')} when centred (seed 0; constant weights in every draw); "
            f"GSoP {span('GSoP channel, uncentred')} -> {span('GSoP channel, centred')} "
            f"(chance {chance:.3f})\npanels: seed 0 on second-order test images, as they are (top) "
            "and centred (bottom), coloured by class")


def spread_title(head: str, above: dict[str, float], share: dict[str, float]) -> str:
    """Title of notebook 03's trained-weights figure: ``head``, then per model (the keys of
    ``above``, in order) its median class range above the shuffled-label floor and its median
    class share sum_k n_k (m_k - m)^2 / (N Var(w)) of a channel's weights w (N, C) (see
    :func:`weight_spread`), e.g. "class range above the shuffled floor 0.26 (trained) / ..."."""
    ranges = " / ".join(f"{value:.2f} ({name})" for name, value in above.items())
    shares = " / ".join(f"{share[name]:.0%}" for name in above)
    return (f"{head}: class range above the shuffled floor {ranges};\nthe class explains {shares} "
            "of a channel's variance (shuffled labels: about 1%)")


__all__ = [
    "channel_weights",
    "spread_title",
    "gate_probe_title",
    "STAGES",
    "TrainedBlock",
    "block_view",
    "gate_probe_figure",
    "table2_fit",
    "trained_block",
    "PlacementCost",
    "StageCost",
    "WeightSpread",
    "block_multiply_adds",
    "block_parameters",
    "placement_cost",
    "placement_figure",
    "placement_model",
    "placement_view",
    "reach_figure",
    "trained_weights_figure",
    "weight_spread",
]
