"""Does a GM-SOP gate choose by image? Usage per expert, the chosen sets, the mutual information
between class and choice, the effective number of components, the distance from a tie, a verdict
sentence, and the least number of images a verdict needs; a recorder that collects a model's
choices through its gate's taps, and an evaluation loop over a loader.

It reads only what the gate's taps record (floor 1) and tensors, so it stays beside the gate on
floor 2: the heads package keeps exporting these names without importing from a higher floor.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from ..taps import taps
from .gate_losses import cv_squared

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
    :meth:`keep_last` bounds what is kept. :attr:`counts` ((N,) on the device, or None) counts
    every component's choices since the recorder was built, whatever :meth:`keep_last` forgot:
    the trainer's per-epoch component usage.
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.indices: list[torch.Tensor] = []
        self.weights: list[torch.Tensor] = []
        self.logits: list[torch.Tensor] = []
        self.handles: list = []
        self.gate_path: str | None = None
        self.counts: torch.Tensor | None = None

    def __enter__(self) -> GateRecorder:
        modules, found = dict(self.model.named_modules()), {}
        names = ("tap_gate_indices", "tap_gate_weights", "tap_gate_clean_logits")
        for path, tap in taps(self.model).items():
            if tap.name in names:
                found.setdefault(path.rpartition(".")[0], {})[tap.name] = tap
        for parent, group in found.items():
            if "tap_gate_indices" not in group:
                continue
            if "tap_gate_weights" in group:  # the diagnostics need both; the counts, indices
                self.gate_path = parent
                stores = {"tap_gate_indices": self.indices, "tap_gate_weights": self.weights,
                          "tap_gate_clean_logits": self.logits}
                self.handles += [tap.register_forward_hook(self._keep(stores[name]))
                                 for name, tap in group.items()]
            gate = modules.get(parent, self.model)
            experts = getattr(gate, "num_experts", None) or getattr(gate, "num_components", None)
            self.handles.append(group["tap_gate_indices"].register_forward_hook(
                self._count(experts)))
            break
        return self

    def _count(self, num_experts: int | None):
        def hook(module, args, output):
            indices = args[0].detach().reshape(-1)
            size = num_experts or int(indices.max()) + 1
            # scatter_add, not bincount: bincount reads its input's maximum back to the host on
            # CUDA, a sync in every training step.
            counts = torch.zeros(size, dtype=torch.long, device=indices.device).scatter_add_(
                0, indices, torch.ones_like(indices))
            self.counts = counts if self.counts is None else self.counts + counts

        return hook

    def fractions(self) -> list[float] | None:
        """Share of all (sample, chosen slot) pairs routed to each component so far (the
        components' usage), or None before the gate has run."""
        if self.counts is None:
            return None
        return (self.counts.double() / self.counts.sum().clamp_min(1)).tolist()

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


__all__ = ["GateDiagnostics", "GateRecorder", "diagnose_gate", "gate_diagnostics", "min_images",
           "min_images_for_class"]
