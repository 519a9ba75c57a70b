"""Loader throughput: the device-resident loader against DataLoaders over the same data.

    python benchmarks/loader.py                 # CPU, and CUDA when present
    python benchmarks/loader.py --quick         # a small smoke run

Three ways to feed the same training epoch (random crop with padding, flip, normalisation) to a
device, measured in images per second delivered there (no model runs):
- "DataLoader, per-sample transforms": the common recipe, a Dataset applying torchvision v2
  transforms to each sample, DataLoader workers, then a copy to the device;
- "StreamLoader": DataLoader workers collate uint8 samples, augmentation runs on the batch
  on the device (gsoplib.data.StreamLoader);
- "ResidentLoader": the whole set on the device, a gather per batch, no per-sample Python
  (gsoplib.data.ResidentLoader).
The ratio to the first row is the figure to read: these machines are noisy, a ratio is less so.
Data: Fashion-MNIST when it can be found offline, else the generated second-order set.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import devices, machine_info, machine_label, markdown_table, write_json  # noqa: E402

from gsoplib.data import (  # noqa: E402
    DatasetNotFoundError,
    ResidentLoader,
    StreamLoader,
    load_dataset,
)


class PerSampleTransforms(Dataset):
    """uint8 images with torchvision v2 transforms applied one sample at a time."""

    def __init__(self, split) -> None:
        from torchvision.transforms import v2

        info = split.info
        self.images, self.labels = split.images, split.labels
        self.transform = v2.Compose(
            [
                v2.RandomCrop(info.input_size, padding=info.crop_padding),
                v2.RandomHorizontalFlip(),
                v2.ToDtype(torch.float32, scale=True),
                v2.Normalize(info.mean, info.std),
            ]
        )

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.transform(self.images[i]), self.labels[i]


def per_sample_batches(split, batch_size: int, device: torch.device, workers: int):
    loader = DataLoader(
        PerSampleTransforms(split),
        batch_size=batch_size,
        shuffle=True,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        drop_last=True,
    )
    for x, y in loader:
        yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)


def images_per_second(make_batches, device: torch.device, batches: int) -> float:
    """Deliver ``batches`` batches (after one warm-up batch); images per second."""
    it = iter(make_batches())
    next(it)
    count = 0
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    begin = time.perf_counter()
    for _ in range(batches):
        try:
            x, _ = next(it)
        except StopIteration:
            it = iter(make_batches())
            x, _ = next(it)
        count += len(x)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return count / (time.perf_counter() - begin)


def load(quick: bool):
    try:
        split = load_dataset("fashion_mnist", True, download=False)
        name = "fashion_mnist"
    except DatasetNotFoundError:
        split = load_dataset("second_order", True, num_train=10000)
        name = "second_order"
    return (split.subset(4096) if quick else split), name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="auto", help="auto (CPU and CUDA), cpu or cuda")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--batches", type=int, default=100, help="timed batches per loader")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    parser.add_argument("--quick", action="store_true", help="a subset and few batches")
    parser.add_argument("--out", type=Path, default=None, help="results folder")
    args = parser.parse_args(argv)
    split, name = load(args.quick)
    batches = 5 if args.quick else args.batches
    for device in devices(args.device):
        info = machine_info(device)
        info.update(dataset=name, batch_size=args.batch_size, workers=args.workers, batches=batches)
        loaders = {
            "DataLoader, per-sample transforms": lambda d=device: per_sample_batches(
                split, args.batch_size, d, args.workers
            ),
            "StreamLoader": lambda d=device: StreamLoader(
                split, args.batch_size, train=True, device=d, workers=args.workers
            ),
            "ResidentLoader": lambda d=device: ResidentLoader(
                split, args.batch_size, train=True, device=d
            ),
        }
        rows = []
        for label, make in loaders.items():
            if label == "ResidentLoader":
                resident = make()  # the one copy to the device is set-up, not per epoch
                rate = images_per_second(lambda r=resident: r, device, batches)
            else:
                rate = images_per_second(make, device, batches)
            rows.append({"loader": label, "images_per_s": rate})
        base = rows[0]["images_per_s"]
        for row in rows:
            row["speedup"] = row["images_per_s"] / base
        out = {"out_dir": args.out} if args.out else {}
        path = write_json("loader", info, rows, **out)
        print(f"\n{machine_label(info)}; {name}, batch {args.batch_size}, workers {args.workers}")
        print(
            markdown_table(
                rows,
                [
                    ("loader", "loader", ""),
                    ("images_per_s", "images/s", ".0f"),
                    ("speedup", "x DataLoader", ".1f"),
                ],
            )
        )
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
