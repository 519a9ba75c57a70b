"""Evaluation on a split: top-1 and top-5, the loss, and for a gated mixture the components
each image chose (:class:`ComponentUsage`); the machine facts a run records."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from gsoplib.heads.gate import GateRecorder
from gsoplib.taps import taps

from . import distributed


def machine() -> dict:
    """What the run ran on, for the checkpoint's metadata."""
    info = {"torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count()}
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info["cpu"] = cpu
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def _topk_correct(logits: torch.Tensor, y: torch.Tensor, k: int) -> torch.Tensor:
    k = min(k, logits.shape[1])
    return (logits.topk(k, dim=1).indices == y[:, None]).any(dim=1).sum()


class ComponentUsage:
    """Counts how often each component of a gated mixture head is chosen, via its taps.

    Hooks every tap named ``tap_gate_indices`` ((B, K) chosen component indices) while active;
    a model without one counts nothing. Removes its hooks on exit.
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.counts: torch.Tensor | None = None
        self.handles = []

    def _hook(self, num_components: int | None):
        def hook(module, args, output):
            indices = args[0].detach().reshape(-1)
            size = num_components or int(indices.max()) + 1
            # scatter_add, not bincount: bincount reads its input's maximum back to the host on
            # CUDA, a sync in every training step.
            counts = torch.zeros(size, dtype=torch.long, device=indices.device).scatter_add_(
                0, indices, torch.ones_like(indices)
            )
            if self.counts is None:
                self.counts = counts
            else:
                grow = max(len(self.counts), len(counts))
                self.counts = F.pad(self.counts, (0, grow - len(self.counts))) + F.pad(
                    counts, (0, grow - len(counts))
                )

        return hook

    def __enter__(self) -> ComponentUsage:
        modules = dict(self.model.named_modules())
        for path, tap in taps(self.model).items():
            if tap.name != "tap_gate_indices":
                continue
            parent = modules.get(path.rpartition(".")[0], self.model)
            n = getattr(parent, "num_components", None) or getattr(parent, "num_experts", None)
            self.handles.append(tap.register_forward_hook(self._hook(n)))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()

    def fractions(self, ctx: distributed.Context) -> list[float] | None:
        """Share of all (sample, chosen slot) pairs routed to each component, over all ranks.

        None for a model without a gate. Every rank must call it (it all-reduces).
        """
        if self.counts is None:
            return None
        counts = distributed.all_reduce_sum(self.counts.double(), ctx)
        return (counts / counts.sum().clamp_min(1)).tolist()


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader,
    ctx: distributed.Context | None = None,
    amp: bool = False,
    channels_last: bool = False,
    progress: bool = False,
) -> dict:
    """Cross-entropy (no smoothing), top-1 and top-5 accuracy over ``loader``, over all ranks.

    For a model with a gate, ``"gate"`` holds its :class:`~gsoplib.heads.gate.GateDiagnostics`
    over this process's share of the data, with the true classes.
    """
    device = loader.device
    ctx = ctx or distributed.Context(0, 1, 0, device)
    was_training = model.training
    model.eval()
    sums = torch.zeros(4, dtype=torch.float64, device=device)
    labels = []
    try:
        with GateRecorder(model) as recorder:
            for x, y in tqdm(loader, desc="eval", leave=False, disable=not progress):
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                    logits = model(x)
                logits = logits.float()
                sums += torch.stack(
                    [
                        F.cross_entropy(logits, y, reduction="sum"),
                        _topk_correct(logits, y, 1),
                        _topk_correct(logits, y, 5),
                        torch.tensor(len(y), device=device),
                    ]
                ).double()
                if recorder.active:
                    labels.append(y)
    finally:
        model.train(was_training)
    loss, top1, top5, n = distributed.all_reduce_sum(sums, ctx).tolist()
    n = max(n, 1)
    out = {"loss": loss / n, "top1": top1 / n, "top5": top5 / n, "samples": int(n)}
    if labels:
        out["gate"] = recorder.diagnostics(torch.cat(labels).cpu())
    return out
