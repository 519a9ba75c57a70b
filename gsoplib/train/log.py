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
    """:func:`gsoplib.viz.training_curves` of ``history``, saved atomically as one PNG."""
    from ..viz import training_curves

    fig = training_curves(history, title=title)
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.png")
    fig.savefig(tmp, dpi=90)
    os.replace(tmp, path)
    return path
