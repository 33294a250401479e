"""Behaviour of DeMissVAEImputer (fast settings; both samplers where it matters)."""

from __future__ import annotations

import copy
import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning, NotFittedError

from _helpers import FAST_PARAMS, script_validation
from skmissvae import DeMissVAEImputer

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

FAST = dict(
    FAST_PARAMS,
    n_imputations=3,
    lair_iterations=2,
    n_transform_sweeps=2,
    pool_size=50,
    random_state=0,
)

FITTED_ATTRIBUTES = [
    "model_", "imputation_pool_", "mean_", "scale_", "loss_curve_", "validation_scores_",
    "best_iteration_", "n_iter_", "fit_time_", "device_", "n_features_in_",
]


def make(**overrides) -> DeMissVAEImputer:
    return DeMissVAEImputer(**{**FAST, **overrides})


@pytest.fixture(params=["lair", "pseudo_gibbs"])
def sampler(request):
    return request.param


def bits(a):
    a = np.ascontiguousarray(a)
    return a.view({4: np.uint32, 8: np.uint64}[a.dtype.itemsize])


def all_outputs(imputer, X, n_imputations=3):
    return (
        np.asarray(imputer.transform(X)),
        imputer.score_samples(X),
        imputer.sample_imputations(X, n_imputations=n_imputations),
    )


# --------------------------------------------------------------------------------------
# outputs
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_output_shapes_and_dtypes(X_missing, dtype):
    if np.issubdtype(dtype, np.integer):
        X, expected = np.round(np.nan_to_num(X_missing, nan=0.0)).astype(dtype), np.float64
    else:
        X, expected = X_missing.astype(dtype), dtype
    n, d = X.shape
    imputer = make().fit(X)
    Xt = imputer.transform(X)
    assert isinstance(Xt, np.ndarray) and Xt.shape == (n, d) and Xt.dtype == expected
    scores = imputer.score_samples(X)
    assert scores.shape == (n,) and scores.dtype == expected and np.isfinite(scores).all()
    draws = imputer.sample_imputations(X, n_imputations=4)
    assert draws.shape == (4, n, d) and draws.dtype == expected
    assert imputer.score(X) == pytest.approx(float(np.mean(scores.astype(np.float64))), rel=1e-5)
    assert_array_equal(clone(imputer).fit_transform(X), Xt)


def test_observed_entries_bit_identical_and_no_nan(X_missing, sampler):
    X = X_missing.copy()
    X[0, 0], X[1, 1], X[2, 2], X[3, 3] = -0.0, 1e-300, -2.0 + 1e-13, np.nextafter(100.0, 200.0)
    X[4] = np.nan  # a row with nothing observed
    observed = ~np.isnan(X)
    imputer = make(sampler=sampler).fit(X)
    Xt = imputer.transform(X)
    assert np.isfinite(Xt).all()
    assert_array_equal(bits(Xt)[observed], bits(X)[observed])
    assert (Xt[~observed] != 0).any()
    draws = imputer.sample_imputations(X, n_imputations=3)
    assert np.isfinite(draws).all()
    for draw in draws:
        assert_array_equal(bits(draw)[observed], bits(X)[observed])
    assert not np.array_equal(draws[0][~observed], draws[1][~observed])
    assert np.isfinite(imputer.score_samples(X)).all()


def test_transform_of_complete_data_is_identity(table):
    X_complete, X_missing = table()
    imputer = make().fit(X_missing)
    assert_array_equal(bits(imputer.transform(X_complete)), bits(X_complete))
    for draw in imputer.sample_imputations(X_complete, n_imputations=2):
        assert_array_equal(draw, X_complete)


def test_fully_missing_column_at_fit(X_missing):
    X = X_missing.copy()
    X[:, 2] = np.nan
    imputer = make().fit(X)
    assert np.isnan(imputer.imputation_pool_[:, 2]).all()
    assert np.isfinite(imputer.transform(X)).all()
    assert np.isfinite(imputer.score_samples(X)).all()


def test_pandas_in_pandas_out_and_set_output(X_missing):
    columns = ["height", "weight", "age", "income"]
    df = pd.DataFrame(X_missing, columns=columns, index=np.arange(len(X_missing)) * 3 + 1)
    imputer = make().fit(df)
    assert_array_equal(imputer.feature_names_in_, columns)
    out = imputer.transform(df)
    assert isinstance(out, pd.DataFrame)
    pd.testing.assert_index_equal(out.index, df.index)
    pd.testing.assert_index_equal(out.columns, df.columns)
    assert not out.isna().any().any()
    assert_allclose(out.to_numpy(), make().fit(X_missing).transform(X_missing), rtol=1e-6)

    out = make().set_output(transform="pandas").fit(X_missing).transform(X_missing)
    assert isinstance(out, pd.DataFrame) and list(out.columns) == ["x0", "x1", "x2", "x3"]


# --------------------------------------------------------------------------------------
# fitted state and the imputation store
# --------------------------------------------------------------------------------------
def test_fitted_attributes_only_after_fit(X_missing):
    imputer = make()
    for name in FITTED_ATTRIBUTES:
        assert not hasattr(imputer, name), name
    for call in (imputer.transform, imputer.score_samples, imputer.sample_imputations):
        with pytest.raises(NotFittedError):
            call(X_missing)
    assert imputer.fit(X_missing) is imputer
    for name in FITTED_ATTRIBUTES:
        assert hasattr(imputer, name), name
    assert imputer.model_.n_components == 1 and not imputer.model_.encoder_uses_mask
    assert imputer.n_iter_ == 3 and len(imputer.loss_curve_) == 3
    assert np.isfinite(imputer.loss_curve_).all()
    # The store is freed after fit: no attribute holds an [N, K, D] array or tensor.
    assert not hasattr(imputer, "imputations_")
    for value in vars(imputer).values():
        assert getattr(value, "shape", (0,))[:2] != (len(X_missing), imputer.n_imputations)


def test_imputation_pool_is_a_bounded_sample_of_observed_values(X_missing):
    imputer = make(pool_size=20).fit(X_missing)
    pool = imputer.imputation_pool_
    assert pool.shape == (20, 4)
    for d in range(4):
        column = X_missing[~np.isnan(X_missing[:, d]), d]
        values = pool[~np.isnan(pool[:, d]), d]
        assert len(values) == min(20, len(column))
        # Each pooled value is one of the column's observed values (up to float32).
        assert np.abs(values[:, None] - column[None, :]).min(axis=1).max() < 1e-5 * np.abs(column).max()
    big = make(pool_size=10_000).fit(X_missing).imputation_pool_
    assert big.shape == (int((~np.isnan(X_missing)).sum(0).max()), 4)


@pytest.mark.parametrize("early_stopping", [False, True])
def test_keep_imputations_and_refresh_from_the_second_epoch(X_missing, early_stopping):
    observed = ~np.isnan(X_missing)
    params = dict(keep_imputations=True, early_stopping=early_stopping, validation_fraction=0.2)

    first = make(max_iter=1, **params).fit(X_missing)
    store = first.imputations_
    assert store.shape == (len(X_missing), 3, 4) and store.dtype == X_missing.dtype
    assert_array_equal(store[:, 0][observed], X_missing[observed])
    # One epoch: still the empirical initialisation -- every missing entry is an observed
    # value of its column.
    for d in range(4):
        column = X_missing[observed[:, d], d]
        filled = store[:, :, d][~observed[:, d]].ravel()
        assert np.abs(filled[:, None] - column[None, :]).min(axis=1).max() < 1e-4

    second = make(max_iter=2, **params).fit(X_missing)
    store = second.imputations_
    for k in range(3):
        assert_array_equal(bits(store[:, k][observed]), bits(X_missing[observed]))
    assert np.isfinite(store).all()
    # Two epochs: every row (validation rows included) was refreshed by the sampler.
    for d in range(4):
        column = X_missing[observed[:, d], d]
        filled = store[:, :, d][~observed[:, d]].ravel()
        assert np.abs(filled[:, None] - column[None, :]).min(axis=1).min() > 0

    assert not hasattr(make(max_iter=1).fit(X_missing), "imputations_")
    refit = second.set_params(keep_imputations=False).fit(X_missing)
    assert not hasattr(refit, "imputations_")


def test_encoder_uses_mask_parameter(X_missing):
    imputer = make(encoder_uses_mask=True).fit(X_missing)
    assert imputer.model_.encoder_uses_mask
    assert imputer.model_.encoder.input.in_features == 8
    assert make().fit(X_missing).model_.encoder.input.in_features == 4
    assert np.isfinite(imputer.transform(X_missing)).all()


def test_min_scale_is_the_decoder_floor(X_missing):
    # A floor of 2 column sds: far above what an untrained decoder gives (softplus(0) = 0.69).
    imputer = make(min_scale=2.0).fit(X_missing)
    assert imputer.model_.likelihood.min_scale == 2.0
    draws = imputer.sample_imputations(X_missing, n_imputations=200)
    missing = np.isnan(X_missing)
    spread = draws.std(axis=0) / imputer.scale_
    assert spread[missing].min() > 1.6


def test_early_stopping_stops_on_a_sustained_fall(X_missing, monkeypatch):
    script_validation(monkeypatch, [-5.0, -4.0, -4.5, -4.6])
    imputer = make(early_stopping=True, validation_fraction=0.2, n_iter_no_change=2, max_iter=40, tol=0.1)
    imputer.fit(X_missing)
    assert imputer.n_iter_ == 4 and imputer.best_iteration_ == 2
    assert imputer.validation_scores_ == [-5.0, -4.0, -4.5, -4.6]


def test_validation_scores_are_recorded_and_finite(X_missing):
    imputer = make(early_stopping=True, validation_fraction=0.2, max_iter=4).fit(X_missing)
    assert len(imputer.validation_scores_) == imputer.n_iter_ == 4
    assert np.isfinite(imputer.validation_scores_).all()


def test_verbose_and_callbacks(X_missing, capsys):
    seen = []
    def stop_after_two(est, info):
        seen.append(info["epoch"])
        return info["epoch"] >= 2

    make(verbose=2, callbacks=[stop_after_two]).fit(X_missing)
    assert seen == [1, 2]
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 2 and captured.out == ""


def test_training_improves_objective(X_missing, sampler):
    imputer = make(sampler=sampler, max_iter=12, learning_rate=1e-2, batch_size=16).fit(X_missing)
    assert imputer.loss_curve_[-1] < imputer.loss_curve_[0]


def test_learns_correlations_beats_mean_imputation():
    rng = np.random.RandomState(0)
    n = 400
    t = rng.standard_normal(n)
    noise = 0.1 * rng.standard_normal((n, 2))
    X = np.column_stack([2 * t + 1, 2 * t + 1 + noise[:, 0], -t + noise[:, 1] + 5])
    missing = rng.rand(*X.shape) < 0.3
    missing[missing.all(1), 0] = False
    X_missing = np.where(missing, np.nan, X)
    imputer = make(hidden_width=16, max_iter=15, batch_size=64, learning_rate=1e-2, n_impute_samples=50)
    imputed = imputer.fit_transform(X_missing)

    def rmse(X_hat):
        return np.sqrt(np.mean((X_hat - X)[missing] ** 2))

    assert rmse(imputed) < 0.6 * rmse(np.where(missing, np.nanmean(X_missing, axis=0), X))


# --------------------------------------------------------------------------------------
# parameters
# --------------------------------------------------------------------------------------
def test_init_only_stores_parameters():
    imputer = DeMissVAEImputer(n_imputations=-1, sampler="nope")
    assert imputer.n_imputations == -1 and imputer.sampler == "nope"


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(n_imputations=0), "n_imputations"),
        (dict(sampler="gibbs"), "sampler"),
        (dict(lair_iterations=0), "lair_iterations"),
        (dict(lair_samples_per_proposal=0), "lair_samples_per_proposal"),
        (dict(lair_prior_proposals=-1), "lair_prior_proposals"),
        (dict(lair_final_resampling="yes"), "lair_final_resampling"),
        (dict(encoder_uses_mask=1.5), "encoder_uses_mask"),
        (dict(n_transform_sweeps=-1), "n_transform_sweeps"),
        (dict(pool_size=0), "pool_size"),
        (dict(keep_imputations="no"), "keep_imputations"),
        (dict(latent_dim=0), "latent_dim"),
        (dict(clip_grad_norm=0.0), "clip_grad_norm"),
        (dict(validation_fraction=1.0), "validation_fraction"),
        (dict(device="tpu"), "device"),
    ],
)
def test_invalid_parameters_raise_at_fit(X_missing, params, match):
    with pytest.raises(ValueError, match=match):
        make(**params).fit(X_missing)


@pytest.mark.parametrize(
    "params",
    [
        dict(lair_prior_proposals=0, lair_final_resampling=False, lair_iterations=1),
        dict(lair_samples_per_proposal=3, n_imputations=1),
        dict(n_transform_sweeps=0),
        dict(dropout=0.3, lr_schedule="constant", clip_grad_norm=None),
    ],
)
def test_valid_parameter_combinations_fit(X_missing, params):
    assert np.isfinite(make(**params).fit(X_missing).transform(X_missing)).all()


# --------------------------------------------------------------------------------------
# randomness and persistence
# --------------------------------------------------------------------------------------
def test_same_random_state_gives_identical_results(X_missing, sampler):
    first = make(sampler=sampler, random_state=7, keep_imputations=True).fit(X_missing)
    second = make(sampler=sampler, random_state=7, keep_imputations=True).fit(X_missing)
    assert first.loss_curve_ == second.loss_curve_
    for a, b in zip(first.model_.state_dict().values(), second.model_.state_dict().values()):
        assert torch.equal(a, b)
    assert_array_equal(first.imputations_, second.imputations_)
    assert_array_equal(first.imputation_pool_, second.imputation_pool_)
    for a, b in zip(all_outputs(first, X_missing), all_outputs(second, X_missing)):
        assert_array_equal(a, b)
    for a, b in zip(all_outputs(first, X_missing), all_outputs(first, X_missing)):
        assert_array_equal(a, b)


def test_different_random_state_gives_different_results(X_missing):
    missing = np.isnan(X_missing)
    a, b = make(random_state=0).fit(X_missing), make(random_state=1).fit(X_missing)
    assert a.loss_curve_ != b.loss_curve_
    assert not np.array_equal(a.transform(X_missing)[missing], b.transform(X_missing)[missing])
    b_inference = copy.deepcopy(a).set_params(random_state=1)
    assert not np.array_equal(b_inference.score_samples(X_missing), a.score_samples(X_missing))


@pytest.mark.parametrize("random_state", [None, "instance"])
@pytest.mark.parametrize("dropout", [0.0, 0.2])
def test_global_rngs_untouched(X_missing, sampler, dropout, random_state):
    if random_state == "instance":
        random_state = np.random.RandomState(0)
    np.random.seed(12345)
    torch.manual_seed(12345)
    np_before, torch_before = np.random.get_state(), torch.get_rng_state()
    imputer = make(sampler=sampler, dropout=dropout, random_state=random_state, max_iter=2).fit(X_missing)
    all_outputs(imputer, X_missing)
    np_after, torch_after = np.random.get_state(), torch.get_rng_state()
    assert_array_equal(np_before[1], np_after[1]) and np_before[2:] == np_after[2:]
    assert torch.equal(torch_before, torch_after)


def test_pickle_round_trip(X_missing):
    X = X_missing.astype(np.float32)
    imputer = make().fit(X)
    expected = all_outputs(imputer, X)
    loaded = pickle.loads(pickle.dumps(imputer))
    assert loaded.get_params() == imputer.get_params()
    for a, b in zip(all_outputs(loaded, X), expected):
        assert a.dtype == b.dtype
        assert_array_equal(a, b)


# --------------------------------------------------------------------------------------
# units
# --------------------------------------------------------------------------------------
def test_score_and_imputations_in_units_of_the_data(X_missing):
    c = 10.0
    n_observed = (~np.isnan(X_missing)).sum(axis=1)
    base = make().fit(X_missing)
    scaled = make().fit(c * X_missing)
    expected = base.score_samples(X_missing) - n_observed * np.log(c)
    assert_allclose(scaled.score_samples(c * X_missing), expected, rtol=1e-6, atol=1e-6)
    assert_allclose(scaled.transform(c * X_missing), c * base.transform(X_missing), rtol=1e-6)


def test_convergence_warning_only_with_early_stopping(X_missing):
    with pytest.warns(ConvergenceWarning, match="max_iter"):
        make(early_stopping=True, max_iter=2, n_iter_no_change=50).fit(X_missing)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        make(early_stopping=False, max_iter=2).fit(X_missing)


@pytest.mark.gpu
def test_fit_on_gpu_outputs_cpu_arrays_and_pickles_for_cpu(X_missing, monkeypatch):
    X = X_missing.astype(np.float32)
    imputer = make(device="cuda", keep_imputations=True).fit(X)
    assert imputer.device_.type == "cuda"
    observed = ~np.isnan(X)
    Xt = imputer.transform(X)
    assert isinstance(Xt, np.ndarray) and Xt.dtype == np.float32
    assert_array_equal(Xt[observed], X[observed])
    assert isinstance(imputer.imputations_, np.ndarray)
    payload = pickle.dumps(imputer)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    loaded = pickle.loads(payload)
    assert all(p.device.type == "cpu" for p in loaded.model_.parameters())
    assert np.isfinite(loaded.transform(X)).all()
