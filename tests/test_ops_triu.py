import pytest
import torch

from gsoplib.ops import triu_dim, triu_unvec, triu_vec


@pytest.mark.parametrize(("n", "dim"), [(256, 32896), (128, 8256), (64, 2080), (1, 1)])
def test_triu_dims_match_the_papers(n, dim):
    assert triu_dim(n) == dim
    assert triu_vec(torch.zeros(1, n, n)).shape == (1, dim)


def test_triu_is_row_major_upper_triangle():
    a = torch.arange(9.0).view(1, 3, 3)
    assert triu_vec(a).tolist() == [[0.0, 1.0, 2.0, 4.0, 5.0, 8.0]]


def test_triu_round_trip_on_symmetric_matrices():
    a = torch.randn(4, 7, 7)
    a = a + a.transpose(1, 2)
    torch.testing.assert_close(triu_unvec(triu_vec(a)), a)
    upper = triu_unvec(triu_vec(a), symmetric=False)
    torch.testing.assert_close(upper, torch.triu(a))


def test_triu_unvec_rejects_a_length_that_is_not_triangular():
    with pytest.raises(ValueError, match="not n\\(n\\+1\\)/2"):
        triu_unvec(torch.zeros(2, 7))
