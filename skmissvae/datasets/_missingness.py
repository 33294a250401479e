"""Missingness generators (numpy only): MCAR, MAR (logistic in driver columns) and MNAR.

Every generator returns ``(X_missing, observed)``: a float64 copy of the input with
``np.nan`` at the hidden entries, and the boolean mask that is True where an entry is
observed. The caller's array is never modified.
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["check_random_state", "make_mar", "make_mcar", "make_mnar"]


def check_random_state(seed) -> np.random.RandomState:
    """``None`` (fresh entropy), an int, or a RandomState -> RandomState (never the global one)."""
    if seed is None or isinstance(seed, numbers.Integral):
        return np.random.RandomState(seed)
    if isinstance(seed, np.random.RandomState):
        return seed
    raise ValueError(f"random_state must be None, an int or a numpy RandomState, got {seed!r}.")


def make_mcar(X, missing_rate: float = 0.5, *, drop_empty_rows: bool = False, random_state=None):
    """Hide exactly ``floor(missing_rate * n_samples * n_features)`` entries completely at random.

    The paper's recipe (Simkus & Gutmann, 2024): the missing cells are a uniform sample,
    without replacement, of all cells of the array.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Complete data; it is not modified.
    missing_rate : float in [0, 1)
    drop_empty_rows : bool, default=False
        Remove rows in which every entry ended up missing (the reference behaviour).
    random_state : int, RandomState or None

    Returns
    -------
    X_missing : ndarray
        Copy of ``X`` (rows possibly dropped) with ``np.nan`` at the missing entries.
    observed : ndarray of bool, same shape
        True where the entry is observed.
    """
    X = np.array(X, dtype=np.float64, copy=True)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D, got shape {X.shape}.")
    if not 0 <= missing_rate < 1:
        raise ValueError(f"missing_rate must be in [0, 1), got {missing_rate}.")
    rng = check_random_state(random_state)
    n_missing = int(np.floor(missing_rate * X.size))
    cells = rng.choice(X.size, size=n_missing, replace=False)
    observed = np.ones(X.size, dtype=bool)
    observed[cells] = False
    observed = observed.reshape(X.shape)
    if drop_empty_rows:
        keep = observed.any(axis=1)
        X, observed = X[keep], observed[keep]
    X[~observed] = np.nan
    return X, observed


# ---------------------------------------------------------------------------------------
# MAR and MNAR
# ---------------------------------------------------------------------------------------
def _check_complete_2d(X, name: str = "X") -> np.ndarray:
    """A float64 copy of a complete 2-D array (the generators never touch the caller's X)."""
    X = np.array(X, dtype=np.float64, copy=True)
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {X.shape}.")
    if X.size == 0:
        raise ValueError(f"{name} is empty (shape {X.shape}).")
    if not np.isfinite(X).all():
        raise ValueError(f"{name} must be complete and finite: the generators decide what goes missing.")
    return X


def _check_rate(missing_rate) -> float:
    if isinstance(missing_rate, bool) or not isinstance(missing_rate, numbers.Real):
        raise TypeError(f"missing_rate must be a real number, got {type(missing_rate).__name__}.")
    if not 0 <= missing_rate < 1:
        raise ValueError(f"missing_rate must be in [0, 1), got {missing_rate}.")
    return float(missing_rate)


def _check_columns(columns, n_features: int, name: str) -> np.ndarray:
    columns = np.unique(np.asarray(columns).ravel())
    if columns.size == 0 or not np.issubdtype(columns.dtype, np.integer):
        raise ValueError(f"{name} must be a non-empty list of integer column indices, got {columns!r}.")
    if columns.min() < 0 or columns.max() >= n_features:
        raise ValueError(f"{name} must index columns 0..{n_features - 1}, got {columns.tolist()}.")
    return columns


def _standardise(X: np.ndarray) -> np.ndarray:
    scale = X.std(axis=0)
    return (X - X.mean(axis=0)) / np.where(scale > 0, scale, 1.0)


def _calibrated_intercept(logits: np.ndarray, rate: float, n_steps: int = 60) -> float:
    """Intercept ``a`` with ``mean(sigmoid(a + logits)) == rate``, by bisection.

    The mean is increasing in ``a``, so bisection on a bracket that certainly contains the
    root converges; 60 halvings of a bracket of width ~100 reach machine precision.
    """
    if rate == 0:
        return -np.inf
    low, high = -50.0 - logits.max(), 50.0 - logits.min()
    for _ in range(n_steps):
        mid = 0.5 * (low + high)
        if _sigmoid(mid + logits).mean() < rate:
            low = mid
        else:
            high = mid
    return 0.5 * (low + high)


def _sigmoid(t: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * t))  # overflow-free logistic


def _finish(X: np.ndarray, observed: np.ndarray, drop_empty_rows: bool):
    if drop_empty_rows:
        keep = observed.any(axis=1)
        X, observed = X[keep], observed[keep]
    X[~observed] = np.nan
    return X, observed


def make_mar(
    X,
    missing_rate: float = 0.3,
    *,
    driver_columns=None,
    driver_fraction: float = 0.3,
    strength: float = 2.0,
    random_state=None,
):
    """Hide entries at random given always-observed driver columns (MAR, logistic).

    A subset of columns (the drivers) is never missing. Entry ``x_ij`` of every other
    column ``j`` goes missing with probability
    ``sigmoid(a_j + strength * s_i . w_j / sqrt(n_drivers))``, where ``s_i`` are the
    row's standardised driver values, ``w_j ~ N(0, I)`` are random weights and the
    intercept ``a_j`` is calibrated by bisection so that the expected share of missing
    entries of column ``j`` is ``missing_rate * n_features / (n_features - n_drivers)``:
    over the whole array, the expected missing share is ``missing_rate``.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Complete data with at least two columns; it is not modified.
    missing_rate : float in [0, 1), default=0.3
        Expected share of missing entries over the whole array.
    driver_columns : array-like of int, default=None
        Indices of the always-observed columns. ``None`` draws
        ``max(1, round(driver_fraction * n_features))`` of them at random.
    driver_fraction : float in (0, 1), default=0.3
        Share of driver columns when ``driver_columns`` is None.
    strength : float, default=2.0
        Scale of the logistic dependence on the drivers (0 gives MCAR within columns).
    random_state : int, RandomState or None
        Seeds the choice of drivers, the weights and the Bernoulli draws.

    Returns
    -------
    X_missing : ndarray of shape (n_samples, n_features)
        Float64 copy of ``X`` with ``np.nan`` at the missing entries.
    observed : ndarray of bool, same shape
        True where the entry is observed.

    Raises
    ------
    ValueError
        If the requested rate cannot be reached with the non-driver columns alone (their
        share would have to be 1 or more), or on invalid arguments.
    """
    X = _check_complete_2d(X)
    rate = _check_rate(missing_rate)
    rng = check_random_state(random_state)
    n_samples, n_features = X.shape
    if n_features < 2:
        raise ValueError(f"make_mar needs at least 2 columns (drivers and targets), got {n_features}.")
    if driver_columns is None:
        if not 0 < driver_fraction < 1:
            raise ValueError(f"driver_fraction must be in (0, 1), got {driver_fraction}.")
        n_drivers = min(n_features - 1, max(1, int(round(driver_fraction * n_features))))
        drivers = np.sort(rng.choice(n_features, size=n_drivers, replace=False))
    else:
        drivers = _check_columns(driver_columns, n_features, "driver_columns")
        if drivers.size == n_features:
            raise ValueError("driver_columns must leave at least one column that can go missing.")
    targets = np.setdiff1d(np.arange(n_features), drivers)
    column_rate = rate * n_features / targets.size
    if column_rate >= 1:
        raise ValueError(
            f"missing_rate={rate} over the whole array needs {column_rate:.3f} of each of the "
            f"{targets.size} non-driver columns to be missing; use fewer driver columns or a lower rate."
        )
    S = _standardise(X[:, drivers])  # [N, n_drivers]
    weights = rng.standard_normal((drivers.size, targets.size))
    logits = strength * S @ weights / np.sqrt(drivers.size)  # [N, n_targets]
    observed = np.ones(X.shape, dtype=bool)
    for j, column in enumerate(targets):
        p = _sigmoid(_calibrated_intercept(logits[:, j], column_rate) + logits[:, j])
        observed[:, column] = rng.uniform(size=n_samples) >= p
    return _finish(X, observed, drop_empty_rows=False)


def make_mnar(
    X,
    missing_rate: float = 0.3,
    *,
    mechanism: str = "self_masking",
    columns=None,
    strength: float = 2.0,
    drop_empty_rows: bool = False,
    random_state=None,
):
    """Hide entries depending on their own values (missing not at random).

    Two mechanisms, applied to each column in ``columns`` separately, each column losing
    a share ``missing_rate * n_features / len(columns)`` of its entries (so that the share
    over the whole array is ``missing_rate``):

    * ``"self_masking"``: entry ``x_ij`` goes missing with probability
      ``sigmoid(a_j + strength * (x_ij - mean_j) / std_j)``, the intercept ``a_j``
      calibrated by bisection to the column's share (in expectation); large values are
      more often missing for ``strength > 0``.
    * ``"quantile"``: censoring. Exactly ``floor(share * n_samples)`` entries of the column,
      those with the largest values, go missing (ties broken at random): values above a
      column quantile are never observed.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Complete data; it is not modified.
    missing_rate : float in [0, 1), default=0.3
        Share of missing entries over the whole array (expected for ``"self_masking"``,
        exact up to rounding per column for ``"quantile"``).
    mechanism : {"self_masking", "quantile"}, default="self_masking"
    columns : array-like of int, default=None
        Columns that can go missing; ``None`` means all of them.
    strength : float, default=2.0
        Logistic slope of ``"self_masking"`` in standard deviations (ignored by
        ``"quantile"``).
    drop_empty_rows : bool, default=False
        Remove rows in which every entry ended up missing.
    random_state : int, RandomState or None
        Seeds the Bernoulli draws (``"self_masking"``) or the tie-breaking (``"quantile"``).

    Returns
    -------
    X_missing : ndarray
        Float64 copy of ``X`` (rows possibly dropped) with ``np.nan`` at the missing entries.
    observed : ndarray of bool, same shape
        True where the entry is observed.
    """
    X = _check_complete_2d(X)
    rate = _check_rate(missing_rate)
    if mechanism not in ("self_masking", "quantile"):
        raise ValueError(f"mechanism must be 'self_masking' or 'quantile', got {mechanism!r}.")
    rng = check_random_state(random_state)
    n_samples, n_features = X.shape
    targets = np.arange(n_features) if columns is None else _check_columns(columns, n_features, "columns")
    column_rate = rate * n_features / targets.size
    if column_rate >= 1:
        raise ValueError(
            f"missing_rate={rate} needs {column_rate:.3f} of each of the {targets.size} "
            "selected columns to be missing; select more columns or lower the rate."
        )
    Z = _standardise(X[:, targets])  # [N, n_targets]
    observed = np.ones(X.shape, dtype=bool)
    for j, column in enumerate(targets):
        if mechanism == "self_masking":
            logits = strength * Z[:, j]
            p = _sigmoid(_calibrated_intercept(logits, column_rate) + logits)
            observed[:, column] = rng.uniform(size=n_samples) >= p
        else:
            n_missing = int(np.floor(column_rate * n_samples))
            # Largest values first; a random secondary key breaks ties fairly.
            order = np.lexsort((rng.uniform(size=n_samples), -X[:, column]))
            observed[order[:n_missing], column] = False
    return _finish(X, observed, drop_empty_rows)
