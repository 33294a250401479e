"""The paper's toy study with the estimators' default training settings.

Usage::

    python benchmarks/toy.py                  # six variants, seeds 0 1 2 (hours on 2 cores)
    python benchmarks/toy.py --seeds 0 --methods MissSIWAE MVAE
    python benchmarks/toy.py --quick          # smoke run: 2,000 rows, 10 epochs
    python benchmarks/toy.py --methods MissSIWAE --ensemble 3 1  # ensembles of 3, 1 at a time
    python benchmarks/toy.py --paper-config --seeds 0 --methods MVAE MIWAE MissSIWAE DeMissVAE-LAIR-toy

Data: the paper's mixture-of-Gaussians toy set with its true parameters (20,000 training
rows and 1,000 complete test rows, 5 columns, 15 components), read from
``../shared/data/mog2_large.npz`` beside the repository or from ``--data PATH``. Without it
the benchmark stops. By default 50 % of the training entries are hidden completely at
random (``--missing-rate``; 0 gives the complete-data reference). Each variant is fitted
with the estimator's defaults and only ``latent_dim=2`` set (``--set`` adds settings), and
evaluated on:

* the mean log-likelihood of the complete test rows: ``score`` (IWELBO, 1,000 importance
  samples, trained encoder) and grid integration over the 2-D latent (500 x 500 on
  [-10, 10)^2), against the true model's value (-2.0946 nats);
* where the gap to the truth comes from: the share from test rows whose likeliest true
  component has a weight under 0.10 (``gap_small_clusters``) and from the others;
* imputation RMSE on a 50 %-MCAR copy of the test rows against the oracle, the
  Bayes-optimal ``E[x_m | x_o]`` of the true mixture;
* fit time and epochs.

``--ensemble N JOBS`` fits each variant as a ``VAEEnsembleImputer`` of N members.
``--paper-config`` trains at the paper's toy configuration instead of the defaults
(sec. 5.1 and its appendix): residual MLPs of 3 blocks of width 200, batch 64, 500 epochs
without early stopping, a constant learning rate of 1e-3 and gradient-norm clipping at 10
(about 156,000 optimiser steps, most of an hour of one core per fit).

Writes ``benchmarks/results/toy.md`` and ``toy.csv`` (``--output`` changes the name).
``--merge`` only re-renders the report from saved CSVs.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import multivariate_normal

from skmissvae import METHODS, VAEEnsembleImputer
from skmissvae.datasets import make_mcar
from skmissvae.evaluation import grid_log_likelihood, imputation_rmse

from _report import RESULTS, parse_settings, markdown_table, save_report
from _tables import TOY_DATA, load_toy
from _variants import VARIANTS

SMALL_CLUSTER = 0.10  # mixture weight below which a true component counts as small
TITLE = "Toy study: log-likelihood against the truth"


def likeliest_component(mixture, X) -> np.ndarray:
    """Index of the true mixture component most likely to have generated each complete row."""
    log_joint = [np.log(w) + multivariate_normal(m, c).logpdf(X)
                 for w, m, c in zip(mixture.weights, mixture.means, mixture.covariances)]
    return np.argmax(log_joint, axis=0)


# The paper's toy training configuration (Simkus & Gutmann, TMLR 2024, sec. 5.1 and appendix).
PAPER_CONFIG = {"hidden_width": 200, "n_hidden_blocks": 3, "batch_size": 64, "max_iter": 500,
                "early_stopping": False, "lr_schedule": "constant", "learning_rate": 1e-3,
                "clip_grad_norm": 10.0}


def run(method, seed, train, test, mixture, quick, missing_rate=0.5, overrides=None, ensemble=None):
    X_train = train if missing_rate == 0 else make_mcar(
        train, missing_rate, drop_empty_rows=True, random_state=seed)[0]
    X_test_missing, observed = make_mcar(test, 0.5, random_state=1000 + seed)
    settings = {"max_iter": 10} if quick else {}
    settings.update(overrides or {})
    estimator, params = VARIANTS[method]
    params = {"latent_dim": 2, **params, **settings}  # --set may override a variant's own setting
    if ensemble:
        n_estimators, n_jobs = ensemble
        member = estimator(**params)
        imputer = VAEEnsembleImputer(member, n_estimators=n_estimators, n_jobs=n_jobs, random_state=seed)
        method = f"{method}x{n_estimators}"
    else:
        imputer = estimator(**params, random_state=seed)
    start = time.perf_counter()
    imputer.fit(X_train)
    fit_time = time.perf_counter() - start
    # Monte-Carlo spread of score(): re-seed only the inference draws of the fitted model
    # (an ensemble's members keep the seeds drawn at fit, so there is nothing to re-seed).
    scores = [np.nan] if ensemble else [
        imputer.set_params(random_state=10_000 + k).score(test) for k in range(5)]
    imputer.set_params(random_state=seed)
    oracle = imputation_rmse(test, mixture.conditional_mean(X_test_missing), ~observed)
    rmse = imputation_rmse(test, imputer.transform(X_test_missing), ~observed)
    grid = grid_log_likelihood(imputer, test)
    gap = mixture.log_likelihood(test) - grid
    small = mixture.weights[likeliest_component(mixture, test)] < SMALL_CLUSTER
    return {
        "method": method,
        "seed": seed,
        "loglik_iwelbo": imputer.score(test),
        "loglik_grid": float(grid.mean()),
        "gap_small_clusters": float(gap[small].sum() / len(test)),
        "gap_large_clusters": float(gap[~small].sum() / len(test)),
        "loglik_true": float(mixture.log_likelihood(test).mean()),
        "score_std_5_seeds": float(np.std(scores)),
        "rmse": rmse,
        "rmse_oracle": oracle,
        "rmse_ratio": rmse / oracle,
        "fit_time_s": fit_time,
        "epochs": max(m.n_iter_ for m in getattr(imputer, "estimators_", [imputer])),
    }


def write_report(frame: pd.DataFrame, stem: str, command: str, note: str, wall_time=None) -> None:
    """Write ``frame`` (one row per fit) as CSV and a Markdown summary of medians over seeds."""
    columns = ["loglik_grid", "loglik_iwelbo", "gap_small_clusters", "gap_large_clusters",
               "score_std_5_seeds", "rmse", "rmse_ratio", "fit_time_s", "epochs"]
    summary = frame.groupby("method", sort=False)[[c for c in columns if c in frame]].median()
    true_ll = frame["loglik_true"].iloc[0]
    seeds = frame.groupby("method", sort=False)["seed"].apply(lambda s: " ".join(map(str, sorted(s))))
    summary.insert(0, "seeds", seeds)
    order = list(VARIANTS)
    base = [re.split(r" \(|x\d+$", m)[0] for m in summary.index]
    summary = summary.iloc[sorted(range(len(base)), key=lambda i: order.index(base[i]) if base[i] in order else len(order))]
    best = summary["loglik_grid"].idxmax()
    body = (
        f"{note}\n\nMedians over seeds. True model: {true_ll:.4f} nats; oracle RMSE "
        f"{frame['rmse_oracle'].median():.4f}. `loglik_grid`: complete-test log-likelihood by "
        "grid integration; `loglik_iwelbo`: `score` (IWELBO, 1,000 samples); `gap_*`: the "
        "shares of the gap to the truth from test rows of the true components with weight "
        f"under {SMALL_CLUSTER} and from the others (empty where not recorded).\n\n"
        + markdown_table(summary.astype(object).where(summary.notna(), "–"))
        + f"\nBest variant by grid log-likelihood: {best}, "
        f"{summary.loc[best, 'loglik_grid'] - true_ll:+.4f} nats from the truth; RMSE "
        f"{summary.loc[best, 'rmse_ratio']:.3f} times the oracle's.\n"
    )
    save_report(stem, frame, TITLE, command, body, wall_time)
    print(summary.round(4).to_string())


def _read_labelled(item: str) -> pd.DataFrame:
    """``"stem"`` or ``"stem:label"`` -> that run's rows, methods suffixed with the label."""
    stem, _, label = item.partition(":")
    frame = pd.read_csv(RESULTS / f"{stem}.csv")
    if label:
        frame["method"] = frame["method"] + f" ({label})"
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description="The paper's toy study (mixture of Gaussians).")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(VARIANTS),
                        help="default: the six finite-mixture variants")
    parser.add_argument("--data", type=Path, default=TOY_DATA, help=f"the toy data (default {TOY_DATA})")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2,000 training rows, 10 epochs")
    parser.add_argument("--output", default="toy", help="results file stem")
    parser.add_argument("--merge", nargs="+", metavar="STEM[:LABEL]",
                        help="only re-render: combine results/STEM.csv files (e.g. runs made in "
                             "parallel) into results/OUTPUT.md; STEM:LABEL shows that file's "
                             "methods as 'method (LABEL)'")
    parser.add_argument("--note", default="", help="extra sentence for the report (e.g. how runs shared the machine)")
    parser.add_argument("--missing-rate", type=float, default=0.5,
                        help="MCAR rate of the training rows (0: the complete-data reference)")
    parser.add_argument("--set", nargs="+", default=[], metavar="PARAM=VALUE",
                        help="estimator settings on top of the defaults, e.g. gradient_estimator=total")
    parser.add_argument("--paper-config", action="store_true",
                        help="train at the paper's toy configuration (see above) instead of the "
                             "defaults; --set still applies on top")
    parser.add_argument("--ensemble", nargs=2, type=int, metavar=("N", "JOBS"),
                        help="fit each variant as a VAEEnsembleImputer of N members, JOBS in "
                             "parallel (reported as METHODxN; grid log-likelihood of the mixture)")
    args = parser.parse_args()
    command = "python benchmarks/toy.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    if args.merge:
        frame = pd.concat([_read_labelled(item) for item in args.merge], ignore_index=True)
        write_report(frame, args.output, command.strip(), args.note)
        return

    start = time.perf_counter()
    train, test, mixture = load_toy(args.data)
    if args.quick:
        train = train[:2_000]
    overrides = {**(PAPER_CONFIG if args.paper_config else {}), **parse_settings(args.set)}
    rows = []
    for seed in args.seeds:
        for method in args.methods:
            row = run(method, seed, train, test, mixture, args.quick, args.missing_rate, overrides,
                      args.ensemble)
            rows.append(row)
            print({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}, flush=True)
            # Keep partial results: a long run that is stopped still leaves a CSV.
            pd.DataFrame(rows).to_csv(RESULTS / f"{args.output}_partial.csv", index=False)
    note = (f"Data: {args.data.name}; {len(train)} training rows, {args.missing_rate:.0%} MCAR (rows "
            f"left fully missing dropped); {len(test)} complete test rows. Estimator defaults with "
            "`latent_dim=2`" + (f" and {overrides}" if overrides else "") + ". " + args.note)
    write_report(pd.DataFrame(rows), args.output + ("_quick" if args.quick else ""), command.strip(),
                 note.strip(), time.perf_counter() - start)
    (RESULTS / f"{args.output}_partial.csv").unlink(missing_ok=True)


if __name__ == "__main__":
    main()
