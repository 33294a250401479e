"""The VAE: standard-normal prior, (mixture) encoder, factorised decoder -> log-weights.

``MissingDataVAE`` holds the networks and turns a batch ``(x_filled, observed)`` into
variational distributions and log-weights ``log p(x_o, z) - log sg q(z)``;
``finite_mixture_objective`` composes sampling and the bounds of
``skmissvae.core.objectives`` into the per-row training objective of the six
finite-mixture methods (MVAE, MIWAE, MissVAE, MissSVAE, MissIWAE, MissSIWAE).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import objectives
from .families import DiagNormal, NormalMixture
from .likelihoods import SCALE_FLOOR, GaussianLikelihood
from .networks import ResidualMLP

__all__ = ["MissingDataVAE", "finite_mixture_objective", "standard_normal_log_prob"]

_LOG_2PI = math.log(2 * math.pi)


def standard_normal_log_prob(z: Tensor) -> Tensor:
    """Prior ``log N(z; 0, I)``: ``[..., d] -> [...]``."""
    return -0.5 * (z**2).sum(-1) - 0.5 * z.shape[-1] * _LOG_2PI


class MissingDataVAE(nn.Module):
    """VAE for incomplete data with a ``K``-component diagonal-Gaussian encoder.

    Parameters
    ----------
    n_features : int
        ``D``.
    latent_dim : int
        ``d``.
    n_components : int
        ``K``; with ``K=1`` the encoder is a plain diagonal Gaussian.
    width, n_blocks, dropout : network size (see ``ResidualMLP``).
    encoder_uses_mask : bool
        Feed ``concat([x_filled, observed])`` (True) or ``x_filled`` alone to the encoder.
    generator : torch.Generator, optional
        Source of the initial weights.
    likelihood : optional
        Observation model with the interface of ``GaussianLikelihood`` (``log_prob``,
        ``log_prob_elementwise``, ``mean``, ``sample``, ``output_size``), e.g. a
        ``MixedLikelihood`` for mixed-type tables; the decoder has
        ``likelihood.output_size(n_features)`` outputs. Default: ``GaussianLikelihood()``.
    """

    def __init__(
        self,
        n_features: int,
        latent_dim: int,
        n_components: int = 1,
        width: int = 256,
        n_blocks: int = 2,
        dropout: float = 0.0,
        encoder_uses_mask: bool = True,
        generator: torch.Generator | None = None,
        likelihood=None,
    ) -> None:
        super().__init__()
        self.n_features = n_features
        self.latent_dim = latent_dim
        self.n_components = n_components
        self.encoder_uses_mask = encoder_uses_mask
        self.likelihood = GaussianLikelihood() if likelihood is None else likelihood
        n_in = 2 * n_features if encoder_uses_mask else n_features
        n_out = n_components * 2 * latent_dim + (n_components if n_components > 1 else 0)
        self.encoder = ResidualMLP(n_in, n_out, width, n_blocks, dropout, generator)
        n_outputs = self.likelihood.output_size(n_features)
        self.decoder = ResidualMLP(latent_dim, n_outputs, width, n_blocks, dropout, generator)

    def encode(
        self, x_filled: Tensor, observed: Tensor, generator: torch.Generator | None = None
    ) -> DiagNormal | NormalMixture:
        """``q(z | x_o)`` for a batch ``[B, D]``: DiagNormal (K=1) or NormalMixture."""
        inputs = torch.cat([x_filled, observed.to(x_filled.dtype)], -1) if self.encoder_uses_mask else x_filled
        h = self.encoder(inputs, generator)
        batch, k, d = x_filled.shape[:-1], self.n_components, self.latent_dim
        params = h[..., : 2 * k * d].reshape(*batch, k, 2 * d)
        loc, scale = params[..., :d], F.softplus(params[..., d:]) + SCALE_FLOOR
        if k == 1:
            return DiagNormal(loc.squeeze(-2), scale.squeeze(-2))
        return NormalMixture(h[..., 2 * k * d :], loc, scale)

    def decode(self, z: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Raw decoder output ``[..., B, n_outputs]`` for latents ``[..., B, d]``
        (``n_outputs = likelihood.output_size(D)``, ``2 D`` for the Gaussian)."""
        return self.decoder(z, generator)

    def log_joint(
        self, x_filled: Tensor, observed: Tensor, z: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        """``log p(x_o | z) + log p(z)``: latents ``[..., B, d]`` -> ``[..., B]``."""
        h = self.decode(z, generator)
        return self.likelihood.log_prob(x_filled, observed, h) + standard_normal_log_prob(z)

    def log_weights(
        self,
        x_filled: Tensor,
        observed: Tensor,
        z: Tensor,
        q: DiagNormal | NormalMixture,
        generator: torch.Generator | None = None,
        stl: bool = True,
    ) -> Tensor:
        """Log-weights ``log p(x_o, z) - log q(z)``: ``[..., B, d] -> [..., B]``.

        With ``stl`` (sticking the landing, Roeder et al., 2017) ``q``'s parameters are cut
        from the graph in ``log q``, so the encoder gets path derivatives only; otherwise
        the gradient is the total reparameterisation gradient.
        """
        density = q.detach() if stl else q
        return self.log_joint(x_filled, observed, z, generator) - density.log_prob(z)


def finite_mixture_objective(
    model: MissingDataVAE,
    x_filled: Tensor,
    observed: Tensor,
    *,
    objective: str = "iwelbo",
    sampling: str = "stratified",
    n_particles: int = 5,
    dreg: bool = False,
    stl: bool = True,
    choice_gradient: str = "implicit",
    generator: torch.Generator | None = None,
) -> Tensor:
    """Per-row training objective of MVAE/MIWAE/MissVAE/MissSVAE/MissIWAE/MissSIWAE.

    Parameters
    ----------
    objective : {"elbo", "iwelbo"}
    sampling : {"ancestral", "stratified"}
        Ignored when the encoder has one component.
    n_particles : int
        Latent draws per row; stratified sampling draws ``n_particles // K`` per component.
    dreg : bool
        Doubly-reparameterised encoder gradients (Tucker et al., 2018) for ``"iwelbo"``
        with a single-component or ancestral encoder (builds on STL weights).
    stl : bool
        Sticking-the-landing encoder gradients (default); False gives the total
        reparameterisation gradient, score term of ``log q`` included.
    choice_gradient : {"implicit", "score"}
        How ancestral draws from a mixture pass gradients to the mixture weights:
        implicit reparameterisation through the mixture's distributional transform (the
        paper's), or the score function of the component choice with a leave-one-out
        baseline (``objectives.choice_signal``), the draws then reparameterised within
        their components. Ignored for stratified sampling and a single Gaussian.

    Returns
    -------
    Tensor ``[B]``
    """
    if objective not in ("elbo", "iwelbo") or sampling not in ("ancestral", "stratified"):
        raise ValueError(f"Unknown objective {objective!r} or sampling {sampling!r}.")
    if choice_gradient not in ("implicit", "score"):
        raise ValueError(f"Unknown choice_gradient {choice_gradient!r}.")
    q = model.encode(x_filled, observed, generator)
    stratified = isinstance(q, NormalMixture) and sampling == "stratified"
    score_choice = isinstance(q, NormalMixture) and not stratified and choice_gradient == "score"
    if dreg and (objective != "iwelbo" or stratified or not stl or score_choice):
        raise ValueError(
            "DReG applies to the IWELBO with STL and a Gaussian encoder or an ancestral one "
            "with implicit reparameterisation."
        )
    if stratified:
        per_component = n_particles // q.n_components
        if per_component < 1 or n_particles % q.n_components:
            raise ValueError(
                f"Stratified sampling needs n_particles ({n_particles}) to be a positive "
                f"multiple of the number of components ({q.n_components})."
            )
        z = q.rsample_stratified((per_component,), generator)  # [I, K, B, d]
        log_w = model.log_weights(x_filled, observed, z, q, generator, stl)  # [I, K, B]
        bound = objectives.stratified_iwelbo if objective == "iwelbo" else objectives.stratified_elbo
        return bound(log_w, q.log_weights)

    log_pi = None
    if score_choice:
        z, log_pi = q.rsample_choice_score((n_particles,), generator)  # [S, B, d], [S, B]
    elif isinstance(q, NormalMixture):
        z = q.rsample_ancestral((n_particles,), generator)  # [S, B, d]
    else:
        z = q.rsample((n_particles,), generator)  # [S, B, d]
    log_w = model.log_weights(x_filled, observed, z, q, generator, stl)  # [S, B]
    if dreg and z.requires_grad:
        # DReG: scale the path gradient reaching z_i by its normalised weight once more,
        # turning the STL weights w~_i into w~_i**2 (Tucker et al., 2018, eq. 6).
        weights = torch.softmax(log_w.detach(), dim=0).unsqueeze(-1)  # [S, B, 1]
        z.register_hook(lambda grad: grad * weights)
    bound = objectives.elbo(log_w) if objective == "elbo" else objectives.iwelbo(log_w)
    if log_pi is None:
        return bound
    # Adds the score-function gradient of the choices and leaves the value unchanged.
    surrogate = (log_pi * objectives.choice_signal(log_w.detach(), objective)).sum(0)
    return bound + (surrogate - surrogate.detach())


# ---------------------------------------------------------------------------------------
# DeMissVAE (Simkus & Gutmann, 2024, sec. 5)
# ---------------------------------------------------------------------------------------

__all__ += ["demissvae_objectives", "demissvae_backward"]


def demissvae_objectives(
    model: MissingDataVAE,
    x_imputed: Tensor,
    observed: Tensor,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """The two per-row DeMissVAE objectives from one forward pass.

    Each imputation ``x~_k`` (``k = 1..K``) is encoded as if complete, ``q_k = q(z | x~_k)``,
    and one reparameterised ``z_k ~ q_k`` is drawn. Then

    * decoder objective (for ``theta``): the ELBO of the observed data under the imputation
      mixture ``q_mix = (1/K) sum_j q_j`` with one stratified sample per component,
      ``L_theta = (1/K) sum_k [log p(x_o | z_k) + log p(z_k) - log sg(q_mix)(z_k)]``
      (observed dimensions only);
    * encoder objective (for ``phi``): the complete-data ELBO of each imputation with STL,
      ``L_phi = (1/K) sum_k [log p(x~_k | z_k) + log p(z_k) - log sg(q_k)(z_k)]``
      (all dimensions).

    Both share the encoder and decoder passes; route their gradients with
    ``demissvae_backward`` so that each reaches only its own network.

    Parameters
    ----------
    model : MissingDataVAE
        With ``n_components=1``.
    x_imputed : Tensor ``[B, K, D]``
        Imputed copies of the rows (observed entries equal in all copies).
    observed : Tensor ``[B, D]``

    Returns
    -------
    decoder_objective, encoder_objective : Tensor ``[B]``
    """
    if model.n_components != 1:
        raise ValueError("DeMissVAE needs a single-Gaussian encoder (n_components=1).")
    batch, n_imp, _ = x_imputed.shape
    observed_k = observed.unsqueeze(1).expand_as(x_imputed)  # [B, K, D]
    q = model.encode(x_imputed, observed_k, generator)  # loc, scale [B, K, d]
    z = q.rsample((), generator).transpose(0, 1)  # [K, B, d]
    h = model.decode(z, generator)  # [K, B, n_params * D]
    per_feature = model.likelihood.log_prob_elementwise(x_imputed.transpose(0, 1), h)  # [K, B, D]
    log_prior = standard_normal_log_prob(z)  # [K, B]

    loc, scale = q.loc.detach(), q.scale.detach()  # [B, K, d]
    mixture = NormalMixture(loc.new_zeros(batch, n_imp), loc, scale)
    log_q_mix = mixture.log_prob(z)  # [K, B]
    log_q_own = DiagNormal(loc.transpose(0, 1), scale.transpose(0, 1)).log_prob(z)  # [K, B]

    decoder_log_w = (per_feature * observed).sum(-1) + log_prior - log_q_mix  # [K, B]
    encoder_log_w = per_feature.sum(-1) + log_prior - log_q_own  # [K, B]
    return objectives.elbo(decoder_log_w), objectives.elbo(encoder_log_w)


def demissvae_backward(
    decoder_objective: Tensor,
    encoder_objective: Tensor,
    decoder_parameters: list[nn.Parameter],
    encoder_parameters: list[nn.Parameter],
) -> None:
    """Accumulate ``-mean`` gradients: decoder objective -> decoder parameters only,
    encoder objective -> encoder parameters only (Simkus & Gutmann, 2024, sec. 5).

    ``backward(inputs=...)`` restricts each pass to its own parameters, so the decoder
    objective's path through ``z`` into the encoder and the encoder objective's path into
    the decoder weights are never accumulated. Clipping and the optimiser step are the
    caller's (one joint clip, one step).
    """
    (-decoder_objective.mean()).backward(inputs=decoder_parameters, retain_graph=True)
    (-encoder_objective.mean()).backward(inputs=encoder_parameters)
