"""The datasets gsoplib trains on, each read into one form: a :class:`Split`.

Small sets (Fashion-MNIST, CIFAR-10/100, the generated second-order set) are held in memory as
uint8 images (N, C, H, W) and int64 labels, ready to be moved to a GPU once. An ImageFolder
(downsampled ImageNet, Places365, a user's folders) is streamed: a torchvision ``ImageFolder``
that decodes and resizes each image to uint8 (C, S, S) in DataLoader workers. Augmentation and
normalisation happen later, on whole batches (:mod:`gsoplib.data.augment`).
"""

from __future__ import annotations

import inspect
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..registry import Registry, unknown
from . import second_order, sources

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class DataInfo:
    """What a model and a checkpoint need to know about a dataset.

    ``crop_padding`` and ``flip`` are its standard training augmentation: a random crop of the
    input size from the image zero-padded by that many pixels, and a random horizontal flip.
    ``options`` are the arguments that rebuild the same data (e.g. the generator's parameters).
    """

    name: str
    classes: tuple[str, ...]
    in_chans: int
    input_size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_padding: int
    flip: bool
    options: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)


@dataclass
class Split:
    """One split of a dataset: in memory (``images``, ``labels``) or streamed (``dataset``)."""

    info: DataInfo
    train: bool
    images: torch.Tensor | None = None
    labels: torch.Tensor | None = None
    dataset: torch.utils.data.Dataset | None = None

    @property
    def in_memory(self) -> bool:
        return self.images is not None

    def __len__(self) -> int:
        return len(self.labels) if self.in_memory else len(self.dataset)

    def subset(self, size: int, seed: int = 0) -> Split:
        """A seeded random subset of ``size`` samples (all of them if size >= len)."""
        if size >= len(self):
            return self
        keep = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:size]
        if self.in_memory:
            return Split(self.info, self.train, self.images[keep], self.labels[keep])
        return Split(self.info, self.train, dataset=torch.utils.data.Subset(self.dataset, keep))


def _fashion_mnist(train: bool, root, download: bool) -> Split:
    from torchvision.datasets import FashionMNIST

    base = sources.fashion_mnist_root(root, download)
    ds = FashionMNIST(str(base), train=train, download=False)
    info = DataInfo(
        "fashion_mnist",
        tuple(ds.classes),
        1,
        (28, 28),
        (0.2860,),
        (0.3530,),
        crop_padding=2,
        flip=True,
    )
    return Split(info, train, ds.data.unsqueeze(1).contiguous(), ds.targets.long())


class _ArraysOnly(pickle.Unpickler):
    """Unpickles numpy arrays, lists, dicts and strings, and refuses every other global.

    CIFAR's files are pickles; this keeps a doctored file from running code when it is read.
    """

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        # Python 3 writes bytes into protocol-2 pickles as _codecs.encode(str, "latin1").
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a dataset file")
        return super().find_class(module, name)


def _read_pickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return _ArraysOnly(f, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError) as error:
        raise ValueError(f"{path} is not a readable CIFAR batch file: {error}") from error


def _cifar(train: bool, root, download: bool, fine: bool) -> Split:
    name, folder = ("cifar100", "cifar-100-python") if fine else ("cifar10", "cifar-10-batches-py")
    base = sources.cifar_root(name, folder, root, download) / folder
    if fine:
        files, meta_file, label_key, names_key = (
            ["train"] if train else ["test"],
            "meta",
            "fine_labels",
            "fine_label_names",
        )
    else:
        files, meta_file, label_key, names_key = (
            [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"],
            "batches.meta",
            "labels",
            "label_names",
        )
    data, labels = [], []
    for file in files:
        entry = _read_pickle(base / file)
        data.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        labels.extend(entry[label_key])
    classes = tuple(_read_pickle(base / meta_file)[names_key])
    mean, std = (
        ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))
        if fine
        else ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
    )
    info = DataInfo(name, classes, 3, (32, 32), mean, std, crop_padding=4, flip=True)
    images = torch.from_numpy(np.concatenate(data))
    return Split(info, train, images, torch.tensor(labels, dtype=torch.long))


class _FolderImages(torch.utils.data.Dataset):
    """ImageFolder images as uint8 (C, S, S) tensors: shorter side resized to S, centre-cropped."""

    def __init__(self, folder: Path, image_size: int, in_chans: int) -> None:
        from torchvision import transforms
        from torchvision.datasets import ImageFolder

        self.folder = ImageFolder(str(folder))
        self.mode = "L" if in_chans == 1 else "RGB"
        self.resize = transforms.Compose(
            [
                transforms.Resize(image_size),
                transforms.CenterCrop(image_size),
                transforms.PILToTensor(),
            ]
        )

    def __len__(self) -> int:
        return len(self.folder)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.folder.samples[index]
        with Image.open(path) as image:
            return self.resize(image.convert(self.mode)), label


def _image_folder(
    train: bool,
    root,
    download: bool,
    image_size: int = 64,
    in_chans: int = 3,
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
) -> Split:
    base = sources.user_root(root)
    if base is None:
        raise sources.DatasetNotFoundError(
            "the imagefolder dataset needs a root (--data-root or GSOP_DATA) holding "
            "train/<class>/* and val/<class>/* (or test/<class>/*)"
        )
    names = ["train"] if train else ["val", "test"]
    folder = next((base / n for n in names if (base / n).is_dir()), None)
    if folder is None:
        raise sources.DatasetNotFoundError(
            f"imagefolder: no {' or '.join(n + '/' for n in names)} folder under {base}"
        )
    ds = _FolderImages(folder, image_size, in_chans)
    if len(ds) == 0:
        raise sources.DatasetNotFoundError(f"imagefolder: no images under {folder}")
    if in_chans == 1:
        default_mean, default_std = (0.449,), (0.226,)
    else:
        default_mean, default_std = IMAGENET_MEAN, IMAGENET_STD
    info = DataInfo(
        "imagefolder",
        tuple(ds.folder.classes),
        in_chans,
        (image_size, image_size),
        tuple(mean or default_mean),
        tuple(std or default_std),
        crop_padding=image_size // 8,
        flip=True,
        options={"image_size": image_size, "in_chans": in_chans},
    )
    return Split(info, train, dataset=ds)


def _second_order(
    train: bool,
    root,
    download: bool,
    num_train: int = 10000,
    num_test: int = 2000,
    seed: int = 0,
    image_size: int = 32,
    channels: int = 3,
    num_classes: int = 8,
    rho: float = 0.25,
    smoothing: float = 1.5,
) -> Split:
    options = {
        "image_size": image_size,
        "channels": channels,
        "num_classes": num_classes,
        "rho": rho,
        "smoothing": smoothing,
    }
    # Train and test come from disjoint streams of the same generator: seeds 2s and 2s + 1.
    images, labels = second_order.generate(
        num_train if train else num_test, seed=2 * seed + (0 if train else 1), **options
    )
    info = DataInfo(
        "second_order",
        tuple(second_order.class_names(options["channels"], options["num_classes"])),
        options["channels"],
        (options["image_size"],) * 2,
        (second_order.MEAN,) * options["channels"],
        (second_order.STD,) * options["channels"],
        crop_padding=0,
        flip=True,
        options={**options, "num_train": num_train, "num_test": num_test, "seed": seed},
    )
    return Split(info, train, images, labels)


_READERS = Registry("dataset", {
    "fashion_mnist": _fashion_mnist,
    "cifar10": lambda train, root, download: _cifar(train, root, download, False),
    "cifar100": lambda train, root, download: _cifar(train, root, download, True),
    "imagefolder": _image_folder,
    "second_order": _second_order,
})


def dataset_options(name: str) -> list[str]:
    """The keyword options dataset ``name`` accepts in :func:`load_dataset`."""
    params = list(inspect.signature(_READERS[name]).parameters)
    return [p for p in params if p not in ("train", "root", "download")]


def list_datasets(pattern: str | None = None) -> list[str]:
    """The dataset names :func:`load_dataset` accepts, those matching ``pattern`` if given."""
    return sorted(_READERS.names(pattern))


def load_dataset(
    name: str,
    train: bool = True,
    root: str | os.PathLike | None = None,
    download: bool = True,
    **options,
) -> Split:
    """One split of dataset ``name`` (see :func:`list_datasets`).

    ``root`` (else ``GSOP_DATA``) is searched first, then the cache and known local copies,
    then torchvision downloads (``download=True``); see :mod:`gsoplib.data.sources`.
    ``options`` go to the reader: ``image_size``, ``in_chans``, ``mean``, ``std`` for
    ``imagefolder``; the generator's parameters for ``second_order``.
    """
    key = name.replace("-", "_").lower()
    if key not in _READERS:
        raise unknown("dataset", name, list_datasets())
    extra = sorted(set(options) - set(dataset_options(key)))
    if extra:
        valid = ", ".join(dataset_options(key)) or "none"
        raise ValueError(f"dataset {key!r} takes no option {', '.join(extra)}; valid: {valid}")
    return _READERS[key](train, root, download, **options)
