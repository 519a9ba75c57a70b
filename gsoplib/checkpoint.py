"""Checkpoints: one .safetensors file whose metadata says how to rebuild and use the model.

The file holds the model's tensors and one metadata entry, ``gsoplib``, a JSON document::

    {"format": "gsoplib.checkpoint/1",
     "model": {"name": "small_gsop1", "kwargs": {"num_classes": 10, "in_chans": 1}},
     "data": {"name": "fashion_mnist", "classes": [...], "input_size": [28, 28],
              "in_chans": 1, "mean": [...], "std": [...], "options": {}, "resize": null},
     "train": {...the training configuration...}, "metrics": {...final metrics...},
     "versions": {"gsoplib": "...", "torch": "...", "python": "..."},
     "sha256": "<digest of every tensor's name, dtype, shape and bytes>"}

Loading reads only that, and trusts none of it. In order, it checks:

1. the format, by what the file is: a safetensors header that parses and whose tensors lie inside
   the file (:mod:`gsoplib.fileformat`); a pickle or zip archive (``torch.save``) by its
   signature is refused, never opened;
2. the metadata: every field of the right type; 1 to ``MAX_CLASSES`` class names; 1 to
   ``MAX_IN_CHANS`` input channels with one mean and one std (at least ``MIN_STD``) each, all
   finite; an input size of 1 to ``MAX_INPUT_SIDE`` pixels a side; ``resize`` absent, null or a
   shorter side from the input's larger side to ``MAX_INPUT_SIDE``; ``num_classes`` and
   ``in_chans`` in the model's kwargs equal to those;
3. the model's keyword arguments, the zoo's configuration with the file's overrides: each one
   declared, of its type and within its bound (:mod:`gsoplib.models.kwarg_bounds`: Newton-Schulz
   iterations 1 to 20, mixture sizes, widths, strides, names of forms...), an unknown one refused;
4. the model, built by ``create_model(name, **kwargs)`` on the meta device (no memory), and
   stopped once it has far more tensors than the file: its state dict's names and shapes are the
   file's, it is no larger than the file's weights, its last Linear has one output per class
   name and its first convolution takes ``in_chans`` channels;
5. the weights, against the digest; only then is the model allocated and loaded.

Nothing is unpickled and no code from the file runs; a file that fails a check is refused with a
:class:`CheckpointError` whose message is one sentence naming the file and what was wrong.

Training's resume state (optimizer, epoch, random states, history) is a separate ``.pt`` file of
tensors and primitives only, written by :func:`save_state` and read by :func:`load_state` with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import platform
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import safetensors.torch
import torch
from torch import nn
from torch.nn.modules.module import (
    register_module_buffer_registration_hook,
    register_module_parameter_registration_hook,
)

import gsoplib
from gsoplib.fileformat import SHORT, HeaderError, SafetensorsHeader, read_header, signature
from gsoplib.heads.gate import NoisyTopKGate
from gsoplib.models import create_model, is_backbone_name, model_kwargs, parse_mask
from gsoplib.models.kwarg_bounds import MAX_CLASSES, MAX_IN_CHANS, KwargError, check_model_kwargs
from gsoplib.models.zoo import resolve
from gsoplib.state_dict import clean_state_dict, unwrap

FORMAT = "gsoplib.checkpoint/1"
METADATA_KEY = "gsoplib"
# Bounds on what a checkpoint's metadata may ask for: far above any model here, far below what
# would exhaust a machine (one 16 x 2048 x 2048 float32 input is 256 MB).
MAX_INPUT_SIDE = 2048
MIN_STD = 1e-6  # dividing by less turns an image's pixels into infinities


class CheckpointError(ValueError):
    """A file that is not a usable gsoplib checkpoint; the message says why in one sentence."""


@dataclass
class Checkpoint:
    """A loaded checkpoint: the rebuilt model (eval mode) and its metadata."""

    model: nn.Module
    meta: dict
    path: Path

    @property
    def model_name(self) -> str:
        return self.meta["model"]["name"]

    @property
    def classes(self) -> list[str]:
        return list(self.meta["data"]["classes"])

    @property
    def in_chans(self) -> int:
        return int(self.meta["data"]["in_chans"])

    @property
    def input_size(self) -> tuple[int, int]:
        return tuple(self.meta["data"]["input_size"])

    @property
    def resize(self) -> int | None:
        """The shorter side an image is resized to before a centre crop of :attr:`input_size`
        (ImageNet: 256 then 224), or None: the image is resized to :attr:`input_size` whole."""
        value = self.meta["data"].get("resize")
        return None if value is None else int(value)

    @property
    def mean(self) -> tuple[float, ...]:
        return tuple(self.meta["data"]["mean"])

    @property
    def std(self) -> tuple[float, ...]:
        return tuple(self.meta["data"]["std"])

    @property
    def metrics(self) -> dict:
        return dict(self.meta.get("metrics") or {})


def tensor_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes, in sorted name order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def versions() -> dict[str, str]:
    return {
        "gsoplib": gsoplib.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write via ``write(tmp)``, then rename over ``path``: readers see old or new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    try:
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    *,
    model_name: str,
    model_kwargs: Mapping | None = None,
    classes: list[str] | tuple[str, ...],
    input_size: tuple[int, int],
    in_chans: int,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    dataset: str | None = None,
    data_options: Mapping | None = None,
    train_config: Mapping | None = None,
    metrics: Mapping | None = None,
    resize: int | None = None,
) -> Path:
    """Write ``model``'s weights and metadata (see the module docstring) atomically to ``path``.

    ``resize``: the shorter side images are resized to before a centre crop of ``input_size``
    (None: resized to ``input_size`` whole). Every mapping must be JSON-serialisable. Returns the
    path written.
    """
    path = Path(path)
    tensors = {
        k: v.detach().cpu().contiguous().clone()
        for k, v in clean_state_dict(unwrap(model).state_dict()).items()
    }
    meta = {
        "format": FORMAT,
        "model": {"name": model_name,
                  "kwargs": _pin_defaults(model_name, unwrap(model), model_kwargs)},
        "data": {
            "name": dataset,
            "classes": list(classes),
            "input_size": list(input_size),
            "in_chans": int(in_chans),
            "mean": [float(m) for m in mean],
            "std": [float(s) for s in std],
            "options": dict(data_options or {}),
            "resize": None if resize is None else int(resize),
        },
        "train": dict(train_config or {}),
        "metrics": dict(metrics or {}),
        "versions": versions(),
        "sha256": tensor_digest(tensors),
    }
    try:
        text = json.dumps(meta, sort_keys=True)
    except TypeError as error:
        raise ValueError(f"checkpoint metadata must be JSON-serialisable: {error}") from error
    blob = safetensors.torch.save(tensors, metadata={"format": "pt", METADATA_KEY: text})
    _atomic_write(path, lambda tmp: tmp.write_bytes(blob))
    return path


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


class _TooManyTensors(Exception):
    pass


@contextmanager
def _tensor_limit(limit: int) -> Iterator[None]:
    """Stop module constructors in this thread once they have registered more than ``limit``
    parameters and buffers: the file's tensor count bounds how long its model takes to build
    (``layers=[10**7]`` would otherwise build blocks for hours before any check could run)."""
    thread, count = threading.get_ident(), 0

    def count_one(module, name, tensor) -> None:
        nonlocal count
        if tensor is not None and threading.get_ident() == thread:
            count += 1
            if count > limit:
                raise _TooManyTensors

    handles = [register_module_parameter_registration_hook(count_one),
               register_module_buffer_registration_hook(count_one)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _build(path: Path, factory: Callable[..., nn.Module], name: str, kwargs: dict,
           tensors: int) -> nn.Module:
    """``factory(name, **kwargs)`` on the meta device: shapes and sizes, no memory."""
    limit = 2 * tensors + 64  # room for non-persistent buffers and modules built then dropped
    try:
        with _tensor_limit(limit), torch.device("meta"):
            return factory(name, **kwargs)
    except _TooManyTensors:
        raise _refuse(path, f"names a model with more tensors than the {tensors:,} the file "
                            f"holds (stopped building it at {limit:,}).") from None
    except Exception as error:  # hostile kwargs make a constructor fail in its own way
        why = _one_line(error).rstrip(".")
        raise _refuse(path, f"names a model this gsoplib cannot build ({why}).") from error


def _check_fit(path: Path, name: str, skeleton: nn.Module, header: SafetensorsHeader,
               data: dict) -> None:
    """The meta-built ``skeleton`` against the file's tensor table and data fields."""
    expected = skeleton.state_dict()
    stored = header.tensors
    missing = sorted(set(expected) - set(stored))
    unexpected = sorted(set(stored) - set(expected))
    wrong = sorted(k for k in set(expected) & set(stored)
                   if tuple(expected[k].shape) != stored[k].shape)
    if missing or unexpected or wrong:
        parts = [
            f"{label} {', '.join(SHORT.repr(k)[1:-1] for k in keys[:3])}"
            f"{' ...' if len(keys) > 3 else ''}"
            for label, keys in (
                ("missing", missing),
                ("unexpected", unexpected),
                ("wrong shape", wrong),
            )
            if keys
        ]
        raise _refuse(path, f"does not fit model {name!r} ({'; '.join(parts)}).")
    size = sum(t.numel() * t.element_size()
               for t in itertools.chain(skeleton.parameters(), skeleton.buffers()))
    if size > header.data_bytes:
        raise _refuse(path, f"holds {header.data_bytes:,} bytes of weights but its model would "
                            f"take {size:,} bytes; a model larger than its weights is refused.")
    linears = [m for m in skeleton.modules() if isinstance(m, nn.Linear)]
    classes = len(data["classes"])
    if linears and linears[-1].out_features != classes:
        raise _refuse(path, f"has {classes} class names in data.classes but its model has "
                            f"{linears[-1].out_features} outputs; expected one class name per "
                            "output.")
    convs = [m for m in skeleton.modules() if isinstance(m, nn.Conv2d)]
    if convs and convs[0].in_channels != data["in_chans"]:
        plural = "s" * (convs[0].in_channels != 1)
        raise _refuse(path, f"has data.in_chans {data['in_chans']} but its model's first "
                            f"convolution takes {convs[0].in_channels} input channel{plural}.")


#: Head defaults that changed in gsoplib 0.3, as earlier versions had them: a file written
#: before 0.3 (which pinned none of its head's defaults) is rebuilt with these. The GM-SOP gate's
#: form is told from the file's tensors (:func:`_written_defaults`).
LEGACY_HEAD_DEFAULTS = {"isqrt": {"feature_scale": 1.0}, "gated_mixture": {"alpha": 100.0}}
PINNED_SINCE = (0, 3)


def _pin_defaults(model_name: str, model: nn.Module, kwargs: Mapping | None) -> dict:
    """``kwargs`` with every head keyword argument the model was built with written out: a zoo
    model's configured ``head_kwargs`` (the call's own win), and the form of its GM-SOP gate.
    A later change of the zoo's defaults then cannot change what the file computes."""
    kwargs = dict(kwargs or {})
    head_kwargs = kwargs.get("head_kwargs")
    if not isinstance(head_kwargs, (Mapping, type(None))):
        return kwargs
    config = resolve(model_name)
    zoo = dict(config["kwargs"].get("head_kwargs") or {}) if config else {}
    pinned = {**zoo, **(head_kwargs or {})}
    gate = next((m for m in model.modules() if isinstance(m, NoisyTopKGate)), None)
    if gate is not None:
        pinned["gate"] = gate.form
    if pinned:
        kwargs["head_kwargs"] = pinned
    return kwargs


def _version(meta: dict) -> tuple[int, ...]:
    text = str((meta.get("versions") or {}).get("gsoplib", "0"))
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3]) or (0,)


def _written_defaults(name: str, kwargs: dict, tensors, meta: dict) -> dict:
    """``kwargs`` with the head defaults of the gsoplib that wrote the file, for a file written
    before 0.3 (:data:`LEGACY_HEAD_DEFAULTS`). Its GM-SOP gate: 'live', 0.2's default, when the
    file holds the live gate's standardisation buffers (``...gate.norm.running_mean``);
    'release', 0.1's, when it does not."""
    head_kwargs = kwargs.get("head_kwargs") or {}
    if _version(meta) >= PINNED_SINCE or not isinstance(head_kwargs, dict):
        return kwargs
    try:
        built = model_kwargs(name, **kwargs)
        head = built.get("head") or (
            "isqrt" if parse_mask(built.get("blocks") or "-", len(built["layers"]))[1] else "gap")
    except Exception:  # an unknown name or bad kwargs: the checks that follow say so
        return kwargs
    legacy = dict(LEGACY_HEAD_DEFAULTS.get(head, {}))
    if head == "gated_mixture":
        live = any(k.endswith("gate.norm.running_mean") for k in tensors)
        legacy["gate"] = "live" if live else "release"
    if not legacy:
        return kwargs
    return {**kwargs, "head_kwargs": {**legacy, **head_kwargs}}


def _check_bounds(path: Path, name: str, kwargs: dict) -> None:
    """Every keyword argument of the model that would be built (the zoo's configuration of
    ``name`` with the file's overrides) declared and within its bound
    (:mod:`gsoplib.models.kwarg_bounds`); nothing is built."""
    backbone = is_backbone_name(name)
    try:
        merged = kwargs if backbone else model_kwargs(name, **kwargs)
    except (ValueError, TypeError) as error:
        raise _refuse(path, f"names a model this gsoplib cannot build "
                            f"({_one_line(error).rstrip('.')}).") from None
    try:
        check_model_kwargs(merged, backbone=backbone)
    except KwargError as error:
        raise _refuse(path, f"has metadata {_one_line(error)}.") from None


def load_checkpoint(
    path: str | os.PathLike,
    device: torch.device | str = "cpu",
    model_factory: Callable[..., nn.Module] | None = None,
) -> Checkpoint:
    """Rebuild the model from the metadata alone and load its verified weights.

    The checks, in order, are those of the module docstring; the model is allocated only once
    it is known to be no larger than the weights in the file.

    Args:
        path: a file written by :func:`save_checkpoint`.
        device: where the model goes.
        model_factory: ``factory(name, **kwargs) -> nn.Module``; default
            :func:`gsoplib.models.create_model`. It is called twice: on the meta device to check
            the model, then to build it.
    Returns:
        a :class:`Checkpoint` with the model in eval mode.
    Raises:
        CheckpointError: the file is missing, pickled, corrupt, truncated, from another format,
            has metadata of the wrong type or out of bounds or that disagrees with itself, names
            a model that cannot be built, or its weights do not fit the model.
    """
    path = Path(path)
    header, meta = _read(path)
    name, kwargs = meta["model"]["name"], meta["model"].get("kwargs", {})
    if model_factory is None:
        model_factory = create_model
        kwargs = _written_defaults(name, kwargs, header.tensors, meta)
        _check_bounds(path, name, kwargs)
    skeleton = _build(path, model_factory, name, kwargs, len(header.tensors))
    _check_fit(path, name, skeleton, header, meta["data"])
    try:
        tensors = safetensors.torch.load_file(str(path))
    except Exception as error:  # safetensors raises its own error types for what it refuses
        raise _refuse(
            path, f"is not a valid safetensors file (corrupt or truncated: {_one_line(error)})."
        ) from error
    if tensor_digest(tensors) != meta["sha256"]:
        raise _refuse(path, "has weights that do not match the checksum in its metadata (corrupt).")
    try:
        model = model_factory(name, **kwargs)
        model.load_state_dict(tensors)
    except Exception as error:  # the file or the factory changed since the checks above
        why = _one_line(error).rstrip(".")
        raise _refuse(path, f"does not fit model {name!r} once built ({why}).") from error
    return Checkpoint(model.to(device).eval(), meta, path)


def save_state(path: str | os.PathLike, state: Mapping) -> Path:
    """Write resume state (tensors, numbers, strings, lists, dicts only) atomically."""
    path = Path(path)
    _atomic_write(path, lambda tmp: torch.save(dict(state), tmp))
    return path


def load_state(path: str | os.PathLike) -> dict:
    """Read resume state with ``torch.load(weights_only=True)``: no code in the file can run."""
    path = Path(path)
    if not path.is_file():
        raise _refuse(path, "does not exist; there is no training state to resume from.")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # weights_only refuses any pickled global it does not allow
        raise _refuse(
            path, f"is not a readable resume state (corrupt, or holds code: {_one_line(error)})."
        ) from error
