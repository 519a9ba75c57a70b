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

from gsoplib.models.kwarg_bounds import MAX_CLASSES, MAX_IN_CHANS
from gsoplib.state_dict import clean_state_dict, unwrap

from .compat import LEGACY_HEAD_DEFAULTS, PINNED_SINCE
from .load import Checkpoint, load_checkpoint
from .metadata import (
    FORMAT,
    MAX_INPUT_SIDE,
    METADATA_KEY,
    MIN_STD,
    CheckpointError,
    read_metadata,
)
from .resume import load_state, save_state
from .save import _atomic_write, save_checkpoint, tensor_digest, versions  # noqa: F401

__all__ = [
    "FORMAT",
    "LEGACY_HEAD_DEFAULTS",
    "MAX_CLASSES",
    "MAX_INPUT_SIDE",
    "MAX_IN_CHANS",
    "METADATA_KEY",
    "MIN_STD",
    "PINNED_SINCE",
    "Checkpoint",
    "CheckpointError",
    "clean_state_dict",
    "load_checkpoint",
    "load_state",
    "read_metadata",
    "save_checkpoint",
    "save_state",
    "tensor_digest",
    "unwrap",
    "versions",
]
