"""A checkpoint's format and metadata, checked field by field before anything is built (steps 1 and
2 of :mod:`gsoplib.checkpoint`); :class:`CheckpointError`, the one sentence a refusal is."""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

from gsoplib.fileformat import SHORT, HeaderError, SafetensorsHeader, read_header, signature
from gsoplib.models.kwarg_bounds import MAX_CLASSES, MAX_IN_CHANS

FORMAT = "gsoplib.checkpoint/1"
METADATA_KEY = "gsoplib"
# Bounds on what a checkpoint's metadata may ask for: far above any model here, far below what
# would exhaust a machine (one 16 x 2048 x 2048 float32 input is 256 MB).
MAX_INPUT_SIDE = 2048
MIN_STD = 1e-6  # dividing by less turns an image's pixels into infinities


class CheckpointError(ValueError):
    """A file that is not a usable gsoplib checkpoint; the message says why in one sentence."""


def _refuse(path: Path, why: str) -> CheckpointError:
    return CheckpointError(f"{path} {why}")


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _is_int(value) -> bool:
    return type(value) is int


def _is_finite(value) -> bool:
    if type(value) not in (int, float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def _bad(path: Path, field: str, value, expected: str) -> CheckpointError:
    return _refuse(path, f"has metadata {field} {SHORT.repr(value)}; expected {expected}.")


def _read_header(path: Path) -> SafetensorsHeader:
    """The file's safetensors header; a pickle, a zip archive or anything else is refused."""
    if not path.is_file():
        raise _refuse(path, "does not exist or is not a file; expected a .safetensors checkpoint.")
    with open(path, "rb") as f:
        try:
            return read_header(f, os.fstat(f.fileno()).st_size)
        except HeaderError as error:
            f.seek(0)
            kind = signature(f.read(8))
            why = str(error)
    if kind == "pickle":
        raise _refuse(path, "is a pickled PyTorch file (torch.save's legacy format) or another "
                            "pickle, which can run code when loaded; gsoplib reads only "
                            ".safetensors checkpoints.")
    if kind == "zip":
        raise _refuse(path, "is a pickled PyTorch file (the zip archive torch.save writes) or "
                            "another zip archive; a pickle can run code when loaded, and gsoplib "
                            "reads only .safetensors checkpoints.")
    raise _refuse(path, f"is not a valid safetensors file (corrupt or truncated: {why}).")


def _check_sections(path: Path, meta: dict) -> None:
    """model, data and sha256 present; every section an object; the names strings."""
    missing = [k for k in ("model", "data", "sha256") if k not in meta]
    if missing:
        raise _refuse(path, f"has metadata without {', '.join(missing)}.")
    for key in ("model", "data", "train", "metrics", "versions"):
        if key in meta and not isinstance(meta[key], dict):
            raise _bad(path, key, meta[key], "an object")
    if not isinstance(meta["sha256"], str) or not re.fullmatch("[0-9a-f]{64}", meta["sha256"]):
        raise _bad(path, "sha256", meta["sha256"], "the weights' SHA-256, 64 hex digits")
    model, data = meta["model"], meta["data"]
    if not isinstance(model.get("name"), str) or not model["name"]:
        raise _bad(path, "model.name", model.get("name"), "the name of a model")
    if not isinstance(model.get("kwargs", {}), dict):
        raise _bad(path, "model.kwargs", model["kwargs"], "an object of keyword arguments")
    if data.get("name") is not None and not isinstance(data["name"], str):
        raise _bad(path, "data.name", data["name"], "the name of a dataset, or null")
    if not isinstance(data.get("options", {}), dict):
        raise _bad(path, "data.options", data["options"], "an object")


def _check_data(path: Path, data: dict) -> None:
    """The data fields in their bounds, and mean and std one per input channel."""
    classes, in_chans = data.get("classes"), data.get("in_chans")
    if (
        not isinstance(classes, list)
        or not 1 <= len(classes) <= MAX_CLASSES
        or not all(isinstance(c, str) for c in classes)
    ):
        raise _bad(path, "data.classes", classes,
                   f"a list of 1 to {MAX_CLASSES:,} class names (strings)")
    if not _is_int(in_chans) or not 1 <= in_chans <= MAX_IN_CHANS:
        raise _bad(path, "data.in_chans", in_chans,
                   f"a whole number of input channels from 1 to {MAX_IN_CHANS}")
    size = data.get("input_size")
    if (
        not isinstance(size, list)
        or len(size) != 2
        or not all(_is_int(n) and 1 <= n <= MAX_INPUT_SIDE for n in size)
    ):
        raise _bad(path, "data.input_size", size,
                   f"[height, width] in whole pixels from 1 to {MAX_INPUT_SIDE}")
    numbers = f"{in_chans} finite number{'s' * (in_chans != 1)}"
    per_channel = f"one per input channel (data.in_chans {in_chans})"
    mean, std = data.get("mean"), data.get("std")
    if not isinstance(mean, list) or len(mean) != in_chans or not all(map(_is_finite, mean)):
        raise _bad(path, "data.mean", mean, f"{numbers}, {per_channel}")
    if (
        not isinstance(std, list)
        or len(std) != in_chans
        or not all(_is_finite(s) and s >= MIN_STD for s in std)
    ):
        raise _bad(path, "data.std", std, f"{numbers} of at least {MIN_STD:g}, {per_channel}")
    resize = data.get("resize")
    if resize is not None and not (_is_int(resize) and max(size) <= resize <= MAX_INPUT_SIDE):
        raise _bad(path, "data.resize", resize,
                   f"null or a shorter side in whole pixels from {max(size)} (the input size) "
                   f"to {MAX_INPUT_SIDE}")


def _check_kwargs(path: Path, kwargs: dict, data: dict) -> None:
    """The model's num_classes and in_chans, where its kwargs give them, equal to the data's."""
    classes, in_chans = len(data["classes"]), data["in_chans"]
    if "num_classes" in kwargs and not (
        _is_int(kwargs["num_classes"]) and kwargs["num_classes"] == classes
    ):
        raise _refuse(path, f"has {classes} class names in data.classes but "
                            f"model.kwargs.num_classes {SHORT.repr(kwargs['num_classes'])}; "
                            "expected one class name per output.")
    if "in_chans" in kwargs and not (
        _is_int(kwargs["in_chans"]) and kwargs["in_chans"] == in_chans
    ):
        raise _refuse(path, f"has data.in_chans {in_chans} but model.kwargs.in_chans "
                            f"{SHORT.repr(kwargs['in_chans'])}; expected the same channels.")


def _read(path: Path) -> tuple[SafetensorsHeader, dict]:
    """The header and the checked metadata (steps 1 and 2 of the module docstring)."""
    header = _read_header(path)
    if METADATA_KEY not in header.metadata:
        raise _refuse(path, "is a safetensors file without gsoplib metadata to rebuild it from.")
    try:
        meta = json.loads(header.metadata[METADATA_KEY])
    except (ValueError, RecursionError) as error:
        raise _refuse(path, f"has corrupt gsoplib metadata ({_one_line(error)}).") from error
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise _refuse(path, f"has metadata format {SHORT.repr(found)}; this gsoplib reads "
                            f"{FORMAT!r}.")
    _check_sections(path, meta)
    _check_data(path, meta["data"])
    _check_kwargs(path, meta["model"].get("kwargs", {}), meta["data"])
    return header, meta


def read_metadata(path: str | os.PathLike) -> dict:
    """The checkpoint's metadata, checked (format, field types, bounds, agreement of the data
    fields with each other and with the model's kwargs), without reading the weights."""
    return _read(Path(path))[1]
