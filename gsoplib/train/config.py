"""A training run's settings: :class:`TrainConfig`, the recipe fields it may override, the
changes a resumed run accepts, and the names of the files a run writes."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from .recipes import SCHEDULES, recipe, scaled_lr

RECIPE_FIELDS = (
    "epochs",
    "batch_size",
    "lr",
    "momentum",
    "weight_decay",
    "nesterov",
    "schedule",
    "milestones",
    "gamma",
    "warmup_epochs",
    "label_smoothing",
    "augment",
    "reference_batch",
    "warmup_min_steps",
    "grad_clip",
    "new_lr_factor",
)
# Fields a resumed run may change: where and how fast it runs, not what it computes.
RESUMABLE_CHANGES = ("out_dir", "device", "workers", "progress", "data_root", "compile", "epochs",
                     "log_every")

CHECKPOINT_NAME = "model.safetensors"
STATE_NAME = "resume.pt"
METRICS_NAME = "metrics.jsonl"
STEPS_NAME = "steps.jsonl"
PLOT_NAME = "metrics.png"
PLOT_INTERVAL_S = 30.0
POSTFIX_STEPS = 20


@dataclass
class TrainConfig:
    """Everything a run depends on. Recipe fields left as None come from ``recipe``.

    ``batch_size`` is the global batch: with N processes each takes batch_size / N. Without an
    ``lr`` of its own the run uses the recipe's, scaled linearly from the recipe's
    ``reference_batch`` to ``batch_size`` (:func:`~gsoplib.train.recipes.scaled_lr`);
    :attr:`lr_note` says which. ``grad_clip`` 0 switches the recipe's clipping off.
    ``weights``: the pretrained weights the model starts from, by name (``IMAGENET1K_V2``) or a
    file (a pretrained backbone, ``model="torchvision:resnet50"``; see
    :mod:`gsoplib.models.backbones`); the checkpoint's ``train.weights_data`` records a named
    one's categories, resize, crop, mean and std.
    ``amp`` and ``channels_last`` default to on for CUDA and off for the CPU.
    ``log_every``: every this many steps the run appends a row (step, fractional epoch, lr, the
    interval's mean training loss and top-1) to ``steps.jsonl``, so curves show the warm-up.
    """

    model: str
    dataset: str
    out_dir: str = "runs/latest"
    recipe: str = "fast"
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    momentum: float | None = None
    weight_decay: float | None = None
    nesterov: bool | None = None
    schedule: str | None = None
    milestones: list[float] | None = None
    gamma: float | None = None
    warmup_epochs: float | None = None
    label_smoothing: float | None = None
    augment: bool | None = None
    model_kwargs: dict = field(default_factory=dict)
    weights: str | None = None
    data_root: str | None = None
    data_options: dict = field(default_factory=dict)
    train_subset: int | None = None
    test_subset: int | None = None
    reference_batch: int | None = None
    warmup_min_steps: int | None = None
    grad_clip: float | None = None
    new_lr_factor: float | None = None
    aux_weight: float = 1.0
    amp: bool | None = None
    channels_last: bool | None = None
    compile: bool = False
    seed: int = 0
    deterministic: bool = False
    device: str = "auto"
    workers: int = 2
    resident: bool | None = None
    progress: bool = True
    log_every: int = 10

    def __post_init__(self) -> None:
        defaults = recipe(self.recipe)
        own_lr = self.lr is not None
        for name in RECIPE_FIELDS:
            if getattr(self, name) is None and name != "lr":
                setattr(self, name, defaults[name])
        if own_lr:
            self.lr_note = "as given"
        elif self.batch_size == self.reference_batch:
            self.lr = defaults["lr"]
            self.lr_note = f"the {self.recipe} recipe's, for batch {self.reference_batch}"
        else:
            self.lr = scaled_lr(defaults["lr"], self.batch_size, self.reference_batch)
            self.lr_note = (f"the {self.recipe} recipe's {defaults['lr']:g} for batch "
                            f"{self.reference_batch}, scaled to batch {self.batch_size}")
        self.milestones = list(self.milestones)
        if self.schedule not in SCHEDULES:
            raise ValueError(
                f"unknown schedule {self.schedule!r}; valid schedules: {', '.join(SCHEDULES)}"
            )
        for name in ("epochs", "batch_size", "reference_batch", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
