"""Per-epoch metrics: a JSONL file (one JSON object per epoch) and a figure of the curves."""

from __future__ import annotations

import json
import os
from pathlib import Path


def write_jsonl(path: str | os.PathLike, history: list[dict]) -> Path:
    """Write ``history`` as JSON lines, atomically (a resumed run rewrites it whole)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text("".join(json.dumps(row, sort_keys=True) + "\n" for row in history))
    os.replace(tmp, path)
    return path


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def plot_history(history: list[dict], path: str | os.PathLike, title: str = "") -> Path:
    """Loss, top-1 accuracy, learning rate and throughput per epoch, as one PNG."""
    from matplotlib.figure import Figure

    epochs = [row["epoch"] for row in history]
    fig = Figure(figsize=(10, 6.5), layout="constrained")
    axes = fig.subplots(2, 2)
    panels = [
        (axes[0, 0], "loss", [("train_loss", "train"), ("test_loss", "test")]),
        (axes[0, 1], "top-1 accuracy", [("train_top1", "train"), ("test_top1", "test")]),
        (axes[1, 0], "learning rate (end of epoch)", [("lr", None)]),
        (axes[1, 1], "training images/s", [("images_per_s", None)]),
    ]
    for ax, label, series in panels:
        for key, legend in series:
            values = [row.get(key) for row in history]
            if any(v is not None for v in values):
                ax.plot(epochs, values, marker="o", label=legend)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if any(legend for _, legend in series):
            ax.legend()
    if title:
        fig.suptitle(title)
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.png")
    fig.savefig(tmp, dpi=90)
    os.replace(tmp, path)
    return path
