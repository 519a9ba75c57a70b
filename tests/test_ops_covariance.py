import pytest
import torch

from gsoplib.ops import covariance, covariance_centring_matrix, position_covariance


def direct_covariance(x: torch.Tensor) -> torch.Tensor:
    """Per-sample textbook formula: (1/M) sum_m (x_m - mu)(x_m - mu)^T."""
    out = []
    for sample in x.flatten(2).double():
        mu = sample.mean(dim=1, keepdim=True)
        out.append(sum(torch.outer(c - mu[:, 0], c - mu[:, 0]) for c in sample.T) / sample.shape[1])
    return torch.stack(out)


@pytest.mark.parametrize("shape", [(3, 5, 7, 7), (2, 4, 28, 28), (2, 6, 11)])
def test_covariance_matches_direct_formula(shape):
    x = torch.randn(*shape, dtype=torch.float64) * 3 + 1
    torch.testing.assert_close(covariance(x), direct_covariance(x))


def test_covariance_matches_the_centring_matrix_formulation():
    x = torch.randn(2, 8, 6, 5)
    torch.testing.assert_close(covariance(x), covariance_centring_matrix(x), atol=1e-5, rtol=1e-4)


def test_covariance_is_symmetric_psd_and_float32_for_half_inputs():
    x = torch.randn(4, 16, 9, 9).to(torch.bfloat16)
    cov = covariance(x)
    assert cov.dtype == torch.float32
    torch.testing.assert_close(cov, cov.transpose(1, 2))
    assert torch.linalg.eigvalsh(cov.double()).min() > -1e-5


def test_position_covariance_centres_over_channels():
    x = torch.randn(2, 12, 4, 3, dtype=torch.float64)
    pos = position_covariance(x)
    assert pos.shape == (2, 12, 12)
    variables = x.flatten(2)  # (B, C, hw): channels are samples of the hw position variables
    expected = direct_covariance(variables.transpose(1, 2))
    torch.testing.assert_close(pos, expected)


def test_covariance_saves_no_positions_by_positions_tensor():
    m = 1024
    x = torch.randn(2, 8, m, requires_grad=True)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(
        lambda t: saved.append(t.numel()) or t, lambda t: t
    ):
        covariance(x).sum().backward()
    assert saved and max(saved) < m * m


def test_bad_shapes_are_one_clear_error():
    with pytest.raises(ValueError, match="covariance expects"):
        covariance(torch.randn(3, 4))
    with pytest.raises(ValueError, match="position_covariance expects"):
        position_covariance(torch.randn(3, 4, 5))


def test_covariance_gradcheck():
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(covariance, (x,))
    assert torch.autograd.gradcheck(position_covariance, (x,))


def test_float32_gradient_is_accurate_for_features_with_a_large_mean():
    x64 = torch.randn(2, 16, 196, dtype=torch.float64) + 20.0
    upstream = torch.randn(2, 16, 16, dtype=torch.float64)
    grads = []
    for x in (x64, x64.float()):
        leaf = x.clone().requires_grad_(True)
        (covariance(leaf) * upstream.to(x.dtype)).sum().backward()
        grads.append(leaf.grad.double())
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-3, atol=1e-4)
