"""The options shared with scikit-learn's imputers: missing_values, add_indicator,
min_value/max_value, integer columns and n_jobs, for both estimators and the ensemble."""

from __future__ import annotations

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from numpy.testing import assert_array_equal
from sklearn.base import clone
from sklearn.impute import MissingIndicator, SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import InvalidParameterError

import skmissvae
from skmissvae import DeMissVAEImputer, MixtureVAEImputer, VAEEnsembleImputer

from _helpers import FAST_PARAMS, correlated_table

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

DEMISS = dict(max_iter=2, n_imputations=2, lair_iterations=2, n_transform_sweeps=1, pool_size=50)
FACTORIES = {
    "mixture": lambda **kw: MixtureVAEImputer(**{**FAST_PARAMS, "n_components": 2, "n_particles": 4,
                                                 "random_state": 0, **kw}),
    "demissvae": lambda **kw: DeMissVAEImputer(**{**FAST_PARAMS, **DEMISS, "random_state": 0, **kw}),
    "ensemble": lambda **kw: VAEEnsembleImputer(
        MixtureVAEImputer(**{**FAST_PARAMS, "n_components": 2, "n_particles": 4, **kw}),
        n_estimators=2, random_state=0),
}


@pytest.fixture(params=sorted(FACTORIES))
def make(request):
    return FACTORIES[request.param]


@pytest.fixture(params=["mixture", "demissvae"])
def make_single(request):
    return FACTORIES[request.param]


def bits(a):
    a = np.ascontiguousarray(a, dtype=np.float64)
    return a.view(np.uint64)


def integer_table(n_samples=60, seed=0):
    """An int64 array with -1 where missing, and the same table as float64 with NaN."""
    _, X = correlated_table(n_samples, seed=seed)
    X_int = np.where(np.isnan(X), -1, np.abs(np.round(X))).astype(np.int64)
    X_float = np.where(X_int == -1, np.nan, X_int).astype(np.float64)
    return X_int, X_float


# -- missing_values ------------------------------------------------------------------------------
def test_minus_one_in_an_int_array_equals_nan_in_a_float_array_bit_for_bit(make):
    X_int, X_float = integer_table()
    before = X_int.copy()
    sentinel = make(missing_values=-1).fit(X_int)
    nan = make().fit(X_float)
    assert_array_equal(bits(sentinel.transform(X_int)), bits(nan.transform(X_float)))
    assert_array_equal(bits(sentinel.sample_imputations(X_int, 2)), bits(nan.sample_imputations(X_float, 2)))
    assert_array_equal(bits(sentinel.score_samples(X_int)), bits(nan.score_samples(X_float)))
    assert sentinel.transform(X_int).dtype == np.float64  # arrays come back as floats
    assert_array_equal(X_int, before)  # the caller's array is never modified


def test_a_number_as_missing_values_in_a_dataframe(make_single):
    X_int, X_float = integer_table()
    frame = pd.DataFrame(X_int, columns=["a", "b", "c", "d"])
    frame["a"] = frame["a"].astype(np.float64)  # a float column with -1.0 for missing
    before = frame.copy()
    out = make_single(missing_values=-1).fit(frame).transform(frame)
    expected = make_single().fit(pd.DataFrame(X_float, columns=list("abcd"))).transform(
        pd.DataFrame(X_float, columns=list("abcd")))
    # The integer columns come back as integers: the same imputations, rounded.
    assert out.dtypes.tolist() == [np.float64] + [np.int64] * 3
    assert_array_equal(bits(out["a"]), bits(expected["a"]))
    assert_array_equal(out[["b", "c", "d"]].to_numpy(), np.round(expected[["b", "c", "d"]].to_numpy()))
    assert (out != -1).all().all()
    pd.testing.assert_frame_equal(frame, before)  # the caller's DataFrame is never modified


@pytest.mark.parametrize("missing_values", [None, pd.NA, float("nan")], ids=["None", "pd.NA", "nan"])
def test_na_placeholders_mean_nan(make_single, missing_values):
    _, X = correlated_table(60)
    default = make_single().fit(X)
    other = make_single(missing_values=missing_values).fit(X)
    assert_array_equal(bits(other.transform(X)), bits(default.transform(X)))
    frame = pd.DataFrame(X, columns=list("abcd")).astype({"a": "Float64"})  # pd.NA in a nullable column
    out = make_single(missing_values=missing_values).fit(frame).transform(frame)
    assert not out.isna().any().any()


def test_a_string_placeholder_in_a_mixed_table(make_single):
    rng = np.random.RandomState(0)
    colour = rng.choice(["red", "green", "blue"], 80).astype(object)
    x = rng.standard_normal(80)
    x[::7] = np.nan
    colour[::5] = "?"
    frame = pd.DataFrame({"x": x, "colour": colour})
    nan_frame = frame.replace("?", np.nan)
    out = make_single(missing_values="?").fit(frame).transform(frame)
    expected = make_single().fit(nan_frame).transform(nan_frame)
    pd.testing.assert_frame_equal(out, expected)
    assert set(out["colour"]) <= {"red", "green", "blue"}
    assert (frame["colour"] == "?").sum() == 16  # untouched


def test_booleans_never_equal_a_numeric_placeholder():
    frame = pd.DataFrame({"x": np.arange(40.0), "flag": [True, False] * 20})
    frame.loc[::4, "x"] = 1.0
    imputer = FACTORIES["mixture"](missing_values=1).fit(frame)
    out = imputer.transform(frame)
    assert out["flag"].tolist() == frame["flag"].tolist()


def test_missing_values_is_validated():
    _, X = correlated_table(30)
    with pytest.raises(InvalidParameterError, match="missing_values"):
        FACTORIES["mixture"](missing_values=[-1]).fit(X)


# -- add_indicator -------------------------------------------------------------------------------
def test_indicator_columns_equal_missing_indicator(make):
    _, X = correlated_table(60)
    X[:, 1] = np.where(np.isnan(X[:, 1]), 0.5, X[:, 1])  # a column without missing values
    imputer = make(add_indicator=True).fit(X)
    out = imputer.transform(X)
    indicator = MissingIndicator(error_on_new=False).fit(X)
    assert out.shape == (60, 4 + 3)
    assert_array_equal(out[:, 4:], indicator.transform(X))
    assert_array_equal(out[:, :4], make().fit(X).transform(X))  # the imputations are unchanged
    assert_array_equal(imputer.get_feature_names_out(),
                       ["x0", "x1", "x2", "x3", "missingindicator_x0", "missingindicator_x2",
                        "missingindicator_x3"])
    draws = imputer.sample_imputations(X, 3)
    assert draws.shape == (3, 60, 7)
    for copy_ in draws:
        assert_array_equal(copy_[:, 4:], indicator.transform(X))
    # New rows: missing entries of a column complete at fit get no indicator.
    X_new = X[:10].copy()
    X_new[0, 1] = np.nan
    assert_array_equal(imputer.transform(X_new)[:, 4:], indicator.transform(X_new))


def test_indicator_of_a_dataframe_follows_simple_imputer(make):
    _, X = correlated_table(60)
    frame = pd.DataFrame(X, columns=["h", "w", "a", "i"])
    imputer = make(add_indicator=True).fit(frame)
    out = imputer.transform(frame)
    simple = SimpleImputer(add_indicator=True).set_output(transform="pandas").fit(frame)
    expected = simple.transform(frame)
    assert list(out.columns) == list(expected.columns) == list(imputer.get_feature_names_out())
    pd.testing.assert_frame_equal(out.iloc[:, 4:], expected.iloc[:, 4:])  # float 0/1 columns
    assert (out.index == frame.index).all()
    # In a set_output pipeline, for arrays too.
    wrapped = clone(imputer).set_output(transform="pandas").fit(X)
    assert list(wrapped.transform(X).columns) == list(wrapped.get_feature_names_out())


def test_indicator_in_mixed_tables_and_each_draw():
    rng = np.random.RandomState(0)
    frame = pd.DataFrame({"x": rng.standard_normal(60), "c": pd.Categorical(rng.choice(["a", "b"], 60))})
    frame.loc[::6, "x"] = np.nan
    frame.loc[1::7, "c"] = np.nan
    imputer = FACTORIES["mixture"](add_indicator=True).fit(frame)
    copies = imputer.sample_imputations(frame, 2)
    for copy_ in [imputer.transform(frame), *copies]:
        assert list(copy_.columns) == ["x", "c", "missingindicator_x", "missingindicator_c"]
        assert_array_equal(copy_[["missingindicator_x", "missingindicator_c"]].to_numpy(),
                           frame.isna().to_numpy())
        assert copy_["c"].dtype == frame["c"].dtype


def test_indicator_of_a_column_empty_at_fit_is_kept(make_single):
    _, X = correlated_table(60)
    X[:, 2] = np.nan
    for keep in (False, True):
        imputer = make_single(add_indicator=True, keep_empty_features=keep).fit(X)
        out = imputer.transform(X)
        assert out.shape[1] == len(imputer.get_feature_names_out()) == (3 + keep) + 4
        assert_array_equal(out[:, -4:], MissingIndicator().fit(X).transform(X))
        assert imputer.get_feature_names_out()[-2] == "missingindicator_x2"


def test_no_indicator_without_missing_values_at_fit():
    X, _ = correlated_table(40)
    imputer = FACTORIES["mixture"](add_indicator=True).fit(X)
    assert imputer.transform(X).shape == (40, 4)
    assert len(imputer.indicator_features_) == 0


# -- min_value / max_value -----------------------------------------------------------------------
@pytest.mark.parametrize("bounds", [
    dict(min_value=9.0, max_value=11.0),
    dict(min_value=[9.0, 9.5, -np.inf, -50.0], max_value=np.array([11.0, 10.5, -2.0, 50.0])),
], ids=["scalar", "per-column"])
def test_imputations_and_every_draw_lie_within_the_bounds(make, bounds):
    _, X = correlated_table(60)
    missing = np.isnan(X)
    low = np.broadcast_to(np.asarray(bounds["min_value"], float), (4,))
    high = np.broadcast_to(np.asarray(bounds["max_value"], float), (4,))
    imputer = make(**bounds).fit(X)
    out = imputer.transform(X)
    draws = imputer.sample_imputations(X, 4)
    for completed in [out, *draws]:
        rows, cols = np.nonzero(missing)
        assert (completed[rows, cols] >= low[cols]).all() and (completed[rows, cols] <= high[cols]).all()
        assert_array_equal(bits(completed[~missing]), bits(X[~missing]))  # observed untouched
    # The bounds bind: some observed values lie outside them, and imputations change.
    assert ((X < low) | (X > high))[~missing].any()
    unbounded = make().fit(X)
    assert not np.array_equal(unbounded.transform(X), out)
    assert_array_equal(bits(unbounded.score_samples(X)), bits(imputer.score_samples(X)))


def test_bounds_with_dataframes_and_semicontinuous_columns(make_single):
    rng = np.random.RandomState(0)
    amount = np.where(rng.rand(80) < 0.5, 0.0, rng.lognormal(2, 1, 80))
    frame = pd.DataFrame({"amount": amount, "x": rng.standard_normal(80) + amount / 10})
    frame.loc[::4, "amount"] = np.nan
    frame.loc[1::5, "x"] = np.nan
    imputer = make_single(min_value=[0.0, -1.0], max_value=[5.0, 1.0],
                          column_types={"amount": "semicontinuous"}).fit(frame)
    missing = frame.isna().to_numpy()
    for completed in [imputer.transform(frame), *imputer.sample_imputations(frame, 3)]:
        values = np.asarray(completed, dtype=float)
        assert (values[missing[:, 0], 0] >= 0).all() and (values[missing[:, 0], 0] <= 5).all()
        assert (values[missing[:, 1], 1] >= -1).all() and (values[missing[:, 1], 1] <= 1).all()
        assert_array_equal(values[~missing], frame.to_numpy()[~missing])


def test_draws_of_a_numeric_table_keep_the_column_order(make_single):
    rng = np.random.RandomState(0)
    amount = np.where(rng.rand(60) < 0.5, 0.0, rng.lognormal(2, 1, 60))
    frame = pd.DataFrame({"amount": amount, "x": rng.standard_normal(60), "y": rng.standard_normal(60)})
    frame.loc[::4, "amount"] = np.nan
    imputer = make_single(column_types={"amount": "semicontinuous"}).fit(frame)
    for copy_ in imputer.sample_imputations(frame, 2):
        assert_array_equal(copy_[:, 1:], frame[["x", "y"]].to_numpy())
        observed = frame["amount"].notna().to_numpy()
        assert_array_equal(copy_[observed, 0], frame["amount"][observed])


def test_float32_imputations_lie_within_float32_bounds():
    _, X = correlated_table(60)
    X = X.astype(np.float32)
    out = FACTORIES["mixture"](min_value=9.1, max_value=10.9).fit(X).transform(X)
    assert out.dtype == np.float32
    assert (out[:, :2][np.isnan(X[:, :2])] >= np.float32(9.1)).all()
    assert (out[:, :2][np.isnan(X[:, :2])] <= np.float32(10.9)).all()


@pytest.mark.parametrize("bounds, message", [
    (dict(min_value=[0.0, 1.0]), r"min_value should be of shape \(4,\).*got shape \(2,\)"),
    (dict(max_value=np.zeros((4, 1))), r"max_value should be of shape \(4,\)"),
    (dict(min_value=2.0, max_value=1.0), "must not exceed max_value"),
    (dict(min_value=[0.0, np.nan, 0.0, 0.0]), "must not be NaN"),
    (dict(max_value=["a", "b", "c", "d"]), "max_value must be a number or an array-like"),
])
def test_bounds_are_validated_before_training(bounds, message):
    _, X = correlated_table(30)
    epochs = []
    imputer = FACTORIES["mixture"](**bounds, callbacks=[lambda est, info: epochs.append(info)])
    with pytest.raises(ValueError, match=message):
        imputer.fit(X)
    assert not epochs


def test_bounds_of_categorical_columns_are_refused():
    frame = pd.DataFrame({"x": np.arange(20.0), "c": ["a", "b"] * 10})
    with pytest.raises(ValueError, match="numeric columns only.*'c'"):
        FACTORIES["mixture"](min_value=[0.0, 1.0]).fit(frame)
    out = FACTORIES["mixture"](min_value=[0.0, -np.inf], max_value=5.0).fit(frame).transform(frame)
    assert list(out["c"]) == list(frame["c"])


# -- integer columns -----------------------------------------------------------------------------
def test_integer_columns_of_a_dataframe_keep_their_dtype(make):
    X_int, _ = integer_table()
    frame = pd.DataFrame({
        "a": X_int[:, 0],  # int64 with -1 for missing
        "b": X_int[:, 1].astype(np.int32),
        "c": pd.array(np.where(X_int[:, 2] == -1, None, X_int[:, 2]), dtype="Int64"),  # pd.NA
        "d": np.where(X_int[:, 3] == -1, np.nan, X_int[:, 3] + 0.25),  # float stays float
    })
    before = frame.copy()
    imputer = make(missing_values=-1, min_value=[1.0, 0.5, 0, -np.inf], max_value=[12.2, np.inf, 10, np.inf])
    out = imputer.fit(frame).transform(frame)
    assert out.dtypes.to_dict() == {"a": np.dtype(np.int64), "b": np.dtype(np.int32),
                                    "c": pd.Int64Dtype(), "d": np.dtype(np.float64)}
    assert not out.isna().any().any()
    for name, low, high in (("a", 1, 12), ("b", 1, np.inf), ("c", 0, 10)):
        gap = (frame[name] == -1) | frame[name].isna()
        assert (out.loc[gap, name] >= low).all() and (out.loc[gap, name] <= high).all()
        assert (out.loc[~gap, name] == frame.loc[~gap, name]).all()  # observed untouched
    pd.testing.assert_frame_equal(frame, before)
    # Draws of a numeric DataFrame stay a float array, with the integer columns whole.
    draws = imputer.sample_imputations(frame, 3)
    assert draws.dtype == np.float64
    assert_array_equal(draws[..., :3], np.round(draws[..., :3]))
    gap = (frame["a"] == -1).to_numpy()
    assert (draws[:, gap, 0] >= 1).all() and (draws[:, gap, 0] <= 12).all()


def test_integer_columns_in_a_mixed_table():
    rng = np.random.RandomState(0)
    frame = pd.DataFrame({"year": rng.randint(1990, 2020, 60), "c": rng.choice(["a", "b"], 60),
                          "x": rng.standard_normal(60)})
    frame["year"] = frame["year"].astype("Int64")
    frame.loc[::5, "year"] = pd.NA
    frame.loc[::7, "c"] = None
    imputer = FACTORIES["demissvae"](add_indicator=True).fit(frame)
    for copy_ in [imputer.transform(frame), *imputer.sample_imputations(frame, 2)]:
        assert copy_["year"].dtype == pd.Int64Dtype() and not copy_["year"].isna().any()
        assert copy_["c"].dtype == frame["c"].dtype and copy_["x"].dtype == np.float64
        assert list(copy_.columns[-2:]) == ["missingindicator_year", "missingindicator_c"]


# -- n_jobs --------------------------------------------------------------------------------------
def _thread_recorder(seen):
    def callback(imputer, info):
        seen.append(torch.get_num_threads())
    return callback


@pytest.mark.parametrize("name", ["mixture", "demissvae"])
def test_n_jobs_sets_torch_threads_during_fit_and_inference_and_restores_them(name):
    _, X = correlated_table(40)
    before = torch.get_num_threads()
    seen = []
    imputer = FACTORIES[name](n_jobs=2, callbacks=[_thread_recorder(seen)]).fit(X)
    assert seen and set(seen) == {2}
    assert torch.get_num_threads() == before
    # Inference: record the threads inside the fitted model's calls.
    fitted, calls = imputer.fitted_model_, []
    for method in ("impute", "sample", "log_likelihood"):
        original = getattr(fitted, method)
        setattr(fitted, method, lambda *a, _f=original, **k: (calls.append(torch.get_num_threads()), _f(*a, **k))[1])
    imputer.transform(X), imputer.sample_imputations(X, 2), imputer.score_samples(X), imputer.score(X)
    assert calls == [2, 2, 2, 2]
    assert torch.get_num_threads() == before


def test_n_jobs_none_is_one_thread_and_minus_one_uses_every_core():
    _, X = correlated_table(40)
    torch.set_num_threads(2)  # a setting of the caller's, which None does not inherit
    before = torch.get_num_threads()
    seen = []
    FACTORIES["mixture"](callbacks=[_thread_recorder(seen)]).fit(X)
    assert set(seen) == {1}
    seen.clear()
    with joblib.parallel_config(n_jobs=2):  # scikit-learn's way to ask for more
        FACTORIES["mixture"](callbacks=[_thread_recorder(seen)]).fit(X)
    assert set(seen) == {2}
    seen.clear()
    FACTORIES["mixture"](n_jobs=-1, callbacks=[_thread_recorder(seen)]).fit(X)
    assert set(seen) == {joblib.cpu_count()}
    assert torch.get_num_threads() == before
    torch.set_num_threads(1)


def test_threads_are_restored_when_fit_fails():
    _, X = correlated_table(40)
    before = torch.get_num_threads()

    def fail(imputer, info):
        raise RuntimeError("stop here")

    with pytest.raises(RuntimeError, match="stop here"):
        FACTORIES["demissvae"](n_jobs=3, callbacks=[fail]).fit(X)
    assert torch.get_num_threads() == before


def test_members_fit_with_their_own_threads():
    _, X = correlated_table(40)
    seen = []
    member = MixtureVAEImputer(**FAST_PARAMS, n_jobs=2, callbacks=[_thread_recorder(seen)])
    VAEEnsembleImputer(member, n_estimators=2, random_state=0).fit(X)
    assert len(seen) == 2 * FAST_PARAMS["max_iter"] and set(seen) == {2}


@pytest.mark.parametrize("n_jobs", [0, 1.5, "2"])
def test_n_jobs_is_validated(n_jobs):
    _, X = correlated_table(30)
    with pytest.raises(InvalidParameterError, match="n_jobs"):
        FACTORIES["mixture"](n_jobs=n_jobs).fit(X)


# -- together ------------------------------------------------------------------------------------
def test_every_option_in_a_pipeline(make):
    X_int, _ = integer_table(80)
    options = dict(missing_values=-1, add_indicator=True, min_value=0, max_value=15, n_jobs=1)
    pipe = Pipeline([("impute", make(**options)), ("scale", StandardScaler())])
    out = pipe.fit_transform(X_int)
    n_indicator = int((X_int == -1).any(axis=0).sum())
    assert out.shape == (80, 4 + n_indicator) and np.isfinite(out).all()
    names = pipe.get_feature_names_out()
    assert list(names[4:]) == [f"missingindicator_x{j}" for j in np.flatnonzero((X_int == -1).any(axis=0))]
    imputed = pipe.named_steps["impute"].transform(X_int)
    gaps = X_int == -1
    assert (imputed[:, :4][gaps] >= 0).all() and (imputed[:, :4][gaps] <= 15).all()
    # DataFrames through a pandas-output pipeline.
    frame = pd.DataFrame(X_int, columns=["p", "q", "r", "s"])
    pipe = Pipeline([("impute", make(**options)), ("scale", StandardScaler())]).set_output(transform="pandas")
    out = pipe.fit_transform(frame)
    assert list(out.columns) == list(pipe.get_feature_names_out())
    assert out.shape == (80, 4 + n_indicator)


def test_parameters_are_stored_unchanged_and_clone(make_single):
    bounds = np.array([0.0, 1.0, 2.0, 3.0])
    imputer = make_single(missing_values=pd.NA, add_indicator=True, min_value=bounds, max_value=9, n_jobs=-2)
    params = imputer.get_params()
    assert params["missing_values"] is pd.NA and params["min_value"] is bounds
    assert params["add_indicator"] is True and params["max_value"] == 9 and params["n_jobs"] == -2
    assert_array_equal(clone(imputer).get_params()["min_value"], bounds)


def test_save_load_round_trip_with_the_options(make, tmp_path):
    X_int, _ = integer_table()
    frame = pd.DataFrame(X_int, columns=["a", "b", "c", "d"])
    frame["b"] = frame["b"].astype(np.float64)
    imputer = make(missing_values=-1, add_indicator=True, min_value=np.array([1.0, 0.0, 0.0, 0.0]),
                   max_value=11.5, n_jobs=1).fit(frame)
    path = tmp_path / "model.pt"
    skmissvae.save(imputer, path)
    loaded = skmissvae.load(path)
    single = loaded.estimators_[0] if isinstance(loaded, VAEEnsembleImputer) else loaded
    assert single.missing_values == -1 and single.add_indicator and single.n_jobs == 1
    assert_array_equal(single.min_value, [1.0, 0.0, 0.0, 0.0])
    pd.testing.assert_frame_equal(loaded.transform(frame), imputer.transform(frame))
    assert loaded.transform(frame)["a"].dtype == np.int64
    assert_array_equal(loaded.sample_imputations(frame, 2), imputer.sample_imputations(frame, 2))
    assert_array_equal(loaded.get_feature_names_out(), imputer.get_feature_names_out())
