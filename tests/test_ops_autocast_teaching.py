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
        "plain Newton": lambda m: plain_newton_sqrtm(m, 4),
        "Denman-Beavers": lambda m: denman_beavers_sqrtm(m, 4),
    }
    for name, op in ops.items():
        plain = op(a)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            inside = op(a)
        assert inside.dtype == torch.float32, name
        torch.testing.assert_close(inside, plain, msg=name)
