"""Floor 3: datasets, batched augmentation, and loaders that keep small sets on the device.

Examples:
    >>> from gsoplib.data import load_dataset, make_loader
    >>> train = load_dataset("second_order", train=True, num_train=64)   # generated, offline
    >>> loader = make_loader(train, 32, train=True, device="cpu")  # device="cuda": on the GPU
    >>> x, y = next(iter(loader))                                  # normalised, augmented
    >>> x.shape, y.shape
    (torch.Size([32, 3, 32, 32]), torch.Size([32]))
"""

from .augment import crop_flip, normalize
from .datasets import DataInfo, Split, dataset_options, list_datasets, load_dataset
from .loaders import ResidentLoader, StreamLoader, make_loader
from .second_order import class_names as second_order_class_names
from .sources import DatasetNotFoundError, cache_dir

__all__ = [
    "DataInfo",
    "DatasetNotFoundError",
    "ResidentLoader",
    "Split",
    "StreamLoader",
    "cache_dir",
    "crop_flip",
    "dataset_options",
    "list_datasets",
    "load_dataset",
    "make_loader",
    "normalize",
    "second_order_class_names",
]
