"""Compare model variants under one recipe: test accuracy over seeds, and throughput.

    python benchmarks/compare.py                                   # the README's table
    python benchmarks/compare.py --epochs 2 --train-subset 10000   # a reduced budget
    python benchmarks/compare.py --quick                           # a smoke run

For every dataset and model, trains ``--seeds`` runs with ``gsop train``'s trainer (same recipe,
epochs, batch size and data for all), then reports the final test top-1 accuracy as mean and
sample standard deviation over seeds, the training throughput (images/s, median over the runs'
last epochs) and the parameter count. Writes benchmarks/results/compare-{cpu,cuda}.json and prints
a markdown table. Every figure comes from one run of this script; the JSON records the budget
(epochs, subset sizes, recipe) it ran under.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import machine_info, machine_label, markdown_table, write_json  # noqa: E402

from gsoplib.models import list_models  # noqa: E402
from gsoplib.train import TrainConfig, Trainer  # noqa: E402
from gsoplib.train.distributed import resolve_device  # noqa: E402

DEFAULT_MODELS = [
    "small_vanilla",
    "small_se",
    "small_gsop1",
    "small_gsop_pos",
    "small_gsop2",
    "small_gmsop",
]
DEFAULT_DATASETS = ["fashion_mnist", "second_order"]


def run_one(args, dataset: str, model: str, seed: int, out: Path) -> dict:
    config = TrainConfig(
        model=model,
        dataset=dataset,
        out_dir=str(out),
        recipe=args.recipe,
        epochs=args.epochs,
        batch_size=args.batch_size,
        train_subset=args.train_subset,
        test_subset=args.test_subset,
        data_options=dict(args.data_options.get(dataset, {})),
        seed=seed,
        device=args.device,
        progress=False,
    )
    begin = time.perf_counter()
    trainer = Trainer(config)
    final = trainer.fit()
    final["wall_s"] = time.perf_counter() - begin
    final["params"] = sum(p.numel() for p in trainer.model.parameters())
    return final


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=DEFAULT_DATASETS)
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    parser.add_argument("--seeds", type=int, default=3, help="runs per model (seeds 0..n-1)")
    parser.add_argument("--recipe", default="fast")
    parser.add_argument("--epochs", type=int, default=None, help="default: the recipe's")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the recipe's")
    parser.add_argument("--train-subset", type=int, default=None, help="seeded subset size")
    parser.add_argument("--test-subset", type=int, default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--quick", action="store_true", help="tiny data, one epoch, one seed")
    parser.add_argument("--out", type=Path, default=None, help="results folder")
    parser.add_argument("--name", default="compare",
                        help="results file stem: NAME-{cpu,cuda}.json (default compare)")
    args = parser.parse_args(argv)
    args.data_options = {}
    if args.quick:
        args.epochs, args.seeds = 1, 1
        args.train_subset, args.test_subset = 256, 128
        args.data_options = {"second_order": {"num_train": 256, "num_test": 128}}
    unknown = [m for m in args.models if m not in list_models()]
    if unknown:
        parser.error(f"unknown model {unknown[0]!r}; valid models: {', '.join(list_models())}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    device = resolve_device(args.device)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for dataset in args.datasets:
            for model in args.models:
                runs = []
                for seed in range(args.seeds):
                    out = Path(tmp) / f"{dataset}-{model}-{seed}"
                    runs.append(run_one(args, dataset, model, seed, out))
                    print(
                        f"{dataset} {model} seed {seed}: top-1 {runs[-1]['test_top1']:.4f}, "
                        f"{runs[-1]['images_per_s']:.0f} img/s, {runs[-1]['wall_s']:.0f} s",
                        flush=True,
                    )
                accs = [r["test_top1"] for r in runs]
                rows.append(
                    {
                        "dataset": dataset,
                        "model": model,
                        "top1_mean": 100 * statistics.fmean(accs),
                        "top1_std": 100 * statistics.stdev(accs) if len(accs) > 1 else 0.0,
                        "top1_runs": [100 * a for a in accs],
                        "train_images_per_s": statistics.median(r["images_per_s"] for r in runs),
                        "params": runs[0]["params"],
                        "wall_s_per_run": statistics.fmean(r["wall_s"] for r in runs),
                    }
                )
    info = machine_info(device)
    info.update(
        recipe=args.recipe,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seeds=args.seeds,
        train_subset=args.train_subset,
        test_subset=args.test_subset,
        command=" ".join(["python", "benchmarks/compare.py", *(argv or sys.argv[1:])]),
    )
    path = write_json(args.name, info, rows, **({"out_dir": args.out} if args.out else {}))
    print(
        f"\n{machine_label(info)}; recipe {args.recipe}, epochs {args.epochs or 'recipe'}, "
        f"{args.seeds} seeds, train subset {args.train_subset or 'all'}"
    )
    print(
        markdown_table(
            rows,
            [
                ("dataset", "dataset", ""),
                ("model", "model", ""),
                ("params", "params", ","),
                ("top1_mean", "test top-1 %", ".2f"),
                ("top1_std", "+- (std)", ".2f"),
                ("train_images_per_s", "train img/s", ".0f"),
            ],
        )
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
