"""An ImageNet-size checkpoint for tests and benchmarks/explorer.py: a seeded (untrained)
ResNet-50 GSoP-Net1 at 224x224 with ImageNet's 1000 class names (torchvision's weights metadata,
offline), mean/std and the resize-256-then-crop-224 evaluation transform, laid out as a
converted checkpoint of the authors' weights is. About 100 MB: written to a temporary folder,
never committed."""

from __future__ import annotations

from pathlib import Path

import torch

MODEL = "resnet50_gsop1"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def imagenet_classes() -> list[str]:
    from torchvision.models import ResNet50_Weights

    return list(ResNet50_Weights.IMAGENET1K_V2.meta["categories"])


def save_imagenet_checkpoint(folder: Path, seed: int = 0) -> Path:
    """``folder``/resnet50_gsop1-imagenet.safetensors, weights drawn with ``seed``."""
    from gsoplib.checkpoint import save_checkpoint
    from gsoplib.models import create_model

    torch.manual_seed(seed)
    kwargs = {"num_classes": 1000}
    model = create_model(MODEL, **kwargs).eval()
    return save_checkpoint(
        Path(folder) / f"{MODEL}-imagenet.safetensors", model, model_name=MODEL,
        model_kwargs=kwargs, classes=imagenet_classes(), input_size=(224, 224), in_chans=3,
        mean=IMAGENET_MEAN, std=IMAGENET_STD, resize=256, dataset="imagenet",
    )
