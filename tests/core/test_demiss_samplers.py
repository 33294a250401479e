"""DeMissVAE samplers: empirical initialisation, pseudo-Gibbs and LAIR.

The exactness tests use the linear-Gaussian model of ``conftest`` (known ``p(x_m | x_o)``)
with an encoder that returns a diagonal approximation of the complete-data posterior
``p(z | x)`` -- a good, but not exact, proposal, as a trained encoder would be.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from skmissvae.core.likelihoods import SCALE_FLOOR
from skmissvae.core.samplers import (
    column_pools,
    empirical_imputations,
    imputation_mixture,
    lair,
    pseudo_gibbs,
)

DTYPE = torch.float64


def _generator(seed=0):
    return torch.Generator().manual_seed(seed)


def _inverse_softplus(y: torch.Tensor) -> torch.Tensor:
    return y + torch.log(-torch.expm1(-y))


class LinearPosteriorEncoder(nn.Module):
    """``q(z | x) = N(C W^T (x - b) / s^2, diag(C) * inflate^2)``: complete-data posterior."""

    def __init__(self, weight, bias, sigma, inflate=1.2):
        super().__init__()
        latent_dim = weight.shape[1]
        precision = torch.eye(latent_dim, dtype=weight.dtype) + weight.T @ weight / sigma**2
        cov = torch.linalg.inv(precision)
        self.register_buffer("gain", cov @ weight.T / sigma**2)  # [d, D]
        self.register_buffer("bias", bias)
        std = inflate * torch.diagonal(cov).sqrt()
        self.register_buffer("raw_scale", _inverse_softplus(std - SCALE_FLOOR))

    def forward(self, x, generator=None):
        loc = (x - self.bias) @ self.gain.T  # [..., d]
        return torch.cat([loc, self.raw_scale.expand_as(loc)], -1)


def _model(problem, encoder="linear"):
    model = problem.model()
    model.encoder_uses_mask = False
    if encoder == "linear":
        model.encoder = LinearPosteriorEncoder(problem.weight, problem.bias, problem.sigma)
    else:  # a random network taking x only
        from skmissvae.core.networks import ResidualMLP

        model.encoder = ResidualMLP(
            problem.n_features, 2 * problem.latent_dim, 16, 1, generator=_generator(9)
        ).double()
    return model.eval()


def _start(problem, n_copies, n_imputations, seed=0):
    """``n_copies`` replicas of every row with arbitrary (standard-normal) imputations."""
    x = problem.x_filled.repeat(n_copies, 1)  # [R*8, D]
    observed = problem.observed.repeat(n_copies, 1)
    noise = torch.randn(len(x), n_imputations, problem.n_features, generator=_generator(seed), dtype=DTYPE)
    start = torch.where(observed.unsqueeze(1), x.unsqueeze(1), 3.0 + noise)  # far from the truth
    return x, observed, start


def _assert_matches_conditional(problem, draws, n_copies):
    """``draws [R*8, K, D]``: per-row mean within 4.5 standard errors, variance within 12%."""
    n_imp = draws.shape[1]
    draws = draws.reshape(n_copies, 8, n_imp, problem.n_features)  # [R, 8, K, D]
    expected_mean, expected_var = problem.exact_conditional()
    missing = ~problem.observed
    replica_means = draws.mean(2)  # [R, 8, D]: the K draws of one chain are correlated
    mean = replica_means.mean(0)
    se = replica_means.std(0) / math.sqrt(n_copies)
    z = ((mean - expected_mean) / se)[missing]
    assert z.abs().max() < 4.5, z
    var = draws.transpose(0, 1).reshape(8, -1, problem.n_features).var(1)  # [8, D]
    ratio = (var / expected_var.clamp_min(1e-12))[missing]
    assert (ratio - 1).abs().max() < 0.12, ratio


# --------------------------------------------------------------------------------------
# empirical initialisation
# --------------------------------------------------------------------------------------
def test_column_pools_hold_each_columns_observed_values():
    x = torch.tensor([[1.0, 0.0], [2.0, 5.0], [0.0, 6.0], [4.0, 0.0]])
    observed = torch.tensor([[1, 0], [1, 1], [0, 1], [1, 0]], dtype=torch.bool)
    pool, counts = column_pools(x, observed)
    assert counts.tolist() == [3, 2]
    assert pool[:3, 0].tolist() == [1.0, 2.0, 4.0]
    assert pool[:2, 1].tolist() == [5.0, 6.0]

    sub, sub_counts = column_pools(x, observed, max_size=2, generator=_generator())
    assert sub.shape == (2, 2) and sub_counts.tolist() == [2, 2]
    assert set(sub[:, 0].tolist()) <= {1.0, 2.0, 4.0} and len(set(sub[:, 0].tolist())) == 2
    assert set(sub[:, 1].tolist()) == {5.0, 6.0}


def test_column_pool_subsample_is_uniform():
    x = torch.arange(10.0).unsqueeze(1)
    observed = torch.ones(10, 1, dtype=torch.bool)
    generator = _generator(1)
    hits = torch.zeros(10)
    for _ in range(2000):
        pool, _ = column_pools(x, observed, max_size=3, generator=generator)
        hits[pool[:, 0].long()] += 1
    assert torch.allclose(hits / 2000, torch.full((10,), 0.3), atol=0.04)


def test_empirical_imputations_draw_from_the_pool_and_keep_observed():
    generator = _generator(2)
    x = torch.randn(50, 3, generator=generator)
    observed = torch.rand(50, 3, generator=generator) < 0.6
    observed[:, 2] = False  # a column with no observed value -> filled with 0
    x_filled = torch.where(observed, x, torch.zeros_like(x))
    pool, counts = column_pools(x_filled, observed)
    out = empirical_imputations(x_filled, observed, pool, counts, 4, _generator(3))
    assert out.shape == (50, 4, 3)
    obs = observed.unsqueeze(1).expand_as(out)
    assert torch.equal(out[obs], x_filled.unsqueeze(1).expand_as(out)[obs])
    for d in range(2):
        values = set(x_filled[observed[:, d], d].tolist())
        assert set(out[:, :, d][~obs[:, :, d]].tolist()) <= values
    assert (out[:, :, 2] == 0).all()
    # The copies differ from one another.
    assert not torch.equal(out[:, 0][~observed], out[:, 1][~observed])
    # Same generator seed, same draws.
    assert torch.equal(out, empirical_imputations(x_filled, observed, pool, counts, 4, _generator(3)))


# --------------------------------------------------------------------------------------
# observed entries never change
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("sampler", ["lair", "lair_no_final", "pseudo_gibbs"])
@pytest.mark.parametrize("encoder", ["linear", "random"])
def test_samplers_never_touch_observed_entries(linear_gaussian, sampler, encoder):
    problem = linear_gaussian
    model = _model(problem, encoder)
    x, observed, start = _start(problem, 4, 5)
    # Awkward observed values that a float round trip would alter.
    start[0, :, 0] = -0.0
    start[1, :, 1] = 1e-300
    original = start.clone()
    generator = _generator(4)
    if sampler == "pseudo_gibbs":
        out = pseudo_gibbs(model, start, observed, n_steps=3, generator=generator)
    else:
        final = sampler == "lair"
        out = lair(model, start, observed, n_iterations=3, final_resampling=final, generator=generator)
    assert torch.equal(start, original)  # input not modified
    assert out.shape == start.shape and torch.isfinite(out).all()
    obs = observed.unsqueeze(1).expand_as(out)
    bits = lambda t: t.view(torch.int64)  # noqa: E731
    assert torch.equal(bits(out[obs]), bits(original[obs]))
    assert not torch.equal(out[~obs], original[~obs])  # missing entries were updated


def test_samplers_are_reproducible_and_leave_global_rng_alone(linear_gaussian):
    problem = linear_gaussian
    model = _model(problem)
    _, observed, start = _start(problem, 2, 3)
    state = torch.random.get_rng_state()
    a = lair(model, start, observed, n_iterations=2, generator=_generator(5))
    b = lair(model, start, observed, n_iterations=2, generator=_generator(5))
    c = pseudo_gibbs(model, start, observed, generator=_generator(5))
    d = pseudo_gibbs(model, start, observed, generator=_generator(5))
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(a, b) and torch.equal(c, d)
    assert not torch.equal(a, lair(model, start, observed, n_iterations=2, generator=_generator(6)))


def test_lair_survives_non_finite_weights(linear_gaussian):
    problem = linear_gaussian
    model = _model(problem)
    _, observed, start = _start(problem, 1, 3)
    x = start.clone()
    x[0, :, observed[0]] = 1e200  # log p(x_o | z) = -inf for every candidate of row 0
    out = lair(model, x, observed, n_iterations=2, generator=_generator(7))
    obs = observed.unsqueeze(1).expand_as(out)
    assert torch.equal(out[obs], x[obs])
    assert torch.isfinite(out[~obs]).all()


# --------------------------------------------------------------------------------------
# LAIR targets p(x_m | x_o)
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "final_resampling, n_samples_per_proposal, n_iterations",
    # The paper's continuous-data setting (T=10, I=1, R=1, final resampling from the 60
    # pooled candidates); without final resampling, resampling 5 of only I (K+R) = 6
    # candidates is visibly biased towards the proposals (the prior among them: about
    # 0.25 sd on this problem), so that variant is checked with I=5 (and T=3, for speed).
    [(True, 1, 10), (False, 5, 3)],
)
def test_lair_matches_the_exact_conditional(
    linear_gaussian, final_resampling, n_samples_per_proposal, n_iterations
):
    # Three refreshes from imputations far from the truth; 1,000 independent chains per row.
    problem = linear_gaussian
    model = _model(problem)
    n_copies = 1000
    _, observed, start = _start(problem, n_copies, 5)
    generator = _generator(8)
    x = start
    for _ in range(3):
        x = lair(
            model, x, observed, n_iterations=n_iterations, n_samples_per_proposal=n_samples_per_proposal,
            n_prior_proposals=1, final_resampling=final_resampling, generator=generator,
        )
    _assert_matches_conditional(problem, x, n_copies)


def test_single_lair_iteration_with_many_candidates_is_exact_sir(linear_gaussian):
    # One iteration from bad imputations with many candidates per proposal: importance
    # resampling from the defensive mixture, exact as I grows, whatever the imputations.
    problem = linear_gaussian
    model = _model(problem, "random")
    n_copies = 400
    _, observed, start = _start(problem, n_copies, 5)
    x = lair(
        model, start, observed, n_iterations=1, n_samples_per_proposal=40, n_prior_proposals=1,
        final_resampling=False, generator=_generator(10),
    )
    _assert_matches_conditional(problem, x, n_copies)


def test_imputation_mixture_has_uniform_weights_and_prior_components(linear_gaussian):
    problem = linear_gaussian
    model = _model(problem)
    _, observed, start = _start(problem, 1, 3)
    q = imputation_mixture(model, start, observed)
    assert q.loc.shape == (8, 3, 2) and torch.equal(q.logits, torch.zeros(8, 3, dtype=DTYPE))
    q2 = imputation_mixture(model, start, observed, n_prior_components=2)
    assert q2.loc.shape == (8, 5, 2)
    assert torch.equal(q2.loc[:, :3], q.loc) and (q2.loc[:, 3:] == 0).all() and (q2.scale[:, 3:] == 1).all()
    torch.testing.assert_close(q2.log_weights.exp(), torch.full((8, 5), 0.2, dtype=DTYPE))
