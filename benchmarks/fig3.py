"""GM-SOP's Fig. 3 in small: test accuracy and training speed of a gated mixture over N and K.

    python benchmarks/fig3.py            # docs/gmsop.md's table and figure (40 min, 2 cores)
    python benchmarks/fig3.py --quick    # a smoke run
    python benchmarks/fig3.py --redraw   # the summary and figure again from the committed rows

Resumable: the JSON is rewritten after every run, and a run already in it (same dataset and
budget) is not trained again; ``--fresh`` starts over.

The paper's Fig. 3 trains GM-GAP-N-K on downsampled ImageNet-1K (alpha = 100) for N in
{4, 8, 16, 32, 64, 128} and K up to N, and finds: at fixed K a larger N lowers the error; at
fixed N enlarging K helps up to a point (N = 16: K = 8 best, 12 and 16 slightly worse).
Here: ``small_gmsop`` (GM-SOP, the default mixing gate, alpha = 1 and dropout 0.2 as the small
zoo had them when the grid was measured: pinned, so a rerun trains the same) for every
N in {4, 8, 16} and K in {1, 2, 4, 8} with K < N, ``--seeds`` seeds each, on the generated
second-order set (3 epochs, recipe ``fast``) by default. Each run reports test top-1, the
training images/s of its last epoch, and the eval-time gate's effective number of components
per image. Writes benchmarks/results/fig3-{cpu,cuda}.json and docs/figures/fig3.png.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (  # noqa: E402
    RESULTS_DIR,
    machine_info,
    machine_label,
    markdown_table,
    train_and_diagnose,
    write_json,
)

from gsoplib.train.distributed import resolve_device  # noqa: E402
from gsoplib.viz.gate_benchmarks import fig3_figure  # noqa: E402

FIGURE = Path(__file__).resolve().parent.parent / "docs" / "figures" / "fig3.png"
GRID = [(n, k) for n in (4, 8, 16) for k in (1, 2, 4, 8) if k < n]
#: small_gmsop's head settings when the committed grid was trained (the zoo has no dropout now).
MEASURED_WITH = {"alpha": 1.0, "dropout": 0.2}


def run(args, n: int, k: int, seed: int, out: Path) -> dict:
    final, diag, wall = train_and_diagnose(
        "small_gmsop", out, head_kwargs={**MEASURED_WITH, "num_components": n, "k": k},
        epochs=args.epochs,
        train_subset=args.train_subset, test_subset=args.test_subset, seed=seed,
        device=args.device, dataset=args.dataset, augment=args.augment,
        data_options=args.data_options,
    )
    return {
        "N": n, "K": k, "seed": seed, "head_kwargs": {**MEASURED_WITH, "num_components": n, "k": k},
        "test_top1": 100 * final["test_top1"],
        "train_images_per_s": final["images_per_s"],
        "effective_components": diag.effective_components,
        "largest_weight": diag.largest_weight,
        "least_image_share": 100 * min(diag.image_share),
        "mutual_information": diag.mutual_information,
        "verdict": diag.verdict,
        "wall_s": wall,
    }


def summarise(rows: list[dict]) -> list[dict]:
    out = []
    for n, k in dict.fromkeys((r["N"], r["K"]) for r in rows):
        runs = [r for r in rows if (r["N"], r["K"]) == (n, k)]
        accs = [r["test_top1"] for r in runs]
        out.append({
            "N": n, "K": k, "seeds": len(runs),
            "test_top1": statistics.fmean(accs),
            "test_top1_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
            # The median: a run slowed by other work on the machine moves it least.
            "train_images_per_s": statistics.median(r["train_images_per_s"] for r in runs),
            "effective_components": statistics.fmean(r["effective_components"] for r in runs),
            "largest_weight": statistics.fmean(r["largest_weight"] for r in runs),
        })
    return out


def _draw(summary: list[dict], info: dict, path: Path, rows: list[dict]) -> None:
    """The figure, every seed drawn and the seeds' range as the bar (nothing clipped)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    title = (f"{info['model']} on {info['dataset']}, {info['epochs']} epochs, {info['seeds']} "
             f"seeds ({machine_label(info)})")
    fig3_figure(summary, title=title, seeds=rows).savefig(path, dpi=110)


def redraw(args) -> int:
    """The summary and the figure again from the rows of the results file."""
    path = (args.out or RESULTS_DIR) / "fig3-cpu.json"
    result = json.loads(path.read_text())
    result["summary"] = summarise(result["rows"])
    path.write_text(json.dumps(result, indent=2) + "\n")
    _draw(result["summary"], result["machine"], args.figure, result["rows"])
    print(f"rewrote the summary of {path} and {args.figure}")
    return 0


_SAME_RUN = ("device", "dataset", "epochs", "train_subset", "test_subset", "data_options")


def _earlier_rows(out_dir: Path, info: dict) -> list[dict]:
    """Rows of an interrupted run with the same dataset, budget and device, to resume from."""
    tag = "cuda" if info["device"].startswith("cuda") else "cpu"
    path = out_dir / f"fig3-{tag}.json"
    if not path.exists():
        return []
    earlier = json.loads(path.read_text())
    if any(earlier["machine"].get(key) != info[key] for key in _SAME_RUN):
        return []
    print(f"resuming: {len(earlier['rows'])} runs already in {path}", flush=True)
    return earlier["rows"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", choices=("second_order", "fashion_mnist"),
                        default="second_order")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-subset", type=int, default=None)
    parser.add_argument("--test-subset", type=int, default=None)
    parser.add_argument("--seeds", type=int, default=3, help="runs per (N, K) (seeds 0..n-1)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--quick", action="store_true", help="tiny data, one epoch, one seed")
    parser.add_argument("--out", type=Path, default=None, help="results folder")
    parser.add_argument("--figure", type=Path, default=FIGURE)
    parser.add_argument("--fresh", action="store_true",
                        help="ignore the rows of an earlier, interrupted run")
    parser.add_argument("--redraw", action="store_true",
                        help="train nothing: summarise the results file's rows and redraw")
    args = parser.parse_args(argv)
    if args.redraw:
        return redraw(args)
    args.augment = False if args.dataset == "fashion_mnist" else None
    args.data_options = {}
    grid = GRID
    if args.quick:
        args.epochs, args.seeds, grid = 1, 1, [(4, 1), (4, 2)]
        args.train_subset, args.test_subset = 256, 128
        if args.dataset == "second_order":
            args.data_options = {"num_train": 256, "num_test": 128}
    device = resolve_device(args.device)
    info = machine_info(device)
    info.update(
        model="small_gmsop", dataset=args.dataset, recipe="fast", epochs=args.epochs,
        seeds=args.seeds, train_subset=args.train_subset, test_subset=args.test_subset,
        data_options=args.data_options,
        command=" ".join(["python", "benchmarks/fig3.py", *(argv or sys.argv[1:])]),
    )
    out_dir = args.out or RESULTS_DIR
    rows = [] if args.fresh else _earlier_rows(out_dir, info)
    done = {(r["N"], r["K"], r["seed"]) for r in rows}
    with tempfile.TemporaryDirectory() as tmp:
        for n, k in grid:
            for seed in range(args.seeds):
                if (n, k, seed) in done:
                    continue
                rows.append(run(args, n, k, seed, Path(tmp) / f"{n}-{k}-{seed}"))
                write_json("fig3", info, rows, out_dir=out_dir)
                r = rows[-1]
                print(f"N = {n}, K = {k}, seed {seed}: top-1 {r['test_top1']:.2f}%, "
                      f"{r['train_images_per_s']:.0f} img/s, {r['effective_components']:.2f} "
                      f"effective components, {r['wall_s']:.0f} s", flush=True)
    rows = [r for n, k in grid for seed in range(args.seeds)
            for r in rows if (r["N"], r["K"], r["seed"]) == (n, k, seed)]
    summary = summarise(rows)
    path = write_json("fig3", info, rows, summary=summary, out_dir=out_dir)
    _draw(summary, info, args.figure, rows)
    print(f"\n{machine_label(info)}; {args.dataset}, {args.epochs} epochs, {args.seeds} seeds")
    print(markdown_table(summary, [
        ("N", "N", ""), ("K", "K", ""),
        ("test_top1", "test top-1 %", ".2f"), ("test_top1_std", "+- (std)", ".2f"),
        ("effective_components", "effective components", ".2f"),
        ("train_images_per_s", "train img/s", ".0f"),
    ]))
    print(f"wrote {path} and {args.figure}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
