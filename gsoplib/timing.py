"""Floor 1: how long a step takes, one way for every caller (``gsop bench``, the benchmarks):
CUDA events on a GPU, ``time.perf_counter`` on a CPU, the median over repeats after a warm-up.

Examples:
    >>> import torch
    >>> seconds = median_time(lambda: torch.ones(64, 64) @ torch.ones(64, 64), torch.device("cpu"))
    >>> 0 < seconds < 1
    True
    >>> sorted(round_robin_medians({"a": lambda: None, "b": lambda: None}, torch.device("cpu"),
    ...                            warmup=1, repeats=3))
    ['a', 'b']
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def time_once(fn: Callable[[], object], device: torch.device) -> float:
    """Wall seconds of one ``fn()``: between CUDA events (synchronised) on a GPU, else
    ``time.perf_counter``."""
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize(device)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize(device)
        return start.elapsed_time(end) / 1e3
    begin = time.perf_counter()
    fn()
    return time.perf_counter() - begin


def median_time(
    fn: Callable[[], object], device: torch.device, warmup: int = 2, repeats: int = 5
) -> float:
    """Median wall seconds of ``fn()`` over ``repeats`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    return statistics.median(time_once(fn, device) for _ in range(repeats))


def round_robin_medians(
    steps: dict[str, Callable[[], object]], device: torch.device, warmup: int, repeats: int
) -> dict[str, float]:
    """Median seconds per step of each variant; each round times one step of every variant in
    turn, so a machine that slows down slows all of them alike."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            times[name].append(time_once(step, device))
    return {name: statistics.median(t) for name, t in times.items()}


__all__ = ["median_time", "round_robin_medians", "time_once"]
