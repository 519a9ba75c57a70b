"""Where a dataset's files come from, offline first.

Search order for a dataset that lives in files:
1. the user's root (``root=`` / ``--data-root``), else the ``GSOP_DATA`` environment variable;
2. the cache (``GSOP_CACHE``, default ``~/.cache/gsoplib/data``), where earlier runs unpacked it;
3. known local copies, such as Debian's ``dataset-fashion-mnist`` under
   /usr/share/datasets/fashion-mnist (gzipped idx files, unpacked into the cache on first use);
4. torchvision's download into the root (or the cache), where a network is reachable.
A dataset found in none of these is one :class:`DatasetNotFoundError` naming every place tried.
"""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

KNOWN_COPIES: dict[str, list[Path]] = {
    "fashion_mnist": [Path("/usr/share/datasets/fashion-mnist")],
}
"""Directories that system packages install datasets into, per dataset name."""

FASHION_MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


class DatasetNotFoundError(FileNotFoundError):
    """A dataset is in none of the places searched; the message names them all."""


def user_root(root: str | os.PathLike | None) -> Path | None:
    """The root the user chose: the argument, else ``GSOP_DATA``, else None."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("GSOP_DATA")
    return Path(env).expanduser() if env else None


def cache_dir() -> Path:
    """Where unpacked and downloaded datasets are kept: ``GSOP_CACHE`` or ~/.cache/gsoplib/data."""
    env = os.environ.get("GSOP_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "gsoplib" / "data"


def _has_files(folder: Path, names: tuple[str, ...]) -> bool:
    return all((folder / name).is_file() for name in names)


def _gunzip_into(source: Path, target: Path, names: tuple[str, ...]) -> None:
    """Unpack ``source/NAME.gz`` to ``target/NAME`` for each name, each file written atomically."""
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        partial = target / f".{name}.partial"
        with gzip.open(source / f"{name}.gz", "rb") as src, open(partial, "wb") as dst:
            shutil.copyfileobj(src, dst)
        os.replace(partial, target / name)


def fashion_mnist_root(root: str | os.PathLike | None, download: bool) -> Path:
    """A directory whose ``FashionMNIST/raw/`` holds the four unpacked idx files.

    torchvision's ``FashionMNIST(root, download=False)`` reads exactly that layout.
    """
    tried: list[str] = []
    chosen = user_root(root)
    candidates = [chosen] if chosen is not None else []
    candidates.append(cache_dir())
    for base in candidates:
        raw = base / "FashionMNIST" / "raw"
        if _has_files(raw, FASHION_MNIST_FILES):
            return base
        gz = tuple(f"{n}.gz" for n in FASHION_MNIST_FILES)
        for packed in (raw, base):
            if _has_files(packed, gz):
                _gunzip_into(packed, raw, FASHION_MNIST_FILES)
                return base
        tried.append(str(raw))
    for copy in KNOWN_COPIES.get("fashion_mnist", []):
        if _has_files(copy, tuple(f"{n}.gz" for n in FASHION_MNIST_FILES)):
            _gunzip_into(copy, cache_dir() / "FashionMNIST" / "raw", FASHION_MNIST_FILES)
            return cache_dir()
        tried.append(str(copy))
    target = chosen if chosen is not None else cache_dir()
    return _download("fashion_mnist", "FashionMNIST", target, download, tried)


def cifar_root(name: str, folder: str, root: str | os.PathLike | None, download: bool) -> Path:
    """A directory that holds ``folder`` (cifar-10-batches-py or cifar-100-python)."""
    tried: list[str] = []
    chosen = user_root(root)
    for base in ([chosen] if chosen is not None else []) + [cache_dir()]:
        if (base / folder).is_dir():
            return base
        tried.append(str(base / folder))
    for copy in KNOWN_COPIES.get(name, []):
        if (copy / folder).is_dir():
            return copy
        tried.append(str(copy / folder))
    target = chosen if chosen is not None else cache_dir()
    torchvision_name = "CIFAR10" if name == "cifar10" else "CIFAR100"
    return _download(name, torchvision_name, target, download, tried)


def _download(name: str, torchvision_name: str, target: Path, download: bool, tried: list) -> Path:
    where = ", ".join(tried)
    if not download:
        raise DatasetNotFoundError(
            f"dataset {name!r} was not found (looked in {where}) and downloading is off; "
            f"pass a root that holds it or set GSOP_DATA."
        )
    import torchvision.datasets

    try:
        getattr(torchvision.datasets, torchvision_name)(str(target), download=True)
    except Exception as error:  # offline, refused or corrupt: the same to the user
        hint = " or install Debian's dataset-fashion-mnist" if name == "fashion_mnist" else ""
        raise DatasetNotFoundError(
            f"dataset {name!r} was not found (looked in {where}) and the download into {target} "
            f"failed ({type(error).__name__}: {error}); pass a root that holds it{hint}."
        ) from error
    return target
