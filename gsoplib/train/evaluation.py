"""What a run measures besides its training loss: top-1, top-5 and the loss on a split
(:func:`evaluate`), a gated mixture's component usage over all ranks (:class:`ComponentUsage`)
and the machine it ran on (:func:`machine`)."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from gsoplib.heads.gate import GateRecorder

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


class ComponentUsage(GateRecorder):
    """The gate recorder (:class:`gsoplib.heads.gate.GateRecorder`) with its component counts
    summed over every rank: how often each component of a gated mixture head was chosen.

    A model without a gate counts nothing. Kept under its 0.3 name for code that imports it.
    """

    def fractions(self, ctx: distributed.Context | None = None) -> list[float] | None:
        """Share of all (sample, chosen slot) pairs routed to each component, over all ranks
        (every rank must call it: it all-reduces). None for a model without a gate."""
        if self.counts is None or ctx is None:
            return super().fractions()
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
