"""VAEEnsembleImputer: members, averaging, draws, scores and the scikit-learn contract."""

import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.impute import SimpleImputer
from sklearn.model_selection import GridSearchCV
from sklearn.utils.estimator_checks import parametrize_with_checks

from _helpers import FAST_PARAMS, correlated_table
from skmissvae import DeMissVAEImputer, MixtureVAEImputer, VAEEnsembleImputer

pytestmark = [
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
    pytest.mark.filterwarnings("ignore:.*partial_fit standardises the data with the first block:UserWarning"),
]

MEMBER = MixtureVAEImputer(**FAST_PARAMS)


@pytest.fixture(scope="module")
def data():
    return correlated_table(n_samples=80)


@pytest.fixture(scope="module")
def fitted(data):
    _, X = data
    return VAEEnsembleImputer(MEMBER, n_estimators=3, random_state=0).fit(X)


def test_members_are_fitted_clones_with_distinct_seeds(fitted):
    members = fitted.estimators_
    assert len(members) == 3
    assert all(m is not MEMBER and m.n_features_in_ == 4 for m in members)
    assert len({m.random_state for m in members}) == 3
    assert MEMBER.random_state is None  # the template itself is left alone


def test_transform_averages_members_and_keeps_observed_entries(data, fitted):
    _, X = data
    before = X.copy()
    out = fitted.transform(X)
    missing = np.isnan(X)
    members = np.stack([m.transform(X) for m in fitted.estimators_])
    np.testing.assert_allclose(out[missing], members.mean(axis=0)[missing], rtol=1e-10)
    assert np.array_equal(out[~missing], X[~missing])  # bit for bit
    assert np.isfinite(out).all()
    np.testing.assert_array_equal(X, before)  # the caller's array is not modified
    # the members really differ, so the average is not one of them
    assert not np.allclose(members[0][missing], members[1][missing])


def test_single_member_ensemble_is_its_member(data):
    _, X = data
    ensemble = VAEEnsembleImputer(MEMBER, n_estimators=1, random_state=3).fit(X)
    member = ensemble.estimators_[0]
    np.testing.assert_allclose(ensemble.transform(X), member.transform(X), rtol=1e-12)
    np.testing.assert_allclose(ensemble.score_samples(X), member.score_samples(X), rtol=1e-12)


def test_score_samples_is_the_log_mean_of_member_likelihoods(data, fitted):
    _, X = data
    members = np.stack([m.score_samples(X) for m in fitted.estimators_])
    scores = fitted.score_samples(X)
    expected = np.log(np.mean(np.exp(members), axis=0))
    np.testing.assert_allclose(scores, expected, rtol=1e-8)
    assert np.all(scores >= members.min(axis=0)) and np.all(scores <= members.max(axis=0))
    assert fitted.score(X) == pytest.approx(scores.mean())


def test_draws_take_members_in_turn(data, fitted):
    _, X = data
    draws = fitted.sample_imputations(X, n_imputations=5)
    assert draws.shape == (5, *X.shape)
    missing = np.isnan(X)
    for m, member in enumerate(fitted.estimators_):
        own = member.sample_imputations(X, n_imputations=len(range(m, 5, 3)))
        np.testing.assert_allclose(draws[m::3], own, rtol=1e-12)
    assert all(np.array_equal(d[~missing], X[~missing]) for d in draws)
    assert fitted.sample_imputations(X, n_imputations=2).shape == (2, *X.shape)  # fewer draws than members
    with pytest.raises(ValueError, match="n_imputations"):
        fitted.sample_imputations(X, n_imputations=0)


def test_same_seed_same_outputs_other_seed_other_outputs(data, fitted):
    _, X = data
    again = VAEEnsembleImputer(MEMBER, n_estimators=3, random_state=0).fit(X)
    other = VAEEnsembleImputer(MEMBER, n_estimators=3, random_state=1).fit(X)
    np.testing.assert_array_equal(again.transform(X), fitted.transform(X))
    assert not np.array_equal(other.transform(X), fitted.transform(X))


def test_no_global_random_generator_is_used(data):
    _, X = data
    np.random.seed(123)
    torch_state = torch.random.get_rng_state()
    ensemble = VAEEnsembleImputer(MEMBER, n_estimators=2).fit(X)  # random_state=None
    ensemble.transform(X)
    ensemble.sample_imputations(X, 2)
    assert np.random.randint(1_000_000) == np.random.RandomState(123).randint(1_000_000)
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    first, second = (m.transform(X) for m in ensemble.estimators_)
    assert not np.allclose(first, second)  # the members were trained from different seeds


def test_parallel_fit_matches_sequential_fit(data, fitted):
    _, X = data
    parallel = VAEEnsembleImputer(MEMBER, n_estimators=3, n_jobs=2, random_state=0).fit(X)
    np.testing.assert_allclose(parallel.transform(X), fitted.transform(X), rtol=1e-5, atol=1e-6)


def test_dataframe_in_dataframe_out(data):
    _, X = data
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"], index=np.arange(100, 100 + len(X)))
    ensemble = VAEEnsembleImputer(MEMBER, n_estimators=2, random_state=0).fit(frame)
    out = ensemble.transform(frame)
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == ["a", "b", "c", "d"] and out.index.equals(frame.index)
    assert list(ensemble.get_feature_names_out()) == ["a", "b", "c", "d"]
    assert list(ensemble.feature_names_in_) == ["a", "b", "c", "d"]
    on_array = VAEEnsembleImputer(MEMBER, n_estimators=2, random_state=0).set_output(transform="pandas")
    assert isinstance(on_array.fit(X).transform(X), pd.DataFrame)


def test_categorical_columns_take_the_mode_of_the_averaged_probabilities():
    rng = np.random.RandomState(0)
    level = rng.randint(3, size=90)
    frame = pd.DataFrame({
        "x": level + 0.1 * rng.standard_normal(90),
        "kind": pd.Categorical(np.array(["p", "q", "r"])[level]),
    })
    holes = frame.copy()
    holes.loc[::3, "kind"] = np.nan
    ensemble = VAEEnsembleImputer(MEMBER, n_estimators=3, random_state=0).fit(holes)
    out = ensemble.transform(holes)
    assert isinstance(out["kind"].dtype, pd.CategoricalDtype)
    # The members' predictive probabilities of the category block, averaged by hand.
    first = ensemble.estimators_[0]
    values, observed = first.fitted_model_.table.encode(holes)
    probabilities = [m.fitted_model_.impute(values, observed, n_samples=m.n_impute_samples, random_state=m.random_state)
                     for m in ensemble.estimators_]
    block = next(c for c in first.column_encoder_.columns_ if c.label == "kind")
    modes = [np.asarray(block.levels)[p[:, block.start : block.stop].argmax(axis=1)] for p in probabilities]
    expected = np.asarray(block.levels)[np.mean(probabilities, axis=0)[:, block.start : block.stop].argmax(axis=1)]
    missing = holes["kind"].isna().to_numpy()
    assert (out["kind"].to_numpy()[missing] == expected[missing]).all()
    # Members disagree on some rows, so one member alone would not pass.
    assert any((mode[missing] != expected[missing]).any() for mode in modes)


def test_demissvae_members_are_averaged(data):
    _, X = data
    member = DeMissVAEImputer(**FAST_PARAMS)
    ensemble = VAEEnsembleImputer(member, n_estimators=2, random_state=0).fit(X)
    missing = np.isnan(X)
    members = np.stack([m.transform(X) for m in ensemble.estimators_])
    np.testing.assert_allclose(ensemble.transform(X)[missing], members.mean(axis=0)[missing], rtol=1e-10)
    assert np.isfinite(ensemble.score(X))


def test_float32_in_float32_out(data):
    _, X = data
    X32 = X.astype(np.float32)
    ensemble = VAEEnsembleImputer(MEMBER, n_estimators=2, random_state=0).fit(X32)
    assert ensemble.transform(X32).dtype == np.float32
    assert ensemble.score_samples(X32).dtype == np.float32
    assert ensemble.sample_imputations(X32, 2).dtype == np.float32


def test_empty_column_and_empty_row(data):
    _, X = data
    X = X.copy()
    X[:, 2] = np.nan  # a column with no observed value
    X[5] = np.nan  # a row with no observed value
    dropped = VAEEnsembleImputer(MEMBER, n_estimators=3, random_state=0).fit(X)
    assert dropped.transform(X).shape == (len(X), 3)
    assert list(dropped.get_feature_names_out()) == ["x0", "x1", "x3"]
    assert dropped.score_samples(X)[5] == 0.0  # exactly, as for a single imputer
    kept = VAEEnsembleImputer(clone(MEMBER).set_params(keep_empty_features=True), n_estimators=2, random_state=0)
    out = kept.fit(X).transform(X)
    assert out.shape == X.shape and np.all(out[:, 2] == 0.0) and np.isfinite(out).all()


def test_refit_replaces_everything_fitted(data):
    _, X = data
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    ensemble = VAEEnsembleImputer(MEMBER, n_estimators=2, random_state=0).fit(frame)
    ensemble.fit(X)
    assert not hasattr(ensemble, "feature_names_in_")
    with pytest.raises(ValueError):
        ensemble.fit(np.full((4, 3), np.nan))  # nothing observed: the refit fails
    assert not hasattr(ensemble, "estimators_")
    with pytest.raises(NotFittedError):
        ensemble.transform(X)


def test_without_random_state_every_call_draws_afresh(data):
    _, X = data
    ensemble = VAEEnsembleImputer(MEMBER, n_estimators=2).fit(X)
    assert not np.array_equal(ensemble.sample_imputations(X, 2), ensemble.sample_imputations(X, 2))


def test_errors_name_the_ensemble(fitted):
    with pytest.raises(ValueError, match="X has 3 features, but VAEEnsembleImputer is expecting 4"):
        fitted.transform(np.zeros((5, 3)))


def test_pickle_round_trip_gives_identical_outputs(data, fitted):
    _, X = data
    loaded = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(loaded.transform(X), fitted.transform(X))
    np.testing.assert_array_equal(loaded.score_samples(X), fitted.score_samples(X))


def test_grid_search_tunes_by_score(data):
    _, X = data
    search = GridSearchCV(VAEEnsembleImputer(MEMBER, random_state=0), {"n_estimators": [1, 2]}, cv=2).fit(X)
    assert search.best_params_["n_estimators"] in (1, 2)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()


@pytest.mark.parametrize("estimator", [SimpleImputer(), "MixtureVAEImputer"])
def test_rejects_an_estimator_that_is_not_a_vae_imputer(data, estimator):
    _, X = data
    with pytest.raises(ValueError, match="estimator must be a MixtureVAEImputer or DeMissVAEImputer"):
        VAEEnsembleImputer(estimator).fit(X)


def test_rejects_a_bad_number_of_members(data):
    _, X = data
    with pytest.raises(ValueError, match="n_estimators"):
        VAEEnsembleImputer(MEMBER, n_estimators=0).fit(X)


@parametrize_with_checks(
    [VAEEnsembleImputer(MixtureVAEImputer(**dict(FAST_PARAMS, batch_size=16, max_iter=2)), n_estimators=2, random_state=0),
     # The members' options shared with scikit-learn's imputers.
     VAEEnsembleImputer(MixtureVAEImputer(**dict(FAST_PARAMS, batch_size=16, max_iter=2), missing_values=-12345,
                                          add_indicator=True, min_value=-1e3, max_value=1e3, n_jobs=1),
                        n_estimators=2, random_state=0)],
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
