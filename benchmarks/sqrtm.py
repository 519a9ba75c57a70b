"""Matrix square root and covariance: time, saved activations, GFLOP/s (issue: foundation).

    python benchmarks/sqrtm.py                # CPU, and CUDA when present
    python benchmarks/sqrtm.py --quick        # tiny shapes, a smoke run

Rows: forward+backward time and bytes saved for backward of Newton-Schulz with autograd, the
memory-efficient Newton-Schulz (recompute in backward) and eigh, for B in {32, 128} and
n in {64, 128, 256}; the matmul GFLOP/s of NS next to plain torch.bmm on the same shapes; and
`covariance` against the authors' centring-matrix formulation at B=32, C=128, M=784.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (  # noqa: E402
    devices,
    machine_info,
    machine_label,
    markdown_table,
    median_time,
    saved_tensor_bytes,
    write_json,
)

from gsoplib.ops import (  # noqa: E402
    covariance,
    covariance_centring_matrix,
    sqrtm_eigh,
    sqrtm_newton_schulz,
)

METHODS = {
    "NS autograd": lambda a, n: sqrtm_newton_schulz(a, iters=n),
    "NS memory-efficient": lambda a, n: sqrtm_newton_schulz(a, iters=n, memory_efficient=True),
    "eigh": lambda a, n: sqrtm_eigh(a),
}
COVARIANCES = {"covariance": covariance, "centring matrix": covariance_centring_matrix}


def spd(batch: int, n: int, device: torch.device) -> torch.Tensor:
    feats = torch.randn(batch, n, 2 * n, device=device)
    return covariance(feats) + 1e-3 * torch.eye(n, device=device)


def fwd_bwd(fn, a: torch.Tensor, iters: int):
    leaf = a.detach().requires_grad_(True)
    fn(leaf, iters).sum().backward()


def ns_matmul_flops(batch: int, n: int, iters: int, memory_efficient: bool) -> float:
    """Matmul FLOPs of NS forward+backward: 3N-3 products forward, two per product backward,
    plus the forward recomputed in backward on the memory-efficient path."""
    passes = 4 if memory_efficient else 3
    return passes * (3 * iters - 3) * 2.0 * n**3 * batch


def sqrt_rows(device: torch.device, shapes, iters: int, repeats: int) -> list[dict]:
    rows = []
    for batch, n in shapes:
        a = spd(batch, n, device)
        b = torch.randn_like(a)
        chain = max(3 * iters - 3, 1)  # as many products as NS's forward, back to back

        def bmm_chain(a=a, b=b, chain=chain):
            for _ in range(chain):
                torch.bmm(a, b)

        bmm_s = median_time(bmm_chain, device, repeats=max(repeats, 9)) / chain
        bmm_gflops = 2.0 * n**3 * batch / bmm_s / 1e9
        times = {}
        for name, fn in METHODS.items():
            times[name] = median_time(
                lambda fn=fn, a=a: fwd_bwd(fn, a, iters), device, repeats=repeats
            )
            leaf = a.detach().requires_grad_(True)
            saved = saved_tensor_bytes(lambda fn=fn, leaf=leaf: fn(leaf, iters))
            row = {
                "B": batch,
                "n": n,
                "method": name,
                "iters": iters,
                "fwd_bwd_ms": times[name] * 1e3,
                "saved_MB": saved / 2**20,
            }
            if name.startswith("NS"):
                flops = ns_matmul_flops(batch, n, iters, "memory" in name)
                row["gflops"] = flops / times[name] / 1e9
                row["bmm_gflops"] = bmm_gflops
                row["pct_of_bmm"] = 100 * row["gflops"] / bmm_gflops
            rows.append(row)
        for row in rows[-len(METHODS) :]:
            row["x_vs_eigh"] = times["eigh"] / (row["fwd_bwd_ms"] / 1e3)
    return rows


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def _peak_child(kind: str, batch: int, channels: int, m: int) -> None:
    """Run in a fresh process: print the rise of the peak resident set over one fwd+bwd.

    Reads VmHWM from /proc (ru_maxrss would carry the parent's peak across fork and exec) after
    resetting it through /proc/self/clear_refs.
    """
    tiny = torch.randn(2, 4, 9, requires_grad=True)
    COVARIANCES[kind](tiny).sum().backward()  # load the kernels, not the big buffers
    x = torch.randn(batch, channels, m, requires_grad=True)
    Path("/proc/self/clear_refs").write_text("5")
    before = _status_kib("VmRSS")
    COVARIANCES[kind](x).sum().backward()
    print(json.dumps({"peak_rise_bytes": (_status_kib("VmHWM") - before) * 1024}))


def peak_bytes(kind: str, batch: int, channels: int, m: int, device: torch.device) -> int:
    if device.type == "cuda":
        x = torch.randn(batch, channels, m, device=device, requires_grad=True)
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        COVARIANCES[kind](x).sum().backward()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - base
    out = subprocess.run(
        [sys.executable, __file__, "--peak-child", kind, str(batch), str(channels), str(m)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_rise_bytes"]


def covariance_rows(device: torch.device, batch: int, channels: int, m: int, repeats: int):
    x = torch.randn(batch, channels, m, device=device)
    rows = []
    for kind, fn in COVARIANCES.items():

        def step(fn=fn):
            leaf = x.detach().requires_grad_(True)
            fn(leaf).sum().backward()

        rows.append(
            {
                "B": batch,
                "C": channels,
                "M": m,
                "method": kind,
                "fwd_bwd_ms": median_time(step, device, repeats=repeats) * 1e3,
                "peak_MB": peak_bytes(kind, batch, channels, m, device) / 2**20,
            }
        )
    base = rows[1]
    for row in rows:
        row["x_faster_than_centring"] = base["fwd_bwd_ms"] / row["fwd_bwd_ms"]
        row["x_less_memory_than_centring"] = (
            base["peak_MB"] / row["peak_MB"] if row["peak_MB"] > 0 else None
        )
    return rows


SQRT_COLUMNS = [
    ("B", "B", "d"),
    ("n", "n", "d"),
    ("method", "method", "s"),
    ("fwd_bwd_ms", "fwd+bwd ms", ".2f"),
    ("x_vs_eigh", "x faster than eigh", ".2f"),
    ("saved_MB", "saved MB", ".2f"),
    ("gflops", "NS GFLOP/s", ".1f"),
    ("pct_of_bmm", "% of bmm GFLOP/s", ".0f"),
]
COV_COLUMNS = [
    ("method", "method", "s"),
    ("fwd_bwd_ms", "fwd+bwd ms", ".2f"),
    ("peak_MB", "peak MB", ".1f"),
    ("x_faster_than_centring", "x faster", ".2f"),
    ("x_less_memory_than_centring", "x less memory", ".1f"),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--device", default="auto", help="auto (CPU and CUDA if present), cpu, cuda"
    )
    parser.add_argument("--iters", type=int, default=5, help="Newton-Schulz iterations N")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats (median)")
    parser.add_argument("--quick", action="store_true", help="tiny shapes: a smoke run")
    parser.add_argument("--out", type=Path, default=None, help="results folder")
    parser.add_argument("--peak-child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.peak_child:
        kind, *sizes = args.peak_child
        _peak_child(kind, *map(int, sizes))
        return 0
    shapes = [(4, 16)] if args.quick else [(b, n) for b in (32, 128) for n in (64, 128, 256)]
    cov_shape = (4, 16, 49) if args.quick else (32, 128, 784)
    repeats = 2 if args.quick else args.repeats
    for device in devices(args.device):
        info = machine_info(device)
        rows = sqrt_rows(device, shapes, args.iters, repeats)
        cov = covariance_rows(device, *cov_shape, repeats)
        path = write_json("sqrtm", info, rows + cov, **({"out_dir": args.out} if args.out else {}))
        print(f"\n### Matrix square root, N = {args.iters} ({machine_label(info)})\n")
        print(markdown_table(rows, SQRT_COLUMNS))
        print(
            f"\n### Covariance, B={cov_shape[0]} C={cov_shape[1]} M={cov_shape[2]} "
            f"({machine_label(info)})\n"
        )
        print(markdown_table(cov, COV_COLUMNS))
        print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
