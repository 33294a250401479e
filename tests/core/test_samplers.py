"""Importance sampling on a linear-Gaussian model: log-likelihood, conditional mean, SIR."""

from __future__ import annotations

import math

import pytest
import torch

from skmissvae.core.families import DiagNormal, NormalMixture
from skmissvae.core.samplers import (
    importance_conditional_mean,
    importance_log_likelihood,
    importance_resample,
)

DTYPE = torch.float64


def _generator(seed=0):
    return torch.Generator().manual_seed(seed)


def _diag_proposal(problem, factor=1.5, shift=0.0):
    """A diagonal Gaussian wider than (and optionally shifted from) the exact posterior."""
    post = problem.exact_posterior()
    cov = post.scale_tril @ post.scale_tril.transpose(-1, -2)
    std = torch.diagonal(cov, dim1=-2, dim2=-1).sqrt()
    return DiagNormal(post.loc + shift * std, factor * std)


def _mixture_proposal(problem):
    """Two components: a good one (weight 0.7) and a poor, far-off one."""
    good = _diag_proposal(problem, factor=1.5)
    loc = torch.stack([good.loc, good.loc + 3.0], -2)  # [B, 2, d]
    scale = torch.stack([good.scale, torch.ones_like(good.scale)], -2)
    logits = torch.log(torch.tensor([0.7, 0.3], dtype=DTYPE)).expand(len(loc), 2)
    return NormalMixture(logits, loc, scale)


@pytest.mark.parametrize("chunk_size", [64, 256, 10_000])
def test_log_likelihood_with_the_exact_posterior_is_exact(linear_gaussian, chunk_size):
    # With q = p(z | x_o) every log-weight equals log p(x_o), so the estimate is exact.
    problem = linear_gaussian
    out = importance_log_likelihood(
        problem.model(),
        problem.x_filled,
        problem.observed,
        problem.exact_posterior(),
        300,
        _generator(),
        chunk_size,
    )
    assert out.shape == (8,)
    torch.testing.assert_close(out, problem.exact_log_marginal(), rtol=0, atol=1e-9)


@pytest.mark.parametrize("proposal", ["diagonal", "mixture"])
def test_log_likelihood_converges_to_the_exact_value(linear_gaussian, proposal):
    problem = linear_gaussian
    q = _diag_proposal(problem) if proposal == "diagonal" else _mixture_proposal(problem)
    out = importance_log_likelihood(
        problem.model(), problem.x_filled, problem.observed, q, 20_000, _generator(1)
    )
    exact = problem.exact_log_marginal()
    assert (out - exact).abs().max() < 0.02
    # A few samples give a looser bound on average (IWELBO increases with the sample count).
    if isinstance(q, DiagNormal):
        repeated = DiagNormal(q.loc.repeat(200, 1), q.scale.repeat(200, 1))
    else:
        repeated = NormalMixture(
            q.logits.repeat(200, 1), q.loc.repeat(200, 1, 1), q.scale.repeat(200, 1, 1)
        )
    few = importance_log_likelihood(
        problem.model(),
        problem.x_filled.repeat(200, 1),
        problem.observed.repeat(200, 1),
        repeated,
        2,
        _generator(2),
    ).reshape(200, 8)
    assert (few.mean(0) < exact).all()


def test_log_likelihood_is_reproducible_and_leaves_global_rng_alone(linear_gaussian):
    problem = linear_gaussian
    q = _diag_proposal(problem)
    model = problem.model()
    state = torch.random.get_rng_state()
    a = importance_log_likelihood(model, problem.x_filled, problem.observed, q, 100, _generator(3))
    b = importance_log_likelihood(model, problem.x_filled, problem.observed, q, 100, _generator(3))
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(a, b)
    assert not a.requires_grad


@pytest.mark.parametrize("proposal", ["exact", "diagonal", "mixture"])
def test_conditional_mean_matches_the_gaussian_conditional(linear_gaussian, proposal):
    problem = linear_gaussian
    q = {
        "exact": problem.exact_posterior,
        "diagonal": lambda: _diag_proposal(problem, factor=1.5, shift=0.5),
        "mixture": lambda: _mixture_proposal(problem),
    }[proposal]()
    x_filled = problem.x_filled.clone()
    mean = importance_conditional_mean(
        problem.model(), x_filled, problem.observed, q, 20_000, _generator(4)
    )
    assert mean.shape == (8, 5)
    assert torch.equal(x_filled, problem.x_filled)  # input untouched
    expected_mean, expected_var = problem.exact_conditional()
    assert torch.equal(mean[problem.observed], problem.x[problem.observed])
    missing = ~problem.observed
    # Var[E(x_m | z)] <= Var[x_m | x_o]: standard error <= sqrt(var / S_eff), S_eff > 5,000.
    tolerance = 5 * torch.sqrt(expected_var[missing] / 5_000)
    assert ((mean[missing] - expected_mean[missing]).abs() < tolerance).all()


@pytest.mark.parametrize("proposal", ["exact", "diagonal"])
def test_resampled_draws_follow_the_gaussian_conditional(linear_gaussian, proposal):
    problem = linear_gaussian
    q = (
        problem.exact_posterior()
        if proposal == "exact"
        else _diag_proposal(problem, factor=1.5, shift=0.5)
    )
    n_draws = 20_000
    x_filled = problem.x_filled.clone()
    draws = importance_resample(
        problem.model(), x_filled, problem.observed, q, 20_000, n_draws, _generator(5)
    )
    assert draws.shape == (n_draws, 8, 5)
    assert torch.equal(x_filled, problem.x_filled)
    observed = problem.observed.expand_as(draws)
    assert torch.equal(draws[observed], problem.x_filled.expand_as(draws)[observed])
    expected_mean, expected_var = problem.exact_conditional()
    missing = ~problem.observed
    mean, var = draws.mean(0)[missing], draws.var(0)[missing]
    se_mean = torch.sqrt(expected_var[missing] / 5_000)  # effective sizes well above 5,000
    assert ((mean - expected_mean[missing]).abs() < 5 * se_mean).all()
    torch.testing.assert_close(var, expected_var[missing], rtol=0.08, atol=0)


def test_resample_is_reproducible_and_leaves_global_rng_alone(linear_gaussian):
    problem = linear_gaussian
    q = _mixture_proposal(problem)
    model = problem.model()
    state = torch.random.get_rng_state()
    a = importance_resample(model, problem.x_filled, problem.observed, q, 50, 7, _generator(6))
    b = importance_resample(model, problem.x_filled, problem.observed, q, 50, 7, _generator(6))
    c = importance_conditional_mean(model, problem.x_filled, problem.observed, q, 50, _generator(6))
    d = importance_conditional_mean(model, problem.x_filled, problem.observed, q, 50, _generator(6))
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(a, b) and torch.equal(c, d)
    assert a.shape == (7, 8, 5)


def test_resampling_prefers_high_weight_latents(linear_gaussian):
    """With a proposal that is mostly far off, SIR must still land on the posterior."""
    problem = linear_gaussian
    post = problem.exact_posterior()
    q = DiagNormal(post.loc, torch.full_like(post.loc, 2.0))
    draws = importance_resample(
        problem.model(), problem.x_filled, problem.observed, q, 20_000, 4_000, _generator(7)
    )
    expected_mean, expected_var = problem.exact_conditional()
    missing = ~problem.observed
    assert (
        (draws.mean(0)[missing] - expected_mean[missing]).abs()
        < 5 * torch.sqrt(expected_var[missing] / 500)
    ).all()
    unweighted = problem.model().likelihood.mean(
        problem.model().decode(q.sample((4_000,), _generator(8)))
    )
    # The unweighted draws are much more spread out than the conditional.
    assert (unweighted.var(0)[missing] > 1.5 * draws.var(0)[missing]).all()
    assert math.isfinite(draws.sum().item())
