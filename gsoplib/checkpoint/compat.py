"""Files older gsoplib versions wrote: the head defaults they were trained with."""

from __future__ import annotations

import re

from gsoplib.models.build import model_kwargs
from gsoplib.models.resnet import parse_mask

#: Head defaults that changed in gsoplib 0.3, as earlier versions had them: a file written
#: before 0.3 (which pinned none of its head's defaults) is rebuilt with these. The GM-SOP gate's
#: form is told from the file's tensors (:func:`_written_defaults`).
LEGACY_HEAD_DEFAULTS = {"isqrt": {"feature_scale": 1.0}, "gated_mixture": {"alpha": 100.0}}
PINNED_SINCE = (0, 3)


def _version(meta: dict) -> tuple[int, ...]:
    text = str((meta.get("versions") or {}).get("gsoplib", "0"))
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3]) or (0,)


def _written_defaults(name: str, kwargs: dict, tensors, meta: dict) -> dict:
    """``kwargs`` with the head defaults of the gsoplib that wrote the file, for a file written
    before 0.3 (:data:`LEGACY_HEAD_DEFAULTS`). Its GM-SOP gate: 'live', 0.2's default, when the
    file holds the live gate's standardisation buffers (``...gate.norm.running_mean``);
    'release', 0.1's, when it does not."""
    head_kwargs = kwargs.get("head_kwargs") or {}
    if _version(meta) >= PINNED_SINCE or not isinstance(head_kwargs, dict):
        return kwargs
    try:
        built = model_kwargs(name, **kwargs)
        head = built.get("head") or (
            "isqrt" if parse_mask(built.get("blocks") or "-", len(built["layers"]))[1] else "gap")
    except Exception:  # an unknown name or bad kwargs: the checks that follow say so
        return kwargs
    legacy = dict(LEGACY_HEAD_DEFAULTS.get(head, {}))
    if head == "gated_mixture":
        live = any(k.endswith("gate.norm.running_mean") for k in tensors)
        legacy["gate"] = "live" if live else "release"
    if not legacy:
        return kwargs
    return {**kwargs, "head_kwargs": {**legacy, **head_kwargs}}
