"""Floor 1: the checkpoints bundled in ``gsoplib/pretrained/``, by file and by name.

A bundled file ``<tag>_<arch>.safetensors`` is named ``<arch>.<tag>`` the way timm names
pretrained weights (``resnet50.a1_in1k``): ``small_gsop1.fmnist`` is ``small_gsop1`` trained on
Fashion-MNIST. Both names are accepted wherever a bundled checkpoint is (:mod:`gsoplib.pretrained`,
``list_models(pretrained=True)``); this module only lists files and reads nothing.

Examples:
    >>> bundled_name("fmnist_small_gsop1"), file_stem("small_gsop1.fmnist")
    ('small_gsop1.fmnist', 'fmnist_small_gsop1')
    >>> "small_vanilla.second_order" in bundled_files()
    True
"""

from __future__ import annotations

from pathlib import Path

FOLDER = Path(__file__).resolve().parent / "pretrained"
#: a file's tag prefix -> the dataset it was trained on
TAGS = {"fmnist": "fashion_mnist", "second_order": "second_order"}


def bundled_name(stem: str) -> str:
    """``fmnist_small_gsop1`` -> ``small_gsop1.fmnist``; a stem with no known tag unchanged."""
    for tag in sorted(TAGS, key=len, reverse=True):
        if stem.startswith(tag + "_"):
            return f"{stem[len(tag) + 1:]}.{tag}"
    return stem


def file_stem(name: str) -> str:
    """``small_gsop1.fmnist`` -> ``fmnist_small_gsop1``; a file stem unchanged."""
    arch, dot, tag = name.rpartition(".")
    return f"{tag}_{arch}" if dot and tag in TAGS else name


def bundled_files() -> dict[str, Path]:
    """``arch.tag`` -> file, for every bundled checkpoint, sorted by name."""
    files = {bundled_name(p.stem): p for p in FOLDER.glob("*.safetensors")}
    return dict(sorted(files.items()))


__all__ = ["FOLDER", "TAGS", "bundled_files", "bundled_name", "file_stem"]
