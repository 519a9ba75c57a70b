"""``probe(model, images)``: hooks on every tap for one forward pass, their copies grouped by the
module that owns them."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import torch
from torch import nn

from ..taps import Tap
from ..taps import taps as find_taps
from .records import GATE_TAPS, BlockRecord, Inspection, Prediction, block_kind


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
