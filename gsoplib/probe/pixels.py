"""An image as a checkpoint's model sees it (``to_pixels``) and ``probe_image``, the probe of a
loaded checkpoint on one image."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch

from .hooks import probe
from .records import Inspection


def to_pixels(image, in_chans: int, size: tuple[int, int], resize: int | None = None
              ) -> torch.Tensor:
    """A PIL image, an image file or uint8 pixels -> uint8 (B, in_chans, H, W) at ``size``.

    Files are read with :func:`gsoplib.images.read_image` (its formats, size limits and
    orientation); PIL images and files are converted to L or RGB and centre-fit to ``size``
    (H, W) by :func:`gsoplib.images.to_model_image` (after resizing the shorter side to
    ``resize`` when given, a checkpoint's ``data.resize``). uint8 tensors or arrays (H, W),
    (H, W, C) arrays, (C, H, W) or (B, C, H, W) tensors must already have ``in_chans``
    channels and that
    size. An unreadable file raises :class:`gsoplib.images.ImageInputError` (a ValueError).
    """
    from PIL import Image
    from torchvision.transforms.functional import pil_to_tensor

    from ..images import read_image, to_model_image

    if isinstance(image, str | os.PathLike):
        image = read_image(image).image
    if isinstance(image, Image.Image):
        return pil_to_tensor(to_model_image(image, in_chans, size, resize=resize)).unsqueeze(0)
    if isinstance(image, np.ndarray):
        image = torch.from_numpy(image if image.ndim != 3 else image.transpose(2, 0, 1).copy())
    if isinstance(image, torch.Tensor) and image.dtype == torch.uint8:
        pixels = image.view(1, 1, *image.shape) if image.dim() == 2 else image
        pixels = pixels.unsqueeze(0) if pixels.dim() == 3 else pixels
        if pixels.dim() == 4 and pixels.shape[1] == in_chans and tuple(pixels.shape[2:]) == size:
            return pixels
        raise ValueError(
            f"uint8 pixels must be ({in_chans}, {size[0]}, {size[1]}) or a batch of them for "
            f"this checkpoint, got shape {tuple(image.shape)}; pass a PIL image to resize"
        )
    raise TypeError(
        "image must be a PIL image, an image file path or uint8 pixels, got "
        f"{type(image).__name__}"
    )


def probe_image(checkpoint, image, *, taps: Sequence[str] | str | None = None, top_k: int = 5
                ) -> Inspection:
    """Probe a loaded :class:`~gsoplib.checkpoint.Checkpoint` on an image, as it was trained.

    image: a PIL image or an image file (converted to the checkpoint's channels and centre-fit
    to its input size, after resizing its shorter side to ``checkpoint.resize`` when set) or
    uint8 pixels (C, H, W) / (B, C, H, W) already at that size. Pixels are
    normalised with the checkpoint's mean and std, and classes are named from its metadata.

    Examples:
        >>> from PIL import Image
        >>> from gsoplib.pretrained import load_pretrained
        >>> insp = probe_image(load_pretrained("fmnist_small_gsop1"), Image.new("L", (60, 40)))
        >>> insp.inputs.shape                  # or a file: probe_image(ck, "shoe.png")
        torch.Size([1, 1, 28, 28])
    """
    from ..data import normalize

    pixels = to_pixels(image, checkpoint.in_chans, tuple(checkpoint.input_size),
                       checkpoint.resize)
    x = normalize(pixels, checkpoint.mean, checkpoint.std)
    return probe(checkpoint.model, x, taps=taps, class_names=checkpoint.classes, top_k=top_k)
