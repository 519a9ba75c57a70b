"""What a probe returns: one :class:`BlockRecord` per probed module, the :class:`Inspection` of a
batch (predictions, records, their NumPy, NPZ and JSON forms), and the kind of each record."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import numpy as np
import torch

from .describe import _describe, _tensor_json

GATE_TAPS = frozenset(
    {"tap_gate_clean_logits", "tap_gate_noisy_logits", "tap_gate_indices", "tap_gate_weights"}
)
KINDS = (
    "gsop_channel",
    "gsop_position",
    "se",
    "cbam",
    "isqrt_cov",
    "gated_mixture",
    "average_mixture",
    "custom",
)
# Tensors small enough that to_json writes their values rather than only their statistics.
JSON_MAX_VALUES = 4096


def block_kind(tap_names: Iterable[str]) -> str:
    """The kind of a block or head, read from the names of its taps (see gsoplib/taps.py).

    'gsop_channel' (tap_cov_bn, or tap_cov with tap_channel_weights), 'gsop_position'
    (tap_pos_cov), 'cbam' (tap_channel_weights and tap_pos_weights), 'se' (tap_channel_weights),
    'isqrt_cov' (tap_cov_sqrt), 'gated_mixture' (gate taps), 'average_mixture'
    (tap_component_norms alone), otherwise 'custom'.
    """
    names = set(tap_names)
    if names & GATE_TAPS:
        return "gated_mixture"
    if "tap_pos_cov" in names:
        return "gsop_position"
    if "tap_cov_bn" in names or {"tap_cov", "tap_channel_weights"} <= names:
        return "gsop_channel"
    if "tap_cov_sqrt" in names:
        return "isqrt_cov"
    if {"tap_channel_weights", "tap_pos_weights"} <= names:
        return "cbam"
    if "tap_channel_weights" in names:
        return "se"
    if "tap_component_norms" in names:
        return "average_mixture"
    return "custom"


@dataclass
class BlockRecord:
    """What one block or head computed for a batch.

    path: the module's path in the model ('' for the model itself). kind: see :func:`block_kind`.
    module_type: the class name. tensors: tap name -> CPU tensor whose first dimension is the
    batch, in the order the taps ran. samples: None when the rows are the batch's images in order;
    otherwise (R,) the batch index of each row (a GM-SOP component only sees the images routed to
    it). within: the path of the record this one belongs to (a mixture's component), or None.
    calls: how many times the module's taps fired; a module run twice keeps its last call.
    """

    path: str
    kind: str
    module_type: str
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    samples: torch.Tensor | None = None
    within: str | None = None
    calls: int = 1

    def __getitem__(self, tap: str) -> torch.Tensor:
        try:
            return self.tensors[tap]
        except KeyError:
            raise KeyError(
                f"{self.label} has no tap {tap!r}; it has {', '.join(self.tensors)}"
            ) from None

    def __contains__(self, tap: str) -> bool:
        return tap in self.tensors

    def require(self, tap: str) -> torch.Tensor:
        """The tensor of ``tap``; a record without it is a ValueError naming what it has."""
        if tap not in self.tensors:
            raise ValueError(f"{self.label} ({self.kind}) has no {tap}; "
                             f"it has {', '.join(self.tensors) or 'none'}")
        return self.tensors[tap]

    @property
    def label(self) -> str:
        return self.path or "(model)"

    def rows_of(self, image: int) -> slice | torch.Tensor | None:
        """Index of image ``image``'s rows, or None when this part did not see that image."""
        if self.samples is None:
            return slice(image, image + 1)
        rows = (self.samples == image).nonzero().flatten()
        return rows if rows.numel() else None

    def select(self, image: int) -> BlockRecord | None:
        """This record for one image (batch dimension kept, of size 1), or None if unseen."""
        rows = self.rows_of(image)
        if rows is None:
            return None
        return replace(
            self,
            tensors={k: v[rows] if v.dim() else v for k, v in self.tensors.items()},
            samples=None,
        )

    def to_numpy(self) -> dict[str, np.ndarray]:
        return {k: v.numpy() for k, v in self.tensors.items()}

    def summary(self) -> str:
        """One line: what this part computed, e.g. its channel weights' min/median/max."""
        return f"{self.label} ({self.kind}): {_describe(self)}"


class Prediction(NamedTuple):
    index: int
    name: str
    probability: float


@dataclass
class Inspection:
    """Everything one forward pass computed, on the CPU.

    inputs: (B, C, H, W) the images as the model saw them. logits, probabilities: (B, K).
    class_names: K names. top: per image, the top-k :class:`Prediction` s, best first.
    blocks: module path -> :class:`BlockRecord`, in network order (the order their taps ran).
    model_type: the model's class name.
    """

    inputs: torch.Tensor
    logits: torch.Tensor
    probabilities: torch.Tensor
    class_names: list[str]
    top: list[list[Prediction]]
    blocks: dict[str, BlockRecord]
    model_type: str

    @property
    def batch_size(self) -> int:
        return self.inputs.shape[0]

    @property
    def has_second_order(self) -> bool:
        return bool(self.blocks)

    def __getitem__(self, path: str) -> BlockRecord:
        try:
            return self.blocks[path]
        except KeyError:
            raise KeyError(
                f"no probed block {path!r}; probed: {', '.join(self.blocks) or 'none'}"
            ) from None

    def of_kind(self, *kinds: str) -> list[BlockRecord]:
        """The records of the given kinds (all records when none is given), in network order."""
        unknown = set(kinds) - set(KINDS)
        if unknown:
            raise ValueError(
                f"unknown block kind {sorted(unknown)[0]!r}; expected one of {', '.join(KINDS)}"
            )
        return [r for r in self.blocks.values() if not kinds or r.kind in kinds]

    def parts(self) -> list[BlockRecord]:
        """The top-level records (a mixture's components are left inside their mixture)."""
        return [r for r in self.blocks.values() if r.within is None]

    def components(self, path: str) -> list[BlockRecord]:
        """The records that belong to the mixture at ``path`` (its components' covariances)."""
        self[path]
        return [r for r in self.blocks.values() if r.within == path]

    def image(self, i: int) -> Inspection:
        """This inspection for image ``i`` alone (every batch dimension of size 1)."""
        if not -self.batch_size <= i < self.batch_size:
            raise IndexError(f"image {i} is out of range for a batch of {self.batch_size}")
        i %= self.batch_size
        blocks = {}
        for path, record in self.blocks.items():
            one = record.select(i)
            if one is not None:
                blocks[path] = one
        return replace(
            self,
            inputs=self.inputs[i : i + 1],
            logits=self.logits[i : i + 1],
            probabilities=self.probabilities[i : i + 1],
            top=[self.top[i]],
            blocks=blocks,
        )

    def to_numpy(self) -> dict[str, np.ndarray]:
        """Flat dict of arrays: inputs, logits, probabilities and 'PATH/TAP' for every tensor
        ('PATH/samples' where a part saw a subset of the batch)."""
        out = {
            "inputs": self.inputs.numpy(),
            "logits": self.logits.numpy(),
            "probabilities": self.probabilities.numpy(),
        }
        for path, record in self.blocks.items():
            for tap, tensor in record.tensors.items():
                out[f"{path}/{tap}"] = tensor.numpy()
            if record.samples is not None:
                out[f"{path}/samples"] = record.samples.numpy()
        return out

    def to_npz(self, file: str | os.PathLike | io.IOBase) -> None:
        """Every array of :meth:`to_numpy` plus the class names, as a compressed .npz."""
        np.savez_compressed(file, class_names=np.array(self.class_names), **self.to_numpy())

    def to_dict(self, max_values: int = JSON_MAX_VALUES) -> dict:
        """JSON-ready: predictions, and per block its kind, summary and tensors (values for
        tensors of at most ``max_values`` elements, shape and statistics for larger ones)."""
        return {
            "model_type": self.model_type,
            "class_names": self.class_names,
            "predictions": [[p._asdict() for p in top] for top in self.top],
            "probabilities": self.probabilities.tolist(),
            "blocks": [
                {
                    "path": r.path,
                    "kind": r.kind,
                    "module_type": r.module_type,
                    "within": r.within,
                    "samples": None if r.samples is None else r.samples.tolist(),
                    "summary": _describe(r),
                    "tensors": {k: _tensor_json(v, max_values) for k, v in r.tensors.items()},
                }
                for r in self.blocks.values()
            ],
        }

    def to_json(self, max_values: int = JSON_MAX_VALUES, indent: int | None = 1) -> str:
        return json.dumps(self.to_dict(max_values), indent=indent)

    def summary(self) -> str:
        """One line per probed part, in network order (or one line saying there is none)."""
        if not self.blocks:
            return (
                f"{self.model_type} has no second-order parts (no taps): only its logits and "
                "probabilities were probed."
            )
        return "\n".join(r.summary() for r in self.parts())

    def predictions_summary(self) -> str:
        """The top-k classes of every image, one line per image."""
        return "\n".join(
            f"image {i}: " + ", ".join(f"{p.name} {p.probability:.1%}" for p in top)
            for i, top in enumerate(self.top)
        )
