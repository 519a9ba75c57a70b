"""Every figure that applies to a block, and to a whole Inspection for one image: what the
explorer's downloads and the notebooks show."""

from __future__ import annotations

from matplotlib.figure import Figure

from ..probe import Inspection
from .blocks import channel_weights, covariance, position_weights, prediction
from .curves import newton_schulz_convergence
from .gate import gate_choices


def block_figures(insp: Inspection, path: str, image: int = 0) -> dict[str, Figure]:
    """Every figure that applies to the block or head at ``path``, for one image, keyed
    'PATH: what'. A mixture also gets the covariance of its highest-weighted component."""
    one = insp.image(image) if insp.batch_size > 1 else insp
    record = one[path]
    t, out = record.tensors, {}
    if "tap_channel_weights" in t:
        out[f"{record.label}: channel weights"] = channel_weights(one, path)
    if "tap_pos_weights" in t or "tap_pos_weights_pooled" in t:
        out[f"{record.label}: position weights"] = position_weights(one, path)
    if {"tap_cov", "tap_pos_cov"} & t.keys():
        out[f"{record.label}: covariance"] = covariance(one, path)
    if "tap_cov_sqrt" in t:
        out[f"{record.label}: Newton-Schulz"] = newton_schulz_convergence(t["tap_cov"])
    if "tap_gate_weights" in t or "tap_gate_clean_logits" in t:
        out[f"{record.label}: gate"] = gate_choices(one, path)
        comps = one.components(path)
        if comps and "tap_gate_indices" in t:
            best = f".components.{int(t['tap_gate_indices'][0, 0])}."
            comps = [c for c in comps if best in c.path + "."] or comps
        if comps and "tap_cov" in comps[0]:
            out[f"{comps[0].label}: covariance"] = covariance(one, comps[0].path)
    return out


def figures(insp: Inspection, image: int = 0) -> dict[str, Figure]:
    """The prediction and :func:`block_figures` of every part, for image ``image``, in network
    order: everything the explorer and the notebooks show for one image."""
    out = {"prediction": prediction(insp, image)}
    one = insp.image(image)
    for record in one.parts():
        out.update(block_figures(one, record.path))
    return out

