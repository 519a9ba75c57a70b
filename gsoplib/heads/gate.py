"""The GM-SOP gate (Wang et al. NeurIPS 2018, Sec. 2.1, Eq. 2-4), its losses and its diagnostics.

A sparsity-constrained gate scores N experts (component models) from a gating feature f, keeps
the top K per sample and softmaxes over the kept (:class:`NoisyTopKGate`). A balance loss on the
batch's importance (:func:`balance_loss`, Eq. 4) and optionally Shazeer et al.'s load loss
(:func:`load_loss`) keep every expert trained. :func:`gate_diagnostics` says whether a gate
actually chooses by image: usage per expert, the chosen sets, the mutual information between
class and choice, how far the weights are from a tie, and a verdict sentence.

Two forms of the gate are selectable (``GatedMixtureHead(gate="...")``):

``'release'``  the GM-SOP release: one noise draw per image shared by all experts, W_g and W_n
               initialised to the constant 1/dim, ties broken at random in training, the
               gating feature used as the branch outputs it. Measured here (README, GM-SOP
               section; ``benchmarks/gate.py``): under alpha = 100 the gating branch learns to
               output ~0, every logit ties, random tie-breaking makes the training-time
               importance even, and the balance loss is satisfied by a gate that sees nothing.
               In eval the ties go to the lowest indices: a near-constant choice, weights 1/K.
``'live'``     (default) one noise draw per (image, expert) with a 1e-2 floor and zero init
               (Shazeer et al.), ties to the lower index, the gating feature standardised by a
               BatchNorm without affine parameters, so the branch cannot shrink its output to
               zero to please the balance loss, and (in :class:`GatedMixtureHead`) a gating
               branch that reads a detached feature map, so the balance loss at alpha = 100
               trains the gate and not the backbone (measured, ``benchmarks/gate.py``: with the
               gradient, test top-1 fell from 80% to 49% at the same budget).
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
GATE_INITS = ("constant", "zeros")
INPUT_NORMS = ("none", "batch")
GATE_FORMS = {
    "release": {"noise": "sample", "init": "constant", "random_ties": True, "input_norm": "none",
                "detach_input": False},
    "live": {"noise": "expert", "init": "zeros", "random_ties": False, "input_norm": "batch",
             "detach_input": True},
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
    logits: torch.Tensor, k: int, random_ties: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Keep the k largest logits, set the rest to -inf, softmax (GM-SOP Eq. 3).

    The top k are taken on the raw logits and the softmax runs over the kept ones only, so the
    choice is never read back from zeros. Ties go to the lower index, or, with ``random_ties``,
    to a uniformly random one (the release breaks the ties of its constant initialisation
    randomly). Weights are clamped to the smallest positive float, so a logit gap large enough to
    underflow the softmax still leaves exactly k non-zeros.

    Args:
        logits: (B, N). k: 1 <= k <= N.

    Returns:
        weights (B, N), indices (B, k) best first, top_weights (B, k).
    """
    n = logits.shape[-1]
    if not 1 <= k <= n:
        raise ValueError(f"k must be between 1 and the number of experts {n}, got {k}")
    if random_ties:
        perm = torch.rand(logits.shape, device=logits.device).argsort(dim=-1)
        _, pos = logits.gather(-1, perm).sort(dim=-1, descending=True, stable=True)
        indices = perm.gather(-1, pos[:, :k])
    else:
        indices = logits.sort(dim=-1, descending=True, stable=True).indices[:, :k]
    top_logits = logits.gather(-1, indices)
    top_weights = top_logits.softmax(dim=-1).clamp(min=torch.finfo(top_logits.dtype).tiny)
    weights = torch.zeros_like(logits).scatter(-1, indices, top_weights)
    return weights, indices, top_weights


class NoisyTopKGate(nn.Module):
    """Sparsity-constrained gate (GM-SOP Eq. 2-3): noisy logits, top k, softmax over the kept.

    H(f) = W_g f' + gamma * (softplus(W_n f') + epsilon), gamma ~ N(0, 1) in training only, with
    f' = f or, with ``input_norm='batch'``, f standardised per feature (BatchNorm1d without
    affine parameters: batch statistics in training, running ones in eval).

    Args:
        in_features: dimension of the gating branch's output f.
        num_experts: N. k: experts kept per sample.
        form: 'live' (default) or 'release', the defaults of the four choices below (see the
            module docstring for what each does); any choice given explicitly wins.
        noise: 'sample' draws one gamma per sample shared by all experts (the GM-SOP release);
            'expert' draws gamma per (sample, expert) (Shazeer et al. 2017).
        noise_epsilon: floor of the noise scale; default 0 for 'sample', 1e-2 for 'expert'.
        init: 'constant' sets W_g and W_n to 1/in_features (the release: every logit ties at
            first); 'zeros' as Shazeer et al.
        random_ties: break ties at random in training (the release) instead of by index.
        input_norm: 'none' or 'batch' (see above).

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
        form: str = "live",
        random_ties: bool | None = None,
        input_norm: str | None = None,
    ) -> None:
        super().__init__()
        _check_choice(form, tuple(GATE_FORMS), "gate form")
        defaults = GATE_FORMS[form]
        noise = noise or defaults["noise"]
        _check_choice(noise, NOISE_MODES, "gate noise")
        init = init or defaults["init"]
        _check_choice(init, GATE_INITS, "gate init")
        input_norm = input_norm or defaults["input_norm"]
        _check_choice(input_norm, INPUT_NORMS, "gate input norm")
        if not 1 <= k <= num_experts:
            raise ValueError(f"k must be between 1 and num_experts={num_experts}, got {k}")
        self.num_experts, self.k, self.noise, self.form = num_experts, k, noise, form
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
        self.tap_gate_clean_logits = Tap("tap_gate_clean_logits", "W_g f, (B, N)")
        self.tap_gate_noisy_logits = Tap("tap_gate_noisy_logits", "H(f) of Eq. 2, (B, N)")
        self.tap_gate_indices = Tap("tap_gate_indices", "chosen experts, best first, (B, k)")
        self.tap_gate_weights = Tap("tap_gate_weights", "omega of Eq. 3, (B, N)")

    def forward(self, f: torch.Tensor) -> GateOutput:
        with torch.autocast(device_type=f.device.type, enabled=False):
            f = f.to(torch.promote_types(f.dtype, torch.float32))
            if isinstance(self.norm, nn.BatchNorm1d):
                f = self._standardise(f)
            clean = self.tap_gate_clean_logits(F.linear(f, self.w_gate.to(f.dtype)))
            noisy, scale = clean, None
            if self.training:
                scale = F.softplus(F.linear(f, self.w_noise.to(f.dtype))) + self.noise_epsilon
                columns = 1 if self.noise == "sample" else self.num_experts
                gamma = torch.randn(f.shape[0], columns, device=f.device, dtype=f.dtype)
                noisy = clean + gamma * scale
            noisy = self.tap_gate_noisy_logits(noisy)
            random_ties = self.training and self.random_ties
            weights, indices, top_weights = top_k_softmax(noisy, self.k, random_ties)
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
        return (
            f"num_experts={self.num_experts}, k={self.k}, form={self.form!r}, "
            f"noise={self.noise!r}, random_ties={self.random_ties}"
        )


# --------------------------------------------------------------------------------------------
# Diagnostics: does the gate choose by image?
# --------------------------------------------------------------------------------------------

#: A gate ties when its chosen weights are on average within this fraction of 1/K.
TIE_TOLERANCE = 0.05
#: The choice is constant when one set of K experts is chosen for at least this share of images.
CONSTANT_SHARE = 0.5
#: An expert is starved when it gets less than this fraction of its fair share K/N of images.
STARVED_FRACTION = 0.25
#: Choices ignore the class when MI(class; expert) is below this fraction of log2(N/K) bits.
CLASS_BLIND = 0.1


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
    mutual_information: float | None = None
    class_dependence: float | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def degenerate(self) -> bool:
        return bool(self.problems)

    @property
    def verdict(self) -> str:
        """One sentence: what is wrong with the gate, or that it chooses by image."""
        if self.problems:
            return "The gate is degenerate: " + "; ".join(self.problems) + "."
        dep = (
            f", class dependence {self.class_dependence:.2f}"
            if self.class_dependence is not None
            else ""
        )
        return (
            f"The gate chooses by image: all {self.num_experts} experts used "
            f"(least {min(self.image_share):.0%} of images), {self.distinct_sets} distinct sets "
            f"(most common {self.top_set_share:.0%}), weights {self.weight_deviation:.3f} from "
            f"1/K{dep}."
        )

    def to_dict(self) -> dict:
        out = asdict(self)
        out["top_sets"] = [[list(s), share] for s, share in self.top_sets]
        out["degenerate"], out["verdict"] = self.degenerate, self.verdict
        return out

    def postfix(self) -> str:
        """A few characters for a progress bar: MI, least-used share, weight deviation."""
        mi = f"MI {self.mutual_information:.2f}b " if self.mutual_information is not None else ""
        return f"{mi}min {min(self.image_share):.0%} dev {self.weight_deviation:.2f}"


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
) -> GateDiagnostics:
    """Diagnose a gate from what it chose for S samples.

    Args:
        indices: (S, K) chosen experts. weights: (S, N) omega (K non-zeros per row).
        labels: (S,) class of each sample (ints or names), to measure class dependence.
        top: how many of the most common chosen sets to report.

    Returns:
        :class:`GateDiagnostics` with
        usage_n = share of the S*K (sample, slot) pairs given to expert n (1/N each when even);
        image_share_n = share of samples that chose n (K/N when even);
        top_sets / distinct_sets / top_set_share: the histogram of chosen sets (order ignored);
        weight_deviation = mean over chosen of |omega - 1/K| (0: the gate ties);
        cv2 = CV(importance)^2 with importance_n = sum_s omega_n, sample variance (Eq. 4's
        statistic at alpha = 1, over all S samples instead of a mini-batch);
        mutual_information = I(class; expert) in bits, each sample contributing 1/K to each of
        its K experts; class_dependence = I / log2(N/K), 1 when each class fixes its K experts
        and the experts are evenly used;
        problems: one clause per degeneracy (ties, a constant choice, starved experts, a choice
        blind to the class), with the thresholds of this module.
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
    deviation = float((weights.gather(1, indices) - 1.0 / k).abs().mean())
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
    )
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
    if k < n:
        if deviation < TIE_TOLERANCE / k:
            diag.problems.append(f"its chosen weights tie at 1/K = {1 / k:.4f} "
                                 f"(mean deviation {deviation:.1e})")
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
        if diag.class_dependence is not None and diag.class_dependence < CLASS_BLIND:
            diag.problems.append(
                f"its choices carry {diag.mutual_information:.3f} bits about the class "
                f"({diag.class_dependence:.2f} of the {math.log2(n / k):.1f} possible)"
            )
    return diag


class GateRecorder:
    """Collects what every gate in ``model`` chose while active, through its taps.

    >>> with GateRecorder(model) as rec:
    ...     model(x)
    >>> rec.diagnostics(labels=y)

    Hooks the ``tap_gate_indices`` and ``tap_gate_weights`` taps of the first gate in module
    order (a model with none records nothing); removes its hooks on exit. Tensors are kept on
    the device until read.
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.indices: list[torch.Tensor] = []
        self.weights: list[torch.Tensor] = []
        self.handles: list = []
        self.gate_path: str | None = None

    def __enter__(self) -> GateRecorder:
        found = {}
        for path, tap in taps(self.model).items():
            if tap.name in ("tap_gate_indices", "tap_gate_weights"):
                found.setdefault(path.rpartition(".")[0], {})[tap.name] = tap
        for parent, pair in found.items():
            if len(pair) == 2:
                self.gate_path = parent
                self.handles += [
                    pair["tap_gate_indices"].register_forward_hook(self._keep(self.indices)),
                    pair["tap_gate_weights"].register_forward_hook(self._keep(self.weights)),
                ]
                break
        return self

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
        return gate_diagnostics(indices, weights, labels)


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
    "top_k_softmax",
]
