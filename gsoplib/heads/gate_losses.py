"""The GM-SOP gate's losses: the balance loss on the batch's importance (GM-SOP Eq. 4), Shazeer
et al.'s smooth load loss, and ST-MoE's router z-loss."""

from __future__ import annotations

import torch


def cv_squared(values: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """Squared coefficient of variation (std / mean)^2 of a (N,) vector; 0 for N < 2."""
    values = values.to(torch.promote_types(values.dtype, torch.float32))
    if values.numel() < 2:
        return values.new_zeros(())
    return values.var(correction=1 if unbiased else 0) / (values.mean().square() + 1e-10)


def balance_loss(
    weights: torch.Tensor, alpha: float = 100.0, unbiased: bool = True
) -> torch.Tensor:
    """Balance loss L_B = alpha * CV(importance)^2 (GM-SOP Eq. 4; Shazeer et al. 2017, Eq. 6).

    Args:
        weights: (B, N) gate weights omega(X_s) of one mini-batch.
        alpha: the loss weight; the paper uses 100 (alpha = 0 switches the loss off, Fig. 2).
        unbiased: sample (N - 1) variance as in the GM-SOP release; False gives the population
            variance of Shazeer et al.

    Returns:
        Scalar: alpha * (std(I) / mean(I))^2 with importance I_n = sum_s omega_n(X_s). Zero when
        every CM gets the same total weight, growing with the imbalance.
    """
    if weights.dim() != 2:
        raise ValueError(f"balance_loss expects (B, N) weights, got shape {tuple(weights.shape)}")
    return alpha * cv_squared(weights.sum(dim=0), unbiased)


def load_loss(
    clean: torch.Tensor,
    noisy: torch.Tensor,
    noise_scale: torch.Tensor,
    k: int,
    weight: float = 1e-2,
) -> torch.Tensor:
    """Shazeer et al.'s smooth load loss: weight * CV(load)^2 (their Appendix A, Eq. 8-10).

    load_n = sum_s P(expert n stays in the top k of sample s when only its own noise is redrawn)
    = Phi((clean_n - threshold) / noise_scale_n), the threshold being the k-th largest of the
    other noisy logits. It gives every expert a gradient, chosen or not.

    Args:
        clean, noisy, noise_scale: (B, N); k: experts kept; weight: the loss weight (1e-2).
    """
    n = noisy.shape[-1]
    if k >= n:
        return clean.new_zeros(())
    top = noisy.topk(k + 1, dim=-1).values
    in_threshold, out_threshold = top[:, k - 1 : k], top[:, k : k + 1]
    normal = torch.distributions.Normal(clean.new_zeros(()), clean.new_ones(()))
    prob_in = normal.cdf((clean - out_threshold) / noise_scale)
    prob_out = normal.cdf((clean - in_threshold) / noise_scale)
    load = torch.where(noisy >= in_threshold, prob_in, prob_out).sum(dim=0)
    return weight * cv_squared(load, unbiased=False)


def router_z_loss(logits: torch.Tensor, weight: float = 1e-3) -> torch.Tensor:
    """ST-MoE's router z-loss (Zoph et al. 2022, Eq. 5): weight * mean_s logsumexp(H_s)^2.

    Keeps the gate's logits small; (B, N) clean logits -> scalar, float32.
    """
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
    return weight * torch.logsumexp(logits, dim=-1).square().mean()


__all__ = ["balance_loss", "cv_squared", "load_loss", "router_z_loss"]
