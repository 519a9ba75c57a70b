"""One image through a checkpoint to everything the explorer shows, without Streamlit.

The views cache these results per model and image; the benchmark times them directly. Every
number comes from gsoplib (probe, viz, attribution, class_usage); this module only renders
figures to PNG and packs downloads. Whoever registers hooks on a shared model (probe, captum)
holds its lock, so two sessions never interleave hooks on one model.
"""

from __future__ import annotations

import io
import re
import threading
import zipfile
from collections.abc import Mapping, Sequence

import torch
from matplotlib.figure import Figure

from gsoplib import attribution, class_usage, viz
from gsoplib.checkpoint import Checkpoint
from gsoplib.class_usage import class_usage_figure
from gsoplib.heads.gate import GateDiagnostics
from gsoplib.probe import BlockRecord, Inspection, probe

DPI = 100
# Occlusion's 64 windows on a 28x28 input in one forward pass: four passes of 16 cost twice as
# much on a CPU, and a small model's batch of 64 needs a few MB.
OCCLUSION_BATCH = 64
TOP_K = 5
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
    """Run :func:`all_views` once on a noise image: the first forward, backward and figure of
    each shape pay one-time costs (oneDNN kernels, fonts) of a second or more on a CPU, which
    belong to loading the model rather than to a user's first image."""
    generator = torch.Generator().manual_seed(0)
    size = (checkpoint.in_chans, *checkpoint.input_size)
    all_views(checkpoint, lock, torch.randn(size, generator=generator))
