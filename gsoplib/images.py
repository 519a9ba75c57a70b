"""Untrusted image files -> an upright PIL image -> a model's input.

One reader for every way an image enters gsoplib: the explorer's uploads, ``gsop inspect`` and
:func:`gsoplib.probe.probe_image`. Every failure a user can cause raises
:class:`ImageInputError` (a ValueError) with one sentence naming the file and what was expected.

Decoding is restricted to the formats in :data:`FORMATS` (Pillow never tries another plug-in),
the pixel count is checked from the header before any pixel is decoded (decompression bombs), and
large JPEGs are decoded at a reduced scale (``Image.draft``: the decoder's DCT scaling, 1/2 to
1/8) because the model input is small.

Examples:
    >>> import io
    >>> from PIL import Image
    >>> data = io.BytesIO()
    >>> Image.new("RGB", (64, 48), "white").save(data, "PNG")   # an upload's bytes
    >>> decoded = decode_image(data.getvalue(), "shoe.png")     # read_image(path) for a file
    >>> decoded.image.mode, decoded.image.size                  # mode L/LA/RGB/RGBA
    ('RGB', (64, 48))
    >>> picture = to_model_image(decoded.image, 1, (28, 28))    # what the model sees
    >>> to_tensor(picture, mean=(0.286,), std=(0.353,)).shape  # normalised
    torch.Size([1, 28, 28])
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torchvision.transforms.functional import pil_to_tensor

from .data.augment import normalize

FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP")
EXTENSIONS = ("png", "jpg", "jpeg", "bmp", "gif", "webp")
MAX_FILE_MB = 25
MAX_PIXELS = 50_000_000
WORKING_SIZE = 1024
"""Longest side kept after decoding: enough to show the original, far above any model input.
A JPEG is decoded at the smallest 1/2^k scale that keeps both sides at least half of it (512:
twice ImageNet's 256 resize), so a 12-megapixel photo needs no resampling after decoding."""

Fit = Literal["crop", "pad"]

_SIXTEEN_BIT = {"I;16", "I;16L", "I;16B", "I;16N", "I"}
_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}


class ImageInputError(ValueError):
    """An image a user supplied cannot be used; the message is one sentence for the user."""


@dataclass(frozen=True)
class DecodedImage:
    """An upright image ready to show, with what the file said about itself.

    ``image`` is in mode L, LA, RGB or RGBA, its longest side at most the working size;
    ``mode`` and ``size`` (width, height) are those of the file as stored.
    """

    name: str
    image: Image.Image
    format: str
    mode: str
    size: tuple[int, int]

    @property
    def description(self) -> str:
        return f"{self.format} {self.mode} {self.size[0]}x{self.size[1]}"


def decode_image(
    data: bytes,
    name: str = "image",
    *,
    max_pixels: int = MAX_PIXELS,
    max_bytes: int = MAX_FILE_MB * 2**20,
    working_size: int = WORKING_SIZE,
) -> DecodedImage:
    """Decode PNG, JPEG, BMP, GIF (first frame) or WebP bytes of any mode into an upright image.

    A JPEG is decoded at a reduced scale (:data:`WORKING_SIZE`), its sides at least
    ``working_size / 2``; every image is then thumbnailed to at most ``working_size``.
    EXIF orientation (phone photos) is applied, 16-bit grayscale is scaled to 8 bits, palette
    images are expanded, CMYK and other colour spaces become RGB; transparency is kept.
    """
    if len(data) == 0:
        raise ImageInputError(f"'{name}' is empty (0 bytes); expected an image file.")
    if len(data) > max_bytes:
        raise ImageInputError(
            f"'{name}' is {len(data) / 2**20:.1f} MB, over the {max_bytes / 2**20:.0f} MB "
            "upload limit."
        )
    try:
        image = Image.open(io.BytesIO(data), formats=FORMATS)
    except Image.DecompressionBombError as err:
        raise ImageInputError(_too_many_pixels(name, None, max_pixels)) from err
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, struct.error) as err:
        raise ImageInputError(
            f"'{name}' is not an image in a supported format ({', '.join(FORMATS)})."
        ) from err
    if image.width * image.height > max_pixels:
        raise ImageInputError(_too_many_pixels(name, image.size, max_pixels))
    stored_format, stored_mode, stored_size = image.format or "?", image.mode, image.size
    if stored_format == "JPEG":
        # DCT scaling: the decoder skips the fine frequencies instead of decoding every pixel
        # and resampling (a 4032x3024 photo decodes at 1/4, 1008x756, and is not resized).
        # Both sides stay >= working_size / 2, at least twice what a model's resize keeps, so
        # the model input differs from a full decode's only by resampling noise (tested).
        half = max(1, working_size // 2)
        image.draft(image.mode, (half, half))
    try:
        image.load()
        image = ImageOps.exif_transpose(image)
        image = _display_mode(image)
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as err:
        raise ImageInputError(
            f"'{name}' is truncated or corrupt and could not be decoded ({err})."
        ) from err
    image.thumbnail((working_size, working_size), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return DecodedImage(name, image, stored_format, stored_mode, stored_size)


def read_image(
    path: str | Path,
    *,
    max_pixels: int = MAX_PIXELS,
    max_bytes: int = MAX_FILE_MB * 2**20,
    working_size: int = WORKING_SIZE,
) -> DecodedImage:
    """:func:`decode_image` of a file, its size checked before it is read."""
    path = Path(path)
    if not path.is_file():
        raise ImageInputError(f"'{path}' does not exist or is not a file; expected an image.")
    size = path.stat().st_size
    if size > max_bytes:
        raise ImageInputError(
            f"'{path}' is {size / 2**20:.1f} MB, over the {max_bytes / 2**20:.0f} MB limit."
        )
    return decode_image(path.read_bytes(), str(path), max_pixels=max_pixels,
                        max_bytes=max_bytes, working_size=working_size)


def _too_many_pixels(name: str, size: tuple[int, int] | None, max_pixels: int) -> str:
    limit = f"the {max_pixels / 1e6:g} megapixel limit"
    if size is None:
        return f"'{name}' declares far more pixels than {limit} (a decompression bomb?)."
    megapixels = size[0] * size[1] / 1e6
    return f"'{name}' is {size[0]}x{size[1]} ({megapixels:.1f} megapixels), over {limit}."


def _display_mode(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> L, LA, RGB or RGBA, keeping what each channel means."""
    mode = image.mode
    if mode in {"L", "LA", "RGB", "RGBA"}:
        return image
    if mode in _SIXTEEN_BIT:
        # convert("L") would clip every value above 255 to white; scale the 16-bit range instead.
        values = np.asarray(image, dtype=np.float32) / 257.0
        return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), mode="L")
    if mode == "1":
        return image.convert("L")
    if mode == "La":
        return image.convert("LA")
    if mode in _ALPHA_MODES or (mode == "P" and "transparency" in image.info):
        return image.convert("RGBA")
    return image.convert("RGB")


def to_model_image(
    image: Image.Image,
    channels: int,
    size: tuple[int, int],
    *,
    fit: Fit = "crop",
    invert: bool = False,
    background: int = 0,
    resize: int | None = None,
) -> Image.Image:
    """The picture the model sees: ``channels`` (1 -> mode L, 3 -> RGB), ``size`` = (H, W).

    Transparent pixels are laid over a ``background`` grey level first (0 = black, like
    Fashion-MNIST's background). ``fit="crop"`` scales the shorter side to the target and crops
    the centre; ``"pad"`` keeps the whole picture and pads with the background. ``invert`` turns
    dark-on-light photos into light-on-dark, the way Fashion-MNIST draws garments.
    ``resize`` (a checkpoint's ``data.resize``, ImageNet's 256 for a 224 input) makes "crop"
    the evaluation transform of ImageNet models instead: the shorter side is resized to
    ``resize`` (bilinear), then the centre ``size`` is cut out. :func:`crop_box` says which
    region of the image that is.
    """
    if channels not in (1, 3):
        raise ImageInputError(f"the model expects {channels} input channels; only 1 or 3 work.")
    image = _display_mode(image)
    if image.mode in _ALPHA_MODES:
        base = Image.new("RGBA", image.size, (background, background, background, 255))
        image = Image.alpha_composite(base, image.convert("RGBA"))
    image = image.convert("L" if channels == 1 else "RGB")
    if invert:
        image = ImageOps.invert(image)
    height, width = size
    if fit == "crop" and resize is not None:
        scaled, left, top = _resize_then_crop(image.size, size, resize)
        resized = image.resize(scaled, Image.Resampling.BILINEAR)
        return resized.crop((left, top, left + width, top + height))
    if fit == "crop":
        return ImageOps.fit(image, (width, height), Image.Resampling.LANCZOS)
    if fit == "pad":
        fill = background if channels == 1 else (background,) * 3
        return ImageOps.pad(image, (width, height), Image.Resampling.LANCZOS, color=fill)
    raise ImageInputError(f"unknown fit {fit!r}; expected 'crop' or 'pad'.")


def _resize_then_crop(image_size: tuple[int, int], size: tuple[int, int], resize: int
                      ) -> tuple[tuple[int, int], int, int]:
    """torchvision's Resize(resize) then CenterCrop(size): the resized (width, height) and the
    crop's left and top corner in resized pixels."""
    if resize < min(size):
        raise ImageInputError(f"resize {resize} is smaller than the input size {size}; the "
                              "shorter side must be resized to at least the crop.")
    width, height = image_size
    # The longer side truncated, as torchvision computes it.
    if width <= height:
        scaled = (resize, int(resize * height / width))
    else:
        scaled = (int(resize * width / height), resize)
    if scaled[0] < size[1] or scaled[1] < size[0]:
        raise ImageInputError(f"an image of {width}x{height} resized to shorter side {resize} "
                              f"is smaller than the {size[1]}x{size[0]} crop.")
    return scaled, round((scaled[0] - size[1]) / 2.0), round((scaled[1] - size[0]) / 2.0)


def crop_box(
    image_size: tuple[int, int],
    size: tuple[int, int],
    *,
    fit: Fit = "crop",
    resize: int | None = None,
) -> tuple[float, float, float, float]:
    """Where the model input of :func:`to_model_image` lies in the image it was made from.

    image_size: (width, height) of that image; size: the model input's (H, W). Returns
    (left, top, right, bottom) in the image's pixels: the region that became the input, so that
    a map over the input (a position weight map, an attribution) can be drawn over the
    original photo. With ``fit="pad"`` the box is larger than the image (the padding).
    """
    width, height = image_size
    out_h, out_w = size
    if fit == "crop" and resize is not None:
        scaled, left, top = _resize_then_crop(image_size, size, resize)
        sx, sy = scaled[0] / width, scaled[1] / height
        return (left / sx, top / sy, (left + out_w) / sx, (top + out_h) / sy)
    if fit == "crop":
        # ImageOps.fit: the largest centred region of the target's aspect ratio.
        if width * out_h > height * out_w:
            crop_w = height * out_w / out_h
            return ((width - crop_w) / 2, 0.0, (width + crop_w) / 2, float(height))
        crop_h = width * out_h / out_w
        return (0.0, (height - crop_h) / 2, float(width), (height + crop_h) / 2)
    if fit == "pad":
        scale = min(out_w / width, out_h / height)
        box_w, box_h = out_w / scale, out_h / scale
        return ((width - box_w) / 2, (height - box_h) / 2, (width + box_w) / 2,
                (height + box_h) / 2)
    raise ImageInputError(f"unknown fit {fit!r}; expected 'crop' or 'pad'.")


def to_tensor(
    image: Image.Image, mean: tuple[float, ...], std: tuple[float, ...]
) -> torch.Tensor:
    """(C, H, W) float32: pixel / 255, then (x - mean) / std per channel, as in training
    (:func:`gsoplib.data.normalize`)."""
    return normalize(pil_to_tensor(image).unsqueeze(0), mean, std)[0]


__all__ = [
    "EXTENSIONS",
    "FORMATS",
    "MAX_FILE_MB",
    "MAX_PIXELS",
    "DecodedImage",
    "Fit",
    "ImageInputError",
    "crop_box",
    "decode_image",
    "read_image",
    "to_model_image",
    "to_tensor",
]


#: Datasets whose images are light objects on a black background (Fashion-MNIST, MNIST).
DARK_BACKGROUND = frozenset({"fashion_mnist", "mnist"})
#: How the datasets gsoplib knows are written in a sentence.
DATASET_TITLES = {"fashion_mnist": "Fashion-MNIST", "mnist": "MNIST", "second_order":
                  "the second-order set", "cifar10": "CIFAR-10", "cifar100": "CIFAR-100",
                  "imagenet": "ImageNet"}
#: An original whose shorter side is this many times the input's loses most of its detail
#: in the resize (a 12-megapixel photo into 28 x 28).
FAR_LARGER = 8.0


def unlike_training(decoded: DecodedImage, picture: Image.Image, channels: int,
                    size: tuple[int, int], dataset: str | None) -> str | None:
    """One sentence when an image is unlike the data a model was trained on, else None.

    Checked, from the image alone: colour into a one-channel model (the mean spread between
    the R, G and B of a pixel over 8 of 255), a light background where the training images are
    dark (:data:`DARK_BACKGROUND`: the border of the model's ``picture`` averages over 96 of
    255), and an original far larger or smaller than the input (shorter side over
    :data:`FAR_LARGER` times the input's, or under half of it). The sentence says what to try.
    A prediction for such an image says little about the model.
    """
    found, tries = [], []
    rgb = np.asarray(_display_mode(decoded.image).convert("RGB"), dtype=np.float32)
    spread = float((rgb.max(axis=-1) - rgb.min(axis=-1)).mean())
    if channels == 1 and spread > 8.0:
        found.append("a colour image into a model trained on grey ones")
        tries.append("a grey photo")
    if dataset in DARK_BACKGROUND:
        grey = np.asarray(picture.convert("L"), dtype=np.float32)
        border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
        if float(border.mean()) > 96.0:
            found.append("a light background where the training images are black")
            tries.append("'Invert brightness' for a dark object on a light background")
    short, side = min(decoded.size), min(size)
    if short > FAR_LARGER * side:
        found.append(f"{decoded.size[0]}x{decoded.size[1]} pixels shrunk to "
                     f"{size[1]}x{size[0]}")
        tries.append("a photo cropped close around the object")
    elif short < side / 2:
        found.append(f"{decoded.size[0]}x{decoded.size[1]} pixels enlarged to "
                     f"{size[1]}x{size[0]}")
        tries.append("a larger image")
    if not found:
        return None
    what = DATASET_TITLES.get(dataset or "", dataset or "the model's training data")
    return (f"This image is unlike {what}'s images ({'; '.join(found)}), so the prediction says "
            f"little about the model: try {', or '.join(tries)}.")
