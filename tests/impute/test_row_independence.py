"""Monte Carlo is row-independent: a row's outputs depend on the row, the model and
``random_state`` only, never on the other rows of a call, their order or the batch size."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone

from _helpers import FAST_PARAMS, correlated_table
from skmissvae import DeMissVAEImputer, MixtureVAEImputer, VAEEnsembleImputer

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

ESTIMATORS = {
    "mixture": lambda: MixtureVAEImputer(**{**FAST_PARAMS, "n_components": 2, "n_particles": 4, "random_state": 0}),
    "demissvae": lambda: DeMissVAEImputer(**{**FAST_PARAMS, "max_iter": 2, "n_imputations": 2,
                                             "lair_iterations": 2, "n_transform_sweeps": 1, "random_state": 0}),
    "ensemble": lambda: VAEEnsembleImputer(MixtureVAEImputer(**FAST_PARAMS), n_estimators=2, random_state=0),
    # Rows stop drawing at their own effective sample size.
    "adaptive": lambda: MixtureVAEImputer(**{**FAST_PARAMS, "n_impute_samples": 300, "n_score_samples": 300,
                                             "min_effective_samples": 20, "random_state": 0}),
}


@pytest.fixture(scope="module", params=sorted(ESTIMATORS))
def fitted(request):
    X = correlated_table(120, seed=3)[1]
    return ESTIMATORS[request.param]().fit(X), X


def _split_and_stack(method, X, k, axis=0):
    return np.concatenate([method(X[:k]), method(X[k:])], axis=axis)


@pytest.mark.parametrize("k", [1, 17, 60, 119])
def test_outputs_of_a_split_table_stack_to_those_of_the_whole(fitted, k):
    imputer, X = fitted
    # Float32 round-off is allowed; a Monte-Carlo difference would be of order 1e-2 or more.
    assert_allclose(_split_and_stack(imputer.transform, X, k), imputer.transform(X), rtol=1e-6, atol=1e-6)
    assert_allclose(_split_and_stack(imputer.score_samples, X, k), imputer.score_samples(X), rtol=1e-6, atol=1e-6)
    draws = imputer.sample_imputations(X, 3)
    split = _split_and_stack(lambda part: imputer.sample_imputations(part, 3), X, k, axis=1)
    assert_allclose(split, draws, rtol=1e-6, atol=1e-6)


def test_outputs_follow_a_permutation_of_the_rows(fitted):
    imputer, X = fitted
    order = np.random.RandomState(0).permutation(len(X))
    assert_allclose(imputer.transform(X[order]), imputer.transform(X)[order], rtol=1e-6, atol=1e-6)
    assert_allclose(imputer.score_samples(X[order]), imputer.score_samples(X)[order], rtol=1e-6, atol=1e-6)
    assert_allclose(imputer.sample_imputations(X[order], 2), imputer.sample_imputations(X, 2)[:, order],
                    rtol=1e-6, atol=1e-6)


def test_dataframe_partitions_give_the_whole_table(fitted):
    imputer, X = fitted
    imputer = clone(imputer)
    frame = pd.DataFrame(X, columns=[f"c{j}" for j in range(X.shape[1])])
    whole = imputer.fit(frame).transform(frame)
    parts = pd.concat([imputer.transform(frame.iloc[rows]) for rows in np.array_split(np.arange(len(frame)), 4)])
    pd.testing.assert_frame_equal(parts, whole, rtol=1e-6, atol=1e-6)


def test_draws_of_different_rows_are_independent():
    # Many rows with the same single observed value but different missing patterns would
    # share one conditional; draw the missing column of two groups of distinct rows and
    # check that their draws do not move together across imputations.
    rng = np.random.RandomState(1)
    X, _ = correlated_table(200, seed=1)
    imputer = MixtureVAEImputer(**{**FAST_PARAMS, "random_state": 0}).fit(X)
    rows = np.tile(X[:1], (400, 1))
    rows[:, 1] = np.nan
    rows[:, 2] += rng.standard_normal(400) * 1e-3  # distinct rows, nearly the same conditional
    draws = imputer.sample_imputations(rows, 40)[:, :, 1]  # [M, N]
    centred = draws - draws.mean(axis=0)
    # Correlation across imputations between neighbouring rows: ~N(0, 1/sqrt(M)) if independent.
    a, b = centred[:, 0::2], centred[:, 1::2]
    correlation = (a * b).sum(0) / np.sqrt((a**2).sum(0) * (b**2).sum(0))
    assert abs(correlation.mean()) < 4 / np.sqrt(40 * correlation.size)
    # ... and the rows are not all drawn alike: the spread across rows matches the spread
    # across imputations of one row.
    assert draws[0].std() == pytest.approx(draws[:, 0].std(), rel=0.5)


def test_identical_rows_get_identical_draws_and_random_state_changes_them():
    X, _ = correlated_table(100, seed=2)
    imputer = MixtureVAEImputer(**{**FAST_PARAMS, "random_state": 0}).fit(X)
    rows = np.tile(X[:1], (3, 1))
    rows[:, 0] = np.nan
    draws = imputer.sample_imputations(rows, 4)
    assert_array_equal(draws[:, 0], draws[:, 1])
    other = imputer.set_params(random_state=1).sample_imputations(rows, 4)
    assert not np.array_equal(other, draws)


def test_stopping_at_an_effective_sample_size_keeps_the_estimates():
    X = correlated_table(150, seed=4)[1]
    full = MixtureVAEImputer(**{**FAST_PARAMS, "max_iter": 20, "n_impute_samples": 2000,
                                "n_score_samples": 2000, "min_effective_samples": None,
                                "random_state": 0}).fit(X)
    adaptive = clone(full).set_params(min_effective_samples=200)
    adaptive.fitted_model_ = full.fitted_model_  # the same model, fewer draws per row
    missing = np.isnan(X)
    scale = np.nanstd(X, axis=0)
    difference = (adaptive.transform(X) - full.transform(X)) / scale
    assert np.abs(difference[missing]).max() < 0.1
    assert abs(adaptive.score(X) - full.score(X)) < 0.05


@pytest.mark.parametrize("estimator", [MixtureVAEImputer, DeMissVAEImputer])
def test_auto_stops_imputations_early_and_scores_with_every_sample(estimator):
    X = correlated_table(150, seed=4)[1]
    imputer = estimator(**{**FAST_PARAMS, "max_iter": 20, "n_impute_samples": 2000,
                           "n_score_samples": 2000, "random_state": 0}).fit(X)
    assert imputer.min_effective_samples == "auto"  # the default

    def outputs(setting):
        imputer.set_params(min_effective_samples=setting)
        return imputer.transform(X), imputer.sample_imputations(X, 3), imputer.score_samples(X)

    auto, at_100, every_sample = outputs("auto"), outputs(100), outputs(None)
    assert_array_equal(auto[0], at_100[0])
    assert_array_equal(auto[1], at_100[1])
    assert_array_equal(auto[2], every_sample[2])
    # Each setting does change what it governs: rows did stop before 2,000 samples.
    assert not np.array_equal(auto[0], every_sample[0])
    assert not np.array_equal(auto[2], at_100[2])
