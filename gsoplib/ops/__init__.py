"""Floor 1: pure tensor math for second-order pooling. torch only, no module state."""

from .covariance import covariance, covariance_centring_matrix, position_covariance
from .memory import saved_tensor_bytes
from .spectrum import top_eigenvalue_share
from .sqrtm import DEFAULT_EPS, newton_schulz_errors, sqrtm_eigh, sqrtm_newton_schulz
from .triu import triu_dim, triu_unvec, triu_vec

__all__ = [
    "DEFAULT_EPS",
    "covariance",
    "covariance_centring_matrix",
    "newton_schulz_errors",
    "position_covariance",
    "saved_tensor_bytes",
    "sqrtm_eigh",
    "sqrtm_newton_schulz",
    "top_eigenvalue_share",
    "triu_dim",
    "triu_unvec",
    "triu_vec",
]
