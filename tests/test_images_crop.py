"""Resize then centre crop as a checkpoint's metadata says, and where the crop lies in the photo."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageOps
from torchvision import transforms

from gsoplib.images import ImageInputError, crop_box, to_model_image


def photo(width: int, height: int) -> Image.Image:
    """A smooth colour photo-like image with one dark rectangle off-centre."""
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([255 * x / width, 255 * y / height, 128 + 0 * x], axis=-1)
    pixels[height // 5 : height // 2, width // 6 : width // 3] = 20
    return Image.fromarray(pixels.astype(np.uint8), "RGB")


@pytest.mark.parametrize("size", [(400, 300), (300, 400), (256, 256), (1000, 257)])
def test_resize_then_crop_is_torchvision_s_evaluation_transform(size):
    image = photo(*size)
    ours = to_model_image(image, 3, (224, 224), resize=256)
    theirs = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224)])(image)
    assert ours.size == (224, 224)
    np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))


def test_without_resize_the_crop_is_today_s_centre_fit():
    image = photo(320, 240)
    np.testing.assert_array_equal(
        np.asarray(to_model_image(image, 1, (28, 28))),
        np.asarray(ImageOps.fit(image.convert("L"), (28, 28), Image.Resampling.LANCZOS)))


@pytest.mark.parametrize("fit,resize", [("crop", None), ("crop", 256), ("pad", None)])
@pytest.mark.parametrize("size", [(400, 300), (300, 400)])
def test_the_crop_box_is_where_the_model_input_came_from(fit, resize, size):
    image = photo(*size)
    box = crop_box(image.size, (224, 224), fit=fit, resize=resize)
    model = np.asarray(to_model_image(image, 3, (224, 224), fit=fit, resize=resize), float)
    if fit == "pad":
        # The box covers the whole photo and its padding: the photo's width fills the input.
        assert box[2] - box[0] == pytest.approx(max(size)) == box[3] - box[1]
        assert min(box[0], box[1]) < 0 and max(box[0], box[1]) == pytest.approx(0, abs=1e-9)
        return
    # The same region of the original, scaled straight to 224: the same picture up to the
    # resampling filter.
    direct = np.asarray(image.resize((224, 224), Image.Resampling.BILINEAR, box=box), float)
    assert np.abs(direct - model).mean() < 2.0
    assert 0 <= box[0] < box[2] <= size[0] and 0 <= box[1] < box[3] <= size[1]
    if resize is not None:
        assert (box[2] - box[0]) / min(size) == pytest.approx(224 / 256, abs=2e-3)


def test_a_resize_below_the_crop_is_one_sentence():
    with pytest.raises(ImageInputError, match="resize 200 is smaller than the input size"):
        to_model_image(photo(300, 300), 3, (224, 224), resize=200)


def test_probe_image_resizes_and_crops_as_the_checkpoint_says(tmp_path):
    """gsop inspect and probe_image read Checkpoint.resize: a checkpoint saying 'resize 36,
    crop 28' sees the photo's centre after the resize, not the photo squeezed to 28."""
    import torch

    from gsoplib.checkpoint import load_checkpoint, save_checkpoint
    from gsoplib.images import to_tensor
    from gsoplib.models import create_model
    from gsoplib.probe import probe, probe_image

    torch.manual_seed(0)
    model = create_model("small_gsop1", num_classes=4, in_chans=3).eval()
    path = save_checkpoint(tmp_path / "m.safetensors", model, model_name="small_gsop1",
                           model_kwargs={"num_classes": 4, "in_chans": 3},
                           classes=["a", "b", "c", "d"], input_size=(28, 28), in_chans=3,
                           mean=(0.5,) * 3, std=(0.25,) * 3, resize=36)
    ckpt = load_checkpoint(path)
    assert ckpt.resize == 36
    image = photo(120, 80)
    got = probe_image(ckpt, image)
    cropped = to_model_image(image, 3, (28, 28), resize=36)
    expected = probe(ckpt.model, to_tensor(cropped, ckpt.mean, ckpt.std)[None])
    torch.testing.assert_close(got.logits, expected.logits)
    squeezed = to_model_image(image, 3, (28, 28))
    assert not np.array_equal(np.asarray(squeezed), np.asarray(cropped))
