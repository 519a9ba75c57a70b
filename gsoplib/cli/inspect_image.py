"""`gsop inspect`: the top-5 for an image and one line per block or head."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import UserError, _resolve_checkpoint


def _cmd_inspect(args: argparse.Namespace) -> int:
    from gsoplib.checkpoint import load_checkpoint
    from gsoplib.probe import probe_image
    from gsoplib.train.distributed import resolve_device

    ck = load_checkpoint(_resolve_checkpoint(args.checkpoint), resolve_device(args.device))
    try:
        inspection = probe_image(ck, Path(args.image))
    except ValueError as error:  # an ImageInputError: missing, not an image, too large
        raise UserError(str(error)) from None
    print(f"{args.image}: {ck.model_name} ({ck.path.name})")
    for rank, (_, name, p) in enumerate(inspection.top[0], 1):
        print(f"  {rank}. {name:<20} {p:7.2%}")
    for line in inspection.summary().splitlines():
        print(f"  {line}")
    return 0


def _add_inspect(sub) -> None:
    p = sub.add_parser(
        "inspect",
        help="classify an image and summarise what every block computed",
        description="Classify IMAGE with a checkpoint: the top-5 classes, then one line per "
        "block or head from gsoplib.probe (channel weights, position maps, gate choices).",
    )
    p.add_argument("image", metavar="IMAGE", help="an image file (PNG, JPEG, ...)")
    p.add_argument(
        "--checkpoint", required=True, help="a .safetensors file or a bundled checkpoint name"
    )
    p.add_argument("--device", default="cpu", help="cpu (default), auto, cuda or cuda:N")
    p.set_defaults(func=_cmd_inspect)
