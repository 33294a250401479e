"""Tests of the observation models: masked log-densities, parameters, sampling."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Bernoulli, Normal

from skmissvae.core.likelihoods import SCALE_FLOOR, BernoulliLikelihood, GaussianLikelihood, MixedLikelihood

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


def test_gaussian_min_scale_is_the_floor_of_the_scale():
    h = torch.cat([torch.zeros(2, 3, dtype=DTYPE), torch.full((2, 3), -1e4, dtype=DTYPE)], -1)
    _, scale = GaussianLikelihood(min_scale=0.25).params(h)
    torch.testing.assert_close(scale, torch.full((2, 3), 0.25, dtype=DTYPE))
    _, _, _, h = _data()
    _, scale = GaussianLikelihood(min_scale=0.25).params(h)
    torch.testing.assert_close(scale, torch.nn.functional.softplus(h[..., 4:]) + 0.25)
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="min_scale"):
            GaussianLikelihood(min_scale=bad)


def test_mixed_likelihood_gives_min_scale_to_its_gaussian_blocks():
    likelihood = MixedLikelihood([("gaussian", 2), ("bernoulli", 1)], min_scale=0.3)
    x = torch.tensor([[0.5, -1.0, 1.0]], dtype=DTYPE)
    # Gaussian block: loc = x, raw scale far below the floor; Bernoulli logit 0.
    h = torch.tensor([[0.5, -1.0, -1e4, -1e4, 0.0]], dtype=DTYPE)
    expected = Normal(x[:, :2], 0.3).log_prob(x[:, :2])
    torch.testing.assert_close(likelihood.log_prob_elementwise(x, h)[:, :2], expected)


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


# ---------------------------------------------------------------------------------------
# Categorical and mixed (per-block) likelihoods
# ---------------------------------------------------------------------------------------

from torch.distributions import Categorical  # noqa: E402

from skmissvae.core.likelihoods import CategoricalLikelihood, MixedLikelihood  # noqa: E402
from skmissvae.core.model import MissingDataVAE  # noqa: E402
from skmissvae.core.samplers import (  # noqa: E402
    column_pools,
    empirical_imputations,
    importance_conditional_mean,
    importance_resample,
    lair,
    pseudo_gibbs,
)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _one_hot_data(batch=8, n_classes=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(n_classes, (batch,), generator=g)
    x = torch.nn.functional.one_hot(labels, n_classes).to(DTYPE)  # [B, C]
    observed_rows = torch.rand(batch, generator=g) < 0.6
    observed_rows[0], observed_rows[-1] = True, False
    observed = observed_rows.unsqueeze(-1).expand(batch, n_classes)  # whole blocks
    x_filled = torch.where(observed, x, torch.zeros_like(x))
    h = torch.randn(3, batch, n_classes, generator=g, dtype=DTYPE)  # [S, B, C]
    return labels, x, x_filled, observed, h


@pytest.mark.parametrize("n_classes", [2, 3, 7])
def test_categorical_log_prob_matches_torch_on_observed_blocks(n_classes):
    labels, _, x_filled, observed, h = _one_hot_data(n_classes=n_classes)
    out = CategoricalLikelihood().log_prob(x_filled, observed, h)
    expected = Categorical(logits=h).log_prob(labels) * observed[:, 0]  # [S, B]
    assert out.shape == (3, 8)
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize("n_classes", [2, 5])
def test_categorical_probabilities_are_normalised(n_classes):
    h = torch.randn(4, n_classes, generator=torch.Generator().manual_seed(1), dtype=DTYPE)
    likelihood = CategoricalLikelihood()
    everything = torch.ones(4, n_classes, dtype=torch.bool)
    log_probs = torch.stack(
        [likelihood.log_prob(torch.eye(n_classes, dtype=DTYPE)[c].expand(4, -1), everything, h)
         for c in range(n_classes)]
    )  # [C, 4]: log p(class c) for each row
    torch.testing.assert_close(log_probs.exp().sum(0), torch.ones(4, dtype=DTYPE))
    torch.testing.assert_close(likelihood.mean(h).sum(-1), torch.ones(4, dtype=DTYPE))
    torch.testing.assert_close(likelihood.mean(h), log_probs.exp().T)


def test_categorical_gradients_are_finite_and_zero_for_missing_blocks():
    _, _, x_filled, observed, h = _one_hot_data()
    h = h.clone().requires_grad_()
    CategoricalLikelihood().log_prob(x_filled, observed, h).sum().backward()
    assert torch.isfinite(h.grad).all()
    assert (h.grad[..., ~observed[:, 0], :] == 0).all()
    assert (h.grad[..., observed[:, 0], :] != 0).any()
    # The gradient of log softmax_c over the logits sums to zero within a block.
    torch.testing.assert_close(h.grad.sum(-1), torch.zeros(3, 8, dtype=DTYPE))


def test_categorical_sample_is_one_hot_with_the_right_frequencies():
    h = torch.tensor([[2.0, 0.0, -1.0, 0.5]], dtype=DTYPE)
    likelihood = CategoricalLikelihood()
    state = torch.random.get_rng_state()
    draws = likelihood.sample(h.expand(40000, 1, 4), torch.Generator().manual_seed(0))
    assert torch.equal(torch.random.get_rng_state(), state)  # only the given generator
    assert draws.shape == (40000, 1, 4)
    assert set(draws.unique().tolist()) <= {0.0, 1.0}
    assert (draws.sum(-1) == 1).all()
    torch.testing.assert_close(draws.mean(0), torch.softmax(h, -1), atol=0.01, rtol=0)
    a = likelihood.sample(h, torch.Generator().manual_seed(5))
    assert torch.equal(a, likelihood.sample(h, torch.Generator().manual_seed(5)))


def test_categorical_sample_with_a_certain_class():
    h = torch.tensor([[-1e4, 50.0, -1e4]], dtype=torch.float32)
    draws = CategoricalLikelihood().sample(h.expand(1000, 1, 3), torch.Generator().manual_seed(0))
    assert (draws[..., 1] == 1).all()


# Encoded layout used below: 2 continuous, 1 binary, a 3-class and a 2-class categorical.
BLOCKS = [("gaussian", 2), ("bernoulli", 1), ("categorical", 3), ("categorical", 2)]


def _mixed_data(batch=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    cont = torch.randn(batch, 2, generator=g, dtype=DTYPE)
    binary = (torch.rand(batch, 1, generator=g) < 0.5).to(DTYPE)
    cat3 = torch.nn.functional.one_hot(torch.randint(3, (batch,), generator=g), 3).to(DTYPE)
    cat2 = torch.nn.functional.one_hot(torch.randint(2, (batch,), generator=g), 2).to(DTYPE)
    x = torch.cat([cont, binary, cat3, cat2], -1)  # [B, 8]
    variable_observed = torch.rand(batch, 5, generator=g) < 0.6  # per variable
    variable_observed[:, 0] = True
    observed = variable_observed[:, [0, 1, 2, 3, 3, 3, 4, 4]]  # one-hot blocks as a whole
    x_filled = torch.where(observed, x, torch.zeros_like(x))
    h = torch.randn(3, batch, 2 * 2 + 1 + 3 + 2, generator=g, dtype=DTYPE)  # [S, B, n_outputs]
    return x, x_filled, observed, h


def test_mixed_likelihood_is_the_sum_of_its_blocks():
    x, x_filled, observed, h = _mixed_data()
    mixed = MixedLikelihood(BLOCKS)
    assert mixed.n_features == 8 and mixed.output_size(8) == 10
    gaussian = GaussianLikelihood().log_prob(x_filled[:, :2], observed[:, :2], h[..., :4])
    bernoulli = BernoulliLikelihood().log_prob(x_filled[:, 2:3], observed[:, 2:3], h[..., 4:5])
    cat3 = CategoricalLikelihood().log_prob(x_filled[:, 3:6], observed[:, 3:6], h[..., 5:8])
    cat2 = CategoricalLikelihood().log_prob(x_filled[:, 6:8], observed[:, 6:8], h[..., 8:10])
    torch.testing.assert_close(mixed.log_prob(x_filled, observed, h), gaussian + bernoulli + cat3 + cat2)
    assert mixed.log_prob_elementwise(x, h).shape == (3, 6, 8)
    mean = mixed.mean(h)
    torch.testing.assert_close(mean[..., :2], h[..., :2])
    torch.testing.assert_close(mean[..., 2:3], torch.sigmoid(h[..., 4:5]))
    torch.testing.assert_close(mean[..., 3:6], torch.softmax(h[..., 5:8], -1))


def test_mixed_likelihood_with_one_gaussian_block_equals_the_gaussian():
    x, x_filled, observed, h = _data()
    mixed = MixedLikelihood([("gaussian", 4)])
    gaussian = GaussianLikelihood()
    assert mixed.output_size(4) == gaussian.output_size(4) == 8
    assert torch.equal(mixed.log_prob(x_filled, observed, h), gaussian.log_prob(x_filled, observed, h))
    assert torch.equal(mixed.mean(h), gaussian.mean(h))
    a = mixed.sample(h, torch.Generator().manual_seed(0))
    assert torch.equal(a, gaussian.sample(h, torch.Generator().manual_seed(0)))


def test_mixed_likelihood_samples_respect_blocks_and_missing_entries_are_ignored():
    _, x_filled, observed, h = _mixed_data()
    mixed = MixedLikelihood(BLOCKS)
    draws = mixed.sample(h, torch.Generator().manual_seed(0))  # [S, B, 8]
    assert draws.shape == (3, 6, 8)
    assert set(draws[..., 2:].unique().tolist()) <= {0.0, 1.0}
    assert (draws[..., 3:6].sum(-1) == 1).all() and (draws[..., 6:8].sum(-1) == 1).all()
    other = torch.where(observed, x_filled, torch.full_like(x_filled, 7.0))
    torch.testing.assert_close(mixed.log_prob(x_filled, observed, h), mixed.log_prob(other, observed, h))
    h = h.clone().requires_grad_()
    mixed.log_prob(x_filled, observed, h).sum().backward()
    assert torch.isfinite(h.grad).all()


def test_mixed_likelihood_rejects_bad_blocks():
    with pytest.raises(ValueError, match="Unknown block kind"):
        MixedLikelihood([("poisson", 2)])
    with pytest.raises(ValueError, match="positive"):
        MixedLikelihood([("categorical", 0)])
    with pytest.raises(ValueError, match="8 encoded features, not 9"):
        MixedLikelihood(BLOCKS).output_size(9)


def test_column_groups_tie_one_hot_columns_together():
    groups = MixedLikelihood(BLOCKS).column_groups()
    assert groups.tolist() == [0, 1, 2, 3, 3, 3, 4, 4]


def test_empirical_imputations_draw_whole_one_hot_blocks():
    x, _, observed, _ = _mixed_data(batch=40, seed=3)
    x_filled = torch.where(observed, x, torch.zeros_like(x))
    pool, counts = column_pools(x_filled, observed)
    groups = MixedLikelihood(BLOCKS).column_groups()
    out = empirical_imputations(x_filled, observed, pool, counts, 5, _gen(0), groups)  # [B, K, D]
    kept = observed.unsqueeze(1).expand_as(out)
    assert torch.equal(out[kept], x_filled.unsqueeze(1).expand_as(out)[kept])
    assert (out[..., 3:6].sum(-1) == 1).all() and (out[..., 6:8].sum(-1) == 1).all()
    # Each imputed block is one of the observed one-hot vectors of its column.
    assert set(out[..., 2].unique().tolist()) <= {0.0, 1.0}
    # Singleton groups are the ungrouped behaviour, draw for draw.
    identity = torch.arange(8)
    a = empirical_imputations(x_filled, observed, pool, counts, 5, _gen(1), identity)
    b = empirical_imputations(x_filled, observed, pool, counts, 5, _gen(1))
    assert torch.equal(a, b)


def _mixed_model(seed=0):
    generator = torch.Generator().manual_seed(seed)
    return MissingDataVAE(
        8, 2, width=8, n_blocks=1, encoder_uses_mask=False, generator=generator,
        likelihood=MixedLikelihood(BLOCKS),
    ).double().eval()


def test_model_decoder_size_follows_the_likelihood_and_default_is_gaussian():
    model = _mixed_model()
    assert model.decode(torch.zeros(4, 2, dtype=DTYPE)).shape == (4, 10)
    default = MissingDataVAE(3, 2, width=8, n_blocks=1, generator=torch.Generator().manual_seed(0))
    explicit = MissingDataVAE(
        3, 2, width=8, n_blocks=1, generator=torch.Generator().manual_seed(0),
        likelihood=GaussianLikelihood(),
    )
    assert isinstance(default.likelihood, GaussianLikelihood)
    for a, b in zip(default.parameters(), explicit.parameters(), strict=True):
        assert torch.equal(a, b)


def _valid_blocks(x):
    binary = set(x[..., 2].unique().tolist()) <= {0.0, 1.0}
    return binary and (x[..., 3:6].sum(-1) == 1).all() and (x[..., 6:8].sum(-1) == 1).all()


@pytest.mark.parametrize("sampler", ["pseudo_gibbs", "lair"])
def test_demissvae_samplers_keep_one_hot_blocks_valid(sampler):
    x, _, observed, _ = _mixed_data(batch=10, seed=4)
    x_filled = torch.where(observed, x, torch.zeros_like(x))
    model = _mixed_model()
    pool, counts = column_pools(x_filled, observed)
    groups = model.likelihood.column_groups()
    start = empirical_imputations(x_filled, observed, pool, counts, 3, _gen(0), groups)
    g = torch.Generator().manual_seed(1)
    if sampler == "lair":
        out = lair(model, start, observed, n_iterations=2, generator=g)
    else:
        out = pseudo_gibbs(model, start, observed, n_steps=2, generator=g)
    assert _valid_blocks(out)
    kept = observed.unsqueeze(1).expand_as(out)
    assert torch.equal(out[kept], start[kept])


def test_importance_sampling_with_a_mixed_model():
    x, _, observed, _ = _mixed_data(batch=10, seed=5)
    x_filled = torch.where(observed, x, torch.zeros_like(x))
    model = _mixed_model()
    q = model.encode(x_filled, observed)
    mean = importance_conditional_mean(model, x_filled, observed, q, 16, torch.Generator().manual_seed(0))
    # Conditional means of categorical blocks are probability vectors.
    torch.testing.assert_close(mean[:, 3:6].sum(-1), torch.ones(10, dtype=DTYPE))
    assert ((mean[:, 2] >= 0) & (mean[:, 2] <= 1)).all()
    draws = importance_resample(model, x_filled, observed, q, 16, 4, torch.Generator().manual_seed(0))
    assert _valid_blocks(draws)
    assert torch.equal(draws[:, observed], x_filled.expand_as(draws)[:, observed])


# -- zero-inflated Gaussian (semicontinuous columns) -------------------------------------
from skmissvae.core.likelihoods import ZeroInflatedGaussianLikelihood  # noqa: E402


def _zero_inflated_data(batch=6, n_features=4, seed=0):
    """Data with exact zeros (about a third) and a random mask; ``h`` has 3 D outputs."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, n_features, generator=g, dtype=DTYPE)
    x[torch.rand(batch, n_features, generator=g) < 0.35] = 0.0
    observed = torch.rand(batch, n_features, generator=g) < 0.7
    observed[:, 0] = True
    observed[:, -1] = False
    x_filled = torch.where(observed, x, torch.zeros_like(x))
    h = torch.randn(3, batch, 3 * n_features, generator=g, dtype=DTYPE)
    return x, x_filled, observed, h


def test_zero_inflated_log_prob_is_a_point_mass_plus_a_gaussian_density():
    x, x_filled, observed, h = _zero_inflated_data()
    likelihood = ZeroInflatedGaussianLikelihood(min_scale=0.2)
    logit, loc, scale = likelihood.params(h)
    torch.testing.assert_close(logit, h[..., :4])
    torch.testing.assert_close(loc, h[..., 4:8])
    torch.testing.assert_close(scale, torch.nn.functional.softplus(h[..., 8:]) + 0.2)
    pi = torch.sigmoid(logit)
    expected = torch.where(x == 0, pi.log(), (1 - pi).log() + Normal(loc, scale).log_prob(x))
    assert (x == 0).any() and (x != 0).any()
    torch.testing.assert_close(likelihood.log_prob_elementwise(x, h), expected)
    torch.testing.assert_close(likelihood.log_prob(x_filled, observed, h), (expected * observed).sum(-1))
    other = torch.where(observed, x_filled, torch.full_like(x_filled, 5.0))
    torch.testing.assert_close(likelihood.log_prob(other, observed, h), likelihood.log_prob(x_filled, observed, h))


def test_zero_inflated_log_prob_is_stable_and_its_gradients_finite():
    x, x_filled, observed, h = _zero_inflated_data()
    h = (h * 40).clone().requires_grad_()  # logits of +-100: sigmoid saturates
    out = ZeroInflatedGaussianLikelihood().log_prob(x_filled, observed, h)
    assert torch.isfinite(out).all()
    out.sum().backward()
    assert torch.isfinite(h.grad).all()
    for block in h.grad.split(4, dim=-1):  # logits, locations, raw scales
        assert (block[..., ~observed] == 0).all()


def test_zero_inflated_mean_and_samples_agree():
    h = torch.tensor([[-1.0, 0.0, 2.0, 3.0, -2.0, 0.5, 0.0, 0.5, -1.0]], dtype=DTYPE)  # D = 3
    likelihood = ZeroInflatedGaussianLikelihood()
    pi = torch.sigmoid(h[:, :3])
    torch.testing.assert_close(likelihood.mean(h), (1 - pi) * h[:, 3:6])
    draws = likelihood.sample(h.expand(100_000, 9), torch.Generator().manual_seed(0))
    torch.testing.assert_close((draws == 0).double().mean(0), pi[0], atol=6e-3, rtol=0)
    torch.testing.assert_close(draws.mean(0), likelihood.mean(h)[0], atol=0.02, rtol=0)
    again = likelihood.sample(h.expand(100_000, 9), torch.Generator().manual_seed(0))
    assert torch.equal(draws, again)
    with pytest.raises(ValueError, match="min_scale"):
        ZeroInflatedGaussianLikelihood(min_scale=0.0)


def test_mixed_likelihood_with_a_zero_inflated_block():
    x, _, observed, h3 = _zero_inflated_data(n_features=2)
    xb = (torch.randn(6, 1, generator=torch.Generator().manual_seed(1)) > 0).to(DTYPE)
    mixed = MixedLikelihood([("zero_inflated", 2), ("bernoulli", 1)], min_scale=0.3)
    assert mixed.output_size(3) == 7
    h = torch.cat([h3, torch.zeros(3, 6, 1, dtype=DTYPE)], -1)
    full = torch.cat([x, xb], -1)
    mask = torch.cat([observed, torch.ones(6, 1, dtype=torch.bool)], -1)
    zero_inflated = ZeroInflatedGaussianLikelihood(min_scale=0.3)
    expected = zero_inflated.log_prob(x, observed, h3) + BernoulliLikelihood().log_prob(xb, mask[:, 2:], h[..., 6:])
    torch.testing.assert_close(mixed.log_prob(full, mask, h), expected)
    torch.testing.assert_close(mixed.mean(h)[..., :2], zero_inflated.mean(h3))


def test_scale_is_the_gaussian_standard_deviation_and_nan_for_discrete_blocks():
    mixed = MixedLikelihood(
        [("gaussian", 1), ("zero_inflated", 1), ("bernoulli", 1), ("categorical", 2)], min_scale=0.3
    )
    # Outputs: Gaussian (loc, raw scale), zero-inflated (logit, loc, raw scale), one
    # Bernoulli logit, two categorical logits.
    h = torch.tensor([[0.5, -1e4, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]], dtype=DTYPE)
    scale = mixed.scale(h)
    assert scale.shape == (1, 5)
    expected = torch.tensor([[0.3, math.log1p(math.e) + 0.3]], dtype=DTYPE)  # softplus(1) = log(1 + e)
    torch.testing.assert_close(scale[:, :2], expected)
    assert torch.isnan(scale[:, 2:]).all()
    torch.testing.assert_close(GaussianLikelihood(0.3).scale(h[:, :2]), scale[:, :1])
