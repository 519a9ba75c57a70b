"""GM-SOP's Fig. 2 in seconds: a gated mixture trained on fixed random features.

The paper's Fig. 2 (Wang et al. NeurIPS 2018) trains GM-GAP-16-4 with and without the balance
loss (Eq. 4, alpha = 0 and 100) and counts the images each of the 16 components receives.
``benchmarks/balance.py`` does it with a whole network in about fifteen minutes. Here only the
head learns: Fashion-MNIST images are mapped once through a fixed random projection and a ReLU,
phi(x) = max(0, R x) with R (dim, 784) Gaussian, and a :class:`GatedMixtureHead` of parametric
GAP components (1x1 conv + ReLU + mean, GM-SOP Sec. 3.1 item 2) with a GAP gating branch is
trained on phi for a few hundred Adam steps: two to four seconds on one CPU thread.

The gate is the library's ``'live'`` form by default (per-(image, expert) noise with a 1e-2
floor, zero init, ties to the lower index; ``gate=`` picks another) with its input
standardisation switched off by default (``standardise=False``). The standardisation is itself
a cure for collapse: it centres the gating feature, and with it the live gate keeps most
components busy without the loss (measured
in ``benchmarks/results/balance-cpu.json`` on the whole network, and here). Phi is a ReLU output
with a large mean shared by every image; without centring, every logit W_g phi is dominated by
that shared part, the components that are good early win for every image and, trained on every
image, get better still: the rich-get-richer loop the balance loss exists to break.

Examples:
    >>> data = toy_data(train_samples=512, test_samples=128)
    >>> run = train_toy_mixture(data, num_components=16, k=4, alpha=0.0, steps=20,
    ...                         window=10)
    >>> run.usage_cv >= 0, 0 < run.busy <= 16   # how uneven, how many components work
    (True, True)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .data import load_dataset, normalize
from .heads import GatedMixtureHead
from .heads.gate import GateDiagnostics, GateRecorder, diagnose_gate, gate_diagnostics

#: A component is busy when it gets at least this fraction of an even share 1/N of the choices
#: (the threshold of ``benchmarks/balance.py``).
BUSY_FRACTION = 0.25


@dataclass
class ToyData:
    """Fixed random features of Fashion-MNIST images: (S, dim, 1, 1) tensors and (S,) labels."""

    train_features: torch.Tensor
    train_labels: torch.Tensor
    test_features: torch.Tensor
    test_labels: torch.Tensor
    classes: list[str]

    @property
    def dim(self) -> int:
        return self.train_features.shape[1]


def random_features(images: torch.Tensor, dim: int = 64, seed: int = 0) -> torch.Tensor:
    """phi(x) = max(0, R x) with R (dim, P) ~ N(0, 1/P) drawn from ``seed``, for images (S, ...)
    flattened to P pixels: (S, dim, 1, 1), a 1x1 feature map a mixture head can read."""
    flat = images.flatten(1).float()
    gen = torch.Generator().manual_seed(seed)
    projection = torch.randn(dim, flat.shape[1], generator=gen) / flat.shape[1] ** 0.5
    return F.relu(flat @ projection.T)[:, :, None, None]


def toy_data(
    train_samples: int = 4000, test_samples: int = 1000, dim: int = 64, seed: int = 0
) -> ToyData:
    """The first ``train_samples`` / ``test_samples`` Fashion-MNIST images, normalised, through
    :func:`random_features` (the same R for both splits)."""
    splits = []
    for train, count in ((True, train_samples), (False, test_samples)):
        split = load_dataset("fashion_mnist", train=train)
        images = normalize(split.images[:count], split.info.mean, split.info.std)
        splits += [random_features(images, dim, seed), split.labels[:count].long()]
    return ToyData(*splits, classes=list(split.info.classes))


def usage_cv(usage: torch.Tensor | list[float]) -> float:
    """Coefficient of variation std / mean (population std) of a (N,) usage vector: 0 when
    every component gets the same share, sqrt(N / K - 1) when K of N take every choice evenly."""
    usage = torch.as_tensor(usage, dtype=torch.float64)
    return float(usage.std(correction=0) / usage.mean())


@dataclass
class ToyMixtureRun:
    """What :func:`train_toy_mixture` measured.

    usage: (N,) share of the (image, slot) choices each component got over the last ``window``
    training steps (the load; the balance loss sees the importance, the summed weights, and
    evens the counts with it); usage_cv: :func:`usage_cv` of it; busy: how many
    components got at least BUSY_FRACTION / N; cv_history: (step, CV of the usage over the
    ``window`` steps ending there); train: the gate diagnostics of those training choices;
    test: :func:`~gsoplib.heads.gate.diagnose_gate` on the test features (eval, no noise);
    test_top1: the head's accuracy on them.
    """

    alpha: float
    num_components: int
    k: int
    standardise: bool
    steps: int
    usage: list[float]
    usage_cv: float
    busy: int
    cv_history: list[tuple[int, float]]
    train: GateDiagnostics
    test: GateDiagnostics
    test_top1: float
    gate: str = "live"
    seconds: float = field(default=0.0, compare=False)

    def summary(self) -> str:
        """One line: the setting, the training usage and the test accuracy."""
        form = "standardised" if self.standardise else "raw"
        return (
            f"alpha {self.alpha:g}, N = {self.num_components}, K = {self.k}, {self.gate} gate, "
            f"{form} input: "
            f"usage CV {self.usage_cv:.2f}, {self.busy} of {self.num_components} components "
            f"busy, the top {self.k} take {sum(sorted(self.usage)[-self.k:]):.0%} of the "
            f"choices; test top-1 {self.test_top1:.1%}"
        )


def toy_head(
    dim: int, num_components: int, k: int, alpha: float, standardise: bool = False,
    num_classes: int = 10, gate: str = "live",
) -> GatedMixtureHead:
    """GM-GAP-N-K on (B, dim, 1, 1) features: N parametric GAP components of width 32, a GAP
    gating branch, the gate of form ``gate`` (standardised input or not), no dropout."""
    return GatedMixtureHead(
        dim, component="gap", num_components=num_components, k=k, num_classes=num_classes,
        gate=gate, gate_input_norm="batch" if standardise else "none", gate_branch="gap",
        gap_dim=32, alpha=alpha, dropout=0.0,
    )


def train_step(head: torch.nn.Module, optimiser: torch.optim.Optimizer, data: ToyData,
               batch_size: int, generator: torch.Generator) -> torch.Tensor:
    """One Adam step of a toy head on a random batch: cross-entropy plus the head's auxiliary
    (balance) loss. Returns the (batch_size,) rows drawn."""
    rows = torch.randint(0, len(data.train_labels), (batch_size,), generator=generator)
    logits, aux = head(data.train_features[rows], return_aux=True)
    loss = F.cross_entropy(logits, data.train_labels[rows]) + aux
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    optimiser.step()
    return rows


def train_toy_mixture(
    data: ToyData,
    num_components: int = 16,
    k: int = 4,
    alpha: float = 0.0,
    *,
    standardise: bool = False,
    gate: str = "live",
    steps: int = 300,
    batch_size: int = 128,
    lr: float = 1e-2,
    window: int = 50,
    seed: int = 0,
    progress: bool = False,
) -> ToyMixtureRun:
    """Train :func:`toy_head` on ``data`` with cross-entropy + alpha * CV(importance)^2 (Eq. 4).

    Adam at ``lr``, ``steps`` mini-batches of ``batch_size`` drawn with ``seed`` (the same
    batches for every alpha). Deterministic on one thread for a given seed.

    Raises:
        ValueError: k outside 1..num_components, or window outside 1..steps.
    """
    if not 1 <= k <= num_components:
        raise ValueError(f"k must be between 1 and num_components={num_components}, got {k}")
    if not 1 <= window <= steps:
        raise ValueError(f"window must be between 1 and steps={steps}, got {window}")
    start = time.perf_counter()
    torch.manual_seed(seed)
    head = toy_head(data.dim, num_components, k, alpha, standardise, len(data.classes), gate)
    optimiser = torch.optim.Adam(head.parameters(), lr=lr)
    batches = torch.Generator().manual_seed(seed)
    chosen: list[torch.Tensor] = []
    cv_history = []
    head.train()
    with GateRecorder(head) as rec:
        for step in tqdm(range(1, steps + 1), disable=not progress, desc=f"alpha {alpha:g}"):
            rows = train_step(head, optimiser, data, batch_size, batches)
            chosen.append(rows)
            recent = torch.cat(rec.indices[-window:]).flatten()
            if step % 10 == 0 or step == steps:
                counts = recent.bincount(minlength=num_components).double()
                cv_history.append((step, usage_cv(counts / counts.sum())))
            rec.keep_last(window)
            del chosen[:-window]
        indices, weights = rec.tensors()
    labels = torch.cat(chosen)
    train = gate_diagnostics(indices, weights, data.train_labels[labels])
    test = diagnose_gate(head, data.test_features, data.test_labels)
    with torch.no_grad():
        head.eval()
        top1 = float((head(data.test_features).argmax(1) == data.test_labels).double().mean())
    usage = torch.tensor(train.usage)
    return ToyMixtureRun(
        alpha=alpha, num_components=num_components, k=k, standardise=standardise, steps=steps,
        usage=train.usage, usage_cv=usage_cv(usage),
        busy=int((usage >= BUSY_FRACTION / num_components).sum()), cv_history=cv_history,
        train=train, test=test, test_top1=top1, gate=gate, seconds=time.perf_counter() - start,
    )


__all__ = [
    "BUSY_FRACTION",
    "ToyData",
    "ToyMixtureRun",
    "random_features",
    "toy_data",
    "toy_head",
    "train_step",
    "train_toy_mixture",
    "usage_cv",
]
