"""Floor 4: training. SGD recipes, the trainer (AMP, channels_last, compile, resume), DDP.

Examples:
    >>> import tempfile
    >>> from gsoplib.train import TrainConfig, train
    >>> out = tempfile.mkdtemp()
    >>> final = train(TrainConfig("small_gsop1", "second_order", out_dir=out, epochs=1,
    ...                           data_options={"num_train": 64, "num_test": 32},
    ...                           device="cpu", progress=False))
    >>> 0 <= final["test_top1"] <= 1                 # and out/model.safetensors, metrics.jsonl
    True
"""

from .config import CHECKPOINT_NAME, METRICS_NAME, PLOT_NAME, STATE_NAME, TrainConfig
from .evaluation import ComponentUsage, evaluate
from .linear_probe import LinearProbeResult, linear_probe
from .log import plot_history, read_jsonl, write_jsonl
from .recipes import RECIPES, list_recipes, lr_factor, recipe
from .trainer import Trainer, train

__all__ = [
    "CHECKPOINT_NAME",
    "METRICS_NAME",
    "PLOT_NAME",
    "RECIPES",
    "STATE_NAME",
    "ComponentUsage",
    "LinearProbeResult",
    "TrainConfig",
    "Trainer",
    "evaluate",
    "linear_probe",
    "list_recipes",
    "lr_factor",
    "plot_history",
    "read_jsonl",
    "recipe",
    "train",
    "write_jsonl",
]
