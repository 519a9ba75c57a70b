"""`gsop train`: a model of the zoo, or a pretrained backbone, trained on a dataset."""

from __future__ import annotations

import argparse
import json
import shlex

from .common import UserError, _key_values, _model_names, _set_threads


def _cmd_train(args: argparse.Namespace) -> int:
    from gsoplib.train import TrainConfig, Trainer

    _set_threads(args)
    overrides = {
        key: getattr(args, key)
        for key in (
            "epochs",
            "batch_size",
            "lr",
            "momentum",
            "weight_decay",
            "schedule",
            "milestones",
            "gamma",
            "warmup_epochs",
            "label_smoothing",
        )
        if getattr(args, key) is not None
    }
    for key in ("nesterov", "augment"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    if (args.model is None) == (args.backbone is None):
        raise UserError("give --model NAME (a network of the zoo) or --backbone SOURCE:NAME "
                        "(a pretrained torchvision or timm ResNet), one of the two")
    if args.weights and not args.backbone:
        raise UserError("--weights goes with --backbone (the pretrained network it holds)")
    model = args.model or args.backbone
    model_kwargs = _key_values(args.model_kw, "--model-kw")
    for key in ("blocks", "head", "last_stride"):
        if getattr(args, key) is not None:
            model_kwargs[key] = getattr(args, key)
    out = args.out or f"runs/{model.replace(':', '_')}-{args.dataset}"
    config = TrainConfig(
        model=model,
        weights=args.weights,
        dataset=args.dataset,
        out_dir=out,
        recipe=args.recipe,
        model_kwargs=model_kwargs,
        data_root=args.data_root,
        data_options=_key_values(args.data_option, "--data-option"),
        train_subset=args.train_subset,
        test_subset=args.test_subset,
        aux_weight=args.aux_weight,
        grad_clip=args.grad_clip,
        amp=args.amp,
        channels_last=args.channels_last,
        compile=args.compile,
        seed=args.seed,
        deterministic=args.deterministic,
        device=args.device,
        workers=args.workers,
        resident=args.resident,
        progress=not args.no_progress,
        **overrides,
    )
    trainer = Trainer(config, command=shlex.join(["gsop", *args.argv]))
    if args.no_progress and trainer.ctx.is_main:
        print(trainer.plan, flush=True)
    final = trainer.fit(resume=args.resume)
    if trainer.ctx.is_main:
        print(json.dumps({"out_dir": out, **final}, sort_keys=True))
    return 0


def _add_train(sub) -> None:
    from gsoplib.data import list_datasets
    from gsoplib.train import list_recipes

    models = _model_names()
    p = sub.add_parser(
        "train",
        help="train a model on a dataset",
        description="Train a model with SGD; writes model.safetensors, metrics.jsonl, "
        "metrics.png and resume.pt to --out after every epoch.",
        epilog="Example: gsop train --model small_gsop1 --dataset fashion_mnist --epochs 8 "
        "--out runs/gsop1. Fine-tuning: gsop train --backbone torchvision:resnet50 --weights "
        "resnet50.pth --blocks C,C,C,C --head isqrt --last-stride 1 --recipe finetune "
        "--dataset imagefolder --data-root birds. Several GPUs: torchrun --nproc-per-node N -m "
        "gsoplib.cli train ...",
    )
    p.add_argument(
        "--model",
        choices=models or None,
        metavar="NAME",
        help=f"model to build, one of: {', '.join(models) or '(gsoplib.models is not built)'}",
    )
    p.add_argument(
        "--backbone",
        metavar="SOURCE:NAME",
        help="instead of --model: a pretrained ResNet, torchvision:resnet50 (or resnet18 ... "
        "wide_resnet101_2) or timm:NAME, with GSoP blocks by --blocks and the head --head",
    )
    p.add_argument(
        "--weights",
        metavar="NAME|FILE",
        help="the backbone's weights: torchvision's name (IMAGENET1K_V2, DEFAULT) or timm's tag "
        "(a1_in1k, pretrained), read from the cache and downloaded only when missing; or a "
        "file on disk, a torchvision state dict .pth or a .safetensors file",
    )
    p.add_argument("--blocks", metavar="MASK",
                   help="stage mask, e.g. C,C,C,C or -,-,-,√ (default: the model's)")
    p.add_argument("--head", choices=["gap", "isqrt", "gated_mixture", "average_mixture",
                                      "component"], help="the network's head")
    p.add_argument("--last-stride", type=int, choices=[1, 2],
                   help="layer4's stride (1: no downsampling, the second-order networks')")
    p.add_argument(
        "--dataset",
        required=True,
        choices=list_datasets(),
        metavar="NAME",
        help=f"dataset, one of: {', '.join(list_datasets())}",
    )
    p.add_argument(
        "--recipe",
        default="fast",
        choices=list_recipes(),
        metavar="NAME",
        help=f"optimiser and schedule preset (default fast), one of: {', '.join(list_recipes())}; "
        "the flags below override its fields",
    )
    p.add_argument("--epochs", type=int, help="number of epochs (default: the recipe's)")
    p.add_argument(
        "--batch-size", type=int, help="global batch size over all processes (default: recipe's)"
    )
    p.add_argument("--out", help="output folder (default runs/MODEL-DATASET)")
    p.add_argument(
        "--device", default="auto", help="auto (GPU if present, else CPU), cpu, cuda or cuda:N"
    )
    p.add_argument(
        "--resume", action="store_true", help="continue the run saved in --out (resume.pt)"
    )
    opt = p.add_argument_group("optimiser and schedule (override the recipe)")
    opt.add_argument(
        "--lr", type=float,
        help="base learning rate (default: the recipe's, scaled linearly from the recipe's "
        "batch to --batch-size)",
    )
    opt.add_argument("--momentum", type=float, help="SGD momentum")
    opt.add_argument("--weight-decay", type=float, help="L2 weight decay")
    opt.add_argument(
        "--nesterov", action=argparse.BooleanOptionalAction, default=None, help="Nesterov momentum"
    )
    opt.add_argument("--schedule", choices=["step", "cosine", "constant"], help="lr schedule")
    opt.add_argument(
        "--milestones", type=float, nargs="+", help="epochs at which a step schedule decays"
    )
    opt.add_argument("--gamma", type=float, help="step schedule decay factor")
    opt.add_argument("--warmup-epochs", type=float, help="linear warm-up length in epochs")
    opt.add_argument("--label-smoothing", type=float, help="label smoothing of the loss, 0 to 1")
    opt.add_argument(
        "--augment",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="random crop and flip of training images (default: the recipe's)",
    )
    opt.add_argument(
        "--grad-clip", type=float,
        help="clip the gradient norm to this value (default: the recipe's; 0 switches it off)",
    )
    opt.add_argument(
        "--aux-weight",
        type=float,
        default=1.0,
        help="weight of the model's auxiliary loss (GM-SOP balance loss; default 1)",
    )
    run = p.add_argument_group("data and execution")
    run.add_argument("--data-root", help="folder holding the dataset (default: GSOP_DATA, cache)")
    run.add_argument(
        "--data-option",
        action="append",
        metavar="KEY=VALUE",
        help="dataset option, repeatable (e.g. image_size=64, num_train=2000)",
    )
    run.add_argument(
        "--model-kw",
        action="append",
        metavar="KEY=VALUE",
        help="extra model constructor argument, repeatable (value parsed as JSON)",
    )
    run.add_argument("--train-subset", type=int, help="train on a seeded random subset this size")
    run.add_argument("--test-subset", type=int, help="evaluate on a seeded subset this size")
    run.add_argument("--seed", type=int, default=0, help="seed of init, order, augmentation")
    run.add_argument(
        "--amp",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="bf16 autocast (default: on for CUDA, off for CPU)",
    )
    run.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="channels_last memory format (default: on for CUDA)",
    )
    run.add_argument("--compile", action="store_true", help="torch.compile the model")
    run.add_argument(
        "--deterministic", action="store_true", help="deterministic cuDNN (CPU always is)"
    )
    run.add_argument(
        "--resident",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="keep the dataset on the device (default: yes for in-memory datasets)",
    )
    run.add_argument("--workers", type=int, default=2, help="DataLoader workers for streamed data")
    run.add_argument("--threads", type=int, help="CPU threads for torch")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_train)
