"""The comparison ops (log, power, plain Newton, Denman-Beavers, Newton-Schulz with a chosen
pre-normalisation) compute in their input's dtype under autocast, as covariance and
sqrtm_newton_schulz do: a bf16 region around them changes nothing."""

import torch

from gsoplib.ops import covariance
from gsoplib.ops.iterations import (
    denman_beavers_sqrtm,
    newton_schulz_prenormalised,
    plain_newton_sqrtm,
)
from gsoplib.ops.normalisations import logm_eigh, power_euclidean


def _spd():
    torch.manual_seed(0)
    return covariance(torch.randn(3, 16, 7, 7)) + 1e-3 * torch.eye(16)


def test_under_bf16_autocast_each_op_returns_what_it_returns_outside():
    a = _spd()
    ops = {
        "log": lambda m: logm_eigh(m),
        "power": lambda m: power_euclidean(m, 0.5),
        "ns trace": lambda m: newton_schulz_prenormalised(m, 5, "trace"),
        "ns frobenius": lambda m: newton_schulz_prenormalised(m, 5, "frobenius"),
    }
    for name, op in ops.items():
        plain = op(a)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            inside = op(a)
        assert inside.dtype == torch.float32, name
        torch.testing.assert_close(inside, plain, msg=name)


def test_plain_newton_and_denman_beavers_solve_and_invert_with_autocast_off(monkeypatch):
    """CPU autocast leaves solve and inv alone, so their outputs cannot show it: record instead
    whether autocast is on when the iterations call them inside a bf16 region."""
    seen = []

    def cpu_autocast_on() -> bool:
        try:
            return torch.is_autocast_enabled("cpu")
        except TypeError:                          # torch < 2.4 takes no device type
            return torch.is_autocast_cpu_enabled()

    def recording(real):
        def call(*args, **kwargs):
            seen.append(cpu_autocast_on())
            return real(*args, **kwargs)
        return call

    monkeypatch.setattr(torch.linalg, "solve", recording(torch.linalg.solve))
    monkeypatch.setattr(torch.linalg, "inv", recording(torch.linalg.inv))
    a = _spd()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert cpu_autocast_on()
        plain = plain_newton_sqrtm(a, 3)
        coupled = denman_beavers_sqrtm(a, 3)
    assert len(seen) == 3 + 2 * 3 and not any(seen)
    assert plain.dtype == coupled.dtype == torch.float32
