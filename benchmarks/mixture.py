"""GM-SOP head speed: sparse dispatch against running every component (GM-SOP Sec. 3.2, Table 2).

    python benchmarks/mixture.py                # CPU, and CUDA when present
    python benchmarks/mixture.py --quick        # tiny shapes, a smoke run

Forward+backward time of one training step (train mode, gate noise on, balance loss added) for
    GM-SOP-16-8 (dispatch)       the method: each sample runs only its 8 chosen components
    GM-SOP-16-8 (dense masked)   all 16 components on every sample, weighted by the sparse gate
    GM-SOP-16-8 (dispatch, GAP gate)  the same with the cheap global-average gating branch
    Ave-SOP-16                   all 16 components, equal weights (no gate)
    SR-SOP                       one parametric SR-SOP component (the single-CM baseline)
at two levels: the head alone on the last feature map of the modified ResNet-18 (128 channels,
16 x 16 for SOP heads at 64 x 64 input; GM-SOP Table 1), and the whole network on 64 x 64 images
when ``gsoplib.models`` provides the GM-SOP zoo. The paper compares whole networks ("more than
2 times faster" than Ave-SOP-16, "about 2 times slower" than SR-SOP). Ratios are taken against
Ave-SOP-16 and SR-SOP measured in the same run, timed round-robin (one step of each variant per
round) so that drifting load on a shared machine hits every variant alike.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (  # noqa: E402
    devices,
    machine_info,
    machine_label,
    markdown_table,
    round_robin_medians,
    write_json,
)

from gsoplib.heads.mixture import (  # noqa: E402
    AverageMixtureHead,
    ComponentHead,
    GatedMixtureHead,
)

GM, DENSE, GAP_GATE, AVE, SINGLE = (
    "GM-SOP-16-8 (dispatch)",
    "GM-SOP-16-8 (dense masked)",
    "GM-SOP-16-8 (dispatch, GAP gate)",
    "Ave-SOP-16",
    "SR-SOP",
)
# The targets for GM-SOP-16-8 (dispatch): time ratio against each baseline.
TARGETS = {"x_vs_ave": (AVE, 0.6), "x_vs_single": (SINGLE, 2.5)}


def head_variants(channels: int, num_classes: int) -> dict[str, nn.Module]:
    return {
        GM: GatedMixtureHead(channels, "sop", 16, 8, num_classes=num_classes),
        DENSE: GatedMixtureHead(channels, "sop", 16, 8, num_classes=num_classes, execution="dense"),
        GAP_GATE: GatedMixtureHead(
            channels, "sop", 16, 8, num_classes=num_classes, gate_branch="gap"
        ),
        AVE: AverageMixtureHead(channels, "sop", 16, num_classes=num_classes),
        SINGLE: ComponentHead(channels, "sop", num_classes=num_classes),
    }


NETWORK_MODELS = {
    GM: ("resnet18_gmsop_16_8", {}),
    DENSE: ("resnet18_gmsop_16_8", {"head_kwargs": {"execution": "dense"}}),
    GAP_GATE: ("resnet18_gmsop_16_8", {"head_kwargs": {"gate_branch": "gap"}}),
    AVE: ("resnet18_avesop_16", {}),
    SINGLE: ("resnet18_psrsop", {}),
}


def network_variants(num_classes: int) -> dict[str, nn.Module] | str:
    """The whole modified ResNet-18 per variant, or the reason it cannot be built here."""
    try:
        from gsoplib.models import create_model
    except ImportError as err:
        return f"gsoplib.models is not available ({err})"
    models = {}
    for method, (name, kw) in NETWORK_MODELS.items():
        try:
            models[method] = create_model(name, num_classes=num_classes, **kw)
        except (KeyError, ValueError, TypeError) as err:
            return f"cannot build {name} with {kw} ({err})"
    return models


def train_step(model: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def step() -> None:
        model.zero_grad(set_to_none=True)
        logits, aux = model(x, return_aux=True)
        (logits.logsumexp(dim=1).mean() + aux).backward()

    return step


def measure(
    level: str,
    models: dict[str, nn.Module],
    x: torch.Tensor,
    device: torch.device,
    warmup: int,
    repeats: int,
) -> list[dict]:
    for model in models.values():
        model.to(device).train()
    seconds = round_robin_medians(
        {name: train_step(model, x) for name, model in models.items()}, device, warmup, repeats
    )
    rows = []
    for name, model in models.items():
        rows.append(
            {
                "level": level,
                "method": name,
                "input": "x".join(str(s) for s in x.shape),
                "params_M": sum(p.numel() for p in model.parameters()) / 1e6,
                "fwd_bwd_ms": seconds[name] * 1e3,
                "x_vs_ave": seconds[name] / seconds[AVE],
                "x_vs_single": seconds[name] / seconds[SINGLE],
            }
        )
    return rows


COLUMNS = [
    ("level", "level", "s"),
    ("method", "method", "s"),
    ("input", "input", "s"),
    ("params_M", "params (M)", ".2f"),
    ("fwd_bwd_ms", "fwd+bwd ms", ".1f"),
    ("x_vs_ave", "x Ave-SOP-16", ".2f"),
    ("x_vs_single", "x SR-SOP", ".2f"),
]


def target_lines(rows: list[dict]) -> list[str]:
    lines = []
    for row in rows:
        if row["method"] != GM:
            continue
        for key, (baseline, limit) in TARGETS.items():
            verdict = "met" if row[key] <= limit else "missed"
            lines.append(
                f"- {row['level']}: GM-SOP-16-8 takes {row[key]:.2f} x the time of {baseline}"
                f" (target <= {limit}): {verdict}"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--device", default="auto", help="auto (CPU and CUDA if present), cpu, cuda"
    )
    parser.add_argument("--batch", type=int, default=None, help="batch (default CPU 32, CUDA 256)")
    parser.add_argument("--map", type=int, default=16, help="side of the head's input map")
    parser.add_argument("--num-classes", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds (median)")
    parser.add_argument(
        "--level", choices=["head", "network", "both"], default="both", help="what to time"
    )
    parser.add_argument("--quick", action="store_true", help="tiny shapes: a smoke run")
    parser.add_argument("--out", type=Path, default=None, help="results folder")
    args = parser.parse_args(argv)
    for device in devices(args.device):
        torch.manual_seed(0)
        batch = args.batch or (256 if device.type == "cuda" else 32)
        side, classes, repeats, warmup = args.map, args.num_classes, args.repeats, 2
        if args.quick:
            batch, side, classes, repeats, warmup = 4, 4, 10, 2, 1
        info = machine_info(device)
        info.update(batch=batch, repeats=repeats)
        feats = torch.randn(batch, 128, side, side, device=device)
        rows = []
        if args.level in ("head", "both"):
            rows += measure("head", head_variants(128, classes), feats, device, warmup, repeats)
        notes = []
        if args.level in ("network", "both") and not args.quick:
            models = network_variants(classes)
            if isinstance(models, str):
                notes.append(f"network level skipped: {models}")
            else:
                images = torch.randn(batch, 3, 64, 64, device=device)
                rows += measure("network", models, images, device, warmup, repeats)
        info["notes"] = notes
        path = write_json("mixture", info, rows, **({"out_dir": args.out} if args.out else {}))
        print(f"\n### GM-SOP-16-8 forward+backward, batch {batch} ({machine_label(info)})\n")
        print(markdown_table(rows, COLUMNS))
        print("\n" + "\n".join(target_lines(rows) + [f"- {n}" for n in notes]))
        print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
