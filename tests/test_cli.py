"""The `gsop` command line: complete help, one-line errors, and each subcommand end to end."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gsoplib import cli
from gsoplib.cli import explore
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
    assert code == 2 and "unknown model 'nonesuch'. Known models: " in err


def test_the_module_entry_point_runs():
    out = subprocess.run(
        [sys.executable, "-m", "gsoplib.cli", "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0 and "gsop" in out.stdout


def test_explore_launches_streamlit_on_the_app(capsys, monkeypatch):
    calls = []
    monkeypatch.setattr(explore, "_run_forwarding_signals",
                        lambda command: calls.append(command) or 0)
    code, _, _ = run(capsys, "explore", "--headless", "--port", "8600")
    app = cli.explorer_app()
    assert code == 0 and app.is_file() and app.parent.name == "explorer"
    (command,) = calls
    assert command[1:4] == ["-m", "streamlit", "run"] and command[4] == str(app)
    assert "8600" in command and command[-2:] == ["--server.headless", "true"]
    # This machine only by default, which also keeps streamlit off the network at start-up.
    assert command[command.index("--server.address") + 1] == "127.0.0.1"
    code, _, _ = run(capsys, "explore", "--address", "0.0.0.0")
    assert code == 0 and len(calls) == 2
    assert calls[-1][calls[-1].index("--server.address") + 1] == "0.0.0.0"


def test_explore_without_streamlit_or_without_the_app_says_what_to_install(capsys, monkeypatch):
    calls = []
    monkeypatch.setattr(explore, "_run_forwarding_signals",
                        lambda command: calls.append(command) or 0)
    real = explore.importlib.util.find_spec
    monkeypatch.setattr(explore.importlib.util, "find_spec",
                        lambda name, *a: None if name == "streamlit" else real(name, *a))
    code, _, err = run(capsys, "explore")
    assert code == 2 and err.count("\n") == 1 and not calls
    assert "needs Streamlit" in err and "pip install 'gsoplib[app]'" in err
    monkeypatch.setattr(explore.importlib.util, "find_spec",
                        lambda name, *a: None if name == "gsoplib.explorer" else real(name, *a))
    code, _, err = run(capsys, "explore")
    assert code == 2 and "has no explorer app" in err and not calls


def test_explore_passes_the_checkpoint_to_the_app_and_refuses_unknown_ones(
    capsys, monkeypatch, tmp_path
):
    calls = []
    monkeypatch.setattr(explore, "_run_forwarding_signals",
                        lambda command: calls.append(command) or 0)
    ckpt = tmp_path / "model.safetensors"
    ckpt.write_bytes(b"")
    assert run(capsys, "explore", "--checkpoint", str(ckpt))[0] == 0
    assert calls[-1][-3:] == ["--", "--checkpoint", str(ckpt)]
    code, _, err = run(capsys, "explore", "--checkpoint", "nonesuch")
    assert code == 2 and err.count("\n") == 1 and "neither a file nor a bundled checkpoint" in err
    assert len(calls) == 1


# -- explore under a supervisor: signals reach the server ----------------------------------------

HAS_PROC = Path("/proc/self/stat").exists()
CHILD = """
import signal, sys
from pathlib import Path
if sys.argv[2] == "trap":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(7))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(8))
Path(sys.argv[1]).write_text("ready")
signal.pause()
"""


@pytest.mark.parametrize(
    "signum, behaviour, expected",
    [(signal.SIGTERM, "trap", 7), (signal.SIGINT, "trap", 8),
     (signal.SIGTERM, "default", 128 + signal.SIGTERM)],
)
def test_signals_are_passed_to_the_child_and_its_exit_status_returned(
    signum, behaviour, expected, tmp_path
):
    """SIGTERM or SIGINT to this process reaches the child; the call returns once the child has
    exited, with its status (128 + N when signal N ended it)."""
    ready = tmp_path / "ready"

    def signal_us_once_the_child_is_ready():
        deadline = time.monotonic() + 60
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(os.getpid(), signum)

    sender = threading.Thread(target=signal_us_once_the_child_is_ready)
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    sender.start()
    code = explore._run_forwarding_signals([sys.executable, "-c", CHILD, str(ready), behaviour])
    sender.join()
    assert code == expected
    assert {s: signal.getsignal(s) for s in before} == before  # our handlers are gone again


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_is_free(port: int) -> bool:
    """No one listens on ``port`` (connections left in TIME_WAIT do not count)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _stat(pid: int) -> list[str] | None:
    """/proc/PID/stat's fields after the command name (state, parent, ...), None if gone."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) and fields[1] == str(pid):
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
            return r.read() == b"ok"
    except OSError:
        return False


@pytest.mark.skipif(not HAS_PROC, reason="finding the server's process needs Linux's /proc")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL],
                         ids=["SIGTERM", "SIGINT", "SIGKILL"])
def test_a_signal_to_gsop_explore_stops_its_server_and_frees_the_port(signum, tmp_path):
    """What a supervisor, `timeout`, a container stop or the OOM killer does: signal gsop
    explore alone. The Streamlit server it started stops too, and no process is left holding
    the port; SIGKILL, which gsop cannot catch, included (Linux's parent-death signal)."""
    port = _free_port()
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get(
        "PYTHONPATH")]))}
    command = [sys.executable, "-m", "gsoplib.cli", "explore", "--headless", "--port", str(port)]
    with open(tmp_path / "explore.log", "wb") as log:
        gsop = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=log, stderr=log)
    children = []
    try:
        deadline = time.monotonic() + 120
        while not _healthy(port):
            assert gsop.poll() is None, (tmp_path / "explore.log").read_text()
            assert time.monotonic() < deadline, "the explorer never answered its health check"
            time.sleep(0.25)
        children = _children(gsop.pid)
        assert children, "the server runs as a child of gsop explore"
        gsop.send_signal(signum)
        code = gsop.wait(timeout=60)
        deadline = time.monotonic() + 30     # after a SIGKILL the server stops on its own
        while [pid for pid in children if _alive(pid)] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in children if _alive(pid)], "the server outlived gsop explore"
        assert _port_is_free(port) and not _healthy(port)
        if signum == signal.SIGKILL:
            assert code == -signal.SIGKILL
        else:
            assert code >= 0, f"gsop explore was killed by signal {-code}, not ended by its server"
    finally:
        for pid in [gsop.pid, *children]:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        gsop.wait(timeout=30)


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


def test_train_backbone_flags_are_checked_in_one_line(capsys, tmp_path):
    code, _, err = run(capsys, "train", "--backbone", "torchvision:resnet50", "--weights",
                       str(tmp_path / "resnet50.pth"), "--dataset", "second_order",
                       *SMALL_DATA, "--out", str(tmp_path / "run"))
    assert code == 2 and err.count("\n") == 1
    assert "resnet50.pth does not exist" in err and "nothing is downloaded" in err
    code, _, err = run(capsys, "train", "--model", "small_vanilla", "--backbone",
                       "torchvision:resnet50", "--dataset", "second_order")
    assert code == 2 and "one of the two" in err
    code, _, err = run(capsys, "train", "--model", "small_vanilla", "--weights", "w.pth",
                       "--dataset", "second_order")
    assert code == 2 and "--weights goes with --backbone" in err
