"""Rebuild the sample galleries: the first three test images of each class, one folder per set.

    python explorer/gallery/build.py

``fashion_mnist/`` holds Fashion-MNIST test images (read where gsoplib.data finds them, e.g.
Debian's dataset-fashion-mnist under /usr/share/datasets/fashion-mnist); ``second_order/`` the
generated second-order set's test images (gsoplib.data.second_order, seed 0). Files are named
``<label>-<test index>.png``; each folder's ``classes.json`` names the dataset and its classes,
so the explorer knows every sample's true class without loading the dataset.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from gsoplib.data import load_dataset  # noqa: E402

PER_CLASS = 3
DATASETS = ("fashion_mnist", "second_order")


def build(dataset: str) -> None:
    split = load_dataset(dataset, train=False, download=False)
    images, labels = split.images.numpy(), split.labels.numpy()
    folder = HERE / dataset
    folder.mkdir(exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    for label in range(len(split.info.classes)):
        for index in np.flatnonzero(labels == label)[:PER_CLASS]:
            pixels = images[index]
            pixels = pixels[0] if pixels.shape[0] == 1 else pixels.transpose(1, 2, 0)
            Image.fromarray(pixels).save(folder / f"{label}-{index:05d}.png", optimize=True)
    info = {"dataset": dataset, "classes": list(split.info.classes)}
    (folder / "classes.json").write_text(json.dumps(info, indent=1) + "\n")


def main() -> None:
    for dataset in DATASETS:
        build(dataset)


if __name__ == "__main__":
    main()
