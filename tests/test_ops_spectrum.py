"""top_eigenvalue_share against eigenvalues known by construction and numpy's."""

import numpy as np
import pytest
import torch
from conftest import spd_batch

from gsoplib.ops import sqrtm_eigh, top_eigenvalue_share


def test_known_spectra():
    q = torch.linalg.qr(torch.randn(4, 4, dtype=torch.float64))[0]
    rotated = q @ torch.diag(torch.tensor([3.0, 1.0, 0.0, 0.0], dtype=torch.float64)) @ q.T
    shares = top_eigenvalue_share(torch.stack([torch.eye(4, dtype=torch.float64), rotated]))
    torch.testing.assert_close(shares, torch.tensor([0.25, 0.75], dtype=torch.float64))
    assert top_eigenvalue_share(torch.zeros(3, 3)).item() == 0.0


def test_matches_numpy_and_the_square_root_flattens_the_spectrum():
    a = spd_batch(5, 12, condition=1e3)
    evals = np.linalg.eigvalsh(a.numpy())
    np.testing.assert_allclose(top_eigenvalue_share(a.float()).numpy(),
                               evals[:, -1] / evals.sum(-1), rtol=1e-5)
    assert (top_eigenvalue_share(sqrtm_eigh(a)) < top_eigenvalue_share(a)).all()


def test_refuses_what_is_not_a_square_matrix():
    with pytest.raises(ValueError, match=r"\(\.\.\., n, n\)"):
        top_eigenvalue_share(torch.ones(3, 4))
