"""`gsop eval`: a checkpoint's accuracy on a dataset's test split."""

from __future__ import annotations

import argparse
import json

from .common import UserError, _key_values, _resolve_checkpoint, _set_threads


def _cmd_eval(args: argparse.Namespace) -> int:
    from gsoplib.checkpoint import load_checkpoint
    from gsoplib.data import load_dataset, make_loader
    from gsoplib.train import evaluate
    from gsoplib.train.distributed import resolve_device

    _set_threads(args)
    device = resolve_device(args.device)
    ck = load_checkpoint(_resolve_checkpoint(args.checkpoint), device)
    data = ck.meta["data"]
    name = args.dataset or data["name"]
    if not name:
        raise UserError(f"{ck.path} records no dataset; pass --dataset")
    options = _key_values(args.data_option, "--data-option")
    if not options and name == data["name"]:
        options = dict(data.get("options", {}))  # the trainer records reader options only
    split = load_dataset(name, args.split == "train", args.data_root, **options)
    if list(split.info.classes) != ck.classes:
        raise UserError(
            f"{name} has classes {list(split.info.classes)[:4]}..., the checkpoint "
            f"{ck.classes[:4]}...; evaluate on the dataset it was trained on"
        )
    loader = make_loader(split, args.batch_size, train=False, device=device)
    metrics = evaluate(ck.model, loader, amp=device.type == "cuda" and args.amp is not False)
    stored = ck.metrics.get("test_top1")
    result = {"checkpoint": str(ck.path), "dataset": name, "split": args.split, **metrics}
    if stored is not None:
        result["stored_test_top1"] = stored
    print(json.dumps(result, sort_keys=True))
    return 0


def _add_eval(sub) -> None:
    p = sub.add_parser(
        "eval",
        help="evaluate a checkpoint on its dataset",
        description="Evaluate a checkpoint (loss, top-1, top-5) on the test split of the dataset "
        "recorded in its metadata, and print the result as one JSON line.",
    )
    p.add_argument(
        "--checkpoint", required=True, help="a .safetensors file or a bundled checkpoint name"
    )
    p.add_argument("--dataset", help="dataset (default: the one recorded in the checkpoint)")
    p.add_argument("--data-root", help="folder holding the dataset (default: GSOP_DATA, cache)")
    p.add_argument(
        "--data-option", action="append", metavar="KEY=VALUE", help="dataset option, repeatable"
    )
    p.add_argument("--split", choices=["test", "train"], default="test", help="default test")
    p.add_argument("--batch-size", type=int, default=512, help="evaluation batch size")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument(
        "--amp", action=argparse.BooleanOptionalAction, default=None, help="bf16 on CUDA"
    )
    p.add_argument("--threads", type=int, help="CPU threads for torch")
    p.set_defaults(func=_cmd_eval)
