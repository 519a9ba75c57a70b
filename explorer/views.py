"""Views of one image: prediction, every second-order part in network order, attributions.

Results are cached per model and image (``LoadedModel.key``, ``ModelInput.key``) and shared by
every session: an inspection or an attribution is computed once, its figures are rendered to PNG
once. Everything shown comes from explorer/pipeline.py, which calls gsoplib.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st
import torch

from explorer import pipeline
from explorer.image_panel import ModelInput, gallery_inputs
from explorer.model_panel import LoadedModel
from gsoplib.probe import BlockRecord, Inspection

VIEWS = ("Prediction", "Blocks", "Head", "Attributions", "Downloads")
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


@st.cache_data(max_entries=256, show_spinner=False)
def _prediction_png(model_key: str, image_key: str, _insp: Inspection) -> bytes:
    return pipeline.prediction_png(_insp)


@st.cache_data(max_entries=1024, show_spinner=False)
def _block_pngs(model_key: str, image_key: str, path: str, _insp: Inspection
                ) -> dict[str, bytes]:
    return pipeline.block_pngs(_insp, path)


@st.cache_data(max_entries=64, show_spinner=False)
def _usage_pngs(model_key: str, image_keys: tuple[str, ...], path: str, labels: tuple[str, ...],
                _insp: Inspection) -> dict[str, bytes]:
    return pipeline.usage_pngs(_insp, path, labels)


@st.cache_resource(max_entries=256, show_spinner=False)
def _attributions(model_key: str, image_key: str, target: int, layer: str | None,
                  methods: tuple[str, ...], _loaded: LoadedModel, _image: torch.Tensor
                  ) -> dict[str, torch.Tensor]:
    return pipeline.attributions(_loaded.checkpoint, _loaded.lock, _image, target, layer=layer,
                                 methods=methods)


@st.cache_data(max_entries=256, show_spinner=False)
def _attribution_png(model_key: str, image_key: str, target: int, layer: str | None,
                     methods: tuple[str, ...], _image: torch.Tensor,
                     _maps: dict[str, torch.Tensor]) -> bytes:
    return pipeline.attribution_png(_image, _maps)


# ------------------------------------------------------------------- layout


def choose_image(inputs: list[ModelInput], key: str = "image") -> ModelInput:
    """The image the views show: the only one, or the one picked from several."""
    if len(inputs) == 1:
        return inputs[0]
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
    """View ``opts.view`` of ``item``; ``batch`` is every chosen image (the mixture's usage).
    ``prefix`` keeps widget keys apart when two models are shown side by side."""
    insp = inspect(loaded, [item])
    if opts.view == "Prediction":
        _prediction(loaded, item, insp)
    elif opts.view == "Blocks":
        _parts(loaded, item, insp, pipeline.blocks(insp), prefix, "blocks")
    elif opts.view == "Head":
        _parts(loaded, item, insp, pipeline.heads(insp), prefix, "head")
        for record in pipeline.heads(insp):
            if record.kind == "gated_mixture":
                _usage(loaded, record, batch, prefix)
    elif opts.view == "Attributions":
        _attribution(loaded, item, insp, opts, prefix)
    else:
        _downloads(loaded, item, insp, prefix)


def _figures(pngs: dict[str, bytes], prefix: str) -> None:
    for name, data in pngs.items():
        st.image(data, caption=name)
        stem = pipeline.file_stem(name)
        st.download_button("Download PNG", data, file_name=f"{stem}.png", mime="image/png",
                           key=f"{prefix}png-{stem}", on_click="ignore", icon=":material/download:")


def _prediction(loaded: LoadedModel, item: ModelInput, insp: Inspection) -> None:
    if item.label is not None:
        st.markdown(f"True class: **{item.label}**")
    st.table(pipeline.top_table(insp))
    st.image(_prediction_png(loaded.key, item.key, insp), caption="prediction")
    st.markdown("What each second-order part computed, in network order:")
    st.code(insp.summary(), language=None, wrap_lines=True)


def _parts(loaded: LoadedModel, item: ModelInput, insp: Inspection, records: list[BlockRecord],
           prefix: str, where: str) -> None:
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
        _figures(_block_pngs(loaded.key, item.key, record.path, insp), f"{prefix}{record.path}-")


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
    pngs = _usage_pngs(loaded.key, tuple(i.key for i in items), record.path, labels, insp)
    _figures(pngs, f"{prefix}usage-")


def _gate_health(report, images: int) -> None:
    """The gate's diagnostics over the images shown: a warning when it is degenerate."""
    if report.degenerate:
        st.warning(report.verdict, icon=":material/warning:")
    else:
        st.success(report.verdict, icon=":material/check_circle:")
    cols = st.columns(4)
    cols[0].metric("least-used expert", f"{min(report.image_share):.0%} of images",
                   help=f"Share of the {images} images that chose it; even use is K/N = "
                        f"{report.k / report.num_experts:.0%}.")
    cols[1].metric("most common set", f"{report.top_set_share:.0%} of images",
                   help=f"{report.distinct_sets} distinct sets of {report.k} experts.")
    mi = report.mutual_information
    cols[2].metric("MI(class; expert)", "-" if mi is None else f"{mi:.2f} bits",
                   help="How much the chosen experts say about the class: 0 for a class-blind "
                        "gate.")
    cols[3].metric("weights vs 1/K", f"{report.weight_deviation:.3f}",
                   help="Mean |omega - 1/K| over the chosen experts: 0 when the gate ties.")


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
        data = _attribution_png(loaded.key, item.key, target, layer, methods, item.tensor, maps)
    names = ", ".join(maps)
    _figures({f"attributions for {classes[target]} ({names})": data}, f"{prefix}attr-")
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
