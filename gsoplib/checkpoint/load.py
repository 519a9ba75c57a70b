"""Loading a checkpoint: the model's arguments bounded, the model built on the meta device and
matched to the file, the weights verified, then allocated (steps 3 to 5 of
:mod:`gsoplib.checkpoint`)."""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable, Iterator
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

from gsoplib.fileformat import SHORT, SafetensorsHeader
from gsoplib.models.backbones import is_backbone_name
from gsoplib.models.build import build_model, model_kwargs
from gsoplib.models.kwarg_bounds import KwargError, check_model_kwargs

from .compat import _written_defaults
from .metadata import _one_line, _read, _refuse
from .save import tensor_digest


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
            :func:`gsoplib.models.build.build_model`. It is called twice: on the meta device to
            check the model, then to build it.
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
        model_factory = build_model
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
