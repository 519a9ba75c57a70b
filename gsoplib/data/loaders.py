"""Loaders that yield normalised (x, y) batches on the training device.

:class:`ResidentLoader` keeps a whole in-memory split on the device (a GPU when training on one)
and builds each batch with a gather, :func:`~gsoplib.data.augment.crop_flip` and
:func:`~gsoplib.data.augment.normalize`: no per-sample Python, no host-to-device copy per batch.
:class:`StreamLoader` wraps a ``torch.utils.data.DataLoader`` (worker processes decode and collate
uint8 images) and applies the same batched augmentation after the copy; it serves ImageFolder
sets and any split too large for device memory.

Both shard an epoch over processes the way ``DistributedSampler`` does (they use it), both draw
their order and augmentation from (seed, epoch) alone, so an epoch is reproducible after a resume.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, TensorDataset

from .augment import crop_flip, normalize
from .datasets import Split


def _generator(device: torch.device, seed: int, epoch: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed * 1_000_003 + epoch)


class _Loader:
    """Shared bookkeeping: epoch, sharding, batch count."""

    def __init__(
        self,
        split: Split,
        batch_size: int,
        *,
        train: bool,
        device: torch.device | str,
        seed: int,
        rank: int,
        world_size: int,
        augment: bool,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        self.info = split.info
        self.batch_size = batch_size
        self.train = train
        self.device = torch.device(device)
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.augment = augment and train
        self.epoch = 0
        self.num_samples = len(split)
        # Training drops the last partial batch (a batch of one breaks BatchNorm); evaluation
        # keeps every sample exactly once across ranks, without DistributedSampler's padding.
        self.drop_last = train and self.shard_size >= batch_size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @property
    def shard_size(self) -> int:
        if self.train:
            return -(-self.num_samples // self.world_size)
        return len(range(self.rank, self.num_samples, self.world_size))

    def __len__(self) -> int:
        if self.drop_last:
            return self.shard_size // self.batch_size
        return -(-self.shard_size // self.batch_size)

    def _order(self) -> torch.Tensor:
        """This rank's sample indices for the current epoch, on the loader's device."""
        if not self.train:
            return torch.arange(self.rank, self.num_samples, self.world_size, device=self.device)
        if self.world_size > 1:
            sampler = DistributedSampler(
                range(self.num_samples), self.world_size, self.rank, shuffle=True, seed=self.seed
            )
            sampler.set_epoch(self.epoch)
            return torch.tensor(list(sampler), device=self.device)
        g = _generator(self.device, self.seed, self.epoch)
        return torch.randperm(self.num_samples, device=self.device, generator=g)

    def _finish(self, images: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
        if self.augment:
            images = crop_flip(images, self.info.crop_padding, self.info.flip, g)
        return normalize(images, self.info.mean, self.info.std)


class ResidentLoader(_Loader):
    """Batches from an in-memory split held entirely on ``device``.

    Yields (x (B, C, H, W) float32 normalised, y (B,) int64), both on ``device``.
    """

    def __init__(
        self,
        split: Split,
        batch_size: int,
        *,
        train: bool,
        device: torch.device | str = "cpu",
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        augment: bool = True,
    ) -> None:
        if not split.in_memory:
            raise ValueError(f"{split.info.name} is streamed from files; use StreamLoader")
        super().__init__(
            split,
            batch_size,
            train=train,
            device=device,
            seed=seed,
            rank=rank,
            world_size=world_size,
            augment=augment,
        )
        self.images = split.images.to(self.device)
        self.labels = split.labels.to(self.device)

    def __iter__(self):
        order = self._order()
        g = _generator(self.device, self.seed + 1, self.epoch * self.world_size + self.rank)
        for i in range(len(self)):
            index = order[i * self.batch_size : (i + 1) * self.batch_size]
            yield self._finish(self.images[index], g), self.labels[index]


class StreamLoader(_Loader):
    """Batches from a DataLoader (``workers`` processes), augmented on ``device`` after the copy.

    Works for streamed (ImageFolder) and in-memory splits alike. Yields what
    :class:`ResidentLoader` yields.
    """

    def __init__(
        self,
        split: Split,
        batch_size: int,
        *,
        train: bool,
        device: torch.device | str = "cpu",
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        augment: bool = True,
        workers: int = 2,
    ) -> None:
        super().__init__(
            split,
            batch_size,
            train=train,
            device=device,
            seed=seed,
            rank=rank,
            world_size=world_size,
            augment=augment,
        )
        self.dataset = (
            TensorDataset(split.images, split.labels) if split.in_memory else split.dataset
        )
        self.workers = workers

    def __iter__(self):
        if self.train and self.world_size == 1:
            g = _generator(torch.device("cpu"), self.seed, self.epoch)
            sampler = RandomSampler(self.dataset, generator=g)
        else:
            sampler = self._order().tolist()
        loader = DataLoader(
            self.dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.workers,
            pin_memory=self.device.type == "cuda",
            drop_last=self.drop_last,
        )
        g = _generator(self.device, self.seed + 1, self.epoch * self.world_size + self.rank)
        for images, labels in loader:
            images = images.to(self.device, non_blocking=True)
            yield self._finish(images, g), labels.to(self.device, non_blocking=True)


def make_loader(
    split: Split,
    batch_size: int,
    *,
    train: bool,
    device: torch.device | str = "cpu",
    seed: int = 0,
    rank: int = 0,
    world_size: int = 1,
    augment: bool = True,
    resident: bool | None = None,
    workers: int = 2,
) -> ResidentLoader | StreamLoader:
    """A :class:`ResidentLoader` for in-memory splits (unless ``resident=False``), else a
    :class:`StreamLoader`."""
    common = dict(
        train=train, device=device, seed=seed, rank=rank, world_size=world_size, augment=augment
    )
    if resident is None:
        resident = split.in_memory
    if resident:
        return ResidentLoader(split, batch_size, **common)
    return StreamLoader(split, batch_size, workers=workers, **common)
