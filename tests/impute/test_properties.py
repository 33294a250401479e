"""Property-based tests: random tables through both estimators (Hypothesis).

Tables vary in shape (1-30 rows, 1-5 columns), dtype (float64, float32, int64, bool; pandas
float, Float64 and Int64 with ``pd.NA``), missingness (none to nearly all, whole rows and
whole columns missing) and scale (columns from 1e-12 to 1e12 with offsets). Whatever the
table, the documented invariants hold: output shapes and dtypes, observed entries unchanged,
no NaN, finite scores (0 for rows with nothing observed), the input left untouched, and the
only error is the documented one for a table with no observed value at all.

Examples are derandomised (the same ones every run) and models tiny, to keep CI fast.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.testing import assert_array_equal

from skmissvae import DeMissVAEImputer, MixtureVAEImputer

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

TINY = dict(latent_dim=2, hidden_width=4, n_hidden_blocks=1, batch_size=16, max_iter=2,
            early_stopping=False, n_impute_samples=8, n_score_samples=8, device="cpu")
ESTIMATORS = {
    "mixture": lambda seed: MixtureVAEImputer(**TINY, n_components=2, n_particles=2, random_state=seed),
    "demissvae": lambda seed: DeMissVAEImputer(
        **TINY, n_imputations=2, lair_iterations=1, n_transform_sweeps=1, random_state=seed
    ),
}
SETTINGS = dict(deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

#: Examples run per test, for docs/reliability.md.
EXAMPLES_RUN = {}


@st.composite
def tables(draw, n_columns=None):
    """A random incomplete table: ``(X as passed to the estimator, float64 values)``."""
    n_rows = draw(st.integers(1, 30))
    n_cols = n_columns or draw(st.integers(1, 5))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.RandomState(seed)
    log_scale = draw(st.lists(st.floats(-12, 12), min_size=n_cols, max_size=n_cols))
    scale = 10.0 ** np.array(log_scale)
    offset = scale * rng.uniform(-5, 5, n_cols)
    values = rng.standard_normal((n_rows, n_cols)) * scale + offset
    kind = draw(st.sampled_from(["float64", "float32", "int64", "bool", "pandas-float64",
                                 "pandas-Float64", "pandas-Int64"]))
    if kind in ("int64", "pandas-Int64", "bool"):
        values = np.round(values / scale) if kind != "bool" else (values > offset).astype(float)
    rate = draw(st.sampled_from([0.0, 0.1, 0.5, 0.9]))
    missing = rng.rand(n_rows, n_cols) < rate
    if draw(st.booleans()):
        missing[rng.randint(n_rows)] = True  # a row with nothing observed
    if draw(st.booleans()):
        missing[:, rng.randint(n_cols)] = True  # a column with nothing observed
    if kind in ("int64", "bool"):
        missing[:] = False  # these dtypes cannot hold NaN
    values[missing] = np.nan
    columns = [f"c{j}" for j in range(n_cols)]
    if kind == "float64":
        X = values
    elif kind == "float32":
        X = values.astype(np.float32)
        values = X.astype(np.float64)
    elif kind == "int64":
        X = values.astype(np.int64)
    elif kind == "bool":
        X = values.astype(bool)
    elif kind == "pandas-float64":
        X = pd.DataFrame(values, columns=columns)
    else:
        X = pd.DataFrame(values, columns=columns).astype(kind.split("-")[1])
    return X, values


def _copy(X):
    return X.copy(deep=True) if isinstance(X, pd.DataFrame) else X.copy()


def _expected_dtype(X):
    if isinstance(X, np.ndarray) and X.dtype in (np.float32, np.float64):
        return X.dtype
    return np.dtype(np.float64)


def check_invariants(imputer, X, values, X_fit=None):
    before = _copy(X)
    Xt = imputer.transform(X)
    scores = imputer.score_samples(X)
    draws = imputer.sample_imputations(X, n_imputations=2)
    if isinstance(X, pd.DataFrame):
        pd.testing.assert_frame_equal(X, before)
        # Columns of integer dtype at fit keep it (imputations rounded) where the observed
        # values are whole numbers; the others are float64.
        X_fit = X if X_fit is None else X_fit
        kept = ~imputer.empty_features_ | imputer.keep_empty_features
        observed_values = [values[:, j][~np.isnan(values[:, j])] for j in np.flatnonzero(kept)]
        def keeps(dtype, v):
            if not pd.api.types.is_integer_dtype(dtype):
                return False
            info = np.iinfo(getattr(dtype, "numpy_dtype", dtype))
            return bool(np.all(v == np.round(v)) and np.all((v >= info.min) & (v < float(info.max))))

        expected = [d if keeps(d, v) else np.dtype(np.float64) for d, v in zip(X_fit.dtypes[kept], observed_values)]
        assert isinstance(Xt, pd.DataFrame) and list(Xt.dtypes) == expected
        Xt = Xt.to_numpy(dtype=np.float64)
    else:
        assert_array_equal(X, before)
        assert Xt.dtype == _expected_dtype(X)
    assert scores.dtype == _expected_dtype(X) and draws.dtype == _expected_dtype(X)
    kept = ~imputer.empty_features_
    n = len(values)
    assert Xt.shape == (n, kept.sum()) and draws.shape == (2, n, kept.sum())
    assert not np.isnan(Xt).any() and not np.isnan(draws).any()
    assert scores.shape == (n,) and np.isfinite(scores).all()
    observed = ~np.isnan(values[:, kept])
    assert_array_equal(Xt[observed], values[:, kept][observed].astype(Xt.dtype))
    for draw in draws:
        assert_array_equal(draw[observed], values[:, kept][observed].astype(draw.dtype))
    assert (scores[~observed.any(axis=1)] == 0).all()


def _fit_or_documented_error(imputer, X, values):
    before = _copy(X)
    if np.isnan(values).all():
        with pytest.raises(ValueError, match="Every entry of X is missing"):
            imputer.fit(X)
        return False
    imputer.fit(X)
    if isinstance(X, pd.DataFrame):
        pd.testing.assert_frame_equal(X, before)
    else:
        assert_array_equal(X, before)
    return True


@pytest.mark.parametrize("name, n_examples", [("mixture", 200), ("demissvae", 80)])
def test_random_tables_keep_the_invariants(name, n_examples):
    @settings(max_examples=n_examples, **SETTINGS)
    @given(table=tables(), seed=st.integers(0, 1000))
    def run(table, seed):
        EXAMPLES_RUN[name] = EXAMPLES_RUN.get(name, 0) + 1
        X, values = table
        imputer = ESTIMATORS[name](seed)
        if _fit_or_documented_error(imputer, X, values):
            check_invariants(imputer, X, values)

    run()


@pytest.mark.parametrize("name, n_examples", [("mixture", 80), ("demissvae", 40)])
def test_new_tables_at_transform_keep_the_invariants(name, n_examples):
    """Fit on one random table, transform another of the same width (any scale)."""

    @settings(max_examples=n_examples, **SETTINGS)
    @given(data=st.data(), n_columns=st.integers(1, 4))
    def run(data, n_columns):
        EXAMPLES_RUN[name + "-new"] = EXAMPLES_RUN.get(name + "-new", 0) + 1
        X_fit, fit_values = data.draw(tables(n_columns=n_columns))
        X_new, new_values = data.draw(tables(n_columns=n_columns))
        if np.isnan(fit_values).all():
            return
        as_frame = isinstance(X_fit, pd.DataFrame)
        if as_frame != isinstance(X_new, pd.DataFrame):  # names must match kind
            X_new = pd.DataFrame(new_values, columns=X_fit.columns) if as_frame else new_values
        imputer = ESTIMATORS[name](0).fit(X_fit)
        check_invariants(imputer, X_new, new_values, X_fit)

    run()
