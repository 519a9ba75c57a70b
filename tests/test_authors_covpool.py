"""The authors' covariance layer (gsoplib.ops.authors_covpool): X I_hat X^T equal to the covariance,
its backward (G + G^T) X I_hat, and what it keeps for the backward (X and I_hat only)."""

from __future__ import annotations

import pytest
import torch

from gsoplib.ops import covariance, covariance_centring_matrix, saved_tensor_bytes
from gsoplib.ops.authors_covpool import authors_covpool


@pytest.mark.parametrize("shared", [False, True])
def test_equals_the_covariance_and_passes_gradcheck(shared):
    x = torch.randn(3, 4, 3, 3, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(authors_covpool(x, shared_i_hat=shared), covariance(x))
    assert torch.autograd.gradcheck(lambda v: authors_covpool(v, shared_i_hat=shared), (x,))


def test_the_backward_is_g_plus_g_transpose_times_x_i_hat():
    x = torch.randn(2, 5, 16, dtype=torch.float64, requires_grad=True)
    g = torch.randn(2, 5, 5, dtype=torch.float64)                    # not symmetric
    (grad,) = torch.autograd.grad((authors_covpool(x) * g).sum(), x)
    i_hat = (torch.eye(16, dtype=torch.float64) - 1 / 16) / 16
    torch.testing.assert_close(grad, (g + g.mT) @ x.detach() @ i_hat)
    xc = x.detach() - x.detach().mean(-1, keepdim=True)
    torch.testing.assert_close(grad, (g + g.mT) @ xc / 16)           # the boxed gradient


def test_it_keeps_x_and_i_hat_only():
    b, c, side = 3, 8, 5
    m = side * side
    x = torch.randn(b, c, side, side, requires_grad=True)
    assert saved_tensor_bytes(lambda: authors_covpool(x)) == 4 * b * (m * m + c * m)
    shared = saved_tensor_bytes(lambda: authors_covpool(x, shared_i_hat=True))
    assert shared == 4 * (m * m + b * c * m)
    # plain autograd through the same products also keeps X I_hat
    assert saved_tensor_bytes(lambda: covariance_centring_matrix(x)) == 4 * b * (m * m + 2 * c * m)


def test_float32_under_autocast_and_a_clear_error():
    x = torch.randn(2, 4, 9)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert authors_covpool(x).dtype == torch.float32
    with pytest.raises(ValueError, match="expects"):
        authors_covpool(torch.randn(4, 9))
