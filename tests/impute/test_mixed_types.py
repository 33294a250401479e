"""Mixed-type tables: continuous, binary and categorical columns in both estimators."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from skmissvae import DeMissVAEImputer, MixtureVAEImputer
from skmissvae._columns import ColumnCodec, infer_column_types

from _helpers import LEARNING_PARAMS

# Small networks, but enough epochs to learn how the categories depend on the numbers.
PARAMS = LEARNING_PARAMS
ESTIMATORS = {
    "mixture": lambda **kw: MixtureVAEImputer(**{**PARAMS, "n_components": 1, "n_particles": 4, **kw}),
    "demissvae": lambda **kw: DeMissVAEImputer(
        **{**PARAMS, "lair_iterations": 1, "n_transform_sweeps": 2, **kw}
    ),
}


def mixed_table(n_samples=240, missing_rate=0.25, seed=0):
    """``(complete, incomplete)`` DataFrames with continuous, binary and categorical columns.

    A latent ``t`` drives the continuous columns ``x``, ``y``, the bool column ``b`` and the
    category column ``c`` (low/mid/high by thresholds of ``t``), so the numbers predict the
    discrete columns. ``s`` is an independent string column. About ``missing_rate`` of the
    cells of ``x``, ``y``, ``b`` and ``c`` are missing; ``b`` then holds objects (True,
    False, NaN) and ``c`` stays a category column with NaN.
    """
    rng = np.random.RandomState(seed)
    t = rng.standard_normal(n_samples)
    complete = pd.DataFrame(
        {
            "x": t + 0.1 * rng.standard_normal(n_samples),
            "y": 2.0 * t + 5.0 + rng.standard_normal(n_samples),
            "b": (t + 0.3 * rng.standard_normal(n_samples)) > 0.3,
            "c": pd.Categorical(np.where(t < -0.5, "low", np.where(t < 0.5, "mid", "high"))),
            "s": np.where(rng.rand(n_samples) < 0.5, "p", "q"),
        },
        index=pd.RangeIndex(100, 100 + n_samples),
    )
    incomplete = complete.copy()
    incomplete["b"] = incomplete["b"].astype(object)
    for column in ["x", "y", "b", "c"]:
        incomplete.loc[rng.rand(n_samples) < missing_rate, column] = np.nan
    return complete, incomplete


@pytest.fixture(scope="module")
def table():
    return mixed_table()


@pytest.fixture(scope="module", params=sorted(ESTIMATORS))
def fitted(request, table):
    """``(name, estimator fitted on the incomplete table)`` for each estimator."""
    _, incomplete = table
    return request.param, ESTIMATORS[request.param]().fit(incomplete)


def _observed_equal(out: pd.DataFrame, given: pd.DataFrame) -> None:
    for column in given.columns:
        seen = given[column].notna().to_numpy()
        np.testing.assert_array_equal(
            out[column].to_numpy(dtype=object)[seen], given[column].to_numpy(dtype=object)[seen]
        )


# -- column types ---------------------------------------------------------------------
def test_column_types_are_inferred_from_dtypes(table):
    _, incomplete = table
    frame = incomplete.assign(
        nb=pd.array([True, None, False] * 80, dtype="boolean"),
        i=np.arange(240),
        o=pd.Series([1.5, None, 2] * 80, dtype=object),
    )
    assert infer_column_types(frame) == [
        "continuous", "continuous", "binary", "categorical", "categorical",
        "binary", "continuous", "continuous",
    ]
    assert infer_column_types(frame[["x", "y"]].to_numpy()) == ["continuous"] * 2
    assert infer_column_types(frame, {"i": "categorical", 0: "binary"})[:7] == [
        "binary", "continuous", "binary", "categorical", "categorical", "binary", "categorical",
    ]


@pytest.mark.parametrize(
    "column_types, message",
    [
        ({"nope": "binary"}, "column 'nope'"),
        ({7: "binary"}, "column 7"),
        ({"x": "ordinal"}, "'ordinal'"),
        ({"c": "binary"}, "Binary column 'c' has 3 distinct values"),
        ({"s": "continuous"}, "Continuous column 's'"),
    ],
)
def test_bad_column_types_raise_naming_the_column(table, column_types, message):
    _, incomplete = table
    with pytest.raises(ValueError, match=message):
        MixtureVAEImputer(**PARAMS, column_types=column_types).fit(incomplete)


def test_fitted_column_types_and_encoder(fitted):
    _, imputer = fitted
    assert imputer.column_types_ == {
        "x": "continuous", "y": "continuous", "b": "binary", "c": "categorical", "s": "categorical",
    }
    encoder = imputer.column_encoder_
    assert encoder.blocks_ == [("gaussian", 2), ("bernoulli", 1), ("categorical", 3), ("categorical", 2)]
    assert list(encoder.columns_[3].levels) == ["high", "low", "mid"]  # sorted
    # Only continuous columns are standardised.
    assert imputer.mean_.shape == imputer.scale_.shape == (8,)
    np.testing.assert_array_equal(imputer.mean_[2:], 0.0)
    np.testing.assert_array_equal(imputer.scale_[2:], 1.0)
    assert imputer.scale_[1] > 1.5  # y has a standard deviation near sqrt(5)


def test_all_numeric_tables_take_the_numeric_path(table):
    complete, _ = table
    imputer = MixtureVAEImputer(**{**PARAMS, "max_iter": 2}).fit(complete[["x", "y"]])
    assert imputer.column_encoder_ is None
    assert imputer.column_types_ == {"x": "continuous", "y": "continuous"}
    assert imputer.mean_.shape == (2,)


# -- transform ------------------------------------------------------------------------
def test_transform_returns_valid_values_in_the_original_dtypes(fitted, table):
    _, incomplete = table
    _, imputer = fitted
    before = incomplete.copy()
    out = imputer.transform(incomplete)
    pd.testing.assert_frame_equal(incomplete, before)  # the input is not modified
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == list(incomplete.columns)
    assert out.index.equals(incomplete.index)
    assert not out.isna().any().any()
    assert out["x"].dtype == np.float64 and out["b"].dtype == bool
    assert out["c"].dtype == incomplete["c"].dtype  # the same CategoricalDtype
    assert out["s"].dtype == incomplete["s"].dtype
    assert set(out["c"]) <= {"low", "mid", "high"} and set(out["s"]) <= {"p", "q"}
    _observed_equal(out, incomplete)


def test_imputed_categories_and_booleans_beat_the_mode(fitted, table):
    complete, incomplete = table
    _, imputer = fitted
    out = imputer.transform(incomplete)
    for column in ["c", "b"]:
        missing = incomplete[column].isna().to_numpy()
        truth = complete[column].to_numpy(dtype=object)[missing]
        accuracy = np.mean(out[column].to_numpy(dtype=object)[missing] == truth)
        mode = complete[column].mode()[0]
        mode_accuracy = np.mean(truth == mode)
        assert accuracy > mode_accuracy + 0.15, (column, accuracy, mode_accuracy)


def test_rows_with_a_missing_category_or_almost_nothing_observed(fitted, table):
    _, incomplete = table
    _, imputer = fitted
    rows = incomplete.iloc[:6].copy()
    rows["c"] = np.nan  # the category entirely missing in these rows
    rows.loc[rows.index[0], ["x", "y", "b", "s"]] = np.nan  # only nothing...
    rows.loc[rows.index[1], ["x", "y", "b"]] = np.nan  # ...or only a category observed
    out = imputer.transform(rows)
    assert not out.isna().any().any()
    assert set(out["c"]) <= {"low", "mid", "high"}
    _observed_equal(out, rows)
    scores = imputer.score_samples(rows)
    assert np.isfinite(scores).all() and scores[0] == 0.0


def test_unseen_categories_raise_naming_the_column_and_values(fitted, table):
    _, incomplete = table
    _, imputer = fitted
    rows = incomplete.iloc[:5].copy()
    rows["c"] = rows["c"].cat.add_categories(["extreme"])
    rows.loc[rows.index[1], "c"] = "extreme"
    with pytest.raises(ValueError, match=r"Categorical column 'c' has values not seen during fit: 'extreme'"):
        imputer.transform(rows)
    rows = incomplete.iloc[:5].copy()
    rows["b"] = ["maybe", True, False, np.nan, True]
    with pytest.raises(ValueError, match=r"Binary column 'b' .*'maybe'"):
        imputer.score_samples(rows)


def test_columns_are_checked_by_name(fitted, table):
    _, incomplete = table
    _, imputer = fitted
    with pytest.raises(ValueError, match="feature names"):
        imputer.transform(incomplete[["y", "x", "b", "c", "s"]])


# -- sampling and scores --------------------------------------------------------------
def test_sample_imputations_are_tables_of_valid_values(fitted, table):
    _, incomplete = table
    _, imputer = fitted
    draws = imputer.sample_imputations(incomplete, n_imputations=3)
    assert isinstance(draws, list) and len(draws) == 3
    for draw in draws:
        assert draw.dtypes.equals(imputer.transform(incomplete.iloc[:2]).dtypes)
        assert not draw.isna().any().any()
        assert set(draw["c"]) <= {"low", "mid", "high"}
        _observed_equal(draw, incomplete)
    missing = incomplete["c"].isna().to_numpy()
    assert (draws[0]["c"][missing] != draws[1]["c"][missing]).any()  # draws, not a mode


def test_scores_include_the_categorical_terms(fitted, table):
    _, incomplete = table
    _, imputer = fitted
    rows = incomplete[incomplete["c"].notna()].iloc[:40]
    hidden = rows.copy()
    hidden["c"] = np.nan
    imputer.set_params(n_score_samples=4096)  # tighter bounds for a per-row comparison
    try:
        with_c, without_c = imputer.score_samples(rows), imputer.score_samples(hidden)
    finally:
        imputer.set_params(n_score_samples=PARAMS["n_score_samples"])
    assert np.isfinite(with_c).all() and np.isfinite(without_c).all()
    # log p(x_o, c) = log p(x_o) + log P(c | x_o) <= log p(x_o): a discrete probability is
    # at most 1, so observing the category lowers the score (Monte-Carlo noise aside).
    assert np.mean(with_c) < np.mean(without_c)
    assert np.mean(with_c < without_c + 0.05) > 0.9


def test_scores_are_in_the_units_of_the_continuous_columns(table):
    _, incomplete = table
    scaled = incomplete.assign(y=incomplete["y"] * 10.0)
    a = ESTIMATORS["mixture"]().fit(incomplete)
    b = ESTIMATORS["mixture"]().fit(scaled)
    # Scaling y by 10 shifts the density of every row where y is observed by -log 10.
    observed_y = incomplete["y"].notna().to_numpy()
    difference = a.score_samples(incomplete) - b.score_samples(scaled)
    np.testing.assert_allclose(difference, np.where(observed_y, np.log(10.0), 0.0), atol=2e-3)


# -- overrides, arrays, pickling ------------------------------------------------------
def test_integer_columns_declared_binary_and_categorical(table):
    complete, _ = table
    rng = np.random.RandomState(1)
    frame = pd.DataFrame(
        {
            "x": complete["x"].to_numpy(),
            "flag": (complete["x"].to_numpy() > 0).astype(np.int64),
            "code": complete["c"].cat.codes.to_numpy().astype(np.int64) + 1,  # 1, 2, 3
        }
    )
    incomplete = frame.astype({"flag": float, "code": float})
    incomplete.loc[rng.rand(len(frame)) < 0.3, "code"] = np.nan
    incomplete.loc[rng.rand(len(frame)) < 0.3, "flag"] = np.nan
    imputer = MixtureVAEImputer(
        **{**PARAMS, "max_iter": 5}, column_types={"flag": "binary", "code": "categorical"}
    ).fit(frame)
    assert imputer.column_types_ == {"x": "continuous", "flag": "binary", "code": "categorical"}
    out = imputer.transform(incomplete)
    assert set(out["flag"]) <= {0.0, 1.0} and set(out["code"]) <= {1.0, 2.0, 3.0}
    assert out["flag"].dtype == np.int64 and out["code"].dtype == np.int64  # as at fit
    _observed_equal(out, incomplete)


def test_arrays_with_declared_columns_stay_arrays(table):
    complete, incomplete = table
    codes = incomplete["c"].cat.codes.to_numpy().astype(float)
    codes[codes < 0] = np.nan
    X = np.column_stack([incomplete["x"], incomplete["y"], codes])
    imputer = MixtureVAEImputer(**{**PARAMS, "max_iter": 5}, column_types={2: "categorical"}).fit(X)
    assert imputer.column_types_ == {0: "continuous", 1: "continuous", 2: "categorical"}
    out = imputer.transform(X)
    assert isinstance(out, np.ndarray) and out.shape == X.shape and out.dtype == np.float64
    assert set(np.unique(out[:, 2])) <= {0.0, 1.0, 2.0}
    seen = ~np.isnan(X)
    np.testing.assert_array_equal(out[seen], X[seen])
    draws = imputer.sample_imputations(X, n_imputations=2)
    assert isinstance(draws, np.ndarray) and draws.shape == (2, *X.shape)
    assert not np.isnan(draws).any()


def test_pickled_estimators_give_the_same_outputs(fitted, table):
    _, incomplete = table
    _, imputer = fitted
    clone = pickle.loads(pickle.dumps(imputer))
    pd.testing.assert_frame_equal(clone.transform(incomplete), imputer.transform(incomplete))
    np.testing.assert_array_equal(clone.score_samples(incomplete), imputer.score_samples(incomplete))


def test_demissvae_keeps_imputations_as_tables(table):
    _, incomplete = table
    imputer = ESTIMATORS["demissvae"](max_iter=3, n_imputations=2, keep_imputations=True).fit(incomplete)
    assert isinstance(imputer.imputations_, list) and len(imputer.imputations_) == 2
    for copy_ in imputer.imputations_:
        assert not copy_.isna().any().any()
        assert set(copy_["c"]) <= {"low", "mid", "high"}
        _observed_equal(copy_, incomplete)
    # The pool of initial imputations is held at the encoded level; one-hot rows are whole.
    pool = imputer.imputation_pool_[:, 3:6]
    filled = ~np.isnan(pool).any(axis=1)
    np.testing.assert_array_equal(pool[filled].sum(axis=1), 1.0)


def test_a_column_without_observed_values_is_rejected(table):
    _, incomplete = table
    frame = incomplete.assign(c=pd.Categorical([np.nan] * len(incomplete), categories=["a"]))
    with pytest.raises(ValueError, match="Column 'c' has no observed value"):
        MixtureVAEImputer(**PARAMS).fit(frame)


def test_encoder_round_trip_keeps_every_dtype():
    frame = pd.DataFrame(
        {
            "f32": np.array([1.5, 2.5, np.nan], dtype=np.float32),
            "flag": [True, False, True],
            "nullable": pd.array([True, None, False], dtype="boolean"),
            "cat": pd.Categorical(["b", "a", None], categories=["a", "b", "z"]),
            "text": ["u", None, "v"],
        }
    )
    encoder = ColumnCodec(infer_column_types(frame)).fit(frame)
    values, observed = encoder.encode(frame)
    assert values.shape == (3, encoder.n_encoded_) and np.array_equal(observed, ~np.isnan(values))
    out = encoder.decode(np.where(observed, values, 0.0), index=frame.index)
    assert out.dtypes.equals(frame.dtypes)
    _observed_equal(out, frame)
