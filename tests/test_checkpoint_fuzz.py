"""Fuzzing the checkpoint loader: every mutated file ends in CheckpointError or a correct load.

One small_vanilla checkpoint is saved once; a seeded generator then flips bytes of its header
and of its weights, truncates it, rewrites its tensor table, and puts values of the wrong type
(or out of range) anywhere in its metadata. A small_gsop2 (iSQRT-COV head) has its model keyword
arguments, head ones included, mutated the same way, and with values out of every bound
(Newton-Schulz iterations of 10**9). Any other exception, a load whose weights are not the saved
ones, or a refusal slower than a second, fails the test with the mutation that caused it.
"""

from __future__ import annotations

import json
import random
import struct
import time
from pathlib import Path

import pytest
import safetensors.torch
import torch

from gsoplib.checkpoint import METADATA_KEY, CheckpointError, load_checkpoint, save_checkpoint
from gsoplib.models import create_model

SEED = 16
CASES = {"header bytes": 150, "weight bytes": 20, "truncation": 50, "tensor table": 60,
         "metadata value": 200, "metadata key": 30}
KWARGS = {"num_classes": 3, "in_chans": 1, "widths": [4, 4, 4], "stem_width": 4}
# Values of every JSON type, and of the right types but out of every bound.
VALUES = [None, True, False, 0, -1, 1, 3, 2**63, -(2**31), 1e308, -0.0, float("nan"),
          float("inf"), "", "x", "3", "F32", [], [0], [1, 1], [None], ["a"], [[]], [8, 8],
          [0.5], {}, {"a": 1}, {"num_classes": 3}, "small_vanilla"]
# Model keyword arguments: the values above, and numbers at and past every bound.
KWARG_VALUES = [*VALUES, 10**9, -3, "five", 2, 4, 20, 21, 200, 201, 0.5, 1.5, 1e4, 1e5, "cosine",
                "dense", "sop", "einsum", [64, 32], [4, 4], [4, 4, 4], "C,C,C", "-,-,√"]
KWARG_CASES = 250
GSOP2_KWARGS = {**KWARGS, "head_kwargs": {"rd_channels": 4, "iters": 3, "feature_scale": 4.0,
                                          "dropout": 0.0}}


def _save(folder: Path, name: str, kwargs: dict):
    """A saved checkpoint: its bytes, its tensors and its parsed header."""
    torch.manual_seed(0)
    path = save_checkpoint(
        folder / f"{name}.safetensors",
        create_model(name, **kwargs).eval(), model_name=name,
        model_kwargs=kwargs, classes=["a", "b", "c"], input_size=(8, 8), in_chans=1,
        mean=(0.5,), std=(0.25,), dataset="toy", train_config={"recipe": "fast", "epochs": 1},
        metrics={"test_top1": 0.5},
    )
    data = path.read_bytes()
    length = struct.unpack("<Q", data[:8])[0]
    return {"bytes": data, "length": length, "header": json.loads(data[8:8 + length]),
            "tensors": safetensors.torch.load_file(str(path))}


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    return _save(tmp_path_factory.mktemp("fuzz"), "small_vanilla", KWARGS)


@pytest.fixture(scope="module")
def gsop2(tmp_path_factory):
    return _save(tmp_path_factory.mktemp("fuzz"), "small_gsop2", GSOP2_KWARGS)


def _paths(node, prefix=()):
    """Every place in a JSON tree: (keys...) tuples, containers included."""
    yield prefix
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(
        node, list) else ()
    for key, child in items:
        yield from _paths(child, (*prefix, key))


def _set(tree, where, value):
    *parents, leaf = where
    for key in parents:
        tree = tree[key]
    if value is _DELETE:
        del tree[leaf]
    else:
        tree[leaf] = value


_DELETE = object()


def _file(header: dict, data: bytes) -> bytes:
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def _other_type(rng: random.Random, value):
    """A value of another JSON type than ``value``'s most of the time, else any value."""
    choices = [v for v in VALUES if type(v) is not type(value)] if rng.random() < 0.7 else VALUES
    return rng.choice(choices)


def _mutants(original):
    """(description, file bytes) for every case of CASES, from one seeded generator."""
    rng = random.Random(SEED)
    data, length = original["bytes"], original["length"]
    body = data[8 + length:]
    for _ in range(CASES["header bytes"]):
        mutated = bytearray(data)
        spots = rng.sample(range(8 + length), rng.randint(1, 3))
        for spot in spots:
            mutated[spot] ^= rng.randrange(1, 256)
        yield f"header bytes {spots} flipped", bytes(mutated)
    for _ in range(CASES["weight bytes"]):
        mutated = bytearray(data)
        spot = rng.randrange(8 + length, len(data))
        mutated[spot] ^= rng.randrange(1, 256)
        yield f"weight byte {spot} flipped", bytes(mutated)
    for _ in range(CASES["truncation"]):
        cut = rng.randrange(len(data))
        yield f"truncated to {cut} bytes", data[:cut]
    header = original["header"]
    entries = [(name, field) for name in header if name != "__metadata__"
               for field in ("dtype", "shape", "data_offsets")]
    for _ in range(CASES["tensor table"]):
        mutated = json.loads(json.dumps(header))
        name, field = rng.choice(entries)
        value = _other_type(rng, mutated[name][field])
        mutated[name][field] = value
        yield f"tensor {name} {field} = {value!r}", _file(mutated, body)
    meta = json.loads(header["__metadata__"][METADATA_KEY])
    places = [p for p in _paths(meta) if p]
    for _ in range(CASES["metadata value"]):
        mutated = json.loads(json.dumps(meta))
        where = rng.choice(places)
        value = _other_type(rng, _get(meta, where))
        _set(mutated, where, value)
        outer = {**header, "__metadata__": {**header["__metadata__"],
                                            METADATA_KEY: json.dumps(mutated)}}
        yield f"metadata {'.'.join(map(str, where))} = {value!r}", _file(outer, body)
    for _ in range(CASES["metadata key"]):
        mutated = json.loads(json.dumps(meta))
        where = rng.choice(places)
        _set(mutated, where, _DELETE)
        outer = {**header, "__metadata__": {**header["__metadata__"],
                                            METADATA_KEY: json.dumps(mutated)}}
        yield f"metadata {'.'.join(map(str, where))} deleted", _file(outer, body)


def _kwarg_mutants(original):
    """(description, file bytes): KWARG_CASES changes of one model keyword argument's value
    (head and block arguments included), or a new argument, from one seeded generator."""
    rng = random.Random(SEED + 1)
    header, body = original["header"], original["bytes"][8 + original["length"]:]
    meta = json.loads(header["__metadata__"][METADATA_KEY])
    places = [p for p in _paths(meta["model"]["kwargs"]) if p]
    for _ in range(KWARG_CASES):
        mutated = json.loads(json.dumps(meta))
        value = rng.choice(KWARG_VALUES)
        if rng.random() < 0.15:  # an argument no bound declares, or one a file may not set
            where = (*rng.choice([(), ("head_kwargs",)]),
                     rng.choice(["iterations", "act_layer", "weights", "eps"]))
        else:
            where = rng.choice(places)
        _set(mutated["model"]["kwargs"], where, value)
        outer = {**header, "__metadata__": {**header["__metadata__"],
                                            METADATA_KEY: json.dumps(mutated)}}
        yield f"model.kwargs.{'.'.join(map(str, where))} = {value!r}", _file(outer, body)


def _get(tree, where):
    for key in where:
        tree = tree[key]
    return tree


def _outcome(path: Path, original) -> str:
    """'refused' (one sentence naming the file) or 'loaded' (the saved weights, usable data)."""
    try:
        ck = load_checkpoint(path)
    except CheckpointError as error:
        message = str(error)
        assert "\n" not in message and str(path) in message, message
        return "refused"
    state = ck.model.state_dict()
    assert state.keys() == original["tensors"].keys()
    assert all(torch.equal(state[k], t) for k, t in original["tensors"].items())
    h, w = ck.input_size
    assert ck.model(torch.zeros(1, ck.in_chans, h, w)).shape == (1, len(ck.classes))
    assert len(ck.mean) == len(ck.std) == ck.in_chans
    return "loaded"


def test_mutated_checkpoints_are_refused_in_one_sentence_or_load_correctly(original, tmp_path):
    start = time.perf_counter()
    path = tmp_path / "mutant.safetensors"
    outcomes, failures = {"refused": 0, "loaded": 0}, []
    for description, data in _mutants(original):
        path.write_bytes(data)
        try:
            outcomes[_outcome(path, original)] += 1
        except Exception as error:  # anything else is what this test exists to find
            failures.append(f"{description}: {type(error).__name__}: {error}"[:300])
    elapsed = time.perf_counter() - start
    assert not failures, "\n".join(failures)
    assert sum(outcomes.values()) == sum(CASES.values())
    # both ends are reached: most mutants are refused, and harmless ones (a flipped byte of the
    # training recipe, a metric of another type) still load
    assert outcomes["refused"] > outcomes["loaded"] > 0, outcomes
    assert elapsed < 60, f"{sum(CASES.values())} mutants took {elapsed:.0f} s"


def test_mutated_model_arguments_are_refused_within_a_second_or_load_correctly(gsop2, tmp_path):
    """Each run-time argument (iterations, scales, flags, names) mutated in type and range: a
    refusal names the field and comes before anything is built; what loads computes."""
    path = tmp_path / "mutant.safetensors"
    outcomes, failures = {"refused": 0, "loaded": 0}, []
    for description, data in _kwarg_mutants(gsop2):
        path.write_bytes(data)
        start = time.perf_counter()
        try:
            outcome = _outcome(path, gsop2)
        except Exception as error:  # anything else is what this test exists to find
            failures.append(f"{description}: {type(error).__name__}: {error}"[:300])
            continue
        elapsed = time.perf_counter() - start
        if outcome == "refused" and elapsed > 1.0:
            failures.append(f"{description}: refused after {elapsed:.2f} s")
        outcomes[outcome] += 1
    assert not failures, "\n".join(failures)
    assert sum(outcomes.values()) == KWARG_CASES
    assert outcomes["refused"] > outcomes["loaded"] > 0, outcomes
