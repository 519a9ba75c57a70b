"""The GM-SOP gate (Wang et al. NeurIPS 2018, Sec. 2.1, Eq. 2-4), its losses and its diagnostics.

A sparsity-constrained gate scores N experts (component models) from a gating feature f, keeps
the top K per sample and softmaxes over the kept (:class:`NoisyTopKGate`). A balance loss on the
batch's importance (:func:`balance_loss`, Eq. 4) and optionally Shazeer et al.'s load loss
(:func:`load_loss`) keep every expert trained. :func:`gate_diagnostics` says whether a gate
actually chooses by image: usage per expert, the chosen sets, the mutual information between
class and choice, how far the weights are from a tie, and a verdict sentence.

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
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..taps import Tap, taps

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


# --------------------------------------------------------------------------------------------
# Losses: Eq. 4 and Shazeer et al.'s load loss
# --------------------------------------------------------------------------------------------


def cv_squared(values: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """Squared coefficient of variation (std / mean)^2 of a (N,) vector; 0 for N < 2."""
    values = values.to(torch.promote_types(values.dtype, torch.float32))
    if values.numel() < 2:
        return values.new_zeros(())
    return values.var(correction=1 if unbiased else 0) / (values.mean().square() + 1e-10)


def balance_loss(
    weights: torch.Tensor, alpha: float = 100.0, unbiased: bool = True
) -> torch.Tensor:
    """Balance loss L_B = alpha * CV(importance)^2 (GM-SOP Eq. 4; Shazeer et al. 2017, Eq. 6).

    Args:
        weights: (B, N) gate weights omega(X_s) of one mini-batch.
        alpha: the loss weight; the paper uses 100 (alpha = 0 switches the loss off, Fig. 2).
        unbiased: sample (N - 1) variance as in the GM-SOP release; False gives the population
            variance of Shazeer et al.

    Returns:
        Scalar: alpha * (std(I) / mean(I))^2 with importance I_n = sum_s omega_n(X_s). Zero when
        every CM gets the same total weight, growing with the imbalance.
    """
    if weights.dim() != 2:
        raise ValueError(f"balance_loss expects (B, N) weights, got shape {tuple(weights.shape)}")
    return alpha * cv_squared(weights.sum(dim=0), unbiased)


def load_loss(
    clean: torch.Tensor,
    noisy: torch.Tensor,
    noise_scale: torch.Tensor,
    k: int,
    weight: float = 1e-2,
) -> torch.Tensor:
    """Shazeer et al.'s smooth load loss: weight * CV(load)^2 (their Appendix A, Eq. 8-10).

    load_n = sum_s P(expert n stays in the top k of sample s when only its own noise is redrawn)
    = Phi((clean_n - threshold) / noise_scale_n), the threshold being the k-th largest of the
    other noisy logits. It gives every expert a gradient, chosen or not.

    Args:
        clean, noisy, noise_scale: (B, N); k: experts kept; weight: the loss weight (1e-2).
    """
    n = noisy.shape[-1]
    if k >= n:
        return clean.new_zeros(())
    top = noisy.topk(k + 1, dim=-1).values
    in_threshold, out_threshold = top[:, k - 1 : k], top[:, k : k + 1]
    normal = torch.distributions.Normal(clean.new_zeros(()), clean.new_ones(()))
    prob_in = normal.cdf((clean - out_threshold) / noise_scale)
    prob_out = normal.cdf((clean - in_threshold) / noise_scale)
    load = torch.where(noisy >= in_threshold, prob_in, prob_out).sum(dim=0)
    return weight * cv_squared(load, unbiased=False)


def router_z_loss(logits: torch.Tensor, weight: float = 1e-3) -> torch.Tensor:
    """ST-MoE's router z-loss (Zoph et al. 2022, Eq. 5): weight * mean_s logsumexp(H_s)^2.

    Keeps the gate's logits small; (B, N) clean logits -> scalar, float32.
    """
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
    return weight * torch.logsumexp(logits, dim=-1).square().mean()


# --------------------------------------------------------------------------------------------
# The gate: Eq. 2-3
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Diagnostics: does the gate choose by image?
# --------------------------------------------------------------------------------------------

#: A gate with K >= 2 ties when its chosen weights are on average within this fraction of 1/K.
TIE_TOLERANCE = 0.05
#: The choice is constant when one set of K experts is chosen for at least this share of images.
CONSTANT_SHARE = 0.5
#: An expert is starved when it gets less than this fraction of its fair share K/N of images.
STARVED_FRACTION = 0.25
#: Choices ignore the class when MI(class; expert) is below this fraction of log2(N/K) bits.
CLASS_BLIND = 0.1
#: A gate with K >= 2 has collapsed to one component when, on average over the images, fewer
#: than this many of its K chosen components count (inverse Simpson index of the weights).
ONE_COMPONENT = 1.5
#: A weight above this is "all of the image" (the share of such images is reported).
ONE_HOT_WEIGHT = 0.99
#: No verdict from fewer images than each expert needs to be expected in this many of, at an
#: even share K/N: at 10, a starved expert (under a quarter of that, 2.5 images) is told from an
#: even one by chance with probability below 1e-3 (binomial), and a constant choice of one set
#: among C(N, K) cannot arise from two or three images agreeing.
MIN_CHOICES_PER_EXPERT = 10
MIN_IMAGES = 20


def min_images(num_experts: int, k: int) -> int:
    """The fewest images :func:`gate_diagnostics` gives a verdict on: each expert expected in
    :data:`MIN_CHOICES_PER_EXPERT` of them at an even share, and at least :data:`MIN_IMAGES`.

    Examples:
        >>> min_images(8, 4), min_images(16, 1)
        (20, 160)
    """
    return max(MIN_IMAGES, math.ceil(MIN_CHOICES_PER_EXPERT * num_experts / k))


def min_images_for_class(num_classes: int, num_experts: int, k: int) -> int:
    """The fewest images whose MI(class; expert) is judged: the plug-in estimate's upward bias,
    (classes - 1)(N - 1) / (2 S ln 2) bits (Miller 1955), must be at most half of the
    class-blind threshold CLASS_BLIND * log2(N / K).

    Examples:
        >>> min_images_for_class(10, 8, 4)
        909
    """
    if num_experts <= k:
        return 0
    threshold = CLASS_BLIND * math.log2(num_experts / k)
    bias_per_image = (num_classes - 1) * (num_experts - 1) / (2 * math.log(2))
    return math.ceil(bias_per_image / (threshold / 2))


@dataclass
class GateDiagnostics:
    """What a gate did over S samples; see :func:`gate_diagnostics` for each field's formula."""

    num_experts: int
    k: int
    samples: int
    usage: list[float]
    image_share: list[float]
    top_sets: list[tuple[tuple[int, ...], float]]
    distinct_sets: int
    top_set_share: float
    weight_deviation: float
    cv2: float
    effective_components: float = 1.0
    largest_weight: float = 1.0
    one_hot_share: float = 1.0
    logit_span: float | None = None
    kept_logit_gap: float | None = None
    min_images: int = MIN_IMAGES
    mutual_information: float | None = None
    class_dependence: float | None = None
    class_judged: bool = False
    problems: list[str] = field(default_factory=list)

    @property
    def judged(self) -> bool:
        """Whether there were enough images for a verdict (:func:`min_images`)."""
        return self.samples >= self.min_images

    @property
    def degenerate(self) -> bool:
        return bool(self.problems)

    @property
    def collapsed(self) -> bool:
        """K >= 2 chosen, about one counts (see :data:`ONE_COMPONENT`)."""
        return self.k >= 2 and self.effective_components < ONE_COMPONENT

    @property
    def verdict(self) -> str:
        """One sentence: too few images to judge, what is wrong with the gate, or that it
        chooses by image (and how many of the K chosen count)."""
        if not self.judged:
            return (f"Too few images to judge the gate: {self.samples} of the {self.min_images} "
                    f"its statistics need ({MIN_CHOICES_PER_EXPERT} per component at an even "
                    "share).")
        if self.problems:
            return "The gate is degenerate: " + "; ".join(self.problems) + "."
        dep = (
            f", class dependence {self.class_dependence:.2f}"
            if self.class_dependence is not None and self.class_judged
            else ""
        )
        return (
            f"The gate chooses by image: all {self.num_experts} experts used "
            f"(least {min(self.image_share):.0%} of images), {self.distinct_sets} distinct sets "
            f"(most common {self.top_set_share:.0%}), {self.effective_components:.2f} effective "
            f"components of K = {self.k} per image (largest weight {self.largest_weight:.2f} on "
            f"average){dep}."
        )

    def to_dict(self) -> dict:
        out = asdict(self)
        out["top_sets"] = [[list(s), share] for s, share in self.top_sets]
        out["degenerate"], out["verdict"] = self.degenerate, self.verdict
        out["judged"], out["collapsed"] = self.judged, self.collapsed
        return out

    def postfix(self) -> str:
        """A few characters for a progress bar: effective components, MI, least-used share."""
        mi = f" MI {self.mutual_information:.2f}b" if self.mutual_information is not None else ""
        return (f"eff {self.effective_components:.2f}/{self.k}{mi} "
                f"min {min(self.image_share):.0%}")


def _set_histogram(indices: torch.Tensor, n: int) -> Counter:
    """Counter of chosen sets (sorted index tuples) over the rows of (S, K) ``indices``."""
    if n > 62:
        return Counter(tuple(sorted(row)) for row in indices.tolist())
    masks, counts = torch.unique((1 << indices).sum(dim=1), return_counts=True)
    pairs = zip(masks.tolist(), counts.tolist())
    return Counter({tuple(i for i in range(n) if m >> i & 1): c for m, c in pairs})


def _entropy_bits(p: torch.Tensor) -> float:
    p = p[p > 0]
    return float(-(p * p.log2()).sum())


def gate_diagnostics(
    indices: torch.Tensor,
    weights: torch.Tensor,
    labels: torch.Tensor | Sequence | None = None,
    top: int = 8,
    logits: torch.Tensor | None = None,
) -> GateDiagnostics:
    """Diagnose a gate from what it chose for S samples.

    Args:
        indices: (S, K) chosen experts. weights: (S, N) omega (K non-zeros per row).
        labels: (S,) class of each sample (ints or names), to measure class dependence.
        top: how many of the most common chosen sets to report.
        logits: (S, N) the clean gate logits, for the logit scale.

    Returns:
        :class:`GateDiagnostics` with
        usage_n = share of the S*K (sample, slot) pairs given to expert n (1/N each when even);
        image_share_n = share of samples that chose n (K/N when even);
        top_sets / distinct_sets / top_set_share: the histogram of chosen sets (order ignored);
        weight_deviation = mean over chosen of |omega - 1/K| (0: the gate ties);
        effective_components = mean over samples of 1 / sum_k p_k^2, p the chosen weights
        renormalised to sum 1 (the inverse Simpson index: K when they tie, 1 when one takes
        all); largest_weight = mean of max_k p_k; one_hot_share = share of samples with
        max_k p_k > ONE_HOT_WEIGHT;
        logit_span = median over samples of max - min of the N logits; kept_logit_gap = median
        of the first minus the K-th largest (what the softmax over the kept sees);
        cv2 = CV(importance)^2 with importance_n = sum_s omega_n, sample variance (Eq. 4's
        statistic at alpha = 1, over all S samples instead of a mini-batch);
        mutual_information = I(class; expert) in bits, each sample contributing 1/K to each of
        its K experts; class_dependence = I / log2(N/K), 1 when each class fixes its K experts
        and the experts are evenly used;
        problems: one clause per degeneracy (ties, a collapse to one component, a constant
        choice, starved experts, a choice blind to the class), with the thresholds of this
        module; none below :func:`min_images` samples (the verdict then says so), and the
        class clause only from :func:`min_images_for_class` samples on.
    """
    indices = indices.detach().cpu().long()
    weights = weights.detach().cpu().double()
    samples, k = indices.shape
    n = weights.shape[1]
    if samples == 0:
        raise ValueError("gate_diagnostics needs at least one sample")
    chosen = torch.zeros(samples, n, dtype=torch.float64).scatter_(1, indices, 1.0)
    image_share = chosen.mean(dim=0)
    usage = image_share / k
    sets = _set_histogram(indices, n)
    top_sets = [(s, c / samples) for s, c in sets.most_common(top)]
    kept = weights.gather(1, indices)
    deviation = float((kept - 1.0 / k).abs().mean())
    p = kept / kept.sum(dim=1, keepdim=True).clamp_min(torch.finfo(torch.float64).tiny)
    largest = p.max(dim=1).values
    cv2 = float(cv_squared(weights.sum(dim=0)))
    diag = GateDiagnostics(
        num_experts=n,
        k=k,
        samples=samples,
        usage=usage.tolist(),
        image_share=image_share.tolist(),
        top_sets=top_sets,
        distinct_sets=len(sets),
        top_set_share=top_sets[0][1],
        weight_deviation=deviation,
        cv2=cv2,
        effective_components=float((1.0 / p.square().sum(dim=1)).mean()),
        largest_weight=float(largest.mean()),
        one_hot_share=float((largest > ONE_HOT_WEIGHT).double().mean()),
        min_images=min_images(n, k),
    )
    if logits is not None:
        logits = logits.detach().cpu().double()
        ordered = logits.sort(dim=1, descending=True).values
        diag.logit_span = float((ordered[:, 0] - ordered[:, -1]).median())
        diag.kept_logit_gap = float((ordered[:, 0] - ordered[:, k - 1]).median())
    if labels is not None:
        labels = list(labels.tolist() if isinstance(labels, torch.Tensor) else labels)
        if len(labels) != samples:
            raise ValueError(f"labels has {len(labels)} entries for {samples} samples")
        code = {c: i for i, c in enumerate(sorted(set(labels), key=str))}
        rows = torch.tensor([code[lab] for lab in labels])
        joint = torch.zeros(len(code), n, dtype=torch.float64).index_add_(0, rows, chosen)
        joint /= samples * k  # (classes, N), sums to 1
        mi = _entropy_bits(joint.sum(1)) + _entropy_bits(joint.sum(0)) - _entropy_bits(joint)
        diag.mutual_information = max(mi, 0.0)
        diag.class_dependence = diag.mutual_information / math.log2(n / k) if n > k else 0.0
        diag.class_judged = len(code) > 1 and samples >= min_images_for_class(len(code), n, k)
    if k < n and diag.judged:
        # K = 1: the one weight is 1 by definition, not a tie (nor a collapse)
        if k >= 2 and deviation < TIE_TOLERANCE / k:
            diag.problems.append(f"its chosen weights tie at 1/K = {1 / k:.4f} "
                                 f"(mean deviation {deviation:.1e})")
        if diag.collapsed:
            diag.problems.append(
                f"it has collapsed to one component ({diag.effective_components:.2f} effective "
                f"components of K = {k} per image; {diag.one_hot_share:.0%} of images put over "
                f"{ONE_HOT_WEIGHT} on one)"
            )
        if diag.top_set_share >= CONSTANT_SHARE:
            diag.problems.append(
                f"{diag.top_set_share:.0%} of images choose the same experts "
                f"{{{', '.join(map(str, top_sets[0][0]))}}}"
            )
        starved = [i for i, s in enumerate(diag.image_share) if s < STARVED_FRACTION * k / n]
        if starved:
            diag.problems.append(
                f"expert{'s' if len(starved) > 1 else ''} {', '.join(map(str, starved))} "
                f"{'are' if len(starved) > 1 else 'is'} chosen by under "
                f"{STARVED_FRACTION * k / n:.1%} of images"
            )
        if diag.class_judged and diag.class_dependence < CLASS_BLIND:
            diag.problems.append(
                f"its choices carry {diag.mutual_information:.3f} bits about the class "
                f"({diag.class_dependence:.2f} of the {math.log2(n / k):.1f} possible)"
            )
    return diag


class GateRecorder:
    """Collects what every gate in ``model`` chose while active, through its taps.

    Examples:
        >>> import torch
        >>> from gsoplib.pretrained import load_pretrained
        >>> model = load_pretrained("fmnist_small_gmsop").model
        >>> with GateRecorder(model) as rec:
        ...     logits = model(torch.rand(4, 1, 28, 28))
        >>> d = rec.diagnostics()
        >>> d.samples, d.num_experts, d.k
        (4, 8, 4)

    Hooks the ``tap_gate_indices``, ``tap_gate_weights`` and (where it has one)
    ``tap_gate_clean_logits`` taps of the first gate in module order (a model with none records
    nothing); removes its hooks on exit. Tensors are kept on the device until read;
    :meth:`keep_last` bounds what is kept.
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.indices: list[torch.Tensor] = []
        self.weights: list[torch.Tensor] = []
        self.logits: list[torch.Tensor] = []
        self.handles: list = []
        self.gate_path: str | None = None

    def __enter__(self) -> GateRecorder:
        found = {}
        names = ("tap_gate_indices", "tap_gate_weights", "tap_gate_clean_logits")
        for path, tap in taps(self.model).items():
            if tap.name in names:
                found.setdefault(path.rpartition(".")[0], {})[tap.name] = tap
        for parent, group in found.items():
            if "tap_gate_indices" in group and "tap_gate_weights" in group:
                self.gate_path = parent
                stores = {"tap_gate_indices": self.indices, "tap_gate_weights": self.weights,
                          "tap_gate_clean_logits": self.logits}
                self.handles += [tap.register_forward_hook(self._keep(stores[name]))
                                 for name, tap in group.items()]
                break
        return self

    def keep_last(self, batches: int) -> None:
        """Forget all but the last ``batches`` forward passes."""
        for store in (self.indices, self.weights, self.logits):
            del store[:-batches]

    @staticmethod
    def _keep(store: list):
        def hook(module, args, output):
            store.append(args[0].detach())

        return hook

    def __exit__(self, *exc) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()

    @property
    def active(self) -> bool:
        return self.gate_path is not None

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(indices (S, K), weights (S, N)) of everything recorded, on the CPU."""
        if not self.indices:
            raise ValueError("the recorder has seen no gate output")
        return torch.cat(self.indices).cpu(), torch.cat(self.weights).cpu()

    def diagnostics(self, labels: torch.Tensor | Sequence | None = None) -> GateDiagnostics:
        indices, weights = self.tensors()
        logits = torch.cat(self.logits).cpu() if len(self.logits) == len(self.indices) else None
        return gate_diagnostics(indices, weights, labels, logits=logits)


@torch.no_grad()
def diagnose_gate(
    model: nn.Module,
    data: torch.Tensor | Iterable,
    labels: torch.Tensor | Sequence | None = None,
    batch_size: int = 256,
) -> GateDiagnostics:
    """Run ``model`` in eval over ``data`` and diagnose its gate (:func:`gate_diagnostics`).

    Args:
        model: a network with a gated mixture (e.g. ``create_model("small_gmsop")``).
        data: images (S, C, H, W), or an iterable of (images, labels) batches (a DataLoader).
        labels: (S,) classes for an image tensor; taken from the batches otherwise.
    Raises:
        ValueError: the model has no gate.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    seen: list = []
    try:
        with GateRecorder(model) as rec:
            if not rec.active:
                raise ValueError(f"{type(model).__name__} has no gate to diagnose")
            if isinstance(data, torch.Tensor):
                for start in range(0, len(data), batch_size):
                    model(data[start : start + batch_size].to(device))
            else:
                for x, y in data:
                    model(x.to(device))
                    seen.append(torch.as_tensor(y).cpu())
    finally:
        model.train(was_training)
    if labels is None and seen:
        labels = torch.cat(seen)
    return rec.diagnostics(labels)


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
