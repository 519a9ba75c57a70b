"""Images panel: gallery samples and uploads, each shown beside the input the model receives."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import streamlit as st
import torch
from PIL import Image

from gsoplib.images import (
    EXTENSIONS,
    MAX_FILE_MB,
    MAX_PIXELS,
    DecodedImage,
    Fit,
    ImageInputError,
    crop_box,
    decode_image,
    to_model_image,
    to_tensor,
    unlike_training,
)

GALLERY_DIR = Path(__file__).resolve().parent / "gallery"
DEFAULT_GALLERY = "fashion_mnist"
UPLOAD_KEY = "upload_images"
PREVIEW_PX = 160


@dataclass(frozen=True)
class InputSpec:
    """How a checkpoint wants its input: channels, (H, W), per-channel mean and std, the
    dataset it was trained on (which picks the sample gallery) and the shorter side to resize
    to before the centre crop (ImageNet's 256; None: the crop is fit to (H, W) directly)."""

    channels: int
    size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    dataset: str | None = None
    resize: int | None = None


@dataclass(frozen=True)
class ModelInput:
    """One image, decoded and converted: ``tensor`` is (C, H, W), normalised as in training.

    ``key`` identifies the bytes and the conversion, so results computed from it can be cached.
    ``label`` is the true class of a gallery sample, None for uploads. ``preview`` is a small copy
    of the original to show (Streamlit re-encodes every image it shows on every rerun);
    ``box`` is the model input's region of ``preview`` (left, top, right, bottom), where maps over
    the input are drawn on the photo.
    """

    name: str
    key: str
    source: DecodedImage
    preview: Image.Image
    picture: Image.Image
    tensor: torch.Tensor
    label: str | None
    fit: Fit
    invert: bool
    box: tuple[float, float, float, float]


@dataclass(frozen=True)
class Gallery:
    """A folder of test images named ``<label>-<test index>.png`` with a classes.json."""

    dataset: str
    classes: tuple[str, ...]
    files: tuple[Path, ...]

    def label(self, path: Path) -> str:
        return self.classes[int(path.stem.split("-")[0])]

    def caption(self, name: str) -> str:
        label, index = Path(name).stem.split("-")
        return f"{self.classes[int(label)]} (test #{int(index)})"


def _test_index(name: str) -> int:
    return int(Path(name).stem.split("-")[1])


def galleries() -> dict[str, Gallery]:
    """Dataset name -> its sample gallery, for every folder under explorer/gallery."""
    out = {}
    for info in sorted(GALLERY_DIR.glob("*/classes.json")):
        meta = json.loads(info.read_text())
        files = tuple(sorted(info.parent.glob("*.png")))
        out[meta["dataset"]] = Gallery(meta["dataset"], tuple(meta["classes"]), files)
    return out


def gallery_for(dataset: str | None) -> Gallery:
    """The gallery of the checkpoint's dataset, else Fashion-MNIST's."""
    found = galleries()
    return found.get(dataset or "", found[DEFAULT_GALLERY])


def is_own(gallery: Gallery, spec: InputSpec) -> bool:
    """Is the gallery of the checkpoint's own dataset (or does the checkpoint name none)?"""
    return gallery.dataset == (spec.dataset or DEFAULT_GALLERY)


def sample_label(gallery: Gallery, spec: InputSpec, path: Path) -> str | None:
    """A sample's true class, when the gallery is the checkpoint's own (:func:`is_own`);
    another dataset's classes are not this model's (an ImageNet checkpoint shown Fashion-MNIST
    samples)."""
    return gallery.label(path) if is_own(gallery, spec) else None


@st.cache_data(max_entries=512, show_spinner=False)
def _prepare(
    data: bytes, name: str, spec: InputSpec, fit: Fit, invert: bool, label: str | None
) -> ModelInput:
    decoded = decode_image(data, name)
    preview = decoded.image.copy()
    preview.thumbnail((2 * PREVIEW_PX, 2 * PREVIEW_PX))
    digest = hashlib.sha256(data).hexdigest()[:16]
    return _convert(name, digest, decoded, preview, spec, fit, invert, label)


def _convert(
    name: str,
    digest: str,
    decoded: DecodedImage,
    preview: Image.Image,
    spec: InputSpec,
    fit: Fit,
    invert: bool,
    label: str | None,
) -> ModelInput:
    picture = to_model_image(decoded.image, spec.channels, spec.size, fit=fit, invert=invert,
                             resize=spec.resize)
    key = f"{digest}:{hashlib.sha256(repr((spec, fit, invert)).encode()).hexdigest()[:8]}"
    tensor = to_tensor(picture, spec.mean, spec.std)
    # The box in the preview's pixels: the crop of the decoded image, scaled.
    scale = preview.width / decoded.image.width
    box = tuple(scale * v for v in crop_box(decoded.image.size, spec.size, fit=fit,
                                            resize=spec.resize))
    return ModelInput(name, key, decoded, preview, picture, tensor, label, fit, invert, box)


def for_spec(item: ModelInput, spec: InputSpec) -> ModelInput:
    """The same image converted for another model (compare mode), with the same settings."""
    digest = item.key.partition(":")[0]
    return _convert(item.name, digest, item.source, item.preview, spec, item.fit, item.invert,
                    item.label)


def render(spec: InputSpec) -> list[ModelInput]:
    """Pick samples, upload files; returns every image that decoded, errors shown in place."""
    st.subheader("Images")
    pick, upload, convert = st.columns([2, 2, 1])
    gallery = gallery_for(spec.dataset)
    files = {p.name: p for p in gallery.files}
    chosen = pick.multiselect(
        f"Sample images ({gallery.dataset} test set)" if is_own(gallery, spec) else
        f"Sample images ({gallery.dataset} test set: no samples of {spec.dataset} are "
        "bundled, upload your own)",
        list(files),
        default=[min(files, key=_test_index)] if files else [],
        format_func=gallery.caption,
        # One key per gallery: another checkpoint's dataset offers other files.
        key=f"gallery_{gallery.dataset}",
    )
    uploads = upload.file_uploader(
        f"Upload images (PNG, JPEG, BMP, GIF, WebP; up to {MAX_FILE_MB} MB and "
        f"{MAX_PIXELS / 1e6:g} megapixels each)",
        type=list(EXTENSIONS),
        accept_multiple_files=True,
        max_upload_size=MAX_FILE_MB,
        key=UPLOAD_KEY,
    )
    fit = convert.radio(
        "Fit to the model's input",
        ["crop", "pad"],
        format_func={"crop": "centre crop", "pad": "pad to square"}.get,
        key="fit",
    )
    invert = convert.checkbox(
        "Invert brightness",
        help="Fashion-MNIST draws light garments on black: invert photos taken on a light "
        "background.",
        key="invert",
    )
    sources = [(name, files[name].read_bytes(), sample_label(gallery, spec, files[name]))
               for name in chosen]
    sources += [(f.name, f.getvalue(), None) for f in uploads or []]
    inputs = []
    for name, data, label in sources:
        try:
            inputs.append(_prepare(data, name, spec, fit, invert, label))
        except ImageInputError as err:
            st.error(str(err))
    if inputs:
        _show(inputs, spec)
    return inputs


def gallery_inputs(spec: InputSpec, fit: Fit = "crop", invert: bool = False
                   ) -> list[ModelInput]:
    """Every sample of the checkpoint's gallery, converted for it (batch views)."""
    gallery = gallery_for(spec.dataset)
    return [_prepare(p.read_bytes(), p.name, spec, fit, invert, sample_label(gallery, spec, p))
            for p in gallery.files]


def _show(inputs: list[ModelInput], spec: InputSpec) -> None:
    """Original and converted input side by side, a few images per row."""
    per_row = 3
    for start in range(0, len(inputs), per_row):
        columns = st.columns(per_row)
        for column, item in zip(columns, inputs[start : start + per_row]):
            left, right = column.columns(2)
            left.image(item.preview, caption=f"{item.name}: {item.source.description}",
                       width=PREVIEW_PX)
            right.image(
                item.picture.resize((PREVIEW_PX, PREVIEW_PX), Image.Resampling.NEAREST),
                caption=f"model input {spec.size[1]}x{spec.size[0]}, {spec.channels} channel(s)",
                width=PREVIEW_PX,
            )
            unlike = unlike_training(item.source, item.picture, spec.channels, spec.size,
                                     spec.dataset)
            if unlike:
                column.warning(unlike)
