"""gsoplib.images: every image mode decodes to the same model input, every bad file is one
sentence, and the CLI and probe_image read files through it."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from image_samples import BAD_INPUTS, SAMPLES, encode, quadrants
from PIL import Image

from gsoplib.images import (
    DecodedImage,
    ImageInputError,
    decode_image,
    read_image,
    to_model_image,
    to_tensor,
    unlike_training,
)


@pytest.mark.parametrize("kind", list(SAMPLES))
def test_every_mode_decodes_to_a_displayable_image_and_a_model_input(kind):
    name, data, _ = SAMPLES[kind]
    decoded = decode_image(data, name)
    assert decoded.image.mode in {"L", "LA", "RGB", "RGBA"}
    for channels, mode in ((1, "L"), (3, "RGB")):
        picture = to_model_image(decoded.image, channels, (28, 28))
        assert (picture.mode, picture.size) == (mode, (28, 28))
        tensor = to_tensor(picture, (0.5,) * channels, (0.25,) * channels)
        assert tensor.shape == (channels, 28, 28)
        assert tensor.min() >= -2.0 and tensor.max() <= 2.0


def test_exif_orientation_is_applied():
    decoded = decode_image(SAMPLES["exif-rotated"][1])
    assert decoded.size == (60, 40) and decoded.image.size == (40, 60)
    red = np.array([255, 0, 0])
    top_right = np.asarray(decoded.image)[5, 35].astype(int)
    assert np.abs(top_right - red).max() < 40


def test_sixteen_bit_grayscale_is_scaled_not_clipped():
    decoded = decode_image(SAMPLES["16-bit"][1])
    assert decoded.mode == "I;16"
    row = np.asarray(decoded.image)[0].astype(int)
    np.testing.assert_array_equal(row, np.arange(256))


def test_gif_first_frame_only():
    decoded = decode_image(SAMPLES["gif"][1])
    assert np.asarray(decoded.image.convert("L")).min() == 255


def test_cmyk_becomes_rgb():
    decoded = decode_image(SAMPLES["cmyk"][1])
    assert decoded.mode == "CMYK" and decoded.image.mode == "RGB"
    r, g, b = np.asarray(decoded.image)[12, 12].astype(int)
    assert r < 40 and g > 215 and b > 215


@pytest.mark.parametrize("kind", ["rgba", "palette"])
def test_transparency_is_laid_over_the_background(kind):
    decoded = decode_image(SAMPLES[kind][1])
    for background in (0, 200):
        picture = np.asarray(
            to_model_image(decoded.image, 1, (20, 20), background=background)
        )
        assert picture[0, 0] == background and picture[10, 10] == 255


def test_pad_keeps_the_whole_picture_and_crop_fills_the_frame():
    wide = Image.new("L", (100, 50), 255)
    padded = np.asarray(to_model_image(wide, 1, (10, 10), fit="pad"))
    cropped = np.asarray(to_model_image(wide, 1, (10, 10), fit="crop"))
    assert padded[0, 5] == 0 and padded[5, 5] == 255
    assert cropped.min() == 255


def test_invert_turns_light_backgrounds_dark():
    light = Image.new("RGB", (8, 8), (250, 250, 250))
    assert np.asarray(to_model_image(light, 1, (4, 4), invert=True)).max() <= 5


def test_large_jpeg_is_decoded_at_a_reduced_scale(monkeypatch):
    """The JPEG decoder is asked for a reduced scale (Image.draft) before any pixel is decoded,
    not only thumbnailed afterwards."""
    from PIL import JpegImagePlugin

    drafts = []
    draft = JpegImagePlugin.JpegImageFile.draft

    def recording_draft(self, mode, size):
        result = draft(self, mode, size)
        drafts.append(self.size)
        return result

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", recording_draft)
    big = encode(quadrants(4000, 3000), "JPEG", quality=80)
    decoded = decode_image(big, working_size=512)
    assert decoded.size == (4000, 3000)
    assert drafts == [(500, 375)]  # the smallest 1/2^k scale still at least 256 on each side
    assert decoded.image.size == (500, 375)


@pytest.mark.parametrize(("channels", "size", "resize"),
                         [(3, (224, 224), 256), (1, (28, 28), None)])
def test_drafted_jpeg_gives_the_model_input_of_a_full_decode(channels, size, resize):
    """A 4032x3024 photo drafted to 1/4 (1008x756) and the same photo decoded in full and
    thumbnailed give the same model input but for resampling noise: ImageNet's 256 resize and
    crop, and a 28x28 fit."""
    y, x = np.mgrid[0:3024, 0:4032]
    smooth = np.stack([x / 16, y / 12, 128 + 100 * np.sin(x / 150) * np.cos(y / 110)], -1) % 256
    photo = encode(Image.fromarray(smooth.astype(np.uint8)), "JPEG", quality=90)
    drafted = decode_image(photo)
    full = decode_image(photo, working_size=8192)
    assert drafted.image.size == (1008, 756) and full.image.size == (4032, 3024)
    inputs = [np.asarray(to_model_image(d.image, channels, size, resize=resize), np.float64)
              for d in (drafted, full)]
    difference = np.abs(inputs[0] - inputs[1]) / 255
    # measured: a mean of 0.0004 and 0.0001, no pixel more than one grey level apart
    assert difference.mean() < 0.002 and difference.max() <= 2 / 255


@pytest.mark.parametrize("kind", list(BAD_INPUTS))
def test_bad_input_is_one_clear_sentence(kind):
    (name, data, _), expected = BAD_INPUTS[kind]
    with pytest.raises(ImageInputError) as info:
        decode_image(data, name)
    message = str(info.value)
    assert expected in message and name in message
    assert message.endswith(".") and "\n" not in message


def test_unsupported_channel_count_is_an_error():
    with pytest.raises(ImageInputError, match="only 1 or 3"):
        to_model_image(Image.new("RGB", (4, 4)), 4, (4, 4))




def test_read_image_is_decode_image_of_the_file(tmp_path):
    name, data, _ = SAMPLES["exif-rotated"]
    path = tmp_path / name
    path.write_bytes(data)
    from_file, from_bytes = read_image(path), decode_image(data, name)
    assert from_file.name == str(path) and from_file.size == from_bytes.size
    np.testing.assert_array_equal(np.asarray(from_file.image), np.asarray(from_bytes.image))


def test_read_image_refuses_a_missing_or_oversized_file_before_reading_it(tmp_path, monkeypatch):
    with pytest.raises(ImageInputError, match="does not exist or is not a file"):
        read_image(tmp_path / "missing.png")
    with pytest.raises(ImageInputError, match="does not exist or is not a file"):
        read_image(tmp_path)
    path = tmp_path / "big.png"
    path.write_bytes(SAMPLES["grayscale"][1])
    monkeypatch.setattr(type(path), "read_bytes", lambda self: pytest.fail("file was read"))
    with pytest.raises(ImageInputError, match="MB, over the"):
        read_image(path, max_bytes=100)


@pytest.mark.parametrize("kind", list(SAMPLES))
def test_probe_reads_files_of_every_mode_as_the_explorer_does(kind, tmp_path):
    """gsoplib.probe.to_pixels (behind probe_image and `gsop inspect`) gives the explorer's
    input for every mode: the same reader and the same conversion."""
    from gsoplib.probe import to_pixels

    name, data, _ = SAMPLES[kind]
    path = tmp_path / name
    path.write_bytes(data)
    for channels in (1, 3):
        pixels = to_pixels(path, channels, (28, 28))
        picture = to_model_image(decode_image(data, name).image, channels, (28, 28))
        expected = to_tensor(picture, (0.0,) * channels, (1 / 255,) * channels)
        assert pixels.dtype == torch.uint8 and pixels.shape == (1, channels, 28, 28)
        torch.testing.assert_close(pixels[0].float(), expected, atol=1e-3, rtol=0)


@pytest.mark.parametrize("kind", list(BAD_INPUTS))
def test_probe_refuses_bad_files_with_the_same_sentence(kind, tmp_path):
    from gsoplib.probe import to_pixels

    (name, data, _), expected = BAD_INPUTS[kind]
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(ImageInputError, match=expected.split(" MB")[0]) as info:
        to_pixels(path, 1, (28, 28))
    assert name in str(info.value)


def _decoded(image: Image.Image, name: str = "photo.png") -> DecodedImage:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return decode_image(buffer.getvalue(), name)


def test_unlike_training_names_each_way_an_image_differs_from_fashion_mnist():
    garment = Image.new("L", (28, 28), 0)
    garment.paste(200, (8, 4, 20, 24))                      # a light garment on black
    decoded = _decoded(garment)
    picture = to_model_image(decoded.image, 1, (28, 28))
    assert unlike_training(decoded, picture, 1, (28, 28), "fashion_mnist") is None

    photo = Image.new("RGB", (640, 480), (235, 232, 228))
    photo.paste((200, 40, 40), (200, 100, 440, 380))        # a red shirt on white
    decoded = _decoded(photo)
    picture = to_model_image(decoded.image, 1, (28, 28))
    sentence = unlike_training(decoded, picture, 1, (28, 28), "fashion_mnist")
    assert sentence.startswith("This image is unlike Fashion-MNIST's images (a colour image")
    assert "a light background" in sentence and "640x480 pixels shrunk to 28x28" in sentence
    assert "Invert brightness" in sentence and sentence.count(".") == 1
    # inverted, the background is dark: that clause goes, the others stay
    inverted = to_model_image(decoded.image, 1, (28, 28), invert=True)
    sentence = unlike_training(decoded, inverted, 1, (28, 28), "fashion_mnist")
    assert "light background" not in sentence and "colour" in sentence
    # a three-channel model takes colour, and a light background is the data of other sets
    rgb = to_model_image(decoded.image, 3, (28, 28))
    assert "colour" not in (unlike_training(decoded, rgb, 3, (28, 28), "cifar10") or "")
    assert "background" not in (unlike_training(decoded, rgb, 3, (28, 28), "cifar10") or "")
    # a small grey image enlarged far
    tiny = _decoded(Image.new("L", (10, 10), 0))
    assert "10x10 pixels enlarged to 28x28" in unlike_training(
        tiny, to_model_image(tiny.image, 1, (28, 28)), 1, (28, 28), "fashion_mnist")
