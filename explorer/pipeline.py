"""One image through a checkpoint to everything the explorer shows, without Streamlit.

The views cache these results per model and image; the benchmark times them directly. Every
number comes from gsoplib (probe, viz, viz.charts, attribution, class_usage); this module picks
the interactive charts of each part, renders the PNG figures the downloads hand out, and packs
downloads. Whoever registers hooks on a shared model (probe, captum) holds its lock, so two
sessions never interleave hooks on one model.
"""

from __future__ import annotations

import io
import re
import threading
import zipfile
from collections.abc import Mapping, Sequence

import torch
from matplotlib.figure import Figure
from PIL import Image

from gsoplib import attribution, class_usage, viz
from gsoplib.checkpoint import Checkpoint
from gsoplib.class_usage import class_usage_figure
from gsoplib.heads.gate import GateDiagnostics
from gsoplib.probe import BlockRecord, Inspection, probe
from gsoplib.viz import charts

DPI = 100
# Occlusion's 64 windows on a 28x28 input in one forward pass: four passes of 16 cost twice as
# much on a CPU, and a small model's batch of 64 needs a few MB.
OCCLUSION_BATCH = 64
TOP_K = 5
SHOWN_CHANNELS = 4
"""Feature maps shown before a user selects channels: this many of the largest and smallest
weights."""
HEAD_KINDS = frozenset({"isqrt_cov", "gated_mixture", "average_mixture"})
FAST_METHODS = ("gradcam", "occlusion")
SLOW_METHODS = ("integrated_gradients",)
METHOD_TITLES = {
    "gradcam": "Grad-CAM",
    "occlusion": "Occlusion",
    "integrated_gradients": "Integrated Gradients",
}


def png(fig: Figure, dpi: int = DPI) -> bytes:
    """A Figure as PNG bytes (what the page shows and the download buttons hand out)."""
    return viz.to_png(fig, dpi)


def inspect(
    checkpoint: Checkpoint, lock: threading.Lock, images: torch.Tensor
) -> Inspection:
    """:func:`gsoplib.probe.probe` of (B, C, H, W) or (C, H, W) normalised images."""
    with lock:
        return probe(checkpoint.model, images, class_names=checkpoint.classes, top_k=TOP_K)


def blocks(insp: Inspection) -> list[BlockRecord]:
    """The in-network blocks (GSoP channel/position, SE, CBAM), in network order."""
    return [r for r in insp.parts() if r.kind not in HEAD_KINDS]


def heads(insp: Inspection) -> list[BlockRecord]:
    """The second-order heads (iSQRT-COV, the mixtures), in network order."""
    return [r for r in insp.parts() if r.kind in HEAD_KINDS]


def prediction_png(insp: Inspection) -> bytes:
    return png(viz.prediction(insp))


def top_table(insp: Inspection) -> dict[str, list]:
    """The top-k predictions of a one-image inspection as table columns."""
    top = insp.top[0]
    return {
        "rank": list(range(1, len(top) + 1)),
        "class": [p.name for p in top],
        "probability": [round(p.probability, 4) for p in top],
    }


#: How to read each kind of chart, by the end of its name: one line under the chart.
HOW_TO_READ = {
    "prediction": "Bars: the model's probability (softmax, 0 to 1) of its five most likely "
                  "classes; orange: the predicted one.",
    ": channel weights": "Bars: the block's weight of each channel, a sigmoid in (0, 1) that "
                         "multiplies the channel, sorted from the largest; the x axis is the "
                         "rank (hover a bar for its channel); orange: the selected channels.",
    ": feature maps": "Squares: the block's input, one channel each, over the positions of its "
                      "map; colour: the activation, one scale for all; hover for a value.",
    ": position weights": "Colour: the block's weight of each position, a sigmoid in (0, 1), "
                          "laid over the photo where the model input came from (dashed box).",
    ": covariance": "Heatmaps: each matrix the part computed (red positive, blue negative, white "
                    "0; a block's channels are its own reduced channels c, not the layer's); "
                    "right: each symmetric matrix's eigenvalues over its largest, log scale.",
    ": gate": "Left: the gate's N logits, the K chosen in orange; right: the weights omega of "
              "the K chosen (they sum to 1; a point marks each, even a weight near 0).",
    ": gate weights per image": "Left: omega per image (rows) and component (columns); middle: "
                                "the images choosing each component; right: the sum of its "
                                "weights (importance); dashed: even use.",
    ": gate weights per class": "Colour: the mean omega a class's images give each component "
                                "(the share of them choosing it times its weight); 1/K when "
                                "every image of the class chooses it with an even weight.",
    ": channel weights of the images": "Colour: each image's (row) weight of each channel "
                                       "(column), a sigmoid in (0, 1).",
    ": channels over the batch": "Lines: the selected channels' weights, sigmoids in (0, 1), in "
                                 "each chosen image.",
    ": the inspected image's weights": "Bars: this image's channel weights, sorted from the "
                                       "largest (the x axis is the rank).",
}


def how_to_read(name: str) -> str | None:
    """The one-line reading guide of the chart the views show as ``name`` (None: the chart
    carries its own, as the attributions do)."""
    return next((text for end, text in HOW_TO_READ.items() if name.endswith(end)), None)


def default_channels(insp: Inspection, path: str) -> list[int]:
    """The channels whose maps are shown until a user picks some: those of the largest and the
    smallest weights (as the PNG figure shows them)."""
    weights = insp[path].select(0)["tap_channel_weights"].flatten()
    order = torch.argsort(-weights, stable=True).tolist()
    show = min(SHOWN_CHANNELS, len(order) // 2)
    return order[:show] + order[::-1][:show]


Box = tuple[float, float, float, float]


def block_charts(insp: Inspection, path: str, *, photo: Image.Image | None = None,
                 box: Box | None = None, channels: Sequence[int] | None = None,
                 name: str | None = None) -> dict[str, charts.Chart]:
    """The interactive charts of the part at ``path`` for the one image ``insp`` holds, keyed
    'PATH: what': channel weights and the feature maps of ``channels`` (default
    :func:`default_channels`), the position weights over ``photo`` (the original, ``box`` the
    input's region of it), the covariances, the gate and its best component's covariance.
    ``name``: the image's name, for the titles."""
    record = insp[path]
    t, out = record.tensors, {}
    if "tap_channel_weights" in t:
        shown = default_channels(insp, path) if channels is None else list(channels)
        out[f"{record.label}: channel weights"] = charts.channel_weights_chart(
            insp, path, selected=() if channels is None else shown)
        if "tap_input" in t or "tap_output" in t:
            out[f"{record.label}: feature maps"] = charts.feature_maps_chart(insp, path, shown)
    if "tap_pos_weights" in t or "tap_pos_weights_pooled" in t:
        out[f"{record.label}: position weights"] = charts.position_weights_chart(
            insp, path, photo=photo, box=box)
    if {"tap_cov", "tap_pos_cov"} & t.keys():
        out[f"{record.label}: covariance"] = charts.covariance_chart(insp, path)
    if "tap_gate_weights" in t or "tap_gate_clean_logits" in t:
        out[f"{record.label}: gate"] = charts.gate_chart(insp, path, name=name)
        comp = best_component(insp, path)
        if comp is not None:
            out[f"{comp}: covariance"] = charts.covariance_chart(insp, comp)
    return out


def best_component(insp: Inspection, path: str) -> str | None:
    """The path of the mixture component the gate weighted most for the one image, when its
    covariance was tapped."""
    comps = insp.components(path)
    t = insp[path].tensors
    if comps and "tap_gate_indices" in t:
        best = f".components.{int(t['tap_gate_indices'][0, 0])}."
        comps = [c for c in comps if best in c.path + "."] or comps
    return comps[0].path if comps and "tap_cov" in comps[0] else None


def block_pngs(insp: Inspection, path: str) -> dict[str, bytes]:
    """Every figure :func:`gsoplib.viz.block_figures` draws for the part at ``path``, as PNG."""
    return {name: png(fig) for name, fig in viz.block_figures(insp, path).items()}


def gate_report(insp: Inspection, path: str, labels: Sequence[str]) -> GateDiagnostics:
    """Is the gate at ``path`` alive over these images? (gsoplib.class_usage.gate_report)"""
    return class_usage.gate_report(insp, path, labels)


def usage_pngs(insp: Inspection, path: str, labels: Sequence[str]) -> dict[str, bytes]:
    """Across a batch: the gate's weights per image (viz.gate_usage) and per class."""
    return {
        f"{insp[path].label}: gate weights per image": png(viz.gate_usage(insp, path)),
        f"{insp[path].label}: gate weights per class": png(
            class_usage_figure(insp, path, labels)
        ),
    }


def attributions(
    checkpoint: Checkpoint,
    lock: threading.Lock,
    image: torch.Tensor,
    target: int,
    *,
    layer: str | None = None,
    methods: Sequence[str] = FAST_METHODS,
) -> dict[str, torch.Tensor]:
    """Method title -> (H, W) map for one (C, H, W) image and class ``target``.

    layer: the Grad-CAM layer (a module path; None for the last stage).
    """
    out = {}
    with lock:
        for method in methods:
            options = {"gradcam": {"layer": layer},
                       "occlusion": {"perturbations_per_eval": OCCLUSION_BATCH}}.get(method, {})
            maps = attribution.attribute(checkpoint.model, image, method, target, **options)
            out[METHOD_TITLES[method]] = maps[0]
    return out


def attribution_png(image: torch.Tensor, maps: Mapping[str, torch.Tensor]) -> bytes:
    return png(viz.attribution_figure(image, maps))


def attribution_chart(maps: Mapping[str, torch.Tensor], image: torch.Tensor,
                      photo: Image.Image | None = None, box: Box | None = None
                      ) -> charts.Chart:
    """The maps over the original photo (``box``: the input's region of it), else over the
    model input."""
    if photo is None:
        photo, box = charts.input_photo(image), None
    units = {title: attribution.UNITS[method][0] for method, title in METHOD_TITLES.items()}
    return charts.attribution_chart(maps, photo, box, units=units)


def attribution_notes(maps: Mapping[str, torch.Tensor]) -> list[str]:
    """How to read each map shown: one line per method (:data:`gsoplib.attribution.UNITS`)."""
    return [f"**{title}**: {attribution.UNITS[method][1]}."
            for method, title in METHOD_TITLES.items() if title in maps]


def inspection_json(insp: Inspection) -> bytes:
    return insp.to_json().encode()


def inspection_npz(insp: Inspection) -> bytes:
    buffer = io.BytesIO()
    insp.to_npz(buffer)
    return buffer.getvalue()


def file_stem(text: str) -> str:
    """A name safe in a file name: 'layer1.attn: covariance' -> 'layer1.attn-covariance'."""
    return re.sub(r"[^A-Za-z0-9.-]+", "_", text.replace(": ", "-")).strip("_")


def figures_zip(pngs: Mapping[str, bytes]) -> bytes:
    """Name -> PNG bytes, as a zip of ``<name>.png`` files."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, data in pngs.items():
            archive.writestr(f"{file_stem(name)}.png", data)
    return buffer.getvalue()


def all_charts(
    checkpoint: Checkpoint, lock: threading.Lock, image: torch.Tensor,
    photo: Image.Image | None = None, box: Box | None = None,
) -> dict[str, charts.Chart]:
    """Every interactive chart the views show for one (C, H, W) image but the attributions
    (:func:`attribution_charts`): the prediction and every part's charts. What the benchmark
    times against :func:`all_views`."""
    insp = inspect(checkpoint, lock, image)
    out = {"prediction": charts.prediction_chart(insp)}
    for record in insp.parts():
        out.update(block_charts(insp, record.path, photo=photo, box=box))
    return out


def attribution_charts(
    checkpoint: Checkpoint, lock: threading.Lock, image: torch.Tensor,
    photo: Image.Image | None = None, box: Box | None = None,
) -> charts.Chart:
    """Grad-CAM and Occlusion of the predicted class over the photo (extra passes by nature:
    timed on their own)."""
    insp = inspect(checkpoint, lock, image)
    maps = attributions(checkpoint, lock, image, insp.top[0][0].index)
    return attribution_chart(maps, image, photo, box)


def all_views(
    checkpoint: Checkpoint, lock: threading.Lock, image: torch.Tensor
) -> dict[str, bytes]:
    """Everything the views show for one (C, H, W) image without Integrated Gradients: the
    prediction, every part's figures, Grad-CAM and Occlusion of the predicted class.
    Name -> PNG bytes; what the benchmark times and the figures download zips."""
    insp = inspect(checkpoint, lock, image)
    out = {"prediction": prediction_png(insp)}
    for record in insp.parts():
        out.update(block_pngs(insp, record.path))
    maps = attributions(checkpoint, lock, image, insp.top[0][0].index)
    out["attributions"] = attribution_png(image, maps)
    return out


def warm_up(checkpoint: Checkpoint, lock: threading.Lock) -> None:
    """Run every chart and the attributions once on a noise image: the first forward and
    backward of each shape pay one-time costs (oneDNN kernels) of a second or more on a CPU,
    which belong to loading the model rather than to a user's first image; a model that fails
    on its own input size fails here."""
    generator = torch.Generator().manual_seed(0)
    size = (checkpoint.in_chans, *checkpoint.input_size)
    image = torch.randn(size, generator=generator)
    all_charts(checkpoint, lock, image)
    attribution_charts(checkpoint, lock, image)
