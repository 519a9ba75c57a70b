"""The trainer: schedules, metrics, determinism, resume after a kill, and 2-process DDP."""

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from gsoplib.checkpoint import load_checkpoint, load_state
from gsoplib.train import (
    RECIPES,
    TrainConfig,
    Trainer,
    evaluate,
    lr_factor,
    read_jsonl,
    recipe,
    train,
)

ROOT = Path(__file__).resolve().parent.parent
TIMING = ("images_per_s", "train_time_s", "epoch_time_s")

TINY_SOURCE = """
import time
import torch
from torch import nn
from gsoplib.taps import Tap


class Tiny(nn.Module):
    \"\"\"conv -> BN -> ReLU -> GAP -> FC; optional fake gate that routes to 4 components.\"\"\"

    def __init__(self, num_classes=8, in_chans=3, width=8, gated=False, aux=0.0, delay=0.0):
        super().__init__()
        self.conv = nn.Conv2d(in_chans, width, 3, padding=1)
        self.bn = nn.BatchNorm2d(width)
        self.fc = nn.Linear(width, num_classes)
        self.drop = nn.Dropout(0.1)
        self.gated, self.aux, self.delay = gated, aux, delay
        self.num_components = 4
        self.tap_gate_indices = Tap("tap_gate_indices")

    def forward(self, x, return_aux=False):
        if self.delay:
            time.sleep(self.delay)
        f = self.drop(torch.relu(self.bn(self.conv(x))).mean((2, 3)))
        if self.gated:
            # Component 3 is never chosen: usage must still report it, as 0.
            self.tap_gate_indices(f[:, :2].argmax(1, keepdim=True) + (f[:, 2:3] > 0).long())
        logits = self.fc(f)
        aux = logits.new_tensor(self.aux)
        return (logits, aux) if return_aux else logits


def factory(name, **kwargs):
    if name != "tiny":
        raise KeyError(f"unknown model {name!r}; valid models: tiny")
    return Tiny(**kwargs)
"""
namespace: dict = {}
exec(TINY_SOURCE, namespace)
factory = namespace["factory"]

DATA = {"num_train": 384, "num_test": 128, "image_size": 12, "smoothing": 1.0}


def config(out, **overrides) -> TrainConfig:
    fields = dict(
        model="tiny",
        dataset="second_order",
        out_dir=str(out),
        epochs=3,
        batch_size=32,
        lr=0.2,
        data_options=dict(DATA),
        device="cpu",
        progress=False,
    )
    fields.update(overrides)
    return TrainConfig(**fields)


def _without_timing(rows):
    return [{k: v for k, v in row.items() if k not in TIMING} for row in rows]


# -- schedules and recipes ---------------------------------------------------------------------


def test_step_schedule_decays_at_milestone_epochs():
    f = [lr_factor(t, 110, "step", [80, 95], 0.1) for t in (0, 79.99, 80, 94.5, 95, 109)]
    assert f == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])


def test_cosine_schedule_with_warmup():
    assert lr_factor(0.0, 10, "cosine", warmup_epochs=1) == 0
    assert lr_factor(0.5, 10, "cosine", warmup_epochs=1) == pytest.approx(0.5)
    assert lr_factor(1.0, 10, "cosine", warmup_epochs=1) == pytest.approx(1.0)
    assert lr_factor(5.5, 10, "cosine", warmup_epochs=1) == pytest.approx(0.5)
    assert lr_factor(10.0, 10, "cosine", warmup_epochs=1) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="valid schedules: step, cosine, constant"):
        lr_factor(0, 1, "linear")


def test_paper_recipes_are_the_papers_numbers():
    cifar = recipe("gsop-cifar100")  # GSoP-Net Sec. 4
    assert (cifar["lr"], cifar["epochs"], cifar["milestones"], cifar["batch_size"]) == (
        0.25,
        110,
        [80, 95],
        128,
    )
    assert cifar["weight_decay"] == 1e-4 and cifar["momentum"] == 0.9
    imagenet = recipe("gsop-imagenet")
    assert imagenet["milestones"] == [30, 60, 90] and imagenet["batch_size"] == 160
    gm = recipe("gmsop-imagenet64")  # GM-SOP: {50, 15, 10} epochs, wd 5e-4, batch 256
    assert gm["milestones"] == [50, 65] and gm["epochs"] == 75 and gm["weight_decay"] == 5e-4
    tune = recipe("finetune")  # fast-MPN-COV finetune.sh (section 11)
    assert (tune["lr"], tune["batch_size"], tune["weight_decay"], tune["new_lr_factor"]) == (
        1.2e-3, 10, 1e-3, 5.0)
    for name, fields in RECIPES.items():
        assert fields["source"], name
        assert fields["reference_batch"] == fields["batch_size"], name
    with pytest.raises(ValueError, match=r"unknown recipe 'adam'\. Known recipes: gsop-"):
        recipe("adam")


def test_config_fills_from_the_recipe_and_keeps_overrides():
    c = TrainConfig("m", "d", recipe="gsop-cifar100", epochs=5)
    assert c.epochs == 5 and c.lr == 0.25 and c.milestones == [80, 95]
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        TrainConfig("m", "d", batch_size=0)


def test_augmentation_follows_the_recipe_and_can_be_switched_off(tmp_path):
    assert TrainConfig("m", "d", recipe="fast").augment is True
    on = Trainer(config(tmp_path / "on"), factory)
    off = Trainer(config(tmp_path / "off", augment=False), factory)
    assert on.train_loader.augment and not off.train_loader.augment
    assert not on.test_loader.augment


# -- evaluation --------------------------------------------------------------------------------


class FixedLogits(nn.Module):
    def __init__(self, logits):
        super().__init__()
        self.logits = logits

    def forward(self, x):
        return self.logits[: len(x)]


class _Batches(list):
    device = torch.device("cpu")


def test_evaluate_computes_loss_top1_top5_by_hand():
    logits = torch.tensor(
        [[5.0, 4, 3, 2, 1, 0], [0.0, 1, 2, 3, 4, 5], [1.0, 0, 0, 0, 0, 0], [0.0, 0, 0, 0, 0, 9]]
    )
    y = torch.tensor([0, 0, 0, 5])
    loader = _Batches([(torch.zeros(4, 1), y)])
    m = evaluate(FixedLogits(logits), loader)
    assert m["top1"] == 0.75  # sample 1 is wrong
    assert m["top5"] == 0.75  # sample 1's label is ranked last of 6
    expected = torch.nn.functional.cross_entropy(logits, y).item()
    assert m["loss"] == pytest.approx(expected)


# -- training ----------------------------------------------------------------------------------


def test_training_learns_and_writes_metrics_plot_checkpoint(tmp_path):
    final = train(config(tmp_path / "run", epochs=4, lr=0.3), model_factory=factory)
    rows = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    for key in ("test_top1", "test_top5", "test_loss", "lr", "images_per_s", "train_top1"):
        assert key in final and math.isfinite(final[key])
    assert final["test_top5"] >= final["test_top1"]
    assert (tmp_path / "run" / "metrics.png").stat().st_size > 10_000
    ck = load_checkpoint(tmp_path / "run" / "model.safetensors", model_factory=factory)
    assert ck.metrics["test_top1"] == final["test_top1"]
    assert ck.classes[0] == "corr(+,+,+)" and ck.in_chans == 3 and ck.input_size == (12, 12)
    train_meta = ck.meta["train"]
    assert train_meta["recipe"] == "fast" and train_meta["lr"] == 0.3
    assert train_meta["epochs_done"] == 4 and train_meta["wall_time_s"] > 0
    assert ck.meta["model"]["kwargs"] == {"num_classes": 8, "in_chans": 3}
    assert ck.meta["data"]["options"]["num_train"] == 384


def test_training_is_deterministic_on_cpu(tmp_path):
    a = train(config(tmp_path / "a"), model_factory=factory)
    b = train(config(tmp_path / "b"), model_factory=factory)
    assert _without_timing([a]) == _without_timing([b])
    c = train(config(tmp_path / "c", seed=1), model_factory=factory)
    assert c["train_loss"] != a["train_loss"]


def test_every_option_runs_label_smoothing_clip_amp_channels_last(tmp_path):
    final = train(
        config(
            tmp_path / "run",
            epochs=1,
            label_smoothing=0.1,
            grad_clip=1.0,
            amp=True,
            channels_last=True,
            recipe="gsop-cifar100",
            lr=0.05,
        ),
        model_factory=factory,
    )
    assert math.isfinite(final["train_loss"])


def test_auxiliary_loss_is_added_and_component_usage_reported(tmp_path):
    cfg = config(
        tmp_path / "run", epochs=1, lr=0.0 + 1e-9, model_kwargs={"gated": True, "aux": 0.5}
    )
    final = train(cfg, model_factory=factory)
    assert final["aux_loss"] == pytest.approx(0.5)
    usage = final["component_usage"]
    assert len(usage) == 4 and usage[3] == 0 and sum(usage) == pytest.approx(1.0)
    plain = train(
        config(tmp_path / "plain", epochs=1, lr=1e-9, model_kwargs={"gated": False, "aux": 0.0}),
        model_factory=factory,
    )
    # Same weights (lr ~ 0), same data: the objective differs by exactly the aux weight * 0.5.
    assert final["train_loss"] - plain["train_loss"] == pytest.approx(0.5, abs=1e-4)
    assert "component_usage" not in plain


def test_an_existing_run_is_not_overwritten_and_resume_checks_settings(tmp_path):
    train(config(tmp_path / "run", epochs=1), model_factory=factory)
    with pytest.raises(FileExistsError, match="already holds a run"):
        train(config(tmp_path / "run", epochs=1), model_factory=factory)
    with pytest.raises(ValueError, match="different lr"):
        train(config(tmp_path / "run", epochs=2, lr=0.5), resume=True, model_factory=factory)


def test_resume_after_an_interruption_repeats_the_uninterrupted_run(tmp_path, monkeypatch):
    reference = train(config(tmp_path / "ref"), model_factory=factory)
    original = Trainer.train_epoch

    def interrupted(self, epoch):
        if epoch == 1:
            raise KeyboardInterrupt
        return original(self, epoch)

    monkeypatch.setattr(Trainer, "train_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(config(tmp_path / "run"), model_factory=factory)
    monkeypatch.setattr(Trainer, "train_epoch", original)
    assert load_state(tmp_path / "run" / "resume.pt")["epoch"] == 1
    resumed = train(config(tmp_path / "run"), resume=True, model_factory=factory)
    assert _without_timing([resumed]) == _without_timing([reference])
    ref_rows = read_jsonl(tmp_path / "ref" / "metrics.jsonl")
    run_rows = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert _without_timing(run_rows) == _without_timing(ref_rows)
    # The per-step log continues where it stopped, row for row.
    assert read_jsonl(tmp_path / "run" / "steps.jsonl") == read_jsonl(
        tmp_path / "ref" / "steps.jsonl")


def test_the_step_log_shows_the_warm_up_and_adds_up_to_the_epochs(tmp_path):
    """12 steps an epoch, a row every 5: steps 5, 10, 12 of each epoch, the learning rate
    rising through the warm-up, and each epoch's rows averaging to its metrics row."""
    cfg = config(tmp_path / "run", log_every=5, warmup_epochs=1.0, schedule="cosine")
    trainer = Trainer(cfg, model_factory=factory)
    trainer.fit()
    rows = read_jsonl(tmp_path / "run" / "steps.jsonl")
    assert [r["step"] for r in rows] == [5, 10, 12, 17, 22, 24, 29, 34, 36]
    assert [round(r["epoch"], 4) for r in rows[:3]] == [round(5 / 12, 4), round(10 / 12, 4), 1.0]
    assert rows[0]["lr"] < rows[1]["lr"] < rows[2]["lr"]  # the warm-up, inside the first epoch
    assert rows[-1]["lr"] < rows[3]["lr"]                 # then the cosine decay
    for epoch, metrics in enumerate(read_jsonl(tmp_path / "run" / "metrics.jsonl")):
        mine = rows[3 * epoch:3 * epoch + 3]
        sizes = [5, 5, 2]
        loss = sum(r["train_loss"] * n for r, n in zip(mine, sizes)) / 12
        top1 = sum(r["train_top1"] * n for r, n in zip(mine, sizes)) / 12
        assert loss == pytest.approx(metrics["train_loss"], rel=1e-9)
        assert top1 == pytest.approx(metrics["train_top1"], rel=1e-9)
    with pytest.raises(ValueError, match="log_every must be >= 1"):
        config(tmp_path / "bad", log_every=0)


SCRIPT = """
import json, sys
from gsoplib.train import TrainConfig, Trainer
{tiny}
cfg = TrainConfig(**json.loads(sys.argv[1]))
final = Trainer(cfg, factory).fit(resume="--resume" in sys.argv)
print("FINAL", json.dumps(final))
"""


def _script(tmp_path) -> Path:
    path = tmp_path / "run_tiny.py"
    path.write_text(SCRIPT.format(tiny=textwrap.dedent(TINY_SOURCE)))
    return path


def _config_json(out, **overrides) -> str:
    return json.dumps(config(out, **overrides).to_dict())


def _env():
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


@pytest.mark.slow
def test_kill_9_mid_epoch_then_resume_reproduces_the_uninterrupted_run(tmp_path):
    script = _script(tmp_path)
    slow = {"model_kwargs": {"delay": 0.02}, "epochs": 3}
    out = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, str(script), _config_json(out, **slow)],
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    state = out / "resume.pt"
    deadline = time.time() + 120
    while not state.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert state.exists(), "the first epoch never finished"
    time.sleep(0.1)  # 12 steps of >= 20 ms per epoch: the kill lands inside epoch 2
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert load_state(state)["epoch"] == 1
    assert len(read_jsonl(out / "metrics.jsonl")) == 1
    resumed = subprocess.run(
        [sys.executable, str(script), _config_json(out, **slow), "--resume"],
        env=_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    reference = subprocess.run(
        [sys.executable, str(script), _config_json(tmp_path / "ref", **slow)],
        env=_env(),
        capture_output=True,
        text=True,
        check=True,
    )

    def final(run):
        line = next(x for x in run.stdout.splitlines() if x.startswith("FINAL"))
        return json.loads(line[len("FINAL ") :])

    assert _without_timing([final(resumed)]) == _without_timing([final(reference)])
    assert _without_timing(read_jsonl(out / "metrics.jsonl")) == _without_timing(
        read_jsonl(tmp_path / "ref" / "metrics.jsonl")
    )


@pytest.mark.slow
def test_two_process_gloo_ddp_matches_one_process_within_noise(tmp_path):
    script = _script(tmp_path)
    fields = {"epochs": 4, "lr": 0.3, "batch_size": 32}
    ddp = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            "2",
            str(script),
            _config_json(tmp_path / "ddp", **fields),
        ],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ddp.returncode == 0, ddp.stderr[-2000:]
    single = train(config(tmp_path / "one", **fields), model_factory=factory)
    rows = read_jsonl(tmp_path / "ddp" / "metrics.jsonl")
    assert len(rows) == 4  # one writer: rank 0
    meta = load_checkpoint(tmp_path / "ddp" / "model.safetensors", model_factory=factory).meta
    assert meta["train"]["world_size"] == 2
    both = rows[-1]
    # Same global batch and data; only the BatchNorm statistics (per rank) and the order differ.
    assert both["train_loss"] == pytest.approx(single["train_loss"], rel=0.1)
    assert both["test_loss"] == pytest.approx(single["test_loss"], rel=0.1)
    assert abs(both["test_top1"] - single["test_top1"]) < 0.1
    assert both["train_loss"] < rows[0]["train_loss"]  # it trained


@pytest.mark.slow
def test_torch_compile_trains_and_saves_plain_weights(tmp_path):
    final = train(config(tmp_path / "run", epochs=1, compile=True), model_factory=factory)
    assert math.isfinite(final["train_loss"])
    ck = load_checkpoint(tmp_path / "run" / "model.safetensors", model_factory=factory)
    assert not any("_orig_mod" in key for key in ck.model.state_dict())


def test_a_mixture_run_logs_its_gate_diagnostics_every_epoch(tmp_path, capsys):
    from gsoplib.models import create_model

    cfg = config(tmp_path / "gm", epochs=2, progress=True, model="small_gmgap")
    final = Trainer(cfg, model_factory=lambda name, **kw: create_model(name, **kw)).fit()
    rows = read_jsonl(tmp_path / "gm" / "metrics.jsonl")
    assert [r["epoch"] for r in rows] == [1, 2]
    for row in rows:
        gate = row["gate"]
        assert gate["samples"] == DATA["num_test"] and gate["k"] == 4
        assert sum(gate["image_share"]) == pytest.approx(4)
        assert gate["verdict"].startswith("The gate ")
        assert gate["mutual_information"] is not None and gate["degenerate"] in (True, False)
        weights = 1 <= gate["effective_components"] <= 4 and 0.25 <= gate["largest_weight"] <= 1
        assert weights and gate["logit_span"] is not None
    assert final["gate"] == rows[-1]["gate"]
    shown = capsys.readouterr()
    assert "test-set gate: The gate " in shown.out  # the epoch's summary line
    assert "gate=eff " in shown.err and "/4 MI " in shown.err  # the progress bar's postfix
    meta = load_checkpoint(tmp_path / "gm" / "model.safetensors").meta
    assert meta["metrics"]["gate"]["verdict"] == rows[-1]["gate"]["verdict"]


# -- a user's own small data with the defaults -------------------------------------------------


def test_the_recipes_lr_scales_with_the_batch_and_a_given_lr_is_kept():
    from gsoplib.train.recipes import scaled_lr

    assert scaled_lr(0.1, 24, 128) == pytest.approx(0.01875)
    c = TrainConfig("m", "d", batch_size=24)
    assert c.lr == pytest.approx(0.1 * 24 / 128) and "scaled to batch 24" in c.lr_note
    assert TrainConfig("m", "d").lr == 0.1  # the recipe's own batch: its own lr
    imagenet = TrainConfig("m", "d", recipe="gsop-imagenet", batch_size=320)
    assert imagenet.lr == pytest.approx(0.2)  # GSoP-Net's 0.1 is for batch 160
    kept = TrainConfig("m", "d", batch_size=24, lr=0.05)
    assert kept.lr == 0.05 and kept.lr_note == "as given"


def test_warmup_is_counted_in_steps_with_a_floor():
    from gsoplib.train.recipes import warmup_steps

    assert warmup_steps(0.5, 3, 8, min_steps=20) == 6  # floor, capped at a quarter of 24 steps
    assert warmup_steps(0.5, 3, 100, min_steps=20) == 20  # floor
    assert warmup_steps(0.5, 469, 8, min_steps=20) == 235  # half an epoch of Fashion-MNIST
    assert warmup_steps(0.0, 3, 8, min_steps=20) == 0  # the papers' recipes: none


def _photo_folder(root: Path, per_class: int, size: int = 40) -> Path:
    """Three classes of noisy photos told apart by their colour: train/ and val/."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    colours = [(200, 60, 60), (60, 200, 60), (60, 60, 200)]
    for split, n in (("train", per_class), ("val", per_class // 3)):
        for c, colour in enumerate(colours):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(n):
                pixels = np.asarray(colour)[None, None] + rng.normal(0, 60, (size, size, 3))
                Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(folder / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return _photo_folder(tmp_path_factory.mktemp("photos"), 24)  # 72 training photos


def _imagefolder(photos, out, **fields) -> TrainConfig:
    return TrainConfig("resnet26", "imagefolder", out_dir=str(out), data_root=str(photos),
                       data_options={"image_size": 32}, batch_size=24, device="cpu",
                       progress=False, **fields)


def test_the_issue_reproduces_without_scaling_warmup_or_clipping(photos, tmp_path):
    """72 photos, batch 24, the fast recipe's lr 0.1 unscaled and half an epoch (1.5 steps) of
    warm-up: the loss of a 3-class problem explodes (issue 18 measured 14.5 then 65.7)."""
    trainer = Trainer(_imagefolder(photos, tmp_path / "old", lr=0.1, warmup_min_steps=0,
                                   grad_clip=0, epochs=2))
    assert trainer.warmup_steps == 2
    trainer.fit()
    assert max(r["train_loss"] for r in trainer.history) > 3 * math.log(3)


def test_a_tiny_imagefolder_trains_sanely_with_the_defaults(photos, tmp_path, capsys):
    from gsoplib import cli

    code = cli.main(["train", "--model", "resnet26", "--dataset", "imagefolder", "--data-root",
                     str(photos), "--data-option", "image_size=32", "--batch-size", "24",
                     "--epochs", "6", "--out", str(tmp_path / "run"), "--no-progress"])
    assert code == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert "lr 0.01875 (the fast recipe's 0.1 for batch 128, scaled to batch 24)" in first
    assert "warm-up 4 steps" in first  # 6 epochs of 3 steps: the floor capped at a quarter
    rows = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    losses = [r["train_loss"] for r in rows]
    assert all(math.isfinite(v) for v in losses)
    assert max(losses) < 1.5 * math.log(3) and losses[-1] < 0.7 * losses[0]
    assert all(r["test_loss"] < 2 * math.log(3) for r in rows)
    meta = load_checkpoint(tmp_path / "run" / "model.safetensors").meta["train"]
    assert meta["warmup_steps"] == 4 and meta["lr"] == pytest.approx(0.01875)
