"""probe(model, images) -> Inspection: everything the second-order parts of a network computed.

Blocks and heads expose their intermediates through named :class:`~gsoplib.taps.Tap` submodules
(the channel covariance before and after row-BN and the channel weights of a GSoP block, GSoP-Net
Sec. 3.1; the position covariance and weight map, Sec. 3.2; the iSQRT-COV covariance and its
normalised square root; the GM-SOP gate's logits, choices and weights, GM-SOP Eq. 2-3). ``probe``
hooks every tap for one forward pass in eval mode without gradients, copies what each tap saw to
the CPU and removes its hooks, also when the forward raises.

Taps are grouped by the module that owns them (the tap's parent path, e.g. ``layer3.1.gsop``),
one :class:`BlockRecord` per module in the order the network ran them. A gate's taps are folded
into the mixture head that owns it, so a GM-SOP head is one ``gated_mixture`` record.

Examples:
    >>> import torch
    >>> from gsoplib.pretrained import load_pretrained
    >>> ck = load_pretrained("fmnist_small_gsop1")
    >>> insp = probe(ck.model, torch.rand(2, 1, 28, 28), class_names=ck.classes)
    >>> insp.blocks["layer3.2.attn"].tensors["tap_channel_weights"].shape   # (B, C, 1, 1)
    torch.Size([2, 64, 1, 1])
    >>> summary = insp.summary()                 # one line per block, printable
"""

from __future__ import annotations

from .hooks import probe
from .pixels import probe_image, to_pixels
from .records import KINDS, BlockRecord, Inspection, Prediction, block_kind

__all__ = [
    "KINDS",
    "BlockRecord",
    "Inspection",
    "Prediction",
    "block_kind",
    "probe",
    "probe_image",
    "to_pixels",
]
