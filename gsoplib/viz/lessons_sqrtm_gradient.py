"""Notebook 02's figure of the square root's gradient on a null direction (section 4).

    :func:`null_gradient_summary`  the numbers: the regularised root's gradient entry on the zero
                                   eigenvalue's direction against eps (autograd through
                                   ``sqrtm_eigh`` and the Sylvester form), Newton-Schulz's against
                                   N, and the eps that gives each N the same entry
    :func:`null_gradient_figure`   those numbers drawn: against eps (left), against N (right)

The matrix is diagonal with one zero eigenvalue (default ``diag(0, 1, 2)``) and the upstream
gradient is the unit matrix E_00, so entry (0, 0) of dL/dSigma is exactly the slope of the map on
the null eigenvalue: 1 / (2 sqrt(eps)) for the root of Sigma + eps I (the Sylvester weight
1 / (sqrt(lambda_i) + sqrt(lambda_j)) at lambda_i = lambda_j = eps) and (3/2)^N / sqrt(tr Sigma)
for N Newton-Schulz iterations (y_N'(0) = (3/2)^N; the trace term vanishes because Sigma_00 = 0
and G is zero off (0, 0)). Equating the two gives eps = tr Sigma / (4 (9/4)^N).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from matplotlib.figure import Figure

from ..ops import sqrtm_eigh, sqrtm_newton_schulz
from ..ops.sqrtm_grad import sqrtm_grad_exact
from ._axes import _figure, _title


def _entry00(root_fn, sigma: torch.Tensor) -> float:
    """Entry (0, 0) of d<root_fn(Sigma), E_00>/dSigma by autograd; sigma (1, n, n) float64."""
    leaf = sigma.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(root_fn(leaf)[0, 0, 0], leaf)
    return float(grad[0, 0, 0])


def null_gradient_summary(
    eigenvalues: Sequence[float] = (0.0, 1.0, 2.0),
    eps_values: Sequence[float] = tuple(10.0 ** -k for k in range(1, 9)),
    iters: Sequence[int] = tuple(range(1, 21)),
) -> dict:
    """The gradient entry on the null direction of ``diag(eigenvalues)`` (first one 0).

    Returns a dict of 1-D float64 tensors: ``eps`` (E,), ``eigh`` (E,) autograd through
    ``sqrtm_eigh(Sigma + eps I)``, ``sylvester`` (E,) ``sqrtm_grad_exact(Sigma + eps I, E_00)``,
    ``iters`` (K,), ``newton_schulz`` (K,) autograd through ``sqrtm_newton_schulz(Sigma, N)``,
    ``predicted`` (K,) (3/2)^N / sqrt(tr Sigma), ``matched_eps`` (K,) tr Sigma / (4 (9/4)^N);
    and ``trace`` (float).
    """
    lam = torch.tensor(eigenvalues, dtype=torch.float64)
    if lam[0] != 0 or (lam[1:] <= 0).any():
        raise ValueError(f"the first eigenvalue must be 0, the others positive: {eigenvalues}")
    n = len(lam)
    sigma, eye = torch.diag(lam).unsqueeze(0), torch.eye(n, dtype=torch.float64)
    unit = torch.zeros(1, n, n, dtype=torch.float64)
    unit[0, 0, 0] = 1.0                                              # upstream G = E_00
    trace = float(lam.sum())
    eps = torch.tensor(eps_values, dtype=torch.float64)
    its = torch.tensor(iters, dtype=torch.float64)
    by_eigh = [_entry00(lambda s, e=e: sqrtm_eigh(s + e * eye), sigma) for e in eps.tolist()]
    by_ns = [_entry00(lambda s, k=k: sqrtm_newton_schulz(s, iters=k), sigma) for k in iters]
    return {
        "eps": eps,
        "eigh": torch.tensor(by_eigh, dtype=torch.float64),
        "sylvester": torch.stack([sqrtm_grad_exact(sigma + e * eye, unit)[0, 0, 0]
                                  for e in eps.tolist()]),
        "iters": its,
        "newton_schulz": torch.tensor(by_ns, dtype=torch.float64),
        "predicted": 1.5 ** its / math.sqrt(trace),
        "matched_eps": trace / (4 * 2.25 ** its),
        "trace": trace,
    }


def null_gradient_figure(
    eigenvalues: Sequence[float] = (0.0, 1.0, 2.0),
    eps_values: Sequence[float] = tuple(10.0 ** -k for k in range(1, 9)),
    iters: Sequence[int] = tuple(range(1, 21)),
    marked: Sequence[int] = (3, 5, 10),
    figsize=(10.0, 3.8),
) -> Figure:
    """Left: the regularised root's gradient entry on the null direction against eps (log-log):
    autograd through ``sqrtm_eigh(Sigma + eps I)`` (dots), the Sylvester form (line, slope -1/2),
    and Newton-Schulz at the ``marked`` N placed at their matched eps (diamonds). Right: the
    Newton-Schulz entry against N (dots, log y) with (3/2)^N / sqrt(tr Sigma) (line), the marked
    N labelled with their matched eps = tr Sigma / (4 (9/4)^N). Titles state the measured slope
    and the eps that N = marked[0] acts like.
    """
    s = null_gradient_summary(eigenvalues, eps_values, iters)
    fig = _figure(figsize, left=0.07, right=0.98, bottom=0.14, top=0.84, wspace=0.28)
    ax, an = fig.subplots(1, 2)
    ax.loglog(s["eps"], s["sylvester"], "-", color="tab:blue", lw=1.5,
              label=r"Sylvester form, $1/(2\sqrt{\epsilon})$")
    ax.loglog(s["eps"], s["eigh"].abs(), "o", color="tab:blue", ms=5, mfc="none",
              label=r"autograd through sqrtm_eigh($\Sigma + \epsilon I$)")
    pick = [int(k) for k in marked if k in s["iters"].tolist()]
    at = [s["iters"].tolist().index(k) for k in pick]
    ax.loglog(s["matched_eps"][at], s["newton_schulz"][at], "D", color="tab:red", ms=6,
              label="Newton-Schulz N = " + ", ".join(map(str, pick))
              + r", at $\epsilon = $tr$/(4(9/4)^N)$")
    for k, i in zip(pick, at):
        ax.annotate(f"N = {k}", (float(s["matched_eps"][i]), float(s["newton_schulz"][i])),
                    xytext=(6, -2), textcoords="offset points", fontsize=7, color="tab:red")
    logs = torch.log(s["eps"]), torch.log(s["eigh"].abs())
    slope = float((logs[1][-1] - logs[1][0]) / (logs[0][-1] - logs[0][0]))
    ax.set_xlabel(r"$\epsilon$ (the root of $\Sigma + \epsilon I$)")
    ax.set_ylabel(r"$|\partial L/\partial\Sigma_{00}|$, upstream $G = E_{00}$")
    ax.legend(fontsize=6.5, loc="lower left")
    _title(ax, f"regularised root: gradient on the null direction grows as eps^{slope:.2f}\n"
               f"(Sigma = diag{tuple(eigenvalues)}, finite for every eps > 0)", fontsize=8)
    an.semilogy(s["iters"], s["newton_schulz"], "o", color="tab:red", ms=5, mfc="none",
                label="autograd through sqrtm_newton_schulz")
    an.semilogy(s["iters"], s["predicted"], "-", color="tab:red", lw=1.2,
                label=r"$(3/2)^N/\sqrt{\mathrm{tr}\,\Sigma}$")
    an.set_xlabel("Newton-Schulz iterations N")
    an.set_ylabel(r"$|\partial L/\partial\Sigma_{00}|$")
    an.legend(fontsize=7, loc="upper left")
    for k, i in zip(pick, at):
        an.annotate(f"N = {k}: eps = {float(s['matched_eps'][i]):.2g}",
                    (k, float(s["newton_schulz"][i])), xytext=(6, -10),
                    textcoords="offset points", fontsize=7, color="tab:red")
    first = at[0] if at else 0
    _title(an, f"Newton-Schulz: finite at every N, x 3/2 per step; N = {int(s['iters'][first])} "
               f"acts like eps = {float(s['matched_eps'][first]):.3f}", fontsize=8)
    return fig


__all__ = ["null_gradient_figure", "null_gradient_summary"]
