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
import importlib.util
import json
import os
import shlex
import signal
import subprocess
import sys
import textwrap
from pathlib import Path


def explorer_app() -> Path:
    """The explorer's entry script, ``app.py`` of the package ``gsoplib.explorer`` (explorer/ in
    a checkout, gsoplib/explorer/ in an installed wheel). Raises FileNotFoundError in one
    sentence when this gsoplib was installed without it."""
    spec = importlib.util.find_spec("gsoplib.explorer")
    app = Path(spec.origin).parent / "app.py" if spec and spec.origin else None
    if app is None or not app.is_file():
        raise FileNotFoundError(
            "this gsoplib has no explorer app (gsoplib.explorer/app.py is missing); reinstall "
            "it from a wheel or a checkout: pip install 'gsoplib[app]'"
        )
    return app


class _Formatter(argparse.HelpFormatter):
    """Help wrapped at spaces only, so names like gsop-cifar100 stay whole."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


class _Parser(argparse.ArgumentParser):
    """argparse with errors as one line: no usage block, just what was wrong and the choices."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


class UserError(Exception):
    """Bad input from the command line; printed as one line, exit status 2."""


def _model_names() -> list[str]:
    try:
        from gsoplib.models import list_models
    except ImportError:
        return []
    return list_models()


def _key_values(pairs: list[str], flag: str) -> dict:
    """KEY=VALUE strings -> dict; VALUE parsed as JSON (numbers, true, lists) else kept a string."""
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserError(f"{flag} expects KEY=VALUE, got {pair!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _set_threads(args: argparse.Namespace) -> None:
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)


def _resolve_checkpoint(name: str) -> Path:
    """A checkpoint path, or the file of a bundled checkpoint of that name."""
    from gsoplib.pretrained import resolve_checkpoint

    try:
        return resolve_checkpoint(name)
    except ValueError as error:
        raise UserError(f"--checkpoint {error}") from None


# -- train ---------------------------------------------------------------------------------------


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


# -- eval ----------------------------------------------------------------------------------------


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


# -- inspect -------------------------------------------------------------------------------------


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


# -- bench ---------------------------------------------------------------------------------------


def throughput(model, x, y, amp: bool, steps: int) -> tuple[float, float]:
    """Images/s of a training step (forward, backward, SGD) and of inference, after a warm-up."""
    import time

    import torch
    import torch.nn.functional as F

    device = x.device
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            logits, aux = model(x, return_aux=True)
        loss = F.cross_entropy(logits.float(), y) + aux
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    @torch.no_grad()
    def infer():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            model(x)

    def rate(fn) -> float:
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        begin = time.perf_counter()
        for _ in range(steps):
            fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return steps * len(x) / (time.perf_counter() - begin)

    model.train()
    train_rate = rate(step)
    model.eval()
    return train_rate, rate(infer)


def _cmd_bench(args: argparse.Namespace) -> int:
    import torch

    from gsoplib.models import count_parameters, create_model
    from gsoplib.registry import unknown
    from gsoplib.train.distributed import resolve_device

    _set_threads(args)
    device = resolve_device(args.device)
    names = args.models or _model_names()
    missing = [n for n in names if n not in _model_names()]
    if missing:
        raise UserError(str(unknown("model", missing[0], _model_names())))
    size = args.image_size
    x = torch.randn(args.batch_size, args.in_chans, size, size, device=device)
    y = torch.randint(0, args.num_classes, (args.batch_size,), device=device)
    amp = device.type == "cuda" if args.amp is None else args.amp

    rows = []
    for name in names:
        torch.manual_seed(0)
        model = create_model(name, num_classes=args.num_classes, in_chans=args.in_chans)
        train_rate, infer_rate = throughput(model.to(device), x, y, amp, args.steps)
        params = count_parameters(model)
        rows.append((name, params, train_rate, infer_rate))
    print(f"device {device}, batch {args.batch_size}, {args.in_chans}x{size}x{size}, amp {amp}")
    print(f"{'model':<24}{'params':>12}{'train img/s':>14}{'infer img/s':>14}")
    for name, params, train_rate, infer_rate in rows:
        print(f"{name:<24}{params:>12,}{train_rate:>14.0f}{infer_rate:>14.0f}")
    return 0


def _add_bench(sub) -> None:
    p = sub.add_parser(
        "bench",
        help="measure training and inference throughput of models",
        description="Images per second of a training step (forward, backward, SGD) and of "
        "inference, on random data, for each model.",
    )
    p.add_argument("--models", nargs="+", metavar="NAME", help="models to measure (default: all)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--batch-size", type=int, default=128, help="batch size (default 128)")
    p.add_argument("--image-size", type=int, default=28, help="input side (default 28)")
    p.add_argument("--in-chans", type=int, default=1, help="input channels (default 1)")
    p.add_argument("--num-classes", type=int, default=10, help="classes (default 10)")
    p.add_argument("--steps", type=int, default=10, help="timed steps after one warm-up")
    p.add_argument(
        "--amp", action=argparse.BooleanOptionalAction, default=None, help="bf16 autocast"
    )
    p.add_argument("--threads", type=int, help="CPU threads for torch")
    p.set_defaults(func=_cmd_bench)


# -- convert -------------------------------------------------------------------------------------


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


# -- explore -------------------------------------------------------------------------------------


def _cmd_explore(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("streamlit") is None:
        raise UserError("the explorer needs Streamlit, which is not installed here; install the "
                        "app extras: pip install 'gsoplib[app]'")
    try:
        app = explorer_app()
    except FileNotFoundError as error:
        raise UserError(str(error)) from None
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app),
        "--server.port",
        str(args.port),
        # A specific address also keeps a headless streamlit from looking up this machine's
        # external IP on the network at start-up; 0.0.0.0 serves every interface.
        "--server.address",
        args.address,
        "--browser.gatherUsageStats",
        "false",
        # No "Deploy" button: the app is served by gsop explore, not deployed to a cloud.
        "--client.toolbarMode",
        "viewer",
    ]
    if args.headless:
        command += ["--server.headless", "true"]
    if args.checkpoint is not None:
        _resolve_checkpoint(args.checkpoint)  # one clear line now rather than an error in the app
        command += ["--", "--checkpoint", args.checkpoint]
    return _run_forwarding_signals(command)


FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT)

#: Linux's prctl option that sends the calling process a signal when its parent dies.
PR_SET_PDEATHSIG = 1
#: Run before the command, in the child: ask for SIGTERM when the parent dies, then exit at once
#: if the parent is already gone (it died between the fork and the prctl), else exec the command.
_DIE_WITH_PARENT = (
    "import ctypes, os, signal, sys; "
    f"ctypes.CDLL(None, use_errno=True).prctl({PR_SET_PDEATHSIG}, signal.SIGTERM); "
    "os.getppid() == int(sys.argv[1]) or os._exit(1); "
    "os.execv(sys.argv[2], sys.argv[2:])"
)


def _dying_with_parent(command: list[str]) -> list[str]:
    """``command`` run so that it gets SIGTERM when this process dies, however it dies (SIGKILL,
    the OOM killer included): Linux's PR_SET_PDEATHSIG, set by a small Python shim that then
    execs the command (the setting survives exec). Elsewhere ``command`` unchanged: a SIGKILL
    of gsop explore there leaves its server running (SIGTERM and SIGINT are still forwarded)."""
    if not sys.platform.startswith("linux"):
        return command
    return [sys.executable, "-c", _DIE_WITH_PARENT, str(os.getpid()), *command]


def _run_forwarding_signals(command: list[str]) -> int:
    """Run ``command`` as a child and wait for it, passing SIGTERM and SIGINT on to it.

    What a supervisor, ``timeout`` or a container stop sends reaches only this process; passed
    on, the server shuts down and frees its port instead of outliving us. A SIGKILL cannot be
    caught: on Linux the child is then sent SIGTERM by the kernel (:func:`_dying_with_parent`).
    Returns the child's exit status, 128 + N when signal N ended it (as a shell reports it).
    """
    child = None
    pending = []  # signals that came before the child existed

    def forward(signum, _frame) -> None:
        if child is None:
            pending.append(signum)
        else:
            child.send_signal(signum)

    previous = {signum: signal.signal(signum, forward) for signum in FORWARDED_SIGNALS}
    try:
        child = subprocess.Popen(_dying_with_parent(command))
        for signum in pending:
            child.send_signal(signum)
        code = child.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 128 - code if code < 0 else code


def _add_explore(sub) -> None:
    explore = sub.add_parser("explore", help="launch the Streamlit explorer")
    explore.add_argument("--port", type=int, default=8501, help="port to serve on (default 8501)")
    explore.add_argument(
        "--address",
        default="127.0.0.1",
        help="address to serve on (default 127.0.0.1, this machine only; 0.0.0.0 for all)",
    )
    explore.add_argument("--headless", action="store_true", help="do not open a browser")
    explore.add_argument(
        "--checkpoint",
        help="bundled checkpoint name or .safetensors path to open (default: pick in the app)",
    )
    explore.set_defaults(func=_cmd_explore)


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


if __name__ == "__main__":
    raise SystemExit(main())
