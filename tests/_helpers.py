"""Plain test helpers, importable by any test module (``tests/`` is on ``sys.path``).

They live outside ``conftest.py`` because ``tests/core`` has a conftest of its own, which
makes ``import conftest`` ambiguous.
"""

from __future__ import annotations

import itertools

import numpy as np

#: Settings that make a fit take a fraction of a second on one CPU core.
FAST_PARAMS = dict(
    latent_dim=2,
    hidden_width=8,
    n_hidden_blocks=1,
    batch_size=32,
    max_iter=3,
    early_stopping=False,
    n_impute_samples=16,
    n_score_samples=32,
    device="cpu",
)

#: Small networks trained long enough to learn how columns depend on each other.
LEARNING_PARAMS = dict(
    latent_dim=2,
    hidden_width=16,
    n_hidden_blocks=1,
    max_iter=60,
    batch_size=32,
    learning_rate=3e-3,
    early_stopping=False,
    n_impute_samples=32,
    n_score_samples=64,
    device="cpu",
    random_state=0,
)


def correlated_table(n_samples=120, missing_rate=0.25, seed=0):
    """Complete and incomplete versions of a 4-column table with offsets, scales, correlation.

    Returns ``(X_complete, X_missing)``; about ``missing_rate`` of the cells are NaN and no
    row is entirely missing.
    """
    rng = np.random.RandomState(seed)
    t = rng.standard_normal(n_samples)
    X = np.column_stack(
        [
            3.0 * t + 10.0,
            3.0 * t + 10.0 + 0.3 * rng.standard_normal(n_samples),
            -0.5 * t + 0.2 * rng.standard_normal(n_samples) - 2.0,
            100.0 * rng.standard_normal(n_samples),
        ]
    )
    missing = rng.rand(*X.shape) < missing_rate
    missing[missing.all(axis=1), 0] = False
    X_missing = X.copy()
    X_missing[missing] = np.nan
    return X, X_missing


def script_validation(monkeypatch, scores):
    """Make the training loop see ``scores`` (then the last one forever) as validation scores.

    Early-stopping decisions then follow a known script, whatever the model learns; the
    standard error reported with each score is 0.
    """
    from skmissvae.core import training

    stream = itertools.chain(scores, itertools.repeat(scores[-1]))
    monkeypatch.setattr(training, "_evaluate", lambda *args: (float(next(stream)), 0.0))
