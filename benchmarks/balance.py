"""GM-SOP's Fig. 2 in small: how many mixture components get images with and without the balance
loss (alpha = 0 vs alpha = 100), over seeds, with the gate's diagnostics.

    python benchmarks/balance.py            # the figure in docs/gmsop.md (about 10 min, 2-core CPU)
    python benchmarks/balance.py --quick    # a smoke run

The paper's Fig. 2 trains GM-GAP-16-4 on downsampled ImageNet and counts the images each of the
16 components receives: with alpha = 0 a few components take most of them, with alpha = 100 all
are used. Here: ``small_gmgap`` with N = 16, K = 4 on a Fashion-MNIST subset, the same recipe,
data and seeds for both alphas, for each gate form asked for (default: the live gate, the
library's default, and the release's). Each run is diagnosed on the test split
(:func:`gsoplib.heads.gate.diagnose_gate`): the share of images that choose each component
(sorted, largest first), the training-time usage of the last epoch, the mutual information
between class and component, the most common set. Writes benchmarks/results/balance-{cpu,cuda}.json
and docs/figures/balance.png.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (  # noqa: E402
    machine_info,
    machine_label,
    markdown_table,
    train_and_diagnose,
    write_json,
)

from gsoplib.train.distributed import resolve_device  # noqa: E402

FIGURE = Path(__file__).resolve().parent.parent / "docs" / "figures" / "balance.png"
N, K = 16, 4


def run(args, gate: str, alpha: float, seed: int, out: Path) -> dict:
    final, diag, wall = train_and_diagnose(
        "small_gmgap", out, head_kwargs={"num_components": N, "k": K, "alpha": alpha,
                                         "gate": gate},
        epochs=args.epochs, train_subset=args.train_subset, test_subset=args.test_subset,
        seed=seed, device=args.device,
    )
    share = sorted(diag.image_share, reverse=True)
    train_usage = sorted(final.get("component_usage", []), reverse=True)
    return {
        "gate": gate,
        "alpha": alpha,
        "seed": seed,
        "test_top1": 100 * final["test_top1"],
        "image_share_sorted": share,
        "train_usage_sorted": train_usage,
        # Components that get at least a quarter of an even share: 1/N of the last epoch's
        # choices in training, K/N of the test images in eval.
        "train_busy": sum(u >= 0.25 / N for u in train_usage),
        "train_cv": float(np.std(train_usage) / np.mean(train_usage)),
        "busy": sum(s >= 0.25 * K / N for s in share),
        "top4_share_of_pairs": sum(share[:4]) / K,
        "mutual_information": diag.mutual_information,
        "top_set_share": diag.top_set_share,
        "distinct_sets": diag.distinct_sets,
        "weight_deviation": diag.weight_deviation,
        "verdict": diag.verdict,
        "wall_s": wall,
    }


def summarise(rows: list[dict]) -> list[dict]:
    out = []
    for gate in dict.fromkeys(r["gate"] for r in rows):
        for alpha in dict.fromkeys(r["alpha"] for r in rows):
            runs = [r for r in rows if r["gate"] == gate and r["alpha"] == alpha]
            if not runs:
                continue

            def mean(key: str, runs: list[dict] = runs) -> float:
                return statistics.fmean(r[key] for r in runs)

            out.append({
                "gate": gate,
                "alpha": alpha,
                "seeds": len(runs),
                "test_top1": mean("test_top1"),
                "train_busy": mean("train_busy"),
                "train_cv": mean("train_cv"),
                "busy": mean("busy"),
                "top4_share_of_pairs": 100 * mean("top4_share_of_pairs"),
                "least_share": 100 * statistics.fmean(r["image_share_sorted"][-1] for r in runs),
                "mutual_information": mean("mutual_information"),
                "top_set_share": 100 * mean("top_set_share"),
            })
    return out


def figure(rows: list[dict], path: Path) -> Path:
    """Per gate form (columns): the last epoch's share of training choices per component (top row,
    the load: the balance loss evens the importance, the summed weights, and the counts with it)
    and the share of test images choosing it in eval (bottom row), components sorted by use,
    alpha 0 vs 100, mean and spread over seeds."""
    gates = list(dict.fromkeys(r["gate"] for r in rows))
    fig = Figure(figsize=(4.4 * len(gates), 5.6))
    fig.subplots_adjust(left=0.09, right=0.98, bottom=0.09, top=0.93, wspace=0.22, hspace=0.45)
    axes = fig.subplots(2, len(gates), squeeze=False)
    panels = (("train_usage_sorted", "% of training choices", 100 / N, "training, last epoch"),
              ("image_share_sorted", "% of test images", 100 * K / N, "evaluation, test set"))
    for col, gate in enumerate(gates):
        for (key, ylabel, even, when), ax in zip(panels, axes[:, col]):
            for offset, (alpha, color) in zip((-0.2, 0.2), ((0.0, "tab:red"), (100.0, "tab:blue"))):
                runs = [r[key] for r in rows if r["gate"] == gate and r["alpha"] == alpha]
                if not runs:
                    continue
                shares = 100 * np.array(runs)
                ax.bar(np.arange(N) + offset, shares.mean(0), width=0.4, color=color,
                       yerr=shares.std(0) if len(runs) > 1 else None, capsize=1.5,
                       label=f"alpha = {alpha:g}")
            ax.axhline(even, color="0.4", lw=0.8, ls="--", label="even share")
            ax.set_ylabel(ylabel)
            ax.set_title(f"gate '{gate}', GM-GAP-{N}-{K}: {when}", fontsize=9)
            ax.legend(fontsize=7)
        axes[1, col].set_xlabel("component, by rank of use")
        for ax in axes[:, col]:
            ax.set_xticks(range(0, N, 3))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gates", nargs="+", default=["live", "release"])
    parser.add_argument("--alphas", nargs="+", type=float, default=[0.0, 100.0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--train-subset", type=int, default=10000)
    parser.add_argument("--test-subset", type=int, default=5000)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--quick", action="store_true", help="tiny data, one epoch, one seed")
    parser.add_argument("--out", type=Path, default=None, help="results folder")
    parser.add_argument("--figure", type=Path, default=FIGURE)
    parser.add_argument("--from-json", type=Path, default=None,
                        help="redraw the figure and tables from a results file; train nothing")
    args = parser.parse_args(argv)
    if args.from_json:
        result = json.loads(args.from_json.read_text())
        for row in result["rows"]:
            usage = row["train_usage_sorted"]
            row["train_busy"] = sum(u >= 0.25 / N for u in usage)
            row["train_cv"] = float(np.std(usage) / np.mean(usage))
        result["summary"] = summarise(result["rows"])
        args.from_json.write_text(json.dumps(result, indent=2) + "\n")
        figure(result["rows"], args.figure)
        print(_table(result["summary"]))
        return 0
    if args.quick:
        args.epochs, args.seeds, args.train_subset, args.test_subset = 1, 1, 512, 256
    device = resolve_device(args.device)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for gate in args.gates:
            for alpha in args.alphas:
                for seed in range(args.seeds):
                    rows.append(run(args, gate, alpha, seed, Path(tmp) / f"{gate}-{alpha}-{seed}"))
                    r = rows[-1]
                    print(f"gate {gate} alpha {alpha:g} seed {seed}: top-1 {r['test_top1']:.2f}%, "
                          f"busy {r['busy']}/{N}, MI {r['mutual_information']:.3f} bits, "
                          f"{r['wall_s']:.0f} s", flush=True)
    info = machine_info(device)
    info.update(
        model=f"small_gmgap (GM-GAP-{N}-{K})", dataset="fashion_mnist", recipe="fast",
        epochs=args.epochs, seeds=args.seeds, train_subset=args.train_subset,
        test_subset=args.test_subset,
        command=" ".join(["python", "benchmarks/balance.py", *(argv or sys.argv[1:])]),
    )
    summary = summarise(rows)
    write_json("balance", info, rows, **({"out_dir": args.out} if args.out else {}),
               summary=summary)
    figure(rows, args.figure)
    print(f"\n{machine_label(info)}; {args.epochs} epochs on {args.train_subset} images, "
          f"{args.seeds} seeds")
    print(_table(summary))
    return 0


def _table(summary: list[dict]) -> str:
    return markdown_table(summary, [
        ("gate", "gate", ""),
        ("alpha", "alpha", "g"),
        ("test_top1", "test top-1 %", ".2f"),
        ("train_busy", f"training: components with >= 1/4 of an even share (of {N})", ".1f"),
        ("train_cv", "training: CV of usage", ".2f"),
        ("busy", f"eval: components with >= 1/4 of an even share (of {N})", ".1f"),
        ("top4_share_of_pairs", "4 busiest components' share of choices %", ".1f"),
        ("least_share", "least-used component, % of images", ".1f"),
        ("mutual_information", "MI(class; component), bits", ".3f"),
        ("top_set_share", "most common set, % of images", ".1f"),
    ])


if __name__ == "__main__":
    raise SystemExit(main())
