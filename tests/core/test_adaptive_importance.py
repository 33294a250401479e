"""Adaptive, streaming importance sampling on a linear-Gaussian model."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from skmissvae.core.families import DiagNormal, NormalMixture
from skmissvae.core.random import RowGenerator
from skmissvae.core.samplers import _streaming_resample, adaptive_importance_sampling

DTYPE = torch.float64


def _proposal(problem, kind="diagonal"):
    post = problem.exact_posterior()
    cov = post.scale_tril @ post.scale_tril.transpose(-1, -2)
    std = torch.diagonal(cov, dim1=-2, dim2=-1).sqrt()
    good = DiagNormal(post.loc + 0.5 * std, 1.5 * std)
    if kind == "diagonal":
        return good
    loc = torch.stack([good.loc, good.loc + 3.0], -2)
    scale = torch.stack([good.scale, torch.ones_like(good.scale)], -2)
    logits = torch.log(torch.tensor([0.7, 0.3], dtype=DTYPE)).expand(len(loc), 2)
    return NormalMixture(logits, loc, scale)


@pytest.mark.parametrize("kind", ["diagonal", "mixture"])
def test_estimates_match_the_gaussian_model(linear_gaussian, kind):
    problem = linear_gaussian
    est = adaptive_importance_sampling(
        problem.model(), problem.x_filled, problem.observed, _proposal(problem, kind),
        max_samples=20_000, chunk_size=4096, n_draws=5_000, conditional_mean=True,
        generator=torch.Generator().manual_seed(0),
    )
    assert (est.n_samples == 20_000).all()
    assert (est.log_likelihood - problem.exact_log_marginal()).abs().max() < 0.02
    expected_mean, expected_var = problem.exact_conditional()
    missing = ~problem.observed
    assert torch.equal(est.mean[problem.observed], problem.x[problem.observed])
    tolerance = 5 * torch.sqrt(expected_var[missing] / 5_000)
    assert ((est.mean[missing] - expected_mean[missing]).abs() < tolerance).all()
    # Resampled latents decoded with their noise follow the conditional.
    model = problem.model()
    x = model.likelihood.sample(model.decode(est.draws), torch.Generator().manual_seed(1))  # [M, B, D]
    draws = torch.where(problem.observed, problem.x_filled, x)
    torch.testing.assert_close(draws.var(0)[missing], expected_var[missing], rtol=0.1, atol=0)
    assert ((draws.mean(0)[missing] - expected_mean[missing]).abs() < 5 * torch.sqrt(expected_var[missing] / 2_000)).all()


def test_rows_stop_at_the_effective_sample_size(linear_gaussian):
    problem = linear_gaussian
    est = adaptive_importance_sampling(
        problem.model(), problem.x_filled, problem.observed, _proposal(problem, "mixture"),
        max_samples=1_000, min_effective_samples=40, chunk_size=32,
        generator=torch.Generator().manual_seed(0),
    )
    stopped = est.n_samples < 1_000
    assert stopped.all() and (est.n_samples % 32 == 0).all()
    assert (est.effective_sample_size >= 40).all()
    # One round fewer would not have reached the target: rows take about 40 / efficiency.
    assert (est.effective_sample_size < 40 * 32 / 8).all()


def test_row_streams_make_rows_independent_of_the_batch(linear_gaussian):
    problem = linear_gaussian
    q = _proposal(problem, "mixture")
    rows = torch.where(problem.observed, problem.x_filled, math.nan)

    def run(index):
        return adaptive_importance_sampling(
            problem.model(), problem.x_filled[index], problem.observed[index], q.rows(index),
            max_samples=500, min_effective_samples=30, chunk_size=32, n_draws=3, conditional_mean=True,
            generator=RowGenerator(7, rows[index]),
        )

    whole = run(torch.arange(8))
    parts = [run(torch.arange(0, 3)), run(torch.arange(3, 8))]
    for name in ("log_likelihood", "mean", "n_samples"):
        torch.testing.assert_close(torch.cat([getattr(p, name) for p in parts]), getattr(whole, name),
                                   rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(torch.cat([p.draws for p in parts], 1), whole.draws, rtol=1e-12, atol=1e-12)


def test_rows_without_a_usable_weight_stay_finite(linear_gaussian):
    problem = linear_gaussian
    q = _proposal(problem)
    far = DiagNormal(q.loc + 1e6, q.scale)  # every weight underflows to zero
    est = adaptive_importance_sampling(
        problem.model(), problem.x_filled, problem.observed, far, max_samples=64, n_draws=2,
        conditional_mean=True, generator=torch.Generator().manual_seed(0),
    )
    assert torch.isfinite(est.mean).all() and torch.isfinite(est.draws).all()
    assert (est.log_likelihood < -1e6).all()


def test_streaming_resampling_is_multinomial_over_all_rounds():
    # Rounds of draws with known weights: each pick lands on draw i with probability
    # w_i / sum(w), whatever the rounds they came in.
    rng = np.random.RandomState(0)
    weights = torch.as_tensor(rng.gamma(0.5, size=30), dtype=DTYPE)
    values = torch.arange(30, dtype=torch.float32)
    n_rows, n_draws = 400, 25
    generator = torch.Generator().manual_seed(3)
    picks = torch.zeros((n_rows, n_draws, 1))
    total = torch.zeros(n_rows, dtype=DTYPE)
    for chunk in torch.arange(30).split([7, 13, 10]):
        w = weights[chunk].expand(n_rows, -1)
        total = total + w.sum(-1)
        z = values[chunk].reshape(1, -1, 1).expand(n_rows, -1, 1)
        picks = _streaming_resample(picks, z, w, w.sum(-1), total, n_draws, generator)
    counts = np.bincount(picks.flatten().long().numpy(), minlength=30)
    expected = (weights / weights.sum()).numpy() * counts.sum()
    keep = expected > 5
    statistic = ((counts[keep] - expected[keep]) ** 2 / expected[keep]).sum()
    assert stats.chi2.sf(statistic, keep.sum() - 1) > 1e-3
