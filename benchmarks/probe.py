"""Probe + every figure for one 28x28 image (issue 6 target: <= 0.3 s on a CPU).

    python benchmarks/probe.py            # writes benchmarks/results/probe-cpu.json
    python benchmarks/probe.py --quick    # fewer repeats, a smoke run

For each bundled checkpoint (or, with ``--zoo``, each zoo model with random weights at 28x28 and
one channel), the median wall time of:
- ``probe``: ``gsoplib.probe.probe`` on one image (hooks, forward, copies, top-k);
- ``build``: ``gsoplib.viz.figures`` for that image (every Figure object);
- ``render``: drawing every figure to PNG at ``--dpi`` (what the explorer then shows);
- ``total``: the three in a row, the number the target is about.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (  # noqa: E402
    machine_info,
    machine_label,
    markdown_table,
    median_time,
    write_json,
)

from gsoplib import viz  # noqa: E402
from gsoplib.probe import probe  # noqa: E402

TARGET_S = 0.3
GALLERY = Path(__file__).resolve().parent.parent / "explorer" / "gallery"


def bundled() -> list[tuple[str, torch.nn.Module, torch.Tensor, list[str]]]:
    """Each bundled checkpoint with a gallery image of the explorer prepared as the app does
    (a random image where no gallery image fits)."""
    from gsoplib import pretrained
    from gsoplib.data import normalize
    from gsoplib.probe import to_pixels

    gallery = sorted(GALLERY.glob("*.png"))
    out = []
    for name in pretrained.list_pretrained():
        ck = pretrained.load_pretrained(name)
        if gallery:
            pixels = to_pixels(gallery[0], ck.in_chans, tuple(ck.input_size))
            x = normalize(pixels, ck.mean, ck.std)
        else:
            x = torch.randn(1, ck.in_chans, *ck.input_size)
        out.append((name, ck.model, x, list(ck.classes)))
    return out


def zoo(names: list[str] | None) -> list[tuple[str, torch.nn.Module, torch.Tensor, list]]:
    """Zoo models with random weights on one random 1x28x28 image."""
    from gsoplib.models import create_model, list_models

    out = []
    for name in names or [n for n in list_models() if n.startswith("small")]:
        torch.manual_seed(0)
        model = create_model(name, num_classes=10, in_chans=1).eval()
        out.append((name, model, torch.randn(1, 1, 28, 28), [f"class {i}" for i in range(10)]))
    return out


def render(figs: dict, dpi: int) -> None:
    for fig in figs.values():
        viz.to_png(fig, dpi)


def measure(model, x, classes, device, dpi: int, repeats: int) -> dict:
    x, model = x.to(device), model.to(device)
    insp = probe(model, x, class_names=classes)
    figs = viz.figures(insp)
    probe_s = median_time(lambda: probe(model, x, class_names=classes), device, 2, repeats)
    build_s = median_time(lambda: viz.figures(insp), device, 1, repeats)
    render_s = median_time(lambda: render(figs, dpi), torch.device("cpu"), 1, repeats)

    def everything() -> None:
        render(viz.figures(probe(model, x, class_names=classes)), dpi)

    total_s = median_time(everything, device, 1, repeats)
    return {
        "parts": len(insp.parts()),
        "figures": len(figs),
        "probe_ms": probe_s * 1e3,
        "build_ms": build_s * 1e3,
        "render_ms": render_s * 1e3,
        "total_ms": total_s * 1e3,
        "target_ms": TARGET_S * 1e3,
        "meets_target": total_s <= TARGET_S,
    }


def save_figures(model, x, classes, folder: Path) -> None:
    insp = probe(model, x, class_names=classes)
    folder.mkdir(parents=True, exist_ok=True)
    for key, fig in viz.figures(insp).items():
        fig.savefig(folder / (key.replace(": ", "-").replace(" ", "_") + ".png"), dpi=90)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--dpi", type=int, default=72, help="PNG resolution of the render step")
    parser.add_argument("--repeats", type=int, default=7, help="timed repeats (median)")
    parser.add_argument("--zoo", nargs="*", default=None,
                        help="zoo models with random weights instead of the bundled checkpoints "
                             "(no names: every small_* model)")
    parser.add_argument("--quick", action="store_true", help="two repeats: a smoke run")
    parser.add_argument("--out", type=Path, default=None, help="results folder")
    parser.add_argument("--save-figures", type=Path, default=None, metavar="DIR",
                        help="also write every model's figures as DIR/MODEL/NAME.png")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    repeats = 2 if args.quick else args.repeats
    models = zoo(args.zoo) if args.zoo is not None else bundled()
    if not models:
        raise SystemExit("no bundled checkpoints found; pass --zoo to time zoo models instead")
    rows = []
    for name, model, x, classes in models:
        row = {"model": name, "input": "x".join(map(str, x.shape[1:])), "dpi": args.dpi}
        row.update(measure(model, x, classes, device, args.dpi, repeats))
        rows.append(row)
        if args.save_figures:
            save_figures(model, x.to(device), classes, args.save_figures / name)
    info = machine_info(device)
    path = write_json("probe", info, rows, **({"out_dir": args.out} if args.out else {}))
    print(f"{machine_label(info)}; one image, figures rendered at {args.dpi} dpi")
    print(markdown_table(rows, [
        ("model", "model", "s"), ("parts", "parts", "d"), ("figures", "figures", "d"),
        ("probe_ms", "probe ms", ".1f"), ("build_ms", "build ms", ".0f"),
        ("render_ms", "render ms", ".0f"), ("total_ms", "total ms", ".0f"),
        ("meets_target", f"<= {TARGET_S * 1e3:.0f} ms", ""),
    ]))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
