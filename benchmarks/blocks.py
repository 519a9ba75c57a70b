"""Cost of the attention blocks and heads inside whole networks (issue: GSoP-Net models).

    python benchmarks/blocks.py               # CPU, and CUDA when present
    python benchmarks/blocks.py --quick       # small batch, the small ResNets only

For each variant of the small ResNet-20 (28x28 grey input) and of ResNet-26 (GSoP-Net Table 3;
112x112 input on CPU to keep the run short, 224x224 on CUDA): forward+backward time of one
training step, the bytes autograd saves for backward, and on CUDA the peak allocated memory.
Each is also a ratio to the vanilla network of the same family, measured in the same run with
the variants timed round-robin, so machine noise hits them all alike. The paper reports GSoP-Net1
at 1.06x and GSoP-Net2 at 1.13x vanilla inference time for ResNet-50 on a GTX 1080 Ti (Table 5).
"""

from __future__ import annotations

import argparse
import sys
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
    saved_tensor_bytes,
    write_json,
)

from gsoplib.models import create_model  # noqa: E402

VARIANTS = {
    "vanilla": "",
    "SE": "_se",
    "CBAM": "_cbam",
    "GSoP channel (Net1)": "_gsop1",
    "GSoP position": "_gsop_pos",
    "iSQRT-COV head": "_isqrt",
    "GSoP-Net2": "_gsop2",
}
FAMILIES = {  # name prefix, in_chans, input size on CPU, on CUDA, batch on CPU, on CUDA
    "small ResNet-20": ("small", 1, 28, 28, 128, 256),
    "ResNet-26": ("resnet26", 3, 112, 224, 8, 64),
}


def model_name(prefix: str, suffix: str) -> str:
    return "small_vanilla" if prefix == "small" and not suffix else prefix + suffix


def train_step(model: nn.Module, x: torch.Tensor):
    def step() -> None:
        model.zero_grad(set_to_none=True)
        model(x).logsumexp(dim=1).mean().backward()

    return step


def peak_cuda_bytes(step, device: torch.device) -> int:
    torch.cuda.synchronize(device)
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    step()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - base


def measure_family(family: str, device: torch.device, quick: bool, repeats: int) -> list[dict]:
    prefix, chans, size_cpu, size_cuda, batch_cpu, batch_cuda = FAMILIES[family]
    size = size_cuda if device.type == "cuda" else size_cpu
    batch = (batch_cuda if device.type == "cuda" else batch_cpu) // (4 if quick else 1)
    torch.manual_seed(0)
    x = torch.randn(batch, chans, size, size, device=device)
    models = {
        label: create_model(model_name(prefix, suffix), num_classes=10, in_chans=chans)
        .to(device)
        .train()
        for label, suffix in VARIANTS.items()
    }
    steps = {label: train_step(m, x) for label, m in models.items()}
    seconds = round_robin_medians(steps, device, warmup=1 if quick else 2, repeats=repeats)
    rows = []
    for label, model in models.items():
        saved = saved_tensor_bytes(lambda model=model: model(x))
        row = {
            "family": family,
            "variant": label,
            "model": model_name(prefix, VARIANTS[label]),
            "batch": batch,
            "input": f"{chans}x{size}x{size}",
            "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
            "step_ms": seconds[label] * 1e3,
            "saved_mb": saved / 2**20,
            "peak_mb": peak_cuda_bytes(steps[label], device) / 2**20
            if device.type == "cuda"
            else None,
        }
        rows.append(row)
    base = next(r for r in rows if r["variant"] == "vanilla")
    for row in rows:
        row["time_ratio"] = row["step_ms"] / base["step_ms"]
        row["saved_ratio"] = row["saved_mb"] / base["saved_mb"]
    return rows


COLUMNS = [
    ("variant", "variant", "s"),
    ("params_m", "params (M)", ".3f"),
    ("step_ms", "fwd+bwd (ms)", ".1f"),
    ("time_ratio", "x vanilla", ".2f"),
    ("saved_mb", "saved for backward (MB)", ".1f"),
    ("saved_ratio", "x vanilla", ".2f"),
    ("peak_mb", "peak CUDA (MB)", ".0f"),
]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="auto", help="auto (CPU + CUDA if any), cpu, cuda")
    parser.add_argument("--quick", action="store_true", help="small batch, small ResNets only")
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds per variant")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--out", type=Path, help="folder for the JSON (default benchmarks/results)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    families = ["small ResNet-20"] if args.quick else list(FAMILIES)
    for device in devices(args.device):
        info = machine_info(device)
        rows = []
        for family in families:
            repeats = 2 if args.quick else args.repeats
            family_rows = measure_family(family, device, args.quick, repeats)
            rows += family_rows
            first = family_rows[0]
            print(f"\n### {family}, batch {first['batch']}, input {first['input']}, "
                  f"{machine_label(info)}\n")
            print(markdown_table(family_rows, COLUMNS))
        kwargs = {"out_dir": args.out} if args.out else {}
        print("\nwrote", write_json("blocks" + ("-quick" if args.quick else ""), info, rows,
                                    **kwargs))


if __name__ == "__main__":
    main()
