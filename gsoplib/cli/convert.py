"""`gsop convert`: the authors' released checkpoints as gsoplib checkpoints."""

from __future__ import annotations

import argparse


def _cmd_convert(args: argparse.Namespace) -> int:
    from gsoplib.convert import convert

    out = convert(args.src, args.source, args.model, args.out)
    print(f"{args.src} ({args.source}) -> {out} ({args.model}, 1000 ImageNet classes, "
          "224x224 after resizing to 256)")
    return 0


def _add_convert(sub) -> None:
    from gsoplib.convert import list_sources

    sources = list_sources()
    choices = "; ".join(f"{src}: {', '.join(models)}" for src, models in sources.items())
    p = sub.add_parser(
        "convert",
        help="turn the authors' released weights into a gsoplib checkpoint",
        description="Convert a GSoP-Net repository .pth.tar (main.py's dict) or a fast-MPN-COV "
        ".pth (a plain state dict) into a .safetensors checkpoint that computes what the "
        "authors' code computes. The file is read with torch.load(weights_only=True): nothing "
        "in it runs.",
        epilog="Example: gsop convert gsopnet1.pth.tar --from gsop-net --model resnet50_gsop1 "
        "--out gsop1.safetensors",
    )
    p.add_argument("src", metavar="SRC", help="the authors' .pth or .pth.tar file")
    p.add_argument("--from", dest="source", required=True, choices=list(sources),
                   help="whose code wrote SRC")
    p.add_argument("--model", required=True, metavar="NAME",
                   help=f"the network SRC holds; {choices}")
    p.add_argument("--out", required=True, metavar="DST", help="the .safetensors file to write")
    p.set_defaults(func=_cmd_convert)
