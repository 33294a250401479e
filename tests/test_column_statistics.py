"""Mergeable column statistics and fitting a part of a table as if it were the whole."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import skmissvae
from _helpers import FAST_PARAMS, correlated_table
from skmissvae import MixtureVAEImputer, column_statistics

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _frame(n=200, seed=0):
    rng = np.random.RandomState(seed)
    frame = pd.DataFrame({
        "x": rng.standard_normal(n) * 100 + 1e6,
        "y": rng.standard_normal(n),
        "kind": pd.Categorical(rng.choice(["u", "v", "w"], n)),
        "flag": rng.rand(n) < 0.4,
    })
    frame.loc[rng.rand(n) < 0.3, "x"] = np.nan
    frame["kind"] = frame["kind"].where(rng.rand(n) > 0.2)
    return frame


@pytest.mark.parametrize("as_frame", [False, True])
def test_statistics_of_parts_add_up_to_those_of_the_whole(as_frame):
    X = _frame() if as_frame else correlated_table(300)[1]
    part = (lambda rows: X.iloc[rows]) if as_frame else (lambda rows: X[rows])
    whole = column_statistics(X)
    merged = sum((column_statistics(part(slice(i, i + 70))) for i in range(70, len(X), 70)),
                 column_statistics(part(slice(0, 70))))
    assert_array_equal(merged.count, whole.count)
    assert_allclose(merged.mean, whole.mean, rtol=1e-12, atol=1e-12)
    assert_allclose(merged.std, whole.std, rtol=1e-10, atol=1e-12)
    assert merged.categories == whole.categories and merged.kinds == whole.kinds


@pytest.mark.parametrize("as_frame", [False, True])
def test_fitting_with_statistics_standardises_as_the_whole_table(as_frame):
    X = _frame() if as_frame else correlated_table(300)[1]
    whole = MixtureVAEImputer(**FAST_PARAMS, random_state=0).fit(X)
    first = X.iloc[:60] if as_frame else X[:60]
    if as_frame:
        first = first[first["kind"] != "w"]  # a category the part has never seen
    part = MixtureVAEImputer(**FAST_PARAMS, random_state=0, column_statistics=column_statistics(X)).fit(first)
    assert_allclose(part.mean_, whole.mean_, rtol=1e-12)
    assert_allclose(part.scale_, whole.scale_, rtol=1e-12)
    out = part.transform(X)  # every category of the whole table is known
    assert not pd.isna(np.asarray(out, dtype=object)).any()
    if as_frame:
        assert part.column_encoder_.columns_[2].levels.tolist() == ["u", "v", "w"]


def test_statistics_are_checked_and_saved(tmp_path):
    X = _frame()
    with pytest.raises(ValueError, match="different columns"):
        column_statistics(X) + column_statistics(X.drop(columns="y"))
    with pytest.raises(ValueError, match="types"):
        MixtureVAEImputer(**FAST_PARAMS, column_statistics=column_statistics(X)).fit(X.assign(flag=X["y"]))
    imputer = MixtureVAEImputer(**FAST_PARAMS, random_state=0, column_statistics=column_statistics(X)).fit(X)
    skmissvae.save(imputer, tmp_path / "s.pt")
    loaded = skmissvae.load(tmp_path / "s.pt")
    assert loaded.column_statistics.categories == imputer.column_statistics.categories
    pd.testing.assert_frame_equal(loaded.transform(X), imputer.transform(X))


def test_statistics_of_many_parts_add_up_with_sum():
    X = _frame()
    parts = [X.iloc[i::3] for i in range(3)]
    total = sum(column_statistics(part) for part in parts)
    whole = column_statistics(X)
    assert_array_equal(total.count, whole.count)
    assert_allclose(total.mean, whole.mean, rtol=1e-12)
    assert total.categories == whole.categories
    with pytest.raises(TypeError):
        1 + whole
