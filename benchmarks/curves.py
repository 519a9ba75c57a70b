"""Training curves of the main variants, step by step, for notebook 05.

    python benchmarks/curves.py            # about 5 minutes on a 2-core CPU
    python benchmarks/curves.py --quick    # a smoke run

Trains ``small_vanilla``, ``small_gsop1`` (GSoP-Net1), ``small_gsop2`` (GSoP-Net2) and
``small_gmsop`` (GM-SOP-8-4) on the generated second-order set with the same recipe (``fast``,
3 epochs, seed 0), logging every ``--log-every`` steps (step, fractional epoch, learning rate, the
interval's training loss and top-1) and the per-epoch test metrics. Writes
benchmarks/results/curves-{cpu,cuda}.json: one entry per model with its ``steps`` and ``epochs``
rows, so a notebook draws real curves without training.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import machine_info, machine_label, write_json  # noqa: E402

from gsoplib.train import TrainConfig, Trainer  # noqa: E402
from gsoplib.train.distributed import resolve_device  # noqa: E402

MODELS = ("small_vanilla", "small_gsop1", "small_gsop2", "small_gmsop")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--log-every", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--quick", action="store_true", help="tiny data, one epoch")
    parser.add_argument("--out", type=Path, default=None, help="results folder")
    args = parser.parse_args(argv)
    data_options = {"num_train": 512, "num_test": 256} if args.quick else {}
    epochs = 1 if args.quick else args.epochs
    device = resolve_device(args.device)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            config = TrainConfig(model=model, dataset="second_order", out_dir=f"{tmp}/{model}",
                                 recipe="fast", epochs=epochs, seed=args.seed,
                                 data_options=data_options, log_every=args.log_every,
                                 device=args.device, progress=False)
            trainer = Trainer(config)
            trainer.fit()
            rows.append({"model": model, "plan": trainer.plan,
                         "warmup_steps": trainer.warmup_steps,
                         "steps_per_epoch": trainer.steps_per_epoch,
                         "steps": trainer.steps,
                         "epochs": [{k: v for k, v in r.items()
                                     if k not in ("gate", "component_usage")}
                                    for r in trainer.history]})
            print(f"{model}: test top-1 {trainer.history[-1]['test_top1']:.4f}, "
                  f"{len(trainer.steps)} step rows", flush=True)
    info = machine_info(device)
    info.update(dataset="second_order", recipe="fast", epochs=epochs, seed=args.seed,
                log_every=args.log_every, data_options=data_options,
                command=" ".join(["python", "benchmarks/curves.py", *(argv or sys.argv[1:])]))
    path = write_json("curves", info, rows, **({"out_dir": args.out} if args.out else {}))
    print(f"{machine_label(info)}; wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
