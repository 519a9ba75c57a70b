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

The CMs live in :mod:`gsoplib.heads.components`, the ways of running the K chosen of them in
:mod:`gsoplib.heads.dispatch`; this module holds the heads, and keeps every name of those two
(and of the gate) importable from here.

Heads follow the library's contract: ``head(x)`` -> logits (B, num_classes) and
``head(x, return_aux=True)`` -> (logits, aux) where aux is the balance loss (zero for heads
without a gate); the training loop adds aux to the task loss.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..taps import Tap
from ._contract import with_aux
from .components import (  # noqa: F401  (importable from here, as before)
    COMPONENTS,
    GATE_BRANCHES,
    SRSOP,
    ComponentModel,
    GateBranch,
    GlobalAvgPool,
    make_component,
    parametric_gap,
    parametric_srsop,
    projection,
    sr_sop,
)
from .dispatch import (  # noqa: F401  (importable from here, as before)
    EXECUTIONS,
    all_components,
    dense_masked_mixture,
    dispatch_mixture,
    grouped_mixture,
)
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
        gate: the gate's form: 'mixing' (default: the cosine router, whose bounded logits keep
            the kept weights from saturating to one-hot), 'live' (the paper's linear router with
            per-expert noise and a standardised gating feature; its weights saturate) or
            'release' (the GM-SOP release's, which collapses here under the balance loss); see
            :mod:`gsoplib.heads.gate`.
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
