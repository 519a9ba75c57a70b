"""Long-form tables of what an Inspection holds: one row per matrix entry, channel, map cell or
image, the data every interactive chart of :mod:`gsoplib.viz.charts` draws.

Large things are kept small before they reach a browser: a matrix wider than ``max_side`` is
averaged over square blocks of entries (each row then names the index range it covers), a
feature map or a heat map over the input is average-pooled to at most ``max_side`` cells a side.
Everything else is the probe's numbers, unchanged: the probe's tensors are float32, and so are
the value columns (exactly those numbers, half the bytes of float64); indices are int16 and
names categorical, which is what makes a 128 x 128 covariance a few hundred kB to send.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ...ops import sqrtm_eigh
from ...probe import BlockRecord, Inspection
from .._axes import _record as one_image

MATRIX_SIDE = 128
MAP_SIDE = 28
HEAT_SIDE = 48
COVARIANCE_TAPS = (
    ("tap_pos_cov", "position covariance"),
    ("tap_cov", "covariance (before)"),
    ("tap_cov_bn", "after row-wise BN"),
    ("tap_cov_sqrt", "Newton-Schulz output"),
)
#: The spectrum-only line drawn beside a Newton-Schulz output: what an exact root would give.
EXACT_ROOT = "exact root (eigh)"


def _pool(a: np.ndarray, side: int) -> tuple[np.ndarray, int]:
    """(..., h, w) -> average over square blocks of ``f`` entries a side so that neither of
    the last two sides exceeds ``side``; returns the pooled array and ``f`` (1 when nothing was
    pooled)."""
    f = max(1, -(-max(a.shape[-2:]) // side))
    if f == 1:
        return a, 1
    t = torch.from_numpy(np.ascontiguousarray(a))
    out = F.avg_pool2d(t.reshape(1, -1, *t.shape[-2:]), f, ceil_mode=True)
    return out.reshape(*t.shape[:-2], *out.shape[-2:]).numpy(), f


def _names(names: Sequence[str], codes: np.ndarray) -> pd.Categorical:
    """A categorical column from integer codes: no string is built per row."""
    return pd.Categorical.from_codes(codes, categories=list(dict.fromkeys(names)))


def matrix_table(matrix: np.ndarray, max_side: int = MATRIX_SIDE) -> pd.DataFrame:
    """An (n, m) matrix as rows (row, col, value). A matrix wider than ``max_side`` is
    averaged over square blocks: ``row``/``col`` are then each block's first index, and columns
    ``rows``/``cols`` name the index range it covers ("0-3")."""
    pooled, f = _pool(np.asarray(matrix, dtype=np.float64), max_side)
    n, m = pooled.shape
    rows, cols = np.meshgrid(np.arange(n) * f, np.arange(m) * f, indexing="ij")
    rows, cols = rows.ravel(), cols.ravel()
    table = pd.DataFrame({"row": rows.astype(np.int16), "col": cols.astype(np.int16),
                          "value": pooled.ravel().astype(np.float32)})
    if f > 1:
        for column, start, size in (("rows", rows, matrix.shape[0]),
                                    ("cols", cols, matrix.shape[1])):
            last = np.minimum(start + f, size) - 1
            table[column] = np.char.add(np.char.add(start.astype(str), "-"), last.astype(str))
    return table


def covariance_matrices(insp: Inspection, path: str, image: int = 0
                        ) -> list[tuple[str, np.ndarray]]:
    """(name, matrix) of every covariance the part at ``path`` computed for one image: before
    and after row-wise BN (GSoP-Net Sec. 3.1), the square root (iSQRT-COV), or the position
    covariance (Sec. 3.2)."""
    t = one_image(insp, path, image, *(k for k, _ in COVARIANCE_TAPS)).tensors
    return [(label, t[k][0].double().squeeze().numpy()) for k, label in COVARIANCE_TAPS if k in t]


def with_exact_root(matrices: Sequence[tuple[str, np.ndarray]]
                    ) -> list[tuple[str, np.ndarray]]:
    """``matrices`` and, when they hold a covariance and its Newton-Schulz output, the exact
    square root of that covariance (:func:`gsoplib.ops.sqrtm_eigh`) named :data:`EXACT_ROOT`:
    a few iterations stop far from it (iSQRT-COV trains with 3 or 5), which its spectrum shows."""
    found = dict(matrices)
    if "covariance (before)" not in found or "Newton-Schulz output" not in found:
        return list(matrices)
    cov = torch.from_numpy(np.ascontiguousarray(found["covariance (before)"], dtype=np.float64))
    return [*matrices, (EXACT_ROOT, sqrtm_eigh(cov.unsqueeze(0))[0].numpy())]


def distance_from_exact_root(matrices: Sequence[tuple[str, np.ndarray]]) -> float | None:
    """Relative Frobenius distance, both scaled to unit norm, between the Newton-Schulz output
    and the exact root of the covariance (scale-free: the head may divide by sqrt(trace));
    None without both matrices."""
    found = dict(with_exact_root(matrices))
    if EXACT_ROOT not in found:
        return None
    a, b = found["Newton-Schulz output"], found[EXACT_ROOT]
    a, b = a / (np.linalg.norm(a) or 1.0), b / (np.linalg.norm(b) or 1.0)
    return float(np.linalg.norm(a - b))


def spectrum_table(matrices: Sequence[tuple[str, np.ndarray]]) -> pd.DataFrame:
    """Eigenvalues over the largest, in decreasing order, of each symmetric matrix (row-BN's
    output is not symmetric and is left out), as rows (matrix, index, eigenvalue, ratio)."""
    names, parts = [], []
    for name, m in matrices:
        if not np.allclose(m, m.T, rtol=1e-5, atol=1e-8 * max(np.abs(m).max(), 1e-30)):
            continue
        evals = np.linalg.eigvalsh((m + m.T) / 2)[::-1]
        top = evals[0] if evals[0] > 0 else 1.0
        parts.append((np.full(len(evals), len(names), np.int8), np.arange(1, len(evals) + 1),
                      evals, np.clip(evals / top, 1e-12, None)))
        names.append(name)
    if not parts:
        return pd.DataFrame({"matrix": [], "index": [], "eigenvalue": [], "ratio": []})
    code, index, evals, ratio = (np.concatenate(c) for c in zip(*parts))
    return pd.DataFrame({"matrix": _names(names, code), "index": index, "eigenvalue": evals,
                         "ratio": ratio})


def channel_weights_table(insp: Inspection, path: str, image: int = 0) -> pd.DataFrame:
    """Rows (channel, weight, rank) of one image's channel weights (GSoP-Net Sec. 3.1, SE,
    CBAM), rank 0 the most boosted."""
    w = one_image(insp, path, image, "tap_channel_weights")["tap_channel_weights"]
    weights = w.flatten().double().numpy()
    order = np.argsort(-weights, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return pd.DataFrame({"channel": np.arange(len(weights)), "weight": weights, "rank": rank})


def feature_maps(record: BlockRecord) -> torch.Tensor | None:
    """The (1, C, h, w) maps the channel weights multiply: the block's input when tapped."""
    maps = record.tensors.get("tap_input", record.tensors.get("tap_output"))
    return maps if maps is not None and maps.dim() == 4 else None


def feature_maps_table(insp: Inspection, path: str, channels: Sequence[int], image: int = 0,
                       max_side: int = MAP_SIDE) -> pd.DataFrame:
    """Rows (channel, weight, row, col, value) of the feature maps of ``channels`` for one
    image, average-pooled to at most ``max_side`` cells a side (``row``/``col`` in pooled
    cells)."""
    record = one_image(insp, path, image, "tap_channel_weights")
    maps = feature_maps(record)
    if maps is None:
        raise ValueError(f"{record.label} has no feature maps tapped (tap_input)")
    weights = record["tap_channel_weights"].flatten().double().numpy()
    channels = [int(c) for c in channels]
    for ch in channels:
        if not 0 <= ch < maps.shape[1]:
            raise IndexError(f"channel {ch} is out of range for {maps.shape[1]} channels")
    if not channels:
        return pd.DataFrame({"channel": [], "weight": [], "row": [], "col": [], "value": []})
    picked, _ = _pool(maps[0, channels].double().numpy(), max_side)  # (k, h', w')
    k, h, w = picked.shape
    chan, rows, cols = np.meshgrid(np.asarray(channels), np.arange(h), np.arange(w),
                                   indexing="ij")
    return pd.DataFrame({"channel": chan.ravel().astype(np.int16),
                         "weight": weights[chan.ravel()],
                         "row": rows.ravel().astype(np.int16),
                         "col": cols.ravel().astype(np.int16),
                         "value": picked.ravel().astype(np.float32)})


def batch_weights(insp: Inspection, path: str) -> np.ndarray:
    """(B, C) channel weights of every image of the batch at ``path``."""
    record = insp[path]
    if "tap_channel_weights" not in record or record.samples is not None:
        raise ValueError(f"{record.label} ({record.kind}) has no channel weights per image")
    return record["tap_channel_weights"].flatten(1).double().numpy()


def similarity_order(rows: np.ndarray) -> np.ndarray:
    """An order of the rows of (n, d) ``rows`` that puts similar rows next to each other: by
    their coordinate on the first principal axis (rows that differ the same way sit together)."""
    if len(rows) < 3:
        return np.arange(len(rows))
    centred = rows - rows.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    axis = vt[0] * (1 if vt[0].sum() >= 0 else -1)  # a sign that does not flip between runs
    return np.argsort(centred @ axis, kind="stable")


def batch_table(insp: Inspection, path: str, names: Sequence[str] | None = None,
                max_channels: int = MATRIX_SIDE) -> pd.DataFrame:
    """Rows (image, name, channel, weight, row, column) of an images x channels heatmap of the
    channel weights at ``path``: the ``max_channels`` channels whose weight varies most across
    the images (all when fewer), images and channels each in :func:`similarity_order`
    (``row``/``column`` are the positions in that order)."""
    w = batch_weights(insp, path)
    b, c = w.shape
    names = [f"image {i}" for i in range(b)] if names is None else list(names)
    if len(names) != b:
        raise ValueError(f"names has {len(names)} entries for a batch of {b}")
    keep = np.sort(np.argsort(-w.std(axis=0), kind="stable")[:max_channels])
    sub = w[:, keep]
    image_order = similarity_order(sub)
    channel_order = keep[similarity_order(sub.T)]
    row_of = np.empty(b, int)
    row_of[image_order] = np.arange(b)
    col_of = {ch: j for j, ch in enumerate(channel_order)}
    images, channels = np.meshgrid(np.arange(b), keep, indexing="ij")
    return pd.DataFrame({
        "image": images.ravel(),
        "name": np.asarray(names, dtype=object)[images.ravel()],
        "channel": channels.ravel(),
        "weight": w[images.ravel(), channels.ravel()],
        "row": row_of[images.ravel()],
        "column": [col_of[ch] for ch in channels.ravel()],
    })


def heat_cells(heat, box: tuple[float, float, float, float], max_side: int = HEAT_SIDE
               ) -> pd.DataFrame:
    """An (h, w) map over the model input as rectangles (x, x2, y, y2, row, col, value) laid
    on ``box`` = (left, top, right, bottom), the input's region of the original photo
    (:func:`gsoplib.images.crop_box`); maps wider than ``max_side`` are average-pooled."""
    a = heat.detach().double().cpu().numpy() if isinstance(heat, torch.Tensor) else heat
    pooled, _ = _pool(np.asarray(a, dtype=np.float64).squeeze(), max_side)
    if pooled.ndim != 2:
        raise ValueError(f"heat_cells expects an (h, w) map, got shape {pooled.shape}")
    h, w = pooled.shape
    left, top, right, bottom = box
    cw, ch = (right - left) / w, (bottom - top) / h
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    rows, cols = rows.ravel(), cols.ravel()
    return pd.DataFrame({"x": left + cols * cw, "x2": left + (cols + 1) * cw,
                         "y": top + rows * ch, "y2": top + (rows + 1) * ch,
                         "row": rows.astype(np.int16), "col": cols.astype(np.int16),
                         "value": pooled.ravel().astype(np.float32)})


def gate_table(insp: Inspection, path: str, image: int = 0) -> pd.DataFrame:
    """Rows (component, logit, weight, chosen) of one image's GM-SOP gate (Eq. 2-3): all N
    logits (the noisy ones when tapped), the weights omega, and whether it is among the K."""
    t = one_image(insp, path, image, "tap_gate_weights", "tap_gate_clean_logits").tensors
    logits = t.get("tap_gate_noisy_logits", t.get("tap_gate_clean_logits"))
    weights = t.get("tap_gate_weights")
    n = (weights if weights is not None else logits).shape[1]
    if "tap_gate_indices" in t:
        chosen = set(t["tap_gate_indices"][0].tolist())
    else:
        chosen = set(weights[0].nonzero().flatten().tolist())
    nan = np.full(n, np.nan)
    return pd.DataFrame({
        "component": np.arange(n),
        "logit": nan if logits is None else logits[0].double().numpy(),
        "weight": nan if weights is None else weights[0].double().numpy(),
        "chosen": [i in chosen for i in range(n)],
    })


def gate_weights_table(insp: Inspection, path: str, names: Sequence[str] | None = None
                       ) -> pd.DataFrame:
    """Rows (image, name, component, weight) of the batch's gate weights omega, (B, N)."""
    record = insp[path]
    w = record.require("tap_gate_weights").double().numpy()
    b, n = w.shape
    names = [f"image {i}" for i in range(b)] if names is None else list(names)
    images, comps = np.meshgrid(np.arange(b), np.arange(n), indexing="ij")
    return pd.DataFrame({"image": images.ravel(),
                         "name": np.asarray(names, dtype=object)[images.ravel()],
                         "component": comps.ravel(), "weight": w.ravel()})
