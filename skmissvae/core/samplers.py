"""Importance sampling with a trained model: log-likelihood, conditional mean, resampling.

All functions run without gradients, take a proposal ``q`` (any family with ``sample`` and
``log_prob``, e.g. the encoder's output or a DeMissVAE imputation mixture) and an explicit
``torch.Generator``, and never modify the observed entries of their inputs.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .families import DiagNormal, NormalMixture
from .model import MissingDataVAE, standard_normal_log_prob

__all__ = [
    "importance_log_likelihood",
    "importance_conditional_mean",
    "importance_resample",
]

Proposal = DiagNormal | NormalMixture


def _log_weights(model, x_filled, observed, q, n_samples, generator) -> tuple[Tensor, Tensor, Tensor]:
    z = q.sample((n_samples,), generator)  # [S, B, d]
    h = model.decode(z)  # [S, B, n_params * D]
    log_w = (
        model.likelihood.log_prob(x_filled, observed, h)
        + standard_normal_log_prob(z)
        - q.log_prob(z)
    )  # [S, B]
    return z, h, log_w


@torch.no_grad()
def importance_log_likelihood(
    model: MissingDataVAE,
    x_filled: Tensor,
    observed: Tensor,
    q: Proposal,
    n_samples: int,
    generator: torch.Generator | None = None,
    chunk_size: int = 256,
) -> Tensor:
    """IWELBO estimate of ``log p(x_o)`` per row with ``n_samples`` draws from ``q``.

    Draws are taken ``chunk_size`` at a time and combined with a running logsumexp, so
    memory does not grow with ``n_samples``. Returns ``[B]``.
    """
    total = None
    for start in range(0, n_samples, chunk_size):
        n = min(chunk_size, n_samples - start)
        _, _, log_w = _log_weights(model, x_filled, observed, q, n, generator)
        chunk = torch.logsumexp(log_w, dim=0)  # [B]
        total = chunk if total is None else torch.logaddexp(total, chunk)
    return total - math.log(n_samples)


@torch.no_grad()
def importance_conditional_mean(
    model: MissingDataVAE,
    x_filled: Tensor,
    observed: Tensor,
    q: Proposal,
    n_samples: int,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Self-normalised estimate of ``E[x | x_o]``: ``sum_i w~_i E[x | z_i]``, shape ``[B, D]``.

    Observed entries of the result are copied from ``x_filled``.
    """
    _, h, log_w = _log_weights(model, x_filled, observed, q, n_samples, generator)
    weights = torch.softmax(log_w, dim=0).unsqueeze(-1)  # [S, B, 1]
    mean = (weights * model.likelihood.mean(h)).sum(0)  # [B, D]
    return torch.where(observed, x_filled, mean)


@torch.no_grad()
def importance_resample(
    model: MissingDataVAE,
    x_filled: Tensor,
    observed: Tensor,
    q: Proposal,
    n_samples: int,
    n_draws: int,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Sampling-importance-resampling draws of ``x_m ~ p(x_m | x_o)``: ``[M, B, D]``.

    ``n_samples`` latents are drawn from ``q``, ``n_draws`` of them resampled per row with
    probabilities ``softmax(log w)``, decoded, and the missing entries sampled.
    """
    z, _, log_w = _log_weights(model, x_filled, observed, q, n_samples, generator)
    index = torch.multinomial(
        torch.softmax(log_w, dim=0).T, n_draws, replacement=True, generator=generator
    )  # [B, M]
    rows = torch.arange(z.shape[1], device=z.device)
    chosen = z[index.T, rows]  # [M, B, d]
    x_sampled = model.likelihood.sample(model.decode(chosen), generator)  # [M, B, D]
    return torch.where(observed, x_filled, x_sampled)
