"""Taps: named identity submodules through which blocks and heads expose what they computed.

A block calls ``self.tap_cov(cov)`` where it has a covariance; the call returns its input
unchanged, so the forward code stays plain and nothing is stored on the module. ``gsoplib.probe``
registers forward hooks on every :class:`Tap` to read the tensors, and removes them afterwards.

Tap names used across the library (the attribute name is the record key the probe reports):
    GSoPChannel:  tap_input, tap_cov, tap_cov_bn, tap_channel_weights, tap_output
    GSoPPosition: tap_input, tap_pos_cov, tap_pos_weights_pooled, tap_pos_weights, tap_output
    SE / CBAM:    tap_input, tap_channel_weights, (CBAM) tap_pos_weights, tap_output
    iSQRT-COV:    tap_cov, tap_cov_sqrt
    mixture:      tap_gate_clean_logits, tap_gate_noisy_logits, tap_gate_indices,
                  tap_gate_weights, tap_component_norms
"""

from __future__ import annotations

from torch import nn


class Tap(nn.Identity):
    """An identity with a name: ``probe`` reads its input through a forward hook."""

    def __init__(self, name: str, description: str = "") -> None:
        super().__init__()
        self.name = name
        self.description = description

    def extra_repr(self) -> str:
        return repr(self.name)


def taps(module: nn.Module) -> dict[str, Tap]:
    """All taps below ``module``, keyed by their module path, in registration order."""
    return {path: m for path, m in module.named_modules() if isinstance(m, Tap)}


def part_paths(module: nn.Module) -> list[str]:
    """Module paths of the outermost modules that own taps (the blocks and heads), in
    registration order, without running the model: a mixture's gate and components are listed
    under the mixture. What :meth:`gsoplib.probe.Inspection.parts` reports after a forward pass.
    """
    owners = list(dict.fromkeys(path.rpartition(".")[0] for path in taps(module)))
    return [p for p in owners if p and not any(p.startswith(q + ".") for q in owners if q)]
