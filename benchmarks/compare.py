"""Compare model variants under one recipe: the papers' claims in small, and where second-order
pooling pays.

    python benchmarks/compare.py                                   # six variants, two datasets
    python benchmarks/compare.py --claim gsop_table4a              # one claim of the papers
    python benchmarks/compare.py --claim all                       # every claim (about 90 min)
    python benchmarks/compare.py --sweep                           # backbone size x pooling
    python benchmarks/compare.py --markdown                        # the README's tables
    python benchmarks/compare.py --table isqrt_head                # what holds the head back
    python benchmarks/compare.py --quick                           # a smoke run

Every run trains with ``gsop train``'s trainer (recipe ``fast``, the same epochs, batch size and
data for all variants of a comparison) and records the final test top-1, the training
throughput and the parameter count. Three modes:

- the default compares the six small variants (``--models``) on ``--datasets``: mean and sample
  standard deviation over ``--seeds`` (benchmarks/results/compare-{cpu,cuda}.json);
- ``--claim NAME`` runs one of :data:`CLAIMS`, a row of the papers' claims each (GSoP-Net Tables
  4a-4d, 5/6; GM-SOP Table 2), on the generated second-order set, and says whether its ordering
  holds at this budget (benchmarks/results/claims-{cpu,cuda}.json, shared by all claims);
- ``--sweep`` trains every pooling of :data:`POOLINGS` on every backbone of :data:`BACKBONES`
  on both datasets (benchmarks/results/sweep-{cpu,cuda}.json) and draws docs/figures/sweep.png;
- ``--table NAME`` trains the variants of one of :data:`TABLES`, one change each to a
  second-order head, on the second-order set (benchmarks/results/heads-{cpu,cuda}.json).

Claims and the sweep are resumable: their JSON is rewritten after every run, and a run whose
(claim or backbone, variant, dataset, seed, budget) is already there is not trained again, so a
stopped session loses at most one run. Every JSON records the budget and the machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import RESULTS_DIR, machine_info, machine_label, markdown_table, write_json  # noqa: E402

from gsoplib.models import CONFIGS, list_models  # noqa: E402
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
SWEEP_FIGURE = Path(__file__).resolve().parent.parent / "docs" / "figures" / "sweep.png"

#: A claim is judged only from this many seeds per variant (a standard deviation needs them).
MIN_SEEDS = 3
#: The budget of each dataset in claims and the sweep: epochs and training subset (None: all).
BUDGETS = {"second_order": {"epochs": 3, "train_subset": None},
           "fashion_mnist": {"epochs": 3, "train_subset": 10000}}


@dataclass(frozen=True)
class Variant:
    """One model of a comparison: a label, a zoo name and keyword overrides."""

    label: str
    model: str
    kwargs: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Claim:
    """A claim of a paper as an ordering of variants, listed from the worst to the best the
    paper finds (``ordered``), or a best variant the others should not beat (``best_first``)."""

    paper: str
    text: str
    variants: tuple[Variant, ...]
    rule: str = "ordered"
    dataset: str = "second_order"


def _gm(component: str, head: str, **kw) -> dict:
    """A head of GM-SOP Table 2 on the small backbone, as wide and with the same dropout before
    its FC as the zoo's gated mixture of that component (small_gmsop, small_gmgap)."""
    zoo = CONFIGS["small_gmsop" if component == "sop" else "small_gmgap"]["kwargs"]["head_kwargs"]
    sizes = {"sop_channels": (64, 32)} if component == "sop" else {"gap_dim": 128}
    dropout = {"dropout": zoo.get("dropout", 0.2)}
    return {"head": head, "head_kwargs": {"component": component, **sizes, **dropout, **kw}}


CLAIMS: dict[str, Claim] = {
    "gsop_table4a": Claim(
        "GSoP-Net Table 4a",
        "GSoP-Net1 is best at the middle covariance size (top-1 error 18.00 / 17.42 / 17.61% "
        "at c = 64 / 128 / 256: accuracy orders c = 64 < 256 < 128; GSoP-Net2 keeps improving to "
        "256); here c = 8 / 16 / 32, a quarter, half and all of the small network's 32 channels",
        (Variant("GSoP-Net1, c = 8", "small_gsop1", {"block_kwargs": {"rd_channels": 8}}),
         Variant("GSoP-Net1, c = 32", "small_gsop1", {"block_kwargs": {"rd_channels": 32}}),
         Variant("GSoP-Net1, c = 16", "small_gsop1", {"block_kwargs": {"rd_channels": 16}})),
    ),
    "gsop_table4b": Claim(
        "GSoP-Net Table 4b",
        "channel-wise and position-wise blocks are not complementary: no fusion beats the "
        "channel-wise block",
        (Variant("channel (C)", "small_gsop1"),
         Variant("position (P)", "small_gsop_pos"),
         Variant("fusion: average", "small_gsop_fuse_avg"),
         Variant("fusion: maximum", "small_gsop_fuse_max"),
         Variant("fusion: concatenation", "small_gsop_fuse_cat")),
        rule="best_first",
    ),
    "gsop_table4cd": Claim(
        "GSoP-Net Tables 4c/4d",
        "more blocks help: none < the last stage only < every stage, with or without the "
        "iSQRT-COV head",
        (Variant("-,-,- (vanilla)", "small_vanilla"),
         Variant("-,-,C", "small_vanilla", {"blocks": "-,-,C",
                                            "block_kwargs": {"rd_channels": 32}}),
         Variant("C,C,C (GSoP-Net1)", "small_gsop1"),
         Variant("-,-,√ (iSQRT-COV)", "small_isqrt"),
         Variant("C,C,√ (GSoP-Net2)", "small_gsop2")),
        rule="ordered_pairs",
    ),
    "gsop_table56": Claim(
        "GSoP-Net Tables 5/6",
        "vanilla < SE < GSoP-Net1 < GSoP-Net2 (Table 5, ImageNet; on CIFAR-100, Table 6, "
        "iSQRT-COV lies between Net1 and Net2)",
        (Variant("vanilla", "small_vanilla"), Variant("SE", "small_se"),
         Variant("GSoP-Net1", "small_gsop1"), Variant("GSoP-Net2", "small_gsop2")),
    ),
    "gmsop_table2_sop": Claim(
        "GM-SOP Table 2 (SOP)",
        "one parametric SR-SOP < the average of N (Ave-SOP-8) < the gated mixture (GM-SOP-8-4)",
        (Variant("one parametric SR-SOP", "small_vanilla", _gm("sop", "component")),
         Variant("Ave-SOP-8", "small_vanilla", _gm("sop", "average_mixture",
                                                  num_components=8)),
         Variant("GM-SOP-8-4", "small_gmsop")),
    ),
    "gmsop_table2_gap": Claim(
        "GM-SOP Table 2 (GAP)",
        "one parametric GAP < the average of N (Ave-GAP-8) < the gated mixture (GM-GAP-8-4)",
        (Variant("one parametric GAP", "small_vanilla", _gm("gap", "component")),
         Variant("Ave-GAP-8", "small_vanilla", _gm("gap", "average_mixture", num_components=8)),
         Variant("GM-GAP-8-4", "small_gmgap")),
    ),
}

_NET2_0_2 = {"head_kwargs": {"feature_scale": 1.0}}
#: One change at a time to a second-order head, on the second-order set: GSoP-Net2's iSQRT-COV
#: head from gsoplib 0.2 (features as the meta-layer gives them). GM-SOP's head and gate have
#: theirs in ``benchmarks/gate.py --table saturation`` and ``--table component``.
TABLES: dict[str, tuple[Variant, ...]] = {
    "isqrt_head": (
        Variant("vanilla (GAP)", "small_vanilla"),
        Variant("GSoP-Net2 as in gsoplib 0.2", "small_gsop2", _NET2_0_2),
        Variant("+ BN before the FC", "small_gsop2",
                {"head_kwargs": {"feature_scale": 1.0, "norm": True}}),
        Variant("no post-compensation", "small_gsop2",
                {"head_kwargs": {"feature_scale": 1.0, "compensate": False}}),
        Variant("FC initialised to zero", "small_gsop2",
                {"head_kwargs": {"feature_scale": 1.0, "fc_init": "zeros"}}),
        Variant("N = 5 iterations", "small_gsop2",
                {"head_kwargs": {"feature_scale": 1.0, "iters": 5}}),
        Variant("N = 10 iterations (near the exact root)", "small_gsop2",
                {"head_kwargs": {"feature_scale": 1.0, "iters": 10}}),
        Variant("warm-up of 1 epoch", "small_gsop2", {**_NET2_0_2, "warmup_epochs": 1.0}),
        Variant("features x 4 (the default)", "small_gsop2",
                {"head_kwargs": {"feature_scale": 4.0}}),
        Variant("features x 10", "small_gsop2", {"head_kwargs": {"feature_scale": 10.0}}),
    ),
}

#: Keys of a table variant's kwargs that are training settings, not model arguments.
TRAIN_KEYS = ("warmup_epochs", "grad_clip")

#: Backbones of the sweep, smallest first: (label, layers, widths); CIFAR stem as wide as the
#: first stage, the last stage's map 28 / 2^(stages - 1) on a side.
BACKBONES: tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...] = (
    ("1 stage x 8", (1,), (8,)),
    ("2 stages x 8-16", (1, 1), (8, 16)),
    ("3 stages x 8-32", (1, 1, 1), (8, 16, 32)),
    ("3 stages x 16-64", (1, 1, 1), (16, 32, 64)),
)
#: Poolings of the sweep, each read off the same backbone's last map of C channels. The
#: iSQRT-COV head runs twice: with the paper's features (x1) and scaled by 4 as the small zoo's
#: heads are (``ISqrtCovHead(feature_scale=4)``); GM-SOP keeps the head's defaults (the paper's
#: dropout of 0.2 and alpha = 100; the small zoo drops the dropout and uses alpha = 1). "GAP +
#: MLP" is a control, not a paper's pooling: GAP, then Linear(C, C(C+1)/2) + ReLU before the FC,
#: so that its classifier reads as many features as the iSQRT-COV head's, all of them first-order;
#: "GAP x4" is the other control: GAP's means scaled by 4 before the FC, as the x4 head scales its
#: root (the scale sets the FC's effective learning rate).
POOLINGS = ("GAP", "GSoP blocks + GAP", "iSQRT-COV head", "iSQRT-COV head x4", "GM-SOP head",
            "GAP + MLP", "GAP x4")


def sweep_kwargs(layers: tuple[int, ...], widths: tuple[int, ...], pooling: str) -> dict:
    """ResNet keyword arguments of one cell of the sweep (basic blocks, CIFAR stem):
    GAP; channel GSoP blocks (c = min(32, C)) after every stage's last block; the covariance of
    the last map's own C channels, its Newton-Schulz root (3 iterations) and an FC (no
    reduction, so it reads what GAP reads), its features as they come (feature_scale 1, the
    paper's) or x4 (the small zoo's); GM-SOP-8-4 with components C -> C -> C/2; or GAP with a
    hidden Linear(C, C(C+1)/2) + ReLU, the covariance head's feature count; or GAP with its means
    scaled by 4 (the two controls)."""
    stages, c = len(layers), widths[-1]
    out = {"block": "basic", "layers": layers, "widths": widths, "stem": "cifar",
           "stem_width": widths[0], "blocks": ",".join("-" * stages)}
    if pooling == "GSoP blocks + GAP":
        out.update(blocks=",".join("C" * stages), block_kwargs={"rd_channels": min(32, c)})
    elif pooling in ("iSQRT-COV head", "iSQRT-COV head x4"):
        out.update(blocks=",".join(["-"] * (stages - 1) + ["√"]),
                   head_kwargs={"rd_channels": None, "iters": 3})
        if pooling == "iSQRT-COV head x4":
            out["head_kwargs"]["feature_scale"] = 4.0
    elif pooling == "GAP + MLP":
        out.update(head_kwargs={"hidden": c * (c + 1) // 2})
    elif pooling == "GAP x4":
        out.update(head_kwargs={"feature_scale": 4.0})
    elif pooling == "GM-SOP head":
        out.update(head="gated_mixture", head_kwargs={
            "component": "sop", "num_components": 8, "k": 4,
            "sop_channels": (c, max(4, c // 2))})
    return out


def _iters_variant(iters: int) -> Variant:
    """The sweep's iSQRT-COV head on its 3-stage 8-32 backbone, with ``iters`` Newton-Schulz
    iterations (iSQRT-COV's N; 20 is as close to the exact root as the bounds allow)."""
    kwargs = sweep_kwargs((1, 1, 1), (8, 16, 32), "iSQRT-COV head")
    kwargs["head_kwargs"] = {**kwargs["head_kwargs"], "iters": iters}
    return Variant(f"N = {iters}", "small_vanilla", kwargs)


#: The scaled head's seed spread against vanilla's, over five seeds (``--seeds 5``; the first
#: three are isqrt_head's runs, shared).
TABLES["isqrt_spread"] = tuple(v for v in TABLES["isqrt_head"]
                               if v.label in ("vanilla (GAP)", "features x 4 (the default)"))

#: iSQRT-COV's N (iSQRT-COV's own ImageNet ablation compares N; the GSoP-Net authors' code uses
#: 3): how many Newton-Schulz iterations a small network needs, on the second-order set.
TABLES["isqrt_iters"] = tuple(_iters_variant(n) for n in (1, 2, 3, 5, 10, 20))


def run_one(args, dataset: str, model: str, seed: int, out: Path, model_kwargs=None,
            epochs=None, train_subset=None) -> dict:
    model_kwargs = dict(model_kwargs or {})
    train = {k: model_kwargs.pop(k) for k in TRAIN_KEYS if k in model_kwargs}
    config = TrainConfig(
        model=model,
        dataset=dataset,
        out_dir=str(out),
        recipe=args.recipe,
        epochs=epochs or args.epochs,
        batch_size=args.batch_size,
        train_subset=train_subset or args.train_subset,
        test_subset=args.test_subset,
        data_options=dict(args.data_options.get(dataset, {})),
        model_kwargs=model_kwargs,
        seed=seed,
        device=args.device,
        progress=False,
        **train,
    )
    begin = time.perf_counter()
    trainer = Trainer(config)
    final = trainer.fit()
    final["wall_s"] = time.perf_counter() - begin
    final["params"] = sum(p.numel() for p in trainer.model.parameters())
    return final


def _stats(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def claim_verdict(claim: Claim, means: list[float], stds: list[float]) -> str:
    """'holds', 'holds within seed noise', or 'does not hold at this budget', from the mean
    test top-1 of each variant in the claim's order. A difference smaller than the larger of
    the two variants' standard deviations is called seed noise."""
    def noise(a: int, b: int) -> bool:
        return abs(means[a] - means[b]) < max(stds[a], stds[b])

    if claim.rule == "best_first":
        pairs = [(i, 0) for i in range(1, len(means))]          # no other beats the first
    elif claim.rule == "ordered_pairs":
        pairs = [(0, 1), (1, 2), (3, 4)]                         # two chains: blocks, then head
    else:
        pairs = [(i, i + 1) for i in range(len(means) - 1)]     # worse before better
    broken = [(a, b) for a, b in pairs if means[a] > means[b]]
    if not broken:
        return ("holds" if not any(noise(a, b) for a, b in pairs)
                else "holds within seed noise")
    if all(noise(a, b) for a, b in broken):
        return "does not hold at this budget (differences within seed noise)"
    return "does not hold at this budget"


class Results:
    """A resumable JSON of runs: rows keyed by (group, variant, dataset, seed, budget)."""

    def __init__(self, path: Path, info: dict) -> None:
        self.path, self.info = path, info
        self.rows: list[dict] = []
        if path.exists():
            self.rows = json.loads(path.read_text())["rows"]

    @staticmethod
    def key(row: dict) -> tuple:
        return (row["group"], row["variant"], row["dataset"], row["seed"], row["epochs"],
                row["train_subset"])

    def has(self, **key) -> bool:
        want = self.key(key)
        return any(self.key(r) == want for r in self.rows)

    def same_run(self, model: str, kwargs: dict, **key) -> dict | None:
        """A row of another group that trained the very same run (model, kwargs, dataset,
        seed, budget), if any: a variant several claims share is trained once."""
        want = (key["dataset"], key["seed"], key["epochs"], key["train_subset"])
        for r in self.rows:
            if ((r["dataset"], r["seed"], r["epochs"], r["train_subset"]) == want
                    and r["model"] == model and r["model_kwargs"] == json.loads(
                        json.dumps(kwargs))):
                return r
        return None

    def add(self, row: dict, **extra) -> None:
        self.rows.append(row)
        self.save(**extra)

    def save(self, **extra) -> None:
        write_json(self.path.stem.rsplit("-", 1)[0], self.info, self.rows,
                   out_dir=self.path.parent, **extra)


def _run_row(args, results: Results, group: str, variant: Variant, dataset: str, seed: int,
             tmp: Path, **extra) -> None:
    budget = BUDGETS[dataset] if not args.quick else {"epochs": 1, "train_subset": 256}
    key = dict(group=group, variant=variant.label, dataset=dataset, seed=seed, **budget)
    if results.has(**key):
        return
    shared = results.same_run(variant.model, variant.kwargs, **key)
    if shared is not None:
        results.add({**shared, **key, "shared_with": shared["group"]}, **extra)
        return
    final = run_one(args, dataset, variant.model, seed, tmp / f"{len(results.rows)}",
                    variant.kwargs, budget["epochs"], budget["train_subset"])
    row = {**key, "model": variant.model, "model_kwargs": variant.kwargs,
           "test_top1": 100 * final["test_top1"], "train_images_per_s": final["images_per_s"],
           "params": final["params"], "wall_s": final["wall_s"], "machine": machine_label(
               results.info)}
    print(f"{group} / {variant.label} on {dataset}, seed {seed}: top-1 {row['test_top1']:.2f}%, "
          f"{row['wall_s']:.0f} s", flush=True)
    results.add(row, **extra)


def claims_summary(rows: list[dict], names: list[str]) -> list[dict]:
    out = []
    for name in names:
        claim = CLAIMS[name]
        means, stds, cells = [], [], []
        for v in claim.variants:
            accs = [r["test_top1"] for r in rows if r["group"] == name and r["variant"] == v.label]
            if not accs:
                break
            mean, std = _stats(accs)
            means.append(mean)
            stds.append(std)
            cells.append(f"{v.label} {mean:.2f} +- {std:.2f}")
        done = len(means) == len(claim.variants)
        seeds = sorted({r["seed"] for r in rows if r["group"] == name})
        counts = [sum(1 for r in rows if r["group"] == name and r["variant"] == v.label)
                  for v in claim.variants]
        out.append({"claim": name, "paper": claim.paper, "text": claim.text,
                    "dataset": claim.dataset, "seeds": seeds, "measured": "; ".join(cells),
                    "means": means, "stds": stds,
                    "verdict": ("incomplete" if not done else
                                f"not judged: {min(counts)} seed(s), a verdict needs "
                                f"{MIN_SEEDS}" if min(counts) < MIN_SEEDS else
                                claim_verdict(claim, means, stds)),
                    "command": f"python benchmarks/compare.py --claim {name}"})
    return out


def table_summary(rows: list[dict]) -> list[dict]:
    out = []
    for name, variants in TABLES.items():
        for v in variants:
            runs = [r for r in rows if r["group"] == name and r["variant"] == v.label]
            if runs:
                mean, std = _stats([r["test_top1"] for r in runs])
                out.append({"table": name, "variant": v.label, "model": v.model,
                            "model_kwargs": v.kwargs, "seeds": len(runs), "test_top1": mean,
                            "test_top1_std": std, "runs": [r["test_top1"] for r in runs]})
    return out


def sweep_summary(rows: list[dict]) -> list[dict]:
    out = []
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        for label, _, _ in BACKBONES:
            for pooling in POOLINGS:
                runs = [r for r in rows if (r["dataset"], r["group"], r["variant"])
                        == (dataset, label, pooling)]
                if runs:
                    mean, std = _stats([r["test_top1"] for r in runs])
                    out.append({"dataset": dataset, "backbone": label, "pooling": pooling,
                                "seeds": len(runs), "test_top1": mean, "test_top1_std": std,
                                "params": runs[0]["params"],
                                "runs": [r["test_top1"] for r in runs]})
    return out


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=DEFAULT_DATASETS)
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    parser.add_argument("--claim", nargs="+", default=None,
                        help=f"one or more of: all, {', '.join(CLAIMS)}")
    parser.add_argument("--sweep", action="store_true", help="backbone size x pooling")
    parser.add_argument("--markdown", action="store_true",
                        help="print the claims and sweep tables from the committed JSON")
    parser.add_argument("--write", action="store_true",
                        help="with --markdown: rewrite the tables in README.md and docs")
    parser.add_argument("--table", nargs="+", default=None,
                        help=f"one or more of: {', '.join(TABLES)}")
    parser.add_argument("--seeds", type=int, default=3, help="runs per model (seeds 0..n-1)")
    parser.add_argument("--recipe", default="fast")
    parser.add_argument("--epochs", type=int, default=None, help="default: the recipe's")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the recipe's")
    parser.add_argument("--train-subset", type=int, default=None, help="seeded subset size")
    parser.add_argument("--test-subset", type=int, default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--quick", action="store_true", help="tiny data, one epoch, one seed")
    parser.add_argument("--out", type=Path, default=None, help="results folder")
    parser.add_argument("--figure", type=Path, default=SWEEP_FIGURE)
    parser.add_argument("--name", default="compare",
                        help="results file stem of the default mode: NAME-{cpu,cuda}.json")
    args = parser.parse_args(argv)
    args.data_options = {}
    if args.quick:
        args.epochs, args.seeds = 1, 1
        args.train_subset, args.test_subset = 256, 128
        args.data_options = {"second_order": {"num_train": 256, "num_test": 128}}
    unknown = [m for m in args.models if m not in list_models()]
    if unknown:
        parser.error(f"unknown model {unknown[0]!r}; valid models: {', '.join(list_models())}")
    if args.claim:
        if "all" in args.claim:
            args.claim = list(CLAIMS)
        bad = [c for c in args.claim if c not in CLAIMS]
        if bad:
            parser.error(f"unknown claim {bad[0]!r}; valid claims: all, {', '.join(CLAIMS)}")
    bad = [t for t in args.table or () if t not in TABLES]
    if bad:
        parser.error(f"unknown table {bad[0]!r}; valid tables: {', '.join(TABLES)}")
    return args


def _info(args, device, **fields) -> dict:
    info = machine_info(device)
    info.update(recipe=args.recipe, seeds=args.seeds, batch_size=args.batch_size,
                command=" ".join(["python", "benchmarks/compare.py", *args.argv]), **fields)
    return info


def claims_markdown(rows: list[dict]) -> str:
    """The claims table of the README and docs/benchmarks.md, from claims-*.json's rows: one
    row per claim, every variant's mean +- std and seeds, the verdict and the command."""
    lines = ["| claim (paper) | what the paper finds | measured here (second-order set, 3 epochs, "
             "test top-1 %, mean +- std) | verdict | command |", "|---|---|---|---|---|"]
    for s in claims_summary(rows, list(CLAIMS)):
        claim, cells = CLAIMS[s["claim"]], []
        for v in claim.variants:
            accs = [r["test_top1"] for r in rows
                    if r["group"] == s["claim"] and r["variant"] == v.label]
            if accs:
                mean, std = _stats(accs)
                cells.append(f"{v.label}: {mean:.2f} +- {std:.2f} ({len(accs)} seeds)")
            else:
                cells.append(f"{v.label}: not run yet")
        verdict = s["verdict"]
        if verdict == "incomplete":
            runs = sum(1 for r in rows if r["group"] == s["claim"])
            verdict = f"not judged yet ({runs} of {MIN_SEEDS * len(claim.variants)} runs)"
        lines.append(f"| {s['paper']} | {s['text']} | {'; '.join(cells)} | {verdict} | "
                     f"`{s['command']}` |")
    return "\n".join(lines)


def sweep_markdown(summary: list[dict]) -> str:
    """The sweep's table of the README and docs/benchmarks.md: a row per dataset and backbone,
    a column per pooling, test top-1 mean +- std (seeds in the header)."""
    seeds = sorted({s["seeds"] for s in summary})
    lines = [f"| dataset | backbone | {' | '.join(POOLINGS)} |",
             "|---|---|" + "---|" * len(POOLINGS)]
    for dataset in dict.fromkeys(s["dataset"] for s in summary):
        for label, _, _ in BACKBONES:
            cells = {s["pooling"]: s for s in summary
                     if s["dataset"] == dataset and s["backbone"] == label}
            if cells:
                row = [f"{cells[p]['test_top1']:.1f} +- {cells[p]['test_top1_std']:.1f}"
                       if p in cells else "-" for p in POOLINGS]
                lines.append(f"| {dataset} | {label} | {' | '.join(row)} |")
    lines.append(f"\nTest top-1 %, mean +- std over {'/'.join(map(str, seeds))} seeds.")
    return "\n".join(lines)


#: The pages whose tables ``--markdown --write`` regenerates, between the marker comments
#: ``<!-- compare.py --markdown: NAME -->`` and ``<!-- end NAME -->``.
PAGES = (RESULTS_DIR.parent.parent / "README.md",
         RESULTS_DIR.parent.parent / "docs" / "benchmarks.md")


def _replace_block(text: str, name: str, table: str) -> str:
    start, end = f"<!-- compare.py --markdown: {name} -->\n", f"<!-- end {name} -->"
    if start not in text:
        return text
    head, rest = text.split(start, 1)
    if end not in rest:
        raise ValueError(f"{start.strip()} has no {end} after it")
    return head + start + table + "\n" + end + rest.split(end, 1)[1]


def main_markdown(args) -> int:
    """Print the claims and sweep tables from the committed JSON (no training); ``--write``
    puts them between the marker comments of :data:`PAGES`."""
    out_dir = args.out or RESULTS_DIR
    tables = {"claims": claims_markdown(
        json.loads((out_dir / "claims-cpu.json").read_text())["rows"])}
    sweep = out_dir / "sweep-cpu.json"
    if sweep.exists():
        tables["sweep"] = sweep_markdown(sweep_summary(json.loads(sweep.read_text())["rows"]))
    print("\n\n".join(tables.values()))
    for page in PAGES if args.write else ():
        text = page.read_text()
        for name, table in tables.items():
            text = _replace_block(text, name, table)
        page.write_text(text)
        print(f"wrote the tables of {page}")
    return 0


def main_claims(args, device) -> int:
    out_dir = args.out or RESULTS_DIR
    info = _info(args, device, budgets=BUDGETS if not args.quick else "quick")
    results = Results(out_dir / f"claims-{'cuda' if device.type == 'cuda' else 'cpu'}.json", info)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.claim:
            claim = CLAIMS[name]
            for variant in claim.variants:
                for seed in range(args.seeds):
                    _run_row(args, results, name, variant, claim.dataset, seed, Path(tmp),
                             summary=claims_summary(results.rows, list(CLAIMS)))
    summary = claims_summary(results.rows, list(CLAIMS))
    results.save(summary=summary)
    print(f"\n{machine_label(info)}; budgets {info['budgets']}")
    print(markdown_table([s for s in summary if s["claim"] in args.claim], [
        ("paper", "paper", ""), ("text", "claim", ""), ("measured", "measured (top-1 %)", ""),
        ("verdict", "verdict", ""), ("command", "command", "")]))
    return 0


def main_tables(args, device) -> int:
    out_dir = args.out or RESULTS_DIR
    info = _info(args, device, budgets=BUDGETS if not args.quick else "quick")
    results = Results(out_dir / f"heads-{'cuda' if device.type == 'cuda' else 'cpu'}.json", info)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.table:
            for variant in TABLES[name]:
                for seed in range(args.seeds):
                    _run_row(args, results, name, variant, "second_order", seed, Path(tmp),
                             summary=table_summary(results.rows))
    summary = table_summary(results.rows)
    results.save(summary=summary)
    print(markdown_table([s for s in summary if s["table"] in args.table], [
        ("table", "table", ""), ("variant", "variant", ""), ("test_top1", "test top-1 %", ".2f"),
        ("test_top1_std", "+- (std)", ".2f"), ("seeds", "seeds", "")]))
    return 0


def main_sweep(args, device) -> int:
    from gsoplib.viz.sweep import sweep_figure

    out_dir = args.out or RESULTS_DIR
    info = _info(args, device, budgets=BUDGETS if not args.quick else "quick",
                 backbones=[list(b) for b in BACKBONES], poolings=list(POOLINGS))
    results = Results(out_dir / f"sweep-{'cuda' if device.type == 'cuda' else 'cpu'}.json", info)
    backbones = BACKBONES[:2] if args.quick else BACKBONES
    datasets = ["second_order"] if args.quick else args.datasets
    with tempfile.TemporaryDirectory() as tmp:
        for dataset in datasets:
            for label, layers, widths in backbones:
                for pooling in POOLINGS:
                    variant = Variant(pooling, "small_vanilla", sweep_kwargs(layers, widths,
                                                                             pooling))
                    for seed in range(args.seeds):
                        _run_row(args, results, label, variant, dataset, seed, Path(tmp),
                                 summary=sweep_summary(results.rows))
    summary = sweep_summary(results.rows)
    results.save(summary=summary)
    args.figure.parent.mkdir(parents=True, exist_ok=True)
    sweep_figure(summary, [b[0] for b in BACKBONES]).savefig(args.figure, dpi=110)
    print(markdown_table(summary, [
        ("dataset", "dataset", ""), ("backbone", "backbone", ""), ("pooling", "pooling", ""),
        ("test_top1", "test top-1 %", ".2f"), ("test_top1_std", "+- (std)", ".2f"),
        ("params", "params", ",")]))
    print(f"wrote {results.path} and {args.figure}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse(argv)
    args.argv = argv
    if args.markdown:
        return main_markdown(args)
    device = resolve_device(args.device)
    if args.claim:
        return main_claims(args, device)
    if args.sweep:
        return main_sweep(args, device)
    if args.table:
        return main_tables(args, device)
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
    info = _info(args, device, epochs=args.epochs, train_subset=args.train_subset,
                 test_subset=args.test_subset)
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
