"""Evaluation protocols: latent-grid and refitted-encoder log-likelihoods, imputation metrics."""

import copy

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.exceptions import NotFittedError

from skmissvae import MixtureVAEImputer, VAEEnsembleImputer
from skmissvae.evaluation import (
    crps,
    energy_score,
    grid_log_likelihood,
    imputation_mae,
    imputation_rmse,
    refit_test_log_likelihood,
)

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


def test_grid_log_likelihood_of_an_ensemble_is_its_mixture(make_imputer, X_missing):
    member = make_imputer("MIWAE", latent_dim=2, hidden_width=16, n_score_samples=20_000)
    ensemble = VAEEnsembleImputer(member, n_estimators=2, random_state=0).fit(X_missing)
    X = X_missing[:20]
    grid = grid_log_likelihood(ensemble, X, grid_size=300)
    members = np.stack([grid_log_likelihood(m, X, grid_size=300) for m in ensemble.estimators_])
    assert grid.shape == (20,) and np.isfinite(grid).all()
    # The equal-weight mixture of the two members' densities, not e.g. their geometric mean.
    np.testing.assert_allclose(grid, np.logaddexp(members[0], members[1]) - np.log(2), rtol=1e-6)
    assert np.abs(members[0] - members[1]).max() > 0.5  # two different models
    assert np.median(np.abs(grid - ensemble.score_samples(X))) < 0.05
    with pytest.raises(ValueError, match="4 columns"):
        grid_log_likelihood(ensemble, X[:, :3])


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
    with pytest.raises(ValueError, match="features|columns"):
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


# --------------------------------------------------------------------------------------
# imputation_mae and input checks shared by the imputation metrics
# --------------------------------------------------------------------------------------
def test_imputation_mae_hand_computed():
    X_true = np.array([[1.0, 2.0], [3.0, 4.0]])
    X_imputed = np.array([[1.0, 5.0], [0.0, 3.0]])
    mask = np.array([[False, True], [True, True]])
    # |2-5| + |3-0| + |4-3| = 7 over 3 entries
    assert imputation_mae(X_true, X_imputed, mask) == pytest.approx(7 / 3)


@pytest.mark.parametrize("metric", [imputation_rmse, imputation_mae])
def test_single_imputation_metrics_reject_bad_shapes_and_values(metric):
    X = np.zeros((3, 2))
    mask = np.array([[True, False], [False, False], [False, True]])
    with pytest.raises(ValueError, match="shape"):
        metric(X, np.zeros((3, 3)), mask)
    with pytest.raises(ValueError, match="shape"):
        metric(X, X, mask[:2])
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="X_imputed has non-finite"):
        metric(X, bad, mask)
    with pytest.raises(ValueError, match="boolean"):
        metric(X, X, np.full((3, 2), 2))


# --------------------------------------------------------------------------------------
# crps and energy_score
# --------------------------------------------------------------------------------------
def test_crps_of_a_point_mass_is_the_absolute_error():
    rng = np.random.RandomState(0)
    X_true = rng.standard_normal((40, 3))
    X_imputed = X_true + rng.standard_normal((40, 3))
    mask = rng.rand(40, 3) < 0.5
    expected = imputation_mae(X_true, X_imputed, mask)
    assert crps(X_true, X_imputed[None], mask) == pytest.approx(expected)
    # Identical draws are still a point mass.
    assert crps(X_true, np.repeat(X_imputed[None], 7, axis=0), mask) == pytest.approx(expected)


def test_crps_hand_computed():
    # Draws {0, 2}, truth 1: E|X - y| = 1, E|X - X'| = (0 + 2 + 2 + 0) / 4 = 1 -> 0.5.
    X_true = np.array([[1.0]])
    draws = np.array([[[0.0]], [[2.0]]])
    assert crps(X_true, draws, np.array([[True]])) == pytest.approx(0.5)
    # Draws {0, 1, 5}, truth 2: E|X-y| = (2+1+3)/3 = 2, E|X-X'| = 2 * (1 + 5 + 4) / 9 = 20/9.
    draws = np.array([0.0, 1.0, 5.0]).reshape(3, 1, 1)
    assert crps(np.array([[2.0]]), draws, np.array([[True]])) == pytest.approx(2 - 10 / 9)


def test_crps_is_minimised_by_the_true_distribution():
    # y ~ N(0, 1): draws from N(0, 1) score best, shifted or mis-scaled draws worse.
    rng = np.random.RandomState(1)
    y = rng.standard_normal((1500, 2))
    mask = np.ones_like(y, dtype=bool)
    noise = rng.standard_normal((100, 1500, 2))
    true = crps(y, noise, mask)
    # Expected CRPS of the true N(0, 1) with M draws (V-statistic): (1 + 1/M) / sqrt(pi).
    assert true == pytest.approx((1 + 1 / 100) / np.sqrt(np.pi), abs=0.02)
    for wrong in (noise + 0.5, 2.0 * noise, 0.5 * noise, np.zeros_like(noise)):
        assert crps(y, wrong, mask) > true + 0.02


def test_energy_score_equals_crps_with_one_missing_entry_per_row():
    rng = np.random.RandomState(2)
    X_true = rng.standard_normal((30, 4))
    draws = rng.standard_normal((9, 30, 4))
    mask = np.zeros((30, 4), dtype=bool)
    mask[np.arange(30), rng.randint(4, size=30)] = True
    assert energy_score(X_true, draws, mask) == pytest.approx(crps(X_true, draws, mask))


def test_energy_score_point_mass_and_dependence():
    rng = np.random.RandomState(3)
    X_true = rng.standard_normal((20, 3))
    mask = np.ones((20, 3), dtype=bool)
    X_imputed = X_true + 1.0
    # A point mass: the Euclidean error per row, sqrt(3) here.
    assert energy_score(X_true, X_imputed[None], mask) == pytest.approx(np.sqrt(3))
    # Perfectly correlated truth (x1 = x2): draws with the right dependence score better
    # than independent draws with the same marginals.
    t = rng.standard_normal(2000)
    y = np.column_stack([t, t])
    z = rng.standard_normal((60, 2000))
    dependent = np.stack([z, z], axis=-1)
    independent = np.stack([z, rng.standard_normal((60, 2000))], axis=-1)
    full = np.ones_like(y, dtype=bool)
    assert energy_score(y, dependent, full) < energy_score(y, independent, full) - 0.02


@pytest.mark.parametrize("score", [crps, energy_score])
def test_multiple_imputation_scores_validate_input(score):
    X = np.zeros((4, 2))
    mask = np.array([[True, False]] * 4)
    with pytest.raises(ValueError, match="imputations must have shape"):
        score(X, np.zeros((4, 2)), mask)  # a single imputation without the draws axis
    with pytest.raises(ValueError, match="imputations must have shape"):
        score(X, np.zeros((3, 4, 3)), mask)
    with pytest.raises(ValueError, match="no entries"):
        score(X, np.zeros((3, 4, 2)), np.zeros((4, 2), dtype=bool))
    draws = np.zeros((3, 4, 2))
    draws[1, 2, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        score(X, draws, mask)


def test_multiple_imputation_scores_of_a_fitted_imputer(make_imputer, table):
    # Draws of a fitted model beat both a point mass at the column mean and mean-imputation
    # draws scattered with the column spread (the right marginal, no dependence).
    X_complete, X_missing = table(n_samples=300, missing_rate=0.2)
    missing = np.isnan(X_missing)
    missing[:, 3] = False  # independent noise column: nothing to learn
    imputer = make_imputer("MIWAE", hidden_width=16, max_iter=20, learning_rate=1e-2, n_impute_samples=50)
    draws = imputer.fit(X_missing).sample_imputations(X_missing, n_imputations=20)
    X_before = draws.copy()
    model_crps = crps(X_complete, draws, missing)
    assert np.isfinite(model_crps)
    mean, std = np.nanmean(X_missing, axis=0), np.nanstd(X_missing, axis=0)
    marginal = mean + std * np.random.RandomState(0).standard_normal(draws.shape)
    assert model_crps < 0.6 * crps(X_complete, marginal, missing)
    assert energy_score(X_complete, draws, missing) < 0.6 * energy_score(X_complete, marginal, missing)
    np.testing.assert_array_equal(draws, X_before)  # metrics never modify their inputs


# --------------------------------------------------------------------------------------
# refit_test_log_likelihood
# --------------------------------------------------------------------------------------
def _state(estimator):
    return {k: v.clone() for k, v in estimator.model_.state_dict().items()}


def test_refit_without_random_state_leaves_numpy_global_generator_alone(trained_2d, table):
    imputer, _ = trained_2d
    X_test = table(n_samples=20, seed=1)[0]
    np.random.seed(7)
    refit_test_log_likelihood(imputer, X_test, n_refit_epochs=1, n_importance_samples=4)
    assert np.random.randint(1_000_000) == np.random.RandomState(7).randint(1_000_000)


def test_refit_does_not_lower_the_test_iwelbo_and_leaves_the_estimator_unchanged(trained_2d, table):
    imputer, _ = trained_2d
    X_test = table(n_samples=200, seed=1)[0]
    before = _state(imputer)
    flags = [p.requires_grad for p in imputer.model_.parameters()]
    score_before = imputer.score(X_test)
    # Few importance samples keep the bound sensitive to the encoder; the tolerance covers
    # the Monte-Carlo noise of a mean over 200 rows.
    kwargs = dict(n_importance_samples=20, random_state=0)
    plain = refit_test_log_likelihood(imputer, X_test, n_refit_epochs=0, **kwargs)
    refit = refit_test_log_likelihood(imputer, X_test, n_refit_epochs=20, learning_rate=1e-3, **kwargs)
    assert plain.shape == refit.shape == (200,) and np.isfinite(refit).all()
    assert refit.mean() >= plain.mean() - 0.05
    for key, value in _state(imputer).items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)
    assert [p.requires_grad for p in imputer.model_.parameters()] == flags
    assert imputer.score(X_test) == score_before


def test_refit_repairs_a_damaged_encoder_and_reaches_the_grid_value(trained_2d, table):
    # A copy whose encoder is scrambled: the plain IWELBO collapses, the refit recovers the
    # decoder's log-likelihood (frozen decoder: the grid value is the ceiling).
    imputer, _ = trained_2d
    X_test = table(n_samples=200, seed=1)[0][:60]
    damaged = copy.deepcopy(imputer)
    with torch.no_grad():
        generator = torch.Generator().manual_seed(0)
        for p in damaged.model_.encoder.parameters():
            p.add_(0.5 * torch.randn(p.shape, generator=generator))
    grid = grid_log_likelihood(imputer, X_test, grid_size=300).mean()
    kwargs = dict(n_importance_samples=2000, random_state=0)
    plain = refit_test_log_likelihood(damaged, X_test, n_refit_epochs=0, **kwargs).mean()
    refit = refit_test_log_likelihood(damaged, X_test, n_refit_epochs=150, learning_rate=3e-3, **kwargs).mean()
    assert refit > plain + 0.05
    assert refit <= grid + 0.02  # a lower bound (Monte-Carlo tolerance)
    assert refit > grid - 0.1


def test_refit_is_deterministic_and_in_data_units(make_imputer, X_missing, table):
    X_test = table(n_samples=50, seed=2)[0]
    imputer = make_imputer("MissSIWAE").fit(X_missing)
    kwargs = dict(n_refit_epochs=2, n_importance_samples=50, n_refit_particles=3, random_state=4)
    first = refit_test_log_likelihood(imputer, X_test, **kwargs)
    np.testing.assert_array_equal(first, refit_test_log_likelihood(imputer, X_test, **kwargs))
    # Same model fitted on c * X: the log-likelihood shifts by -D log c per complete row.
    c = 8.0
    scaled = make_imputer("MissSIWAE").fit(c * X_missing)
    np.testing.assert_allclose(
        refit_test_log_likelihood(scaled, c * X_test, **kwargs), first - X_test.shape[1] * np.log(c), rtol=1e-4
    )


@pytest.mark.parametrize("method", ["MVAE", "MissVAE", "MissSVAE"])
def test_refit_runs_for_each_encoder_kind(make_imputer, X_missing, table, method):
    X_test = table(n_samples=30, seed=3)[0]
    imputer = make_imputer(method).fit(X_missing)
    out = refit_test_log_likelihood(imputer, X_test, n_refit_epochs=2, n_importance_samples=20, random_state=0)
    assert out.shape == (30,) and np.isfinite(out).all()
    # Incomplete test rows are scored on their observed entries.
    out = refit_test_log_likelihood(imputer, X_missing[:30], n_refit_epochs=1, n_importance_samples=20)
    assert np.isfinite(out).all()


def test_refit_with_demissvae(X_missing, table):
    from skmissvae import DeMissVAEImputer

    X_test = table(n_samples=40, seed=4)[0]
    imputer = DeMissVAEImputer(
        latent_dim=2, hidden_width=8, n_hidden_blocks=1, max_iter=2, batch_size=32, early_stopping=False,
        n_imputations=2, lair_iterations=1, device="cpu", random_state=0,
    ).fit(X_missing)
    before = _state(imputer)
    out = refit_test_log_likelihood(imputer, X_test, n_refit_epochs=3, n_importance_samples=20, random_state=0)
    assert out.shape == (40,) and np.isfinite(out).all()
    for key, value in _state(imputer).items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)


def test_refit_of_an_ensemble_scores_the_mixture_of_its_members(make_imputer, X_missing, table):
    member = make_imputer("MIWAE", latent_dim=2, hidden_width=16)
    ensemble = VAEEnsembleImputer(member, n_estimators=2, random_state=0).fit(X_missing)
    X_test = table(n_samples=40, seed=5)[0]
    before = [_state(m) for m in ensemble.estimators_]
    kwargs = dict(n_refit_epochs=3, n_importance_samples=2000, random_state=0)
    out = refit_test_log_likelihood(ensemble, X_test, **kwargs)
    assert out.shape == (40,) and np.isfinite(out).all()
    np.testing.assert_array_equal(out, refit_test_log_likelihood(ensemble, X_test, **kwargs))
    grid = grid_log_likelihood(ensemble, X_test, grid_size=300)
    members = np.stack([grid_log_likelihood(m, X_test, grid_size=300) for m in ensemble.estimators_])
    assert out.mean() <= grid.mean() + 0.02  # a lower bound on the mixture (Monte-Carlo tolerance)
    # Closer to the mixture than the members' average log-likelihood (Jensen's gap) is.
    assert np.mean(np.abs(out - grid)) < 0.5 * np.mean(grid - members.mean(axis=0))
    for estimator, state in zip(ensemble.estimators_, before):
        for key, value in _state(estimator).items():
            torch.testing.assert_close(value, state[key], rtol=0, atol=0)


def test_refit_validates_arguments(trained_2d, make_imputer, X_missing):
    imputer, X = trained_2d
    with pytest.raises(ValueError, match="n_refit_epochs"):
        refit_test_log_likelihood(imputer, X, n_refit_epochs=-1)
    with pytest.raises(ValueError, match="n_importance_samples"):
        refit_test_log_likelihood(imputer, X, n_importance_samples=0)
    with pytest.raises(TypeError, match="n_refit_particles"):
        refit_test_log_likelihood(imputer, X, n_refit_particles=2.5)
    with pytest.raises(ValueError, match="learning_rate"):
        refit_test_log_likelihood(imputer, X, learning_rate=0)
    with pytest.raises(ValueError, match="features|columns"):
        refit_test_log_likelihood(imputer, X[:, :3], n_refit_epochs=0)
    with pytest.raises(NotFittedError):
        refit_test_log_likelihood(make_imputer(), X_missing)


def test_grid_log_likelihood_rejects_mixed_type_models(make_imputer):
    rng = np.random.RandomState(0)
    frame = pd.DataFrame({"x": rng.normal(size=60), "y": rng.normal(size=60),
                          "c": pd.Categorical(rng.choice(["a", "b"], size=60))})
    frame.loc[::3, "x"] = np.nan
    imputer = make_imputer(latent_dim=2).fit(frame)
    with pytest.raises(ValueError, match="continuous columns only"):
        grid_log_likelihood(imputer, frame)


def test_refit_on_a_mixed_type_model_matches_score_and_is_in_data_units(make_imputer):
    # Only the continuous columns carry a standardisation Jacobian: scaling them by c shifts
    # each row's log-likelihood by -(number of continuous entries observed) * log c.
    rng = np.random.RandomState(0)
    z = rng.normal(size=90)
    frame = pd.DataFrame({"x": z + 0.3 * rng.normal(size=90), "y": rng.normal(size=90) - z,
                          "c": pd.Categorical(np.where(z > 0, "hi", "lo"))})
    frame.loc[::4, "x"] = np.nan
    kwargs = dict(n_importance_samples=200, random_state=0)
    imputer = make_imputer(latent_dim=2).fit(frame)
    plain = refit_test_log_likelihood(imputer, frame, n_refit_epochs=0, **kwargs)
    assert np.isfinite(plain).all()
    assert abs(plain.mean() - imputer.score(frame)) < 0.05  # same estimator, other draws
    refit = refit_test_log_likelihood(imputer, frame, n_refit_epochs=2, **kwargs)
    c = 8.0
    scaled = frame.assign(x=c * frame["x"], y=c * frame["y"])
    refit_scaled = refit_test_log_likelihood(make_imputer(latent_dim=2).fit(scaled), scaled, n_refit_epochs=2, **kwargs)
    n_continuous = frame[["x", "y"]].notna().sum(axis=1).to_numpy()
    np.testing.assert_allclose(refit_scaled, refit - n_continuous * np.log(c), rtol=1e-4, atol=1e-4)


def test_refit_without_epochs_equals_score_samples_at_a_point_mass():
    # A semicontinuous column at its point mass has a probability, not a density: no
    # Jacobian term. Both paths take it from the table encoder.
    rng = np.random.RandomState(0)
    n = 150
    amount = np.where(rng.rand(n) < 0.5, 0.0, 30.0 * rng.gamma(2.0, size=n))
    X = np.column_stack([rng.standard_normal(n) * 5.0, amount])
    X[rng.rand(n) < 0.2, 0] = np.nan
    imputer = MixtureVAEImputer(latent_dim=2, hidden_width=8, n_hidden_blocks=1, max_iter=3,
                                early_stopping=False, n_score_samples=64, random_state=0,
                                column_types={1: "semicontinuous"}).fit(X)
    at_atom = X[:, 1] == 0.0
    assert at_atom.sum() > 20 and np.log(imputer.scale_[1]) > 2  # the bug would show clearly
    refit = refit_test_log_likelihood(imputer, X, n_refit_epochs=0, n_importance_samples=64, random_state=0)
    np.testing.assert_allclose(refit, imputer.score_samples(X), rtol=1e-6, atol=1e-6)
