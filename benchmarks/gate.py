"""The GM-SOP gate by experiment, one change at a time under the same recipe, in two tables.

    python benchmarks/gate.py                          # why the release's gate collapses
    python benchmarks/gate.py --table saturation --dataset second_order --seeds 3
                                                       # why the live gate saturates
    python benchmarks/gate.py --table component --dataset second_order --seeds 3
                                                       # what beyond the gate holds GM-SOP back
    python benchmarks/gate.py --only release live      # some variants
    python benchmarks/gate.py --quick                  # a smoke run

Every variant trains ``small_gmsop`` (GM-SOP-8-4) with the same recipe, data, seeds and budget,
changing one thing about the gate. ``--table collapse`` (Fashion-MNIST, 12,000 images, 2 epochs,
no augmentation) asks why the release's gate chooses nothing: its form, noise, tie handling, input
normalisation, the balance loss's weight, Shazeer's load loss, the gating branch; writes
benchmarks/results/gate-{cpu,cuda}.json. ``--table saturation`` asks why the live gate, which
chooses by image, puts all of an image's weight on one of its K components: the logit scale
(ST-MoE's router z-loss, a cosine router with a fixed or learned scale), the softmax over all N,
and, once the gate mixes, the balance loss, the load loss and the noise; writes
benchmarks/results/gate-saturation-{cpu,cuda}.json. ``--table component`` keeps the mixing gate
and asks what around it holds GM-SOP back on the second-order set: each CM's share of the data,
the CM's width, the Newton-Schulz iterations, the BN and dropout before the FC; writes
benchmarks/results/gate-component-{cpu,cuda}.json. The eval-time gate is diagnosed on the test
split (:func:`gsoplib.heads.gate.diagnose_gate`): usage per expert, the most common set, the
mutual information between class and expert, the effective number of components per image, the
largest weight, the logit span, the verdict.
"""

from __future__ import annotations

import argparse
import statistics
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

#: The head settings the collapse and saturation tables were measured with: the small zoo's
#: ``small_gmsop`` then had the paper's balance weight 100 and dropout 0.2 (it has alpha = 1 and
#: no dropout now), so each row pins them and a rerun trains what the committed rows trained.
_MEASURED_WITH = {"alpha": 100.0, "dropout": 0.2}


def _pinned(table: dict[str, tuple[str, dict]]) -> dict[str, tuple[str, dict]]:
    """Each row's head_kwargs over :data:`_MEASURED_WITH` (a row's own alpha wins)."""
    return {name: (text, {**_MEASURED_WITH, **kw}) for name, (text, kw) in table.items()}


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
    "live": ("live: expert noise, zero init, index ties, standardised feature, "
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
VARIANTS = _pinned(VARIANTS)


_MIXING = {"gate": "mixing"}
SATURATION: dict[str, tuple[str, dict]] = {
    "live": ("live: linear router W_g f (the paper's Eq. 2) over the standardised feature",
             {"gate": "live"}),
    "live_z_loss": ("live + router z-loss 1e-3 (ST-MoE)", {"gate": "live", "z_loss_weight": 1e-3}),
    "live_z_loss_1e-2": ("live + router z-loss 1e-2", {"gate": "live", "z_loss_weight": 1e-2}),
    "live_softmax_all": ("live, softmax over all N, the K chosen kept unrenormalised (Switch)",
                         {"gate": "live", "gate_weighting": "all"}),
    "mixing": ("mixing (default): live with a cosine router, s = 2", dict(_MIXING)),
    "cosine_s4": ("mixing with s = 4", {**_MIXING, "gate_logit_scale": 4.0}),
    "cosine_s8": ("mixing with s = 8", {**_MIXING, "gate_logit_scale": 8.0}),
    "cosine_s32": ("mixing with s = 32", {**_MIXING, "gate_logit_scale": 32.0}),
    "cosine_learned": ("mixing with s learned from 2 (capped at 100)",
                       {**_MIXING, "gate_learn_scale": True}),
    "mixing_alpha0": ("mixing, no balance loss (alpha = 0)", {**_MIXING, "alpha": 0.0}),
    "mixing_alpha1": ("mixing, balance weight alpha = 1", {**_MIXING, "alpha": 1.0}),
    "mixing_load": ("mixing + Shazeer's load loss (1e-2)", {**_MIXING, "load_weight": 1e-2}),
}
SATURATION = _pinned(SATURATION)
# With the mixing gate GM-SOP still trails a plain ResNet on the second-order set, and so do one
# parametric SR-SOP and Ave-SOP-8 with no gate at all (``compare.py --claim gmsop_table2_sop``):
# what is around the gate, changed one thing at a time from small_gmsop as gsoplib 0.3 had it.
_DEFAULT = {"gate": "mixing", "alpha": 1.0, "dropout": 0.2}
COMPONENT: dict[str, tuple[str, dict]] = {
    "dropout_0.2": ("small_gmsop as gsoplib 0.3 had it: mixing gate, alpha = 1, 8 CMs of "
                    "64 -> 32 channels, 3 Newton-Schulz iterations, BN gamma 1, dropout 0.2 "
                    "(the paper's)", {**_DEFAULT, "dropout": 0.2}),
    "all_data": ("K = N = 8: every CM sees every image (each CM's share of the data x 2)",
                 {**_DEFAULT, "k": 8}),
    "wide": ("CMs of 64 -> 64 channels (2080-d instead of 528-d)",
             {**_DEFAULT, "sop_channels": (64, 64)}),
    "iters5": ("5 Newton-Schulz iterations (the GSoP-Net text; the iSQRT-COV head's best N)",
               {**_DEFAULT, "iters": 5}),
    "bn_gamma4": ("the BN before the FC starts at gamma = 4 (the iSQRT-COV head's features x 4)",
                  {**_DEFAULT, "norm_init": 4.0}),
    "no_dropout": ("no dropout before the FC (the zoo's default since)",
                   {**_DEFAULT, "dropout": 0.0}),
}
TABLES = {"collapse": ("gate", VARIANTS), "saturation": ("gate-saturation", SATURATION),
          "component": ("gate-component", COMPONENT)}


def run(args, name: str, head_kwargs: dict, out: Path, seed: int) -> dict:
    final, diag, wall = train_and_diagnose(
        "small_gmsop", out, head_kwargs=head_kwargs, epochs=args.epochs,
        train_subset=args.train_subset, test_subset=args.test_subset, seed=seed,
        device=args.device, dataset=args.dataset, augment=args.augment,
        data_options=args.data_options,
    )
    return {
        "variant": name,
        "seed": seed,
        "head_kwargs": head_kwargs,
        "test_top1": 100 * final["test_top1"],
        "wall_s": wall,
        "least_image_share": 100 * min(diag.image_share),
        "top_set_share": 100 * diag.top_set_share,
        "distinct_sets": diag.distinct_sets,
        "mutual_information": diag.mutual_information,
        "class_dependence": diag.class_dependence,
        "weight_deviation": diag.weight_deviation,
        "effective_components": diag.effective_components,
        "largest_weight": diag.largest_weight,
        "one_hot_share": 100 * diag.one_hot_share,
        "logit_span": diag.logit_span,
        "kept_logit_gap": diag.kept_logit_gap,
        "degenerate": diag.degenerate,
        "verdict": diag.verdict,
        "diagnostics": diag.to_dict(),
    }


def summarise(rows: list[dict]) -> list[dict]:
    """One row per variant: the seeds' mean (and sample std of the top-1) of every number."""
    out = []
    for name in dict.fromkeys(r["variant"] for r in rows):
        runs = [r for r in rows if r["variant"] == name]
        row = {"variant": name, "change": runs[0]["change"], "seeds": [r["seed"] for r in runs]}
        for key, value in runs[0].items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and key != "seed":
                values = [r[key] for r in runs if r[key] is not None]
                row[key] = statistics.fmean(values) if values else None
        accs = [r["test_top1"] for r in runs]
        row["test_top1_std"] = statistics.stdev(accs) if len(accs) > 1 else 0.0
        row["degenerate_runs"] = sum(r["degenerate"] for r in runs)
        row["verdicts"] = [r["verdict"] for r in runs]
        out.append(row)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--table", choices=list(TABLES), default="collapse")
    parser.add_argument("--only", nargs="+", default=None, help="variants of the table")
    parser.add_argument("--dataset", choices=("fashion_mnist", "second_order"),
                        default="fashion_mnist")
    parser.add_argument("--epochs", type=int, default=None,
                        help="default: 2 on Fashion-MNIST, 3 on the second-order set")
    parser.add_argument("--train-subset", type=int, default=None,
                        help="default: 12000 Fashion-MNIST images, the whole second-order set")
    parser.add_argument("--test-subset", type=int, default=None,
                        help="default: 5000 Fashion-MNIST images, the whole second-order set")
    parser.add_argument("--seeds", type=int, default=1, help="runs per variant (seeds 0..n-1)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--quick", action="store_true", help="tiny data, one epoch")
    parser.add_argument("--out", type=Path, default=None, help="results folder")
    args = parser.parse_args(argv)
    stem, variants = TABLES[args.table]
    unknown = sorted(set(args.only or ()) - set(variants))
    if unknown:
        parser.error(f"unknown variant {unknown[0]!r} of table {args.table!r}; valid variants: "
                     f"{', '.join(variants)}")
    names = args.only or list(variants)
    fashion = args.dataset == "fashion_mnist"
    args.epochs = args.epochs or (2 if fashion else 3)
    args.augment = False if fashion else None
    args.data_options = {}
    if fashion:
        args.train_subset = args.train_subset or 12000
        args.test_subset = args.test_subset or 5000
    if args.quick:
        args.epochs, args.train_subset, args.test_subset, args.seeds = 1, 512, 256, 1
        if not fashion:
            args.data_options = {"num_train": 512, "num_test": 256}
    device = resolve_device(args.device)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            for seed in range(args.seeds):
                row = run(args, name, variants[name][1], Path(tmp) / f"{name}-{seed}", seed)
                row["change"] = variants[name][0]
                rows.append(row)
                print(f"{name} seed {seed}: top-1 {row['test_top1']:.2f}%, "
                      f"{row['effective_components']:.2f} effective components, "
                      f"{row['wall_s']:.0f} s; {row['verdict']}", flush=True)
    info = machine_info(device)
    info.update(
        model="small_gmsop", dataset=args.dataset, recipe="fast", epochs=args.epochs,
        train_subset=args.train_subset, test_subset=args.test_subset, seeds=args.seeds,
        augment=args.augment, data_options=args.data_options,
        command=" ".join(["python", "benchmarks/gate.py", *(argv or sys.argv[1:])]),
    )
    summary = summarise(rows)
    write_json(stem, info, rows, summary=summary, **({"out_dir": args.out} if args.out else {}))
    print(f"\n{machine_label(info)}; {args.dataset}, {args.epochs} epochs, {args.seeds} seeds")
    print(markdown_table(summary, [
        ("variant", "variant", ""),
        ("change", "change", ""),
        ("test_top1", "test top-1 %", ".2f"),
        ("test_top1_std", "+- (std)", ".2f"),
        ("effective_components", "effective components (of K)", ".2f"),
        ("largest_weight", "largest weight", ".3f"),
        ("logit_span", "logit span", ".3g"),
        ("least_image_share", "least-used expert, % of images", ".1f"),
        ("top_set_share", "most common set, % of images", ".1f"),
        ("mutual_information", "MI(class; expert), bits", ".3f"),
        ("degenerate_runs", "degenerate runs", ""),
    ]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
