"""Pretrained weights by name: torchvision's weights API and timm's pretrained tags, offline first.

    backbone_model("torchvision:resnet50", "IMAGENET1K_V2", blocks="C,C,C,C", ...)
    backbone_model("timm:resnet50", "a1_in1k", ...)        # or "pretrained": timm's default tag
    gsop train --backbone torchvision:resnet50 --weights IMAGENET1K_V2 ...

A name is resolved through the library's own API (:func:`torchvision.models.get_model_weights`;
timm's pretrained configuration and its Hugging Face hub file), then read from the library's own
cache: torchvision's ``$TORCH_HOME/hub/checkpoints/<file>`` (``torch.hub.get_dir()``), the hub's
``$HF_HOME`` for timm. A file that is not there is downloaded when the machine is online; offline,
the error is one sentence that says where it looked and how to pass a file instead.

Nothing from the file runs: a torchvision ``.pth`` is read with ``torch.load(weights_only=True)``
and timm's ``model.safetensors`` has no code to run (:func:`gsoplib.models.backbones.read_weights`).

The hash. torchvision's file names carry the first hex digits of the file's SHA-256
(``resnet50-11ad3fa6.pth``); torch.hub checks them only while downloading and trusts a cached
file. Here the cached file is hashed too, on every load, and a mismatch is refused (a truncated or
replaced file). The hub's timm files carry no hash in their name and the hub does not re-check a
cached file; neither does this module.

What the weights say about their data (categories, the resize and crop of their evaluation
transform, mean and std) is :attr:`NamedWeights.data`, in the keyword arguments of
:func:`gsoplib.checkpoint.save_checkpoint`, so a checkpoint of the pretrained network reads
images as its weights expect; the trainer writes it into a fine-tuned checkpoint's
``train.weights_data``.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

#: torch.hub's rule for the hash in a file name: the hex digits after the last '-'.
HASH_IN_NAME = re.compile(r"-([a-f0-9]+)\.")
_NAME = re.compile(r"^[A-Za-z0-9_]+$")


class WeightsNotFoundError(ValueError):
    """Named weights that are neither in the cache nor downloadable, or fail their hash."""


@dataclass
class NamedWeights:
    """Weights resolved from a name: where they are cached and what they say about their data.

    ``full_name``: 'ResNet50_Weights.IMAGENET1K_V2' or 'timm/resnet50.a1_in1k'. ``url``: where
    they download from (torchvision) or None (the hub, by ``hub_id``). ``file``: the cache path
    they are read from. ``data``: classes, input_size, in_chans, mean, std, resize, as
    :func:`gsoplib.checkpoint.save_checkpoint` takes them.
    """

    full_name: str
    file: Path | None
    url: str | None = None
    hub_id: str | None = None
    data: dict = field(default_factory=dict)


def is_weights_name(weights) -> bool:
    """A name (``IMAGENET1K_V2``, ``DEFAULT``, ``a1_in1k``, ``pretrained``), not a path."""
    return (isinstance(weights, str) and bool(_NAME.match(weights))
            and not Path(weights).exists())


def _resize_for(crop: int, crop_pct: float) -> int:
    return int(math.floor(crop / crop_pct))


def resolve_torchvision(arch: str, name: str) -> NamedWeights:
    """torchvision's ``<Arch>_Weights.<name>`` for ``arch`` ('resnet50'); nothing is read yet."""
    import torchvision

    try:
        enum = torchvision.models.get_model_weights(arch)
    except ValueError:
        raise WeightsNotFoundError(f"torchvision has no weights for {arch!r}") from None
    if name not in enum.__members__:
        raise WeightsNotFoundError(
            f"torchvision's {enum.__name__} has no {name!r}; its names are "
            f"{', '.join(enum.__members__)} (or pass a file of weights on disk)")
    weights = enum[name]
    evaluation = weights.transforms()
    crop, resize = evaluation.crop_size[0], evaluation.resize_size[0]
    categories = list(weights.meta.get("categories") or [])
    return NamedWeights(
        full_name=f"{enum.__name__}.{weights.name}",
        file=Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url),
        url=weights.url,
        data={"classes": categories, "input_size": (crop, crop), "in_chans": 3,
              "mean": tuple(evaluation.mean), "std": tuple(evaluation.std), "resize": resize},
    )


def resolve_timm(arch: str, tag: str) -> NamedWeights:
    """timm's pretrained configuration ``arch.tag`` ('pretrained': timm's default tag)."""
    import timm

    full = arch if tag == "pretrained" else f"{arch}.{tag}"
    try:
        cfg = timm.models.get_pretrained_cfg(full)
    except RuntimeError:  # timm's word for a tag the architecture does not have
        cfg = None
    if cfg is None or not cfg.hf_hub_id:
        tags = [n.split(".", 1)[1] for n in timm.list_pretrained(f"{arch}.*")]
        raise WeightsNotFoundError(
            f"timm has no pretrained weights {full!r} on its hub; its tags for {arch} are "
            f"{', '.join(tags) or 'none'} (or pass a file of weights on disk)")
    crop = cfg.input_size[-1]
    classes: list[str] = []
    if cfg.num_classes == 1000:
        from timm.data import ImageNetInfo

        classes = list(ImageNetInfo().label_descriptions())
    return NamedWeights(
        full_name=cfg.hf_hub_id, file=None, hub_id=cfg.hf_hub_id,
        data={"classes": classes, "input_size": (crop, crop), "in_chans": 3,
              "mean": tuple(cfg.mean), "std": tuple(cfg.std),
              "resize": _resize_for(crop, cfg.crop_pct)},
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _torchvision_file(named: NamedWeights, progress: bool) -> Path:
    file = named.file
    match = HASH_IN_NAME.search(file.name)
    prefix = match.group(1) if match else None
    if not file.is_file():
        file.parent.mkdir(parents=True, exist_ok=True)
        try:
            torch.hub.download_url_to_file(named.url, str(file), hash_prefix=prefix,
                                           progress=progress)
        except Exception as error:  # offline, refused, interrupted: all one sentence
            why = " ".join(str(error).split())[:120] or type(error).__name__
            raise WeightsNotFoundError(
                f"torchvision weights {named.full_name} are not in the cache (looked for "
                f"{file}, under $TORCH_HOME) and could not be downloaded ({why}); on a machine "
                f"that is online, load them once to fill the cache, or pass a file of weights "
                f"on disk (--weights path/to/{file.name})") from None
    if prefix and not _sha256(file).startswith(prefix):
        raise WeightsNotFoundError(
            f"cached file {file} does not match the SHA-256 prefix {prefix} its name carries "
            f"(truncated or replaced); delete it to download it again")
    return file


def _hub_file(named: NamedWeights) -> Path:
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(named.hub_id, "model.safetensors"))
    except Exception as error:  # offline with no cached copy, or the hub refuses
        why = " ".join(str(error).split())[:120] or type(error).__name__
        raise WeightsNotFoundError(
            f"timm weights {named.full_name} are not in the hub's cache (under $HF_HOME, "
            f"models--{named.hub_id.replace('/', '--')}) and could not be downloaded ({why}); "
            f"on a machine that is online, load them once to fill the cache, or pass a "
            f"file of weights on disk") from None


def fetch(named: NamedWeights, progress: bool = True) -> Path:
    """The weights' file: from the cache, or downloaded into it; checked as the module says."""
    return _torchvision_file(named, progress) if named.url else _hub_file(named)


def resolve(backbone: str, name: str) -> NamedWeights:
    """``resolve("torchvision:resnet50", "IMAGENET1K_V2")``: the named weights of a backbone."""
    source, _, arch = backbone.partition(":")
    if source == "torchvision":
        return resolve_torchvision(arch, name)
    return resolve_timm(arch, name)


__all__ = ["NamedWeights", "WeightsNotFoundError", "fetch", "is_weights_name", "resolve"]
