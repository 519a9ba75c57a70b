"""Datasets, their offline-first sources, batched augmentation and the loaders."""

import gzip
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gsoplib.data import (
    DatasetNotFoundError,
    ResidentLoader,
    StreamLoader,
    crop_flip,
    dataset_options,
    list_datasets,
    load_dataset,
    make_loader,
    normalize,
    sources,
)
from gsoplib.data import second_order as so

DEBIAN_FMNIST = Path("/usr/share/datasets/fashion-mnist")
needs_fmnist = pytest.mark.skipif(
    not (DEBIAN_FMNIST / "t10k-images-idx3-ubyte.gz").exists(),
    reason="needs Fashion-MNIST: install Debian's dataset-fashion-mnist "
    "(/usr/share/datasets/fashion-mnist)",
)


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No GSOP_DATA, an empty cache in tmp_path, and no download."""
    monkeypatch.delenv("GSOP_DATA", raising=False)
    monkeypatch.setenv("GSOP_CACHE", str(tmp_path / "cache"))
    return tmp_path


# -- augmentation ------------------------------------------------------------------------------


def test_crop_flip_each_output_is_a_crop_of_the_padded_image():
    g = torch.Generator().manual_seed(1)
    x = torch.randint(1, 256, (64, 2, 6, 7), dtype=torch.uint8)
    p = 2
    out = crop_flip(x, p, flip=False, generator=g)
    assert out.dtype == torch.uint8 and out.shape == x.shape
    padded = torch.nn.functional.pad(x, (p, p, p, p))
    offsets = set()
    for b in range(len(x)):
        found = [
            (dy, dx)
            for dy in range(2 * p + 1)
            for dx in range(2 * p + 1)
            if torch.equal(out[b], padded[b, :, dy : dy + 6, dx : dx + 7])
        ]
        assert found, f"sample {b} is not a crop of its padded image"
        offsets.add(found[0])
    assert len(offsets) > 10  # draws spread over the 25 offsets


def test_crop_flip_offsets_are_uniform():
    x = torch.zeros(20000, 1, 5, 5, dtype=torch.uint8)
    x[:, :, 0, 0] = 1  # a marker whose position after the crop reveals the offset
    out = crop_flip(x, 1, flip=False, generator=torch.Generator().manual_seed(0))
    where = out[:, 0].flatten(1).argmax(1)
    visible = out[:, 0].flatten(1).amax(1) > 0
    # The marker lands at (1 - dy, 1 - dx) when dy, dx <= 1: 4 of 9 offsets keep it in view.
    assert abs(visible.float().mean().item() - 4 / 9) < 0.02
    counts = torch.bincount(where[visible], minlength=25)
    for pos in (0, 1, 5, 6):
        assert abs(counts[pos].item() / visible.sum().item() - 0.25) < 0.02


def test_crop_flip_flips_half_the_images_and_nothing_else():
    x = torch.randn(4000, 3, 4, 5)
    out = crop_flip(x, 0, flip=True, generator=torch.Generator().manual_seed(0))
    same = (out == x).flatten(1).all(1)
    mirrored = (out == x.flip(-1)).flatten(1).all(1)
    assert bool((same | mirrored).all())
    assert abs(mirrored.float().mean().item() - 0.5) < 0.03


def test_normalize_matches_the_textbook_formula():
    x = torch.randint(0, 256, (4, 3, 5, 5), dtype=torch.uint8)
    mean, std = (0.1, 0.5, 0.9), (0.2, 0.3, 0.4)
    expected = (x.double() / 255 - torch.tensor(mean).view(1, 3, 1, 1).double()) / torch.tensor(
        std
    ).view(1, 3, 1, 1).double()
    torch.testing.assert_close(normalize(x, mean, std).double(), expected, rtol=1e-5, atol=1e-5)


# -- the second-order set ----------------------------------------------------------------------


def _channel_stats(images: torch.Tensor):
    z = (images.double() - so.PIXEL_CENTRE) / so.PIXEL_SCALE
    f = z.flatten(2)
    fc = f - f.mean(-1, keepdim=True)
    cov = fc @ fc.transpose(1, 2) / f.shape[-1]
    d = cov.diagonal(dim1=1, dim2=2).sqrt()
    return z, cov / (d[:, :, None] * d[:, None, :])


def test_second_order_classes_share_first_order_statistics_and_differ_in_correlation():
    images, labels = so.generate(4000, rho=0.25, smoothing=1.5, seed=3)
    assert images.dtype == torch.uint8 and images.shape == (4000, 3, 32, 32)
    assert torch.bincount(labels).tolist() == [500] * 8
    z, corr = _channel_stats(images)
    target = so.correlation_matrices(3, 8, 0.25)
    for k in range(8):
        zk = z[labels == k]
        assert zk.mean((0, 2, 3)).abs().max() < 0.05  # same mean 0 in every class
        assert (zk.std((0, 2, 3)) - 1).abs().max() < 0.03  # same variance 1
        # The per-pixel channel correlation is exactly the class's R_k (up to sampling).
        pixels = zk.permute(1, 0, 2, 3).flatten(1)
        torch.testing.assert_close(torch.corrcoef(pixels), target[k], atol=0.03, rtol=0)
    # A first-order classifier (nearest class centroid of per-image channel means and
    # variances) is at chance; reading the correlation (the oracle) is far above it.
    feats = torch.cat([z.mean((2, 3)), z.var((2, 3))], 1)
    train, test = slice(0, 3000), slice(3000, None)
    centroids = torch.stack([feats[train][labels[train] == k].mean(0) for k in range(8)])
    first_order = (torch.cdist(feats[test], centroids).argmin(1) == labels[test]).float().mean()
    oracle = ((corr[:, None] - target.float()[None].double()) ** 2).sum((-1, -2)).argmin(1)
    assert first_order < 0.2  # chance is 0.125
    assert (oracle == labels).float().mean() > 0.9


def test_second_order_is_reproducible_and_train_test_differ():
    a = load_dataset("second_order", True, num_train=64, num_test=32, seed=5)
    b = load_dataset("second_order", True, num_train=64, num_test=32, seed=5)
    t = load_dataset("second_order", False, num_train=64, num_test=32, seed=5)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert len(t) == 32 and not torch.equal(a.images[:32], t.images)
    assert a.info.classes[0] == "corr(+,+,+)" and a.info.num_classes == 8
    assert a.info.options["rho"] == 0.25


def test_second_order_rejects_indefinite_correlations_and_too_many_classes():
    with pytest.raises(ValueError, match="rho < 0.5"):
        so.correlation_matrices(3, 8, 0.5)
    with pytest.raises(ValueError, match="between 2 and 8"):
        so.sign_patterns(3, 9)


# -- Fashion-MNIST: offline first --------------------------------------------------------------


@needs_fmnist
def test_fashion_mnist_is_unpacked_from_the_debian_copy_into_the_cache(isolated):
    train = load_dataset("fashion_mnist", True, download=False)
    test = load_dataset("fashion_mnist", False, download=False)
    assert train.images.shape == (60000, 1, 28, 28) and test.images.shape == (10000, 1, 28, 28)
    assert torch.bincount(test.labels).tolist() == [1000] * 10
    assert train.info.classes[0] == "T-shirt/top" and train.info.num_classes == 10
    raw = isolated / "cache" / "FashionMNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(sources.FASHION_MNIST_FILES)
    # The published per-pixel statistics are what the normaliser uses.
    pixels = train.images.double() / 255
    assert abs(pixels.mean().item() - train.info.mean[0]) < 1e-3
    assert abs(pixels.std().item() - train.info.std[0]) < 1e-3


@needs_fmnist
def test_fashion_mnist_from_a_user_root_holding_the_gz_files(isolated, monkeypatch):
    root = isolated / "mine"
    root.mkdir()
    for name in sources.FASHION_MNIST_FILES:
        if name.startswith("t10k"):
            shutil.copy(DEBIAN_FMNIST / f"{name}.gz", root)
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        shutil.copy(DEBIAN_FMNIST / f"{name}.gz", root)
    monkeypatch.setattr(sources, "KNOWN_COPIES", {})
    monkeypatch.setenv("GSOP_DATA", str(root))
    test = load_dataset("fashion_mnist", False, download=False)
    assert len(test) == 10000
    assert (root / "FashionMNIST" / "raw" / "t10k-images-idx3-ubyte").is_file()


def test_a_missing_dataset_is_one_error_naming_where_it_looked(isolated, monkeypatch):
    monkeypatch.setattr(sources, "KNOWN_COPIES", {"fashion_mnist": [isolated / "nowhere"]})
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("fashion_mnist", download=False, root=isolated / "root")
    message = str(info.value)
    assert "\n" not in message
    for place in ("root", "cache", "nowhere"):
        assert str(isolated / place) in message


def test_a_failed_download_is_reported_with_the_places_tried(isolated, monkeypatch):
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(sources, "KNOWN_COPIES", {})
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    with pytest.raises(DatasetNotFoundError, match="download into .* failed .*unreachable"):
        load_dataset("cifar10")


def test_unknown_dataset_and_option_list_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown dataset 'mnist'\. .*Known datasets: cifar10, "
                                         r"cifar100, fashion_mnist"):
        load_dataset("mnist")
    with pytest.raises(ValueError, match="takes no option colour; valid: num_train"):
        load_dataset("second_order", colour=1)
    assert "image_size" in dataset_options("imagefolder")
    assert set(list_datasets()) >= {"fashion_mnist", "cifar10", "cifar100", "imagefolder"}


# -- CIFAR: tiny files in the real format --------------------------------------------------------


def _write_cifar(root: Path, fine: bool, per_file: int = 6) -> dict:
    rng = np.random.default_rng(0)
    written = {}
    if fine:
        folder = root / "cifar-100-python"
        files, meta = ["train", "test"], ("meta", "fine_label_names", [f"c{i}" for i in range(100)])
        key = "fine_labels"
    else:
        folder = root / "cifar-10-batches-py"
        files = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
        meta, key = ("batches.meta", "label_names", [f"c{i}" for i in range(10)]), "labels"
    folder.mkdir(parents=True)
    for name in files:
        data = rng.integers(0, 256, (per_file, 3072), dtype=np.uint8)
        labels = rng.integers(0, 100 if fine else 10, per_file).tolist()
        with open(folder / name, "wb") as f:
            pickle.dump({"data": data, key: labels}, f, protocol=2)
        written[name] = (data, labels)
    with open(folder / meta[0], "wb") as f:
        pickle.dump({meta[1]: meta[2]}, f)
    return written


@pytest.mark.parametrize("fine", [False, True])
def test_cifar_reads_the_python_batches(isolated, fine):
    written = _write_cifar(isolated / "root", fine)
    name = "cifar100" if fine else "cifar10"
    train = load_dataset(name, True, isolated / "root", download=False)
    test = load_dataset(name, False, isolated / "root", download=False)
    assert len(train) == (6 if fine else 30) and len(test) == 6
    data, labels = written["test" if fine else "test_batch"]
    # CIFAR rows are 1024 red, then green, then blue values, each row-major 32 x 32.
    assert torch.equal(test.images, torch.from_numpy(data.reshape(-1, 3, 32, 32)))
    assert test.labels.tolist() == labels
    assert train.info.num_classes == (100 if fine else 10) and train.info.input_size == (32, 32)


def test_cifar_reader_refuses_a_pickle_that_would_run_code(isolated):
    marker = isolated / "ran"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    folder = isolated / "root" / "cifar-10-batches-py"
    _write_cifar(isolated / "root", fine=False)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({"data": Evil(), "labels": [0]}, f)
    with pytest.raises(ValueError, match="refusing to load pathlib"):
        load_dataset("cifar10", False, isolated / "root", download=False)
    assert not marker.exists()


# -- ImageFolder -------------------------------------------------------------------------------


def _write_folder(root: Path, per_class: int = 3) -> None:
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for cls in ("ants", "bees"):
            (root / split / cls).mkdir(parents=True)
            for i in range(per_class):
                pixels = rng.integers(0, 256, (20 + i, 30, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / cls / f"{i}.png")


def test_image_folder_streams_resized_images(isolated):
    _write_folder(isolated / "imgs")
    train = load_dataset("imagefolder", True, isolated / "imgs", image_size=16)
    val = load_dataset("imagefolder", False, isolated / "imgs", image_size=16, in_chans=1)
    assert not train.in_memory and len(train) == 6 and train.info.classes == ("ants", "bees")
    assert train.info.crop_padding == 2 and val.info.in_chans == 1
    loader = make_loader(train, 4, train=True, workers=0)
    assert isinstance(loader, StreamLoader)
    batches = list(loader)
    assert [tuple(x.shape) for x, _ in batches] == [(4, 3, 16, 16)]
    x, _ = next(iter(make_loader(val, 8, train=False, workers=0)))
    assert x.shape == (6, 1, 16, 16) and x.dtype == torch.float32


def test_image_folder_without_root_or_split_folder_is_a_clear_error(isolated):
    with pytest.raises(DatasetNotFoundError, match="needs a root"):
        load_dataset("imagefolder")
    (isolated / "empty").mkdir()
    with pytest.raises(DatasetNotFoundError, match="no train/ folder under"):
        load_dataset("imagefolder", True, isolated / "empty")


# -- loaders -----------------------------------------------------------------------------------


def _toy(n: int = 50):
    split = load_dataset("second_order", True, num_train=n, image_size=8, smoothing=0.5)
    # Make every image identify its own index so orders can be read back from batches.
    split.labels = torch.arange(n)
    return split


def test_resident_loader_visits_each_sample_once_and_reseeds_per_epoch():
    split = _toy()
    loader = ResidentLoader(split, 8, train=True, augment=False, seed=3)
    assert len(loader) == 6  # 50 // 8, last partial batch dropped for training
    first = torch.cat([y for _, y in loader])
    again = torch.cat([y for _, y in loader])
    loader.set_epoch(1)
    second = torch.cat([y for _, y in loader])
    assert len(first.unique()) == 48 and torch.equal(first, again)
    assert not torch.equal(first, second)
    x, y = next(iter(ResidentLoader(split, 50, train=False)))
    torch.testing.assert_close(x, normalize(split.images, split.info.mean, split.info.std))


def test_two_ranks_split_an_epoch_like_distributed_sampler():
    split = _toy(51)
    ranks = [
        ResidentLoader(split, 5, train=True, augment=False, rank=r, world_size=2) for r in (0, 1)
    ]
    seen = [torch.cat([y for _, y in loader]) for loader in ranks]
    assert len(seen[0]) == len(seen[1]) == 25
    assert len(set(seen[0].tolist()) & set(seen[1].tolist())) <= 1  # one padded duplicate
    evals = [ResidentLoader(split, 7, train=False, rank=r, world_size=2) for r in (0, 1)]
    parts = [torch.cat([y for _, y in loader]) for loader in evals]
    assert sorted(torch.cat(parts).tolist()) == list(range(51))  # exactly once, no padding


def test_stream_and_resident_loaders_agree_on_evaluation_batches():
    split = _toy(20)
    a = list(ResidentLoader(split, 6, train=False))
    b = list(StreamLoader(split, 6, train=False, workers=0))
    assert len(a) == len(b) == 4
    for (xa, ya), (xb, yb) in zip(a, b):
        assert torch.equal(ya, yb)
        torch.testing.assert_close(xa, xb)


def test_augmentation_is_reproducible_and_only_in_training():
    split = load_dataset("second_order", True, num_train=32, image_size=8, smoothing=0.5)
    split.info = type(split.info)(**{**split.info.__dict__, "crop_padding": 2})
    a = next(iter(ResidentLoader(split, 32, train=True, seed=1)))
    b = next(iter(ResidentLoader(split, 32, train=True, seed=1)))
    plain = next(iter(ResidentLoader(split, 32, train=True, seed=1, augment=False)))
    assert torch.equal(a[1], plain[1])  # same order, so the images differ only by augmentation
    torch.testing.assert_close(a[0], b[0])
    assert not torch.equal(a[0], plain[0])
    evaluation = next(iter(ResidentLoader(split, 32, train=False, seed=1)))[0]
    torch.testing.assert_close(evaluation, normalize(split.images, split.info.mean, split.info.std))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_resident_loader_keeps_data_and_batches_on_the_gpu():
    split = load_dataset("second_order", True, num_train=256, image_size=16)
    loader = make_loader(split, 64, train=True, device="cuda")
    assert loader.images.is_cuda
    x, y = next(iter(loader))
    assert x.is_cuda and y.is_cuda and x.shape == (64, 3, 16, 16)


def test_subset_is_seeded_and_sized():
    split = load_dataset("second_order", True, num_train=40, image_size=8, smoothing=0.5)
    a, b = split.subset(10, seed=1), split.subset(10, seed=1)
    assert len(a) == 10 and torch.equal(a.images, b.images)
    assert split.subset(100) is split


def test_gunzip_writes_whole_files(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    with gzip.open(src / "a.gz", "wb") as f:
        f.write(b"payload" * 1000)
    sources._gunzip_into(src, tmp_path / "out", ("a",))
    assert (tmp_path / "out" / "a").read_bytes() == b"payload" * 1000
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["a"]
