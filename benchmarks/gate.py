"""Why the GM-SOP release's gate collapses, by experiment: one change at a time, same recipe.

    python benchmarks/gate.py                      # the README's table (about 12 min, 2-core CPU)
    python benchmarks/gate.py --only release live  # some variants
    python benchmarks/gate.py --quick              # a smoke run

Every variant trains ``small_gmsop`` (GM-SOP-8-4) on Fashion-MNIST with the same recipe, data,
seed and budget, changing the gate's form, noise, tie handling, input normalisation, the
balance loss's weight, Shazeer's load loss, or the gating branch. Then the eval-time gate is
diagnosed on the test split (:func:`gsoplib.heads.gate.diagnose_gate`): usage per expert, the
most common chosen set, the mutual information between class and expert, the chosen weights'
deviation from 1/K, the verdict. Writes benchmarks/results/gate-{cpu,cuda}.json.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (  # noqa: E402
    machine_info,
    machine_label,
    markdown_table,
    train_and_diagnose,
    write_json,
)

from gsoplib.train.distributed import resolve_device  # noqa: E402

#: name -> (what changes against the row above it or the release, head_kwargs)
VARIANTS: dict[str, tuple[str, dict]] = {
    "release": ("the GM-SOP release: shared noise, constant init, random ties", {
        "gate": "release"}),
    "release_index_ties": ("release, ties to the lower index in training", {
        "gate": "release", "random_ties": False}),
    "release_expert_noise": ("release, noise per (image, expert) + 1e-2 floor", {
        "gate": "release", "noise": "expert"}),
    "release_input_norm": ("release, gating feature standardised (BN, no affine)", {
        "gate": "release", "gate_input_norm": "batch"}),
    "release_detach": ("release, the gate reads a detached feature map", {
        "gate": "release", "gate_detach": True}),
    "release_alpha1": ("release, balance weight alpha = 1", {"gate": "release", "alpha": 1.0}),
    "live": ("live (default): expert noise, zero init, index ties, standardised feature, "
             "detached feature map", {"gate": "live"}),
    "live_no_detach": ("live, the balance loss reaches the backbone", {
        "gate": "live", "gate_detach": False}),
    "live_no_norm": ("live without the standardised feature", {
        "gate": "live", "gate_input_norm": "none"}),
    "live_load": ("live + Shazeer's load loss (1e-2)", {"gate": "live", "load_weight": 1e-2}),
    "live_gap_branch": ("live, gating branch = GAP of the feature map", {
        "gate": "live", "gate_branch": "gap"}),
    "live_alpha1": ("live, balance weight alpha = 1", {"gate": "live", "alpha": 1.0}),
    "live_alpha0": ("live, no balance loss (alpha = 0)", {"gate": "live", "alpha": 0.0}),
}


def run(args, name: str, head_kwargs: dict, out: Path) -> dict:
    final, diag, wall = train_and_diagnose(
        "small_gmsop", out, head_kwargs=head_kwargs, epochs=args.epochs,
        train_subset=args.train_subset, test_subset=args.test_subset, seed=args.seed,
        device=args.device,
    )
    return {
        "variant": name,
        "head_kwargs": head_kwargs,
        "test_top1": 100 * final["test_top1"],
        "wall_s": wall,
        "least_image_share": 100 * min(diag.image_share),
        "top_set_share": 100 * diag.top_set_share,
        "distinct_sets": diag.distinct_sets,
        "mutual_information": diag.mutual_information,
        "class_dependence": diag.class_dependence,
        "weight_deviation": diag.weight_deviation,
        "degenerate": diag.degenerate,
        "verdict": diag.verdict,
        "diagnostics": diag.to_dict(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--train-subset", type=int, default=12000)
    parser.add_argument("--test-subset", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--quick", action="store_true", help="tiny data, one epoch")
    parser.add_argument("--out", type=Path, default=None, help="results folder")
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.train_subset, args.test_subset = 1, 512, 256
    device = resolve_device(args.device)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only:
            rows.append(run(args, name, VARIANTS[name][1], Path(tmp) / name))
            rows[-1]["change"] = VARIANTS[name][0]
            print(f"{name}: top-1 {rows[-1]['test_top1']:.2f}%, {rows[-1]['wall_s']:.0f} s; "
                  f"{rows[-1]['verdict']}", flush=True)
    info = machine_info(device)
    info.update(
        model="small_gmsop", dataset="fashion_mnist", recipe="fast", epochs=args.epochs,
        train_subset=args.train_subset, test_subset=args.test_subset, seed=args.seed,
        command=" ".join(["python", "benchmarks/gate.py", *(argv or sys.argv[1:])]),
    )
    write_json("gate", info, rows, **({"out_dir": args.out} if args.out else {}))
    print(f"\n{machine_label(info)}; {args.epochs} epochs on {args.train_subset} images")
    print(markdown_table(rows, [
        ("variant", "variant", ""),
        ("change", "change", ""),
        ("test_top1", "test top-1 %", ".2f"),
        ("least_image_share", "least-used expert, % of images", ".1f"),
        ("top_set_share", "most common set, % of images", ".1f"),
        ("mutual_information", "MI(class; expert), bits", ".3f"),
        ("weight_deviation", "weights' deviation from 1/K", ".3f"),
        ("degenerate", "degenerate", ""),
    ]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
