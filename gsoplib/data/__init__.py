"""Floor 3: datasets, batched augmentation, and loaders that keep small sets on the device.

Examples:
    >>> from gsoplib.data import load_dataset, make_loader
    >>> train = load_dataset("fashion_mnist", train=True)          # offline first, see sources
    >>> loader = make_loader(train, 256, train=True, device="cuda")  # resident on the GPU
    >>> for x, y in loader: ...                                       # normalised, augmented
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
