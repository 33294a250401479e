"""Missingness generators and mixture-of-Gaussians data with known densities."""

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from skmissvae.datasets import MixtureOfGaussians, make_mar, make_mcar, make_mixture_of_gaussians, make_mnar


def scipy_log_likelihood(mixture, X):
    """log p(x_o) per row by scipy: mixture of the observed marginals."""
    out = np.empty(len(X))
    for i, row in enumerate(X):
        o = ~np.isnan(row)
        if not o.any():
            out[i] = np.log(mixture.weights.sum())
            continue
        terms = [
            np.log(w) + multivariate_normal(mu[o], cov[np.ix_(o, o)]).logpdf(row[o])
            for w, mu, cov in zip(mixture.weights, mixture.means, mixture.covariances)
        ]
        out[i] = logsumexp(terms)
    return out


@pytest.fixture
def mixture():
    return make_mixture_of_gaussians(n_samples=10, n_features=3, n_components=4, random_state=1)[1]


# --------------------------------------------------------------------------------------
# make_mcar
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(50, 4), (7, 3), (1, 5), (100, 1)])
@pytest.mark.parametrize("rate", [0.0, 0.1, 0.25, 0.5, 0.999])
def test_make_mcar_hides_exactly_floor_rate_n_d(shape, rate):
    X = np.arange(np.prod(shape), dtype=float).reshape(shape)
    X_missing, observed = make_mcar(X, rate, random_state=0)
    assert X_missing.shape == shape and observed.shape == shape
    assert observed.dtype == bool
    assert np.isnan(X_missing).sum() == int(np.floor(rate * shape[0] * shape[1]))
    assert_array_equal(observed, ~np.isnan(X_missing))
    assert_array_equal(X_missing[observed], X[observed])


def test_make_mcar_does_not_modify_input_and_returns_a_copy():
    X = np.random.RandomState(0).standard_normal((30, 4))
    X_before = X.copy()
    X_missing, _ = make_mcar(X, 0.4, random_state=0)
    assert_array_equal(X, X_before)
    assert not np.shares_memory(X, X_missing)
    # Lists and integer arrays are accepted (float64 out).
    X_missing_list, _ = make_mcar(X.tolist(), 0.4, random_state=0)
    assert_array_equal(X_missing_list, X_missing)
    X_int = np.arange(12).reshape(4, 3)
    out, _ = make_mcar(X_int, 0.5, random_state=0)
    assert out.dtype == np.float64
    assert_array_equal(X_int, np.arange(12).reshape(4, 3))


def test_make_mcar_is_deterministic_with_random_state():
    X = np.ones((40, 5))
    a, mask_a = make_mcar(X, 0.3, random_state=3)
    b, mask_b = make_mcar(X, 0.3, random_state=3)
    c, mask_c = make_mcar(X, 0.3, random_state=4)
    assert_array_equal(mask_a, mask_b)
    assert_array_equal(a, b)
    assert not np.array_equal(mask_a, mask_c)
    d, mask_d = make_mcar(X, 0.3, random_state=np.random.RandomState(3))
    assert_array_equal(mask_a, mask_d)


def test_make_mcar_does_not_touch_global_rngs():
    np.random.seed(0)
    torch.manual_seed(0)
    np_state, torch_state = np.random.get_state(), torch.get_rng_state()
    make_mcar(np.ones((20, 3)), 0.5, random_state=1)
    make_mcar(np.ones((20, 3)), 0.5, random_state=None)
    assert_array_equal(np.random.get_state()[1], np_state[1])
    assert np.random.get_state()[2] == np_state[2]
    assert torch.equal(torch.get_rng_state(), torch_state)


def test_make_mcar_is_uniform_over_cells():
    # Every cell is equally likely to be hidden: per-column and per-row rates match.
    masks = np.stack([make_mcar(np.ones((20, 5)), 0.3, random_state=s)[1] for s in range(400)])
    missing_rate = 1 - masks.mean(axis=0)  # per cell
    assert_allclose(missing_rate, 0.3, atol=0.09)  # binomial(400, 0.3): sd 0.023
    assert abs(missing_rate.mean() - 0.3) < 1e-12  # exact count every time


def test_make_mcar_drop_empty_rows():
    X = np.arange(200, dtype=float).reshape(100, 2)
    X_kept, observed_kept = make_mcar(X, 0.6, random_state=0)
    X_dropped, observed_dropped = make_mcar(X, 0.6, drop_empty_rows=True, random_state=0)
    empty = ~observed_kept.any(axis=1)
    assert empty.sum() > 0  # the test needs some empty rows to drop
    assert_array_equal(observed_dropped, observed_kept[~empty])
    assert_array_equal(np.isnan(X_dropped), np.isnan(X_kept[~empty]))
    assert_array_equal(X_dropped[observed_dropped], X[~empty][observed_dropped])
    assert observed_dropped.any(axis=1).all()
    assert len(X_dropped) == len(X) - empty.sum()
    # Without empty rows, drop_empty_rows changes nothing.
    a, _ = make_mcar(X, 0.1, random_state=0)
    b, _ = make_mcar(X, 0.1, drop_empty_rows=True, random_state=0)
    assert_array_equal(a, b)


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5])
def test_make_mcar_rejects_bad_rate(rate):
    with pytest.raises(ValueError, match="missing_rate"):
        make_mcar(np.ones((3, 3)), rate)


def test_make_mcar_rejects_non_2d_and_bad_random_state():
    with pytest.raises(ValueError, match="2-D"):
        make_mcar(np.ones(5), 0.5)
    with pytest.raises(ValueError, match="random_state"):
        make_mcar(np.ones((3, 3)), 0.5, random_state="seed")


# --------------------------------------------------------------------------------------
# MixtureOfGaussians
# --------------------------------------------------------------------------------------
def test_log_likelihood_of_complete_rows_matches_scipy(mixture):
    X = mixture.sample(50, random_state=0)
    expected = logsumexp(
        [
            np.log(w) + multivariate_normal(mu, cov).logpdf(X)
            for w, mu, cov in zip(mixture.weights, mixture.means, mixture.covariances)
        ],
        axis=0,
    )
    assert_allclose(mixture.log_likelihood(X), expected, rtol=1e-10, atol=1e-10)


def test_log_likelihood_of_incomplete_rows_matches_scipy_marginals(mixture):
    X = mixture.sample(60, random_state=2)
    X_missing, _ = make_mcar(X, 0.4, random_state=0)
    X_missing[0] = np.nan  # nothing observed: log p(x_o) = log 1 = 0
    result = mixture.log_likelihood(X_missing)
    assert_allclose(result, scipy_log_likelihood(mixture, X_missing), rtol=1e-10, atol=1e-10)
    assert result[0] == pytest.approx(0.0, abs=1e-12)
    # Row order does not matter (rows are grouped by pattern internally).
    perm = np.random.RandomState(0).permutation(len(X_missing))
    assert_allclose(mixture.log_likelihood(X_missing[perm]), result[perm], rtol=1e-12)


def test_log_likelihood_integrates_to_one_in_1d():
    mixture = MixtureOfGaussians(
        weights=np.array([0.3, 0.7]),
        means=np.array([[-2.0], [1.0]]),
        covariances=np.array([[[0.25]], [[1.5]]]),
    )
    grid = np.linspace(-12, 12, 20001)[:, None]
    density = np.exp(mixture.log_likelihood(grid))
    assert np.trapezoid(density, grid[:, 0]) == pytest.approx(1.0, abs=1e-8)


def test_conditional_mean_matches_monte_carlo_one_pattern(mixture):
    # Pattern: x0 observed, x1 and x2 missing. E[x_m | x_o] by self-normalised importance
    # sampling from the joint density (scipy), independent of the closed form.
    rng = np.random.RandomState(0)
    X = mixture.sample(5, random_state=3)
    X_missing = X.copy()
    X_missing[:, 1:] = np.nan
    closed_form = mixture.conditional_mean(X_missing)
    assert_array_equal(closed_form[:, 0], X[:, 0])  # observed entries copied

    n_draws, proposal_scale = 400_000, 3.0
    for i in range(len(X)):
        x_m = rng.standard_normal((n_draws, 2)) * proposal_scale
        full = np.column_stack([np.full(n_draws, X[i, 0]), x_m])
        log_joint = logsumexp(
            [
                np.log(w) + multivariate_normal(mu, cov).logpdf(full)
                for w, mu, cov in zip(mixture.weights, mixture.means, mixture.covariances)
            ],
            axis=0,
        )
        log_w = log_joint - multivariate_normal(np.zeros(2), proposal_scale**2 * np.eye(2)).logpdf(x_m)
        w = np.exp(log_w - log_w.max())
        mc_mean = (w[:, None] * x_m).sum(0) / w.sum()
        assert_allclose(closed_form[i, 1:], mc_mean, atol=0.03)
        # The same draws give log p(x_0) as a check of the marginal.
        mc_log_lik = logsumexp(log_w) - np.log(n_draws)
        assert mixture.log_likelihood(X_missing[i : i + 1])[0] == pytest.approx(mc_log_lik, abs=0.02)


def test_conditional_mean_of_complete_and_empty_rows(mixture):
    X = mixture.sample(10, random_state=4)
    assert_array_equal(mixture.conditional_mean(X), X)
    empty = np.full((2, 3), np.nan)
    overall_mean = mixture.weights @ mixture.means / mixture.weights.sum()
    assert_allclose(mixture.conditional_mean(empty), np.tile(overall_mean, (2, 1)), atol=1e-12)


def test_conditional_mean_single_gaussian_closed_form():
    cov = np.array([[2.0, 0.6], [0.6, 1.0]])
    mixture = MixtureOfGaussians(np.array([1.0]), np.array([[1.0, -1.0]]), cov[None])
    X = np.array([[3.0, np.nan], [np.nan, 0.5]])
    expected = np.array([[3.0, -1.0 + 0.6 / 2.0 * (3.0 - 1.0)], [1.0 + 0.6 / 1.0 * (0.5 + 1.0), 0.5]])
    assert_allclose(mixture.conditional_mean(X), expected, rtol=1e-12)


def test_conditional_mean_does_not_modify_input(mixture):
    X, _ = make_mcar(mixture.sample(20, random_state=0), 0.3, random_state=0)
    X_before = X.copy()
    mixture.log_likelihood(X)
    out = mixture.conditional_mean(X)
    assert_array_equal(X, X_before)
    assert not np.isnan(out).any()


def test_sample_moments(mixture):
    X = mixture.sample(200_000, random_state=0)
    w = mixture.weights / mixture.weights.sum()
    mean = w @ mixture.means
    second = np.einsum("k,kij->ij", w, mixture.covariances + np.einsum("ki,kj->kij", mixture.means, mixture.means))
    assert_allclose(X.mean(axis=0), mean, atol=0.02)
    assert_allclose(np.cov(X.T), second - np.outer(mean, mean), atol=0.03)
    assert_array_equal(mixture.sample(5, random_state=1), mixture.sample(5, random_state=1))


# --------------------------------------------------------------------------------------
# make_mixture_of_gaussians
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_make_mixture_of_gaussians_is_standardised(seed):
    X, mixture = make_mixture_of_gaussians(n_samples=20_000, n_features=4, n_components=6, random_state=seed)
    assert X.shape == (20_000, 4)
    assert mixture.weights.shape == (6,) and mixture.means.shape == (6, 4)
    assert mixture.covariances.shape == (6, 4, 4)
    assert mixture.weights.sum() == pytest.approx(1.0)
    # Exactly standardised under the mixture ...
    mean = mixture.weights @ mixture.means
    second = np.einsum(
        "k,kij->ij", mixture.weights, mixture.covariances + np.einsum("ki,kj->kij", mixture.means, mixture.means)
    )
    assert_allclose(mean, 0.0, atol=1e-12)
    assert_allclose(np.diag(second) - mean**2, 1.0, rtol=1e-10)
    # ... and approximately in the sample.
    assert_allclose(X.mean(axis=0), 0.0, atol=0.05)
    assert_allclose(X.std(axis=0), 1.0, atol=0.05)
    # Valid covariances.
    assert np.all(np.linalg.eigvalsh(mixture.covariances) > 0)


def test_make_mixture_of_gaussians_is_deterministic():
    X1, m1 = make_mixture_of_gaussians(n_samples=100, random_state=5)
    X2, m2 = make_mixture_of_gaussians(n_samples=100, random_state=5)
    X3, _ = make_mixture_of_gaussians(n_samples=100, random_state=6)
    assert_array_equal(X1, X2)
    assert_array_equal(m1.means, m2.means)
    assert not np.array_equal(X1, X3)
    assert X1.shape == (100, 5)  # default n_features


def test_make_mixture_of_gaussians_data_follow_the_mixture():
    # The returned data are draws from the returned mixture: their average log-likelihood
    # under it beats that under another seed's mixture.
    X, mixture = make_mixture_of_gaussians(n_samples=2000, n_features=3, n_components=5, random_state=0)
    _, other = make_mixture_of_gaussians(n_samples=10, n_features=3, n_components=5, random_state=1)
    assert mixture.log_likelihood(X).mean() > other.log_likelihood(X).mean() + 0.1


# --------------------------------------------------------------------------------------
# make_mar and make_mnar
# --------------------------------------------------------------------------------------
def _gaussian_table(n_samples=4000, n_features=6, seed=0):
    """Correlated Gaussian columns with different offsets and scales."""
    rng = np.random.RandomState(seed)
    latent = rng.standard_normal((n_samples, 2))
    X = latent @ rng.standard_normal((2, n_features)) + 0.5 * rng.standard_normal((n_samples, n_features))
    return X * np.arange(1, n_features + 1) + 10.0 * np.arange(n_features)


GENERATORS = {
    "mar": lambda X, rate, **kw: make_mar(X, rate, **kw),
    "self_masking": lambda X, rate, **kw: make_mnar(X, rate, mechanism="self_masking", **kw),
    "quantile": lambda X, rate, **kw: make_mnar(X, rate, mechanism="quantile", **kw),
}


@pytest.fixture(params=sorted(GENERATORS), ids=str)
def generator(request):
    return GENERATORS[request.param]


@pytest.mark.parametrize("rate", [0.1, 0.3, 0.5])
def test_mar_mnar_hit_the_requested_rate(generator, rate):
    X = _gaussian_table()
    X_missing, observed = generator(X, rate, random_state=0)
    assert X_missing.shape == X.shape and observed.dtype == bool
    # Expected rate exactly (calibrated intercepts); Bernoulli noise over 24,000 cells.
    assert abs((~observed).mean() - rate) < 0.015
    assert_array_equal(observed, ~np.isnan(X_missing))
    assert_array_equal(X_missing[observed], X[observed])


def test_mar_mnar_return_copies_and_accept_lists(generator):
    X = _gaussian_table(200, 4)
    before = X.copy()
    X_missing, observed = generator(X, 0.3, random_state=0)
    assert_array_equal(X, before)
    assert not np.shares_memory(X, X_missing)
    X_list, observed_list = generator(X.tolist(), 0.3, random_state=0)
    assert_array_equal(observed_list, observed)
    assert X_list.dtype == np.float64


def test_mar_mnar_are_deterministic_and_leave_global_rngs_alone(generator):
    X = _gaussian_table(300, 4)
    np.random.seed(0)
    state = np.random.get_state()
    a = generator(X, 0.3, random_state=5)[1]
    assert_array_equal(a, generator(X, 0.3, random_state=np.random.RandomState(5))[1])
    generator(X, 0.3, random_state=None)
    assert_array_equal(np.random.get_state()[1], state[1])
    assert np.random.get_state()[2] == state[2]


def test_mar_mnar_zero_rate_hides_nothing(generator):
    X = _gaussian_table(50, 3)
    X_missing, observed = generator(X, 0.0, random_state=0)
    assert observed.all()
    assert_array_equal(X_missing, X)


def test_make_mar_drivers_are_observed_and_drive_missingness():
    X = _gaussian_table(n_features=5)
    X_missing, observed = make_mar(X, 0.3, driver_columns=[0, 2], random_state=1)
    assert observed[:, [0, 2]].all()
    targets = [1, 3, 4]
    # Each target column loses 0.3 * 5 / 3 = 0.5 of its entries (in expectation).
    assert_allclose((~observed[:, targets]).mean(axis=0), 0.5, atol=0.03)
    # MAR, not MCAR: missingness of each target column correlates with the drivers.
    linear = np.linalg.lstsq(
        np.column_stack([np.ones(len(X)), X[:, [0, 2]]]), ~observed[:, targets], rcond=None
    )[0]
    prediction = np.column_stack([np.ones(len(X)), X[:, [0, 2]]]) @ linear
    correlations = [np.corrcoef(prediction[:, j], ~observed[:, t])[0, 1] for j, t in enumerate(targets)]
    assert min(correlations) > 0.2
    # strength=0 removes the dependence (MCAR within the target columns).
    _, flat = make_mar(X, 0.3, driver_columns=[0, 2], strength=0.0, random_state=1)
    assert max(abs(np.corrcoef(X[:, 0], ~flat[:, t])[0, 1]) for t in targets) < 0.06


def test_make_mar_default_drivers():
    X = _gaussian_table(500, 10)
    _, observed = make_mar(X, 0.2, random_state=0)
    assert observed.all(axis=0).sum() == 3  # round(0.3 * 10) always-observed columns
    _, observed = make_mar(X[:, :2], 0.2, random_state=0)
    assert observed.all(axis=0).sum() == 1
    assert observed.any(axis=1).all()  # drivers keep every row non-empty


def test_make_mnar_self_masking_hides_large_values():
    X = _gaussian_table()
    _, observed = make_mnar(X, 0.3, random_state=0)
    for j in range(X.shape[1]):
        assert X[~observed[:, j], j].mean() > X[observed[:, j], j].mean() + 0.5 * X[:, j].std()
    # Negative strength hides small values instead.
    _, observed = make_mnar(X, 0.3, strength=-2.0, random_state=0)
    assert X[~observed[:, 0], 0].mean() < X[observed[:, 0], 0].mean()


def test_make_mnar_quantile_censors_above_a_quantile_exactly():
    X = _gaussian_table(1000, 4)
    _, observed = make_mnar(X, 0.25, mechanism="quantile", random_state=0)
    assert_array_equal((~observed).sum(axis=0), [250] * 4)
    for j in range(4):
        assert X[~observed[:, j], j].min() > X[observed[:, j], j].max()
    # Ties at the threshold are broken at random, the count stays exact.
    ties = np.repeat([[0.0], [1.0]], [60, 40], axis=0)
    masks = [make_mnar(ties, 0.5, mechanism="quantile", random_state=s)[1] for s in range(2)]
    for m in masks:
        assert (~m).sum() == 50 and (~m[60:]).all()  # all 40 ones missing, and 10 of the zeros
    assert not np.array_equal(masks[0], masks[1])


def test_make_mnar_columns_subset_and_drop_empty_rows():
    X = _gaussian_table(400, 4)
    _, observed = make_mnar(X, 0.2, mechanism="quantile", columns=[1, 3], random_state=0)
    assert observed[:, [0, 2]].all()
    assert_array_equal((~observed).sum(axis=0), [0, 160, 0, 160])  # 0.2 * 4 / 2 = 0.4 per column
    X1 = X[:, :1]
    X_missing, observed = make_mnar(X1, 0.4, drop_empty_rows=True, random_state=0)
    assert observed.all() and len(X_missing) < len(X1)


@pytest.mark.parametrize("rate", [-0.1, 1.0])
def test_mar_mnar_reject_bad_rates(generator, rate):
    with pytest.raises(ValueError, match="missing_rate"):
        generator(np.ones((10, 3)) * np.arange(3), rate)


def test_mar_mnar_reject_bad_input():
    X = _gaussian_table(20, 3)
    with pytest.raises(TypeError, match="missing_rate"):
        make_mar(X, "0.3")
    with pytest.raises(ValueError, match="2-D"):
        make_mnar(X[:, 0], 0.3)
    bad = X.copy()
    bad[0, 1] = np.nan
    for fn in (make_mar, make_mnar):
        with pytest.raises(ValueError, match="complete and finite"):
            fn(bad, 0.3)
    with pytest.raises(ValueError, match="mechanism"):
        make_mnar(X, 0.3, mechanism="censoring")
    with pytest.raises(ValueError, match="at least 2 columns"):
        make_mar(X[:, :1], 0.3)
    with pytest.raises(ValueError, match="driver_columns"):
        make_mar(X, 0.3, driver_columns=[3])
    with pytest.raises(ValueError, match="at least one column"):
        make_mar(X, 0.3, driver_columns=[0, 1, 2])
    with pytest.raises(ValueError, match="non-driver columns"):
        make_mar(X, 0.7, driver_columns=[0, 1])  # 0.7 * 3 / 1 >= 1
    with pytest.raises(ValueError, match="columns"):
        make_mnar(X, 0.5, columns=[0])  # 0.5 * 3 / 1 >= 1
    with pytest.raises(ValueError, match="random_state"):
        make_mnar(X, 0.3, random_state="seed")
