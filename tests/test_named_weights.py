"""Pretrained weights by name (gsoplib.models.named_weights), offline: files planted in a
temporary cache under the libraries' own file names, and the error when there is none.

Nothing here touches the network. torchvision's real ResNet-18 file cannot be made offline, and
its name carries the first digits of its SHA-256 (resnet18-f37072fd.pth), which a planted file
cannot match: so the planted file under the real name checks that a mismatch is refused, and the
success path re-points the weights entry's URL at a file name that carries the planted file's
own hash, the same code path with an honest hash. timm's files come from the Hugging Face hub's
cache, planted in its layout with the hub's offline mode on.
"""

from __future__ import annotations

import hashlib
import io
import urllib.error
from pathlib import Path

import pytest
import safetensors.torch
import torch
import torchvision

from gsoplib import cli
from gsoplib.checkpoint import load_checkpoint, save_checkpoint
from gsoplib.models import create_model
from gsoplib.models.backbones import backbone_model
from gsoplib.models.named_weights import WeightsNotFoundError, is_weights_name, resolve

ENTRY = torchvision.models.ResNet18_Weights.IMAGENET1K_V1


@pytest.fixture
def torch_home(tmp_path, monkeypatch) -> Path:
    """An empty TORCH_HOME; a download attempt fails as it does offline."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def offline(url, dst, hash_prefix=None, progress=True):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    return tmp_path / "torch"


def _planted_state() -> dict:
    torch.manual_seed(3)
    return torchvision.models.resnet18(weights=None).state_dict()


def _plant(torch_home: Path, name: str, state: dict) -> Path:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    path = torch_home / "hub" / "checkpoints" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())
    return path


def _plant_with_its_own_hash(torch_home: Path, monkeypatch) -> dict:
    """A planted file named by its own SHA-256 prefix, and the weights entry's URL pointed at
    that name (the real file's hash cannot be matched offline); returns the planted state."""
    state = _planted_state()
    buffer = io.BytesIO()
    torch.save(state, buffer)
    prefix = hashlib.sha256(buffer.getvalue()).hexdigest()[:8]
    _plant(torch_home, f"resnet18-{prefix}.pth", state)
    monkeypatch.setattr(ENTRY.value, "url", f"https://example.invalid/resnet18-{prefix}.pth")
    return state


def test_names_and_paths_are_told_apart(tmp_path):
    assert is_weights_name("IMAGENET1K_V2") and is_weights_name("a1_in1k")
    assert not is_weights_name("resnet50.pth") and not is_weights_name(str(tmp_path))
    assert not is_weights_name(None)


def test_a_cached_torchvision_file_loads_by_name_with_its_data(torch_home, monkeypatch):
    state = _plant_with_its_own_hash(torch_home, monkeypatch)

    net = backbone_model("torchvision:resnet18", "IMAGENET1K_V1", blocks="C,C,C,C",
                         num_classes=1000)
    assert torch.equal(net.stem[0].weight, state["conv1.weight"])
    assert torch.equal(net.head.fc.weight, state["fc.weight"])  # the pretrained classifier
    named = net.named_weights
    assert named.full_name == "ResNet18_Weights.IMAGENET1K_V1"
    assert named.data["classes"] == ENTRY.meta["categories"] and len(named.data["classes"]) == 1000
    assert named.data["input_size"] == (224, 224) and named.data["resize"] == 256

    # a checkpoint of the pretrained network reads images as its weights expect
    path = save_checkpoint(torch_home / "r18.safetensors", net.eval(),
                           model_name="torchvision:resnet18",
                           model_kwargs={"blocks": "C,C,C,C", "num_classes": 1000},
                           **named.data)
    ck = load_checkpoint(path)
    assert ck.classes[0] == "tench" and ck.input_size == (224, 224)
    assert ck.meta["data"]["resize"] == 256


def test_a_cached_file_that_fails_the_hash_in_its_name_is_refused(torch_home):
    file = _plant(torch_home, "resnet18-f37072fd.pth", _planted_state())
    with pytest.raises(WeightsNotFoundError) as info:
        backbone_model("torchvision:resnet18", "IMAGENET1K_V1")
    message = str(info.value)
    assert f"cached file {file} does not match the SHA-256 prefix f37072fd" in message
    assert "\n" not in message


def test_offline_without_a_cached_file_is_one_sentence_saying_where_it_looked(torch_home):
    with pytest.raises(WeightsNotFoundError) as info:
        backbone_model("torchvision:resnet18", "IMAGENET1K_V1")
    message = str(info.value)
    expected = torch_home / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    assert f"looked for {expected}" in message and "Temporary failure" in message
    assert "--weights path/to/resnet18-f37072fd.pth" in message and "\n" not in message


def test_an_unknown_name_lists_the_known_ones(torch_home):
    with pytest.raises(WeightsNotFoundError,
                       match=r"ResNet18_Weights has no 'IMAGENET1K_V9'; its names are "
                             r"IMAGENET1K_V1, DEFAULT"):
        resolve("torchvision:resnet18", "IMAGENET1K_V9")


def test_gsop_train_with_a_weights_name_offline_is_one_line(torch_home, tmp_path, capsys):
    code = cli.main(["train", "--backbone", "torchvision:resnet18", "--weights", "IMAGENET1K_V1",
                     "--dataset", "second_order", "--data-option", "num_train=16",
                     "--data-option", "num_test=8", "--epochs", "1", "--device", "cpu",
                     "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith("gsop train: error: torchvision weights ResNet18_Weights.IMAGENET1K_V1")


@pytest.fixture
def hub_cache(tmp_path, monkeypatch) -> Path:
    """An empty Hugging Face hub cache in offline mode: no request is ever made."""
    from huggingface_hub import constants

    cache = tmp_path / "hf" / "hub"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


def test_timm_weights_by_tag_load_from_the_hub_cache(hub_cache):
    source = create_model("timm:resnet18", blocks="-,-,-,-").state_dict()
    torch.manual_seed(5)
    import timm

    state = timm.create_model("resnet18", pretrained=False).state_dict()
    commit = "0" * 40
    repo = hub_cache / "models--timm--resnet18.a1_in1k"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    safetensors.torch.save_file(state, str(repo / "snapshots" / commit / "model.safetensors"))

    net = backbone_model("timm:resnet18", "a1_in1k")
    assert torch.equal(net.stem[0].weight, state["conv1.weight"])
    assert not torch.equal(net.stem[0].weight, source["stem.0.weight"])
    data = net.named_weights.data
    assert net.named_weights.full_name == "timm/resnet18.a1_in1k"
    assert data["input_size"] == (224, 224) and data["resize"] == 235  # crop_pct 0.95
    assert len(data["classes"]) == 1000


def test_timm_weights_offline_and_uncached_are_one_sentence(hub_cache):
    with pytest.raises(WeightsNotFoundError) as info:
        backbone_model("timm:resnet18", "a1_in1k")
    message = str(info.value)
    assert "timm weights timm/resnet18.a1_in1k are not in the hub's cache" in message
    assert "models--timm--resnet18.a1_in1k" in message and "\n" not in message
    with pytest.raises(WeightsNotFoundError, match="timm has no pretrained weights"):
        backbone_model("timm:resnet18", "no_such_tag")


def test_a_run_started_from_named_weights_records_them(torch_home, monkeypatch, tmp_path):
    _plant_with_its_own_hash(torch_home, monkeypatch)
    from gsoplib.train import TrainConfig, Trainer

    trainer = Trainer(TrainConfig(
        model="torchvision:resnet18", weights="IMAGENET1K_V1", dataset="second_order",
        data_options={"num_train": 16, "num_test": 8}, epochs=1, batch_size=8, device="cpu",
        out_dir=str(tmp_path / "run"), progress=False))
    trainer.fit()
    meta = load_checkpoint(tmp_path / "run" / "model.safetensors").meta
    recorded = meta["train"]["weights_data"]
    assert recorded["name"] == "ResNet18_Weights.IMAGENET1K_V1" and recorded["resize"] == 256
    assert recorded["classes"][0] == "tench" and meta["train"]["weights"] == "IMAGENET1K_V1"
