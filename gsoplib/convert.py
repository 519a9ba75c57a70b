"""The authors' released checkpoints to gsoplib checkpoints (key names and layouts as their code
writes them).

Two sources, four networks::

    gsop-net       the GSoP-Net repository's main.py: resnet50_gsop1, resnet50_gsop2
    fast-mpn-cov   fast-MPN-COV's MPNCOVResNet weights: resnet50_isqrt, resnet101_isqrt

With the authors' file on disk (so not a doctest):

    convert("gsopnet1.pth.tar", "gsop-net", "resnet50_gsop1", "gsop1.safetensors")
    load_checkpoint("gsop1.safetensors").model    # the authors' network, in gsoplib

A file is read with ``torch.load(weights_only=True)`` only: tensors and plain data, so nothing in
it runs. Its ``state_dict`` (main.py's dict) or the file itself (a plain state dict) is renamed by
:data:`TOP_LEVEL` and :data:`IN_UNIT` (DataParallel's ``module.`` dropped); BatchNorm's
``num_batches_tracked``, which torch 0.4 files lack, is set to zero. Every name and shape must
then be the model's, or the file is refused in one sentence naming what did not fit.

The authors' code makes choices the paper does not, and none changes a parameter's shape: a strict
load succeeds and silently computes something else unless they are set. The converted model is
built with them, and they are written into the checkpoint's model kwargs so that
:func:`gsoplib.checkpoint.load_checkpoint` and the explorer rebuild the same network:

- GSoP repo: a ReLU before each block's reducing conv (``pre_relu``), stride 2 of that conv in
  layer1 only (``rd_stride``), layer4 at stride 1; its GSoP-Net2 head vectorises the upper
  triangle column by column (``Triuvec``'s ``.triu().t()``), so the ``fc`` columns are permuted to
  gsoplib's row-major order (:func:`column_major_triu_order`);
- fast-MPN-COV: layer4 at stride 1, 5 Newton-Schulz iterations, a row-major triangle (as ours).

The checkpoint says how ImageNet images go in: resize the shorter side to 256, centre crop 224,
ImageNet's mean and std, and the 1000 class names in torchvision's order
(:func:`imagenet_classes`, read offline from torchvision's weights metadata).
"""

from __future__ import annotations

import copy
import hashlib
import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from .checkpoint import clean_state_dict, save_checkpoint

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGENET_INPUT = (224, 224)
IMAGENET_RESIZE = 256

# Module names, authors' -> gsoplib. Top level (the stem and the heads) and inside a residual unit
# ``layerS.i``; every other name (conv1..3, bn1..3 of a unit) is the same in both.
TOP_LEVEL = {
    "conv1": "stem.0",
    "bn1": "stem.1",
    "layer_reduce": "head.pool.reduce.0",
    "layer_reduce_bn": "head.pool.reduce.1",
    "fc": "head.fc",
}
IN_UNIT = {
    "downsample": "shortcut",
    "conv_for_DR": "attn.reduce.0",
    "bn_for_DR": "attn.reduce.1",
    "row_bn": "attn.embed.bn",
    "row_conv_group": "attn.embed.conv",
    "fc_adapt_channels": "attn.expand",
}

_UNIT_KEY = re.compile(r"^(layer\d+\.\d+)\.([A-Za-z_]\w*)((?:\.\w+)+)$")
_TOP_KEY = re.compile(r"^([A-Za-z_]\w*)((?:\.\w+)+)$")
_GSOP_CHOICES = {"rd_channels": 128, "pre_relu": True}

SOURCES: dict[str, dict[str, dict]] = {
    "gsop-net": {
        name: {
            "last_stride": 1,
            "block_kwargs": [{**_GSOP_CHOICES, "rd_stride": 2}] + [dict(_GSOP_CHOICES)] * 3,
            **extra,
        }
        for name, extra in (
            ("resnet50_gsop1", {}),
            ("resnet50_gsop2", {"head_kwargs": {"rd_channels": 256, "iters": 3}}),
        )
    },
    "fast-mpn-cov": {
        name: {"last_stride": 1, "head_kwargs": {"rd_channels": 256, "iters": 5}}
        for name in ("resnet50_isqrt", "resnet101_isqrt")
    },
}
# The GSoP repository's Triuvec reads the upper triangle column by column.
COLUMN_MAJOR_HEADS = {("gsop-net", "resnet50_gsop2")}


class ConversionError(ValueError):
    """A file that cannot become the asked-for network; the message says why in one sentence."""


def list_sources() -> dict[str, list[str]]:
    """Each source's convertible model names: {'gsop-net': [...], 'fast-mpn-cov': [...]}."""
    return {source: list(models) for source, models in SOURCES.items()}


def code_choices(source: str, model: str) -> dict:
    """The model kwargs that make ``model`` compute what ``source``'s code computes.

    Examples:
        >>> code_choices("gsop-net", "resnet50_gsop1")["block_kwargs"][0]
        {'rd_channels': 128, 'pre_relu': True, 'rd_stride': 2}
    """
    if source not in SOURCES:
        raise ConversionError(
            f"unknown source {source!r}; expected one of {', '.join(SOURCES)}."
        )
    if model not in SOURCES[source]:
        raise ConversionError(
            f"model {model!r} is not in {source}'s releases; {source} converts to "
            f"{', '.join(SOURCES[source])}."
        )
    return copy.deepcopy(SOURCES[source][model])


def imagenet_classes() -> list[str]:
    """ImageNet-1k's 1000 class names in the order of the models' outputs ('tench', 'goldfish',
    ...), from torchvision's weights metadata: nothing is downloaded."""
    from torchvision.models import ResNet50_Weights

    return list(ResNet50_Weights.IMAGENET1K_V2.meta["categories"])


def to_gsoplib_key(key: str) -> str:
    """An authors' state-dict name -> gsoplib's (``layer1.2.row_bn.weight`` ->
    ``layer1.2.attn.embed.bn.weight``); names without a rule are returned unchanged."""
    unit = _UNIT_KEY.match(key)
    if unit:
        prefix, name, rest = unit.groups()
        return f"{prefix}.{IN_UNIT.get(name, name)}{rest}"
    top = _TOP_KEY.match(key)
    if top and top.group(1) in TOP_LEVEL:
        return TOP_LEVEL[top.group(1)] + top.group(2)
    return key


def to_authors_key(key: str) -> str:
    """The inverse of :func:`to_gsoplib_key`, for naming what a file lacks."""
    for mapping in (IN_UNIT, TOP_LEVEL):
        for theirs, ours in sorted(mapping.items(), key=lambda kv: -len(kv[1])):
            if mapping is IN_UNIT:
                match = re.match(rf"^(layer\d+\.\d+)\.{re.escape(ours)}(\..+)$", key)
                if match:
                    return f"{match.group(1)}.{theirs}{match.group(2)}"
            elif key.startswith(ours + "."):
                return theirs + key[len(ours):]
    return key


def column_major_triu_order(n: int) -> torch.Tensor:
    """For the GSoP repo's column-major triangle of an (n, n) matrix, the index in gsoplib's
    row-major :func:`gsoplib.ops.triu_vec` of each entry: (n(n+1)/2,) long.

    The authors' entry k is (row r, column c), r <= c, taken column by column; gsoplib's layout
    puts it at r n - r(r-1)/2 + (c - r). So ``fc_ours[:, order] = fc_theirs``.
    """
    cols, rows = torch.tril_indices(n, n)  # (i, j), j <= i, row by row = (c, r) column by column
    return rows * n - rows * (rows - 1) // 2 + (cols - rows)


def _refuse(path: Path | str, why: str) -> ConversionError:
    return ConversionError(f"{path} {why}")


def _short(keys: list[str], limit: int = 3) -> str:
    return ", ".join(keys[:limit]) + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def _unreadable(path: Path, error: BaseException) -> ConversionError:
    why = " ".join(str(error).split())[:160] or type(error).__name__
    return _refuse(path, f"is not a readable PyTorch file (corrupt or truncated: {why}).")


def read_authors_file(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """The state dict in an authors' ``.pth`` / ``.pth.tar`` and what main.py saved beside it
    (``epoch``, ``arch``, ``best_prec1``), read with ``torch.load(weights_only=True)``.

    Raises ConversionError for a missing file, a pickle that holds code (refused before anything
    in it runs), a corrupt or truncated file, or contents that are not a state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise _refuse(path, "does not exist or is not a file; expected the authors' .pth or "
                            ".pth.tar.")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        # weights_only names the global (a function or class) it would not import.
        found = re.search(r"GLOBAL [\w.]+", str(error))
        if found:
            raise _refuse(path, f"holds objects other than tensors and plain data "
                                f"({found.group(0)}), code a pickle would run when loaded; it "
                                "was refused without running anything.") from None
        raise _unreadable(path, error) from None
    except Exception as error:  # torch raises RuntimeError, EOFError, ... for broken files
        raise _unreadable(path, error) from None
    info = {}
    if isinstance(obj, Mapping) and "state_dict" in obj:
        info = {k: obj[k] for k in ("epoch", "arch", "best_prec1") if k in obj}
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not obj:
        kind = type(obj).__name__
        raise _refuse(path, f"holds a {kind} that is not a state dict; expected a dict of "
                            "tensors or main.py's dict with 'state_dict'.")
    not_tensors = [str(k) for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise _refuse(path, f"has state-dict entries that are not tensors ({_short(not_tensors)});"
                            " expected a dict of tensors.")
    info = {k: _plain(v) for k, v in info.items()}
    return clean_state_dict(obj), {k: v for k, v in info.items() if v is not None}


def _plain(value) -> int | float | str | None:
    """A number or a name main.py saved, for the metadata; anything else is left out."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    return value if isinstance(value, (int, float, str)) else None


def _stage_depths(keys) -> list[int]:
    depth: dict[int, int] = {}
    for key in keys:
        match = re.match(r"^layer(\d+)\.(\d+)\.", key)
        if match:
            stage, unit = int(match.group(1)), int(match.group(2))
            depth[stage] = max(depth.get(stage, 0), unit + 1)
    return [depth[s] for s in sorted(depth)]


def convert_state_dict(state: Mapping[str, torch.Tensor], source: str, model_name: str,
                       where: str | os.PathLike = "the state dict") -> tuple[nn.Module, dict]:
    """An authors' state dict (``module.`` already dropped) -> (gsoplib model in eval mode, its
    model kwargs). ``where`` names the input in errors."""
    from .models import create_model, model_defaults

    kwargs = code_choices(source, model_name)
    defaults = model_defaults(model_name)
    kwargs = {"num_classes": defaults["num_classes"], "in_chans": defaults["in_chans"], **kwargs}
    model = create_model(model_name, **kwargs)
    expected = model.state_dict()
    mapped = {to_gsoplib_key(k): v for k, v in state.items()}
    ours_depths, file_depths = _stage_depths(expected), _stage_depths(mapped)
    if file_depths != ours_depths:
        raise _refuse(where, f"has residual stages of {file_depths or 'no'} blocks, but "
                             f"{model_name} has {ours_depths}; it is another architecture.")
    optional = {k for k in expected if k.endswith("num_batches_tracked")}
    missing = sorted(to_authors_key(k) for k in set(expected) - set(mapped) - optional)
    unexpected = sorted(k for k, v in state.items() if to_gsoplib_key(k) not in expected)
    wrong = sorted(
        f"{k} {tuple(v.shape)} (expected {tuple(expected[to_gsoplib_key(k)].shape)})"
        for k, v in state.items()
        if to_gsoplib_key(k) in expected and v.shape != expected[to_gsoplib_key(k)].shape
    )
    if missing or unexpected or wrong:
        parts = [f"{label} {_short(keys)}" for label, keys in (
            ("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)) if keys]
        hint = ""
        if any("_spatial" in k for k in unexpected):
            hint = " (position-wise GSoP blocks are not among the released networks converted)"
        raise _refuse(where, f"does not fit {source}'s {model_name} ({'; '.join(parts)}){hint}.")
    weights = {k: mapped.get(k, torch.zeros_like(v)) for k, v in expected.items()}
    if (source, model_name) in COLUMN_MAJOR_HEADS:
        fc = weights["head.fc.weight"]
        order = column_major_triu_order(model.head.pool.rd_channels)
        permuted = torch.empty_like(fc)
        permuted[:, order] = fc
        weights["head.fc.weight"] = permuted
    model.load_state_dict(weights)
    return model.eval(), kwargs


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def convert(src: str | os.PathLike, source: str, model: str, out: str | os.PathLike) -> Path:
    """Convert the authors' file ``src`` from ``source`` ('gsop-net' or 'fast-mpn-cov') into the
    gsoplib checkpoint ``out`` of network ``model`` (see :func:`list_sources`); returns ``out``.

    The checkpoint records the code's choices in its model kwargs, ImageNet's 1000 class names,
    mean and std, input 224 after resizing the shorter side to 256, and where it came from
    (``train.converted_from``: source, file name, its SHA-256, main.py's epoch/arch/best_prec1).
    """
    src = Path(src)
    code_choices(source, model)  # an unknown source or model is refused before reading
    state, info = read_authors_file(src)
    net, kwargs = convert_state_dict(state, source, model, src)
    origin = {"source": source, "file": src.name, "sha256": _sha256(src), **info}
    return save_checkpoint(
        out,
        net,
        model_name=model,
        model_kwargs=kwargs,
        classes=imagenet_classes(),
        input_size=IMAGENET_INPUT,
        in_chans=3,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        dataset="imagenet",
        train_config={"converted_from": origin},
        resize=IMAGENET_RESIZE,
    )


__all__ = [
    "SOURCES",
    "ConversionError",
    "code_choices",
    "column_major_triu_order",
    "convert",
    "convert_state_dict",
    "imagenet_classes",
    "list_sources",
    "read_authors_file",
    "to_authors_key",
    "to_gsoplib_key",
]
