"""Behaviour of MixtureVAEImputer, parametrised over the paper's six finite-mixture methods.

Fast settings come from ``conftest.FAST_PARAMS`` through the ``make_imputer`` fixture;
``method`` runs a test once per entry of ``skmissvae.METHODS`` (with 2 components).
"""

import copy
import pickle
import re
import warnings

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from _helpers import LEARNING_PARAMS, script_validation
from skmissvae import METHODS, MixtureVAEImputer
from skmissvae.impute._base import training_config

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

FITTED_ATTRIBUTES = [
    "model_",
    "mean_",
    "scale_",
    "loss_curve_",
    "validation_scores_",
    "best_iteration_",
    "n_iter_",
    "fit_time_",
    "device_",
    "n_features_in_",
]


def bits(a):
    """Bit patterns of a float array (so -0.0 != 0.0 and NaN payloads count)."""
    a = np.ascontiguousarray(a)
    return a.view({4: np.uint32, 8: np.uint64}[a.dtype.itemsize])


def all_outputs(imputer, X, n_imputations=3):
    return (
        np.asarray(imputer.transform(X)),
        imputer.score_samples(X),
        imputer.sample_imputations(X, n_imputations=n_imputations),
    )


# --------------------------------------------------------------------------------------
# shapes, dtypes, observed entries, NaN
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_output_shapes_and_dtypes(make_imputer, method, X_missing, dtype):
    if np.issubdtype(dtype, np.integer):
        X = np.round(np.nan_to_num(X_missing, nan=0.0)).astype(dtype)  # ints cannot be NaN
        expected = np.float64
    else:
        X = X_missing.astype(dtype)
        expected = dtype
    n, d = X.shape
    imputer = make_imputer(method).fit(X)

    Xt = imputer.transform(X)
    assert isinstance(Xt, np.ndarray)
    assert Xt.shape == (n, d) and Xt.dtype == expected

    scores = imputer.score_samples(X)
    assert isinstance(scores, np.ndarray)
    assert scores.shape == (n,) and scores.dtype == expected

    draws = imputer.sample_imputations(X, n_imputations=4)
    assert isinstance(draws, np.ndarray)
    assert draws.shape == (4, n, d) and draws.dtype == expected

    score = imputer.score(X)
    assert isinstance(score, float)
    assert score == pytest.approx(float(np.mean(scores.astype(np.float64))), rel=1e-5)

    fit_transformed = clone(imputer).fit_transform(X)
    assert fit_transformed.dtype == expected
    assert_array_equal(fit_transformed, Xt)  # same random_state -> same fit and imputation


def test_observed_entries_bit_identical_and_no_nan(make_imputer, method, X_missing):
    X = X_missing.copy()
    # Values that a round trip through standardisation / float32 would alter.
    X[0, 0], X[1, 1], X[2, 2], X[3, 3] = -0.0, 1e-300, -2.0 + 1e-13, np.nextafter(100.0, 200.0)
    X[4] = [np.nan, np.nan, np.nan, np.nan]  # a row with nothing observed
    observed = ~np.isnan(X)
    imputer = make_imputer(method).fit(X)

    Xt = imputer.transform(X)
    assert not np.isnan(Xt).any()
    assert np.isfinite(Xt).all()
    assert_array_equal(bits(Xt)[observed], bits(X)[observed])
    assert (Xt[~observed] != 0).any(), "missing entries were left at a fill value"

    draws = imputer.sample_imputations(X, n_imputations=3)
    assert np.isfinite(draws).all()
    for draw in draws:
        assert_array_equal(bits(draw)[observed], bits(X)[observed])
    # Multiple imputations differ from one another on the missing entries ...
    assert not np.array_equal(draws[0][~observed], draws[1][~observed])

    scores = imputer.score_samples(X)
    assert np.isfinite(scores).all()


def test_observed_entries_bit_identical_float32(make_imputer, X_missing):
    X = X_missing.astype(np.float32)
    X[0, 0] = np.float32(np.pi)
    observed = ~np.isnan(X)
    imputer = make_imputer().fit(X)
    assert_array_equal(bits(imputer.transform(X))[observed], bits(X)[observed])
    for draw in imputer.sample_imputations(X, n_imputations=2):
        assert_array_equal(bits(draw)[observed], bits(X)[observed])


def test_observed_entries_kept_across_inference_batches(make_imputer, X_missing):
    # n_impute_samples / n_score_samples this large force inference batches of 2-3 rows,
    # so the concatenation of batches (row order) is exercised.
    X = X_missing[:11]
    observed = ~np.isnan(X)
    imputer = make_imputer(n_impute_samples=25_000, n_score_samples=25_000).fit(X_missing)
    Xt = imputer.transform(X)
    assert_array_equal(Xt[observed], X[observed])
    assert np.isfinite(Xt).all()
    draws = imputer.sample_imputations(X, n_imputations=2)
    assert draws.shape == (2,) + X.shape
    assert_array_equal(draws[:, observed], np.broadcast_to(X[observed], (2, observed.sum())))
    scores = imputer.score_samples(X)
    assert scores.shape == (len(X),) and np.isfinite(scores).all()


def test_transform_of_complete_data_is_identity(make_imputer, method, table):
    X_complete, X_missing = table()
    imputer = make_imputer(method).fit(X_missing)
    Xt = imputer.transform(X_complete)
    assert_array_equal(bits(Xt), bits(X_complete))
    for draw in imputer.sample_imputations(X_complete, n_imputations=2):
        assert_array_equal(draw, X_complete)


def test_input_not_modified(make_imputer, method, X_missing):
    X = X_missing.copy()
    df = pd.DataFrame(X_missing.copy(), columns=list("abcd"))
    df_copy = df.copy(deep=True)
    imputer = make_imputer(method).fit(X)
    all_outputs(imputer, X)
    imputer.fit_transform(X)
    assert_array_equal(bits(X), bits(X_missing))

    imputer.fit(df)
    all_outputs(imputer, df)
    pd.testing.assert_frame_equal(df, df_copy)


def test_fully_missing_column_at_fit(make_imputer, X_missing):
    X = X_missing.copy()
    X[:, 2] = np.nan
    imputer = make_imputer().fit(X)
    assert np.isfinite(imputer.mean_).all() and (imputer.scale_ > 0).all()
    Xt = imputer.transform(X)
    assert np.isfinite(Xt).all()
    assert np.isfinite(imputer.score_samples(X)).all()


# --------------------------------------------------------------------------------------
# pandas in / out, set_output, feature names
# --------------------------------------------------------------------------------------
def test_pandas_in_pandas_out(make_imputer, method, X_missing):
    index = pd.Index([f"row{i}" for i in range(len(X_missing))][::-1], name="id")
    columns = ["height", "weight", "age", "income"]
    df = pd.DataFrame(X_missing, columns=columns, index=index)
    imputer = make_imputer(method).fit(df)

    assert imputer.n_features_in_ == 4
    assert_array_equal(imputer.feature_names_in_, columns)
    assert_array_equal(imputer.get_feature_names_out(), columns)

    out = imputer.transform(df)
    assert isinstance(out, pd.DataFrame)
    pd.testing.assert_index_equal(out.index, df.index)
    pd.testing.assert_index_equal(out.columns, df.columns)
    assert (out.dtypes == np.float64).all()
    assert not out.isna().any().any()
    observed = df.notna().to_numpy()
    assert_array_equal(out.to_numpy()[observed], df.to_numpy()[observed])
    # Same numbers as the numpy path (same random_state, same data); pandas hands over a
    # column-major array, so column sums, hence mean_/scale_, may differ in the last ulp.
    numpy_imputer = make_imputer(method).fit(X_missing)
    assert_allclose(out.to_numpy(), numpy_imputer.transform(X_missing), rtol=1e-6)

    scores = imputer.score_samples(df)
    assert isinstance(scores, np.ndarray) and scores.shape == (len(df),)
    draws = imputer.sample_imputations(df, n_imputations=2)
    assert draws.shape == (2,) + df.shape


def test_pandas_float32_and_integer_columns(make_imputer, X_missing):
    df32 = pd.DataFrame(X_missing.astype(np.float32), columns=list("abcd"))
    imputer = make_imputer().fit(df32)
    out = imputer.transform(df32)
    assert isinstance(out, pd.DataFrame) and (out.dtypes == np.float32).all()

    df_int = pd.DataFrame(np.arange(40).reshape(10, 4), columns=list("abcd"))
    out = make_imputer().fit(df_int).transform(df_int)
    assert (out.dtypes == np.int64).all()  # integer columns keep their dtype
    assert_array_equal(out.to_numpy(), df_int.to_numpy())


def test_pandas_nullable_float_with_na(make_imputer, X_missing):
    df = pd.DataFrame(X_missing, columns=list("abcd")).astype("Float64")
    assert df.isna().to_numpy().sum() == np.isnan(X_missing).sum()
    out = make_imputer().fit(df).transform(df)
    assert isinstance(out, pd.DataFrame)
    assert not out.isna().any().any()


def test_set_output_pandas_on_numpy_input(make_imputer, X_missing):
    imputer = make_imputer().set_output(transform="pandas").fit(X_missing)
    out = imputer.transform(X_missing)
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == ["x0", "x1", "x2", "x3"]
    assert_array_equal(imputer.get_feature_names_out(), ["x0", "x1", "x2", "x3"])
    assert_array_equal(out.to_numpy(), make_imputer().fit(X_missing).transform(X_missing))
    assert not hasattr(imputer, "feature_names_in_")


def test_set_output_pandas_keeps_dataframe_index(make_imputer, X_missing):
    df = pd.DataFrame(X_missing, columns=list("abcd"), index=np.arange(len(X_missing)) * 7 + 3)
    out = make_imputer().set_output(transform="pandas").fit(df).transform(df)
    pd.testing.assert_index_equal(out.index, df.index)
    pd.testing.assert_index_equal(out.columns, df.columns)


def test_get_feature_names_out_checks_input_features(make_imputer, X_missing):
    df = pd.DataFrame(X_missing, columns=list("abcd"))
    imputer = make_imputer().fit(df)
    assert_array_equal(imputer.get_feature_names_out(list("abcd")), list("abcd"))
    with pytest.raises(ValueError):
        imputer.get_feature_names_out(list("wxyz"))


# --------------------------------------------------------------------------------------
# fitted state
# --------------------------------------------------------------------------------------
def test_fitted_attributes_only_after_fit(make_imputer, method, X_missing):
    imputer = make_imputer(method)
    for name in FITTED_ATTRIBUTES + ["feature_names_in_"]:
        assert not hasattr(imputer, name), name
    for call in (
        lambda: imputer.transform(X_missing),
        lambda: imputer.score_samples(X_missing),
        lambda: imputer.score(X_missing),
        lambda: imputer.sample_imputations(X_missing),
        lambda: imputer.get_feature_names_out(),
    ):
        with pytest.raises(NotFittedError):
            call()

    assert imputer.fit(X_missing) is imputer
    for name in FITTED_ATTRIBUTES:
        assert hasattr(imputer, name), name
    assert not hasattr(imputer, "feature_names_in_")  # numpy input has no names
    assert imputer.n_features_in_ == X_missing.shape[1]
    assert imputer.device_ == torch.device("cpu")
    assert imputer.mean_.shape == imputer.scale_.shape == (X_missing.shape[1],)
    assert_allclose(imputer.mean_, np.nanmean(X_missing, axis=0))
    assert_allclose(imputer.scale_, np.nanstd(X_missing, axis=0))

    assert imputer.n_iter_ == imputer.max_iter  # no early stopping in FAST_PARAMS
    assert len(imputer.loss_curve_) == len(imputer.validation_scores_) == imputer.n_iter_
    assert np.isfinite(imputer.loss_curve_).all() and np.isfinite(imputer.validation_scores_).all()
    assert 1 <= imputer.best_iteration_ <= imputer.n_iter_
    assert imputer.fit_time_ > 0


def test_early_stopping_records_validation_scores(make_imputer, X_missing):
    imputer = make_imputer(early_stopping=True, validation_fraction=0.2, max_iter=6).fit(X_missing)
    assert imputer.n_iter_ == len(imputer.loss_curve_) == len(imputer.validation_scores_) == 6
    assert np.isfinite(imputer.validation_scores_).all()
    # The weights kept are the final ones or those of the best validation score.
    best = int(np.argmax(imputer.validation_scores_)) + 1
    assert imputer.best_iteration_ in (imputer.n_iter_, best)


def test_early_stopping_stops_on_a_sustained_fall_and_restores_the_best(
    make_imputer, X_missing, monkeypatch
):
    script_validation(monkeypatch, [-5.0, -4.0, -4.5, -4.6])
    imputer = make_imputer(early_stopping=True, n_iter_no_change=2, max_iter=40, tol=0.1)
    imputer.fit(X_missing)
    assert imputer.n_iter_ == 4 and imputer.best_iteration_ == 2 and not imputer.refitted_
    assert imputer.validation_scores_ == [-5.0, -4.0, -4.5, -4.6]


def test_early_stopping_keeps_the_final_weights_after_a_small_fall(
    make_imputer, X_missing, monkeypatch
):
    # Falls of at most tol never count toward stopping, and the final weights are kept.
    script_validation(monkeypatch, [-5.0, -4.0, -4.05, -4.5, -4.05])
    imputer = make_imputer(early_stopping=True, n_iter_no_change=2, max_iter=5, tol=0.1)
    imputer.fit(X_missing)
    assert imputer.n_iter_ == imputer.best_iteration_ == 5


def test_entries_split_stops_without_a_new_best_and_refits_for_the_best_epochs(
    make_imputer, X_missing, monkeypatch
):
    # A fall smaller than tol counts too: the held-out entries are the same every epoch.
    script_validation(monkeypatch, [-5.0, -4.0, -4.05, -4.02])
    epochs = []
    imputer = make_imputer(early_stopping=True, validation_split="entries", n_iter_no_change=2,
                           max_iter=40, tol=0.1,
                           callbacks=[lambda imp, info: epochs.append(info["epoch"])])
    imputer.fit(X_missing)
    assert imputer.n_iter_ == 4 and imputer.best_iteration_ == 2 and imputer.refitted_
    assert imputer.validation_scores_ == [-5.0, -4.0, -4.05, -4.02]
    assert epochs == [1, 2, 3, 4, 1, 2]  # the search, then the refit on every entry
    assert np.isfinite(imputer.transform(X_missing)).all()


def test_entries_split_keeps_the_final_weights_when_it_does_not_stop(
    make_imputer, X_missing, monkeypatch
):
    script_validation(monkeypatch, [-5.0, -4.0, -4.05, -4.5, -4.05])
    imputer = make_imputer(early_stopping=True, validation_split="entries", n_iter_no_change=4,
                           max_iter=5, tol=0.1)
    imputer.fit(X_missing)
    assert imputer.n_iter_ == imputer.best_iteration_ == 5 and not imputer.refitted_


def test_entries_split_scores_the_imputation_of_held_out_entries():
    # Two near copies of one column. An entry is held out only where its row keeps another
    # observed entry, its twin: predictable, so the held-out squared error (the negated
    # validation score) falls far below the column's variance as training goes on.
    rng = np.random.default_rng(0)
    column = rng.normal(size=(400, 1))
    X = np.hstack([column, column + 0.05 * rng.normal(size=(400, 1))])
    X[rng.random(X.shape) < 0.2] = np.nan
    params = {**LEARNING_PARAMS, "early_stopping": True, "validation_split": "entries",
              "n_iter_no_change": 60, "validation_fraction": 0.3}
    scores = np.asarray(MixtureVAEImputer(**params).fit(X).validation_scores_)
    assert (scores <= 0).all()
    assert scores[-5:].mean() > 0.1 * scores[:2].mean()


def test_convergence_warning_when_max_iter_cuts_off_improvement(
    make_imputer, X_missing, monkeypatch
):
    # Still improving in the last epoch: warn. Without early stopping max_iter is the
    # user's chosen budget and the last weights are kept.
    with pytest.warns(ConvergenceWarning, match="max_iter"):
        with monkeypatch.context() as patch:
            script_validation(patch, [-3.0, -2.0, -1.0])
            make_imputer(early_stopping=True, max_iter=3).fit(X_missing)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        imputer = make_imputer(early_stopping=False, max_iter=2).fit(X_missing)
    assert imputer.best_iteration_ == imputer.n_iter_ == 2
    # The score peaked before the last epoch: the run did converge, no warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        script_validation(monkeypatch, [-3.0, -1.0, -1.0005])
        imputer = make_imputer(early_stopping=True, max_iter=3).fit(X_missing)
    assert imputer.n_iter_ == 3


def test_callbacks_called_each_epoch_and_can_stop(make_imputer, X_missing):
    seen = []

    def record(imputer, info):
        assert hasattr(imputer, "model_")
        seen.append(dict(info))

    imputer = make_imputer(max_iter=4, callbacks=[record]).fit(X_missing)
    assert [info["epoch"] for info in seen] == [1, 2, 3, 4]
    assert set(seen[0]) >= {"epoch", "loss", "validation_score", "elapsed"}
    assert [info["loss"] for info in seen] == pytest.approx(imputer.loss_curve_)

    def stop_after_two(imputer, info):
        return info["epoch"] >= 2

    stopped = make_imputer(max_iter=10, callbacks=[record, stop_after_two]).fit(X_missing)
    assert stopped.n_iter_ == 2 and len(stopped.loss_curve_) == 2
    # Callbacks survive clone; an invalid value is rejected at fit.
    assert clone(stopped).get_params()["callbacks"] == [record, stop_after_two]
    with pytest.raises(ValueError, match="callbacks"):
        make_imputer(callbacks=record).fit(X_missing)


def test_training_improves_objective(make_imputer, X_missing):
    imputer = make_imputer(max_iter=15, learning_rate=1e-2, batch_size=16).fit(X_missing)
    assert imputer.loss_curve_[-1] < imputer.loss_curve_[0]


def test_verbose_2_prints_one_line_per_epoch_on_stderr(make_imputer, X_missing, capsys):
    make_imputer(verbose=2, max_iter=3).fit(X_missing)
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 3 and captured.out == ""
    make_imputer(verbose=0).fit(X_missing)
    assert capsys.readouterr() == ("", "")


def test_refit_on_different_width_resets(make_imputer, X_missing):
    imputer = make_imputer().fit(X_missing)
    imputer.fit(X_missing[:, :3])
    assert imputer.n_features_in_ == 3
    assert imputer.transform(X_missing[:, :3]).shape == (len(X_missing), 3)


# --------------------------------------------------------------------------------------
# parameters
# --------------------------------------------------------------------------------------
def test_init_only_stores_parameters():
    # Invalid values are accepted by __init__ and set_params and rejected by fit.
    imputer = MixtureVAEImputer(n_components=-3, objective="nope", latent_dim=0)
    assert imputer.n_components == -3 and imputer.objective == "nope"
    imputer.set_params(sampling="nope")
    assert imputer.get_params()["sampling"] == "nope"


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(n_components=0), "n_components"),
        (dict(objective="kl"), "objective"),
        (dict(sampling="systematic"), "sampling"),
        (dict(n_particles=0), "n_particles"),
        (dict(gradient_estimator="reinforce"), "gradient_estimator"),
        (dict(latent_dim=0), "latent_dim"),
        (dict(hidden_width=0), "hidden_width"),
        (dict(n_hidden_blocks=-1), "n_hidden_blocks"),
        (dict(dropout=1.0), "dropout"),
        (dict(learning_rate=0.0), "learning_rate"),
        (dict(batch_size=0), "batch_size"),
        (dict(max_iter=0), "max_iter"),
        (dict(lr_schedule="step"), "lr_schedule"),
        (dict(clip_grad_norm=0.0), "clip_grad_norm"),
        (dict(early_stopping="yes"), "early_stopping"),
        (dict(validation_fraction=1.0), "validation_fraction"),
        (dict(validation_fraction=0.0), "validation_fraction"),
        (dict(n_iter_no_change=0), "n_iter_no_change"),
        (dict(tol=-1.0), "tol"),
        (dict(n_impute_samples=0), "n_impute_samples"),
        (dict(n_score_samples=0), "n_score_samples"),
        (dict(min_effective_samples=0), "min_effective_samples"),
        (dict(min_effective_samples="fast"), "min_effective_samples"),
        (dict(min_scale=0.0), "min_scale"),
        (dict(min_scale=-0.1), "min_scale"),
        (dict(device="tpu"), "device"),
        (dict(random_state="seed"), "random_state"),
        (dict(latent_dim=2.5), "latent_dim"),
        # Cross-parameter rules.
        (dict(n_components=3, sampling="stratified", n_particles=4), "multiple of n_components"),
        (dict(n_components=2, objective="elbo", sampling="ancestral", gradient_estimator="dreg"), "dreg"),
        (dict(n_components=2, objective="iwelbo", sampling="stratified", n_particles=4,
              gradient_estimator="dreg"), "dreg"),
        (dict(n_components=1, objective="elbo", gradient_estimator="dreg"), "dreg"),
        (dict(n_components=2, objective="iwelbo", sampling="ancestral", gradient_estimator="dreg"),
         "choice_gradient='implicit'"),
        (dict(choice_gradient="reinforce"), "choice_gradient"),
    ],
)
def test_invalid_parameters_raise_at_fit(make_imputer, X_missing, params, match):
    imputer = make_imputer(**params)  # no error before fit
    with pytest.raises(ValueError, match=match):
        imputer.fit(X_missing)


@pytest.mark.parametrize(
    "params",
    [
        dict(n_components=3, sampling="stratified", n_particles=6),
        dict(n_components=3, sampling="ancestral", n_particles=4),  # no multiple needed
        dict(n_components=1, objective="iwelbo", sampling="stratified", n_particles=3),
        dict(n_components=1, objective="iwelbo", gradient_estimator="dreg"),
        dict(n_components=2, objective="iwelbo", sampling="ancestral", gradient_estimator="dreg",
             choice_gradient="implicit"),
        dict(n_components=2, objective="elbo", sampling="ancestral", gradient_estimator="total"),
        dict(n_components=2, objective="iwelbo", sampling="ancestral", choice_gradient="implicit"),
        dict(n_components=2, sampling="stratified", n_particles=2, gradient_estimator="total"),
        dict(dropout=0.3, n_hidden_blocks=0, lr_schedule="constant", clip_grad_norm=None),
    ],
)
def test_valid_parameter_combinations_fit(make_imputer, X_missing, params):
    imputer = make_imputer(**params).fit(X_missing)
    assert np.isfinite(imputer.transform(X_missing)).all()


def test_cuda_requested_without_cuda_raises(make_imputer, X_missing):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available")
    with pytest.raises(ValueError, match="cuda"):
        make_imputer(device="cuda").fit(X_missing)


@pytest.mark.parametrize("n_imputations", [0, -2, 2.5, "3", None, True])
def test_invalid_n_imputations(make_imputer, X_missing, n_imputations):
    imputer = make_imputer().fit(X_missing)
    with pytest.raises(ValueError, match="n_imputations"):
        imputer.sample_imputations(X_missing, n_imputations=n_imputations)


# --------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make_bad, match",
    [
        (lambda X: np.array([["a", "b", "c", "d"]] * 5), "convert string to float"),
        # (a string column of a DataFrame is categorical: see test_mixed_types.py)
        (lambda X: np.column_stack([X[:, 0], ["x"] * len(X), X[:, 2], X[:, 3]]).astype(object),
         "convert string to float"),
        (lambda X: np.where(np.arange(X.size).reshape(X.shape) == 5, np.inf, X), "infinity"),
        (lambda X: np.where(np.arange(X.size).reshape(X.shape) == 5, -np.inf, X), "infinity"),
        (lambda X: X[:0], "0 sample"),
        (lambda X: X[:, 0], "2D"),
        (lambda X: X + 1j, "Complex"),
    ],
    ids=["strings", "object-column", "inf", "-inf", "empty", "1-D", "complex"],
)
@pytest.mark.filterwarnings("ignore:X has feature names:UserWarning")
def test_bad_input_raises_value_error(make_imputer, X_missing, make_bad, match):
    X_bad = make_bad(X_missing)
    with pytest.raises(ValueError, match=match):
        make_imputer().fit(X_bad)
    fitted = make_imputer().fit(X_missing)
    for method in ("transform", "score_samples", "score", "sample_imputations"):
        with pytest.raises(ValueError, match=match):
            getattr(fitted, method)(X_bad)


@pytest.mark.parametrize("n_columns", [3, 5])
def test_wrong_number_of_columns_at_transform(make_imputer, X_missing, n_columns):
    imputer = make_imputer().fit(X_missing)
    X_bad = np.resize(X_missing, (len(X_missing), n_columns))
    for method in ("transform", "score_samples", "score", "sample_imputations"):
        with pytest.raises(ValueError, match=re.escape(f"X has {n_columns} features")):
            getattr(imputer, method)(X_bad)


def test_wrong_column_names_at_transform(make_imputer, X_missing):
    imputer = make_imputer().fit(pd.DataFrame(X_missing, columns=list("abcd")))
    with pytest.raises(ValueError, match="feature names"):
        imputer.transform(pd.DataFrame(X_missing, columns=list("abce")))


# --------------------------------------------------------------------------------------
# randomness
# --------------------------------------------------------------------------------------
def test_same_random_state_gives_identical_results(make_imputer, method, X_missing):
    first = make_imputer(method, random_state=7).fit(X_missing)
    second = make_imputer(method, random_state=7).fit(X_missing)
    assert first.loss_curve_ == second.loss_curve_
    for a, b in zip(first.model_.state_dict().values(), second.model_.state_dict().values()):
        assert torch.equal(a, b)
    for a, b in zip(all_outputs(first, X_missing), all_outputs(second, X_missing)):
        assert_array_equal(a, b)
    # Repeated calls on one fitted model are reproducible too.
    for a, b in zip(all_outputs(first, X_missing), all_outputs(first, X_missing)):
        assert_array_equal(a, b)


def test_random_state_instance_reproducible(make_imputer, X_missing):
    first = make_imputer(random_state=np.random.RandomState(3)).fit(X_missing)
    second = make_imputer(random_state=np.random.RandomState(3)).fit(X_missing)
    assert first.loss_curve_ == second.loss_curve_
    assert_array_equal(first.transform(X_missing), second.transform(X_missing))


def test_different_random_state_gives_different_draws(make_imputer, method, X_missing):
    missing = np.isnan(X_missing)
    a = make_imputer(method, random_state=0).fit(X_missing)
    b = make_imputer(method, random_state=1).fit(X_missing)
    assert a.loss_curve_ != b.loss_curve_
    assert not np.array_equal(a.transform(X_missing)[missing], b.transform(X_missing)[missing])
    assert not np.array_equal(a.score_samples(X_missing), b.score_samples(X_missing))
    draws_a, draws_b = a.sample_imputations(X_missing, 2), b.sample_imputations(X_missing, 2)
    assert not np.array_equal(draws_a[:, missing], draws_b[:, missing])

    # Same weights, different inference seed: only the Monte-Carlo draws change.
    b_inference = copy.deepcopy(a).set_params(random_state=1)
    assert not np.array_equal(b_inference.score_samples(X_missing), a.score_samples(X_missing))


def _global_rng_states():
    return np.random.get_state(), torch.get_rng_state()


def _assert_same_global_states(before, after):
    (np_before, torch_before), (np_after, torch_after) = before, after
    assert np_before[0] == np_after[0]
    assert_array_equal(np_before[1], np_after[1], err_msg="numpy's global RNG was touched")
    assert np_before[2:] == np_after[2:], "numpy's global RNG was touched"
    assert torch.equal(torch_before, torch_after), "torch's global RNG was touched"


@pytest.mark.parametrize("random_state", [0, np.random.RandomState(0)], ids=["int", "RandomState"])
def test_global_rngs_untouched(make_imputer, method, X_missing, random_state):
    np.random.seed(12345)
    torch.manual_seed(12345)
    before = _global_rng_states()
    imputer = make_imputer(method, random_state=random_state).fit(X_missing)
    all_outputs(imputer, X_missing)
    imputer.score(X_missing)
    _assert_same_global_states(before, _global_rng_states())


def test_global_rngs_untouched_with_random_state_none(make_imputer, X_missing):
    # The class docstring: "torch's and numpy's global generators are never touched". That
    # must hold for the default random_state too.
    np.random.seed(12345)
    torch.manual_seed(12345)
    before = _global_rng_states()
    imputer = make_imputer(random_state=None).fit(X_missing)
    all_outputs(imputer, X_missing)
    _assert_same_global_states(before, _global_rng_states())


# --------------------------------------------------------------------------------------
# score: units and estimates
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("c", [4.0, 10.0, 1e-3])
def test_score_samples_in_units_of_the_data(make_imputer, method, X_missing, c):
    # The model is fitted to standardised data, so fitting on c * X gives the same model;
    # log p(c x_o) = log p(x_o) - n_observed * log c (change of variables).
    n_observed = (~np.isnan(X_missing)).sum(axis=1)
    base = make_imputer(method).fit(X_missing)
    scaled = make_imputer(method).fit(c * X_missing)
    assert_allclose(scaled.scale_, c * base.scale_, rtol=1e-12)
    expected = base.score_samples(X_missing) - n_observed * np.log(c)
    assert_allclose(scaled.score_samples(c * X_missing), expected, rtol=1e-9, atol=1e-9)
    assert scaled.score(c * X_missing) == pytest.approx(
        base.score(X_missing) - n_observed.mean() * np.log(c), rel=1e-9
    )
    # Imputations are equivariant: c * imputation of X.
    assert_allclose(scaled.transform(c * X_missing), c * base.transform(X_missing), rtol=1e-9)


def test_score_samples_with_shift_is_invariant(make_imputer, X_missing):
    base = make_imputer().fit(X_missing)
    shifted = make_imputer().fit(X_missing + 1000.0)
    assert_allclose(
        shifted.score_samples(X_missing + 1000.0), base.score_samples(X_missing), rtol=1e-5, atol=1e-5
    )


def test_score_is_mean_of_score_samples(make_imputer, X_missing):
    imputer = make_imputer().fit(X_missing)
    assert imputer.score(X_missing) == pytest.approx(np.mean(imputer.score_samples(X_missing)))
    assert imputer.score(X_missing, y=np.zeros(len(X_missing))) == imputer.score(X_missing)


def test_fewer_observed_entries_give_larger_likelihood(make_imputer, table):
    # log p(x_o) of a subset of a row's entries is a marginal: dropping an observed entry
    # of a continuous variable removes one density factor (here data are O(1)-O(100) scale
    # so the density factors are < 1 and scores must rise). Checked on average.
    X_complete, X_missing = table()
    imputer = make_imputer(n_score_samples=200).fit(X_missing)
    full = imputer.score_samples(X_complete)
    dropped = X_complete.copy()
    dropped[:, 3] = np.nan  # column with std 100: density ~ 1/(100 sqrt(2 pi e))
    assert np.mean(imputer.score_samples(dropped)) > np.mean(full) + 3.0


# --------------------------------------------------------------------------------------
# multiple imputation and the conditional mean
# --------------------------------------------------------------------------------------
def test_mean_of_multiple_imputations_approximates_transform(make_imputer, table):
    X_complete, X_missing = table(n_samples=60)
    imputer = make_imputer(n_impute_samples=400, max_iter=10, learning_rate=1e-2).fit(X_missing)
    missing = np.isnan(X_missing)
    draws = imputer.sample_imputations(X_missing, n_imputations=2000)
    mean, std = draws.mean(axis=0), draws.std(axis=0)
    Xt = imputer.transform(X_missing)
    # Both estimate E[x_m | x_o]; the difference is Monte-Carlo error of the 2000 draws
    # (plus importance-sampling error of 400 proposals), small relative to the spread.
    z = np.abs(mean - Xt)[missing] / (std[missing] + 1e-12)
    assert np.median(z) < 0.15
    assert np.all(std[missing] > 0)
    assert np.all(np.ptp(draws, axis=0)[~missing] == 0)


def test_learns_correlations_beats_mean_imputation(make_imputer, method):
    rng = np.random.RandomState(0)
    n = 600
    t = rng.standard_normal(n)
    X = np.column_stack(
        [2 * t + 1, 2 * t + 1 + 0.1 * rng.standard_normal(n), -t + 0.1 * rng.standard_normal(n) + 5]
    )
    missing = rng.rand(*X.shape) < 0.3
    X_missing = np.where(missing, np.nan, X)
    imputer = make_imputer(
        method, hidden_width=16, max_iter=20, batch_size=64, learning_rate=1e-2, n_impute_samples=50
    )
    imputed = imputer.fit_transform(X_missing)

    def rmse(X_hat):
        return np.sqrt(np.mean((X_hat - X)[missing] ** 2))

    mean_rmse = rmse(np.where(missing, np.nanmean(X_missing, axis=0), X))
    assert rmse(imputed) < 0.6 * mean_rmse


# --------------------------------------------------------------------------------------
# composition: clone, Pipeline, GridSearchCV, pickle, joblib
# --------------------------------------------------------------------------------------
def test_clone(make_imputer, method, X_missing):
    imputer = make_imputer(method, latent_dim=3)
    fitted = clone(imputer).fit(X_missing)
    cloned = clone(fitted)
    assert cloned.get_params() == imputer.get_params()
    for name in FITTED_ATTRIBUTES:
        assert not hasattr(cloned, name)
    assert_array_equal(cloned.fit(X_missing).transform(X_missing), fitted.transform(X_missing))


def test_pipeline_with_scaler(make_imputer, X_missing):
    pipe = make_pipeline(make_imputer(), StandardScaler()).fit(X_missing)
    out = pipe.transform(X_missing)
    assert out.shape == X_missing.shape and np.isfinite(out).all()
    assert_allclose(out.mean(axis=0), 0, atol=1e-10)
    assert_array_equal(pipe.get_feature_names_out(), ["x0", "x1", "x2", "x3"])


def test_pipeline_with_classifier(make_imputer, table):
    X_complete, X_missing = table(n_samples=200)
    y = (X_complete[:, 0] > np.median(X_complete[:, 0])).astype(int)
    pipe = make_pipeline(make_imputer(max_iter=10, learning_rate=1e-2), LogisticRegression())
    pipe.fit(X_missing, y)
    assert pipe.predict(X_missing).shape == y.shape
    assert pipe.score(X_missing, y) > 0.7  # x0 or its near-copy x1 is observed in most rows


def test_pipeline_set_output_pandas(make_imputer, X_missing):
    df = pd.DataFrame(X_missing, columns=list("abcd"))
    pipe = make_pipeline(make_imputer(), StandardScaler()).set_output(transform="pandas")
    out = pipe.fit(df).transform(df)
    assert isinstance(out, pd.DataFrame) and list(out.columns) == list("abcd")


def test_grid_search_without_labels_uses_score(make_imputer, X_missing):
    search = GridSearchCV(make_imputer(), {"latent_dim": [1, 2], "n_components": [2]}, cv=2)
    search.fit(X_missing)  # no y: candidates are ranked by score() (held-out log-likelihood)
    assert search.best_params_["latent_dim"] in (1, 2)
    scores = search.cv_results_["mean_test_score"]
    assert scores.shape == (2,) and np.isfinite(scores).all()
    assert search.best_score_ == pytest.approx(scores.max())
    assert search.score(X_missing) == pytest.approx(search.best_estimator_.score(X_missing))
    assert search.transform(X_missing).shape == X_missing.shape


def test_grid_search_prefers_the_better_model(make_imputer, table):
    # A model trained for 20 epochs must out-score one trained for a single epoch.
    _, X_missing = table(n_samples=200)
    imputer = make_imputer("MIWAE", learning_rate=1e-2, n_score_samples=100)
    search = GridSearchCV(imputer, {"max_iter": [1, 20]}, cv=2).fit(X_missing)
    assert search.best_params_ == {"max_iter": 20}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pickle_round_trip(make_imputer, method, X_missing, dtype):
    X = X_missing.astype(dtype)
    imputer = make_imputer(method).fit(X)
    expected = all_outputs(imputer, X)
    loaded = pickle.loads(pickle.dumps(imputer))
    assert loaded.get_params() == imputer.get_params()
    for a, b in zip(all_outputs(loaded, X), expected):
        assert a.dtype == b.dtype
        assert_array_equal(a, b)


def test_joblib_round_trip(make_imputer, method, X_missing, tmp_path):
    df = pd.DataFrame(X_missing, columns=list("abcd"))
    imputer = make_imputer(method).fit(df)
    expected = all_outputs(imputer, df)
    path = tmp_path / "imputer.joblib"
    joblib.dump(imputer, path)
    loaded = joblib.load(path)
    assert_array_equal(loaded.feature_names_in_, list("abcd"))
    for a, b in zip(all_outputs(loaded, df), expected):
        assert_array_equal(a, b)
    pd.testing.assert_frame_equal(loaded.transform(df), imputer.transform(df))


def test_pickle_unfitted_and_refit(make_imputer, X_missing):
    imputer = make_imputer()
    loaded = pickle.loads(pickle.dumps(imputer))
    assert_array_equal(loaded.fit(X_missing).transform(X_missing), imputer.fit(X_missing).transform(X_missing))


# --------------------------------------------------------------------------------------
# GPU (skipped without CUDA)
# --------------------------------------------------------------------------------------
@pytest.mark.gpu
def test_fit_on_gpu_outputs_cpu_arrays_and_pickles_for_cpu(make_imputer, X_missing, monkeypatch):
    imputer = make_imputer(device="cuda").fit(X_missing.astype(np.float32))
    assert imputer.device_.type == "cuda"
    Xt = imputer.transform(X_missing.astype(np.float32))
    assert isinstance(Xt, np.ndarray) and Xt.dtype == np.float32
    observed = ~np.isnan(X_missing)
    assert_array_equal(Xt[observed], X_missing.astype(np.float32)[observed])

    payload = pickle.dumps(imputer)
    assert all(p.device.type == "cuda" for p in imputer.model_.parameters())  # original kept
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    loaded = pickle.loads(payload)
    assert all(p.device.type == "cpu" for p in loaded.model_.parameters())
    Xt_cpu = loaded.transform(X_missing)
    assert_array_equal(Xt_cpu[observed], X_missing[observed])
    assert np.isfinite(Xt_cpu).all()


def test_methods_table_matches_docs():
    assert set(METHODS) == {"MVAE", "MIWAE", "MissVAE", "MissSVAE", "MissIWAE", "MissSIWAE"}
    for name, params in METHODS.items():
        assert (params["n_components"] == 1) == (name in ("MVAE", "MIWAE"))
        assert params["objective"] == ("iwelbo" if "IWAE" in name else "elbo")
        if params["n_components"] > 1:
            assert params["sampling"] == ("stratified" if name.startswith("MissS") else "ancestral")
        MixtureVAEImputer(**params)  # valid keyword arguments


@pytest.mark.parametrize(
    "method, choice_gradient, resolved",
    [("MVAE", "score", "stl"), ("MIWAE", "score", "stl"), ("MissVAE", "score", "stl"),
     ("MissVAE", "implicit", "total"), ("MissSVAE", "score", "stl"), ("MissIWAE", "score", "stl"),
     ("MissIWAE", "implicit", "stl"), ("MissSIWAE", "score", "stl")],
)
def test_auto_gradient_estimator_is_total_only_for_the_implicit_ancestral_elbo(
        make_imputer, X_missing, method, choice_gradient, resolved):
    params = dict(METHODS[method], choice_gradient=choice_gradient,
                  n_particles=METHODS[method].get("n_components", 1) * 2
                  if METHODS[method].get("sampling") == "stratified" else 2)
    curves = {
        name: make_imputer(**params, gradient_estimator=name, max_iter=3).fit(X_missing).loss_curve_
        for name in ("auto", "stl", "total")
    }
    other = "stl" if resolved == "total" else "total"
    assert curves["auto"] == curves[resolved]
    assert curves["auto"] != curves[other]


def test_min_scale_bounds_the_spread_of_the_draws(make_imputer):
    # Column 1 is column 0 plus little noise, so a decoder without a floor is fairly certain
    # of it; with min_scale=2 every draw has noise of at least two column standard deviations.
    rng = np.random.default_rng(0)
    t = rng.standard_normal(300)
    X = np.column_stack([t, t + 0.05 * rng.standard_normal(300), rng.standard_normal(300)])
    X[::3, 1] = np.nan
    spread = {}
    for min_scale in (1e-5, 2.0):
        imputer = make_imputer("MIWAE", min_scale=min_scale, hidden_width=16, max_iter=30,
                               learning_rate=1e-2).fit(X)
        assert imputer.model_.likelihood.min_scale == min_scale
        draws = imputer.sample_imputations(X[::3], n_imputations=200)[:, :, 1]
        spread[min_scale] = draws.std(axis=0).mean() / imputer.scale_[1]
    assert spread[2.0] > 1.8, spread
    assert spread[1e-5] < 0.5 * spread[2.0], spread


@pytest.mark.parametrize(("n_rows", "expected"), [(100, 5000), (1000, 625), (20_000, 200)])
def test_max_iter_auto_gives_200_epochs_and_5000_steps_at_least(n_rows, expected):
    imputer = MixtureVAEImputer(batch_size=128, max_iter="auto")
    assert training_config(imputer, n_rows).max_epochs == expected  # 1, 8 and 157 steps per epoch
    assert training_config(MixtureVAEImputer(max_iter=7), n_rows).max_epochs == 7


def test_max_iter_auto_is_resolved_for_training(make_imputer, X_missing):
    # 120 rows in batches of 60: 2 steps per epoch, so "auto" plans 2,500 epochs.
    planned = []
    imputer = make_imputer(max_iter="auto", batch_size=60,
                           early_stopping=False, callbacks=[lambda imp, info: True])
    imputer.fit(X_missing)
    assert training_config(imputer, len(X_missing)).max_epochs == 2500 and imputer.n_iter_ == 1


@pytest.mark.parametrize(("n_rows", "max_iter", "expected"), [
    (150, 200, 3e-3),       # 2 batches per epoch: 400 steps
    (3200, 200, 3e-3),      # 25 batches per epoch: exactly 5,000 steps
    (3201, 200, 1e-3),      # 26 batches per epoch: 5,200 steps
    (20_000, 200, 1e-3),    # 157 batches per epoch: 31,400 steps
    (20_000, 30, 3e-3),     # 4,710 steps
])
def test_learning_rate_auto_follows_the_planned_steps(n_rows, max_iter, expected):
    assert MixtureVAEImputer().learning_rate == "auto"
    imputer = MixtureVAEImputer(batch_size=128, max_iter=max_iter)
    assert training_config(imputer, n_rows).learning_rate == expected
    assert training_config(imputer.set_params(learning_rate=0.02), n_rows).learning_rate == 0.02


def test_learning_rate_auto_trains_as_its_resolved_value(make_imputer, X_missing):
    def weights(learning_rate):
        imputer = make_imputer(learning_rate=learning_rate).fit(X_missing)
        return torch.cat([p.detach().flatten() for p in imputer.model_.parameters()])

    auto = weights("auto")  # 120 rows, 3 epochs of batch 32: 12 steps, so 3e-3
    assert torch.equal(auto, weights(3e-3))
    assert not torch.allclose(auto, weights(1e-3))


@pytest.mark.parametrize("method, matters", [("MissVAE", True), ("MissIWAE", True), ("MissSIWAE", False),
                                              ("MIWAE", False)])
def test_choice_gradient_changes_only_ancestral_mixture_fits(make_imputer, X_missing, method, matters):
    params = dict(METHODS[method], n_particles=10 if method == "MissSIWAE" else 2, max_iter=3,
                  gradient_estimator="stl")
    curves = [make_imputer(**params, choice_gradient=name).fit(X_missing).loss_curve_
              for name in ("score", "implicit")]
    assert (curves[0] != curves[1]) == matters
