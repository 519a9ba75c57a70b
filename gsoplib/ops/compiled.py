"""Launch-free Newton-Schulz: torch.compile and CUDA-graph wrappers of ``sqrtm_newton_schulz``.

Eager Newton-Schulz on a GPU is bound by kernel launches, not arithmetic: batch 128 of 128 x 128
with N = 5 is 6.4 GFLOP forward (about 13 us at an H100's TF32 peak) spread over some 40 kernels
of 3-7 us launch cost each. Two ways remove the launches and keep the maths:

    compiled_sqrtm(iters)            torch.compile of the whole iteration (fuses the element-wise
                                     work around each baddbmm; works on any device with a compiler)
    graphed_sqrtm(shape, iters)      CUDA-graph capture of forward and backward for one fixed
                                     shape (torch.cuda.make_graphed_callables): one launch each

Both compute exactly what the plain :func:`sqrtm_newton_schulz` computes (same ops, same order);
``tests/test_fast_paths.py`` checks them against it. Which one is fastest on a given GPU is for
``benchmarks/gpu.py`` to decide; the library's default stays the plain eager path.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import torch

from .sqrtm import DEFAULT_EPS, sqrtm_newton_schulz


def compiled_sqrtm(
    iters: int = 5,
    eps: float = DEFAULT_EPS,
    matmul_dtype: torch.dtype | None = None,
    *,
    mode: str | None = None,
    backend: str = "inductor",
    dynamic: bool | None = False,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """A ``torch.compile``d ``a -> sqrtm_newton_schulz(a, iters, eps, matmul_dtype=...)``.

    a: (B, n, n) -> (B, n, n), differentiable. ``mode="max-autotune"`` also lets inductor
    capture CUDA graphs of the compiled code; ``backend="aot_eager"`` traces without generating
    kernels (what the CPU tests use to check the traced graph without a long compile).
    ``dynamic=False`` specialises on the shape, the usual case inside a network.
    """
    if iters < 1:
        raise ValueError(f"iters must be >= 1, got {iters}")
    fn = functools.partial(sqrtm_newton_schulz, iters=iters, eps=eps, matmul_dtype=matmul_dtype)
    return torch.compile(fn, mode=mode, backend=backend, dynamic=dynamic, fullgraph=True)


def graphed_sqrtm(
    shape: Sequence[int],
    iters: int = 5,
    eps: float = DEFAULT_EPS,
    matmul_dtype: torch.dtype | None = None,
    *,
    device: torch.device | str = "cuda",
    dtype: torch.dtype = torch.float32,
    warmup: int = 3,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Newton-Schulz captured as two CUDA graphs (forward, backward) for inputs of ``shape``.

    Returns a callable a -> a^(1/2) for (B, n, n) inputs of exactly ``shape``, ``dtype`` and
    ``device``, with autograd support: each call replays one graph forward and, when a gradient is
    needed, one backward. Inputs of another shape are refused (a graph is fixed to its buffers).
    Refused on a CPU: CUDA graphs exist only on CUDA devices.
    """
    device = torch.device(device)
    if device.type != "cuda":
        raise ValueError(f"graphed_sqrtm needs a CUDA device, got {device}; use compiled_sqrtm")
    if not torch.cuda.is_available():
        raise ValueError("graphed_sqrtm needs a CUDA GPU and this machine has none")
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or shape[1] != shape[2]:
        raise ValueError(f"graphed_sqrtm expects a (B, n, n) shape, got {shape}")
    fn = functools.partial(sqrtm_newton_schulz, iters=iters, eps=eps, matmul_dtype=matmul_dtype)
    sample = torch.eye(shape[1], device=device, dtype=dtype).expand(shape).clone()
    graphed = torch.cuda.make_graphed_callables(
        fn, (sample.requires_grad_(True),), num_warmup_iters=warmup
    )

    def run(a: torch.Tensor) -> torch.Tensor:
        if tuple(a.shape) != shape or a.dtype != dtype or a.device != sample.device:
            raise ValueError(
                f"this graphed sqrtm was captured for {shape} {dtype} on {sample.device}, "
                f"got {tuple(a.shape)} {a.dtype} on {a.device}"
            )
        return graphed(a)

    return run


__all__ = ["compiled_sqrtm", "graphed_sqrtm"]
