"""Missingness generators (numpy only)."""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["check_random_state", "make_mcar"]


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
