"""Variational bounds as pure functions of log-weights, one value per row.

``log_w = log p(x_o, z) - log q(z)`` with particles on dimension 0 (Pyro's convention).
Every function returns a tensor of shape ``[B]``; the training loop takes ``-mean``.
Gradient estimators (STL, DReG) are a matter of how ``log_w`` was built, see
``skmissvae.core.model``; these functions only reduce.
"""

from __future__ import annotations

import math

from torch import Tensor
import torch

__all__ = ["choice_signal", "elbo", "iwelbo", "stratified_elbo", "stratified_iwelbo"]


def elbo(log_w: Tensor) -> Tensor:
    """Monte-Carlo ELBO ``(1/S) sum_s log w_s``: ``[S, B] -> [B]``."""
    return log_w.mean(0)


def iwelbo(log_w: Tensor) -> Tensor:
    """Importance-weighted bound ``LSE_i log w_i - log I``: ``[I, B] -> [B]``."""
    return torch.logsumexp(log_w, dim=0) - math.log(log_w.shape[0])


def stratified_elbo(log_w: Tensor, log_pi: Tensor) -> Tensor:
    """Stratified ELBO ``sum_k pi_k (1/I) sum_i log w_ik``.

    Parameters
    ----------
    log_w : Tensor ``[I, K, B]``
        Log-weights of ``z_ik ~ q_k``, each against the full mixture density.
    log_pi : Tensor ``[B, K]``
        Log mixture weights, **attached** so that the weights receive gradients.
    """
    return (log_pi.T.exp() * log_w.mean(0)).sum(0)  # [K, B] -> [B]


def stratified_iwelbo(log_w: Tensor, log_pi: Tensor) -> Tensor:
    """Stratified IWELBO ``LSE_{i,k} [log pi_k - log I + log w_ik]``: ``[I, K, B] -> [B]``."""
    n_per_component = log_w.shape[0]
    terms = log_pi.T + log_w - math.log(n_per_component)  # [I, K, B]
    return torch.logsumexp(terms.flatten(0, 1), dim=0)


def choice_signal(log_w: Tensor, objective: str) -> Tensor:
    """Learning signal of each particle's component choice for score-function gradients.

    The bound's value minus its value with particle ``s`` replaced by the mean log-weight
    of the others, a leave-one-out baseline that does not depend on the particle's own
    draw: for the ELBO ``(log w_s - mean_{j != s} log w_j) / S``, for the IWELBO VIMCO's
    signal (Mnih & Rezende, 2016). With a single particle the baseline is 0.

    Parameters
    ----------
    log_w : Tensor ``[S, B]``
        Log-weights, detached.
    objective : {"elbo", "iwelbo"}

    Returns
    -------
    Tensor ``[S, B]``
    """
    n = log_w.shape[0]
    others = (log_w.sum(0, keepdim=True) - log_w) / (n - 1) if n > 1 else torch.zeros_like(log_w)
    if objective == "elbo":
        return (log_w - others) / n
    # Row s of `replaced` is log_w with particle s swapped for the others' mean: [S, S, B].
    eye = torch.eye(n, dtype=torch.bool, device=log_w.device).unsqueeze(-1)
    replaced = torch.where(eye, others.unsqueeze(1), log_w.unsqueeze(0))
    return iwelbo(log_w).unsqueeze(0) - (torch.logsumexp(replaced, dim=1) - math.log(n))
