"""Reliability catalogue: awkward inputs, numerical faults, determinism, threads.

Every case runs for both estimators; most also for numpy and pandas input. Each test checks
the documented behaviour (see docs/reliability.md) and, through ``check_outputs``, the
invariants that hold whatever happens: the caller's data is never modified, observed
entries come back unchanged, and no output contains NaN.
"""

from __future__ import annotations

import re
import threading
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from numpy.testing import assert_array_equal
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV
from sklearn.utils.validation import check_is_fitted

from skmissvae import DeMissVAEImputer, MixtureVAEImputer
from skmissvae.core.training import NonFiniteLossError


from _helpers import FAST_PARAMS, correlated_table, script_validation

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

COLUMNS = ["a", "b", "c", "d"]


def _mixture(**kw):
    return MixtureVAEImputer(**{**FAST_PARAMS, "n_components": 2, "n_particles": 4, "random_state": 0, **kw})


def _demissvae(**kw):
    return DeMissVAEImputer(
        **{**FAST_PARAMS, "max_iter": 2, "n_imputations": 2, "lair_iterations": 2,
           "n_transform_sweeps": 1, "random_state": 0, **kw}
    )


@pytest.fixture(params=[_mixture, _demissvae], ids=["mixture", "demissvae"])
def make(request):
    return request.param


@pytest.fixture(params=["numpy", "pandas"])
def as_input(request):
    """Turns a float array into the input kind under test."""
    if request.param == "numpy":
        return lambda X, columns=None: X
    return lambda X, columns=None: pd.DataFrame(X, columns=columns or COLUMNS[: X.shape[1]])


def bits(a):
    a = np.ascontiguousarray(a)
    return a.view({4: np.uint32, 8: np.uint64}[a.dtype.itemsize])


def snapshot(X):
    return X.copy(deep=True) if isinstance(X, pd.DataFrame) else np.array(X, copy=True)


def assert_unchanged(X, before):
    if isinstance(X, pd.DataFrame):
        pd.testing.assert_frame_equal(X, before)
    else:
        assert_array_equal(X, before)


def check_outputs(imputer, X):
    """Run transform, score_samples and sample_imputations on ``X`` and check invariants.

    Returns ``(transformed array, scores, draws)``.
    """
    before = snapshot(X)
    Xt = imputer.transform(X)
    scores = imputer.score_samples(X)
    draws = imputer.sample_imputations(X, n_imputations=2)
    assert_unchanged(X, before)
    if isinstance(X, pd.DataFrame):
        assert isinstance(Xt, pd.DataFrame)
        assert list(Xt.columns) == list(imputer.get_feature_names_out())
        pd.testing.assert_index_equal(Xt.index, X.index)
    Xt = np.asarray(Xt, dtype=np.float64)
    values = np.asarray(X.astype("float64") if isinstance(X, pd.DataFrame) else X, dtype=np.float64)
    kept = imputer.fitted_model_.table.output_features()
    assert Xt.shape == (len(values), kept.sum())
    assert draws.shape == (2, len(values), kept.sum())
    assert not np.isnan(Xt).any() and not np.isnan(draws).any()
    assert scores.shape == (len(values),) and np.isfinite(scores).all()
    observed = ~np.isnan(values[:, kept])
    assert_array_equal(Xt[observed], values[:, kept][observed])
    for draw in draws:
        assert_array_equal(draw[observed], values[:, kept][observed])
    return Xt, scores, draws


# --------------------------------------------------------------------------------------
# shapes
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape, match", [((0, 4), "0 sample"), ((5, 0), "0 feature")])
def test_empty_array_raises(make, as_input, shape, match):
    X = as_input(np.empty(shape))
    with pytest.raises(ValueError, match=match):
        make().fit(X)
    fitted = make().fit(as_input(correlated_table(30)[1]))
    for method in ("transform", "score_samples", "sample_imputations"):
        with pytest.raises(ValueError):
            getattr(fitted, method)(X)


def test_one_row(make, as_input):
    X_complete = correlated_table(30)[0]
    one = as_input(X_complete[:1])
    check_outputs(make().fit(one), one)
    # One row with a gap: its missing columns are empty at fit, hence dropped.
    gappy = X_complete[:1].copy()
    gappy[0, 1] = np.nan
    imputer = make().fit(as_input(gappy))
    assert_array_equal(imputer.empty_features_, [False, True, False, False])
    check_outputs(imputer, as_input(gappy))


def test_one_column(make, as_input):
    X = as_input(correlated_table(40)[1][:, :1])
    Xt, scores, _ = check_outputs(make().fit(X), X)
    missing = np.isnan(np.asarray(X, dtype=float)[:, 0])
    assert (scores[missing] == 0).all()  # nothing observed in those rows


def test_fewer_rows_than_batch_size(make, as_input):
    X = as_input(correlated_table(5)[1])
    imputer = make(batch_size=64).fit(X)
    assert imputer.n_iter_ == imputer.max_iter
    check_outputs(imputer, X)


def test_duplicated_rows(make, as_input):
    X = as_input(np.tile(correlated_table(6)[1], (10, 1)))
    check_outputs(make().fit(X), X)


# --------------------------------------------------------------------------------------
# rows and columns entirely missing
# --------------------------------------------------------------------------------------
def test_all_missing_rows_are_left_out_of_training(make, as_input):
    X = correlated_table(40)[1]
    with_empty_rows = np.insert(X, [3, 10, 10, 40], np.nan, axis=0)
    a = make().fit(as_input(X))
    b = make().fit(as_input(with_empty_rows))
    # Left out before anything random happens: the very same training run.
    assert a.loss_curve_ == b.loss_curve_
    assert_array_equal(a.mean_, b.mean_)
    for p, q in zip(a.model_.parameters(), b.model_.parameters()):
        assert_array_equal(p.detach().numpy(), q.detach().numpy())
    check_outputs(b, as_input(with_empty_rows))


def test_all_missing_rows_at_transform(make, as_input):
    X = correlated_table(40)[1]
    imputer = make().fit(as_input(X))
    X_new = X[:6].copy()
    X_new[[1, 4]] = np.nan
    Xt, scores, draws = check_outputs(imputer, as_input(X_new))
    assert (scores[[1, 4]] == 0.0).all()  # log p(nothing observed) = 0
    assert (scores[[0, 2, 3, 5]] != 0).all()
    assert np.isfinite(Xt[[1, 4]]).all() and np.isfinite(draws[:, [1, 4]]).all()


def test_every_entry_missing_raises(make, as_input):
    with pytest.raises(ValueError, match="Every entry of X is missing"):
        make().fit(as_input(np.full((5, 3), np.nan)))


def test_empty_column_at_fit_is_dropped(make, as_input):
    X = correlated_table(40)[1]
    X[:, 2] = np.nan
    imputer = make().fit(as_input(X))
    assert_array_equal(imputer.empty_features_, [False, False, True, False])
    names = ["a", "b", "d"] if isinstance(as_input(X), pd.DataFrame) else ["x0", "x1", "x3"]
    assert_array_equal(imputer.get_feature_names_out(), names)
    Xt, scores, _ = check_outputs(imputer, as_input(X))
    assert Xt.shape == (40, 3)
    # The column is ignored at transform even when it has values there.
    X_filled = X.copy()
    X_filled[:, 2] = 1e3
    Xt2, scores2, _ = check_outputs(imputer, as_input(X_filled))
    assert_array_equal(bits(Xt2), bits(Xt))
    assert_array_equal(bits(scores2), bits(scores))


def test_empty_column_kept_with_zero(make, as_input):
    X = correlated_table(40)[1]
    X[:, 2] = np.nan
    imputer = make(keep_empty_features=True).fit(as_input(X))
    assert len(imputer.get_feature_names_out()) == 4
    Xt, _, draws = check_outputs(imputer, as_input(X))
    assert (Xt[:, 2] == 0).all() and (draws[:, :, 2] == 0).all()
    X_new = X.copy()
    X_new[::2, 2] = 5.0  # observed at transform: kept as given, the rest 0
    Xt, _, _ = check_outputs(imputer, as_input(X_new))
    assert (Xt[::2, 2] == 5.0).all() and (Xt[1::2, 2] == 0).all()
    # Same model either way: the other columns are imputed identically.
    other = make(keep_empty_features=False).fit(as_input(X))
    assert_array_equal(np.delete(np.asarray(imputer.transform(as_input(X))), 2, axis=1),
                       np.asarray(other.transform(as_input(X))))


def test_column_complete_at_fit_missing_at_transform(make, as_input):
    X_complete, X = correlated_table(40)
    X[:, 1] = X_complete[:, 1]  # complete at fit
    imputer = make().fit(as_input(X))
    X_new = X.copy()
    X_new[::3, 1] = np.nan
    Xt, _, _ = check_outputs(imputer, as_input(X_new))
    assert np.isfinite(Xt[::3, 1]).all()


def test_constant_column(make, as_input):
    X = correlated_table(40)[1]
    X[:, 0] = np.where(np.isnan(X[:, 0]), np.nan, 3.0)
    imputer = make().fit(as_input(X))
    assert imputer.mean_[0] == 3.0 and imputer.scale_[0] == 1.0
    check_outputs(imputer, as_input(X))


# --------------------------------------------------------------------------------------
# values and dtypes
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [np.inf, -np.inf])
def test_infinite_values_raise_naming_the_column(make, as_input, value):
    X = correlated_table(30)[1]
    X_bad = X.copy()
    X_bad[4, 1] = value
    name = "'b'" if isinstance(as_input(X), pd.DataFrame) else "1 (position)"
    match = re.escape(f"Input X contains infinity in column(s) {name}")
    with pytest.raises(ValueError, match=match):
        make().fit(as_input(X_bad))
    fitted = make().fit(as_input(X))
    for method in ("transform", "score_samples", "sample_imputations"):
        with pytest.raises(ValueError, match=match):
            getattr(fitted, method)(as_input(X_bad))


def test_tiny_and_huge_magnitudes_in_one_table(make, as_input):
    X = correlated_table(40)[1]
    X[:, 0] *= 1e12
    X[:, 1] *= 1e-12
    imputer = make().fit(as_input(X))
    Xt, _, draws = check_outputs(imputer, as_input(X))
    missing = np.isnan(X)
    # Imputations live on their column's scale (per-column standardisation).
    assert (np.abs(Xt[missing[:, 1], 1]) < 1e-9).all()
    assert (np.abs(Xt[missing[:, 0], 0]) > 1e9).all()


def test_column_of_huge_values_does_not_overflow(make, as_input):
    X = correlated_table(40)[1]
    X[:, 3] = X[:, 3] * 1e305  # squares overflow float64
    imputer = make().fit(as_input(X))
    assert np.isfinite(imputer.mean_).all() and np.isfinite(imputer.scale_).all()
    check_outputs(imputer, as_input(X))


def test_rows_far_outside_the_training_range_score_finite(make):
    X = correlated_table(40)[1]
    imputer = make().fit(X)
    for magnitude in (1e6, 1e30, 1e300):
        X_far = X[:5].copy()
        X_far[:, 0] = magnitude
        X_far[1, 3] = -magnitude
        _, scores, _ = check_outputs(imputer, X_far)
        assert (scores < imputer.score_samples(X[:5]).min()).all()


@pytest.mark.parametrize("dtype, expected", [(np.int64, np.float64), (np.int32, np.float64),
                                             (bool, np.float64), (np.float32, np.float32)])
def test_integer_boolean_and_float32_input(make, as_input, dtype, expected):
    """(A boolean DataFrame column is a binary variable since ``column_types``: not here.)"""
    if dtype is bool and as_input(np.zeros((1, 1))).__class__ is pd.DataFrame:
        pytest.skip("boolean DataFrame columns are binary variables (mixed-type tests)")
    X_complete = correlated_table(40)[0]
    X = (X_complete > 8) if dtype is bool else X_complete.astype(dtype)
    imputer = make().fit(as_input(X))
    Xt = imputer.transform(as_input(X))
    # Integer columns of a DataFrame keep their dtype; arrays come back as floats.
    frame_of_integers = isinstance(Xt, pd.DataFrame) and np.issubdtype(np.dtype(dtype), np.integer)
    assert np.asarray(Xt).dtype == (np.dtype(dtype) if frame_of_integers else expected)
    assert imputer.score_samples(as_input(X)).dtype == expected
    assert_array_equal(np.asarray(Xt, dtype=expected), X.astype(expected))  # nothing missing: identity
    if dtype is np.float32:
        X_missing = correlated_table(40)[1].astype(np.float32)
        check_outputs(imputer, as_input(X_missing))


@pytest.mark.parametrize(
    "make_bad, column",
    [
        (lambda X: X.astype(str), "0 (position)"),
        (lambda X: np.column_stack([X[:, :2], np.array(["x"] * len(X), dtype=object), X[:, 3:]]),
         "2 (position)"),
    ],
    ids=["numpy-str", "numpy-object-str"],
)
def test_non_numeric_columns_raise_naming_the_column(make, make_bad, column):
    """Strings in an array. (DataFrame string, object and category columns are categorical
    variables since ``column_types``; see tests/impute/test_mixed_types.py.)"""
    X = correlated_table(30)[1]
    X_bad = make_bad(X)
    with pytest.raises(ValueError, match=re.escape(f"Column {column} has dtype")):
        make().fit(X_bad)
    fitted = make().fit(X if isinstance(X_bad, np.ndarray) else pd.DataFrame(X, columns=COLUMNS))
    with pytest.raises(ValueError, match=re.escape(f"Column {column}")):
        fitted.transform(X_bad)


def test_object_columns_of_numbers_are_accepted(make):
    X = correlated_table(30)[1]
    X_obj = X.astype(object)
    X_obj[np.isnan(X)] = None
    df = pd.DataFrame(X, columns=COLUMNS).astype(object)
    a = make().fit(X)
    for X_in in (X_obj, df):
        b = make().fit(X_in)
        assert b.loss_curve_ == a.loss_curve_
        Xt, _, _ = check_outputs(b, X_in)
        assert_array_equal(Xt, a.transform(X))


@pytest.mark.parametrize("dtype", ["Float64", "Int64"])
def test_pandas_nullable_dtypes_with_na(make, dtype):
    X_complete, X = correlated_table(40)
    source = {"Float64": X, "Int64": np.round(X)}[dtype]
    df = pd.DataFrame(source, columns=COLUMNS).astype(dtype)
    assert df.isna().to_numpy().sum() == np.isnan(X).sum()
    assert df.isna().to_numpy().any() and df.iloc[:, 0].hasnans
    imputer = make().fit(df)
    out = imputer.transform(df)
    assert (out.dtypes == {"Float64": np.float64, "Int64": dtype}[dtype]).all()  # Int64 kept, filled
    assert not out.isna().to_numpy().any()
    check_outputs(imputer, df)
    # pd.NA is treated exactly as NaN in a float64 frame (an Int64 column's imputations rounded).
    float_df = pd.DataFrame(source, columns=COLUMNS)
    expected = make().fit(float_df).transform(float_df).to_numpy()
    if dtype == "Int64":
        expected = np.round(expected)
    assert_array_equal(out.to_numpy(dtype=np.float64), expected)


def test_sparse_input_raises_asking_to_densify(make):
    X = np.nan_to_num(correlated_table(30)[1])
    for X_sparse in (sp.csr_matrix(X), sp.csc_array(X)):
        with pytest.raises(TypeError, match=r"dense data is required.*toarray"):
            make().fit(X_sparse)
        fitted = make().fit(X)
        with pytest.raises(TypeError, match="toarray"):
            fitted.transform(X_sparse)


def test_no_missing_values_transform_is_identity(make, as_input):
    X_complete, X = correlated_table(40)
    imputer = make().fit(as_input(X))
    Xt, _, draws = check_outputs(imputer, as_input(X_complete))
    assert_array_equal(bits(Xt), bits(X_complete))
    for draw in draws:
        assert_array_equal(bits(draw), bits(X_complete))


# --------------------------------------------------------------------------------------
# mismatches between fit and transform
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("n_columns", [3, 5])
def test_different_number_of_columns_raises(make, as_input, n_columns):
    X = correlated_table(30)[1]
    imputer = make().fit(as_input(X))
    X_bad = as_input(np.resize(X, (30, n_columns)), columns=list("abcdefg")[:n_columns])
    for method in ("transform", "score_samples", "sample_imputations"):
        # DataFrames fail on their names first (scikit-learn checks names before width).
        with pytest.raises(ValueError, match=f"X has {n_columns} features|feature names should match"):
            getattr(imputer, method)(X_bad)


@pytest.mark.filterwarnings("ignore:X does not have valid feature names:UserWarning")
def test_reordered_or_renamed_columns_raise(make):
    df = pd.DataFrame(correlated_table(30)[1], columns=COLUMNS)
    imputer = make().fit(df)
    with pytest.raises(ValueError, match="same order"):
        imputer.transform(df[["b", "a", "c", "d"]])
    with pytest.raises(ValueError, match="unseen at fit time"):
        imputer.transform(df.rename(columns={"a": "z"}))
    check_outputs(imputer, df.to_numpy())  # a plain array is taken by position


# --------------------------------------------------------------------------------------
# numerical faults
# --------------------------------------------------------------------------------------
def _poison_after_first_epoch(imputer, info):
    # Provokes non-finite losses from the second epoch on.
    if info["epoch"] == 1:
        with torch.no_grad():
            for p in imputer.model_.decoder.parameters():
                p.fill_(float("nan"))


def test_non_finite_losses_are_skipped_and_best_state_restored(make):
    X = correlated_table(40)[1]
    imputer = make(max_iter=30, callbacks=[_poison_after_first_epoch])
    with pytest.warns(ConvergenceWarning, match="non-finite loss"):
        imputer.fit(X)
    assert imputer.n_iter_ < 30  # stopped when the faults persisted
    assert imputer.best_iteration_ == 1 and not imputer.refitted_
    assert all(torch.isfinite(p).all() for p in imputer.model_.parameters())
    check_outputs(imputer, X)


def test_a_diverging_refit_keeps_the_model_chosen_on_held_out_entries(monkeypatch):
    script_validation(monkeypatch, [-1.0, -2.0])  # stop after epoch 3, the best is epoch 1
    epochs = []

    def poison_the_refit(imputer, info):
        epochs.append(info["epoch"])
        if len(epochs) > 3:
            _poison_after_first_epoch(imputer, info)

    X = correlated_table(40)[1]
    imputer = _mixture(early_stopping=True, validation_split="entries", n_iter_no_change=2, max_iter=10,
                       callbacks=[poison_the_refit])
    with pytest.warns(ConvergenceWarning, match="refit on all entries diverged"):
        imputer.fit(X)
    assert epochs == [1, 2, 3, 1] and imputer.n_iter_ == 3 and imputer.best_iteration_ == 1
    assert not imputer.refitted_
    assert all(torch.isfinite(p).all() for p in imputer.model_.parameters())
    check_outputs(imputer, X)


def test_no_finite_loss_at_all_raises(make, monkeypatch):
    import skmissvae.core.problems as demiss
    import skmissvae.core.problems as mixture

    def nan_objective(*args, **kwargs):
        out = mixture_objective(*args, **kwargs)
        return out * float("nan")

    mixture_objective = mixture.finite_mixture_objective
    monkeypatch.setattr(mixture, "finite_mixture_objective", nan_objective)
    demiss_objectives = demiss.demissvae_objectives
    monkeypatch.setattr(
        demiss, "demissvae_objectives",
        lambda *a, **k: tuple(t * float("nan") for t in demiss_objectives(*a, **k)),
    )
    imputer = make(max_iter=3)
    with pytest.raises(NonFiniteLossError, match="no finite objective"):
        imputer.fit(correlated_table(40)[1])
    with pytest.raises(NotFittedError):
        imputer.transform(correlated_table(40)[1])


@pytest.mark.parametrize("learning_rate", [1e3, 1e6])
def test_huge_learning_rate_never_returns_a_nan_model(make, learning_rate):
    X = correlated_table(40)[1]
    imputer = make(learning_rate=learning_rate, clip_grad_norm=None, lr_schedule="constant", max_iter=20)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            imputer.fit(X)
    except NonFiniteLossError as error:
        assert "diverged" in str(error) or "no finite objective" in str(error)
        with pytest.raises(NotFittedError):
            check_is_fitted(imputer)
        return
    check_outputs(imputer, X)


# --------------------------------------------------------------------------------------
# determinism, threads, parallel grid search
# --------------------------------------------------------------------------------------
def _all_outputs(imputer, X):
    return [np.asarray(imputer.transform(X)), imputer.score_samples(X),
            imputer.sample_imputations(X, n_imputations=2)]


def test_same_seed_identical_after_clone_different_seed_differs(make):
    X = correlated_table(40)[1]
    first = make(random_state=5).fit(X)
    again = clone(first).fit(X)
    assert first.loss_curve_ == again.loss_curve_
    for a, b in zip(_all_outputs(first, X), _all_outputs(again, X)):
        assert_array_equal(bits(a), bits(b))
    other = make(random_state=6).fit(X)
    missing = np.isnan(X)
    assert not np.array_equal(first.transform(X)[missing], other.transform(X)[missing])
    assert not np.array_equal(first.score_samples(X), other.score_samples(X))


def test_fit_leaves_torch_thread_settings_alone(make):
    X = correlated_table(40)[1]
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        two = make().fit(X)
        assert torch.get_num_threads() == 2
        torch.set_num_threads(1)
        one = make().fit(X)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(previous)
    # Tiny models: results do not depend on the thread count either.
    assert two.loss_curve_ == one.loss_curve_
    for a, b in zip(_all_outputs(two, X), _all_outputs(one, X)):
        assert_array_equal(bits(a), bits(b))


def test_two_estimators_in_parallel_threads_match_serial_fits(make):
    X = correlated_table(40)[1]
    serial = [make(random_state=seed).fit(X) for seed in (1, 2)]
    serial_outputs = [_all_outputs(est, X) for est in serial]
    parallel = [make(random_state=seed) for seed in (1, 2)]
    results, errors = [None, None], []

    def work(i):
        try:
            parallel[i].fit(X)
            results[i] = _all_outputs(parallel[i], X)
        except Exception as error:  # surfaced below: threads swallow exceptions
            errors.append(error)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for est, ref in zip(parallel, serial):
        assert est.loss_curve_ == ref.loss_curve_
    for got, expected in zip(results, serial_outputs):
        for a, b in zip(got, expected):
            assert_array_equal(bits(a), bits(b))


def test_grid_search_in_two_processes_matches_serial():
    X = correlated_table(60)[1]
    grid = {"latent_dim": [1, 2]}
    serial = GridSearchCV(_mixture(), grid, cv=2, n_jobs=1).fit(X)
    parallel = GridSearchCV(_mixture(), grid, cv=2, n_jobs=2).fit(X)
    for key in ("split0_test_score", "split1_test_score"):
        assert_array_equal(parallel.cv_results_[key], serial.cv_results_[key])
    assert parallel.best_params_ == serial.best_params_
    assert_array_equal(parallel.best_estimator_.transform(X), serial.best_estimator_.transform(X))
