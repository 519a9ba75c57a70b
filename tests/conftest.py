import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def spd_batch(batch: int, n: int, condition: float, dtype=torch.float64) -> torch.Tensor:
    """(batch, n, n) symmetric positive definite matrices with eigenvalues log-spaced over
    [1/condition, 1] and random eigenvectors."""
    q, _ = torch.linalg.qr(torch.randn(batch, n, n, dtype=dtype))
    evals = torch.logspace(0, -torch.log10(torch.tensor(condition)).item(), n, dtype=dtype)
    return (q * evals) @ q.transpose(-1, -2)


requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
