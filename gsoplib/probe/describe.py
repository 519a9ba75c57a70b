"""A record's tensors in words (one line per block: weights, spectra, choices) and in JSON."""

from __future__ import annotations

import torch

from ..ops import top_eigenvalue_share


def _tensor_json(t: torch.Tensor, max_values: int) -> dict:
    info: dict = {"shape": list(t.shape), "dtype": str(t.dtype).removeprefix("torch.")}
    if t.numel() <= max_values:
        info["values"] = t.tolist()
    if t.numel() and t.is_floating_point():
        info.update(min=t.min().item(), max=t.max().item(), mean=t.mean().item())
    return info


def _stats(values: torch.Tensor) -> str:
    v = values.flatten().float()
    # The median of an even count is the mean of the two middle values (NumPy's and pandas'
    # definition, what every chart of these numbers shows), not torch.median's lower one.
    return f"min {v.min():.3f} / median {v.quantile(0.5):.3f} / max {v.max():.3f}"


def _ranked(values: torch.Tensor, n: int, largest: bool) -> str:
    n = min(n, values.numel())
    top = values.topk(n, largest=largest)
    return ", ".join(f"{i} ({v:.2f})" for v, i in zip(top.values.tolist(), top.indices.tolist()))


def _describe(r) -> str:  # r: a records.BlockRecord (kind, tensors, samples)
    t = r.tensors
    batch = next(iter(t.values())).shape[0] if t else 0
    over = f" (mean over {batch} images)" if batch > 1 else ""
    parts = []
    if "tap_channel_weights" in t:
        w = t["tap_channel_weights"].flatten(1).float()
        mean = w.mean(0)
        parts.append(
            f"channel weights {_stats(w)} over {w.shape[1]} channels; largest "
            f"{_ranked(mean, 3, True)}; smallest {_ranked(mean, 3, False)}{over}"
        )
    for name in ("tap_pos_weights_pooled", "tap_pos_weights"):
        if name in t:
            w = t[name].float()
            h, wd = w.shape[-2:]
            peak = int(w.mean(0).flatten().argmax())
            parts.append(f"position weights {_stats(w)} on {h}x{wd}, peak at {divmod(peak, wd)}")
            break
    for name in ("tap_cov", "tap_pos_cov"):
        if name in t:
            cov = t[name].double()
            share = top_eigenvalue_share(cov).mean()
            trace = torch.diagonal(cov, dim1=-2, dim2=-1).sum(-1).mean()
            parts.append(
                f"{'position ' if name == 'tap_pos_cov' else ''}covariance {cov.shape[-1]}x"
                f"{cov.shape[-1]}, trace {trace:.3g}, top eigenvalue {share:.0%} of the trace"
            )
    if "tap_cov_sqrt" in t:
        root = t["tap_cov_sqrt"].double()
        norm = torch.linalg.matrix_norm(root).mean()
        parts.append(f"square root Frobenius norm {norm:.3g}")
    if "tap_gate_indices" in t:
        idx = t["tap_gate_indices"]
        k = idx.shape[1]
        if batch == 1:
            weights = t.get("tap_gate_weights")
            chosen = idx[0].tolist()
            shown = ", ".join(
                f"{c} ({weights[0, c]:.2f})" if weights is not None else str(c) for c in chosen
            )
            parts.append(f"gate chose {k}: {shown}")
        else:
            n = (t["tap_gate_weights"].shape[1] if "tap_gate_weights" in t
                 else int(idx.max()) + 1)
            usage = torch.bincount(idx.flatten(), minlength=n)
            parts.append(
                f"gate chose {k} per image; images per component {usage.tolist()}"
            )
    if "tap_component_norms" in t:
        parts.append(f"component norms {_stats(t['tap_component_norms'])}")
    if not parts:
        parts.append(", ".join(f"{k} {tuple(v.shape)}" for k, v in t.items()) or "no tensors")
    return "; ".join(parts)
