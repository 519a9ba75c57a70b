"""The interactive charts (gsoplib.viz.charts) draw the probe's numbers: each chart's data,
read back from its Vega-Lite spec, equals what the Inspection holds; every spec is valid
Vega-Lite (the schema Streamlit's Altair ships) and is what a notebook shows."""

from __future__ import annotations

import json
from pathlib import Path

import altair
import jsonschema
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from gsoplib.class_usage import class_component_usage
from gsoplib.images import crop_box
from gsoplib.pretrained import load_pretrained
from gsoplib.probe import probe
from gsoplib.viz import charts
from gsoplib.viz.charts.tables import (
    feature_maps_table,
    matrix_table,
    similarity_order,
    with_exact_root,
)


def spec_of(chart) -> dict:
    """The chart as a notebook receives it: plain JSON."""
    return json.loads(json.dumps(chart.to_dict(), allow_nan=False))


def datasets(chart) -> list[pd.DataFrame]:
    """The chart's data as a notebook receives it; float32 columns back to float32 (the JSON
    holds their shortest decimals)."""
    frames = []
    for name, rows in spec_of(chart)["datasets"].items():
        frame = pd.DataFrame(rows)
        for column, kind in chart.data(name).dtypes.items():
            if kind == np.float32:
                frame[column] = frame[column].astype(np.float32)
        frames.append(frame)
    return frames


def dataset_with(chart, *columns: str) -> pd.DataFrame:
    [frame] = [d for d in datasets(chart) if set(columns) <= set(d.columns)]
    return frame


def params(spec: dict) -> dict:
    """Name -> param of every parameter anywhere in a spec."""
    found = {}

    def walk(node):
        if isinstance(node, dict):
            for p in node.get("params", []):
                found[p["name"]] = p
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(spec)
    return found


def tooltips(spec: dict) -> list[str]:
    found = []

    def walk(node):
        if isinstance(node, dict):
            tip = node.get("encoding", {}).get("tooltip", [])
            found.extend(t.get("title", t["field"]) for t in tip if isinstance(t, dict))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(spec)
    return found


@pytest.fixture(scope="module")
def inspections() -> dict:
    torch.manual_seed(0)
    x = torch.randn(6, 1, 28, 28)
    out = {}
    for name in ("fmnist_small_gsop2", "fmnist_small_gsop_pos", "fmnist_small_gmsop"):
        ckpt = load_pretrained(name)
        out[name] = probe(ckpt.model, x, class_names=ckpt.classes)
    return out


def test_covariance_cells_hold_both_indices_and_the_probe_s_value(inspections):
    insp = inspections["fmnist_small_gsop2"]
    path = insp.of_kind("gsop_channel")[0].path
    chart = charts.covariance_chart(insp, path, image=2)
    shown = dict(zip(spec_of(chart)["datasets"], datasets(chart)))
    for tap, name in (("tap_cov", "covariance (before)"), ("tap_cov_bn", "after row-wise BN")):
        m = insp[path][tap][2].double().numpy()
        part = shown[name]
        assert len(part) == m.size
        np.testing.assert_array_equal(part["value"], m[part["row"], part["col"]])
    spec = spec_of(chart)
    assert {"row channel", "column channel", "entry"} <= set(tooltips(spec))
    assert charts.MATRIX in params(spec)
    # the linked spectrum: eigenvalues of the symmetric matrix only (row-BN's is not)
    spectrum = dataset_with(chart, "eigenvalue", "ratio")
    assert set(spectrum.matrix) == {"covariance (before)"}
    expected = np.linalg.eigvalsh(insp[path]["tap_cov"][2].double().numpy())[::-1]
    np.testing.assert_allclose(spectrum["eigenvalue"], expected, rtol=1e-9, atol=1e-12)


def test_a_covariance_wider_than_the_limit_is_sent_as_block_means():
    m = np.arange(256 * 256, dtype=float).reshape(256, 256)
    table = matrix_table(m)
    assert len(table) == 128 * 128
    first = table.iloc[0]
    assert first["rows"] == "0-1" and first["cols"] == "0-1"
    assert first["value"] == m[:2, :2].mean()
    last = table.iloc[-1]
    assert last["rows"] == "254-255" and last["value"] == m[254:, 254:].mean()


def test_position_covariance_names_positions(inspections):
    insp = inspections["fmnist_small_gsop_pos"]
    path = insp.of_kind("gsop_position")[0].path
    spec = spec_of(charts.covariance_chart(insp, path))
    assert "row position" in tooltips(spec)


def test_each_matrix_is_its_own_dataset_named_in_the_browser(inspections):
    """A cell carries (row, col, value) only; its panel adds the matrix's name, which the
    tooltip and the MATRIX selection read."""
    insp = inspections["fmnist_small_gsop2"]
    path = insp.of_kind("isqrt_cov")[0].path
    chart = charts.covariance_chart(insp, path, max_side=16)
    names = ["covariance (before)", "Newton-Schulz output"]
    assert list(chart.datasets) == [*names, "spectrum"]
    for name, panel in zip(names, chart.spec["hconcat"]):
        assert list(chart.data(name).columns) == ["row", "col", "value", "rows", "cols"]
        assert len(chart.data(name)) == 16 * 16  # 64 x 64 as 4 x 4 block means
        assert panel["data"] == {"name": name}
        assert json.loads(panel["transform"][0]["calculate"]) == name


def test_newton_schulz_output_is_drawn_beside_the_exact_root_of_its_covariance(inspections):
    """Three iterations are not a square root: the spectrum draws the exact root (eigh) as its
    own line, whose eigenvalue ratios are the square roots of the covariance's, and the
    Newton-Schulz panel's title says how far the output is from it."""
    insp = inspections["fmnist_small_gsop2"]
    path = insp.of_kind("isqrt_cov")[0].path
    chart = charts.covariance_chart(insp, path)
    spectrum = chart.data("spectrum")
    lines = {name: part.sort_values("index")["ratio"].to_numpy()
             for name, part in spectrum.groupby("matrix", observed=True)}
    assert set(lines) == {"covariance (before)", "Newton-Schulz output", "exact root (eigh)"}
    cov = insp[path]["tap_cov"][0].double().numpy()
    evals = np.linalg.eigvalsh(cov)[::-1]
    top = evals > 1e-6 * evals[0]
    np.testing.assert_allclose(lines["exact root (eigh)"][top], np.sqrt(evals[top] / evals[0]),
                               rtol=1e-6)
    # the output's spectrum lies between the covariance's and the exact root's, well off the
    # latter at the small eigenvalues
    tail = top.nonzero()[0][-1]
    assert lines["covariance (before)"][tail] < lines["Newton-Schulz output"][tail]
    assert lines["Newton-Schulz output"][tail] < 0.5 * lines["exact root (eigh)"][tail]
    title = chart.spec["hconcat"][1]["title"]
    assert title[0] == "Newton-Schulz output" and "from the exact root" in title[2]
    percent = float(title[2].split("%")[0])
    a = insp[path]["tap_cov_sqrt"][0].double().numpy()
    exact = with_exact_root([("covariance (before)", cov),
                                           ("Newton-Schulz output", a)])[-1][1]
    want = np.linalg.norm(a / np.linalg.norm(a) - exact / np.linalg.norm(exact))
    assert percent == pytest.approx(100 * want, abs=0.5) and percent > 1


def test_every_tooltip_names_its_quantity(inspections):
    """No tooltip row is a bare "value": each says what the number is (an entry of the named
    matrix, an activation, a weight, a probability, an attribution's unit)."""
    for name, chart in every_chart(inspections).items():
        names = tooltips(spec_of(chart))
        assert names and "value" not in names, (name, names)


def test_channel_weights_are_the_probe_s_sorted_with_a_channel_selection(inspections):
    insp = inspections["fmnist_small_gsop2"]
    path = insp.of_kind("gsop_channel")[-1].path
    chart = charts.channel_weights_chart(insp, path, image=1, selected=[3, 5])
    data = dataset_with(chart, "channel", "weight", "rank")
    weights = insp[path]["tap_channel_weights"][1].flatten().double().numpy()
    np.testing.assert_array_equal(data.sort_values("channel")["weight"], weights)
    by_rank = data.sort_values("rank")["weight"].to_numpy()
    assert (np.diff(by_rank) <= 0).all() and by_rank[0] == weights.max()
    selection = params(spec_of(chart))[charts.CHANNELS]
    assert selection["select"]["fields"] == ["channel"]
    assert selection["value"] == [{"channel": 3}, {"channel": 5}]


def test_feature_maps_and_the_channels_over_the_batch(inspections):
    insp = inspections["fmnist_small_gsop2"]
    path = insp.of_kind("gsop_channel")[0].path
    maps = dataset_with(charts.feature_maps_chart(insp, path, [4, 0], image=3), "value", "row")
    tap = insp[path]["tap_input"][3].double().numpy()
    assert list(dict.fromkeys(maps["channel"])) == [4, 0]
    for ch in (4, 0):
        part = maps[maps.channel == ch]
        assert len(part) == tap[ch].size  # 28 cells a side or fewer: not pooled
        np.testing.assert_array_equal(part["value"], tap[ch][part["row"], part["col"]])
    over = dataset_with(charts.channel_batch_chart(insp, path, [4]), "image", "weight")
    np.testing.assert_array_equal(over["weight"],
                                  insp[path]["tap_channel_weights"][:, 4].flatten().double())


def test_feature_maps_wider_than_the_limit_are_block_means(inspections):
    insp = inspections["fmnist_small_gsop2"]
    path = insp.of_kind("gsop_channel")[0].path
    tap = insp[path]["tap_input"][1].double()
    side = tap.shape[-1]
    maps = feature_maps_table(insp, path, [2, 5], image=1, max_side=side // 2)
    pooled = torch.nn.functional.avg_pool2d(tap[None], 2, ceil_mode=True)[0].numpy()
    assert len(maps) == 2 * pooled[0].size
    for ch in (2, 5):
        part = maps[maps.channel == ch]
        np.testing.assert_allclose(part["value"], pooled[ch][part["row"], part["col"]],
                                   rtol=1e-6)
    with pytest.raises(IndexError, match="channel 999 is out of range"):
        feature_maps_table(insp, path, [999])


def test_the_batch_heatmap_holds_every_weight_in_an_order_of_similarity(inspections):
    insp = inspections["fmnist_small_gsop2"]
    path = insp.of_kind("gsop_channel")[0].path
    names = [f"img{i}" for i in range(6)]
    chart = charts.batch_heatmap_chart(insp, path, names, selected=2)
    data = dataset_with(chart, "image", "channel", "weight", "row")
    w = insp[path]["tap_channel_weights"].flatten(1).double().numpy()
    np.testing.assert_array_equal(data["weight"], w[data["image"], data["channel"]])
    assert sorted(data.groupby("image")["row"].first()) == list(range(6))
    assert set(data["name"]) == set(names)
    assert params(spec_of(chart))[charts.IMAGE_ROW]["value"] == [{"image": 2}]
    # each row is labelled with its image's name, in the row order
    by_row = data.groupby("row")["name"].first()
    assert params(spec_of(chart))["rowNames"]["value"] == list(by_row)
    assert spec_of(chart)["encoding"]["y"]["axis"]["labelExpr"] == "rowNames[datum.value]"
    # the selected channels over the batch: the x axis names the images
    over = charts.channel_batch_chart(insp, path, [1], names)
    assert spec_of(over)["encoding"]["x"]["field"] == "name"


def test_similarity_order_puts_alike_rows_together():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 16), rng.normal(0, 1, 16)
    rows = np.stack([a, b, a, b, a, b]) + rng.normal(0, 0.01, (6, 16))
    order = similarity_order(rows)
    groups = [i % 2 for i in order]
    assert groups in ([0, 0, 0, 1, 1, 1], [1, 1, 1, 0, 0, 0])


def test_position_weights_lie_over_the_photo_s_crop(inspections):
    insp = inspections["fmnist_small_gsop_pos"]
    path = insp.of_kind("gsop_position")[0].path
    photo = Image.new("RGB", (320, 240), (200, 190, 180))
    box = crop_box(photo.size, (28, 28))
    chart = charts.position_weights_chart(insp, path, image=4, photo=photo, box=box)
    cells = dataset_with(chart, "x", "x2", "value")
    full = insp[path]["tap_pos_weights"][4].squeeze().double().numpy()
    assert len(cells) == full.size
    np.testing.assert_array_equal(cells["value"], full[cells["row"], cells["col"]])
    # the cells tile the crop box, which is the centre 240x240 of the photo
    assert (cells["x"].min(), cells["x2"].max()) == pytest.approx((40, 280))
    assert (cells["y"].min(), cells["y2"].max()) == pytest.approx((0, 240))
    assert charts.OPACITY in params(spec_of(chart))
    assert any(d.get("url", [""])[0].startswith("data:image/jpeg;base64,")
               for d in (f.to_dict("list") for f in datasets(chart)))


def test_gate_chart_and_usage_are_the_gate_s_numbers(inspections):
    insp = inspections["fmnist_small_gmsop"]
    chart = charts.gate_chart(insp, "head", image=5)
    data = dataset_with(chart, "component", "logit", "weight", "chosen")
    t = insp["head"].tensors
    logits = t.get("tap_gate_noisy_logits", t["tap_gate_clean_logits"])[5].double().numpy()
    np.testing.assert_array_equal(data["logit"], logits)
    np.testing.assert_array_equal(data["weight"], t["tap_gate_weights"][5].double().numpy())
    assert set(data.loc[data.chosen, "component"]) == set(t["tap_gate_indices"][5].tolist())
    usage = dataset_with(charts.gate_usage_chart(insp, "head"), "image", "component", "weight")
    np.testing.assert_array_equal(usage["weight"], t["tap_gate_weights"].double().numpy().ravel())
    labels = ["a", "b", "a", "b", "a", "c"]
    per_class = dataset_with(charts.class_usage_chart(insp, "head", labels), "mean_weight")
    names, expected, counts = class_component_usage(insp, "head", labels)
    np.testing.assert_array_equal(per_class["mean_weight"], expected.ravel())
    assert list(dict.fromkeys(per_class["class"])) == names


def test_attributions_over_the_photo_are_pooled_means_of_the_maps_with_units():
    """A non-negative map (Grad-CAM) is drawn divided by its largest value, which its title
    gives; a signed one as it is; each colour bar and tooltip names the quantity."""
    heat = torch.arange(96 * 96, dtype=torch.float64).reshape(96, 96)
    signed = heat - heat.mean()
    photo = Image.new("RGB", (96, 96))
    units = {"Grad-CAM": "Grad-CAM / its largest value", "Occlusion": "drop in the class logit"}
    chart = charts.attribution_chart({"Grad-CAM": heat, "Occlusion": signed}, photo,
                                     units=units)
    frames = [d for d in datasets(chart) if "value" in d]
    assert len(frames) == 2
    pooled = torch.nn.functional.avg_pool2d(heat[None, None], 2)[0, 0].numpy()
    first, second = frames
    assert len(first) == 48 * 48
    np.testing.assert_allclose(first["value"], pooled[first["row"], first["col"]] / pooled.max(),
                               rtol=1e-6)
    signed_pooled = torch.nn.functional.avg_pool2d(signed[None, None], 2)[0, 0].numpy()
    np.testing.assert_allclose(second["value"], signed_pooled[second["row"], second["col"]],
                               rtol=1e-5, atol=1e-3)
    for panel, name in zip(chart.spec["hconcat"], units):
        heat_layer = panel["layer"][1]
        color = heat_layer["encoding"]["color"]
        assert color["legend"]["title"] == units[name] and color["legend"]["gradientOpacity"] == 1
        assert json.loads(heat_layer["transform"][0]["calculate"]) == name
        assert units[name] in tooltips({"layer": [heat_layer]})
    largest = ["Grad-CAM", "divided by its largest", f"value, {pooled.max():.3g}"]
    assert chart.spec["hconcat"][0]["title"] == largest


SCHEMA = Path(altair.__file__).parent / "vegalite" / "v6" / "schema" / "vega-lite-schema.json"


@pytest.fixture(scope="module")
def validator():
    return jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))


def every_chart(inspections) -> dict:
    ch = inspections["fmnist_small_gsop2"]
    path = ch.of_kind("gsop_channel")[0].path
    pos = inspections["fmnist_small_gsop_pos"]
    gm = inspections["fmnist_small_gmsop"]
    photo = Image.new("RGB", (320, 240))
    return {
        "prediction": charts.prediction_chart(ch),
        "covariance": charts.covariance_chart(ch, path),
        "position covariance": charts.covariance_chart(pos, pos.of_kind("gsop_position")[0].path),
        "weights": charts.channel_weights_chart(ch, path, selected=[1]),
        "maps": charts.feature_maps_chart(ch, path, [3, 1]),
        "batch": charts.channel_batch_chart(ch, path, [1, 2]),
        "heatmap": charts.batch_heatmap_chart(ch, path, selected=0),
        "position": charts.position_weights_chart(pos, pos.of_kind("gsop_position")[0].path,
                                                  photo=photo, box=(40, 0, 280, 240)),
        "gate": charts.gate_chart(gm, "head"),
        "usage": charts.gate_usage_chart(gm, "head"),
        "classes": charts.class_usage_chart(gm, "head", list("abcabc")),
        "attributions": charts.attribution_chart(
            {"A": torch.rand(28, 28), "B": torch.randn(28, 28)}, photo),
    }


def test_every_chart_is_valid_vega_lite_with_its_data_where_it_refers(inspections, validator):
    for name, chart in every_chart(inspections).items():
        spec = spec_of(chart)
        errors = [e.message[:160] for e in validator.iter_errors(spec)]
        assert not errors, f"{name}: {errors}"
        assert data_names(chart.spec) == set(chart.datasets), name


def data_names(node) -> set[str]:
    """Every dataset name a spec's views refer to."""
    if isinstance(node, list):
        return set().union(*map(data_names, node)) if node else set()
    if not isinstance(node, dict):
        return set()
    found = set().union(*map(data_names, node.values())) if node else set()
    data = node.get("data")
    return found | ({data["name"]} if isinstance(data, dict) and "name" in data else set())


def test_the_schema_check_rejects_what_vega_lite_would(inspections, validator):
    ch = inspections["fmnist_small_gsop2"]
    spec = spec_of(charts.channel_weights_chart(ch, ch.of_kind("gsop_channel")[0].path))
    spec["encoding"]["x"]["scal"] = {"domain": [0, 1]}
    assert list(validator.iter_errors(spec))


def test_what_the_explorer_sends_is_the_spec_with_its_frames(inspections):
    """chart.vega_lite() (st.vega_lite_chart's input) holds the DataFrames themselves; a
    notebook's JSON holds the same rows, NaN as null."""
    gm = inspections["fmnist_small_gmsop"]
    for chart in every_chart(inspections).values():
        sent = charts.vega_lite(chart)
        frames = sent.pop("datasets")
        assert all(isinstance(f, pd.DataFrame) for f in frames.values())
        assert sent == chart.spec
        as_json = spec_of(chart)["datasets"]
        assert {k: len(v) for k, v in as_json.items()} == {k: len(f) for k, f in frames.items()}
    gate = charts.gate_chart(gm, "head")
    gate.datasets["gate"].loc[0, "logit"] = float("nan")
    assert spec_of(gate)["datasets"]["gate"][0]["logit"] is None


def test_a_notebook_renders_a_chart_as_vega_lite(inspections):
    """JupyterLab renders application/vnd.vegalite.v5+json itself: no script from anywhere."""
    ch = inspections["fmnist_small_gsop2"]
    chart = charts.covariance_chart(ch, ch.of_kind("gsop_channel")[0].path)
    bundle = chart._repr_mimebundle_()
    assert set(bundle) == {"application/vnd.vegalite.v5+json", "text/plain"}
    assert bundle["application/vnd.vegalite.v5+json"]["hconcat"]
    assert bundle["text/plain"] == f"<Chart '{chart.title}': 3 datasets, {2 * 32 * 32 + 32} rows>"
    with pytest.raises(KeyError, match="has no dataset .nope.; it has covariance .before., after"):
        chart.data("nope")
