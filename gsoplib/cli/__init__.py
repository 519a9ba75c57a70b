"""`gsop`: the command line. Each subcommand is a thin layer over the library.

    gsop train --model small_gsop1 --dataset fashion_mnist --epochs 8 --out runs/gsop1
    gsop eval --checkpoint runs/gsop1/model.safetensors
    gsop inspect shirt.png --checkpoint fmnist_small_gsop1
    gsop bench --models small_vanilla small_gsop1
    gsop convert gsopnet1.pth.tar --from gsop-net --model resnet50_gsop1 --out gsop1.safetensors
    gsop explore
Several GPUs: torchrun --nproc-per-node N -m gsoplib.cli train ...
"""

from __future__ import annotations

import argparse
import os
import sys

from .bench import _add_bench, throughput
from .common import UserError, _Parser
from .convert import _add_convert
from .evaluate import _add_eval
from .explore import _add_explore, explorer_app
from .inspect_image import _add_inspect
from .train import _add_train


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="gsop",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_train(sub)
    _add_eval(sub)
    _add_inspect(sub)
    _add_bench(sub)
    _add_convert(sub)
    _add_explore(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    from gsoplib.checkpoint import CheckpointError
    from gsoplib.data import DatasetNotFoundError

    try:
        return args.func(args)
    except (UserError, CheckpointError, DatasetNotFoundError, FileExistsError, ValueError) as err:
        if os.environ.get("GSOP_DEBUG"):
            raise
        print(f"gsop {args.command}: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2


__all__ = ["UserError", "build_parser", "explorer_app", "main", "throughput"]
