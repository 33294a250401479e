"""The options the imputers share with scikit-learn's: ``missing_values``, ``add_indicator``
and ``n_jobs`` (torch threads)."""

from __future__ import annotations

import contextlib
import math
import numbers

import joblib
import numpy as np
import pandas as pd
import torch

from .._columns import _as_frame


def is_na_like(value) -> bool:
    """Whether ``missing_values`` is ``np.nan``, ``None`` or ``pd.NA`` (all mean "NA")."""
    if value is None or value is pd.NA:
        return True
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isnan(value)


def mask_missing_values(X, missing_values):
    """``X`` with its entries equal to ``missing_values`` replaced by NaN.

    ``X`` itself is never modified: a new array or DataFrame is returned where anything
    changes (an integer array becomes float64). NaN, None and ``pd.NA`` entries are
    missing whatever ``missing_values`` is; for those three nothing needs replacing.
    Boolean values never equal a number here (``True == 1`` does not make them missing).
    """
    if is_na_like(missing_values) or hasattr(X, "toarray"):
        return X  # sparse input is refused by the validation that follows
    if isinstance(X, pd.DataFrame):
        out = None
        for position in range(X.shape[1]):
            column = X.iloc[:, position]
            hit = _equal_entries(column, missing_values)
            if hit.any():
                out = X.copy(deep=False) if out is None else out
                out.isetitem(position, column.mask(hit))
        return X if out is None else out
    try:
        array = np.asarray(X)
    except (TypeError, ValueError):  # ragged nested lists: left to scikit-learn's error
        return X
    if array.dtype.kind in "iuf":
        if isinstance(missing_values, str):
            return X
        hit = array == missing_values
        if array.dtype.kind == "f" and not hit.any():
            return X
        out = array.astype(np.float64 if array.dtype.kind in "iu" else array.dtype)  # a copy
        out[hit] = np.nan
        return out
    if array.dtype.kind in "OUS":
        hit = _equal_objects(array.ravel(), missing_values).reshape(array.shape)
        if not hit.any():
            return X
        out = array.astype(object)
        out[hit] = np.nan
        return out
    return X


def _equal_entries(column: pd.Series, missing_values) -> np.ndarray:
    """Where a DataFrame column equals ``missing_values`` (never at booleans)."""
    if pd.api.types.is_bool_dtype(column.dtype):
        return np.zeros(len(column), dtype=bool)
    if pd.api.types.is_object_dtype(column.dtype):
        return _equal_objects(column.to_numpy(), missing_values)
    if isinstance(missing_values, str) and pd.api.types.is_numeric_dtype(column.dtype):
        return np.zeros(len(column), dtype=bool)
    try:
        hit = column == missing_values
    except TypeError:
        return np.zeros(len(column), dtype=bool)
    return pd.Series(hit).fillna(False).to_numpy(dtype=bool)


def _equal_objects(values: np.ndarray, missing_values) -> np.ndarray:
    return np.fromiter(
        (not isinstance(v, (bool, np.bool_)) and type(v) is not type(pd.NA) and _same(v, missing_values)
         for v in values), dtype=bool, count=len(values),
    )


def _same(value, missing_values) -> bool:
    try:
        return bool(value == missing_values)
    except (TypeError, ValueError):
        return False


def missing_entries(X) -> np.ndarray:
    """``[N, n_features]``: where the checked table ``X`` (NaN-encoded) has missing entries."""
    if isinstance(X, np.ndarray) and X.dtype.kind == "f":
        return np.isnan(X)
    return _as_frame(X).isna().to_numpy()


def with_indicator(out, features, batch):
    """``out`` with the missing-indicator of ``features`` (input columns) appended.

    ``out`` is a table ``[N, D]`` or completed copies (a 3-D array or a list of tables)
    of ``batch`` (the encoded input). A DataFrame gets columns ``missingindicator_<label>``
    in the float dtype of the encoded values (``SimpleImputer(add_indicator=True)`` gives
    floats); an array gets 0/1 in its own dtype. ``features=None``: ``out`` as it is.
    """
    if features is None:
        return out
    missing = missing_entries(batch.checked)[:, features]
    if isinstance(out, list):
        return [with_indicator(copy_, features, batch) for copy_ in out]
    if isinstance(out, pd.DataFrame):
        out = out.copy(deep=False)
        for k, label in enumerate(batch.X.columns[features]):
            out.insert(out.shape[1], f"missingindicator_{label}", missing[:, k].astype(batch.values.dtype),
                       allow_duplicates=True)
        return out
    indicator = np.broadcast_to(missing.astype(out.dtype), (*out.shape[:-2], *missing.shape))
    return np.concatenate([out, indicator], axis=-1)


def indicator_names(names: np.ndarray, features) -> np.ndarray:
    """``missingindicator_<name>`` of the input ``names`` of ``features`` (none if None)."""
    chosen = [] if features is None else names[features]
    return np.asarray([f"missingindicator_{name}" for name in chosen], dtype=object)


def n_threads(n_jobs) -> int:
    """``n_jobs`` as a number of threads, as scikit-learn reads it: None is one (unless a
    ``joblib.parallel_config`` says otherwise), -1 every core, -2 all but one, and so on."""
    return joblib.effective_n_jobs(n_jobs)


@contextlib.contextmanager
def torch_threads(n_jobs):
    """Run the block with ``n_threads(n_jobs)`` torch intra-op threads, restored afterwards
    (also on error).

    One thread unless asked: the models are small, so more threads mostly wait for each
    other, and OpenMP's spinning waits made a step many times slower on a busy machine
    (see "Threads" in the design notes).
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(n_threads(n_jobs))
    try:
        yield
    finally:
        torch.set_num_threads(previous)
