"""What a file is, from its bytes: a safetensors file by its header, a pickle or a zip archive by
its signature. Nothing here loads a tensor or unpickles anything.

A safetensors file is an 8-byte little-endian header length ``n``, ``n`` bytes of JSON (a
mapping from tensor name to ``{"dtype", "shape", "data_offsets"}`` plus an optional
``"__metadata__"`` mapping of strings to strings), then the tensor data. Its first byte is
whatever the length's lowest byte is, so one byte never says what a file is: a file is taken as
safetensors when its whole header parses and is consistent with the file's size, and only a file
that is not is compared with the pickle and zip signatures.
"""

from __future__ import annotations

import json
import math
import reprlib
from dataclasses import dataclass
from typing import BinaryIO

# safetensors refuses longer headers itself; reading one never costs more than this.
MAX_HEADER_BYTES = 100_000_000
DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1,
    "U16": 2, "I16": 2, "F16": 2, "BF16": 2,
    "U32": 4, "I32": 4, "F32": 4,
    "U64": 8, "I64": 8, "F64": 8,
}  # fmt: skip
METADATA = "__metadata__"
MAX_RANK = 32  # a longer shape is no weight; its size's product could take a long time
SHORT = reprlib.Repr()  # a hostile name or value is shown, not printed whole
SHORT.maxstring = SHORT.maxother = 60
SHORT.maxlist = SHORT.maxdict = 4
SHORT.maxlevel = 2


class HeaderError(ValueError):
    """The file's start is not a valid safetensors header; the message is one clause saying why."""


@dataclass(frozen=True)
class TensorEntry:
    """One tensor of the header's table: its dtype, shape and byte range in the data section."""

    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int

    @property
    def nbytes(self) -> int:
        return self.end - self.begin


@dataclass(frozen=True)
class SafetensorsHeader:
    """A parsed, checked header: every tensor's bytes lie inside the file and, together, fill
    its data section exactly (what safetensors itself requires)."""

    metadata: dict[str, str]
    tensors: dict[str, TensorEntry]
    data_bytes: int


def signature(prefix: bytes) -> str | None:
    """'pickle' (protocol 2 or later: what ``torch.save`` wrote before zip archives), 'zip' (what
    it writes now), or None for the first bytes ``prefix`` of a file."""
    if len(prefix) >= 2 and prefix[0] == 0x80 and 2 <= prefix[1] <= 5:
        return "pickle"
    if prefix[:4] in (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08"):
        return "zip"
    return None


def _is_count(value) -> bool:
    return type(value) is int and value >= 0


def _entry(name: str, entry, data_bytes: int) -> TensorEntry:
    tensor = f"tensor {SHORT.repr(name)}"
    if not isinstance(entry, dict):
        raise HeaderError(f"{tensor} is described by a {type(entry).__name__}, not an object")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if not isinstance(dtype, str) or dtype not in DTYPE_BYTES:
        known = ", ".join(DTYPE_BYTES)
        raise HeaderError(f"{tensor} has dtype {SHORT.repr(dtype)}, not one of {known}")
    if (
        not isinstance(shape, list)
        or len(shape) > MAX_RANK
        or not all(_is_count(n) for n in shape)
    ):
        raise HeaderError(f"{tensor} has shape {SHORT.repr(shape)}, not a list of at most "
                          f"{MAX_RANK} sizes")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(_is_count(n) for n in offsets)
        or not offsets[0] <= offsets[1] <= data_bytes
    ):
        raise HeaderError(f"{tensor} has data offsets {SHORT.repr(offsets)} outside the "
                          f"{data_bytes} bytes of data")
    begin, end = offsets
    needed = math.prod(shape) * DTYPE_BYTES[dtype]
    if end - begin != needed:
        raise HeaderError(f"{tensor} takes {end - begin} bytes but its shape and dtype need "
                          f"{needed}")
    return TensorEntry(dtype, tuple(shape), begin, end)


def read_header(file: BinaryIO, size: int) -> SafetensorsHeader:
    """Parse the safetensors header at the start of ``file`` (``size`` bytes long), reading
    at most ``8 + min(size - 8, MAX_HEADER_BYTES)`` bytes.

    Checked: the length fits in the file; the header is UTF-8 JSON, an object; the metadata maps
    strings to strings; each tensor has a known dtype, a shape of at most ``MAX_RANK``
    non-negative ints and offsets whose span is its shape times its dtype's size; the tensors
    tile the data section with no gap or overlap. Raises :class:`HeaderError` saying which
    check failed.
    """
    prefix = file.read(8)
    if len(prefix) < 8:
        raise HeaderError(f"{size} bytes are too few for the 8-byte header length")
    length = int.from_bytes(prefix, "little")
    if length > min(size - 8, MAX_HEADER_BYTES):
        raise HeaderError(f"the header length {length} does not fit in the file's {size} bytes")
    try:
        header = json.loads(file.read(length).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise HeaderError(f"the header is not JSON ({' '.join(str(error).split())})") from None
    if not isinstance(header, dict):
        raise HeaderError(f"the header is a JSON {type(header).__name__}, not an object")
    metadata = header.pop(METADATA, None)
    metadata = {} if metadata is None else metadata
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise HeaderError("the header's __metadata__ does not map strings to strings")
    data_bytes = size - 8 - length
    tensors = {name: _entry(name, entry, data_bytes) for name, entry in header.items()}
    end = 0
    for name, entry in sorted(tensors.items(), key=lambda item: (item[1].begin, item[1].end)):
        if entry.begin != end:
            raise HeaderError(
                f"tensor {SHORT.repr(name)} starts at byte {entry.begin} of the data, not {end}"
            )
        end = entry.end
    if end != data_bytes:
        raise HeaderError(f"the tensors take {end} bytes but the file holds {data_bytes} after "
                          "the header")
    return SafetensorsHeader(metadata, tensors, data_bytes)
