"""The training loop: plain PyTorch SGD over a dataset, with everything needed to trust a run.

One epoch: per-iteration learning rate from the recipe's schedule, forward under autocast (bf16 on
CUDA), cross-entropy (optionally label-smoothed) plus the model's auxiliary loss (the GM-SOP
balance loss, GM-SOP Eq. 7; zero for other heads) times ``aux_weight``, optional gradient
clipping, SGD step. Then evaluation on the test split, a row of metrics in ``metrics.jsonl``, the
figure ``metrics.png``, the checkpoint ``model.safetensors`` and the resume state ``resume.pt``.
For a model with a GM-SOP gate the row also holds the gate's diagnostics on the test split
(``gate``: usage, chosen sets, class dependence, tie, verdict; :func:`gsoplib.heads.gate.
gate_diagnostics`), and the progress bar shows those of the last training steps.

Reproducible by construction: the model is initialised from ``seed``; the data order, the
augmentation and the global random stream (dropout, gate noise) of every epoch are re-seeded from
(seed, rank, epoch). So a run resumed from the state saved after epoch k repeats, on a CPU, the
very numbers of the run that was never interrupted; a kill loses at most the epoch in progress.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from gsoplib import checkpoint
from gsoplib.data import DataInfo, load_dataset, make_loader
from gsoplib.models import create_model, is_backbone_name, model_kwargs
from gsoplib.models.kwarg_bounds import check_model_kwargs
from gsoplib.taps import taps

from . import distributed
from .config import (
    CHECKPOINT_NAME,
    METRICS_NAME,
    PLOT_INTERVAL_S,
    PLOT_NAME,
    POSTFIX_STEPS,
    STATE_NAME,
    STEPS_NAME,
    TrainConfig,
)
from .evaluation import ComponentUsage, _topk_correct, evaluate, machine
from .log import plot_history, write_jsonl
from .recipes import RECIPES, lr_factor, warmup_steps
from .resume import read_resume_state, resume_state


class Trainer:
    """Trains ``config.model`` on ``config.dataset``; see the module docstring.

    ``model_factory(name, num_classes=..., in_chans=..., **model_kwargs)`` builds the model;
    the default is :func:`gsoplib.models.create_model`. ``command``, the command line that
    started the run, is recorded in the checkpoint's metadata.
    """

    def __init__(
        self,
        config: TrainConfig,
        model_factory: Callable[..., nn.Module] | None = None,
        command: str | None = None,
    ):
        self.config = config
        self.command = command
        self.factory = model_factory or create_model
        self.out_dir = Path(config.out_dir)
        self.ctx = distributed.setup(config.device)
        self.device = self.ctx.device
        cuda = self.device.type == "cuda"
        self.amp = cuda if config.amp is None else config.amp
        self.channels_last = cuda if config.channels_last is None else config.channels_last
        if cuda:
            torch.backends.cudnn.benchmark = not config.deterministic
            torch.backends.cudnn.deterministic = config.deterministic
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        if config.batch_size % self.ctx.world_size:
            raise ValueError(
                f"batch_size {config.batch_size} is not divisible by the {self.ctx.world_size} "
                "processes"
            )

        data_options = dict(config.data_options)
        train_split = load_dataset(config.dataset, True, config.data_root, **data_options)
        test_split = load_dataset(config.dataset, False, config.data_root, **data_options)
        if config.train_subset:
            train_split = train_split.subset(config.train_subset, config.seed)
        if config.test_subset:
            test_split = test_split.subset(config.test_subset, config.seed)
        self.info: DataInfo = train_split.info
        common = dict(
            device=self.device,
            seed=config.seed,
            rank=self.ctx.rank,
            world_size=self.ctx.world_size,
            resident=config.resident,
            workers=config.workers,
        )
        per_rank = config.batch_size // self.ctx.world_size
        self.train_loader = make_loader(
            train_split, per_rank, train=True, augment=config.augment, **common
        )
        self.test_loader = make_loader(test_split, max(per_rank, 256), train=False, **common)
        if len(self.train_loader) == 0:
            raise ValueError(f"the training split has no batch of {per_rank} samples")

        self.model_kwargs = {
            "num_classes": self.info.num_classes,
            "in_chans": self.info.in_chans,
            **config.model_kwargs,
        }
        if model_factory is None:  # a file it could not load again is refused before training
            check_model_kwargs(
                self.model_kwargs if is_backbone_name(config.model)
                else model_kwargs(config.model, **self.model_kwargs),
                backbone=is_backbone_name(config.model), prefix="model_kwargs")
        torch.manual_seed(config.seed)
        # Pretrained weights are where training starts, not part of the model's description:
        # the checkpoint's kwargs rebuild the architecture, its tensors hold the weights.
        start = {"weights": config.weights} if config.weights else {}
        self.model = self.factory(config.model, **self.model_kwargs, **start).to(self.device)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        gated = any(t.name == "tap_gate_indices" for t in taps(self.model).values())
        self.net = distributed.wrap(self.model, self.ctx, find_unused_parameters=gated)
        if config.compile:
            self.net = torch.compile(self.net)
        # On CUDA the fused SGD kernel updates every parameter in one launch; on a CPU torch's
        # default (foreach where supported) is kept, so CPU runs repeat their numbers exactly.
        self.optimizer = torch.optim.SGD(
            self._param_groups(),
            lr=config.lr,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
            nesterov=config.nesterov and config.momentum > 0,
            fused=True if cuda else None,
        )
        self.steps_per_epoch = len(self.train_loader)
        self.warmup_steps = warmup_steps(config.warmup_epochs, self.steps_per_epoch,
                                         config.epochs, config.warmup_min_steps)
        self.plan = self._plan()
        self.history: list[dict] = []
        self.steps: list[dict] = []
        self.start_epoch = 0
        self.wall_time = 0.0
        self._plotted = time.perf_counter()

    def _param_groups(self) -> list[dict]:
        """One group, or two when the model names parts new to a pretrained backbone
        (``model.new_parameter_names()``) and the recipe gives them a larger lr."""
        factor = self.config.new_lr_factor
        names = getattr(self.model, "new_parameter_names", None)
        if factor == 1 or names is None:
            return [{"params": list(self.model.parameters()), "lr_factor": 1.0}]
        new = set(names())
        named = list(self.model.named_parameters())
        return [
            {"params": [p for n, p in named if n not in new], "lr_factor": 1.0},
            {"params": [p for n, p in named if n in new], "lr_factor": float(factor)},
        ]

    def _plan(self) -> str:
        """The run's first line: the lr and warm-up it uses, and why."""
        c, steps = self.config, self.steps_per_epoch
        warm = (
            f"warm-up {self.warmup_steps} steps ({c.warmup_epochs:g} epochs of {steps} "
            f"steps, at least {c.warmup_min_steps} up to a quarter of the run)"
            if self.warmup_steps else "no warm-up"
        )
        new = (f", new parts x{c.new_lr_factor:g}"
               if len(self.optimizer.param_groups) > 1 else "")
        clip = f", gradient norm clipped at {c.grad_clip:g}" if c.grad_clip else ""
        return (f"{c.model} on {self.info.name}: lr {c.lr:.4g} ({c.lr_note}){new}, {warm}, "
                f"{c.schedule} schedule over {c.epochs} epochs of {steps} steps of batch "
                f"{c.batch_size}{clip}")

    # -- state -------------------------------------------------------------------------------

    def _state(self, epoch: int) -> dict:
        return resume_state(self.config, epoch, self.model, self.optimizer, self.history,
                            self.steps, self.wall_time)

    def resume(self) -> bool:
        """Load ``resume.pt`` from the output folder; False when there is none."""
        state = read_resume_state(self.out_dir / STATE_NAME, self.config)
        if state is None:
            return False
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.history = list(state["history"])
        self.steps = list(state.get("steps", []))
        self.start_epoch = int(state["epoch"])
        self.wall_time = float(state["wall_time_s"])
        return True

    def _save(self, epoch: int) -> None:
        """After ``epoch`` epochs: resume state first, then the checkpoint, metrics and plot.

        The plot costs about half a second, so it is redrawn at most every PLOT_INTERVAL_S
        seconds, and always after the last epoch.
        """
        if not self.ctx.is_main:
            return
        checkpoint.save_state(self.out_dir / STATE_NAME, self._state(epoch))
        self.save_checkpoint(self.out_dir / CHECKPOINT_NAME)
        write_jsonl(self.out_dir / METRICS_NAME, self.history)
        write_jsonl(self.out_dir / STEPS_NAME, self.steps)
        now = time.perf_counter()
        if epoch == self.config.epochs or now - self._plotted >= PLOT_INTERVAL_S:
            plot_history(
                self.history,
                self.out_dir / PLOT_NAME,
                f"{self.config.model} on {self.info.name} ({self.config.recipe})",
            )
            self._plotted = now

    def save_checkpoint(self, path: str | os.PathLike) -> Path:
        """The model with its metadata: data facts, training config, the last epoch's metrics."""
        last = self.history[-1] if self.history else {}
        train_meta = {
            **self.config.to_dict(),
            "epochs_done": len(self.history),
            "world_size": self.ctx.world_size,
            "device_type": self.device.type,
            "amp": self.amp,
            "channels_last": self.channels_last,
            "wall_time_s": round(self.wall_time, 2),
            "lr_note": self.config.lr_note,
            "steps_per_epoch": self.steps_per_epoch,
            "warmup_steps": self.warmup_steps,
            "machine": machine(),
        }
        if self.command:
            train_meta["command"] = self.command
        named = getattr(self.model, "named_weights", None)
        if named is not None:  # where training started: the weights' name and their data
            train_meta["weights_data"] = {"name": named.full_name, **named.data}
        train_meta.pop("progress")
        return checkpoint.save_checkpoint(
            path,
            self.model,
            model_name=self.config.model,
            model_kwargs=self.model_kwargs,
            classes=self.info.classes,
            input_size=self.info.input_size,
            in_chans=self.info.in_chans,
            mean=self.info.mean,
            std=self.info.std,
            dataset=self.info.name,
            data_options={**self.info.options, **self.config.data_options},
            train_config=train_meta,
            metrics={k: v for k, v in last.items() if k != "component_usage"},
        )

    # -- loop --------------------------------------------------------------------------------

    def _lr(self, t: float) -> float:
        c = self.config
        warmup = self.warmup_steps / self.steps_per_epoch
        return c.lr * lr_factor(t, c.epochs, c.schedule, c.milestones, c.gamma, warmup)

    def train_epoch(self, epoch: int) -> dict:
        c, loader, device = self.config, self.train_loader, self.device
        loader.set_epoch(epoch)
        torch.manual_seed(c.seed * 1_000_003 + epoch * 1009 + self.ctx.rank)
        self.net.train()
        # Sums stay on the device and the sample count on the host: nothing in a step waits for
        # the GPU except the loss shown every 20 steps.
        sums = torch.zeros(3, dtype=torch.float64, device=device)
        interval = torch.zeros(3, dtype=torch.float64, device=device)  # loss sum, correct, n
        seen = 0
        steps = len(loader)
        show = c.progress and self.ctx.is_main
        bar = tqdm(loader, total=steps, desc=f"epoch {epoch + 1}/{c.epochs}", disable=not show)
        # The gate's choices: counted over the epoch, and its diagnostics over the last
        # POSTFIX_STEPS steps for the progress bar.
        recorder, recent = ComponentUsage(self.model), []
        start = time.perf_counter()
        lr = self._lr(epoch)
        with recorder:
            for i, (x, y) in enumerate(bar):
                lr = self._lr(epoch + i / steps)
                for group in self.optimizer.param_groups:
                    group["lr"] = lr * group.get("lr_factor", 1.0)
                if self.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.amp):
                    logits, aux = self.net(x, return_aux=True)
                logits = logits.float()
                loss = F.cross_entropy(logits, y, label_smoothing=c.label_smoothing)
                loss = loss + c.aux_weight * aux.float()
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if c.grad_clip:
                    nn.utils.clip_grad_norm_(self.model.parameters(), c.grad_clip)
                self.optimizer.step()
                n = len(y)
                seen += n
                step_sums = torch.stack(
                    [loss.detach() * n, _topk_correct(logits.detach(), y, 1), aux.detach() * n]
                ).double()
                sums += step_sums
                interval += torch.stack([step_sums[0], step_sums[1], step_sums.new_tensor(n)])
                if (i + 1) % c.log_every == 0 or i == steps - 1:
                    self._log_steps(interval, epoch, i, steps, lr)
                if recorder.active:
                    recent.append(y)
                    del recent[:-POSTFIX_STEPS]
                    recorder.keep_last(POSTFIX_STEPS)
                if show and (i % POSTFIX_STEPS == 0 or i == steps - 1):
                    postfix = {"loss": f"{loss.item():.3f}", "lr": f"{lr:.4f}"}
                    if recent:
                        postfix["gate"] = recorder.diagnostics(torch.cat(recent).cpu()).postfix()
                    bar.set_postfix(postfix)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - start
        totals = torch.cat([sums, sums.new_tensor([seen])])
        loss_sum, correct, aux_sum, n = distributed.all_reduce_sum(totals, self.ctx).tolist()
        if not math.isfinite(loss_sum):
            raise FloatingPointError(
                f"the training loss became {loss_sum} in epoch {epoch + 1}; "
                "lower the learning rate or set grad_clip"
            )
        row = {
            "train_loss": loss_sum / n,
            "train_top1": correct / n,
            "aux_loss": aux_sum / n,
            "lr": lr,
            "images_per_s": n / seconds,
            "train_time_s": seconds,
        }
        usage = recorder.fractions(self.ctx)
        if usage is not None:
            row["component_usage"] = usage
        return row

    def _log_steps(self, interval: torch.Tensor, epoch: int, i: int, steps: int,
                   lr: float) -> None:
        """Append the interval's row to ``self.steps`` (all ranks' sums) and reset it."""
        loss_sum, correct, n = distributed.all_reduce_sum(interval.clone(), self.ctx).tolist()
        interval.zero_()
        if n:
            self.steps.append({"step": epoch * steps + i + 1, "epoch": epoch + (i + 1) / steps,
                               "lr": lr, "train_loss": loss_sum / n, "train_top1": correct / n})

    def fit(self, resume: bool = False) -> dict:
        """Train to ``config.epochs`` (from the saved state if ``resume``); the last metrics row.

        Raises FileExistsError when the output folder already holds a run and ``resume`` is off.
        """
        if resume:
            self.resume()
        elif (self.out_dir / STATE_NAME).exists():
            raise FileExistsError(
                f"{self.out_dir} already holds a run; resume it or choose another output folder"
            )
        if self.ctx.is_main and self.config.progress:
            tqdm.write(self.plan)
        if self.ctx.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / "config.json").write_text(
                json.dumps(self.config.to_dict(), indent=2) + "\n"
            )
        try:
            for epoch in range(self.start_epoch, self.config.epochs):
                begin = time.perf_counter()
                row = {"epoch": epoch + 1, **self.train_epoch(epoch)}
                # The plain module under DDP: ranks may hold one batch more or less of test data,
                # and evaluation needs no gradient synchronisation.
                net = self.model if self.ctx.enabled else self.net
                test = evaluate(net, self.test_loader, self.ctx, self.amp, self.channels_last)
                gate = test.pop("gate", None)
                row.update({f"test_{k}": v for k, v in test.items() if k != "samples"})
                if gate is not None:
                    row["gate"] = gate.to_dict()
                row["epoch_time_s"] = time.perf_counter() - begin
                self.wall_time += row["epoch_time_s"]
                self.history.append(row)
                if self.ctx.is_main and self.config.progress:
                    tqdm.write(
                        f"epoch {epoch + 1}: train loss {row['train_loss']:.4f} "
                        f"top-1 {row['train_top1']:.4f} | test loss {row['test_loss']:.4f} "
                        f"top-1 {row['test_top1']:.4f} top-5 {row['test_top5']:.4f} | "
                        f"{row['images_per_s']:.0f} img/s, {row['epoch_time_s']:.1f} s"
                    )
                    if gate is not None:
                        tqdm.write(f"  test-set gate: {gate.verdict}")
                self._save(epoch + 1)
                distributed.barrier(self.ctx)
        finally:
            distributed.cleanup(self.ctx)
        return dict(self.history[-1]) if self.history else {}


def train(
    config: TrainConfig,
    resume: bool = False,
    model_factory: Callable[..., nn.Module] | None = None,
) -> dict:
    """Run ``config`` to the end (see :class:`Trainer`); returns the last epoch's metrics."""
    return Trainer(config, model_factory).fit(resume=resume)


__all__ = [
    "RECIPES",
    "ComponentUsage",
    "TrainConfig",
    "Trainer",
    "evaluate",
    "train",
]
