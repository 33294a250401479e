"""Evaluation protocols: latent-grid log-likelihood and imputation RMSE."""

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError

from skmissvae.evaluation import grid_log_likelihood, imputation_rmse

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def trained_2d(make_imputer, table):
    """A small MIWAE model with a 2-D latent space, trained for 30 epochs, and its data."""
    _, X_missing = table(n_samples=200)
    imputer = make_imputer(
        "MIWAE", latent_dim=2, hidden_width=16, max_iter=30, learning_rate=1e-2, n_score_samples=20_000
    )
    return imputer.fit(X_missing), X_missing


def test_grid_log_likelihood_agrees_with_score_samples(trained_2d):
    imputer, X_missing = trained_2d
    X = X_missing[:30]
    grid = grid_log_likelihood(imputer, X, grid_size=300)
    iwelbo = imputer.score_samples(X)
    assert grid.shape == (30,) and np.isfinite(grid).all()
    diff = grid - iwelbo
    # Importance-sampling estimates with 20k draws: typical rows agree to a few hundredths
    # of a nat; the estimator is heavy-tailed, so bound the worst row loosely.
    assert np.median(np.abs(diff)) < 0.05
    assert abs(np.mean(diff)) < 0.05
    assert np.max(np.abs(diff)) < 0.5
    # Units: both are in the units of X (column 3 has scale 100, i.e. 4.6 nats per entry).
    assert np.mean(grid) < -5


def test_grid_log_likelihood_converges_in_grid_size(trained_2d):
    imputer, X_missing = trained_2d
    X = X_missing[:10]
    coarse = grid_log_likelihood(imputer, X, grid_size=300)
    fine = grid_log_likelihood(imputer, X)  # the paper's 500 x 500 grid
    np.testing.assert_allclose(coarse, fine, atol=5e-3)


def test_grid_log_likelihood_of_empty_row_is_zero(trained_2d):
    # Nothing observed: log p(x_o) = log int p(z) dz = 0; the grid must integrate the prior.
    imputer, _ = trained_2d
    result = grid_log_likelihood(imputer, np.full((2, 4), np.nan), grid_size=300)
    np.testing.assert_allclose(result, 0.0, atol=1e-4)


def test_grid_log_likelihood_accepts_dataframe_and_is_row_wise(trained_2d):
    imputer, X_missing = trained_2d
    X = X_missing[:12]
    full = grid_log_likelihood(imputer, X, grid_size=200)
    np.testing.assert_allclose(grid_log_likelihood(imputer, X[::-1], grid_size=200), full[::-1], rtol=1e-5)
    np.testing.assert_allclose(grid_log_likelihood(imputer, X[3:5], grid_size=200), full[3:5], rtol=1e-5)
    df = pd.DataFrame(X)
    np.testing.assert_allclose(grid_log_likelihood(imputer, df, grid_size=200), full, rtol=1e-5)


def test_grid_log_likelihood_scales_with_the_data(make_imputer, X_missing):
    # Fitting on c * X gives the same model; the grid must apply the Jacobian like score_samples.
    c = 8.0
    n_observed = (~np.isnan(X_missing)).sum(axis=1)
    base = make_imputer("MVAE").fit(X_missing)
    scaled = make_imputer("MVAE").fit(c * X_missing)
    np.testing.assert_allclose(
        grid_log_likelihood(scaled, c * X_missing[:8], grid_size=100),
        grid_log_likelihood(base, X_missing[:8], grid_size=100) - n_observed[:8] * np.log(c),
        rtol=1e-5,
    )


def test_grid_log_likelihood_one_dimensional_latent(make_imputer, X_missing):
    imputer = make_imputer("MIWAE", latent_dim=1, n_score_samples=5_000).fit(X_missing)
    grid = grid_log_likelihood(imputer, X_missing[:10], grid_size=2000)
    assert grid.shape == (10,)
    assert np.median(np.abs(grid - imputer.score_samples(X_missing[:10]))) < 0.05


@pytest.mark.parametrize("latent_dim", [3, 5])
def test_grid_log_likelihood_rejects_large_latent(make_imputer, X_missing, latent_dim):
    imputer = make_imputer(latent_dim=latent_dim).fit(X_missing)
    with pytest.raises(ValueError, match="latent_dim"):
        grid_log_likelihood(imputer, X_missing)


def test_grid_log_likelihood_needs_a_fitted_estimator(make_imputer, X_missing):
    with pytest.raises(NotFittedError):
        grid_log_likelihood(make_imputer(), X_missing)


def test_grid_log_likelihood_validates_input(trained_2d):
    imputer, X_missing = trained_2d
    with pytest.raises(ValueError, match="features"):
        grid_log_likelihood(imputer, X_missing[:, :3], grid_size=50)


# --------------------------------------------------------------------------------------
# imputation_rmse
# --------------------------------------------------------------------------------------
def test_imputation_rmse_hand_computed():
    X_true = np.array([[1.0, 2.0], [3.0, 4.0]])
    X_imputed = np.array([[1.0, 5.0], [0.0, 4.0]])
    mask = np.array([[False, True], [True, False]])
    # errors 3 and 3 on the masked entries -> rmse 3
    assert imputation_rmse(X_true, X_imputed, mask) == pytest.approx(3.0)
    mask = np.array([[False, True], [False, False]])
    assert imputation_rmse(X_true, X_imputed, mask) == pytest.approx(3.0)
    mask = np.array([[True, True], [True, True]])
    assert imputation_rmse(X_true, X_imputed, mask) == pytest.approx(np.sqrt(18 / 4))


def test_imputation_rmse_ignores_unmasked_entries():
    X_true = np.array([[1.0, np.nan], [3.0, 4.0]])
    X_imputed = np.array([[2.0, 100.0], [3.0, np.inf]])
    mask = np.array([[True, False], [True, False]])
    result = imputation_rmse(X_true, X_imputed, mask)
    assert isinstance(result, float)
    assert result == pytest.approx(np.sqrt(0.5))


def test_imputation_rmse_accepts_lists_and_dataframes():
    X_true = pd.DataFrame([[0.0, 0.0], [0.0, 0.0]])
    X_imputed = [[3.0, 4.0], [0.0, 0.0]]
    mask = [[1, 1], [0, 0]]
    assert imputation_rmse(X_true, X_imputed, mask) == pytest.approx(np.sqrt(12.5))


def test_imputation_rmse_empty_mask_raises():
    with pytest.raises(ValueError, match="no entries"):
        imputation_rmse(np.ones((2, 2)), np.ones((2, 2)), np.zeros((2, 2), dtype=bool))


def test_imputation_rmse_of_fitted_imputer_below_mean_imputation(make_imputer, table):
    X_complete, X_missing = table(n_samples=300, missing_rate=0.2)
    missing = np.isnan(X_missing)
    missing[:, 3] = False  # column 3 is independent noise: nothing to learn there
    imputer = make_imputer("MIWAE", hidden_width=16, max_iter=20, learning_rate=1e-2, n_impute_samples=50)
    model_rmse = imputation_rmse(X_complete, imputer.fit_transform(X_missing), missing)
    mean_rmse = imputation_rmse(X_complete, np.where(missing, np.nanmean(X_missing, axis=0), X_missing), missing)
    assert 0 < model_rmse < 0.5 * mean_rmse
