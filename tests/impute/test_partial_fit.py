"""partial_fit: training block by block, with state kept in the estimator."""

import pickle
import warnings

import numpy as np
import pytest
import torch

from _helpers import FAST_PARAMS
from skmissvae import DeMissVAEImputer, MixtureVAEImputer, VAEEnsembleImputer, column_statistics

STREAM = dict(FAST_PARAMS, hidden_width=16, batch_size=32, learning_rate=3e-3, random_state=0)


def _table(n=480, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    x[:, 1] = x[:, 0] + 0.1 * x[:, 1]
    x[:, 2] = 3.0 * x[:, 2] + 10.0
    x[rng.random(x.shape) < 0.25] = np.nan
    return x


def _stream(estimator, blocks, round_trip=False):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for block in blocks:
            estimator.partial_fit(block)
            if round_trip:
                estimator = pickle.loads(pickle.dumps(estimator))
    return estimator


def _weights(estimator):
    return estimator.model_.state_dict()


def test_pickling_between_blocks_changes_nothing():
    blocks = np.array_split(_table(), 4) * 2  # two passes
    plain = _stream(MixtureVAEImputer(**STREAM), blocks)
    pickled = _stream(MixtureVAEImputer(**STREAM), blocks, round_trip=True)
    for name, value in _weights(plain).items():
        assert torch.equal(value, _weights(pickled)[name]), name
    X = _table(seed=1)
    np.testing.assert_array_equal(plain.transform(X), pickled.transform(X))
    assert plain.n_iter_ == pickled.n_iter_ == 8


def test_each_block_trains_and_the_score_improves():
    X, held_out = _table(), _table(seed=1)
    blocks = np.array_split(X, 4)
    estimator = _stream(MixtureVAEImputer(**STREAM), blocks[:1])
    first = estimator.score(held_out)
    estimator = _stream(estimator, blocks * 10)
    assert estimator.n_iter_ == 41 and len(estimator.loss_curve_) == 41
    assert estimator.score(held_out) > first + 0.5


def test_first_block_standardises_with_a_warning():
    X = _table()
    with pytest.warns(UserWarning, match="first block"):
        estimator = MixtureVAEImputer(**STREAM).partial_fit(X[:100])
    np.testing.assert_allclose(estimator.mean_, np.nanmean(X[:100], axis=0))


def test_column_statistics_give_the_whole_tables_standardisation():
    X = _table()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning with the whole table's statistics
        estimator = MixtureVAEImputer(**STREAM, column_statistics=column_statistics(X)).partial_fit(X[:100])
    whole = MixtureVAEImputer(**STREAM).fit(X)
    np.testing.assert_allclose(estimator.mean_, whole.mean_, rtol=1e-12)
    np.testing.assert_allclose(estimator.scale_, whole.scale_, rtol=1e-12)


def test_blocks_must_keep_the_columns_and_the_caller_data():
    X = _table()
    block = X[:100].copy()
    estimator = _stream(MixtureVAEImputer(**STREAM), [block])
    np.testing.assert_array_equal(block, X[:100])  # never modified
    with pytest.raises(ValueError, match="features"):
        estimator.partial_fit(X[:100, :3])


def test_a_block_without_observed_values_changes_nothing():
    estimator = _stream(MixtureVAEImputer(**STREAM), [_table()[:100]])
    before = {k: v.clone() for k, v in _weights(estimator).items()}
    estimator.partial_fit(np.full((10, 4), np.nan))
    assert all(torch.equal(before[k], v) for k, v in _weights(estimator).items())
    assert estimator.n_iter_ == 1


def test_partial_fit_continues_a_fitted_model_and_fit_starts_afresh():
    X = _table()
    estimator = MixtureVAEImputer(**STREAM).fit(X)
    fitted = {k: v.clone() for k, v in _weights(estimator).items()}
    estimator.partial_fit(X[:100])
    assert not all(torch.equal(fitted[k], v) for k, v in _weights(estimator).items())
    estimator.fit(X)
    assert all(torch.equal(fitted[k], v) for k, v in _weights(estimator).items())


def test_demissvae_refuses_to_stream_and_says_why():
    estimator = DeMissVAEImputer()
    assert not hasattr(estimator, "partial_fit")
    with pytest.raises(AttributeError) as error:
        estimator.partial_fit(_table())
    assert "every training row" in str(error.value.__cause__)
    assert not hasattr(VAEEnsembleImputer(DeMissVAEImputer()), "partial_fit")


def test_ensemble_streams_member_by_member():
    blocks = np.array_split(_table(), 3)
    ensemble = _stream(VAEEnsembleImputer(MixtureVAEImputer(**STREAM), n_estimators=2, random_state=0), blocks)
    assert [member.n_iter_ for member in ensemble.estimators_] == [3, 3]
    first, second = (_weights(member) for member in ensemble.estimators_)
    assert not all(torch.equal(first[k], second[k]) for k in first)  # their own seeds
    assert np.isfinite(ensemble.transform(_table(seed=1))).all()


def test_a_saved_stream_loads_and_continues(tmp_path):
    import skmissvae

    X = _table()
    estimator = _stream(MixtureVAEImputer(**STREAM), [X[:200]])
    skmissvae.save(estimator, tmp_path / "stream.skm")
    loaded = skmissvae.load(tmp_path / "stream.skm")
    np.testing.assert_array_equal(loaded.transform(X), estimator.transform(X))
    loaded.partial_fit(X[200:])  # a fresh optimiser, the same model
    assert loaded.n_iter_ == 2 and np.isfinite(loaded.transform(X)).all()


def test_partial_fit_with_learning_rate_auto_steps_at_the_long_run_rate():
    X = _table()
    imputer = MixtureVAEImputer(**{**STREAM, "learning_rate": "auto"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # standardisation from the first block
        imputer.partial_fit(X[:120])
    groups = imputer._stream_state_["optimizer"]["param_groups"]
    assert {group["lr"] for group in groups} == {1e-3}
