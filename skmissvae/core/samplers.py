"""Importance sampling with a trained model: log-likelihood, conditional mean, resampling.

All functions run without gradients, take a proposal ``q`` (any family with ``sample`` and
``log_prob``, e.g. the encoder's output or a DeMissVAE imputation mixture) and an explicit
generator, and never modify the observed entries of their inputs.

The generator is a ``torch.Generator`` (one stream for the whole batch, as in training) or
a ``RowGenerator`` for the batch's rows (``skmissvae.core.random``): then every draw of a
row, hence its result, depends only on the generator's seed and that row, never on the
other rows of the batch, their order or their number.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .families import DiagNormal, NormalMixture
from .model import MissingDataVAE, standard_normal_log_prob
from .random import GeneratorLike, RowGenerator, categorical, uniform

__all__ = [
    "ImportanceEstimates",
    "adaptive_importance_sampling",
    "importance_log_likelihood",
    "importance_conditional_mean",
    "importance_resample",
]

Proposal = DiagNormal | NormalMixture


def _log_weights(model, x_filled, observed, q, n_samples, generator) -> tuple[Tensor, Tensor, Tensor]:
    z = q.sample((n_samples,), generator)  # [S, B, d]
    h = model.decode(z, generator)  # [S, B, n_params * D]
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
    generator: GeneratorLike = None,
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
        # Reduced along a contiguous last dimension, so that a row's sum does not depend
        # on how many rows the batch holds (strided reductions are vectorised across rows).
        chunk = torch.logsumexp(log_w.T.contiguous(), dim=-1)  # [B]
        total = chunk if total is None else torch.logaddexp(total, chunk)
    return total - math.log(n_samples)


@torch.no_grad()
def importance_conditional_mean(
    model: MissingDataVAE,
    x_filled: Tensor,
    observed: Tensor,
    q: Proposal,
    n_samples: int,
    generator: GeneratorLike = None,
) -> Tensor:
    """Self-normalised estimate of ``E[x | x_o]``: ``sum_i w~_i E[x | z_i]``, shape ``[B, D]``.

    Observed entries of the result are copied from ``x_filled``.
    """
    _, h, log_w = _log_weights(model, x_filled, observed, q, n_samples, generator)
    # A NaN weight counts as zero; a row with none usable gets equal weights (never NaN).
    log_w = torch.nan_to_num(log_w, nan=-math.inf)
    log_w = torch.where(torch.isfinite(log_w).any(0, keepdim=True), log_w, 0.0)
    # Reduced along a contiguous last dimension (samples), as in importance_log_likelihood.
    weights = torch.softmax(log_w.T.contiguous(), dim=-1).unsqueeze(1)  # [B, 1, S]
    means = model.likelihood.mean(h).permute(1, 2, 0).contiguous()  # [B, D, S]
    mean = (weights * means).sum(-1)  # [B, D]
    return torch.where(observed, x_filled, mean)


@torch.no_grad()
def importance_resample(
    model: MissingDataVAE,
    x_filled: Tensor,
    observed: Tensor,
    q: Proposal,
    n_samples: int,
    n_draws: int,
    generator: GeneratorLike = None,
) -> Tensor:
    """Sampling-importance-resampling draws of ``x_m ~ p(x_m | x_o)``: ``[M, B, D]``.

    ``n_samples`` latents are drawn from ``q``, ``n_draws`` of them resampled per row with
    probabilities ``softmax(log w)``, decoded, and the missing entries sampled.
    """
    z, _, log_w = _log_weights(model, x_filled, observed, q, n_samples, generator)
    index = _resample_indices(log_w, n_draws, generator)  # [B, M]
    rows = torch.arange(z.shape[1], device=z.device)
    chosen = z[index.T, rows]  # [M, B, d]
    x_sampled = model.likelihood.sample(model.decode(chosen, generator), generator)  # [M, B, D]
    return torch.where(observed, x_filled, x_sampled)


class ImportanceEstimates:
    """What ``adaptive_importance_sampling`` returns for a batch of ``B`` rows.

    Attributes
    ----------
    log_likelihood : Tensor ``[B]``
        ``log((1/S) sum_i w_i)``, the importance-weighted bound on ``log p(x_o)`` with the
        row's ``S`` draws (``-inf`` for a row without a usable weight).
    mean : Tensor ``[B, D]`` or None
        Self-normalised ``E[x | x_o]``, observed entries copied from the input.
    draws : Tensor ``[M, B, d]`` or None
        Latents resampled with probabilities ``w_i / sum_j w_j`` (sampling-importance
        resampling over all of the row's draws).
    n_samples : Tensor ``[B]`` (long)
        Draws taken per row.
    effective_sample_size : Tensor ``[B]``
        ``(sum_i w_i)^2 / sum_i w_i^2``.
    """

    def __init__(self, log_likelihood, mean, draws, n_samples, effective_sample_size) -> None:
        self.log_likelihood = log_likelihood
        self.mean = mean
        self.draws = draws
        self.n_samples = n_samples
        self.effective_sample_size = effective_sample_size


@torch.no_grad()
def adaptive_importance_sampling(
    model: MissingDataVAE,
    x_filled: Tensor,
    observed: Tensor,
    q: Proposal,
    *,
    max_samples: int,
    min_effective_samples: float | None = None,
    chunk_size: int = 32,
    n_draws: int = 0,
    conditional_mean: bool = False,
    generator: GeneratorLike = None,
) -> ImportanceEstimates:
    """Importance sampling from ``q`` in rounds of ``chunk_size`` draws per row, each row
    stopping once its effective sample size reaches ``min_effective_samples`` (or after
    ``max_samples`` draws).

    The weights are accumulated on the fly (running log-sum-exp, weighted sums of the
    decoder's means and streaming resampling), so memory is bounded by one round whatever
    ``max_samples``. Each round draws from a generator of its own (``spawn``), so with a
    ``RowGenerator`` a row's draws, and where it stops, depend only on that row.

    Parameters
    ----------
    model, x_filled ``[B, D]``, observed ``[B, D]``, q : as ``importance_log_likelihood``
    max_samples : int
        Draws per row at most.
    min_effective_samples : float, optional
        Stop a row when ``(sum w)^2 / sum w^2`` reaches it; None draws ``max_samples``.
    n_draws : int
        Latents to resample per row (``ImportanceEstimates.draws``); 0 for none.
    conditional_mean : bool
        Also estimate ``E[x | x_o]``.
    """
    batch, device = len(x_filled), x_filled.device
    running_max = torch.full((batch,), -math.inf, dtype=torch.float64, device=device)
    sum_w = torch.zeros(batch, dtype=torch.float64, device=device)  # relative to running_max
    sum_w2 = torch.zeros_like(sum_w)
    n_taken = torch.zeros(batch, dtype=torch.long, device=device)
    mean_sum = torch.zeros(x_filled.shape, dtype=torch.float64, device=device) if conditional_mean else None
    chosen = x_filled.new_zeros((batch, n_draws, model.latent_dim)) if n_draws else None
    active = torch.ones(batch, dtype=torch.bool, device=device)
    # The rounds draw from a child stream: the caller's generator advances by one call
    # whatever the number of rounds the batch's slowest row needs.
    rounds = generator.spawn() if isinstance(generator, RowGenerator) else generator
    while bool(active.any()):
        round_generator = rounds.spawn() if isinstance(rounds, RowGenerator) else rounds
        rows = torch.nonzero(active).squeeze(1)
        if isinstance(round_generator, RowGenerator):
            round_generator = round_generator.subset(rows)
        n = min(chunk_size, max_samples - int(n_taken[rows].min()))
        # Decoded in a multiple of 16 draws (matrix shapes that do not depend on the number
        # of rows, see skmissvae.core.networks); the extra draws are dropped.
        z, h, log_w = _log_weights(model, x_filled[rows], observed[rows], q.rows(rows), -(-n // 16) * 16,
                                   round_generator)
        z, h, log_w = z[:n], h[:n], log_w[:n]
        # Rows along dim 0 and draws along a contiguous last dimension, so that a row's sums
        # do not depend on how many rows the round holds.
        log_w = torch.nan_to_num(log_w.T.double().contiguous(), nan=-math.inf)  # [b, n]
        new_max = torch.maximum(running_max[rows], log_w.max(-1).values)  # [b]
        finite = torch.isfinite(new_max)
        shift = torch.where(finite, running_max[rows] - new_max, 0.0).exp()  # rescales old sums
        w = torch.where(finite.unsqueeze(1), (log_w - new_max.unsqueeze(1)).exp(), 0.0)  # [b, n]
        chunk_w = w.sum(-1)
        sum_w[rows] = sum_w[rows] * shift + chunk_w
        sum_w2[rows] = sum_w2[rows] * shift**2 + (w**2).sum(-1)
        running_max[rows] = new_max
        if conditional_mean:
            means = model.likelihood.mean(h).permute(1, 2, 0).double().contiguous()  # [b, D, n]
            mean_sum[rows] = mean_sum[rows] * shift.unsqueeze(1) + (means * w.unsqueeze(1)).sum(-1)
        if n_draws:
            chosen[rows] = _streaming_resample(chosen[rows], z.transpose(0, 1), w, chunk_w, sum_w[rows],
                                               n_draws, round_generator)
        n_taken[rows] += n
        ess = sum_w**2 / sum_w2.clamp_min(1e-300)
        active = n_taken < max_samples
        if min_effective_samples is not None:
            active &= ~(ess >= min_effective_samples)
    log_likelihood = torch.where(sum_w > 0, running_max + sum_w.log() - n_taken.double().log(), -math.inf)
    mean = None
    if conditional_mean:
        usable = (sum_w > 0).unsqueeze(1)
        mean = torch.where(usable, mean_sum / sum_w.clamp_min(1e-300).unsqueeze(1), 0.0).to(x_filled.dtype)
        mean = torch.where(observed, x_filled, mean)
    draws = chosen.transpose(0, 1) if n_draws else None  # [M, B, d]
    return ImportanceEstimates(log_likelihood, mean, draws, n_taken, sum_w**2 / sum_w2.clamp_min(1e-300))


def _streaming_resample(current, z, w, chunk_w, total_w, n_draws, generator) -> Tensor:
    """One round of weighted reservoir resampling: each of the ``M`` picks ``[b, M, d]``
    moves to a draw of this round ``z [b, n, d]`` with probability ``chunk_w / total_w``,
    chosen within the round by ``w [b, n]``. Over all rounds, each pick is a draw with
    probability proportional to its weight (multinomial resampling of the pooled draws).
    """
    replace = uniform((len(w), n_draws), generator, row_dim=0, device=w.device,
                      dtype=torch.float64) * total_w.unsqueeze(1) < chunk_w.unsqueeze(1)  # [b, M]
    # A round without usable weights keeps the picks; the first round always replaces.
    weights = torch.where((chunk_w > 0).unsqueeze(1), w, 1.0)
    index = categorical(weights, n_draws, generator)  # [b, M]
    candidate = torch.gather(z, 1, index.unsqueeze(-1).expand(-1, -1, z.shape[-1]))  # [b, M, d]
    first = (total_w == chunk_w).unsqueeze(1)  # nothing picked before this round
    return torch.where((replace | first).unsqueeze(-1), candidate, current)


# ---------------------------------------------------------------------------------------
# DeMissVAE imputation samplers (Simkus & Gutmann, 2024, sec. 5)
#
# Imputations are held batch-first, ``x_imputed`` of shape ``[B, K, D]`` (the layout of
# the DeMissVAE imputation store ``[N, K, D]``), with one shared mask ``observed [B, D]``.
# The samplers run without gradients, draw only from an explicit generator and replace
# nothing but the missing entries: observed entries of the output are the input's, bit for
# bit (``torch.where`` copies them). A ``RowGenerator`` is for the rows ``B``.
# ---------------------------------------------------------------------------------------

__all__ += [
    "column_pools",
    "empirical_imputations",
    "pseudo_gibbs",
    "lair",
    "imputation_mixture",
]


def column_pools(
    x_filled: Tensor,
    observed: Tensor,
    max_size: int | None = None,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Per-column pools of observed values, for empirical initial imputations.

    Parameters
    ----------
    x_filled, observed : Tensor ``[N, D]``
        Zero-filled data and its observed-mask.
    max_size : int, optional
        Keep at most this many values per column: a uniform random subset (without
        replacement) of each column's observed values, drawn with ``generator``. ``None``
        keeps them all, in row order.

    Returns
    -------
    pool : Tensor ``[P, D]``
        Column ``d``'s observed values are ``pool[:counts[d], d]``; the rest is padding.
        ``P >= 1`` (a column with no observed value has count 0).
    counts : Tensor ``[D]`` (long)
    """
    if max_size is not None:
        device = generator.device if generator is not None else x_filled.device
        perm = torch.randperm(len(x_filled), generator=generator, device=device).to(x_filled.device)
        x_filled, observed = x_filled[perm], observed[perm]
    # A stable sort on "is missing" moves each column's observed values to the top, in order.
    order = torch.argsort((~observed).to(torch.int32), dim=0, stable=True)  # [N, D]
    pool = torch.gather(x_filled, 0, order)  # [N, D]
    counts = observed.sum(0)  # [D]
    if max_size is not None:
        pool, counts = pool[:max_size], counts.clamp(max=max_size)
    pool = pool[: max(1, int(counts.max()))]  # drop rows that are padding in every column
    if len(pool) == 0:  # no rows at all: one row of padding keeps indexing valid
        pool = x_filled.new_zeros((1, x_filled.shape[1]))
    return pool, counts


@torch.no_grad()
def empirical_imputations(
    x_filled: Tensor,
    observed: Tensor,
    pool: Tensor,
    counts: Tensor,
    n_imputations: int,
    generator: GeneratorLike = None,
    groups: Tensor | None = None,
) -> Tensor:
    """``K`` imputed copies of each row, missing entries drawn from their column's pool.

    Each missing entry of column ``d`` is drawn uniformly, with replacement, from
    ``pool[:counts[d], d]`` (the "empirical" initialisation of DeMissVAE); columns with an
    empty pool are filled with 0 (the mean, in standardised units).

    Parameters
    ----------
    x_filled, observed : Tensor ``[B, D]``
    pool, counts : see ``column_pools``
    n_imputations : int
        ``K``.
    groups : Tensor ``[D]`` (long), optional
        Group id per column (``MixedLikelihood.column_groups``). Columns of one group share
        one draw of the pool row, so the one-hot block of a categorical variable (observed
        or missing as a whole, hence pooled in the same row order) is filled with one
        observed one-hot vector, never a mix of rows. ``None``: every column on its own.

    Returns
    -------
    Tensor ``[B, K, D]``
    """
    batch, n_features = x_filled.shape
    device = x_filled.device
    if groups is None:
        shape = (batch, n_imputations, n_features)
        u = uniform(shape, generator, row_dim=0, device=device, dtype=torch.float64)  # [B, K, D]
    else:
        groups = groups.to(device)
        n_groups = int(groups.max()) + 1 if len(groups) else 0
        shape = (batch, n_imputations, n_groups)
        u = uniform(shape, generator, row_dim=0, device=device, dtype=torch.float64)
        u = u[..., groups]  # [B, K, D]: one uniform per group, shared by its columns
    counts = counts.to(x_filled.device)
    index = torch.minimum((u * counts).long(), (counts - 1).clamp(min=0))  # [B, K, D]
    columns = torch.arange(n_features, device=x_filled.device)
    values = pool.to(x_filled)[index, columns]  # [B, K, D]
    values = torch.where(counts > 0, values, torch.zeros_like(values))
    return torch.where(observed.unsqueeze(1), x_filled.unsqueeze(1), values)


def _keep_observed(x_imputed: Tensor, observed: Tensor, x_new: Tensor) -> Tensor:
    """Write ``x_new`` into the missing entries; a non-finite draw keeps the old value."""
    x_new = torch.where(torch.isfinite(x_new), x_new, x_imputed)
    return torch.where(observed.unsqueeze(1), x_imputed, x_new)  # [B, K, D]


def _resample_indices(log_w: Tensor, n_draws: int, generator: GeneratorLike) -> Tensor:
    """Multinomial resampling of ``n_draws`` candidates per row: ``[C, B] -> [B, n_draws]``.

    NaN log-weights count as zero weight; a row with no usable weight is resampled
    uniformly (rather than raising inside ``torch.multinomial``).
    """
    log_w = torch.nan_to_num(log_w.T, nan=-math.inf)  # [B, C]
    probs = torch.softmax(log_w, dim=-1)
    usable = torch.isfinite(probs).all(-1, keepdim=True) & (probs.sum(-1, keepdim=True) > 0)
    probs = torch.where(usable, probs, torch.ones_like(probs))
    return categorical(probs, n_draws, generator)


@torch.no_grad()
def pseudo_gibbs(
    model: MissingDataVAE,
    x_imputed: Tensor,
    observed: Tensor,
    n_steps: int = 1,
    generator: GeneratorLike = None,
) -> Tensor:
    """Pseudo-Gibbs updates of DeMissVAE imputations (Rezende et al., 2014).

    Per step and imputation ``k``: ``z ~ q(z | x~_k)``, ``x^ ~ p(x | z)``,
    ``x~_k,m <- x^_m``. Fast, but can be unstable on continuous data (Simkus & Gutmann,
    2024, sec. 5); non-finite draws keep the previous value.

    Parameters
    ----------
    model : MissingDataVAE
        With a single-Gaussian encoder; use it in eval mode (dropout off).
    x_imputed : Tensor ``[B, K, D]``
    observed : Tensor ``[B, D]``
    n_steps : int

    Returns
    -------
    Tensor ``[B, K, D]``
        New imputations; the input is not modified.
    """
    observed_k = observed.unsqueeze(1).expand_as(x_imputed)  # [B, K, D]
    for _ in range(n_steps):
        q = model.encode(x_imputed, observed_k, generator)  # loc [B, K, d]
        z = q.sample((), generator)  # [B, K, d]
        h = model.decode(z, generator)  # [B, K, n_params * D]
        x_new = model.likelihood.sample(h, generator, row_dim=0)  # [B, K, D]
        x_imputed = _keep_observed(x_imputed, observed, x_new)
    return x_imputed


def imputation_mixture(
    model: MissingDataVAE,
    x_imputed: Tensor,
    observed: Tensor,
    n_prior_components: int = 0,
    generator: GeneratorLike = None,
) -> NormalMixture:
    """The imputation mixture ``(1/(K+R)) [sum_j q(z | x~_j) + R N(0, I)]``.

    With ``n_prior_components=0`` this is DeMissVAE's variational mixture
    ``q_mix(z | x_o)``; LAIR adds ``R`` standard-normal components as defensive proposals.
    Returns a ``NormalMixture`` with zero logits, ``loc`` and ``scale`` ``[B, K+R, d]``.
    """
    observed_k = observed.unsqueeze(1).expand_as(x_imputed)
    q = model.encode(x_imputed, observed_k, generator)  # loc, scale [B, K, d]
    loc, scale = q.loc, q.scale
    if n_prior_components:
        batch, _, dim = loc.shape
        shape = (batch, n_prior_components, dim)
        loc = torch.cat([loc, loc.new_zeros(shape)], dim=1)  # [B, K+R, d]
        scale = torch.cat([scale, scale.new_ones(shape)], dim=1)
    logits = loc.new_zeros(loc.shape[:2])  # [B, K+R]
    return NormalMixture(logits, loc, scale)


@torch.no_grad()
def lair(
    model: MissingDataVAE,
    x_imputed: Tensor,
    observed: Tensor,
    n_iterations: int = 10,
    n_samples_per_proposal: int = 1,
    n_prior_proposals: int = 1,
    final_resampling: bool = True,
    generator: GeneratorLike = None,
) -> Tensor:
    """Latent-adaptive importance resampling (LAIR) of DeMissVAE imputations.

    One iteration on a row with imputations ``x~_1..K`` (Simkus & Gutmann, 2024, sec. 5):

    1. proposals ``q_j = q(z | x~_j)``, ``j = 1..K``, plus ``R`` copies of the prior;
    2. ``I`` draws from each of the ``K + R`` proposals (stratified);
    3. deterministic-mixture weights
       ``log w(z) = log p(x_o | z) + log p(z) - log[(1/(K+R)) sum_j q_j(z)]``;
    4. ``K`` of the row's ``I (K+R)`` candidates resampled with probabilities
       ``softmax(log w)`` (global resampling);
    5. each selected ``z`` decoded and ``x^ ~ p(x | z)`` drawn; ``x~_k,m <- x^_m``.

    With ``final_resampling`` the last step of the last iteration instead resamples ``K``
    latents from the pooled candidates of all ``n_iterations`` iterations (each with its
    own weight). Work is batched over rows, imputations and candidates.

    Parameters
    ----------
    model : MissingDataVAE
        With a single-Gaussian encoder; use it in eval mode (dropout off).
    x_imputed : Tensor ``[B, K, D]``
    observed : Tensor ``[B, D]``
    n_iterations : int
        ``T`` (paper's continuous-data setting: 10).
    n_samples_per_proposal : int
        ``I`` (1).
    n_prior_proposals : int
        ``R`` (1).
    final_resampling : bool
        Resample the final imputations from the candidates of all iterations (True).

    Returns
    -------
    Tensor ``[B, K, D]``
        New imputations; the input is not modified.
    """
    batch, n_imp, _ = x_imputed.shape
    rows = torch.arange(batch, device=x_imputed.device).unsqueeze(1)  # [B, 1]
    x_observed = torch.where(observed, x_imputed[:, 0], torch.zeros_like(x_imputed[:, 0]))  # [B, D]
    pooled_z, pooled_log_w = [], []
    for t in range(n_iterations):
        proposal = imputation_mixture(model, x_imputed, observed, n_prior_proposals, generator)
        z = proposal.rsample_stratified((n_samples_per_proposal,), generator)  # [I, K+R, B, d]
        log_q = proposal.log_prob(z).flatten(0, 1)  # [C, B], C = I (K+R)
        z = z.flatten(0, 1)  # [C, B, d]
        h = model.decode(z, generator)  # [C, B, n_params * D]
        log_w = (
            model.likelihood.log_prob(x_observed, observed, h) + standard_normal_log_prob(z) - log_q
        )  # [C, B]
        if final_resampling:
            pooled_z.append(z)
            pooled_log_w.append(log_w)
            if t == n_iterations - 1:
                break  # the final resampling below replaces this iteration's step 5
        index = _resample_indices(log_w, n_imp, generator)  # [B, K]
        h_chosen = h[index, rows]  # [B, K, n_params * D]
        x_new = model.likelihood.sample(h_chosen, generator, row_dim=0)  # [B, K, D]
        x_imputed = _keep_observed(x_imputed, observed, x_new)

    if final_resampling:
        z_all = torch.cat(pooled_z, 0)  # [T C, B, d]
        index = _resample_indices(torch.cat(pooled_log_w, 0), n_imp, generator)  # [B, K]
        z_chosen = z_all[index, rows]  # [B, K, d]
        h_chosen = model.decode(z_chosen, generator)  # [B, K, n_params * D]
        x_new = model.likelihood.sample(h_chosen, generator, row_dim=0)  # [B, K, D]
        x_imputed = _keep_observed(x_imputed, observed, x_new)
    return x_imputed
