"""Input checks shared by the imputers: named errors for what scikit-learn would reject
with a generic message."""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd
from sklearn.utils.validation import validate_data


def validate_numeric(estimator, X, reset: bool) -> np.ndarray:
    """``X`` as a float64 or float32 array through ``validate_data``, with named errors."""
    if isinstance(X, pd.DataFrame) and X.shape[1] == 0:
        raise ValueError(
            f"Found array with 0 feature(s) (shape={X.shape}) while a minimum of 1 is "
            f"required by {type(estimator).__name__}."
        )
    _reject_non_numeric_columns(X, type(estimator).__name__)
    values = validate_data(
        estimator, X, reset=reset, dtype=[np.float64, np.float32], ensure_all_finite=False, copy=False
    )
    _reject_infinite_values(values, getattr(estimator, "feature_names_in_", None))
    return values


def check_n_imputations(n_imputations) -> None:
    """Refuse anything but a positive integer (a bool too) as ``n_imputations``."""
    if isinstance(n_imputations, bool) or not isinstance(n_imputations, numbers.Integral) or n_imputations < 1:
        raise ValueError(f"n_imputations must be a positive integer, got {n_imputations!r}.")


def _column_name(names, index: int) -> str:
    return repr(str(names[index])) if names is not None else f"{index} (position)"


def _reject_non_numeric_columns(X, estimator_name: str) -> None:
    """Raise a ValueError naming the first column of ``X`` that holds non-numeric values.

    Object columns of numbers, booleans, ``None``, ``NaN`` and ``pd.NA`` are accepted;
    strings and DataFrame columns of category, string or date dtypes are not. Kept in one
    place so that mixed-type support can replace this rule.
    """
    if isinstance(X, pd.DataFrame):
        columns = [(name, X[name]) for name in X.columns] if X.columns.is_unique else []
        for name, column in columns:
            dtype = column.dtype
            if pd.api.types.is_numeric_dtype(dtype) and not isinstance(dtype, pd.CategoricalDtype):
                continue
            bad = _first_non_numeric(column.to_numpy(dtype=object))
            if bad is not None or not pd.api.types.is_object_dtype(dtype):
                _raise_non_numeric(estimator_name, repr(str(name)), dtype, bad)
        return
    if hasattr(X, "toarray") or not hasattr(X, "__len__"):
        return  # sparse matrices and scalars get scikit-learn's own errors
    try:
        array = X if isinstance(X, np.ndarray) else np.asarray(X)
    except Exception:  # ragged nested lists: left to scikit-learn's error
        return
    if array.dtype.kind not in "OUSV" or array.ndim != 2:
        return
    for index in range(array.shape[1]):
        bad = _first_non_numeric(array[:, index].astype(object))
        if bad is not None:
            _raise_non_numeric(estimator_name, f"{index} (position)", array.dtype, bad)


def _first_non_numeric(values: np.ndarray):
    """The first string entry of ``values``, else None.

    Other objects (dicts, lists, ...) are left to scikit-learn, whose ``TypeError`` its
    estimator checks expect.
    """
    for value in values:
        if isinstance(value, (str, bytes)):
            return value
    return None


def _raise_non_numeric(estimator_name, column, dtype, example):
    found = f" such as {example!r}" if example is not None else ""
    raise ValueError(
        f"Column {column} has dtype {dtype} with non-numeric values{found}: could not "
        f"convert string to float. {estimator_name} treats it as continuous; declare it "
        "'categorical' or 'binary' in column_types, encode it as numbers, or drop it."
    )


def _reject_infinite_values(values: np.ndarray, names) -> None:
    """Raise a ValueError naming the columns that contain +inf or -inf."""
    infinite = np.isinf(values).any(axis=0)
    if infinite.any():
        columns = ", ".join(_column_name(names, i) for i in np.flatnonzero(infinite)[:5])
        raise ValueError(
            f"Input X contains infinity in column(s) {columns}; values must be finite, "
            "with missing entries encoded as NaN."
        )

