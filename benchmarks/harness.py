"""Shared benchmark plumbing: timing with warm-up and medians, machine facts, JSON, tables.

Every benchmark reports ratios against a baseline measured in the same run: these machines are
noisy, and a ratio survives that where an absolute time does not.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch

from gsoplib.ops import saved_tensor_bytes as _saved_tensor_bytes
from gsoplib.timing import median_time, round_robin_medians  # noqa: F401  (the benchmarks' timer)

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def devices(requested: str) -> list[torch.device]:
    """'auto' -> CPU, plus CUDA when present; otherwise the one device named."""
    if requested == "auto":
        return [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"--device {requested}: no CUDA device is available on this machine")
    return [torch.device(requested)]


def machine_info(device: torch.device) -> dict:
    info = {
        "device": str(device),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    else:
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
        except OSError:
            pass
    return info


def machine_label(info: dict) -> str:
    if info["device"].startswith("cuda"):
        return f"{info['gpu']}, torch {info['torch']}, CUDA {info['cuda']}"
    return f"{info['cpu']} ({info['cpu_count']} cores), torch {info['torch']}"


def saved_tensor_bytes(fn: Callable[[], object]) -> int:
    """Bytes of every tensor autograd saves for backward while ``fn()`` builds its graph.

    Every saved tensor counts ``numel * element_size``, repeats and views included
    (:func:`gsoplib.ops.saved_tensor_bytes` with ``unique_storages=False``), as docs/benchmarks.md's
    tables were measured.
    """
    return _saved_tensor_bytes(fn, unique_storages=False)


def write_json(
    name: str, info: dict, rows: list[dict], out_dir: Path = RESULTS_DIR, **extra
) -> Path:
    """benchmarks/results/NAME-{cpu,cuda}.json: {"machine": info, "rows": rows, **extra}."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tag = "cuda" if info["device"].startswith("cuda") else "cpu"
    path = out_dir / f"{name}-{tag}.json"
    path.write_text(json.dumps({"machine": info, "rows": rows, **extra}, indent=2) + "\n")
    return path


def markdown_table(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    """columns: (key, header, format spec) -> a GitHub markdown table."""
    lines = [
        "| " + " | ".join(h for _, h, _ in columns) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
    ]
    for row in rows:
        cells = [format(row[k], f) if row.get(k) is not None else "-" for k, _, f in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def train_and_diagnose(
    model: str, out: Path, *, head_kwargs: dict, epochs: int, train_subset: int | None,
    test_subset: int | None, seed: int, device: str, dataset: str = "fashion_mnist",
    augment: bool | None = False, data_options: dict | None = None,
):
    """Train ``model`` on ``dataset`` (recipe ``fast``; Fashion-MNIST without augmentation by
    default, ``augment=None`` for the recipe's) with ``head_kwargs``, then diagnose its gate
    on the test split: (final metrics, GateDiagnostics, wall seconds)."""
    from gsoplib.heads.gate import diagnose_gate
    from gsoplib.train import TrainConfig, Trainer

    config = TrainConfig(
        model=model, dataset=dataset, out_dir=str(out), recipe="fast", epochs=epochs,
        augment=augment, train_subset=train_subset, test_subset=test_subset,
        data_options=dict(data_options or {}),
        model_kwargs={"head_kwargs": head_kwargs}, seed=seed, device=device, progress=False,
    )
    begin = time.perf_counter()
    trainer = Trainer(config)
    final = trainer.fit()
    diag = diagnose_gate(trainer.model, trainer.test_loader)
    return final, diag, time.perf_counter() - begin
