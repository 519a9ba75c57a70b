"""An ImageNet-size checkpoint for tests and benchmarks/explorer.py: a seeded (untrained) GSoP-Net1
ResNet-50 written as the GSoP repo's main.py writes its files (tests/authors_files.py) and
converted by :func:`gsoplib.convert.convert`, as a user converts the authors' released weights:
224x224 after resizing to 256, ImageNet's 1000 class names, mean and std, the code's choices in
its model kwargs. About 100 MB: written to a temporary folder, never committed."""

from __future__ import annotations

from pathlib import Path

import torch
from authors_files import GSOP_CODE, authors_layout, main_py_file

MODEL = "resnet50_gsop1"


def imagenet_classes() -> list[str]:
    from gsoplib.convert import imagenet_classes

    return imagenet_classes()


def save_imagenet_checkpoint(folder: Path, seed: int = 0) -> Path:
    """``folder``/resnet50_gsop1-imagenet.safetensors, converted from an authors'-layout file of
    weights drawn with ``seed`` (the file is removed after conversion)."""
    from gsoplib.convert import convert
    from gsoplib.models import create_model

    torch.manual_seed(seed)
    model = create_model(MODEL, num_classes=1000, **GSOP_CODE).eval()
    folder = Path(folder)
    src = main_py_file(folder / "gsopnet1_authors_layout.pth.tar", authors_layout(model))
    out = convert(src, "gsop-net", MODEL, folder / f"{MODEL}-imagenet.safetensors")
    src.unlink()
    return out
