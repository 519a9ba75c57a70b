"""What every subcommand of `gsop` shares: one-line errors and help, KEY=VALUE options, threads,
the checkpoint a name or path gives."""

from __future__ import annotations

import argparse
import json
import textwrap
from pathlib import Path


class _Formatter(argparse.HelpFormatter):
    """Help wrapped at spaces only, so names like gsop-cifar100 stay whole."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


class _Parser(argparse.ArgumentParser):
    """argparse with errors as one line: no usage block, just what was wrong and the choices."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


class UserError(Exception):
    """Bad input from the command line; printed as one line, exit status 2."""


def _model_names() -> list[str]:
    try:
        from gsoplib.models import list_models
    except ImportError:
        return []
    return list_models()


def _key_values(pairs: list[str], flag: str) -> dict:
    """KEY=VALUE strings -> dict; VALUE parsed as JSON (numbers, true, lists) else kept a string."""
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserError(f"{flag} expects KEY=VALUE, got {pair!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _set_threads(args: argparse.Namespace) -> None:
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)


def _resolve_checkpoint(name: str) -> Path:
    """A checkpoint path, or the file of a bundled checkpoint of that name."""
    from gsoplib.pretrained import resolve_checkpoint

    try:
        return resolve_checkpoint(name)
    except ValueError as error:
        raise UserError(f"--checkpoint {error}") from None
