"""Gated mixture of second-order pooling (GM-SOP, Wang et al. NeurIPS 2018) and its baselines.

A bank of N component models (CMs) summarises the last feature map; a sparsity-constrained gate
picks the top K per sample and the representation is the weighted sum of those K outputs
(Sec. 2.1, Eq. 1-3), followed by BN, dropout 0.2 and the classifier (Sec. 2.3). A balance loss on
the gate's weights (Eq. 4) keeps every CM trained. The gate, its losses and its diagnostics live
in :mod:`gsoplib.heads.gate`.

A CM is a parametric projection followed by a parameter-free pool:
    parametric SR-SOP (Sec. 2.2, Eq. 5-6)  J = 2 steps of 1x1 conv + ReLU (C -> 256 -> 128, no BN,
                                           no bias, as in the release), covariance, Newton-Schulz
                                           square root, upper triangle: 128 -> 8256-d
    parametric GAP (Sec. 3.1, item 2)      1x1 conv + ReLU (C -> 512), global average: 512-d

Only the K chosen CMs run for a sample (:func:`dispatch_mixture`): the samples are grouped by CM,
each CM runs once on its sub-batch, and the results are gathered back per sample. Running all N
and masking (:func:`dense_masked_mixture`) gives the same output and gradients at N/K times the
component cost; it is kept as the reference for tests and benchmarks.

Heads follow the library's contract: ``head(x)`` -> logits (B, num_classes) and
``head(x, return_aux=True)`` -> (logits, aux) where aux is the balance loss (zero for heads
without a gate); the training loop adds aux to the task loss.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from ..ops import covariance, sqrtm_newton_schulz, triu_dim, triu_vec
from ..taps import Tap
from ._contract import with_aux
from .gate import (  # noqa: F401  (the gate's names stay importable from here)
    GATE_FORMS,
    GATE_INITS,
    NOISE_MODES,
    GateOutput,
    NoisyTopKGate,
    _check_choice,
    balance_loss,
    load_loss,
    router_z_loss,
    top_k_softmax,
)

COMPONENTS = ("sop", "gap")
GATE_BRANCHES = ("component", "gap")
EXECUTIONS = ("dispatch", "dense", "grouped")


# --------------------------------------------------------------------------------------------
# Component models: Sec. 2.2 (parametric SR-SOP) and Sec. 3.1 (parametric GAP)
# --------------------------------------------------------------------------------------------


def _conv1x1(in_channels: int, out_channels: int) -> nn.Conv2d:
    conv = nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False)
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    return conv


def projection(
    in_channels: int, channels: Sequence[int], batch_norm: bool = False
) -> nn.Sequential:
    """1x1 conv (+ BN) + ReLU steps: (B, in_channels, H, W) -> (B, channels[-1], H, W).

    For SR-SOP each step is one P_j of the J-step estimation Sigma(Q_j) = (P_j X)^T (P_j X)
    (GM-SOP Eq. 6-8). CMs have no BN (the release; a CM sees only the samples routed to it, so
    batch statistics would depend on the routing); the gating branch has BN (the release).
    """
    layers: list[nn.Module] = []
    for width in channels:
        layers.append(_conv1x1(in_channels, width))
        if batch_norm:
            layers.append(nn.BatchNorm2d(width))
        layers.append(nn.ReLU(inplace=True))
        in_channels = width
    return nn.Sequential(*layers)


def sr_sop(z: torch.Tensor, iters: int = 3) -> torch.Tensor:
    """Matrix square-root normalised covariance pooling (GM-SOP Eq. 5 and 9; iSQRT-COV).

    z: (B, c, H, W) -> (B, c(c+1)/2): covariance, Newton-Schulz root, upper triangle. float32.
    """
    return triu_vec(sqrtm_newton_schulz(covariance(z), iters=iters))


class SRSOP(nn.Module):
    """SR-SOP as a module with taps: (B, c, H, W) -> (B, c(c+1)/2), float32.

    ``iters`` Newton-Schulz iterations: 3 as in the release and the GSoP-Net code (the paper's
    Sec. 3.1 text says five). Taps: tap_cov (B, c, c), tap_cov_sqrt (B, c, c).
    """

    def __init__(self, iters: int = 3) -> None:
        super().__init__()
        self.iters = iters
        self.tap_cov = Tap("tap_cov", "covariance of the projected features, (B, c, c)")
        self.tap_cov_sqrt = Tap("tap_cov_sqrt", "its Newton-Schulz square root, (B, c, c)")

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        cov = self.tap_cov(covariance(z))
        return triu_vec(self.tap_cov_sqrt(sqrtm_newton_schulz(cov, iters=self.iters)))

    def extra_repr(self) -> str:
        return f"iters={self.iters}"


class GlobalAvgPool(nn.Module):
    """(B, c, H, W) -> (B, c): the mean over positions."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z.mean(dim=(2, 3))


class ComponentModel(nn.Module):
    """One CM: a parametric ``project`` then a parameter-free ``pool``; (B, C, H, W) -> (B, dim)."""

    def __init__(self, project: nn.Module, pool: nn.Module, dim: int) -> None:
        super().__init__()
        self.project, self.pool, self.dim = project, pool, dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.project(x))


def _component_parts(
    component: str,
    in_channels: int,
    sop_channels: Sequence[int],
    gap_dim: int,
    iters: int,
    batch_norm: bool = False,
) -> tuple[nn.Module, nn.Module, int]:
    _check_choice(component, COMPONENTS, "component")
    if component == "sop":
        width = sop_channels[-1] if sop_channels else in_channels
        return projection(in_channels, sop_channels, batch_norm), SRSOP(iters), triu_dim(width)
    return projection(in_channels, [gap_dim], batch_norm), GlobalAvgPool(), gap_dim


def make_component(
    component: str,
    in_channels: int,
    sop_channels: Sequence[int] = (256, 128),
    gap_dim: int = 512,
    iters: int = 3,
) -> ComponentModel:
    """A CM by kind: 'sop' (:func:`parametric_srsop`) or 'gap' (:func:`parametric_gap`)."""
    return ComponentModel(*_component_parts(component, in_channels, sop_channels, gap_dim, iters))


def parametric_srsop(
    in_channels: int, channels: Sequence[int] = (256, 128), iters: int = 3
) -> ComponentModel:
    """Parametric SR-SOP CM (GM-SOP Sec. 2.2): 1x1 convs C -> 256 -> 128 with ReLU, then SR-SOP.

    (B, C, H, W) -> (B, 8256). ``channels=()`` gives the plain, parameter-free SR-SOP of the
    input's C channels (the paper's "SR-SOP" baseline): (B, C(C+1)/2).
    """
    return make_component("sop", in_channels, channels, iters=iters)


def parametric_gap(in_channels: int, dim: int = 512) -> ComponentModel:
    """Parametric GAP CM (GM-SOP Sec. 3.1, ResNet-18-Xd): 1x1 conv C -> dim + ReLU, then GAP.

    (B, C, H, W) -> (B, dim).
    """
    return make_component("gap", in_channels, gap_dim=dim)


class GateBranch(nn.Module):
    """The gating network's prediction layers f (GM-SOP Sec. 2.3): (B, C, H, W) -> (B, dim).

    'component': the same architecture as a CM, with BN after each 1x1 conv (the release), so
    f is 8256-d for SR-SOP and 512-d for GAP; it costs about one more CM per sample.
    'gap': the input's global average, C-d; nearly free.
    No taps: it is the gate's input, not a CM.
    """

    def __init__(
        self,
        kind: str,
        in_channels: int,
        component: str = "sop",
        sop_channels: Sequence[int] = (256, 128),
        gap_dim: int = 512,
        iters: int = 3,
    ) -> None:
        super().__init__()
        _check_choice(kind, GATE_BRANCHES, "gate branch")
        _check_choice(component, COMPONENTS, "component")
        self.kind, self.component, self.iters = kind, component, iters
        if kind == "gap":
            self.project, self.dim = nn.Identity(), in_channels
        else:
            self.project, _, self.dim = _component_parts(
                component, in_channels, sop_channels, gap_dim, iters, batch_norm=True
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.project(x)
        if self.kind == "component" and self.component == "sop":
            return sr_sop(z, self.iters)
        return z.mean(dim=(2, 3))

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, dim={self.dim}"


# --------------------------------------------------------------------------------------------
# Combining the chosen components
# --------------------------------------------------------------------------------------------


def dispatch_mixture(
    x: torch.Tensor,
    components: Sequence[nn.Module],
    indices: torch.Tensor,
    top_weights: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of the K chosen CMs per sample, running each CM only on the samples routed to it.

    The B*K (sample, CM) pairs are sorted by CM, CM n runs once on its contiguous sub-batch (not
    at all when no sample chose it), and the outputs are put back in sample-major order. The
    weighted sum over each sample's K outputs is a batched matmul rather than an index_add, so it
    is deterministic on GPUs. No loop over samples; one host sync for the sub-batch sizes.

    Args:
        x: (B, C, H, W). components: N modules (B', C, H, W) -> (B', D).
        indices, top_weights: (B, K) from the gate.

    Returns:
        (representation (B, D), per-pair outputs (B, K, D) in the order of ``indices``).
    """
    batch, k = indices.shape
    flat = indices.reshape(-1)
    order = flat.argsort(stable=True)
    counts = torch.bincount(flat, minlength=len(components)).tolist()
    # One gather per CM: a single (B*K, C, H, W) gather is a buffer too large for the CPU
    # allocator to reuse, and costs more in page faults than the copy itself.
    samples = (order // k).split(counts)
    outputs = torch.cat(
        [cm(x.index_select(0, rows)) for cm, rows in zip(components, samples) if rows.numel()]
    )
    reps = outputs.index_select(0, order.argsort()).view(batch, k, -1)
    return torch.bmm(top_weights.to(reps.dtype).unsqueeze(1), reps).squeeze(1), reps


def _stacked_projection(components: Sequence[ComponentModel]) -> list[torch.Tensor]:
    """The 1x1 conv weights of N CMs stacked per step: [(N, out_j, in_j)] for j = 1..J."""
    steps = [
        [m for m in cm.project if isinstance(m, nn.Conv2d)] for cm in components
    ]
    for convs in steps:
        for conv in convs:
            if conv.kernel_size != (1, 1) or conv.bias is not None or conv.stride != (1, 1):
                raise ValueError("grouped execution needs CMs of bias-free 1x1 convs + ReLU")
        if len(convs) != len(steps[0]) or len(convs) * 2 != len(components[0].project):
            raise ValueError("grouped execution needs CMs of 1x1 conv + ReLU steps without BN")
    return [
        torch.stack([convs[j].weight.flatten(1) for convs in steps]) for j in range(len(steps[0]))
    ]


def grouped_mixture(
    x: torch.Tensor,
    components: Sequence[ComponentModel],
    indices: torch.Tensor,
    top_weights: torch.Tensor,
    capacity_factor: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`dispatch_mixture` with all N CMs run at once as batched GEMMs over padded groups.

    The (sample, CM) pairs are placed in an (N, capacity) grid, row n holding the samples routed
    to CM n in batch order; the CMs' 1x1 convs become one batched GEMM per step over the stacked
    weights (N, out, in), and covariance, Newton-Schulz and the pooling run once over all
    N * capacity rows. A handful of kernels instead of a few per CM, and N * capacity / (B * K)
    times the dispatched work, close to 1 when the balance loss keeps the routing even.

    capacity_factor None: capacity is the largest sub-batch, read with one host sync; the result
        equals :func:`dispatch_mixture` (to float rounding). A float: capacity is
        min(B, ceil(capacity_factor * B * K / N)), known without reading the device, so a
        training step has no host sync; pairs past a CM's capacity (the latest samples of the
        batch routed to it) are dropped, contributing zero, as in capacity-limited MoE layers.
        capacity_factor >= N / K never drops.

    CMs must be :class:`ComponentModel` of bias-free 1x1 convs + ReLU steps (the SR-SOP and GAP
    CMs of this module). Their ``pool`` modules are not called, so SR-SOP's per-CM taps
    (tap_cov, tap_cov_sqrt) record nothing on this path. Returns what :func:`dispatch_mixture`
    returns; dropped pairs have zero rows in the per-pair outputs.
    """
    batch, k = indices.shape
    n_cm = len(components)
    weights = _stacked_projection(components)
    flat = indices.reshape(-1)
    order = flat.argsort(stable=True)
    # scatter_add, not bincount: CUDA's bincount reads the input's maximum back to the host.
    counts = torch.zeros(n_cm, dtype=torch.long, device=flat.device)
    counts.scatter_add_(0, flat, torch.ones_like(flat))
    if capacity_factor is None:
        capacity = int(counts.max())
    else:
        capacity = min(batch, max(1, math.ceil(capacity_factor * batch * k / n_cm)))
    sorted_cm = flat.index_select(0, order)
    rank = torch.arange(flat.numel(), device=flat.device) - (counts.cumsum(0) - counts)[sorted_cm]
    kept = rank < capacity
    # Dropped pairs point at one spare slot past the grid: its row is never read back as a kept
    # pair's output, and it reads a row of zeros.
    slot_sorted = torch.where(kept, sorted_cm * capacity + rank, n_cm * capacity)
    sample_of_slot = torch.zeros(n_cm * capacity + 1, dtype=torch.long, device=flat.device)
    sample_of_slot.scatter_(0, slot_sorted, order // k)
    slot_of_pair = torch.empty_like(slot_sorted).scatter_(0, order, slot_sorted)

    # (N * capacity, M, C) channels-last rows: each 1x1 conv is a (N, capacity * M, C) bmm.
    m = x.shape[-2] * x.shape[-1]
    z = x.flatten(2).transpose(1, 2).index_select(0, sample_of_slot[:-1])
    z = z.reshape(n_cm, capacity * m, -1)
    for w in weights:
        z = torch.relu(torch.bmm(z, w.to(z.dtype).transpose(1, 2)))
    z = z.reshape(n_cm * capacity, m, -1)
    pool = components[0].pool
    if isinstance(pool, SRSOP):
        out = sr_sop(z.transpose(1, 2), pool.iters)
    elif isinstance(pool, GlobalAvgPool):
        out = z.mean(dim=1)
    else:
        raise ValueError(f"grouped execution does not know the pool {type(pool).__name__}")
    out = torch.cat([out, out.new_zeros(1, out.shape[1])])
    reps = out.index_select(0, slot_of_pair).view(batch, k, -1)
    return torch.bmm(top_weights.to(reps.dtype).unsqueeze(1), reps).squeeze(1), reps


def all_components(x: torch.Tensor, components: Sequence[nn.Module]) -> torch.Tensor:
    """Every CM on every sample: (B, C, H, W) -> (B, N, D)."""
    return torch.stack([cm(x) for cm in components], dim=1)


def dense_masked_mixture(
    x: torch.Tensor, components: Sequence[nn.Module], weights: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference: run all N CMs on every sample and weight by the (B, N) gate, zeros included.

    Same output and gradients as :func:`dispatch_mixture` at N/K times the component cost; this
    is what GM-SOP avoids (Sec. 2.1). Returns (representation (B, D), all outputs (B, N, D)).
    """
    reps = all_components(x, components)
    return torch.bmm(weights.to(reps.dtype).unsqueeze(1), reps).squeeze(1), reps


# --------------------------------------------------------------------------------------------
# Heads
# --------------------------------------------------------------------------------------------


def classifier(dim: int, num_classes: int, dropout: float = 0.2,
               norm_init: float = 1.0) -> nn.Sequential:
    """BN, dropout, FC after the representation (GM-SOP Sec. 2.3): (B, dim) -> (B, num_classes).

    ``norm_init``: the BN's initial scale gamma (1 in PyTorch's default)."""
    layers = nn.Sequential(nn.BatchNorm1d(dim), nn.Dropout(dropout), nn.Linear(dim, num_classes))
    nn.init.constant_(layers[0].weight, norm_init)
    return layers


class GatedMixtureHead(nn.Module):
    """GM-SOP / GM-GAP head (GM-SOP Sec. 2, Fig. 1): (B, C, H, W) -> (B, num_classes).

    gate branch f -> :class:`NoisyTopKGate` -> weighted sum of the K chosen of N CMs -> BN ->
    dropout -> FC. ``head(x, return_aux=True)`` also returns the balance loss (Eq. 4) of the
    batch, which the training loop adds to the task loss.

    Args:
        in_channels: C of the feature map.
        component: 'sop' (parametric SR-SOP, 8256-d) or 'gap' (parametric GAP, ``gap_dim``-d).
        num_components, k: N and K (GM-SOP-16-8 by default).
        num_classes: FC outputs.
        gate: the gate's form, 'live' (default: per-expert noise, standardised gating feature)
            or 'release' (the GM-SOP release's, which collapses here under the balance loss);
            see :mod:`gsoplib.heads.gate`.
        noise, noise_epsilon, gate_init, random_ties, gate_input_norm: override single choices
            of the form; see :class:`NoisyTopKGate`.
        alpha, unbiased: see :func:`balance_loss`.
        load_weight: weight of Shazeer et al.'s load loss (:func:`load_loss`) added to aux;
            0 (default) leaves the paper's balance loss alone.
        gate_detach: the gating branch reads a detached copy of the feature map, so the gate's
            losses train the gate and not the backbone; default from the form (live: yes).
        gate_branch: 'component' (the release) or 'gap'; see :class:`GateBranch`.
        sop_channels: the J 1x1 conv widths of a SR-SOP CM (release: 256, 128).
        gap_dim: width of a GAP CM. iters: Newton-Schulz iterations.
        dropout: before the FC (0.2 in the paper).
        execution: 'dispatch' runs only the K chosen CMs per sample (the method), one CM
            after another; 'grouped' runs the same K of N as batched GEMMs over padded
            groups (:func:`grouped_mixture`; fewer kernels, for GPUs); 'dense' runs all N and
            masks, the reference for tests and benchmarks.
        capacity_factor: for 'grouped' only; see :func:`grouped_mixture` (None: exact, one
            host sync per step; a float: no sync, pairs past a CM's capacity dropped).

    Taps: gate.tap_gate_{clean_logits, noisy_logits, indices, weights}; tap_component_norms
    (B, K) the L2 norm of each chosen CM's output, in the order of tap_gate_indices; for SR-SOP,
    components.n.pool.tap_cov / tap_cov_sqrt, (B_n, c, c) for the B_n samples routed to CM n
    in batch order (not called when none was).
    """

    def __init__(
        self,
        in_channels: int,
        component: str = "sop",
        num_components: int = 16,
        k: int = 8,
        *,
        num_classes: int = 1000,
        gate: str = "mixing",
        noise: str | None = None,
        noise_epsilon: float | None = None,
        gate_init: str | None = None,
        random_ties: bool | None = None,
        gate_input_norm: str | None = None,
        gate_router: str | None = None,
        gate_logit_scale: float | None = None,
        gate_learn_scale: bool | None = None,
        gate_weighting: str | None = None,
        alpha: float = 100.0,
        load_weight: float = 0.0,
        z_loss_weight: float = 0.0,
        gate_detach: bool | None = None,
        unbiased: bool = True,
        gate_branch: str = "component",
        sop_channels: Sequence[int] = (256, 128),
        gap_dim: int = 512,
        iters: int = 3,
        dropout: float = 0.2,
        execution: str = "dispatch",
        capacity_factor: float | None = None,
        norm_init: float = 1.0,
    ) -> None:
        super().__init__()
        _check_choice(execution, EXECUTIONS, "execution")
        self.component, self.execution = component, execution
        self.capacity_factor = capacity_factor
        self.alpha, self.unbiased, self.load_weight = alpha, unbiased, load_weight
        self.z_loss_weight = z_loss_weight
        self.gate_detach = (
            GATE_FORMS[gate]["detach_input"] if gate_detach is None and gate in GATE_FORMS
            else bool(gate_detach)
        )
        self.components = nn.ModuleList(
            make_component(component, in_channels, sop_channels, gap_dim, iters)
            for _ in range(num_components)
        )
        self.dim = self.components[0].dim
        self.gate_branch = GateBranch(
            gate_branch, in_channels, component, sop_channels, gap_dim, iters
        )
        self.gate = NoisyTopKGate(
            self.gate_branch.dim, num_components, k, noise, noise_epsilon, gate_init,
            form=gate, random_ties=random_ties, input_norm=gate_input_norm, router=gate_router,
            logit_scale=gate_logit_scale, learn_scale=gate_learn_scale, weighting=gate_weighting,
        )
        self.tap_component_norms = Tap("tap_component_norms", "|| M_i(X) || of the chosen, (B, K)")
        self.classifier = classifier(self.dim, num_classes, dropout, norm_init)

    def forward(self, x: torch.Tensor, return_aux: bool = False):
        gate = self.gate(self.gate_branch(x.detach() if self.gate_detach else x))
        if self.execution == "dispatch":
            rep, reps = dispatch_mixture(x, self.components, gate.indices, gate.top_weights)
        elif self.execution == "grouped":
            rep, reps = grouped_mixture(
                x, self.components, gate.indices, gate.top_weights, self.capacity_factor
            )
        else:
            rep, all_reps = dense_masked_mixture(x, self.components, gate.weights)
            reps = all_reps.gather(1, gate.indices.unsqueeze(-1).expand(-1, -1, self.dim))
        self.tap_component_norms(reps.detach().norm(dim=-1))
        logits = self.classifier(rep)
        aux = None
        if return_aux:
            aux = balance_loss(gate.weights, self.alpha, self.unbiased)
            if self.load_weight and gate.noise_scale is not None:
                aux = aux + load_loss(
                    gate.clean_logits, gate.noisy_logits, gate.noise_scale, gate.indices.shape[1],
                    self.load_weight,
                )
            if self.z_loss_weight:
                aux = aux + router_z_loss(gate.clean_logits, self.z_loss_weight)
        return with_aux(logits, aux, return_aux)

    def extra_repr(self) -> str:
        return f"component={self.component!r}, dim={self.dim}, execution={self.execution!r}"


class AverageMixtureHead(nn.Module):
    """Ave-SOP-N / Ave-GAP-N (GM-SOP Sec. 3.1, items 3 and 6): all N CMs, equal weights 1/N.

    (B, C, H, W) -> (B, num_classes) through BN, dropout and FC as :class:`GatedMixtureHead`;
    aux is zero. Taps: tap_component_norms (B, N); for SR-SOP components.n.pool.tap_cov /
    tap_cov_sqrt, (B, c, c).
    """

    def __init__(
        self,
        in_channels: int,
        component: str = "sop",
        num_components: int = 16,
        *,
        num_classes: int = 1000,
        sop_channels: Sequence[int] = (256, 128),
        gap_dim: int = 512,
        iters: int = 3,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        self.component = component
        self.components = nn.ModuleList(
            make_component(component, in_channels, sop_channels, gap_dim, iters)
            for _ in range(num_components)
        )
        self.dim = self.components[0].dim
        self.tap_component_norms = Tap("tap_component_norms", "|| M_i(X) ||, (B, N)")
        self.classifier = classifier(self.dim, num_classes, dropout)

    def forward(self, x: torch.Tensor, return_aux: bool = False):
        reps = all_components(x, self.components)
        self.tap_component_norms(reps.detach().norm(dim=-1))
        return with_aux(self.classifier(reps.mean(dim=1)), None, return_aux)

    def extra_repr(self) -> str:
        return f"component={self.component!r}, dim={self.dim}, N={len(self.components)}"


class ComponentHead(nn.Module):
    """A single CM as the head (GM-SOP Tables 2-4 baselines): (B, C, H, W) -> (B, num_classes).

    component='sop': parametric SR-SOP (``sop_channels=()`` for the plain SR-SOP of the C input
    channels); component='gap': ResNet-18-Xd with X = ``gap_dim`` (512d, 8256d). Then BN,
    dropout and FC as the mixtures, so the baselines differ from them only in the pooling.
    Taps (SR-SOP): component.pool.tap_cov, component.pool.tap_cov_sqrt, (B, c, c).
    """

    def __init__(
        self,
        in_channels: int,
        component: str = "sop",
        *,
        num_classes: int = 1000,
        sop_channels: Sequence[int] = (256, 128),
        gap_dim: int = 512,
        iters: int = 3,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        self.component = make_component(component, in_channels, sop_channels, gap_dim, iters)
        self.classifier = classifier(self.component.dim, num_classes, dropout)

    def forward(self, x: torch.Tensor, return_aux: bool = False):
        return with_aux(self.classifier(self.component(x)), None, return_aux)
