"""Variational families: diagonal Normal and diagonal-Normal mixtures.

Shapes follow torch.distributions: ``sample_shape + batch_shape + event_shape``.
Parameters carry a batch dimension ``B`` and an event dimension ``d``; mixtures add a
component dimension ``K`` *before* the batch dimension in samples (``[S, K, B, d]`` for
stratified draws) and *after* it in parameters (``loc`` is ``[B, K, d]``).

Every sampler takes an explicit generator so that library code never touches torch's
global random state: a ``torch.Generator`` (training), or a ``RowGenerator`` whose draws for
a row depend only on that row (inference; see ``skmissvae.core.random``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .random import GeneratorLike, categorical, standard_normal

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)

__all__ = ["DiagNormal", "NormalMixture", "normal_log_density"]


def normal_log_density(x: Tensor, loc: Tensor, scale: Tensor) -> Tensor:
    """Elementwise log N(x; loc, scale**2) (no reduction)."""
    return -0.5 * ((x - loc) / scale) ** 2 - scale.log() - _LOG_SQRT_2PI


def _standard_normal(shape, like: Tensor, generator: GeneratorLike, row_dim: int) -> Tensor:
    return standard_normal(shape, generator, row_dim=row_dim, device=like.device, dtype=like.dtype)


class DiagNormal:
    """Diagonal Gaussian ``N(loc, diag(scale**2))`` over the last dimension.

    Parameters
    ----------
    loc, scale : Tensor of shape ``[B, d]``
    """

    def __init__(self, loc: Tensor, scale: Tensor) -> None:
        self.loc = loc
        self.scale = scale

    def rows(self, index: Tensor) -> "DiagNormal":
        """The distributions of the rows selected by ``index`` (a bool mask or indices)."""
        return DiagNormal(self.loc[index], self.scale[index])

    def detach(self) -> "DiagNormal":
        """The same distribution with parameters cut from the graph (for STL)."""
        return DiagNormal(self.loc.detach(), self.scale.detach())

    def rsample(self, sample_shape=(), generator: GeneratorLike = None) -> Tensor:
        """Reparameterised draws of shape ``sample_shape + [B, d]``.

        A ``RowGenerator`` is for the rows of ``loc``'s first dimension (``[B, ...]``).
        """
        sample_shape = torch.Size(sample_shape)
        shape = sample_shape + self.loc.shape
        eps = _standard_normal(shape, self.loc, generator, len(sample_shape))  # [*S, B, d]
        return self.loc + self.scale * eps

    def sample(self, sample_shape=(), generator: GeneratorLike = None) -> Tensor:
        """Draws without gradients, shape ``sample_shape + [B, d]``."""
        with torch.no_grad():
            return self.rsample(sample_shape, generator)

    def log_prob(self, z: Tensor) -> Tensor:
        """``log q(z)`` summed over the event dimension: ``[..., B, d] -> [..., B]``."""
        return normal_log_density(z, self.loc, self.scale).sum(-1)


class NormalMixture:
    """Mixture of diagonal Gaussians ``sum_k pi_k N(loc_k, diag(scale_k**2))``.

    Parameters
    ----------
    logits : Tensor of shape ``[B, K]``
        Unnormalised log mixture weights.
    loc, scale : Tensor of shape ``[B, K, d]``

    Notes
    -----
    ``rsample_ancestral`` draws ``k ~ Cat(pi)`` then ``z ~ N(loc_k, scale_k)`` and carries
    implicit-reparameterisation gradients (Figurnov et al., 2018; Graves, 2016) through the
    distributional transform of the mixture; ``rsample_choice_score`` makes the same draws
    reparameterised within their components and returns the log-weights of the drawn
    components, for a score-function gradient of the choice; ``rsample_stratified`` draws
    from every component with the ordinary reparameterisation trick (Simkus & Gutmann,
    2024, sec. 4).
    """

    def __init__(self, logits: Tensor, loc: Tensor, scale: Tensor) -> None:
        self.logits = logits
        self.loc = loc
        self.scale = scale

    @property
    def n_components(self) -> int:
        """Number of mixture components ``K``."""
        return self.loc.shape[-2]

    @property
    def log_weights(self) -> Tensor:
        """Normalised log mixture weights ``log pi``, shape ``[B, K]``."""
        return torch.log_softmax(self.logits, dim=-1)

    def rows(self, index: Tensor) -> "NormalMixture":
        """The mixtures of the rows selected by ``index`` (a bool mask or indices)."""
        return NormalMixture(self.logits[index], self.loc[index], self.scale[index])

    def detach(self) -> "NormalMixture":
        """The same mixture with parameters cut from the graph (for STL)."""
        return NormalMixture(self.logits.detach(), self.loc.detach(), self.scale.detach())

    # -- densities --------------------------------------------------------------------
    def component_log_prob(self, z: Tensor) -> Tensor:
        """``log N(z; loc_k, scale_k)`` for every component: ``[..., B, d] -> [..., B, K]``."""
        z = z.unsqueeze(-2)  # [..., B, 1, d]
        return normal_log_density(z, self.loc, self.scale).sum(-1)

    def log_prob(self, z: Tensor) -> Tensor:
        """Full mixture density ``log q_mix(z)``: ``[..., B, d] -> [..., B]``."""
        return torch.logsumexp(self.log_weights + self.component_log_prob(z), dim=-1)

    # -- sampling ---------------------------------------------------------------------
    def sample(self, sample_shape=(), generator: GeneratorLike = None) -> Tensor:
        """Ancestral draws without gradients, shape ``sample_shape + [B, d]``."""
        with torch.no_grad():
            return self._ancestral_draw(torch.Size(sample_shape), generator)[0]

    def _ancestral_draw(self, sample_shape: torch.Size, generator) -> tuple[Tensor, Tensor]:
        """Draws ``[*S, B, d]``, reparameterised within their components, and the drawn
        components ``[*S, B]`` (the choice itself carries no gradient)."""
        n_draws = max(1, math.prod(sample_shape))
        batch, _, dim = self.loc.shape
        probs = torch.softmax(self.logits.detach(), dim=-1)  # [B, K]
        k = categorical(probs, n_draws, generator).T.reshape(*sample_shape, batch)  # [*S, B]
        index = k[..., None, None].expand(*sample_shape, batch, 1, dim)
        loc = torch.gather(self.loc.expand(*sample_shape, *self.loc.shape), -2, index)
        scale = torch.gather(self.scale.expand(*sample_shape, *self.scale.shape), -2, index)
        eps = _standard_normal(loc.shape, loc, generator, len(sample_shape))  # [*S, B, 1, d]
        return (loc + scale * eps).squeeze(-2), k  # [*S, B, d], [*S, B]

    def rsample_choice_score(self, sample_shape=(), generator: GeneratorLike = None) -> tuple[Tensor, Tensor]:
        """Ancestral draws for score-function gradients of the component choice.

        Returns the draws ``z`` (``sample_shape + [B, d]``), reparameterised within their
        components, and ``log pi_k`` of the drawn components (``sample_shape + [B]``),
        attached to the graph. An objective ``f(z)`` then has the unbiased gradient of
        ``E_q[f]`` from ``f(z) + log pi_k * sg(f(z) - b)`` for any baseline ``b`` that does
        not depend on the draw (Williams, 1992); the path gradient reaches only the drawn
        component's ``loc`` and ``scale``.
        """
        sample_shape = torch.Size(sample_shape)
        z, k = self._ancestral_draw(sample_shape, generator)
        log_pi = self.log_weights.expand(*sample_shape, *self.logits.shape)  # [*S, B, K]
        return z, torch.gather(log_pi, -1, k.unsqueeze(-1)).squeeze(-1)

    def rsample_stratified(self, sample_shape=(), generator: GeneratorLike = None) -> Tensor:
        """Reparameterised draws from every component: ``sample_shape + [K, B, d]``."""
        sample_shape = torch.Size(sample_shape)
        loc = self.loc.transpose(-3, -2)  # [K, B, d]
        scale = self.scale.transpose(-3, -2)
        eps = _standard_normal(sample_shape + loc.shape, loc, generator, len(sample_shape) + 1)
        return loc + scale * eps  # [*S, K, B, d]

    def rsample_ancestral(self, sample_shape=(), generator: GeneratorLike = None) -> Tensor:
        """Ancestral draws with implicit-reparameterisation gradients.

        The forward value is an exact ancestral draw ``z``. Its gradient with respect to
        ``(logits, loc, scale)`` is ``-J^{-1} dT/dparams`` where ``T`` is the mixture's
        distributional transform (a triangular map to ``U(0,1)^d``) and ``J = dT/dz``, computed
        in closed form and solved as a batched lower-triangular system.
        """
        sample_shape = torch.Size(sample_shape)
        with torch.no_grad():
            z = self._ancestral_draw(sample_shape, generator)[0]  # [*S, B, d]
        if not (self.logits.requires_grad or self.loc.requires_grad or self.scale.requires_grad):
            return z
        transform, jacobian = self._distributional_transform(z)
        # Solve J u = T for u; only the gradient of -u matters (J is detached).
        u = torch.linalg.solve_triangular(
            jacobian.detach(), transform.unsqueeze(-1), upper=False
        ).squeeze(-1)
        return z - (u - u.detach())

    def _distributional_transform(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """``T(z)`` (with graph to the parameters) and its lower-triangular Jacobian in z.

        ``T_i(z) = sum_k w_ik Phi(u_ki)``, ``u_ki = (z_i - loc_ki) / scale_ki`` and
        ``w_ik = softmax_k(log pi_k + sum_{j<i} log N(z_j; loc_kj, scale_kj))``.
        """
        z = z.unsqueeze(-2)  # [..., B, 1, d]
        u = (z - self.loc) / self.scale  # [..., B, K, d]
        log_dens = -0.5 * u**2 - self.scale.log() - _LOG_SQRT_2PI  # [..., B, K, d]
        # Exclusive cumulative sum over dims: conditioning on z_<i.
        prefix = torch.cumsum(log_dens, dim=-1) - log_dens
        w = torch.softmax(self.log_weights.unsqueeze(-1) + prefix, dim=-2)  # [..., B, K, d]
        cdf = torch.special.ndtr(u)  # [..., B, K, d]
        transform = (w * cdf).sum(-2)  # [..., B, d]

        with torch.no_grad():
            w_, cdf_, u_, scale_ = w.detach(), cdf.detach(), u.detach(), self.scale.detach()
            # Diagonal: the conditional density q(z_i | z_<i).
            diag = (w_ * torch.exp(-0.5 * u_**2 - _LOG_SQRT_2PI) / scale_).sum(-2)
            # Off-diagonal (j < i): sum_k dw_ik/dz_j Phi_ki with dlog a_ik/dz_j = g_kj.
            g = -u_ / scale_  # [..., B, K, d(j)]
            wt = w_.transpose(-2, -1)  # [..., B, d(i), K]
            a = (wt * cdf_.transpose(-2, -1)) @ g  # [..., B, d(i), d(j)]
            g_bar = wt @ g  # [..., B, d(i), d(j)]
            off = a - transform.detach().unsqueeze(-1) * g_bar
            jacobian = torch.tril(off, diagonal=-1) + torch.diag_embed(diag.clamp_min(1e-30))
        return transform, jacobian
