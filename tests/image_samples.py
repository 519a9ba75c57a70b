"""Image files of every mode and every kind of bad input, built in memory for the tests of
gsoplib.images, the CLI and the explorer."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image

from gsoplib.images import MAX_FILE_MB


def encode(image: Image.Image, fmt: str, **kw) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kw)
    return buffer.getvalue()


def quadrants(width: int = 60, height: int = 40) -> Image.Image:
    """RGB image: top-left red, top-right green, bottom-left blue, bottom-right white."""
    pixels = np.zeros((height, width, 3), np.uint8)
    h, w = height // 2, width // 2
    pixels[:h, :w] = (255, 0, 0)
    pixels[:h, w:] = (0, 255, 0)
    pixels[h:, :w] = (0, 0, 255)
    pixels[h:, w:] = (255, 255, 255)
    return Image.fromarray(pixels)


def noise(size: int = 64) -> Image.Image:
    """Random RGB pixels: they do not compress, so cutting the file loses pixel data."""
    return Image.fromarray(np.random.default_rng(0).integers(0, 256, (size, size, 3), np.uint8))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width x height grey pixels and holds none: a bomb's header."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * (width + 1))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def exif_rotated_jpeg() -> bytes:
    """Stored 60x40 landscape with EXIF orientation 6: shown upright it is 40x60, rotated 90 deg
    clockwise, so the stored top-left (red) quadrant lands top-right."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(quadrants(), "JPEG", quality=95, exif=exif)


def two_frame_gif() -> bytes:
    """First frame white, second black: only the first must be decoded."""
    frames = [Image.new("L", (16, 16), 255), Image.new("L", (16, 16), 0)]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:])


def sixteen_bit_png() -> bytes:
    """16-bit grayscale ramp 0 .. 65535 (mode I;16) across 256 columns."""
    ramp = np.tile(np.arange(256, dtype=np.uint16) * 257, (8, 1))
    return encode(Image.fromarray(ramp), "PNG")


def transparent_png(mode: str) -> bytes:
    """A white square in the middle of a fully transparent 20x20 canvas (RGBA or palette)."""
    image = Image.new("RGBA", (20, 20), (255, 255, 255, 0))
    image.paste((255, 255, 255, 255), (5, 5, 15, 15))
    if mode == "P":
        image = image.convert("P", palette=Image.Palette.ADAPTIVE)
        transparent = image.getpixel((0, 0))
        return encode(image, "PNG", transparency=transparent)
    return encode(image, "PNG")


SAMPLES: dict[str, tuple[str, bytes, str]] = {
    # key: (file name, bytes, mime type)
    "grayscale": ("gray.png", encode(quadrants().convert("L"), "PNG"), "image/png"),
    "rgb jpeg": ("photo.jpg", encode(quadrants(), "JPEG", quality=95), "image/jpeg"),
    "rgba": ("alpha.png", transparent_png("RGBA"), "image/png"),
    "palette": ("palette.png", transparent_png("P"), "image/png"),
    "16-bit": ("deep.png", sixteen_bit_png(), "image/png"),
    "cmyk": ("print.jpg", encode(Image.new("CMYK", (24, 24), (255, 0, 0, 0)), "JPEG"),
             "image/jpeg"),
    "exif-rotated": ("phone.jpg", exif_rotated_jpeg(), "image/jpeg"),
    "gif": ("anim.gif", two_frame_gif(), "image/gif"),
    "bmp": ("bitmap.bmp", encode(quadrants(), "BMP"), "image/bmp"),
    "webp": ("web.webp", encode(quadrants(), "WEBP", quality=95), "image/webp"),
}

BAD_INPUTS: dict[str, tuple[tuple[str, bytes, str], str]] = {
    # key: ((file name, bytes, mime type), text the error must contain)
    "empty": (("empty.png", b"", "image/png"), "is empty"),
    "not an image": (("notes.png", b"these are my notes, not a picture\n" * 20, "image/png"),
                     "not an image in a supported format"),
    "truncated": (("cut.png", encode(noise(), "PNG")[:2000], "image/png"),
                  "truncated or corrupt"),
    "too many pixels": (("huge.png", png_header_only(10_000, 8_000), "image/png"),
                        "over the 50 megapixel limit"),
    "decompression bomb": (("bomb.png", png_header_only(40_000, 40_000), "image/png"),
                           "decompression bomb"),
    "over the size limit": (("big.bmp", b"BM" + bytes(MAX_FILE_MB * 2**20 + 1), "image/bmp"),
                            f"over the {MAX_FILE_MB} MB upload limit"),
}


