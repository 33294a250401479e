"""Semicontinuous columns: a point mass at the most frequent value plus a Gaussian."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from skmissvae import DeMissVAEImputer, MixtureVAEImputer

from _helpers import LEARNING_PARAMS

PARAMS = {**LEARNING_PARAMS, "n_impute_samples": 64}
TYPES = {"amount": "semicontinuous"}


def _mixture(**kw):
    """A small MIWAE-like imputer (one component, four particles)."""
    return MixtureVAEImputer(**{**PARAMS, "n_components": 1, "n_particles": 4, **kw})


def hurdle_table(n_samples=300, seed=0):
    """``(complete, incomplete)``: ``amount`` is exactly 0 when the latent ``t`` is below 0.

    ``x`` reveals ``t``, so a model that learns the hurdle knows from ``x`` whether a
    missing ``amount`` is 0. A quarter of ``x`` and of ``amount`` is missing.
    """
    rng = np.random.RandomState(seed)
    t = rng.standard_normal(n_samples)
    complete = pd.DataFrame({
        "x": t + 0.1 * rng.standard_normal(n_samples),
        "amount": np.where(t < 0, 0.0, 1.0 + t + 0.2 * rng.standard_normal(n_samples)),
    })
    incomplete = complete.copy()
    for column in complete:
        incomplete.loc[rng.rand(n_samples) < 0.25, column] = np.nan
    return complete, incomplete


@pytest.fixture(scope="module")
def table():
    return hurdle_table()


@pytest.fixture(scope="module")
def fitted(table):
    _, incomplete = table
    return _mixture(column_types=TYPES).fit(incomplete)


def test_a_semicontinuous_column_is_centred_on_its_atom(fitted, table):
    _, incomplete = table
    assert fitted.column_types_ == {"x": "continuous", "amount": "semicontinuous"}
    assert fitted.column_encoder_.blocks_ == [("gaussian", 1), ("zero_inflated", 1)]
    assert fitted.mean_[1] == 0.0  # the atom, not the mean
    assert fitted.mean_[0] == pytest.approx(incomplete["x"].mean())
    assert fitted.scale_[1] == pytest.approx(incomplete["amount"].std(ddof=0))


def test_draws_hit_the_atom_where_the_hurdle_says_so(fitted, table):
    complete, incomplete = table
    draws = fitted.sample_imputations(incomplete, n_imputations=200)
    assert draws.shape == (200, *incomplete.shape)
    missing = incomplete["amount"].isna().to_numpy()
    x = incomplete["x"].to_numpy()
    at_atom = (draws[:, :, 1] == 0.0).mean(axis=0)
    assert at_atom[missing & (x < -1)].mean() > 0.8
    assert at_atom[missing & (x > 1)].mean() < 0.2
    # Observed entries are kept in every draw; nothing is NaN.
    seen = incomplete.notna().to_numpy()
    np.testing.assert_array_equal(draws[:, seen], np.broadcast_to(incomplete.to_numpy()[seen], (200, seen.sum())))
    assert not np.isnan(draws).any()
    # A Gaussian column never draws the atom exactly.
    gaussian = _mixture().fit(incomplete)
    assert (gaussian.sample_imputations(incomplete, n_imputations=20)[:, missing, 1] == 0.0).sum() == 0


def test_conditional_mean_imputations(fitted, table):
    complete, incomplete = table
    out = fitted.transform(incomplete)
    assert isinstance(out, pd.DataFrame) and out.columns.tolist() == ["x", "amount"]
    seen = incomplete.notna()
    np.testing.assert_array_equal(out[seen].to_numpy()[seen.to_numpy()], incomplete.to_numpy()[seen.to_numpy()])
    # Where x is seen, the model knows t: far better than imputing the column's mean.
    rows = incomplete["amount"].isna().to_numpy() & incomplete["x"].notna().to_numpy()
    truth = complete["amount"].to_numpy()[rows]
    rmse = np.sqrt(np.mean((out["amount"].to_numpy()[rows] - truth) ** 2))
    mean_rmse = np.sqrt(np.mean((incomplete["amount"].mean() - truth) ** 2))
    assert rmse < 0.5 * mean_rmse


def test_scores_leave_the_atom_out_of_the_jacobian(table):
    _, incomplete = table
    a = _mixture(column_types=TYPES).fit(incomplete)
    scaled = incomplete.assign(amount=incomplete["amount"] * 10.0)
    b = _mixture(column_types=TYPES).fit(scaled)
    # Rescaling changes the density of a non-zero amount by -log 10, not the probability
    # of an exact 0 (which stays 0 after scaling).
    amount = incomplete["amount"].to_numpy()
    density = ~np.isnan(amount) & (amount != 0)
    assert density.any() and (amount == 0).any()
    difference = a.score_samples(incomplete) - b.score_samples(scaled)
    np.testing.assert_allclose(difference, np.where(density, np.log(10.0), 0.0), atol=2e-3)


def test_a_shifted_atom_gives_the_same_model(table, fitted):
    _, incomplete = table
    shifted = incomplete.assign(amount=incomplete["amount"] + 5.0)
    other = _mixture(column_types=TYPES).fit(shifted)
    assert other.column_encoder_.atoms_[1] == 5.0
    np.testing.assert_allclose(other.score_samples(shifted), fitted.score_samples(incomplete), atol=1e-4)
    np.testing.assert_allclose(other.transform(shifted)["amount"], fitted.transform(incomplete)["amount"] + 5.0,
                               atol=1e-4)
    draws = other.sample_imputations(shifted, n_imputations=5)[:, :, 1]
    assert (draws == 5.0).any()


def test_arrays_and_demissvae_take_semicontinuous_columns(table):
    _, incomplete = table
    X = incomplete.to_numpy()
    imputer = DeMissVAEImputer(**PARAMS, lair_iterations=1, n_transform_sweeps=2,
                               column_types={1: "semicontinuous"}).fit(X)
    assert imputer.column_types_ == {0: "continuous", 1: "semicontinuous"}
    out = imputer.transform(X)
    assert isinstance(out, np.ndarray) and out.shape == X.shape and np.isfinite(out).all()
    draws = imputer.sample_imputations(X, n_imputations=20)
    missing = np.isnan(X[:, 1])
    assert (draws[:, missing, 1] == 0.0).mean() > 0.2
    assert np.isfinite(imputer.score_samples(X)).all()


def test_semicontinuous_columns_must_hold_numbers(table):
    _, incomplete = table
    frame = incomplete.assign(s=["a", "b", "c"] * 100)
    with pytest.raises(ValueError, match="Semicontinuous column 's' holds values that are not numbers"):
        MixtureVAEImputer(**PARAMS, column_types={"s": "semicontinuous"}).fit(frame)
