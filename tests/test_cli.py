"""The `gsop` command line: complete help, one-line errors, and each subcommand end to end."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from gsoplib import cli
from gsoplib.data import list_datasets
from gsoplib.models import list_models
from gsoplib.train import list_recipes

SMALL_DATA = ["--data-option", "num_train=128", "--data-option", "num_test=64"]
SMALL_DATA += ["--data-option", "image_size=16"]


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(capsys, *argv) -> str:
    with pytest.raises(SystemExit) as info:
        cli.main(list(argv))
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


# -- help and errors ---------------------------------------------------------------------------


def test_every_subcommand_has_complete_help(capsys):
    expected = {
        "train": [
            "--model",
            "--dataset",
            "--epochs",
            "--batch-size",
            "--recipe",
            "--out",
            "--device",
            "--resume",
            "--lr",
            "--label-smoothing",
            "--amp",
            "--channels-last",
            "--compile",
            "--grad-clip",
            "--seed",
            "--data-root",
            *list_datasets(),
            *list_recipes(),
            "small_gsop1",
        ],
        "eval": ["--checkpoint", "--dataset", "--split", "--device"],
        "inspect": ["IMAGE", "--checkpoint", "--device"],
        "bench": ["--models", "--batch-size", "--image-size", "--device", "--steps"],
        "explore": ["--port", "--headless", "--checkpoint"],
    }
    for command, words in expected.items():
        with pytest.raises(SystemExit) as info:
            cli.main([command, "--help"])
        assert info.value.code == 0
        text = " ".join(capsys.readouterr().out.split())
        for word in words:
            assert word in text, (command, word)
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    top = capsys.readouterr().out
    assert all(c in top for c in ("train", "eval", "inspect", "bench", "explore"))


def test_bad_flags_and_names_are_one_line_with_the_choices(capsys):
    err = one_line_error(capsys, "train", "--model", "small_vanilla", "--dataset", "mnist")
    assert "invalid choice: 'mnist'" in err and "fashion_mnist" in err
    err = one_line_error(capsys, "train", "--model", "resnet9000", "--dataset", "cifar10")
    assert "invalid choice: 'resnet9000'" in err and "small_gsop1" in err
    err = one_line_error(capsys, "train", "--model", "small_vanilla", "--dataset", "cifar10", "-x")
    assert "unrecognized arguments: -x" in err
    err = one_line_error(capsys, "trian")
    assert "invalid choice: 'trian'" in err and "train" in err
    err = one_line_error(capsys, "train", "--recipe", "adam", "--model", "a", "--dataset", "b")
    assert "fast" in err


def test_runtime_user_errors_are_one_line(capsys, tmp_path):
    code, _, err = run(capsys, "eval", "--checkpoint", str(tmp_path / "nope.safetensors"))
    assert code == 2 and err.count("\n") == 1 and "neither a file nor a bundled checkpoint" in err
    pickled = tmp_path / "old.pth"
    torch.save({"w": torch.zeros(1)}, pickled)
    code, _, err = run(capsys, "eval", "--checkpoint", str(pickled))
    assert code == 2 and err.count("\n") == 1 and "pickled PyTorch file" in err
    code, _, err = run(
        capsys, "train", "--model", "small_vanilla", "--dataset", "second_order",
        "--data-option", "colour=3", "--out", str(tmp_path / "r"),
    )  # fmt: skip
    assert code == 2 and err.count("\n") == 1 and "takes no option colour" in err
    code, _, err = run(capsys, "bench", "--models", "nonesuch")
    assert code == 2 and "valid models" in err


def test_the_module_entry_point_runs():
    out = subprocess.run(
        [sys.executable, "-m", "gsoplib.cli", "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0 and "gsop" in out.stdout


def test_explore_launches_streamlit_on_the_app(capsys, monkeypatch):
    calls = []
    monkeypatch.setattr(cli.subprocess, "call", lambda command: calls.append(command) or 0)
    code, _, _ = run(capsys, "explore", "--headless", "--port", "8600")
    assert code == 0 and cli.EXPLORER_APP.exists()
    (command,) = calls
    assert command[1:4] == ["-m", "streamlit", "run"] and command[4] == str(cli.EXPLORER_APP)
    assert "8600" in command and command[-2:] == ["--server.headless", "true"]
    # This machine only by default, which also keeps streamlit off the network at start-up.
    assert command[command.index("--server.address") + 1] == "127.0.0.1"
    code, _, _ = run(capsys, "explore", "--address", "0.0.0.0")
    assert code == 0 and len(calls) == 2
    assert calls[-1][calls[-1].index("--server.address") + 1] == "0.0.0.0"


def test_explore_passes_the_checkpoint_to_the_app_and_refuses_unknown_ones(
    capsys, monkeypatch, tmp_path
):
    calls = []
    monkeypatch.setattr(cli.subprocess, "call", lambda command: calls.append(command) or 0)
    ckpt = tmp_path / "model.safetensors"
    ckpt.write_bytes(b"")
    assert run(capsys, "explore", "--checkpoint", str(ckpt))[0] == 0
    assert calls[-1][-3:] == ["--", "--checkpoint", str(ckpt)]
    code, _, err = run(capsys, "explore", "--checkpoint", "nonesuch")
    assert code == 2 and err.count("\n") == 1 and "neither a file nor a bundled checkpoint" in err
    assert len(calls) == 1


# -- end to end --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small_vanilla trained by the CLI for one epoch on a small second-order set."""
    out = tmp_path_factory.mktemp("cli") / "run"
    argv = ["train", "--model", "small_vanilla", "--dataset", "second_order", *SMALL_DATA]
    argv += ["--epochs", "1", "--batch-size", "32", "--out", str(out), "--no-progress"]
    assert cli.main(argv) == 0
    return out


def test_train_writes_a_run_and_prints_its_final_metrics(trained, capsys):
    assert {p.name for p in trained.iterdir()} >= {
        "model.safetensors",
        "metrics.jsonl",
        "metrics.png",
        "resume.pt",
        "config.json",
    }
    rows = [json.loads(line) for line in (trained / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and 0 <= rows[0]["test_top1"] <= 1


def test_train_refuses_to_overwrite_without_resume(trained, capsys):
    argv = ["train", "--model", "small_vanilla", "--dataset", "second_order", *SMALL_DATA]
    code, _, err = run(capsys, *argv, "--epochs", "1", "--batch-size", "32", "--out", str(trained))
    assert code == 2 and "already holds a run" in err


def test_eval_reproduces_the_stored_accuracy(trained, capsys):
    code, out, _ = run(capsys, "eval", "--checkpoint", str(trained / "model.safetensors"))
    assert code == 0
    result = json.loads(out)
    assert result["dataset"] == "second_order" and result["samples"] == 64
    assert result["top1"] == pytest.approx(result["stored_test_top1"], abs=1e-9)


def test_inspect_prints_the_top5_and_a_line_per_block(trained, capsys, tmp_path):
    image = tmp_path / "x.png"
    pixels = np.random.default_rng(0).integers(0, 256, (40, 30, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(image)
    code, out, _ = run(
        capsys, "inspect", str(image), "--checkpoint", str(trained / "model.safetensors")
    )
    assert code == 0
    lines = out.splitlines()
    ranked = [line for line in lines if line.strip()[:2] in {f"{i}." for i in range(1, 6)}]
    assert len(ranked) == 5 and "corr(" in ranked[0]
    probabilities = [float(line.split()[-1].rstrip("%")) for line in ranked]
    assert probabilities == sorted(probabilities, reverse=True) and sum(probabilities) <= 100.01
    assert len(lines) > 6  # the probe's per-block summary follows the ranking


def test_inspect_refuses_a_file_that_is_not_an_image(trained, capsys, tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    code, _, err = run(
        capsys, "inspect", str(bad), "--checkpoint", str(trained / "model.safetensors")
    )
    assert code == 2 and err.count("\n") == 1 and "not an image" in err


def test_bench_measures_each_model(capsys):
    code, out, _ = run(
        capsys, "bench", "--models", "small_vanilla", "small_gsop1", "--batch-size", "8",
        "--steps", "1", "--device", "cpu",
    )  # fmt: skip
    assert code == 0
    rows = [line.split() for line in out.splitlines() if line.startswith("small_")]
    assert [r[0] for r in rows] == ["small_vanilla", "small_gsop1"]
    assert all(float(r[2]) > 0 and float(r[3]) > 0 for r in rows)


def test_every_listed_model_name_is_accepted_by_train(capsys):
    parser = cli.build_parser()
    for name in list_models():
        args = parser.parse_args(["train", "--model", name, "--dataset", "cifar10"])
        assert args.model == name
