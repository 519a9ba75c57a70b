"""Views of one image: prediction, every second-order part in network order, attributions, the
batch, downloads.

Every view is an interactive Vega-Lite chart from gsoplib.viz.charts, drawn in the browser
from the probe's numbers; the matplotlib figures are downloads, rendered only when asked.
Inspections and attributions are cached per model and image (``LoadedModel.key``,
``ModelInput.key``) and shared by every session. A user's selections (channels, the batch's
row) are kept per part in the session, so they survive switching views.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st
import torch
from gsoplib.explorer import pipeline
from gsoplib.explorer.image_panel import ModelInput, gallery_for, gallery_inputs
from gsoplib.explorer.model_panel import LoadedModel

from gsoplib.probe import BlockRecord, Inspection
from gsoplib.viz import charts

VIEWS = ("Prediction", "Blocks", "Head", "Batch", "Attributions", "Downloads")
KIND_TITLES = {
    "gsop_channel": "GSoP channel-wise block, GSoP-Net Sec. 3.1",
    "gsop_position": "GSoP position-wise block, GSoP-Net Sec. 3.2",
    "se": "squeeze-and-excitation block",
    "cbam": "CBAM block",
    "isqrt_cov": "iSQRT-COV head: covariance, Newton-Schulz square root",
    "gated_mixture": "GM-SOP gated mixture head",
    "average_mixture": "average mixture head",
    "custom": "custom part",
}
USAGE_OVER = ("gallery", "chosen")
BATCH_OVER = ("chosen", "gallery")


@dataclass(frozen=True)
class Options:
    """Sidebar switches: which view to show and whether to run the slow attribution."""

    view: str
    integrated_gradients: bool


def options() -> Options:
    st.header("View")
    view = st.radio("Show", VIEWS, key="view")
    slow = st.toggle(
        "Integrated Gradients (slow)",
        key="integrated_gradients",
        help="Tens of forward and backward passes per image; off keeps every view under a second.",
    )
    return Options(view, slow)


# ------------------------------------------------------------------- cached, shared by sessions


@st.cache_resource(max_entries=256, show_spinner=False)
def _inspect(model_key: str, image_keys: tuple[str, ...], _loaded: LoadedModel,
             _tensors: tuple[torch.Tensor, ...]) -> Inspection:
    return pipeline.inspect(_loaded.checkpoint, _loaded.lock, torch.stack(_tensors))


def inspect(loaded: LoadedModel, items: list[ModelInput]) -> Inspection:
    """The probe of ``items`` (one batch) through ``loaded``, computed once per model and images."""
    return _inspect(loaded.key, tuple(i.key for i in items), loaded,
                    tuple(i.tensor for i in items))


@st.cache_resource(max_entries=256, show_spinner=False)
def _attributions(model_key: str, image_key: str, target: int, layer: str | None,
                  methods: tuple[str, ...], _loaded: LoadedModel, _image: torch.Tensor
                  ) -> dict[str, torch.Tensor]:
    return pipeline.attributions(_loaded.checkpoint, _loaded.lock, _image, target, layer=layer,
                                 methods=methods)


# ------------------------------------------------------------------- layout


def choose_image(inputs: list[ModelInput], key: str = "image") -> ModelInput:
    """The image the views show: the only one, or the one picked from several."""
    if len(inputs) == 1:
        return inputs[0]
    if st.session_state.get(key, 0) >= len(inputs):
        st.session_state[key] = 0
    index = st.selectbox("Image to inspect", range(len(inputs)), key=key,
                         format_func=lambda i: f"{i + 1}. {inputs[i].name}")
    return inputs[index]


def render(loaded: LoadedModel, inputs: list[ModelInput], opts: Options) -> None:
    """The chosen view of one of ``inputs`` through ``loaded``."""
    item = choose_image(inputs)
    with st.container(key=f"view-{opts.view.lower()}"):
        show(loaded, item, inputs, opts)


def show(loaded: LoadedModel, item: ModelInput, batch: list[ModelInput], opts: Options,
         prefix: str = "") -> None:
    """View ``opts.view`` of ``item``; ``batch`` is every chosen image (the mixture's usage,
    the batch view). ``prefix`` keeps widget keys apart when two models are shown side by
    side."""
    insp = inspect(loaded, [item])
    if opts.view == "Prediction":
        _prediction(loaded, item, insp, prefix)
    elif opts.view == "Blocks":
        _parts(loaded, item, insp, pipeline.blocks(insp), batch, prefix, "blocks")
    elif opts.view == "Head":
        _parts(loaded, item, insp, pipeline.heads(insp), batch, prefix, "head")
        for record in pipeline.heads(insp):
            if record.kind == "gated_mixture":
                _usage(loaded, record, batch, prefix)
    elif opts.view == "Batch":
        _batch(loaded, insp, batch, prefix)
    elif opts.view == "Attributions":
        _attribution(loaded, item, insp, opts, prefix)
    else:
        _downloads(loaded, item, insp, prefix)


def chart(figure, name: str, prefix: str = "", **select) -> dict | None:
    """One interactive chart, ``name`` its accessible description (what tests and screen
    readers find it by); ``select`` (on_select, selection_mode) makes it return the user's
    selection."""
    key = f"{prefix}chart-{name}"
    # The Vega-Lite dict with its data as DataFrames (Streamlit sends them as Arrow).
    spec = figure.vega_lite()
    # The container's key is the page's CSS class st-key-<key>: what a browser test finds.
    with st.container(key=f"{prefix}chart-{pipeline.file_stem(name)}"):
        if select:
            event = st.vega_lite_chart(spec=spec, key=key, width="content", alt=name, **select)
        else:
            event = st.vega_lite_chart(spec=spec, key=key, width="content", alt=name)
    if reading := pipeline.how_to_read(name):
        st.caption(reading)
    return event if select else None


def _png_download(label: str, render, name: str, key: str) -> None:
    """A download of PNG bytes that ``render()`` makes only when the button is clicked."""
    st.download_button(label, render, file_name=f"{pipeline.file_stem(name)}.png",
                       mime="image/png", key=key, on_click="ignore", icon=":material/download:")


def _prediction(loaded: LoadedModel, item: ModelInput, insp: Inspection, prefix: str) -> None:
    if item.label is not None:
        st.markdown(f"True class: **{item.label}**")
    st.table(pipeline.top_table(insp))
    chart(charts.prediction_chart(insp, name=item.name), "prediction", prefix)
    _png_download("Prediction (PNG)", lambda: pipeline.prediction_png(insp), "prediction",
                  f"{prefix}png-prediction")
    st.markdown("What each second-order part computed, in network order:")
    st.code(insp.summary(), language=None, wrap_lines=True)


def _parts(loaded: LoadedModel, item: ModelInput, insp: Inspection, records: list[BlockRecord],
           batch: list[ModelInput], prefix: str, where: str) -> None:
    if not records:
        other = pipeline.heads(insp) if where == "blocks" else pipeline.blocks(insp)
        what = ("no second-order blocks inside the network" if where == "blocks"
                else "a first-order head (global average pooling), nothing second-order")
        see = f"; its second-order parts are under {'Head' if where == 'blocks' else 'Blocks'}"
        st.info(f"{loaded.label} has {what}{see if other else ''}.")
        return
    for record in records:
        st.markdown(f"#### `{record.path}`: {KIND_TITLES[record.kind]}")
        st.caption(record.summary())
        _part(loaded, item, insp, record, batch, prefix)


def selection_key(prefix: str, path: str) -> str:
    """Where a part's channel selection is kept in the session (not a widget's key: a widget's
    state is dropped on a run that does not draw it, as switching views does)."""
    return f"{prefix}channels-{path}"


def _keep_channels(chart_key: str, kept: str) -> None:
    event = st.session_state.get(chart_key)
    points = (event or {}).get("selection", {}).get(charts.CHANNELS, [])
    st.session_state[kept] = sorted({int(p["channel"]) for p in points if "channel" in p})


def _part(loaded: LoadedModel, item: ModelInput, insp: Inspection, record: BlockRecord,
          batch: list[ModelInput], prefix: str) -> None:
    path, t = record.path, record.tensors
    kept = selection_key(prefix, path)
    chosen = st.session_state.get(kept) or None
    made = pipeline.block_charts(insp, path, photo=item.preview, box=item.box, channels=chosen,
                                 name=item.name)
    for name, figure in made.items():
        if name.endswith(": channel weights"):
            key = f"{prefix}chart-{name}"
            chart(figure, name, prefix, on_select=lambda k=key: _keep_channels(k, kept),
                  selection_mode=charts.CHANNELS)
            st.caption("Click a bar to see its channel's feature map (shift-click for more); "
                       "until you do, the maps below are the channels of the largest and the "
                       "smallest weights (every weight is a sigmoid in (0, 1) that multiplies "
                       "its channel: the smallest are damped most).")
        else:
            chart(figure, name, prefix)
        if name.endswith(": feature maps"):
            shown = chosen or pipeline.default_channels(insp, path)
            st.caption(f"Feature maps of channels {', '.join(map(str, shown))} "
                       f"({'selected' if chosen else 'the largest and the smallest weights'}).")
        if name.endswith(": feature maps") and chosen and len(batch) > 1:
            chart(charts.channel_batch_chart(inspect(loaded, batch), path, chosen,
                                             [i.name for i in batch]),
                  f"{path}: channels over the batch", prefix)
    if "tap_pos_weights" in t or "tap_pos_weights_pooled" in t:
        st.caption("The map is drawn over the region of the original photo the model saw "
                   "(dashed); the slider sets its opacity.")
    _png_download(f"{record.label}: figures (ZIP of PNGs)",
                  lambda: pipeline.figures_zip(pipeline.block_pngs(insp, path)), path,
                  f"{prefix}png-{path}")


def _usage(loaded: LoadedModel, record: BlockRecord, batch: list[ModelInput], prefix: str
           ) -> None:
    st.markdown(f"#### `{record.path}`: which components each class uses")
    over = st.radio(
        "Over",
        USAGE_OVER,
        format_func={"gallery": "the whole sample gallery",
                     "chosen": f"the images chosen above ({len(batch)})"}.get,
        horizontal=True,
        key=f"{prefix}usage_over",
    )
    items = gallery_inputs(loaded.spec) if over == "gallery" else batch
    insp = inspect(loaded, items)
    classes = set(insp.class_names)
    # A gallery sample's true class when the model knows it, else what the model predicted.
    labels = tuple(i.label if i.label in classes else top[0].name
                   for i, top in zip(items, insp.top))
    st.caption("Classes are the true ones for gallery samples the model's classes include, the "
               "predicted ones otherwise.")
    _gate_health(pipeline.gate_report(insp, record.path, labels), len(items))
    names = [i.name for i in items]
    chart(charts.gate_usage_chart(insp, record.path, names),
          f"{record.path}: gate weights per image", prefix)
    chart(charts.class_usage_chart(insp, record.path, labels),
          f"{record.path}: gate weights per class", prefix)
    _png_download("Usage figures (ZIP of PNGs)",
                  lambda: pipeline.figures_zip(pipeline.usage_pngs(insp, record.path, labels)),
                  "usage", f"{prefix}png-usage")


def _gate_health(report, images: int) -> None:
    """The gate's diagnostics over the images shown: no verdict from too few, a warning when it
    is degenerate (ties, one component, a constant choice, starved experts, class-blind)."""
    if not report.judged:
        st.info(report.verdict, icon=":material/info:")
    elif report.degenerate:
        st.warning(report.verdict, icon=":material/warning:")
    else:
        st.success(report.verdict, icon=":material/check_circle:")
    cols = st.columns(5)
    cols[0].metric(f"effective components of {report.k}", f"{report.effective_components:.2f}",
                   help="Mean over the images of 1 / sum p^2, p the chosen weights (summing to "
                        f"1): {report.k} when the K chosen weigh the same, 1 when one takes all "
                        f"({report.one_hot_share:.0%} of these images put over 0.99 on one).")
    # short values: five metrics share a row, half as wide in compare mode
    cols[1].metric("least-used, % of images", f"{min(report.image_share):.0%}",
                   help=f"Share of the {images} images that chose it; even use is K/N = "
                        f"{report.k / report.num_experts:.0%}.")
    cols[2].metric("top set, % of images", f"{report.top_set_share:.0%}",
                   help=f"{report.distinct_sets} distinct sets of {report.k} experts.")
    mi = report.mutual_information
    cols[3].metric("MI(class; expert), bits", "-" if mi is None else f"{mi:.2f}",
                   help="How much the chosen experts say about the class: 0 for a class-blind "
                        "gate. Judged only from enough images (a small sample's estimate is "
                        "biased upwards)." + ("" if report.class_judged else " Not judged here."))
    cols[4].metric("largest weight", f"{report.largest_weight:.2f}",
                   help="Mean over the images of the largest chosen weight: 1/K when the gate "
                        "ties, 1 when one component takes all.")


def _batch_row_clicked(chart_key: str, rows: list[ModelInput], chosen: list[ModelInput],
                       gallery_key: str) -> None:
    """A row of the batch heatmap was clicked: inspect that image (a gallery sample not chosen
    yet is added to the chosen samples first)."""
    event = st.session_state.get(chart_key) or {}
    points = event.get("selection", {}).get(charts.IMAGE_ROW, [])
    if not points:
        return
    item = rows[int(points[0]["image"])]
    keys = [i.key for i in chosen]
    if item.key not in keys:
        st.session_state[gallery_key] = [*st.session_state.get(gallery_key, []), item.name]
        # the gallery's picks come before the uploads: the new sample is the last of them
        index = sum(1 for i in chosen if i.label is not None)
    else:
        index = keys.index(item.key)
    st.session_state["image"] = index


def _batch(loaded: LoadedModel, insp: Inspection, batch: list[ModelInput], prefix: str) -> None:
    records = [r for r in pipeline.blocks(insp) if "tap_channel_weights" in r]
    if not records:
        st.info(f"{loaded.label} has no block with channel weights to compare across images.")
        return
    left, right = st.columns(2)
    path = left.selectbox("Block", [r.path for r in records], key=f"{prefix}batch_block")
    over = right.radio("Images", BATCH_OVER, horizontal=True, key=f"{prefix}batch_over",
                       format_func={"chosen": f"the images chosen above ({len(batch)})",
                                    "gallery": "the whole sample gallery"}.get)
    rows = batch if over == "chosen" else gallery_inputs(loaded.spec)
    many = inspect(loaded, rows)
    name = f"{path}: channel weights of the images"
    key = f"{prefix}chart-{name}"
    gallery_key = f"gallery_{gallery_for(loaded.spec.dataset).dataset}"
    chart(charts.batch_heatmap_chart(many, path, [i.name for i in rows]), name, prefix,
          on_select=lambda: _batch_row_clicked(key, rows, batch, gallery_key),
          selection_mode=charts.IMAGE_ROW)
    st.caption("Rows are images, columns channels, both ordered so that similar ones sit "
               "together. Click a row to inspect that image: it becomes the image every view "
               "shows, its weights below.")
    chart(charts.channel_weights_chart(insp, path), f"{path}: the inspected image's weights",
          prefix)


def _attribution(loaded: LoadedModel, item: ModelInput, insp: Inspection, opts: Options,
                 prefix: str) -> None:
    classes = loaded.checkpoint.classes
    left, right = st.columns(2)
    # Keyed by image: each image starts from its own predicted class.
    target = left.selectbox("Explain class", range(len(classes)), index=insp.top[0][0].index,
                            format_func=classes.__getitem__, key=f"{prefix}target-{item.key}")
    layers = [None] + [r.path for r in pipeline.blocks(insp)]
    layer = right.selectbox("Grad-CAM layer", layers, key=f"{prefix}cam_layer",
                            format_func=lambda p: "last stage" if p is None else p)
    methods = pipeline.FAST_METHODS + (pipeline.SLOW_METHODS if opts.integrated_gradients else ())
    with st.spinner("Computing attributions..."):
        maps = _attributions(loaded.key, item.key, target, layer, methods, loaded, item.tensor)
    names = ", ".join(maps)
    title = f"attributions for {classes[target]} ({names})"
    st.markdown(f"#### {title}")
    chart(pipeline.attribution_chart(maps, item.tensor, item.preview, item.box), title, prefix)
    st.caption("  \n".join(pipeline.attribution_notes(maps)))
    _png_download("Attributions (PNG)", lambda: pipeline.attribution_png(item.tensor, maps),
                  title, f"{prefix}png-attr")
    if not opts.integrated_gradients:
        st.caption("Integrated Gradients is off: switch it on in the sidebar (slow).")


def _downloads(loaded: LoadedModel, item: ModelInput, insp: Inspection, prefix: str) -> None:
    stem = pipeline.file_stem(f"{loaded.label}-{item.name}")
    st.markdown("Everything the probe read for this image: predictions, and per part its "
                "kind, summary and tensors.")
    st.download_button("Inspection (JSON)", pipeline.inspection_json(insp),
                       file_name=f"{stem}.json", mime="application/json",
                       key=f"{prefix}dl-json", on_click="ignore", icon=":material/data_object:")
    st.download_button("Inspection arrays (NPZ)", pipeline.inspection_npz(insp),
                       file_name=f"{stem}.npz", mime="application/octet-stream",
                       key=f"{prefix}dl-npz", on_click="ignore", icon=":material/database:")
    checkpoint, lock, tensor = loaded.checkpoint, loaded.lock, item.tensor
    # Rendered only when clicked: a dozen figures cost about a second.
    st.download_button("Every figure (ZIP of PNGs)",
                       lambda: pipeline.figures_zip(pipeline.all_views(checkpoint, lock, tensor)),
                       file_name=f"{stem}-figures.zip", mime="application/zip",
                       key=f"{prefix}dl-zip", on_click="ignore", icon=":material/folder_zip:")
