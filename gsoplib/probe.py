"""probe(model, images) -> Inspection: everything the second-order parts of a network computed.

Blocks and heads expose their intermediates through named :class:`~gsoplib.taps.Tap` submodules
(the channel covariance before and after row-BN and the channel weights of a GSoP block, GSoP-Net
Sec. 3.1; the position covariance and weight map, Sec. 3.2; the iSQRT-COV covariance and its
normalised square root; the GM-SOP gate's logits, choices and weights, GM-SOP Eq. 2-3). ``probe``
hooks every tap for one forward pass in eval mode without gradients, copies what each tap saw to
the CPU and removes its hooks, also when the forward raises.

Taps are grouped by the module that owns them (the tap's parent path, e.g. ``layer3.1.gsop``),
one :class:`BlockRecord` per module in the order the network ran them. A gate's taps are folded
into the mixture head that owns it, so a GM-SOP head is one ``gated_mixture`` record.

Examples:
    >>> import torch
    >>> from gsoplib.pretrained import load_pretrained
    >>> ck = load_pretrained("fmnist_small_gsop1")
    >>> insp = probe(ck.model, torch.rand(2, 1, 28, 28), class_names=ck.classes)
    >>> insp.blocks["layer3.2.attn"].tensors["tap_channel_weights"].shape   # (B, C, 1, 1)
    torch.Size([2, 64, 1, 1])
    >>> summary = insp.summary()                 # one line per block, printable
"""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from .ops import top_eigenvalue_share
from .taps import Tap
from .taps import taps as find_taps

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


def _describe(r: BlockRecord) -> str:
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


def _group_path(tap_path: str) -> str:
    return tap_path.rpartition(".")[0]


def _select_taps(found: dict[str, Tap], selectors: Sequence[str] | str | None) -> dict[str, Tap]:
    if selectors is None:
        return found
    if isinstance(selectors, str):
        selectors = [selectors]
    chosen: dict[str, Tap] = {}
    for sel in selectors:
        matches = {
            p: t
            for p, t in found.items()
            if p.rpartition(".")[2] == sel or p == sel or p.startswith(sel + ".") or sel == ""
        }
        if not matches:
            names = sorted({p.rpartition(".")[2] for p in found})
            groups = list(dict.fromkeys(_group_path(p) for p in found))
            raise ValueError(
                f"taps selector {sel!r} matches no tap; use a tap name "
                f"({', '.join(names) or 'none'}) or a module path ({', '.join(groups) or 'none'})"
            )
        chosen.update(matches)
    return {p: t for p, t in found.items() if p in chosen}


def _owners(model: nn.Module, tap_paths: Iterable[str]) -> dict[str, str]:
    """tap path -> the path of the record it belongs to (a gate's taps go to its mixture)."""
    modules = dict(model.named_modules())
    all_tap_groups = {_group_path(p) for p in find_taps(model)}
    owners = {}
    for path in tap_paths:
        group = _group_path(path)
        parent = group.rpartition(".")[0] if "." in group else ""
        gate_only = {
            p.rpartition(".")[2] for p in find_taps(modules[group]) if "." not in p
        } <= GATE_TAPS
        if gate_only and group and parent in all_tap_groups:
            group = parent
        owners[path] = group
    return owners


def _copy(t: torch.Tensor) -> torch.Tensor:
    # A copy, not a view: the block's output is often modified in place afterwards (the residual
    # add of a bottleneck), which would rewrite what the tap saw.
    t = t.detach()
    if t.is_floating_point() and t.dtype not in (torch.float32, torch.float64):
        t = t.float()
    return t.to("cpu", copy=True)


_COMPONENT = re.compile(r"components\.(\d+)(\.|$)")


def _attach_components(blocks: dict[str, BlockRecord]) -> None:
    """Mark each mixture component's record with the images it saw (GM-SOP dispatch runs a
    component only on the images whose top-k chose it, in batch order)."""
    mixtures = [r for r in blocks.values() if r.kind in ("gated_mixture", "average_mixture")]
    for record in blocks.values():
        for mix in mixtures:
            prefix = mix.path + "." if mix.path else ""
            if record is mix or not record.path.startswith(prefix):
                continue
            match = _COMPONENT.match(record.path[len(prefix):])
            if not match:
                continue
            record.within = mix.path
            rows = next(iter(record.tensors.values())).shape[0]
            if "tap_gate_indices" in mix.tensors:
                chosen = (mix.tensors["tap_gate_indices"] == int(match.group(1))).any(dim=1)
                samples = chosen.nonzero().flatten()
                if samples.numel() == rows:
                    record.samples = samples


def _device(model: nn.Module) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def _check_images(images: torch.Tensor) -> torch.Tensor:
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor (B, C, H, W), got {type(images).__name__}")
    if images.dim() == 3:
        images = images.unsqueeze(0)
    if images.dim() != 4 or not images.is_floating_point():
        raise ValueError(
            "images must be a normalised float tensor (B, C, H, W) or (C, H, W), got "
            f"{images.dtype} of shape {tuple(images.shape)}"
        )
    return images


def probe(
    model: nn.Module,
    images: torch.Tensor,
    *,
    taps: Sequence[str] | str | None = None,
    class_names: Sequence[str] | None = None,
    top_k: int = 5,
) -> Inspection:
    """Run ``model`` once on ``images`` and collect what every tap saw.

    Args:
        model: returns logits (B, K) from ``model(images)``.
        images: (B, C, H, W) or (C, H, W), normalised as the model expects; moved to the
            model's device.
        taps: which taps to read: tap names ('tap_channel_weights'), module paths ('layer3.1')
            or tap paths; None reads every tap. A selector that matches nothing is an error.
        class_names: K names; default 'class 0' ... 'class K-1'.
        top_k: predictions kept per image (at most K).

    Returns:
        :class:`Inspection` with everything on the CPU. The model runs in eval mode without
        gradients; every module's train/eval flag is restored afterwards and every hook removed,
        also when the forward raises.
    """
    images = _check_images(images).to(_device(model))
    selected = _select_taps(find_taps(model), taps)
    owners = _owners(model, selected)
    modules = dict(model.named_modules())
    seen: dict[str, dict[str, torch.Tensor]] = {}
    calls: dict[str, dict[str, int]] = {}

    def hook_for(tap_path: str):
        group, name = owners[tap_path], tap_path.rpartition(".")[2]

        def hook(module: nn.Module, args, output) -> None:
            seen.setdefault(group, {})[name] = _copy(output)
            counts = calls.setdefault(group, {})
            counts[name] = counts.get(name, 0) + 1

        return hook

    modes = [(m, m.training) for m in model.modules()]
    handles = []
    try:
        for tap_path, tap in selected.items():
            handles.append(tap.register_forward_hook(hook_for(tap_path)))
        model.eval()
        with torch.no_grad():
            logits = model(images)
    finally:
        for handle in handles:
            handle.remove()
        for module, mode in modes:
            module.training = mode

    if not isinstance(logits, torch.Tensor) or logits.dim() != 2:
        raise TypeError(
            "model(images) must return logits of shape (B, num_classes), got "
            f"{type(logits).__name__}"
            + (f" of shape {tuple(logits.shape)}" if isinstance(logits, torch.Tensor) else "")
        )
    logits = _copy(logits).float()
    num_classes = logits.shape[1]
    names = [f"class {i}" for i in range(num_classes)] if class_names is None else list(
        class_names
    )
    if len(names) != num_classes:
        raise ValueError(f"class_names has {len(names)} names but the model has {num_classes} "
                         "classes")
    probabilities = logits.softmax(dim=1)
    top = probabilities.topk(min(top_k, num_classes), dim=1)
    predictions = [
        [Prediction(i, names[i], p) for p, i in zip(ps, ids)]
        for ps, ids in zip(top.values.tolist(), top.indices.tolist())
    ]
    blocks = {
        group: BlockRecord(
            path=group,
            kind=block_kind(tensors),
            module_type=type(modules[group]).__name__,
            tensors=tensors,
            calls=max(calls[group].values()),
        )
        for group, tensors in seen.items()
    }
    _attach_components(blocks)
    return Inspection(
        inputs=_copy(images),
        logits=logits,
        probabilities=probabilities,
        class_names=names,
        top=predictions,
        blocks=blocks,
        model_type=type(model).__name__,
    )


def to_pixels(image, in_chans: int, size: tuple[int, int], resize: int | None = None
              ) -> torch.Tensor:
    """A PIL image, an image file or uint8 pixels -> uint8 (B, in_chans, H, W) at ``size``.

    Files are read with :func:`gsoplib.images.read_image` (its formats, size limits and
    orientation); PIL images and files are converted to L or RGB and centre-fit to ``size``
    (H, W) by :func:`gsoplib.images.to_model_image` (after resizing the shorter side to
    ``resize`` when given, a checkpoint's ``data.resize``). uint8 tensors or arrays (H, W),
    (H, W, C) arrays, (C, H, W) or (B, C, H, W) tensors must already have ``in_chans``
    channels and that
    size. An unreadable file raises :class:`gsoplib.images.ImageInputError` (a ValueError).
    """
    from PIL import Image
    from torchvision.transforms.functional import pil_to_tensor

    from .images import read_image, to_model_image

    if isinstance(image, str | os.PathLike):
        image = read_image(image).image
    if isinstance(image, Image.Image):
        return pil_to_tensor(to_model_image(image, in_chans, size, resize=resize)).unsqueeze(0)
    if isinstance(image, np.ndarray):
        image = torch.from_numpy(image if image.ndim != 3 else image.transpose(2, 0, 1).copy())
    if isinstance(image, torch.Tensor) and image.dtype == torch.uint8:
        pixels = image.view(1, 1, *image.shape) if image.dim() == 2 else image
        pixels = pixels.unsqueeze(0) if pixels.dim() == 3 else pixels
        if pixels.dim() == 4 and pixels.shape[1] == in_chans and tuple(pixels.shape[2:]) == size:
            return pixels
        raise ValueError(
            f"uint8 pixels must be ({in_chans}, {size[0]}, {size[1]}) or a batch of them for "
            f"this checkpoint, got shape {tuple(image.shape)}; pass a PIL image to resize"
        )
    raise TypeError(
        "image must be a PIL image, an image file path or uint8 pixels, got "
        f"{type(image).__name__}"
    )


def probe_image(checkpoint, image, *, taps: Sequence[str] | str | None = None, top_k: int = 5
                ) -> Inspection:
    """Probe a loaded :class:`~gsoplib.checkpoint.Checkpoint` on an image, as it was trained.

    image: a PIL image or an image file (converted to the checkpoint's channels and centre-fit
    to its input size, after resizing its shorter side to ``checkpoint.resize`` when set) or
    uint8 pixels (C, H, W) / (B, C, H, W) already at that size. Pixels are
    normalised with the checkpoint's mean and std, and classes are named from its metadata.

    Examples:
        >>> from PIL import Image
        >>> from gsoplib.pretrained import load_pretrained
        >>> insp = probe_image(load_pretrained("fmnist_small_gsop1"), Image.new("L", (60, 40)))
        >>> insp.inputs.shape                  # or a file: probe_image(ck, "shoe.png")
        torch.Size([1, 1, 28, 28])
    """
    from .data import normalize

    pixels = to_pixels(image, checkpoint.in_chans, tuple(checkpoint.input_size),
                       checkpoint.resize)
    x = normalize(pixels, checkpoint.mean, checkpoint.std)
    return probe(checkpoint.model, x, taps=taps, class_names=checkpoint.classes, top_k=top_k)


__all__ = [
    "KINDS",
    "BlockRecord",
    "Inspection",
    "Prediction",
    "block_kind",
    "probe",
    "probe_image",
    "to_pixels",
]
