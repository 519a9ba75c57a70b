"""Checkpoints shipped with the package: small models trained by ``gsop train``.

Each ``TAG_ARCH.safetensors`` beside this file is a :mod:`gsoplib.checkpoint` file, named
``ARCH.TAG`` as timm names pretrained weights (``small_gsop1.fmnist``; the file's stem
``fmnist_small_gsop1`` works too, see :mod:`gsoplib.bundled`). Its metadata records the model, the
data, the recipe and the command's settings, the wall time, and the final test metrics.
``benchmarks/train_pretrained.sh`` regenerates them all.

Examples:
    >>> from gsoplib.pretrained import list_pretrained, load_pretrained
    >>> "fmnist_small_gsop1" in list_pretrained()
    True
    >>> pretrained_names("*gsop1*")
    ['small_gsop1.fmnist', 'small_gsop1.second_order']
    >>> ck = load_pretrained("small_gsop1.fmnist")             # or "fmnist_small_gsop1"
    >>> type(ck.model).__name__, ck.classes[:2], ck.metrics["test_top1"] > 0.9
    ('ResNet', ['T-shirt/top', 'Trouser'], True)
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from gsoplib.bundled import FOLDER, bundled_files, file_stem
from gsoplib.checkpoint import Checkpoint, load_checkpoint, read_metadata
from gsoplib.registry import UnknownNameError, did_you_mean, matching, unknown


def list_pretrained() -> list[str]:
    """The bundled checkpoints' file stems (``fmnist_small_gsop1``), sorted."""
    return sorted(p.stem for p in FOLDER.glob("*.safetensors"))


def pretrained_names(pattern: str | None = None) -> list[str]:
    """The bundled checkpoints as ``arch.tag`` (``small_gsop1.fmnist``), those matching
    ``pattern`` (``"*gsop*"``) if given."""
    return matching(bundled_files(), pattern)


def pretrained_path(name: str) -> Path:
    """The file of bundled checkpoint ``name`` (``arch.tag`` or the file's stem); an unknown
    name is one sentence with the close ones."""
    stem = file_stem(name) if isinstance(name, str) else None
    if stem not in list_pretrained():  # only a bundled file: no path is built from the name
        raise unknown("pretrained checkpoint", name, pretrained_names())
    return FOLDER / f"{stem}.safetensors"


def resolve_checkpoint(name_or_path: str | os.PathLike) -> Path:
    """A checkpoint file on disk, or a bundled checkpoint by name (``arch.tag`` or the file's
    stem): the one lookup ``gsop eval | inspect | explore --checkpoint`` and the explorer share.
    Neither is one sentence with the close bundled names."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    if file_stem(str(name_or_path)) in list_pretrained():
        return pretrained_path(str(name_or_path))
    names = pretrained_names()
    raise UnknownNameError(
        f"{str(name_or_path)!r} is neither a file nor a bundled checkpoint."
        f"{did_you_mean(name_or_path, names)} Bundled: {', '.join(names) or 'none'}.")


def pretrained_info(name: str) -> dict:
    """Metadata of bundled checkpoint ``name`` without loading its weights."""
    return read_metadata(pretrained_path(name))


def load_pretrained(name: str, device: torch.device | str = "cpu") -> Checkpoint:
    """Rebuild bundled checkpoint ``name`` (model in eval mode, with its metadata)."""
    return load_checkpoint(pretrained_path(name), device)


__all__ = ["list_pretrained", "load_pretrained", "pretrained_info", "pretrained_names",
           "pretrained_path", "resolve_checkpoint"]
