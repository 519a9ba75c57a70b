"""The GM-SOP gate (Wang et al. NeurIPS 2018, Sec. 2.1, Eq. 2-4): noisy top-K routing, three forms.

A sparsity-constrained gate scores N experts (component models) from a gating feature f, keeps
the top K per sample and softmaxes over the kept (:class:`NoisyTopKGate`). A balance loss on the
batch's importance (:func:`balance_loss`, Eq. 4) and optionally Shazeer et al.'s load loss
(:func:`load_loss`) keep every expert trained (:mod:`gsoplib.heads.gate_losses`).
:func:`gate_diagnostics` says whether a gate actually chooses by image: usage per expert, the
chosen sets, the mutual information between class and choice, how far the weights are from a
tie, and a verdict sentence (:mod:`gsoplib.heads.gate_analysis`, which reads only the gate's
taps and so stays on this floor). This module holds the gate alone and keeps every name of those
two importable from here, as before the split.

Three forms of the gate are selectable (``GatedMixtureHead(gate="...")``), each measured on
``small_gmsop`` by ``benchmarks/gate.py`` (docs/gmsop.md):

``'release'``  the GM-SOP release: one noise draw per image shared by all experts, W_g and W_n
               initialised to the constant 1/dim, ties broken at random in training, the
               gating feature used as the branch outputs it, the linear router W_g f of Eq. 2.
               Under alpha = 100 the gating branch learns to output ~0, every logit ties,
               random tie-breaking makes the training-time importance even, and the balance
               loss is satisfied by a gate that sees nothing. In eval the ties go to the lowest
               indices: a near-constant choice, weights 1/K (``--table collapse``).
``'live'``     one noise draw per (image, expert) with a 1e-2 floor and zero init (Shazeer et
               al.), ties to the lower index, the gating feature standardised by a BatchNorm
               without affine parameters, so the branch cannot shrink its output to zero to
               please the balance loss, and (in :class:`GatedMixtureHead`) a gating branch that
               reads a detached feature map, so the balance loss at alpha = 100 trains the gate
               and not the backbone (with the gradient, test top-1 fell from 80% to 49% at the
               same budget). It chooses by image, but its linear router W_g f is unbounded: the
               task loss sharpens the kept weights towards each image's best expert, the
               logits grow to spans of hundreds, and the softmax over the kept turns one-hot
               (about 1.1 effective components of K = 4; ``--table saturation``).
``'mixing'``   (default) the live gate with a cosine router, s cos(f', w_n) with s = 2: every
               logit lies in [-s, s], so no kept weight can exceed e^(2s) / (e^(2s) + K - 1)
               and the K chosen all count (about 3.9 effective components of 4 on both the
               second-order set and Fashion-MNIST, with a choice that depends on the class).
               Larger scales sharpen the weights again (s = 32 loses accuracy on the
               second-order set); a learned s shrinks towards ties.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..taps import Tap
from .gate_analysis import (  # noqa: F401  (importable from here, as before)
    CLASS_BLIND,
    CONSTANT_SHARE,
    MIN_CHOICES_PER_EXPERT,
    MIN_IMAGES,
    ONE_COMPONENT,
    ONE_HOT_WEIGHT,
    STARVED_FRACTION,
    TIE_TOLERANCE,
    GateDiagnostics,
    GateRecorder,
    diagnose_gate,
    gate_diagnostics,
    min_images,
    min_images_for_class,
)
from .gate_losses import balance_loss, cv_squared, load_loss, router_z_loss  # noqa: F401

NOISE_MODES = ("sample", "expert")
GATE_INITS = ("constant", "zeros", "normal")
INPUT_NORMS = ("none", "batch")
ROUTERS = ("linear", "cosine")
WEIGHTINGS = ("kept", "all")
#: Choices a form leaves at these values.
GATE_DEFAULTS = {"router": "linear", "logit_scale": 1.0, "learn_scale": False, "weighting": "kept"}
GATE_FORMS = {
    "mixing": {"noise": "expert", "init": "normal", "random_ties": False, "input_norm": "batch",
               "detach_input": True, "router": "cosine", "logit_scale": 2.0},
    "release": {"noise": "sample", "init": "constant", "random_ties": True, "input_norm": "none",
                "detach_input": False, "router": "linear"},
    "live": {"noise": "expert", "init": "zeros", "random_ties": False, "input_norm": "batch",
             "detach_input": True, "router": "linear"},
}


def _check_choice(value: str, choices: Sequence[str], what: str) -> None:
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}; expected one of {', '.join(choices)}")


class GateOutput(NamedTuple):
    """What :class:`NoisyTopKGate` computed for a batch of B samples over N experts.

    weights: (B, N) omega (Eq. 3), exactly k non-zeros per row summing to 1.
    indices: (B, k) the chosen experts, best first. top_weights: (B, k) their weights.
    clean_logits: (B, N) W_g f. noisy_logits: (B, N) H(f) of Eq. 2 (equal to clean in eval).
    noise_scale: (B, N) softplus(W_n f) + epsilon in training, None in eval.
    """

    weights: torch.Tensor
    indices: torch.Tensor
    top_weights: torch.Tensor
    clean_logits: torch.Tensor
    noisy_logits: torch.Tensor
    noise_scale: torch.Tensor | None = None


def top_k_softmax(
    logits: torch.Tensor, k: int, random_ties: bool = False, over: str = "kept"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Keep the k largest logits, set the rest to -inf, softmax (GM-SOP Eq. 3).

    The top k are taken on the raw logits and the softmax runs over the kept ones only, so the
    choice is never read back from zeros. Ties go to the lower index, or, with ``random_ties``,
    to a uniformly random one (the release breaks the ties of its constant initialisation
    randomly). Weights are clamped to the smallest positive float, so a logit gap large enough to
    underflow the softmax still leaves exactly k non-zeros.

    ``over='all'`` takes the softmax over all N logits and keeps the k chosen probabilities
    without renormalising them (Switch Transformer's form for k > 1): they sum to less than 1 and
    every logit gets a gradient through the normaliser. Renormalising them over the k (GShard)
    gives exactly the default: (e^h_i / sum_N e^h) / (sum_K e^h / sum_N e^h) = e^h_i / sum_K e^h.

    Args:
        logits: (B, N). k: 1 <= k <= N. over: 'kept' (the paper) or 'all'.

    Returns:
        weights (B, N), indices (B, k) best first, top_weights (B, k).
    """
    _check_choice(over, WEIGHTINGS, "gate weighting")
    n = logits.shape[-1]
    if not 1 <= k <= n:
        raise ValueError(f"k must be between 1 and the number of experts {n}, got {k}")
    if random_ties:
        perm = torch.rand(logits.shape, device=logits.device).argsort(dim=-1)
        _, pos = logits.gather(-1, perm).sort(dim=-1, descending=True, stable=True)
        indices = perm.gather(-1, pos[:, :k])
    else:
        indices = logits.sort(dim=-1, descending=True, stable=True).indices[:, :k]
    if over == "all":
        top_weights = logits.softmax(dim=-1).gather(-1, indices)
    else:
        top_weights = logits.gather(-1, indices).softmax(dim=-1)
    top_weights = top_weights.clamp(min=torch.finfo(logits.dtype).tiny)
    weights = torch.zeros_like(logits).scatter(-1, indices, top_weights)
    return weights, indices, top_weights


class NoisyTopKGate(nn.Module):
    """Sparsity-constrained gate (GM-SOP Eq. 2-3): noisy logits, top k, softmax over the kept.

    H(f) = r(f') + gamma * (softplus(W_n f'') + epsilon), gamma ~ N(0, 1) in training only, with
    f' = f or, with ``input_norm='batch'``, f standardised per feature (BatchNorm1d without
    affine parameters: batch statistics in training, running ones in eval). The router r is
    W_g f' (``router='linear'``, the paper's Eq. 2; f'' = f') or the cosine
    s * <f'/|f'|, w_n/|w_n|> of the feature with each expert's row (``router='cosine'``, as
    X-MoE; f'' = f'/|f'|): every clean logit lies in [-s, s], so the gap between two kept
    logits, and with it how far the softmax over the kept can saturate, is at most 2s.

    Args:
        in_features: dimension of the gating branch's output f.
        num_experts: N. k: experts kept per sample.
        form: 'mixing' (default), 'live' or 'release', the defaults of the choices below (see
            the module docstring for what each does); any choice given explicitly wins.
        noise: 'sample' draws one gamma per sample shared by all experts (the GM-SOP release);
            'expert' draws gamma per (sample, expert) (Shazeer et al. 2017).
        noise_epsilon: floor of the noise scale; default 0 for 'sample', 1e-2 for 'expert'.
        init: 'constant' sets W_g and W_n to 1/in_features (the release: every logit ties at
            first); 'zeros' as Shazeer et al.; 'normal' draws W_g from N(0, 1/in_features) and
            zeroes W_n (a cosine router needs rows with a direction).
        random_ties: break ties at random in training (the release) instead of by index.
        input_norm: 'none' or 'batch' (see above).
        router: 'linear' or 'cosine' (see above).
        logit_scale: s of the cosine router (ignored by the linear one).
        learn_scale: learn s (as log s, from ``logit_scale``), capped at ``max_logit_scale``.
        weighting: 'kept', the softmax over the k kept logits (the paper's Eq. 3), or 'all',
            the softmax over all N with the k chosen probabilities kept as they are
            (:func:`top_k_softmax`).

    forward(f: (B, in_features)) -> :class:`GateOutput`. Logits are computed in float32
    (float64 stays float64) with autocast off. In eval there is no noise and ties go to the
    lower index, so the choice is deterministic.
    """

    def __init__(
        self,
        in_features: int,
        num_experts: int = 16,
        k: int = 8,
        noise: str | None = None,
        noise_epsilon: float | None = None,
        init: str | None = None,
        *,
        form: str = "mixing",
        random_ties: bool | None = None,
        input_norm: str | None = None,
        router: str | None = None,
        logit_scale: float | None = None,
        learn_scale: bool | None = None,
        max_logit_scale: float = 100.0,
        weighting: str | None = None,
    ) -> None:
        super().__init__()
        _check_choice(form, tuple(GATE_FORMS), "gate form")
        defaults = {**GATE_DEFAULTS, **GATE_FORMS[form]}
        noise = noise or defaults["noise"]
        _check_choice(noise, NOISE_MODES, "gate noise")
        init = init or defaults["init"]
        _check_choice(init, GATE_INITS, "gate init")
        input_norm = input_norm or defaults["input_norm"]
        _check_choice(input_norm, INPUT_NORMS, "gate input norm")
        router = router or defaults["router"]
        _check_choice(router, ROUTERS, "gate router")
        weighting = weighting or defaults["weighting"]
        _check_choice(weighting, WEIGHTINGS, "gate weighting")
        if router == "cosine" and init != "normal":
            raise ValueError(f"a cosine router needs init='normal' (rows with a direction), "
                             f"got init={init!r}")
        if not 1 <= k <= num_experts:
            raise ValueError(f"k must be between 1 and num_experts={num_experts}, got {k}")
        self.num_experts, self.k, self.noise, self.form = num_experts, k, noise, form
        self.router, self.weighting = router, weighting
        self.random_ties = defaults["random_ties"] if random_ties is None else random_ties
        if noise_epsilon is None:
            noise_epsilon = 0.0 if noise == "sample" else 1e-2
        self.noise_epsilon = noise_epsilon
        self.norm = (
            # eps far below BatchNorm's 1e-5: a feature the branch shrank by orders of
            # magnitude is still standardised, so shrinking it buys the balance loss nothing.
            nn.BatchNorm1d(in_features, eps=1e-10, affine=False)
            if input_norm == "batch"
            else nn.Identity()
        )
        fill = 1.0 / in_features if init == "constant" else 0.0
        # Plain parameters, not nn.Linear: a model-wide Linear re-initialisation must not
        # overwrite the gate's initialisation, which decides how ties are broken at first.
        self.w_gate = nn.Parameter(torch.full((num_experts, in_features), fill))
        self.w_noise = nn.Parameter(torch.full((num_experts, in_features), fill))
        if init == "normal":
            nn.init.normal_(self.w_gate, std=in_features**-0.5)
        scale = defaults["logit_scale"] if logit_scale is None else float(logit_scale)
        if not 0 < scale <= max_logit_scale:
            raise ValueError(f"logit_scale must be in (0, {max_logit_scale:g}], got {scale}")
        self.max_logit_scale = float(max_logit_scale)
        learn = defaults["learn_scale"] if learn_scale is None else bool(learn_scale)
        self.fixed_scale = scale
        self.log_scale = (nn.Parameter(torch.tensor(math.log(scale)))
                          if router == "cosine" and learn else None)
        self.tap_gate_clean_logits = Tap("tap_gate_clean_logits", "the router's r(f), (B, N)")
        self.tap_gate_noisy_logits = Tap("tap_gate_noisy_logits", "H(f) of Eq. 2, (B, N)")
        self.tap_gate_indices = Tap("tap_gate_indices", "chosen experts, best first, (B, k)")
        self.tap_gate_weights = Tap("tap_gate_weights", "omega of Eq. 3, (B, N)")

    @property
    def logit_scale(self) -> float:
        """s of the cosine router, as used (capped at ``max_logit_scale``)."""
        if self.log_scale is None:
            return self.fixed_scale
        return float(self.log_scale.detach().exp().clamp(max=self.max_logit_scale))

    def forward(self, f: torch.Tensor) -> GateOutput:
        with torch.autocast(device_type=f.device.type, enabled=False):
            f = f.to(torch.promote_types(f.dtype, torch.float32))
            if isinstance(self.norm, nn.BatchNorm1d):
                f = self._standardise(f)
            if self.router == "cosine":
                f = F.normalize(f, dim=-1)
                rows = F.normalize(self.w_gate.to(f.dtype), dim=-1)
                clean = F.linear(f, rows)
                if self.log_scale is None:
                    clean = clean * self.fixed_scale
                else:
                    clean = clean * self.log_scale.to(f.dtype).exp().clamp(max=self.max_logit_scale)
            else:
                clean = F.linear(f, self.w_gate.to(f.dtype))
            clean = self.tap_gate_clean_logits(clean)
            noisy, scale = clean, None
            if self.training:
                scale = F.softplus(F.linear(f, self.w_noise.to(f.dtype))) + self.noise_epsilon
                columns = 1 if self.noise == "sample" else self.num_experts
                gamma = torch.randn(f.shape[0], columns, device=f.device, dtype=f.dtype)
                noisy = clean + gamma * scale
            noisy = self.tap_gate_noisy_logits(noisy)
            random_ties = self.training and self.random_ties
            weights, indices, top_weights = top_k_softmax(noisy, self.k, random_ties,
                                                          self.weighting)
        self.tap_gate_indices(indices)
        self.tap_gate_weights(weights)
        return GateOutput(weights, indices, top_weights, clean, noisy, scale)

    def _standardise(self, f: torch.Tensor) -> torch.Tensor:
        """BatchNorm1d without affine parameters in f's own dtype (float64 stays float64): batch
        statistics in training (running ones for a batch of one), running ones in eval."""
        bn = self.norm
        if self.training and f.shape[0] > 1:
            mean, var = f.mean(dim=0), f.var(dim=0, correction=0)
            with torch.no_grad():
                unbiased = var * f.shape[0] / (f.shape[0] - 1)
                bn.running_mean.lerp_(mean.to(bn.running_mean.dtype), bn.momentum)
                bn.running_var.lerp_(unbiased.to(bn.running_var.dtype), bn.momentum)
                bn.num_batches_tracked += 1
        else:
            mean, var = bn.running_mean.to(f.dtype), bn.running_var.to(f.dtype)
        return (f - mean) * torch.rsqrt(var + bn.eps)

    def extra_repr(self) -> str:
        scale = f", logit_scale={self.logit_scale:.3g}" if self.router == "cosine" else ""
        return (
            f"num_experts={self.num_experts}, k={self.k}, form={self.form!r}, "
            f"noise={self.noise!r}, random_ties={self.random_ties}, router={self.router!r}"
            f"{scale}, weighting={self.weighting!r}"
        )


__all__ = [
    "GATE_FORMS",
    "GateDiagnostics",
    "GateOutput",
    "GateRecorder",
    "NoisyTopKGate",
    "balance_loss",
    "cv_squared",
    "diagnose_gate",
    "gate_diagnostics",
    "load_loss",
    "min_images",
    "router_z_loss",
    "top_k_softmax",
]
