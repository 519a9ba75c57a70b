"""Linear probes on frozen features: GAP, covariance and Newton-Schulz root of one backbone's map.

    python benchmarks/probes.py            # docs/benchmarks.md's table (minutes, 2 cores)
    python benchmarks/probes.py --quick    # a smoke run

Hypothesis, stated before running: on the generated second-order set, whose classes differ only
in channel correlations, the covariance (and its root) of a backbone's last map makes the task
linearly separable from a few labels where the mean (GAP) of the same map does not, most for a
backbone that was never trained (it has not learned to turn correlations into means) and less for
trained ones; on Fashion-MNIST the three poolings are close.

For each dataset: backbones = none (the normalised image's own channels, the extreme of a small
backbone), ``small_vanilla`` as initialised (seed 0) and the bundled checkpoints trained on that
dataset; poolings = :data:`gsoplib.linear_probe.POOLINGS`; a
multinomial logistic regression (L-BFGS, weight decay 1e-2) on ``--per-class`` labels of each
class drawn from the first 10,000 training images, ``--seeds`` draws each, tested on the test
split. Writes benchmarks/results/probes-cpu.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import machine_info, machine_label, markdown_table, write_json  # noqa: E402

from gsoplib.data import load_dataset, normalize  # noqa: E402
from gsoplib.linear_probe import (  # noqa: E402
    POOLINGS,
    few_label_subset,
    fit_linear_probe,
    last_feature_map,
    pool_features,
)
from gsoplib.models import create_model  # noqa: E402
from gsoplib.pretrained import list_pretrained, load_pretrained  # noqa: E402

BUNDLED = {"second_order": ("second_order_small_vanilla", "second_order_small_gsop1"),
           "fashion_mnist": ("fmnist_small_vanilla", "fmnist_small_gsop1")}
POOL_SIZE = 10_000


def backbones(dataset: str, info) -> list[tuple[str, torch.nn.Module | None, tuple, tuple]]:
    """(label, model, mean, std): no backbone (the image's own channels), small_vanilla as
    initialised, then the bundled ones."""
    torch.manual_seed(0)
    out = [("none: the image's channels", None, info.mean, info.std),
           ("small_vanilla, untrained", create_model(
        "small_vanilla", num_classes=len(info.classes), in_chans=info.in_chans).eval(),
        info.mean, info.std)]
    for name in BUNDLED[dataset]:
        if name in list_pretrained():
            ckpt = load_pretrained(name)
            out.append((f"{name} (trained)", ckpt.model.eval(), ckpt.mean, ckpt.std))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["second_order", "fashion_mnist"])
    parser.add_argument("--per-class", nargs="+", type=int, default=[5, 20, 100])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--test-subset", type=int, default=None)
    parser.add_argument("--quick", action="store_true", help="one dataset, small sets, one seed")
    parser.add_argument("--out", type=Path, default=None, help="results folder")
    args = parser.parse_args(argv)
    pool_size = POOL_SIZE
    if args.quick:
        args.datasets, args.per_class, args.seeds = ["second_order"], [5], 1
        args.test_subset, pool_size = 200, 400
    rows = []
    for dataset in args.datasets:
        train, test = load_dataset(dataset, train=True), load_dataset(dataset, train=False)
        train_images, train_y = train.images[:pool_size], train.labels[:pool_size]
        test_images, test_y = test.images[:args.test_subset], test.labels[:args.test_subset]
        for label, model, mean, std in backbones(dataset, train.info):
            begin = time.perf_counter()
            maps = {split: (normalize(images, mean, std) if model is None else
                            last_feature_map(model, normalize(images, mean, std)))
                    for split, images in (("train", train_images), ("test", test_images))}
            for pooling in POOLINGS:
                x_train, x_test = (pool_features(maps[s], pooling) for s in ("train", "test"))
                for per_class in args.per_class:
                    accs = [100 * fit_linear_probe(x_train[keep], train_y[keep], x_test, test_y)
                            for keep in (few_label_subset(train_y, per_class, seed)
                                         for seed in range(args.seeds))]
                    rows.append({
                        "dataset": dataset, "classes": len(train.info.classes),
                        "backbone": label, "pooling": pooling,
                        "features": x_train.shape[1], "per_class": per_class,
                        "seeds": args.seeds, "test_top1": statistics.fmean(accs),
                        "test_top1_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
                        "runs": accs})
                    print(f"{dataset} / {label} / {pooling}, {per_class} a class: "
                          f"{rows[-1]['test_top1']:.2f} +- {rows[-1]['test_top1_std']:.2f}%",
                          flush=True)
            print(f"  ({time.perf_counter() - begin:.0f} s)", flush=True)
    info = machine_info(torch.device("cpu"))
    info.update(pool_size=pool_size, test_subset=args.test_subset, weight_decay=1e-2,
                command=" ".join(["python", "benchmarks/probes.py", *(argv or sys.argv[1:])]))
    path = write_json("probes", info, rows, **({"out_dir": args.out} if args.out else {}))
    print(f"\n{machine_label(info)}")
    print(markdown_table(rows, [
        ("dataset", "dataset", ""), ("backbone", "backbone", ""), ("pooling", "pooling", ""),
        ("features", "features", "d"), ("per_class", "labels a class", "d"),
        ("test_top1", "test top-1 %", ".2f"), ("test_top1_std", "+- (std)", ".2f")]))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
