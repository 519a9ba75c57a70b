"""Model panel: choose a bundled checkpoint, a file path or an upload; show its card.

Loaded models are cached with ``st.cache_resource``, so every session shares one copy; each comes
with a lock that whoever registers hooks on it (probe, attribution) must hold, so concurrent
sessions never interleave their hooks.

A hostile or broken checkpoint costs only its own session a message: :func:`load_checkpoint`
refuses it before allocating anything larger than the file, an upload over the limit is refused
by its size before it is read, and a model that loads but fails on its own input is refused too.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import streamlit as st
from gsoplib.explorer import pipeline
from gsoplib.explorer.image_panel import InputSpec

from gsoplib import pretrained
from gsoplib.bundled import file_stem
from gsoplib.checkpoint import Checkpoint, CheckpointError, load_checkpoint

MAX_CHECKPOINT_MB = 200
SOURCES = ("Bundled", "File path", "Upload")


@dataclass(frozen=True)
class LoadedModel:
    """A checkpoint ready to run: ``key`` names it for caches, ``lock`` guards its hooks."""

    key: str
    label: str
    checkpoint: Checkpoint
    lock: threading.Lock

    @property
    def spec(self) -> InputSpec:
        ckpt = self.checkpoint
        return InputSpec(ckpt.in_chans, ckpt.input_size, ckpt.mean, ckpt.std,
                         ckpt.meta["data"].get("name"), ckpt.resize)


def _ready(key: str, label: str, checkpoint: Checkpoint) -> LoadedModel:
    """The loaded model after one pass of every view over a random input of its size; a model
    that loads but fails there (an input too small for its occlusion window, say) is refused
    here, before any session shows it."""
    loaded = LoadedModel(key, label, checkpoint, threading.Lock())
    try:
        pipeline.warm_up(checkpoint, loaded.lock)
    except Exception as error:  # whatever its metadata made the views do, one sentence
        height, width = checkpoint.input_size
        why = " ".join(str(error).split()).rstrip(".") or type(error).__name__
        raise CheckpointError(
            f"'{label}' loads, but its model fails on the {height}x{width} input its metadata "
            f"describes ({why})."
        ) from error
    return loaded


@st.cache_resource(max_entries=8, show_spinner="Loading the bundled checkpoint...")
def load_bundled(name: str) -> LoadedModel:
    return _ready(f"bundled:{name}", name, pretrained.load_pretrained(name))


@st.cache_resource(max_entries=8, show_spinner="Loading the checkpoint...")
def load_path(path: str, stamp: tuple[int, int]) -> LoadedModel:
    """``stamp`` (modification time, size) makes an overwritten file load afresh."""
    return _ready(f"path:{path}:{stamp}", Path(path).name, load_checkpoint(path))


@st.cache_resource(max_entries=4, show_spinner="Loading the uploaded checkpoint...")
def load_upload(digest: str, name: str, _data: bytes) -> LoadedModel:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / (Path(name).name or "upload.safetensors")
        path.write_bytes(_data)
        try:
            checkpoint = load_checkpoint(path)
        except CheckpointError as err:
            # The user knows the file by its name, not by where it was staged.
            raise CheckpointError(str(err).replace(str(path), f"'{name}'")) from None
    return _ready(f"upload:{digest}", name, checkpoint)


def _from_path(text: str) -> LoadedModel:
    path = Path(text).expanduser().resolve()
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist or is not a file; expected a .safetensors "
                              "checkpoint.")
    info = path.stat()
    return load_path(str(path), (info.st_mtime_ns, info.st_size))


def _from_upload(upload) -> LoadedModel:
    """The uploaded checkpoint; one over the size limit is refused by its size, unread."""
    if upload.size > MAX_CHECKPOINT_MB * 2**20:
        raise CheckpointError(
            f"'{upload.name}' is {upload.size / 2**20:.0f} MB, over the {MAX_CHECKPOINT_MB} MB "
            "checkpoint upload limit."
        )
    data = upload.getvalue()
    return load_upload(hashlib.sha256(data).hexdigest(), upload.name, data)


def choose(prefix: str, title: str, default: str | None = None) -> LoadedModel | None:
    """Source picker in the sidebar; returns the loaded model, or None with the reason shown.

    ``default``: a bundled checkpoint's name or a file path to start from.
    """
    st.header(title)
    bundled = pretrained.list_pretrained()
    sources = list(SOURCES) if bundled else list(SOURCES[1:])
    if not bundled:
        st.caption(f"No checkpoint is bundled with this gsoplib ({pretrained.FOLDER} holds no "
                   ".safetensors file): give a checkpoint's path or upload one.")
    stem = file_stem(default) if default else None  # arch.tag or the file's stem
    start_path = default if default and stem not in bundled else None
    source = st.radio("Checkpoint", sources, index=sources.index("File path") if start_path else 0,
                      horizontal=True, key=f"{prefix}source")
    try:
        if source == "Bundled":
            first = bundled.index(stem) if stem in bundled else 0
            name = st.selectbox("Bundled checkpoint", bundled, index=first, key=f"{prefix}bundled")
            return load_bundled(name)
        if source == "File path":
            text = st.text_input(".safetensors path", value=start_path or "",
                                 key=f"{prefix}path")
            return _from_path(text) if text.strip() else None
        upload = st.file_uploader(
            f"Upload a .safetensors checkpoint (up to {MAX_CHECKPOINT_MB} MB)",
            type=["safetensors"],
            max_upload_size=MAX_CHECKPOINT_MB,
            key=f"{prefix}upload",
        )
        return _from_upload(upload) if upload is not None else None
    except CheckpointError as err:
        st.error(str(err))
        return None


def card(loaded: LoadedModel, blocks: list[str]) -> None:
    """Architecture, dataset, classes, accuracy, recipe and where the blocks sit."""
    meta = loaded.checkpoint.meta
    model, data = meta["model"], meta["data"]
    kwargs = ", ".join(f"{k}={v!r}" for k, v in sorted(model.get("kwargs", {}).items()))
    st.markdown(f"**{model['name']}**({kwargs})")
    height, width = data["input_size"]
    st.markdown(
        f"Data: **{data.get('name') or 'unknown'}**, {width}x{height}, "
        f"{data['in_chans']} channel(s), {len(data['classes'])} classes"
    )
    metrics = {k: v for k, v in meta.get("metrics", {}).items() if isinstance(v, int | float)}
    if summary := _training_summary(metrics, meta.get("train", {})):
        st.markdown(summary)
    st.markdown("Second-order parts, in network order: " + (", ".join(f"`{b}`" for b in blocks)
                                                            or "none"))
    with st.expander("Classes, metrics and training recipe"):
        st.write(", ".join(data["classes"]))
        st.code(json.dumps({"metrics": metrics, "train": meta.get("train", {})}, indent=1,
                           sort_keys=True), language="json")


def _training_summary(metrics: dict, train: dict) -> str:
    """'test top-1 **93.31%** · test top-5 **99.86%** · 5 epochs, recipe `fast`, 38 min on cpu'
    from what the checkpoint's metadata holds (the rest is in the expander)."""
    parts = [f"{label} **{100 * metrics[key]:.2f}%**"
             for key, label in (("test_top1", "test top-1"), ("test_top5", "test top-5"))
             if key in metrics and 0 <= metrics[key] <= 1]
    how = []
    if isinstance(train.get("epochs"), int):
        how.append(f"{train['epochs']} epoch{'s' * (train['epochs'] != 1)}")
    if train.get("recipe"):
        how.append(f"recipe `{train['recipe']}`")
    if isinstance(train.get("wall_time_s"), int | float):
        where = f" on {train['device_type']}" if train.get("device_type") else ""
        how.append(f"{train['wall_time_s'] / 60:.0f} min{where}")
    return " · ".join(parts + ([", ".join(how)] if how else []))
