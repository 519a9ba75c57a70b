"""Floor 1: named things looked up alike (blocks, heads, models, recipes, datasets, pretrained
weights): one lookup, one name filter, one error sentence with the close names.

    >>> from gsoplib.blocks import BLOCKS
    >>> BLOCKS.names("gsop_fuse_*")
    ['gsop_fuse_avg', 'gsop_fuse_max', 'gsop_fuse_cat']
    >>> BLOCKS.get("gsop_pso")
    Traceback (most recent call last):
    ...
    gsoplib.registry.UnknownNameError: unknown block 'gsop_pso'. Did you mean gsop_pos, ...
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Iterable, Mapping
from typing import Any

_REQUIRED = object()


class UnknownNameError(ValueError):
    """A name no registry entry has; the message names the close ones and every known one."""


def did_you_mean(name: Any, known: Iterable[str]) -> str:
    """" Did you mean a, b?" with up to three close names, or "" when none is close."""
    close = difflib.get_close_matches(str(name), list(known), n=3, cutoff=0.5)
    return f" Did you mean {', '.join(close)}?" if close else ""


def unknown(kind: str, name: Any, known: Iterable[str], plural: str | None = None
            ) -> UnknownNameError:
    """The one sentence every registry says: unknown KIND 'name'. Did you mean ...? Known ..."""
    known = list(known)
    hint = did_you_mean(name, known)
    return UnknownNameError(f"unknown {kind} {name!r}.{hint} Known {plural or kind + 's'}: "
                            f"{', '.join(known) or 'none'}.")


def matching(names: Iterable[str], pattern: str | None = None) -> list[str]:
    """``names`` that match ``pattern``: a shell-style pattern (``*gsop*``, ``small_?se``) as
    fnmatch reads it, or, without a wildcard, any name that contains it (as before 0.4)."""
    names = list(names)
    if pattern is None:
        return names
    if not any(c in pattern for c in "*?["):
        return [n for n in names if pattern in n]
    return [n for n in names if fnmatch.fnmatchcase(n, pattern)]


class Registry(dict):
    """A dict of name -> entry that looks names up as every registry of gsoplib does.

    ``get(name)`` raises :class:`UnknownNameError` (``get(name, default)`` is dict's);
    ``names(pattern)`` filters with :func:`matching`; ``register(name)`` decorates.
    """

    def __init__(self, kind: str, entries: Mapping[str, Any] | None = None,
                 plural: str | None = None) -> None:
        super().__init__(entries or {})
        self.kind, self.plural = kind, plural

    def get(self, name: str, default: Any = _REQUIRED) -> Any:
        if name in self:
            return self[name]
        if default is not _REQUIRED:
            return default
        raise unknown(self.kind, name, self, self.plural)

    def names(self, pattern: str | None = None) -> list[str]:
        return matching(self, pattern)

    def register(self, name: str):
        def add(entry):
            self[name] = entry
            return entry

        return add


__all__ = ["Registry", "UnknownNameError", "did_you_mean", "matching", "unknown"]
