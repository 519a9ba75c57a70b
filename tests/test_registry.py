"""One registry helper behind blocks, heads, models, recipes, datasets and pretrained weights:
the same lookup, the same name filter, the same error sentence."""

from __future__ import annotations

import pytest

from gsoplib.blocks import create_block, list_blocks
from gsoplib.data import list_datasets, load_dataset
from gsoplib.heads import create_head, list_heads
from gsoplib.models import create_model, list_models
from gsoplib.pretrained import load_pretrained, pretrained_names, pretrained_path
from gsoplib.registry import Registry, UnknownNameError, matching
from gsoplib.train import list_recipes, recipe

LOOKUPS = {
    "block": lambda name: create_block(name, 8),
    "head": lambda name: create_head(name, 8),
    "model": create_model,
    "recipe": recipe,
    "dataset": load_dataset,
    "pretrained checkpoint": load_pretrained,
}
TYPOS = {"block": ("gsop_pso", "gsop_pos"), "head": ("isqr", "isqrt"),
         "model": ("small_gsop3", "small_gsop2"), "recipe": ("fats", "fast"),
         "dataset": ("second_ordr", "second_order"),
         "pretrained checkpoint": ("small_gsop1.fmnst", "small_gsop1.fmnist")}


@pytest.mark.parametrize("kind", list(LOOKUPS))
def test_every_registry_says_the_same_sentence_with_the_close_names(kind):
    typo, close = TYPOS[kind]
    with pytest.raises(UnknownNameError) as info:
        LOOKUPS[kind](typo)
    message = str(info.value)
    assert message.startswith(f"unknown {kind} {typo!r}. Did you mean {close}"), message
    assert "\n" not in message and message.endswith(".")


@pytest.mark.parametrize("lister,pattern,expected", [
    (list_blocks, "gsop_fuse_*", ["gsop_fuse_avg", "gsop_fuse_max", "gsop_fuse_cat"]),
    (list_heads, "*mixture", ["gated_mixture", "average_mixture"]),
    (list_models, "small_gsop?", ["small_gsop1", "small_gsop2"]),
    (list_recipes, "gmsop-*", ["gmsop-imagenet64", "gmsop-places365"]),
    (list_datasets, "cifar*", ["cifar10", "cifar100"]),
    (pretrained_names, "small_vanilla.*", ["small_vanilla.fmnist", "small_vanilla.second_order"]),
])
def test_every_lister_takes_a_shell_pattern(lister, pattern, expected):
    assert lister(pattern) == expected


def test_a_pattern_without_a_wildcard_still_matches_names_that_contain_it():
    assert matching(["small_gsop1", "resnet50_gsop1", "small_se"], "gsop1") == [
        "small_gsop1", "resnet50_gsop1"]
    assert list_models("gsop1") == [n for n in list_models() if "gsop1" in n]


def test_pretrained_weights_are_named_arch_dot_tag_and_by_file_stem():
    assert list_models("*gsop*", pretrained=True) == [
        "small_gsop1.fmnist", "small_gsop1.second_order", "small_gsop2.fmnist",
        "small_gsop_pos.fmnist"]
    assert pretrained_path("small_gsop1.fmnist") == pretrained_path("fmnist_small_gsop1")
    ck = load_pretrained("small_vanilla.second_order")
    assert ck.model_name == "small_vanilla" and ck.meta["data"]["name"] == "second_order"


@pytest.mark.parametrize("name", ["../pretrained/fmnist_small_gsop1", "/etc/passwd", None, 3])
def test_a_pretrained_name_is_never_a_path(name):
    with pytest.raises(UnknownNameError):
        pretrained_path(name)


def test_a_registry_is_a_dict_with_a_strict_get():
    reg = Registry("colour", {"red": 1})
    assert reg.get("red") == 1 and reg.get("blue", 0) == 0 and dict(reg) == {"red": 1}
    with pytest.raises(UnknownNameError, match=r"unknown colour 'rde'\. Did you mean red\? "
                                               r"Known colours: red\."):
        reg.get("rde")
    reg.register("blue")(2)
    assert reg.names("b*") == ["blue"]


def test_a_checkpoint_is_a_file_or_a_bundled_name_in_one_lookup(tmp_path):
    from gsoplib.pretrained import resolve_checkpoint

    assert resolve_checkpoint("small_gsop1.fmnist") == pretrained_path("fmnist_small_gsop1")
    assert resolve_checkpoint("fmnist_small_gsop1") == pretrained_path("fmnist_small_gsop1")
    own = tmp_path / "mine.safetensors"
    own.write_bytes(b"")
    assert resolve_checkpoint(own) == own
    with pytest.raises(UnknownNameError, match=r"'small_gsop1\.fmnst' is neither a file nor a "
                                               r"bundled checkpoint\. Did you mean small_gsop1"):
        resolve_checkpoint("small_gsop1.fmnst")
