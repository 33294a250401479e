"""Tests of the observation models: masked log-densities, parameters, sampling."""

from __future__ import annotations

import pytest
import torch
from torch.distributions import Bernoulli, Normal

from skmissvae.core.likelihoods import SCALE_FLOOR, BernoulliLikelihood, GaussianLikelihood

DTYPE = torch.float64


def _data(batch=6, n_features=4, seed=0, binary=False):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, n_features, generator=g, dtype=DTYPE)
    if binary:
        x = (x > 0).to(DTYPE)
    observed = torch.rand(batch, n_features, generator=g) < 0.6
    observed[:, 0] = True  # at least one observed entry per row
    observed[:, -1] = False  # at least one missing entry per row
    x_filled = torch.where(observed, x, torch.zeros_like(x))
    n_params = 1 if binary else 2
    h = torch.randn(3, batch, n_params * n_features, generator=g, dtype=DTYPE)  # [S, B, n_params*D]
    return x, x_filled, observed, h


def test_gaussian_params_follow_the_softplus_parameterisation():
    _, _, _, h = _data()
    loc, scale = GaussianLikelihood().params(h)
    torch.testing.assert_close(loc, h[..., :4])
    torch.testing.assert_close(scale, torch.nn.functional.softplus(h[..., 4:]) + 1e-5)
    torch.testing.assert_close(GaussianLikelihood().mean(h), h[..., :4])


def test_gaussian_scale_floor():
    assert SCALE_FLOOR == 1e-5
    h = torch.cat([torch.zeros(2, 3, dtype=DTYPE), torch.full((2, 3), -1e4, dtype=DTYPE)], -1)
    _, scale = GaussianLikelihood().params(h)
    torch.testing.assert_close(scale, torch.full((2, 3), 1e-5, dtype=DTYPE), rtol=1e-12, atol=0)
    # The floor keeps the log-density finite even at a collapsed scale.
    out = GaussianLikelihood().log_prob(
        torch.ones(2, 3, dtype=DTYPE), torch.ones(2, 3, dtype=torch.bool), h
    )
    assert torch.isfinite(out).all()


def test_gaussian_log_prob_matches_torch_on_observed_entries():
    x, x_filled, observed, h = _data()
    likelihood = GaussianLikelihood()
    loc, scale = likelihood.params(h)
    expected = (Normal(loc, scale).log_prob(x) * observed).sum(-1)
    out = likelihood.log_prob(x_filled, observed, h)
    assert out.shape == (3, 6)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(
        likelihood.log_prob_elementwise(x, h), Normal(loc, scale).log_prob(x)
    )


def test_gaussian_log_prob_of_fully_observed_rows_is_the_full_density():
    x, _, _, h = _data()
    likelihood = GaussianLikelihood()
    loc, scale = likelihood.params(h)
    out = likelihood.log_prob(x, torch.ones_like(x, dtype=torch.bool), h)
    torch.testing.assert_close(out, Normal(loc, scale).log_prob(x).sum(-1))


@pytest.mark.parametrize(
    "likelihood", [GaussianLikelihood(), BernoulliLikelihood()], ids=["gaussian", "bernoulli"]
)
def test_missing_entries_are_ignored(likelihood):
    binary = isinstance(likelihood, BernoulliLikelihood)
    _, x_filled, observed, h = _data(binary=binary)
    other = x_filled.clone()
    other[~observed] = 1.0 if binary else 123.0  # a different (finite) value at missing positions
    torch.testing.assert_close(
        likelihood.log_prob(x_filled, observed, h), likelihood.log_prob(other, observed, h)
    )


@pytest.mark.parametrize(
    "likelihood", [GaussianLikelihood(), BernoulliLikelihood()], ids=["gaussian", "bernoulli"]
)
def test_gradients_are_finite_and_zero_at_missing_positions(likelihood):
    binary = isinstance(likelihood, BernoulliLikelihood)
    _, x_filled, observed, h = _data(binary=binary)
    h = h.clone().requires_grad_()
    likelihood.log_prob(x_filled, observed, h).sum().backward()
    assert torch.isfinite(h.grad).all()
    n_features = x_filled.shape[-1]
    for block in h.grad.split(n_features, dim=-1):  # loc and raw scale (or logits)
        assert (block[..., ~observed] == 0).all()
        assert (block[..., observed] != 0).any()


def test_gaussian_sample_moments_and_generator():
    h = torch.tensor([[1.0, -2.0, 0.0, 1.0]], dtype=DTYPE)  # loc (1, -2), raw scale (0, 1)
    likelihood = GaussianLikelihood()
    loc, scale = likelihood.params(h)
    draws = likelihood.sample(h.expand(50000, 1, 4), torch.Generator().manual_seed(0))
    assert draws.shape == (50000, 1, 2)
    torch.testing.assert_close(draws.mean(0), loc, atol=0.03, rtol=0)
    torch.testing.assert_close(draws.std(0), scale, rtol=0.03, atol=0)
    state = torch.random.get_rng_state()
    a = likelihood.sample(h, torch.Generator().manual_seed(3))
    b = likelihood.sample(h, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert torch.equal(torch.random.get_rng_state(), state)


def test_bernoulli_log_prob_matches_torch_without_particle_dimension():
    x, x_filled, observed, h = _data(binary=True)
    h = h[0]  # [B, D]
    expected = (Bernoulli(logits=h).log_prob(x) * observed).sum(-1)
    torch.testing.assert_close(BernoulliLikelihood().log_prob(x_filled, observed, h), expected)


def test_bernoulli_log_prob_matches_torch():
    """Data ``[B, D]`` broadcast against particles ``[S, B, D]``, as the model calls it."""
    x, x_filled, observed, h = _data(binary=True)
    likelihood = BernoulliLikelihood()
    expected = (Bernoulli(logits=h).log_prob(x) * observed).sum(-1)
    out = likelihood.log_prob(x_filled, observed, h)
    assert out.shape == (3, 6)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(
        likelihood.log_prob_elementwise(x, h), Bernoulli(logits=h).log_prob(x)
    )


def test_bernoulli_log_prob_is_stable_for_large_logits():
    h = torch.tensor([[80.0, -80.0]], dtype=torch.float32)
    x = torch.tensor([[0.0, 1.0]])
    out = BernoulliLikelihood().log_prob(x, torch.ones_like(x, dtype=torch.bool), h)
    torch.testing.assert_close(out, torch.tensor([-160.0]))


def test_bernoulli_mean_and_sample():
    h = torch.tensor([[-1.0, 0.0, 2.0]], dtype=DTYPE)
    likelihood = BernoulliLikelihood()
    torch.testing.assert_close(likelihood.mean(h), torch.sigmoid(h))
    draws = likelihood.sample(h.expand(40000, 1, 3), torch.Generator().manual_seed(0))
    assert set(draws.unique().tolist()) <= {0.0, 1.0}
    torch.testing.assert_close(draws.mean(0), torch.sigmoid(h), atol=0.015, rtol=0)
    a = likelihood.sample(h, torch.Generator().manual_seed(5))
    assert torch.equal(a, likelihood.sample(h, torch.Generator().manual_seed(5)))
