"""The explorer: decoding of every image mode and every bad input; the app driven by AppTest."""

from __future__ import annotations

import io
import json
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
# explorer/ is an app folder, not an installed package: make it importable under plain `pytest`.
sys.path.insert(0, str(ROOT))

from image_samples import BAD_INPUTS, SAMPLES  # noqa: E402

from gsoplib.images import decode_image, to_model_image, to_tensor  # noqa: E402

# ---------------------------------------------------------------- the images panel alone


def images_panel_script():
    """Runs as the app script (in this process, so ROOT is on the path already): the images
    panel for a 1-channel 28x28 model."""
    import streamlit as st
    from gsoplib.explorer.image_panel import InputSpec, render

    inputs = render(InputSpec(1, (28, 28), (0.5,), (0.5,)))
    st.session_state["converted"] = [(i.name, i.source.mode, i.tensor.shape) for i in inputs]


@pytest.fixture(autouse=True)
def _fresh_caches():
    """Streamlit's caches outlive an AppTest: each test starts from cold ones."""
    import streamlit as st

    st.cache_resource.clear()
    st.cache_data.clear()
    yield
    st.cache_resource.clear()
    st.cache_data.clear()


def images_panel() -> AppTest:
    return AppTest.from_function(images_panel_script, default_timeout=30).run()


def test_images_panel_converts_uploads_of_every_mode_and_reports_each_bad_one():
    at = images_panel()
    assert at.session_state["converted"] == [("9-00000.png", "L", (1, 28, 28))]
    good = [SAMPLES[kind] for kind in SAMPLES]
    bad = [BAD_INPUTS[kind][0] for kind in BAD_INPUTS]
    at.file_uploader(key="upload_images").set_value(good + bad).run()
    assert not at.exception
    converted = at.session_state["converted"]
    assert [name for name, _, _ in converted[1:]] == [name for name, _, _ in good]
    assert all(shape == (1, 28, 28) for _, _, shape in converted)
    modes = [mode for _, mode, _ in converted[1:]]
    assert modes == ["L", "RGB", "RGBA", "P", "I;16", "CMYK", "RGB", "P", "RGB", "RGB"]
    errors = [e.value for e in at.error]
    assert len(errors) == len(bad)
    for (_, expected), message in zip(BAD_INPUTS.values(), errors):
        assert expected in message
    # original beside converted input, for every image that decoded
    assert len(at.image) == 2 * len(converted)


# ---------------------------------------------------------------- checkpoints the app refuses

APP = ROOT / "explorer" / "app.py"
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


def make_checkpoint(folder: Path, model_name: str, in_chans: int = 1, prepare=None,
                    file_name: str | None = None, **model_kwargs) -> Path:
    """An untrained ``model_name`` for 28x28 Fashion-MNIST-like input, saved as a checkpoint;
    ``prepare(model)`` may set its weights first."""
    from gsoplib.checkpoint import save_checkpoint
    from gsoplib.models import create_model

    kwargs = {"num_classes": len(FASHION_CLASSES), "in_chans": in_chans, **model_kwargs}
    torch.manual_seed(0)
    model = create_model(model_name, **kwargs).eval()
    if prepare is not None:
        prepare(model)
    return save_checkpoint(
        folder / f"{file_name or model_name}.safetensors", model, model_name=model_name,
        model_kwargs=kwargs,
        classes=FASHION_CLASSES, input_size=(28, 28), in_chans=in_chans,
        mean=(0.286,) * in_chans, std=(0.353,) * in_chans, dataset="fashion_mnist",
        train_config={"recipe": "untrained, for tests"}, metrics={"test_top1": 0.1},
    )


# Opening a ResNet-50 at 224 warms it up: every chart and the attributions once, Occlusion's
# 49 forward passes of 0.2-0.5 s each on a 2-core CPU; a run may take longer than 30 s.
IMAGENET_TIMEOUT = 120


def app(timeout: float = 30) -> AppTest:
    return AppTest.from_file(str(APP), default_timeout=timeout).run()


def upload_checkpoint(at: AppTest, name: str, data: bytes) -> AppTest:
    at.radio(key="a_source").set_value("Upload").run()
    at.file_uploader(key="a_upload").set_value((name, data, "application/octet-stream"))
    return at.run()


def pickled_bytes() -> bytes:
    buffer = io.BytesIO()
    torch.save({"weight": torch.zeros(3)}, buffer)
    return buffer.getvalue()


def plain_safetensors() -> bytes:
    return safetensors.torch.save({"weight": torch.zeros(3)})


REFUSED_CHECKPOINTS = {
    # key: (file name, bytes, text the error must contain)
    "pickled": ("model.safetensors", pickled_bytes(), "is a pickled PyTorch file"),
    "corrupt": ("junk.safetensors", b"\x10\x00\x00\x00\x00\x00\x00\x00{not json",
                "is not a valid safetensors file"),
    "truncated": ("cut.safetensors", plain_safetensors()[:-5], "is not a valid safetensors file"),
    "no metadata": ("bare.safetensors", plain_safetensors(), "without gsoplib metadata"),
    "empty": ("empty.safetensors", b"", "is not a valid safetensors file"),
}


@pytest.mark.parametrize("kind", list(REFUSED_CHECKPOINTS))
def test_a_refused_checkpoint_upload_is_one_message_and_the_session_goes_on(kind):
    name, data, expected = REFUSED_CHECKPOINTS[kind]
    at = upload_checkpoint(app(), name, data)
    assert not at.exception
    [error] = at.error
    assert expected in error.value and f"'{name}'" in error.value
    assert "/tmp" not in error.value
    at.radio(key="a_source").set_value("File path").run()
    assert not at.exception and not at.error


def test_checkpoint_upload_over_the_size_limit_is_refused_unread(monkeypatch):
    from gsoplib.explorer import model_panel
    from streamlit.runtime.uploaded_file_manager import UploadedFile

    def unread(*_):
        raise AssertionError("an upload over the size limit was read")

    monkeypatch.setattr(model_panel, "MAX_CHECKPOINT_MB", 1)
    monkeypatch.setattr(UploadedFile, "getvalue", unread)
    monkeypatch.setattr(UploadedFile, "read", unread)
    at = upload_checkpoint(app(), "huge.safetensors", bytes(2 * 2**20))
    assert not at.exception
    [error] = at.error
    assert "'huge.safetensors' is 2 MB, over the 1 MB checkpoint upload limit" in error.value


def test_missing_checkpoint_path_is_one_message(tmp_path):
    at = app()
    at.radio(key="a_source").set_value("File path").run()
    at.text_input(key="a_path").input(str(tmp_path / "nowhere.safetensors")).run()
    assert not at.exception
    assert "nowhere.safetensors does not exist" in at.error[0].value


def test_a_checkpoint_for_another_architecture_is_refused(tmp_path):
    """Weights of small_gsop1 under metadata that names small_se: they do not fit."""
    import json

    source = make_checkpoint(tmp_path, "small_gsop1")
    tensors = safetensors.torch.load_file(str(source))
    with safetensors.safe_open(str(source), "pt") as f:
        meta = json.loads(f.metadata()["gsoplib"])
    meta["model"]["name"] = "small_se"
    data = safetensors.torch.save(tensors, metadata={"gsoplib": json.dumps(meta)})
    at = upload_checkpoint(app(), "swapped.safetensors", data)
    assert not at.exception
    [error] = at.error
    assert "does not fit model 'small_se'" in error.value and "'swapped.safetensors'" in error.value
    meta["model"]["name"] = "resnet_9000"
    data = safetensors.torch.save(tensors, metadata={"gsoplib": json.dumps(meta)})
    at.file_uploader(key="a_upload").set_value(("future.safetensors", data, "application/x"))
    at.run()
    assert not at.exception
    assert "names a model this gsoplib cannot build" in at.error[0].value


# ---------------------------------------------------------------- the app on real checkpoints

from gsoplib.explorer import pipeline  # noqa: E402
from gsoplib.explorer.image_panel import gallery_for  # noqa: E402
from gsoplib.explorer.views import VIEWS  # noqa: E402

from gsoplib.checkpoint import load_checkpoint  # noqa: E402
from gsoplib.pretrained import list_pretrained, pretrained_path  # noqa: E402
from gsoplib.probe import probe  # noqa: E402

KINDS = ("small_gsop2", "small_gsop_pos", "small_gmsop", "small_vanilla")
EXPECTED_BUNDLED = tuple(f"fmnist_small_{m}" for m in
                         ("vanilla", "se", "gsop1", "gsop_pos", "gsop2", "gmsop")) + (
    "second_order_small_vanilla", "second_order_small_gsop1")
FASHION = gallery_for("fashion_mnist")
DEFAULT_SAMPLE = "9-00000.png"  # the sample the app starts with: Fashion-MNIST test image #0


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    """One untrained checkpoint per kind of second-order part (and a first-order one)."""
    folder = tmp_path_factory.mktemp("checkpoints")
    return {name: make_checkpoint(folder, name) for name in KINDS}


def open_path(path: Path, at: AppTest | None = None, prefix: str = "a_") -> AppTest:
    at = at or app()
    at.radio(key=f"{prefix}source").set_value("File path").run()
    at.text_input(key=f"{prefix}path").input(str(path)).run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    return at


def show(at: AppTest, view: str) -> AppTest:
    at.radio(key="view").set_value(view).run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def direct_probe(path: Path, names: list[str]):
    """gsoplib.probe on the gallery samples ``names``, decoded as the explorer decodes them."""
    files = {f.name: f for f in FASHION.files}
    return direct_probe_bytes(path, [files[n].read_bytes() for n in names])


def direct_probe_bytes(path: Path, images: list[bytes]):
    """gsoplib.probe on image files' bytes, decoded and converted as the explorer does."""
    ckpt = load_checkpoint(path)
    tensors = [
        to_tensor(to_model_image(decode_image(data).image, ckpt.in_chans, ckpt.input_size),
                  ckpt.mean, ckpt.std)
        for data in images
    ]
    return probe(ckpt.model, torch.stack(tensors), class_names=ckpt.classes)


def charts_shown(at: AppTest) -> dict[str, tuple[dict, dict]]:
    """Name (the chart's accessible description) -> (Vega-Lite spec, its datasets by name as
    DataFrames) of every interactive chart on the page."""
    from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df

    out = {}
    for element in at.get("vega_lite_chart"):
        proto = element.proto
        out[proto.alt] = (json.loads(proto.spec),
                          {d.name: convert_arrow_bytes_to_pandas_df(d.data.data)
                           for d in proto.datasets})
    return out


def chart_data(at: AppTest, name: str, *columns: str):
    """The one dataset of chart ``name`` that has ``columns``."""
    shown = charts_shown(at)
    assert name in shown, f"no chart {name!r}; the page has {list(shown)}"
    [frame] = [d for d in shown[name][1].values() if set(columns) <= set(d.columns)]
    return frame


def table_matches(table, insp, image: int = 0) -> None:
    top = insp.top[image]
    assert list(table["class"]) == [p.name for p in top]
    np.testing.assert_allclose(list(table["probability"]), [p.probability for p in top],
                               atol=1e-4)


def block_charts_match(at: AppTest, insp, record) -> None:
    """The block's charts on the page hold the probe's numbers for image 0 (up to float32 sums
    in another order: the app runs one torch thread, deep networks accumulate ~1e-5)."""
    t = record.tensors
    if "tap_channel_weights" in t:
        bars = chart_data(at, f"{record.path}: channel weights", "channel", "weight")
        np.testing.assert_allclose(bars.sort_values("channel")["weight"],
                                   t["tap_channel_weights"][0].flatten().double(), rtol=1e-4,
                                   atol=1e-5)
    if "tap_pos_weights" in t:
        cells = chart_data(at, f"{record.path}: position weights", "x", "value")
        full = t["tap_pos_weights"][0].squeeze().double().numpy()
        np.testing.assert_allclose(cells["value"], full[cells["row"], cells["col"]], rtol=1e-5,
                                   atol=1e-6)
    name, tap = (("position covariance", "tap_pos_cov") if "tap_pos_cov" in t
                 else ("covariance (before)", "tap_cov"))
    shown = charts_shown(at)
    assert f"{record.path}: covariance" in shown, f"no covariance chart; the page has {shown}"
    part = shown[f"{record.path}: covariance"][1][name]
    m = t[tap][0].double().numpy()
    assert len(part) == m.size
    # float32 sums in another order (the app's one torch thread) differ by ~1e-5 of the scale
    np.testing.assert_allclose(part["value"], m[part["row"], part["col"]], rtol=1e-6,
                               atol=1e-4 * np.abs(m).max())


@pytest.mark.parametrize("kind", KINDS)
def test_every_view_of_every_kind_of_model(kind, checkpoints):
    at = open_path(checkpoints[kind])
    card = " ".join(m.value for m in at.sidebar.markdown)
    assert kind in card and "fashion_mnist" in card
    insp = direct_probe(checkpoints[kind], [DEFAULT_SAMPLE])
    parts = [r.path for r in insp.parts()]
    assert ("none" in card) == (not parts)
    for path in parts:
        assert f"`{path}`" in card
    # original and converted input; the prediction is a chart, its figure a download
    assert len(at.image) == 2
    table_matches(at.table[0].value, insp)
    bars = chart_data(at, "prediction", "class", "probability")
    np.testing.assert_allclose(bars["probability"], [p.probability for p in insp.top[0]],
                               rtol=1e-6)
    assert at.code[0].value == insp.summary()
    assert "True class: **Ankle boot**" in [m.value for m in at.main.markdown]

    at = show(at, "Blocks")
    blocks = [r for r in insp.parts() if r.kind not in pipeline.HEAD_KINDS]
    headings = [m.value for m in at.main.markdown if m.value.startswith("#### ")]
    assert [h.split("`")[1] for h in headings] == [r.path for r in blocks]
    summaries = [r.summary() for r in blocks]
    assert [c.value for c in at.main.caption if c.value in summaries] == summaries
    assert len(at.image) == 2  # no figure is drawn: the PNGs are downloads
    for record in blocks:
        block_charts_match(at, insp, record)
    downloads = [b.label for b in at.get("download_button")]
    assert downloads == [f"{r.path}: figures (ZIP of PNGs)" for r in blocks]
    if not blocks:
        assert "no second-order blocks" in at.info[0].value

    at = show(at, "Head")
    heads = [r for r in insp.parts() if r.kind in pipeline.HEAD_KINDS]
    for record in heads:
        if record.kind == "isqrt_cov":
            cov = charts_shown(at)[f"{record.path}: covariance"][1]
            assert set(cov) == {"covariance (before)", "Newton-Schulz output", "spectrum"}
            sqrt = record["tap_cov_sqrt"][0].double().numpy()
            part = cov["Newton-Schulz output"]
            np.testing.assert_allclose(part["value"], sqrt[part["row"], part["col"]],
                                       rtol=1e-6, atol=1e-12)
        if record.kind == "gated_mixture":
            gate = chart_data(at, f"{record.path}: gate", "component", "weight")
            np.testing.assert_allclose(gate["weight"], record["tap_gate_weights"][0].double(),
                                       rtol=1e-6)
            usage = chart_data(at, f"{record.path}: gate weights per image", "image", "weight")
            assert usage["image"].nunique() == len(FASHION.files)
            before = chart_data(at, f"{record.path}: gate weights per class", "mean_weight")
            at.radio(key="usage_over").set_value("chosen").run()
            assert not at.exception
            usage = chart_data(at, f"{record.path}: gate weights per image", "image", "weight")
            assert usage["image"].nunique() == 1
            np.testing.assert_allclose(usage["weight"], record["tap_gate_weights"][0].double(),
                                       rtol=1e-6)
            after = chart_data(at, f"{record.path}: gate weights per class", "mean_weight")
            assert len(after) < len(before)
    if not heads:
        assert "first-order head" in at.info[0].value

    at = show(at, "Attributions")
    [name] = [n for n in charts_shown(at) if n.startswith("attributions")]
    assert "Grad-CAM" in name and "Occlusion" in name and "Integrated" not in name
    assert name.startswith(f"attributions for {insp.top[0][0].name}")
    assert [b.label for b in at.get("download_button")] == ["Attributions (PNG)"]
    # how to read each map, in a caption under the chart
    [notes] = [c.value for c in at.caption if c.value.startswith("**Grad-CAM**")]
    assert "divided by its largest value" in notes
    assert "**Occlusion**: how far the class logit" in notes

    at = show(at, "Downloads")
    labels = [b.label for b in at.get("download_button")]
    assert labels == ["Inspection (JSON)", "Inspection arrays (NPZ)", "Every figure (ZIP of PNGs)"]


def test_integrated_gradients_only_behind_the_slow_switch(checkpoints):
    at = show(open_path(checkpoints["small_gsop2"]), "Attributions")
    [target] = [s for s in at.selectbox if (s.key or "").startswith("target-")]
    target.set_value(3).run()
    [figure] = [n for n in charts_shown(at) if n.startswith("attributions")]
    assert "Integrated Gradients" not in figure
    at.toggle(key="integrated_gradients").set_value(True).run()
    assert not at.exception and not at.error
    [figure] = [n for n in charts_shown(at) if n.startswith("attributions")]
    assert figure.startswith(f"attributions for {FASHION_CLASSES[3]}")
    assert "Integrated Gradients" in figure
    spec, frames = charts_shown(at)[figure]
    assert len([f for f in frames.values() if "value" in f.columns]) == 3  # one per method


def test_downloads_hold_the_inspection(checkpoints):
    import json
    import threading
    import zipfile

    ckpt = load_checkpoint(checkpoints["small_gmsop"])
    image = to_tensor(to_model_image(decode_image(FASHION.files[0].read_bytes()).image, 1,
                                     (28, 28)), ckpt.mean, ckpt.std)
    insp = pipeline.inspect(ckpt, threading.Lock(), image)
    data = json.loads(pipeline.inspection_json(insp))
    assert data["predictions"][0][0]["name"] == insp.top[0][0].name
    assert [b["path"] for b in data["blocks"]] == list(insp.blocks)
    arrays = np.load(io.BytesIO(pipeline.inspection_npz(insp)))
    np.testing.assert_array_equal(arrays["head/tap_gate_weights"],
                                  insp["head"]["tap_gate_weights"].numpy())
    pngs = pipeline.all_views(ckpt, threading.Lock(), image)
    with zipfile.ZipFile(io.BytesIO(pipeline.figures_zip(pngs))) as archive:
        names = archive.namelist()
        assert len(names) == len(pngs) and "head-gate.png" in names
        assert archive.read("prediction.png")[:8] == b"\x89PNG\r\n\x1a\n"


def test_uploads_of_every_mode_and_every_bad_file_in_the_app(checkpoints):
    at = open_path(checkpoints["small_gsop_pos"])
    good = [SAMPLES[kind] for kind in SAMPLES]
    bad = [BAD_INPUTS[kind][0] for kind in BAD_INPUTS]
    at.file_uploader(key="upload_images").set_value(good + bad).run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == len(bad)
    for (_, expected), message in zip(BAD_INPUTS.values(), errors):
        assert expected in message
    choices = at.selectbox(key="image").options
    assert len(choices) == 1 + len(good)
    # the session goes on: uploads of every mode can be inspected
    for kind in ("exif-rotated", "16-bit", "cmyk"):
        at.selectbox(key="image").set_value(1 + list(SAMPLES).index(kind)).run()
        assert not at.exception
        direct = direct_probe_bytes(checkpoints["small_gsop_pos"], [SAMPLES[kind][1]])
        table_matches(at.table[0].value, direct)
        assert at.code[0].value == direct.summary()
    at.radio(key="view").set_value("Blocks").run()
    assert not at.exception and len(at.error) == len(bad)
    assert any(n.endswith("position weights") for n in charts_shown(at))


def test_compare_mode_shows_two_checkpoints_on_the_same_image(checkpoints):
    at = open_path(checkpoints["small_gsop2"])
    at.toggle(key="compare").set_value(True).run()
    assert not at.exception
    # The second picker starts on the first bundled checkpoint: two prediction tables at once.
    assert at.selectbox(key="b_bundled").value == list_pretrained()[0]
    assert len(at.table) == 2
    at.radio(key="b_source").set_value("File path").run()
    assert "Choose the second checkpoint" in at.info[0].value
    at = open_path(checkpoints["small_gmsop"], at, prefix="b_")
    tables = [t.value for t in at.table]
    assert len(tables) == 2
    table_matches(tables[0], direct_probe(checkpoints["small_gsop2"], [DEFAULT_SAMPLE]))
    table_matches(tables[1], direct_probe(checkpoints["small_gmsop"], [DEFAULT_SAMPLE]))
    # one above the other, each named, and each with its card in the sidebar
    headers = [h.value for h in at.subheader if "model:" in h.value]
    assert [h.split(":")[0] for h in headers] == ["first model", "second model"]
    cards = [m.value for m in at.sidebar.markdown if m.value.startswith("**small_")]
    assert [c.split("**")[1] for c in cards] == ["small_gsop2", "small_gmsop"]
    at = show(at, "Head")
    names = list(charts_shown(at))
    assert "head.pool: covariance" in names and "head: gate" in names
    at = show(at, "Attributions")
    assert sum("Grad-CAM" in n for n in charts_shown(at)) == 2


def test_the_bundled_checkpoints_are_offered():
    """Every checkpoint the issue names ships and is offered, and nothing else."""
    at = app()
    assert not at.exception
    assert at.radio(key="a_source").value == "Bundled"
    offered = at.selectbox(key="a_bundled").options
    assert offered == list_pretrained()
    assert set(EXPECTED_BUNDLED) <= set(offered)


def test_without_bundled_checkpoints_the_app_offers_a_path_or_an_upload(monkeypatch):
    from gsoplib import pretrained

    monkeypatch.setattr(pretrained, "list_pretrained", lambda: [])
    at = app()
    assert not at.exception
    assert at.radio(key="a_source").options == ["File path", "Upload"]
    assert "No checkpoint is bundled" in at.sidebar.caption[0].value


@pytest.mark.parametrize("name", EXPECTED_BUNDLED)
def test_each_bundled_checkpoint_in_the_app(name):
    at = app()
    at.selectbox(key="a_bundled").set_value(name).run()
    assert not at.exception and not at.error
    ckpt = load_checkpoint(pretrained_path(name))
    card = " ".join(m.value for m in at.sidebar.markdown)
    assert ckpt.model_name in card
    assert f"test top-1 **{100 * ckpt.metrics['test_top1']:.2f}%**" in card
    assert f"{ckpt.meta['train']['epochs']} epochs" in card
    table = at.table[0].value
    assert set(table["class"]) <= set(ckpt.classes)
    if ckpt.meta["data"]["name"] == "fashion_mnist" and ckpt.metrics.get("test_top1", 0) > 0.85:
        # test image #0 is an easy ankle boot: a trained model gets it
        assert table["class"][0] == "Ankle boot"
    for view in VIEWS[1:]:
        show(at, view)


@contextmanager
def one_runtime_for_all_sessions():
    """Let AppTests run concurrently, as sessions of one served app do.

    Each ``AppTest.run`` installs a mock ``Runtime`` as the process-wide instance and removes it
    when its run ends, which pulls the runtime from under any other session still running. Here
    the runs install theirs on a subclass instead, and one shared mock runtime serves them all,
    as one Runtime serves every session of ``streamlit run``. Each run also swaps the
    process-wide config getter for one that says ``global.appTest`` and puts the old one back
    when it ends, so a run finishing early would turn the test mode off under the others (their
    widgets' format functions go unrecorded: a KeyError on the next run). Here one getter is
    installed for all runs and theirs are no-ops. Streamlit's "magic" rewrites the script's
    syntax tree on every AppTest run, which Python 3.11 cannot do in two threads at once
    ("AST constructor recursion depth mismatch"); the app uses no magic, so it is off here.
    """
    from contextlib import nullcontext
    from unittest.mock import MagicMock, patch

    from streamlit.components.v2.component_manager import BidiComponentManager
    from streamlit.runtime import Runtime
    from streamlit.runtime.caching.storage.dummy_cache_storage import MemoryCacheStorageManager
    from streamlit.runtime.dataframe_source_manager import DataframeSourceManager
    from streamlit.runtime.media_file_manager import MediaFileManager
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
    from streamlit.testing.v1 import app_test
    from streamlit.testing.v1.util import patch_config_options

    shared = MagicMock(spec=Runtime)
    shared.media_file_mgr = MediaFileManager(MemoryMediaFileStorage("/mock/media"))
    shared.dataframe_source_mgr = DataframeSourceManager()
    shared.cache_storage_manager = MemoryCacheStorageManager()
    shared.bidi_component_registry = BidiComponentManager()
    per_run = type("Runtime", (Runtime,), {})
    options = {"global.appTest": True, "runner.magicEnabled": False}
    with (
        patch.object(app_test, "Runtime", per_run),
        patch_config_options(options),
        patch.object(app_test, "patch_config_options", lambda _: nullcontext()),
    ):
        Runtime._instance = shared
        try:
            yield
        finally:
            Runtime._instance = None


def test_ten_concurrent_sessions_each_get_their_own_image(checkpoints):
    """Ten sessions share one cached model and probe ten different samples at once; each sees
    what a direct gsoplib.probe of its own image gives (the model's lock keeps their hooks
    apart)."""
    from concurrent.futures import ThreadPoolExecutor

    path = checkpoints["small_gsop2"]
    open_path(path)  # the model is loaded and cached once, as for a served app
    samples = [f.name for f in FASHION.files][::3]
    assert len(samples) == 10

    def session(sample: str):
        at = open_path(path)
        at.multiselect(key="gallery_fashion_mnist").set_value([sample]).run()
        assert not at.exception and not at.error
        return at.table[0].value, at.code[0].value

    with one_runtime_for_all_sessions(), ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(session, samples))
    summaries = set()
    for sample, (table, summary) in zip(samples, results):
        direct = direct_probe(path, [sample])
        table_matches(table, direct)
        assert summary == direct.summary()
        summaries.add(summary)
    assert len(summaries) == len(samples)


def gallery_gate_report(path: Path):
    """gsoplib's own gate diagnostics over the Fashion-MNIST gallery, with its true classes."""
    from gsoplib.class_usage import gate_report

    insp = direct_probe(path, [f.name for f in FASHION.files])
    return gate_report(insp, "head", [FASHION.label(f) for f in FASHION.files])


def test_the_head_view_warns_in_one_sentence_when_a_gate_is_degenerate(tmp_path):
    # An untrained live gate starts at zero: every logit ties and the lowest indices win.
    path = make_checkpoint(tmp_path, "small_gmsop", file_name="tied",
                           head_kwargs={"gate": "live"})
    report = gallery_gate_report(path)
    assert report.degenerate and "tie at 1/K" in report.verdict
    at = show(open_path(path), "Head")
    [warning] = at.warning
    assert warning.value == report.verdict and warning.value.startswith("The gate is degenerate")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["top set, % of images"] == f"{report.top_set_share:.0%}"
    assert metrics["MI(class; expert), bits"] == f"{report.mutual_information:.2f}"
    assert metrics["effective components of 4"] == "4.00"


def test_the_head_view_calls_a_one_hot_gate_collapsed(tmp_path):
    """A linear router whose weights grew large chooses by image and puts everything on one of
    its K: the view says so, and the gate chart still marks the chosen components at ~0."""
    def saturate(model):
        with torch.no_grad():
            model.head.gate.w_gate.normal_(std=50.0)

    path = make_checkpoint(tmp_path, "small_gmsop", prepare=saturate, file_name="one_hot",
                           head_kwargs={"gate": "live"})
    report = gallery_gate_report(path)
    assert report.collapsed and report.degenerate
    at = show(open_path(path), "Head")
    [warning] = at.warning
    assert "collapsed to one component" in warning.value and warning.value == report.verdict
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["effective components of 4"] == f"{report.effective_components:.2f}"
    assert float(metrics["largest weight"]) > 0.9
    gate = chart_data(at, "head: gate", "component", "weight", "chosen")
    assert int(gate["chosen"].sum()) == 4 and (gate.loc[gate.chosen, "weight"] < 0.01).sum() >= 2


def test_the_bundled_gm_sop_gate_is_shown_alive_and_mixing():
    path = pretrained_path("fmnist_small_gmsop")
    report = gallery_gate_report(path)
    at = app()
    at.selectbox(key="a_bundled").set_value("fmnist_small_gmsop").run()
    at = show(at, "Head")
    assert not at.warning
    [success] = at.success
    assert success.value == report.verdict and success.value.startswith("The gate chooses")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["effective components of 4"] == f"{report.effective_components:.2f}"
    assert report.effective_components >= 2
    usage = chart_data(at, "head: gate weights per image", "component", "chose", "importance")
    weights = chart_data(at, "head: gate weights per image", "image", "component", "weight")
    # Usage by selection and by weight, each from the probe's weights.
    by_component = weights.groupby("component")["weight"]
    np.testing.assert_allclose(usage.sort_values("component")["importance"],
                               by_component.sum().sort_index(), rtol=1e-6)
    np.testing.assert_array_equal(usage.sort_values("component")["chose"],
                                  by_component.apply(lambda w: int((w > 0).sum())).sort_index())


def test_no_gate_verdict_from_two_images():
    at = app()
    at.selectbox(key="a_bundled").set_value("fmnist_small_gmsop").run()
    samples = [f.name for f in FASHION.files][:2]
    at.multiselect(key="gallery_fashion_mnist").set_value(samples).run()
    at = show(at, "Head")
    at.radio(key="usage_over").set_value("chosen").run()
    assert not at.exception and not at.warning and not at.success
    [info] = [i for i in at.info if i.value.startswith("Too few images")]
    assert info.value.startswith("Too few images to judge the gate: 2 of the 20")


def title_text(spec: dict) -> str:
    """A chart's title as one string (Streamlit may send it as {"text": ...})."""
    title = spec["title"]
    title = title["text"] if isinstance(title, dict) else title
    return " ".join(title) if isinstance(title, list) else title


def test_titles_name_the_image_inspected_not_an_index():
    at = app()
    at.selectbox(key="a_bundled").set_value("fmnist_small_gmsop").run()
    samples = [f.name for f in FASHION.files][:2]
    at.multiselect(key="gallery_fashion_mnist").set_value(samples).run()
    at.selectbox(key="image").set_value(1).run()
    assert not at.exception
    title = title_text(charts_shown(at)["prediction"][0])
    assert title.startswith(f"{samples[1]}: top-") and "image 0" not in title
    at = show(at, "Head")
    [gate] = [spec for name, (spec, _) in charts_shown(at).items() if name.endswith(": gate")]
    assert f", {samples[1]}: chose " in title_text(gate)


@pytest.mark.parametrize("name", ["fmnist_small_gsop2", "fmnist_small_gmsop",
                                  "fmnist_small_gsop_pos"])
def test_every_chart_has_a_line_on_how_to_read_it(name):
    at = app()
    at.selectbox(key="a_bundled").set_value(name).run()
    seen = set()
    for view in ("Prediction", "Blocks", "Head", "Batch", "Attributions"):
        at = show(at, view)
        captions = [c.value for c in at.caption]
        for chart_name in charts_shown(at):
            reading = pipeline.how_to_read(chart_name)
            if chart_name.startswith("attributions"):
                assert any(c.startswith("**Grad-CAM**") for c in captions)
                continue
            assert reading and reading in captions, f"{view}: no reading guide for {chart_name!r}"
            seen.add(reading)
    assert len(seen) >= 3


def test_one_median_in_the_caption_and_the_chart_title():
    """Channel counts are even: the median is the mean of the two middle weights, in the
    probe's one-line summary and in the chart's title alike."""
    at = app()
    at.selectbox(key="a_bundled").set_value("fmnist_small_gsop1").run()
    at = show(at, "Blocks")
    shown = charts_shown(at)
    captions = [c.value for c in at.caption if "channel weights min" in c.value]
    assert captions
    for caption in captions:
        path = caption.split(" ")[0] if caption.startswith("layer") else None
        median = caption.split("median ")[1].split(" ")[0]
        titles = [title_text(spec) for name, (spec, _) in shown.items()
                  if name.endswith(": channel weights") and (path is None or name.startswith(path))]
        assert titles and all(f"median {median} " in t for t in titles), (caption, titles)
    weights = chart_data(at, next(n for n in shown if n.endswith(": channel weights")),
                         "channel", "weight")["weight"].to_numpy()
    middle = np.sort(weights)[len(weights) // 2 - 1: len(weights) // 2 + 1]
    assert len(weights) % 2 == 0 and f"median {middle.mean():.3f} " in next(
        title_text(spec) for name, (spec, _) in shown.items() if name.endswith(": channel weights"))


# ---------------------------------------------------------------- hostile and unlucky checkpoints


def rewritten(source: Path, edit) -> bytes:
    """``source``'s weights under its metadata changed by ``edit(meta)``; the checksum holds."""
    tensors = safetensors.torch.load_file(str(source))
    with safetensors.safe_open(str(source), "pt") as f:
        meta = json.loads(f.metadata()["gsoplib"])
    edit(meta)
    return safetensors.torch.save(tensors, metadata={"gsoplib": json.dumps(meta)})


def _kwargs(**update):
    return lambda meta: meta["model"]["kwargs"].update(update)


def _data(**update):
    return lambda meta: meta["data"].update(update)


HOSTILE = {
    # key: (edit of a small_vanilla checkpoint's metadata, text its one message must contain)
    "200 million classes": (_kwargs(num_classes=200_000_000), "model.kwargs.num_classes"),
    "negative classes": (_kwargs(num_classes=-3), "model.kwargs.num_classes"),
    "3 names for 10 classes": (_data(classes=["a", "b", "c"]), "3 class names"),
    "zero std": (_data(std=[0.0]), "data.std"),
    "huge input": (_data(input_size=[100_000, 100_000]), "data.input_size"),
    "30 million blocks": (_kwargs(layers=[10**7] * 3), "model.kwargs.layers"),
    "600 blocks, a file of 60": (_kwargs(layers=[200] * 3), "more tensors than"),
    "iterations for a head without any": (_kwargs(head_kwargs={"iters": 10**9}),
                                          "model.kwargs.head_kwargs.iters"),
    "an input too small for its views": (_data(input_size=[1, 1]), "fails on the 1x1 input"),
}


@pytest.mark.parametrize("kind", list(HOSTILE))
def test_a_hostile_checkpoint_upload_is_one_message_and_the_session_goes_on(kind, checkpoints):
    edit, expected = HOSTILE[kind]
    name = f"{kind.replace(' ', '_')}.safetensors"
    at = upload_checkpoint(app(), name, rewritten(checkpoints["small_vanilla"], edit))
    assert not at.exception, at.exception
    [error] = at.error
    assert expected in error.value and f"'{name}'" in error.value, error.value
    assert "/tmp" not in error.value and "\n" not in error.value
    at = open_path(checkpoints["small_gsop2"], at)
    table_matches(at.table[0].value, direct_probe(checkpoints["small_gsop2"], [DEFAULT_SAMPLE]))


def test_a_checkpoint_whose_first_byte_is_a_pickles_uploads(checkpoints, tmp_path):
    """0x80 is a pickle's first byte and, for 1 header length in 32, a safetensors file's."""
    blobs = (rewritten(checkpoints["small_vanilla"], lambda meta, n=n: meta["train"].update(
        pad="x" * n)) for n in range(8 * 32))
    data = next(blob for blob in blobs if blob[0] == 0x80)
    at = upload_checkpoint(app(), "lucky.safetensors", data)
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert "small_vanilla" in " ".join(m.value for m in at.sidebar.markdown)
    (tmp_path / "lucky.safetensors").write_bytes(data)
    table_matches(at.table[0].value, direct_probe(tmp_path / "lucky.safetensors",
                                                  [DEFAULT_SAMPLE]))


@pytest.mark.parametrize("kind", ["200 million classes", "30 million blocks"])
def test_a_hostile_upload_in_one_session_leaves_another_unaffected(kind, checkpoints):
    """Two sessions of one served app at once: one uploads a checkpoint that would ask for
    100 GB (or build for hours), the other loads a model (not cached yet: it is built while the
    first session's is checked on the meta device) and probes an image; the first gets its one
    message, the second what a direct gsoplib.probe gives."""
    from concurrent.futures import ThreadPoolExecutor

    path = checkpoints["small_gsop2"]
    sample = FASHION.files[5].name
    edit, expected = HOSTILE[kind]
    data = rewritten(checkpoints["small_vanilla"], edit)

    def probing():
        at = open_path(path)
        at.multiselect(key="gallery_fashion_mnist").set_value([sample]).run()
        assert not at.exception and not at.error
        return at.table[0].value, at.code[0].value

    def uploading():
        at = upload_checkpoint(app(), "hostile.safetensors", data)
        return [e.value for e in at.error], list(at.exception)

    with one_runtime_for_all_sessions(), ThreadPoolExecutor(max_workers=2) as pool:
        ours, theirs = pool.submit(probing), pool.submit(uploading)
        (table, summary), (errors, exceptions) = ours.result(), theirs.result()
    assert not exceptions, exceptions
    assert len(errors) == 1 and expected in errors[0], errors
    direct = direct_probe(path, [sample])
    table_matches(table, direct)
    assert summary == direct.summary()


# ---------------------------------------------------------------- interactive views


def photo_bytes(size=(320, 240)) -> bytes:
    """A light photo with a dark shape, as a phone would send it (JPEG)."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", size, (235, 232, 228))
    ImageDraw.Draw(image).rectangle((100, 40, 220, 200), fill=(40, 50, 70))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def upload_photo(at: AppTest, data: bytes, name: str = "photo.jpg") -> AppTest:
    """Upload one photo and inspect it (the gallery's default sample is image 0)."""
    at.file_uploader(key="upload_images").set_value([(name, data, "image/jpeg")]).run()
    at.selectbox(key="image").set_value(1).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    return at


def test_an_upload_unlike_the_training_data_gets_one_sentence_and_a_sample_none():
    at = app()
    at.selectbox(key="a_bundled").set_value("fmnist_small_gsop1").run()
    assert not at.exception and not at.warning        # the gallery's default sample
    at = upload_photo(at, photo_bytes(size=(640, 480)))
    [warning] = at.warning
    assert warning.value.startswith("This image is unlike Fashion-MNIST's images (a colour")
    assert "light background" in warning.value and "Invert brightness" in warning.value
    at.checkbox(key="invert").check().run()
    # inverted, the photo's background is dark and the sample's light: each says so
    sample, photo = (w.value for w in at.warning)
    assert "light background" not in photo and "640x480 pixels shrunk" in photo
    assert sample.startswith("This image is unlike Fashion-MNIST's images (a light background")


def cells_box(cells) -> tuple[float, float, float, float]:
    return (cells["x"].min(), cells["y"].min(), cells["x2"].max(), cells["y2"].max())


def test_position_maps_lie_over_the_original_photo_s_crop(checkpoints):
    from gsoplib.images import crop_box

    at = show(upload_photo(open_path(checkpoints["small_gsop_pos"]), photo_bytes()), "Blocks")
    insp = direct_probe_bytes(checkpoints["small_gsop_pos"], [photo_bytes()])
    for record in insp.of_kind("gsop_position"):
        name = f"{record.path}: position weights"
        cells = chart_data(at, name, "x", "x2", "value")
        full = record["tap_pos_weights"][0].squeeze().double().numpy()
        np.testing.assert_allclose(cells["value"], full[cells["row"], cells["col"]], rtol=1e-5,
                                   atol=1e-6)
        # the photo's preview is 320x240: the 28x28 input is its centre 240x240
        np.testing.assert_allclose(cells_box(cells), crop_box((320, 240), (28, 28)))
        [picture] = [d for d in charts_shown(at)[name][1].values() if "url" in d.columns]
        assert picture["url"][0].startswith("data:image/jpeg;base64,")
        assert (picture["x2"][0], picture["y2"][0]) == (320, 240)
        spec = charts_shown(at)[name][0]
        assert '"name": "opacity"' in json.dumps(spec)


def test_a_channel_selection_shows_its_maps_and_survives_switching_views(checkpoints):
    from gsoplib.explorer.views import selection_key

    at = open_path(checkpoints["small_gsop2"])
    at.multiselect(key="gallery_fashion_mnist").set_value(
        [DEFAULT_SAMPLE, FASHION.files[4].name]).run()
    at = show(at, "Blocks")
    insp = direct_probe(checkpoints["small_gsop2"], [DEFAULT_SAMPLE, FASHION.files[4].name])
    path = insp.of_kind("gsop_channel")[0].path
    maps = chart_data(at, f"{path}: feature maps", "channel", "value")
    # before any selection: the 4 most boosted and 4 most suppressed channels
    weights = insp[path]["tap_channel_weights"][0].flatten()
    order = torch.argsort(-weights, stable=True).tolist()
    assert list(dict.fromkeys(maps["channel"])) == order[:4] + order[::-1][:4]
    # what the chart's selection callback keeps when channels 3 and 7 are clicked
    at.session_state[selection_key("", path)] = [3, 7]
    at.run()
    maps = chart_data(at, f"{path}: feature maps", "channel", "row", "col", "value")
    assert list(dict.fromkeys(maps["channel"])) == [3, 7]
    # the views probe the inspected image alone (a batch of one computes slightly differently)
    single = direct_probe(checkpoints["small_gsop2"], [DEFAULT_SAMPLE])
    tap = single[path]["tap_input"][0, 3].double().numpy()
    part = maps[maps.channel == 3]
    np.testing.assert_allclose(part["value"], tap[part["row"], part["col"]], rtol=1e-6)
    over = chart_data(at, f"{path}: channels over the batch", "image", "channel", "weight")
    np.testing.assert_allclose(over[over.channel == 7]["weight"],
                               insp[path]["tap_channel_weights"][:, 7].flatten().double(),
                               rtol=1e-6)
    at = show(show(at, "Head"), "Blocks")
    maps = chart_data(at, f"{path}: feature maps", "channel")
    assert list(dict.fromkeys(maps["channel"])) == [3, 7]
    spec = json.dumps(charts_shown(at)[f"{path}: channel weights"][0])
    assert '"value": [{"channel": 3}, {"channel": 7}]' in spec


def test_the_batch_view_is_an_images_by_channels_heatmap_of_the_probe(checkpoints):
    at = show(open_path(checkpoints["small_gsop2"]), "Batch")
    insp = direct_probe(checkpoints["small_gsop2"], [f.name for f in FASHION.files])
    [first] = [r.path for r in insp.of_kind("gsop_channel")][:1]
    assert at.selectbox(key="batch_block").value == first
    at.radio(key="batch_over").set_value("gallery").run()
    cells = chart_data(at, f"{first}: channel weights of the images", "image", "channel",
                       "weight", "row")
    w = insp[first]["tap_channel_weights"].flatten(1).double().numpy()
    assert cells["image"].nunique() == len(FASHION.files)
    np.testing.assert_allclose(cells["weight"], w[cells["image"], cells["channel"]], rtol=1e-6)
    assert sorted(cells.groupby("image")["row"].first()) == list(range(len(FASHION.files)))
    assert set(cells["name"]) == {f.name for f in FASHION.files}


@pytest.fixture(scope="module")
def imagenet_checkpoint(tmp_path_factory) -> Path:
    from imagenet_checkpoint import save_imagenet_checkpoint

    return save_imagenet_checkpoint(tmp_path_factory.mktemp("imagenet"))


@pytest.mark.slow
def test_another_dataset_s_samples_are_not_given_as_this_model_s_true_class(
        imagenet_checkpoint):
    """No ImageNet samples are bundled: the Fashion-MNIST gallery stands in, says so, and
    its garment names are not shown as the true class of an ImageNet model's input."""
    at = open_path(imagenet_checkpoint, app(IMAGENET_TIMEOUT))
    [samples] = [m for m in at.multiselect if m.key.startswith("gallery_")]
    assert "no samples of imagenet are bundled, upload your own" in samples.label
    assert samples.value, "a sample is still chosen, so the views have an image"
    assert not [m.value for m in at.markdown if m.value.startswith("True class")]
    at = open_path(pretrained_path("fmnist_small_gsop2"), at)
    assert [m.value for m in at.markdown if m.value.startswith("True class")]


def test_an_imagenet_size_checkpoint_opens_like_a_bundled_one(imagenet_checkpoint):
    """A ResNet-50 GSoP-Net1 at 224 (1000 ImageNet classes, resize 256 then crop 224): the
    upload is resized and cropped as the metadata says, top-5 with ImageNet names, the blocks'
    charts and the attributions over the original photo."""
    from imagenet_checkpoint import imagenet_classes

    from gsoplib.images import crop_box

    ckpt = load_checkpoint(imagenet_checkpoint)
    data = photo_bytes((320, 240))
    at = upload_photo(open_path(imagenet_checkpoint, app(IMAGENET_TIMEOUT)), data)
    card = " ".join(m.value for m in at.sidebar.markdown)
    assert "resnet50_gsop1" in card and "224x224" in card and "1000 classes" in card
    captions = [c for image in at.image for c in image.captions]
    assert "model input 224x224, 3 channel(s)" in captions
    picture = to_model_image(decode_image(data).image, 3, (224, 224), resize=256)
    direct = probe(ckpt.model, to_tensor(picture, ckpt.mean, ckpt.std)[None],
                   class_names=ckpt.classes)
    table = at.table[0].value
    assert len(table["class"]) == 5 and set(table["class"]) <= set(imagenet_classes())
    table_matches(table, direct)

    at = show(at, "Blocks")
    for record in direct.of_kind("gsop_channel"):
        block_charts_match(at, direct, record)
        maps = chart_data(at, f"{record.path}: feature maps", "row", "col")
        assert maps["row"].max() < 28 and maps["col"].max() < 28  # pooled for the browser

    at = show(at, "Attributions")
    [name] = [n for n in charts_shown(at) if n.startswith("attributions")]
    assert name.startswith(f"attributions for {direct.top[0][0].name}")
    frames = [d for d in charts_shown(at)[name][1].values() if "value" in d.columns]
    box = crop_box((320, 240), (224, 224), resize=256)
    for cells in frames:
        np.testing.assert_allclose(cells_box(cells), box, atol=1e-6)
