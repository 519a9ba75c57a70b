"""`gsop bench`: images per second of training and inference, model by model."""

from __future__ import annotations

import argparse

from .common import UserError, _model_names, _set_threads


def throughput(model, x, y, amp: bool, steps: int) -> tuple[float, float]:
    """Images/s of a training step (forward, backward, SGD) and of inference: the batch over the
    median step of ``steps`` after a warm-up (:func:`gsoplib.timing.median_time`)."""
    import torch
    import torch.nn.functional as F

    from gsoplib.timing import median_time

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
        return len(x) / median_time(fn, device, warmup=1, repeats=steps)

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
