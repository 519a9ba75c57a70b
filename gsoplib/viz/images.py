"""Arrays and PIL images: an input tensor as a displayable array, heat maps over images,
matrices as diverging-colour images, figures rendered to PNG bytes or PIL images."""

from __future__ import annotations

import io

import matplotlib
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from PIL import Image

CHOSEN = "tab:orange"
OTHER = "tab:gray"
DIVERGING = "RdBu_r"


def _array(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", torch.float64).numpy()
    return np.asarray(x, dtype=np.float64)


def display_image(image) -> np.ndarray:
    """A normalised model input (C, H, W) or (1, C, H, W) -> (H, W) or (H, W, 3) in [0, 1].

    Each image is min-max scaled on its own, which undoes any per-channel mean/std
    normalisation up to contrast.
    """
    a = _array(image)
    if a.ndim == 4:
        if a.shape[0] != 1:
            raise ValueError(f"display_image takes one image, got a batch of {a.shape[0]}")
        a = a[0]
    if a.ndim != 3 or a.shape[0] not in (1, 3):
        raise ValueError(f"display_image expects (C, H, W) with C in (1, 3), got {a.shape}")
    lo, hi = a.min(), a.max()
    a = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
    return a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)


def _resize(heat: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(h, w) -> (H, W), bilinear (align_corners=False, as Grad-CAM's upsampling)."""
    if heat.shape == tuple(size):
        return heat
    t = torch.from_numpy(np.ascontiguousarray(heat))[None, None]
    return F.interpolate(t, size=size, mode="bilinear", align_corners=False)[0, 0].numpy()


def _unit(heat: np.ndarray) -> np.ndarray:
    """Non-negative maps scale to [0, 1] by their maximum, signed ones by their range."""
    lo, hi = (0.0 if heat.min() >= 0 else heat.min()), heat.max()
    return (heat - lo) / (hi - lo) if hi > lo else np.zeros_like(heat)


def overlay(
    image,
    heat,
    *,
    alpha: float = 0.5,
    cmap: str = "jet",
    size: tuple[int, int] | None = None,
) -> Image.Image:
    """A heat map blended over an image, as a PIL RGB image.

    Args:
        image: normalised model input (C, H, W) or (1, C, H, W); see :func:`display_image`.
        heat: (h, w) map (a position weight map, a Grad-CAM map), resized bilinearly to (H, W)
            and scaled to [0, 1] (by its maximum when non-negative, by its range otherwise).
        alpha: weight of the heat map. cmap: a matplotlib colormap name.
        size: (width, height) of the result in pixels; default the input's.
    """
    base = display_image(image)
    if base.ndim == 2:
        base = np.repeat(base[..., None], 3, axis=2)
    heat = _array(heat).squeeze()
    if heat.ndim != 2:
        raise ValueError(f"overlay expects an (h, w) heat map, got shape {heat.shape}")
    colours = matplotlib.colormaps[cmap](_unit(_resize(heat, base.shape[:2])))[..., :3]
    blended = (1 - alpha) * base + alpha * colours
    out = Image.fromarray(np.uint8(np.clip(blended, 0, 1) * 255 + 0.5), "RGB")
    return out.resize(size, Image.Resampling.BILINEAR) if size else out


def heatmap_image(matrix, *, size: int = 256, cmap: str = DIVERGING) -> Image.Image:
    """A matrix as a size x size PIL RGB image, colours centred at 0 (no matplotlib Figure).

    Symmetric limits [-max|m|, max|m|] make 0 the colormap's middle, so sign is readable.
    Nearest-neighbour scaling keeps each entry a sharp square.
    """
    m = _array(matrix).squeeze()
    if m.ndim != 2:
        raise ValueError(f"heatmap_image expects a matrix, got shape {m.shape}")
    lim = np.abs(m).max() or 1.0
    rgb = matplotlib.colormaps[cmap]((m / lim + 1) / 2)[..., :3]
    img = Image.fromarray(np.uint8(rgb * 255 + 0.5), "RGB")
    return img.resize((size, size), Image.Resampling.NEAREST)


def to_png(fig: Figure, dpi: int = 100) -> bytes:
    """Render a Figure to PNG bytes of figsize * dpi pixels.

    zlib level 1: a few percent larger files than matplotlib's default level 6, encoded about
    four times faster (what a page that draws a dozen figures per image waits for).
    """
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, pil_kwargs={"compress_level": 1})
    return buffer.getvalue()


def to_pil(fig: Figure, dpi: int = 100) -> Image.Image:
    """Render a Figure to a PIL RGBA image of figsize * dpi pixels."""
    with Image.open(io.BytesIO(to_png(fig, dpi))) as image:
        return image.copy()

