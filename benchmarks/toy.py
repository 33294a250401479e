"""The paper's toy study with the estimators' default training settings.

Usage::

    python benchmarks/mog.py                 # six variants, seeds 0 1 2
    python benchmarks/mog.py --seeds 0 --methods MissSIWAE MVAE
    python benchmarks/mog.py --quick         # smoke run: 2,000 rows, few epochs
    python benchmarks/mog.py --seeds 0 --methods MissSIWAE --ensemble 3 2  # 3 fits, 2 at a time

Data: ``../shared/data/mog2_large.npz`` (the paper's mixture-of-Gaussians toy set, 20,000
training rows x 5 columns, with its true parameters) when it exists, else a table generated
by ``skmissvae.datasets.make_mixture_of_gaussians``. By default 50 % of the training
entries are hidden completely at random (``--missing-rate``; 0 gives the complete-data
reference). Each variant is fitted with the estimator's defaults and only ``latent_dim=2``
set (``--set`` adds settings), and evaluated on:

* the mean log-likelihood of the complete test rows: ``score`` (IWELBO, 1,000 importance
  samples, trained encoder) and grid integration over the 2-D latent (500 x 500 on
  [-10, 10)^2), against the true model's value (-2.0946 on the paper's data);
* imputation RMSE on a 50 %-MCAR copy of the test rows against the oracle, the
  Bayes-optimal ``E[x_m | x_o]`` of the true mixture;
* fit time, and the training time at which the grid log-likelihood (checked every few
  epochs on a coarser grid; evaluation time excluded) first came within 0.10 nats of the
  truth;
* where the gap to the truth comes from: its share from test rows whose likeliest true
  component has a weight under 0.10 (``gap_small_clusters``) and from the others.

``--ensemble N JOBS`` fits each variant as a ``VAEEnsembleImputer`` of N members.

Writes ``benchmarks/results/mog.md`` and ``mog.csv``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import multivariate_normal

from skmissvae import METHODS, VAEEnsembleImputer
from skmissvae.datasets import MixtureOfGaussians, make_mcar, make_mixture_of_gaussians
from skmissvae.evaluation import grid_log_likelihood, imputation_rmse

from _report import RESULTS, SHARED_DATA, markdown_table, parse_settings, save_report
from _variants import VARIANTS

TARGET_GAP = 0.10  # nats below the true model's log-likelihood
RMSE_TOLERANCE = 0.05  # relative to the oracle
SMALL_CLUSTER = 0.10  # mixture weight below which a true component counts as small


def load_data(path: Path, quick: bool):
    if path.exists():
        data = np.load(path)
        mixture = MixtureOfGaussians(
            *(data[key].astype(np.float64) for key in ("weights", "means", "covariances"))
        )
        train, test, source = data["train"].astype(np.float64), data["test"].astype(np.float64), path.name
    else:
        X, mixture = make_mixture_of_gaussians(21_000, random_state=0)
        train, test, source = X[:20_000], X[20_000:], "make_mixture_of_gaussians(random_state=0)"
    if quick:
        train = train[:2_000]
    return train, test, mixture, source


class TimeToTarget:
    """Callback: every ``every`` epochs, coarse-grid test log-likelihood vs training time."""

    def __init__(self, X_test, target: float, every: int = 5):
        self.X_test, self.target, self.every = X_test, target, every
        self.eval_time, self.reached_at, self.reached_epoch = 0.0, None, None

    def __call__(self, imputer, info):
        if self.reached_at is not None or info["epoch"] % self.every:
            return False
        earlier_evaluations = self.eval_time  # `elapsed` was taken before this one
        start = time.perf_counter()
        value = grid_log_likelihood(imputer, self.X_test, grid_size=200, bound=8.0).mean()
        self.eval_time += time.perf_counter() - start
        if value >= self.target:
            self.reached_at = info["elapsed"] - earlier_evaluations
            self.reached_epoch = info["epoch"]
        return False


def component_log_joint(weights, means, covariances, X) -> np.ndarray:
    """``log w_k + log N(x; mean_k, cov_k)`` of complete rows, shape ``(n_components, n_rows)``."""
    return np.stack([np.log(w) + multivariate_normal(m, c).logpdf(X)
                     for w, m, c in zip(weights, means, covariances)])


def likeliest_component(mixture, X):
    """Index of the true mixture component most likely to have generated each complete row."""
    return component_log_joint(mixture.weights, mixture.means, mixture.covariances, X).argmax(axis=0)


def run(method, seed, train, test, mixture, quick, missing_rate=0.5, overrides=None, ensemble=None):
    X_train = train if missing_rate == 0 else make_mcar(
        train, missing_rate, drop_empty_rows=True, random_state=seed)[0]
    X_test_missing, observed = make_mcar(test, 0.5, random_state=1000 + seed)
    true_ll = float(mixture.log_likelihood(test).mean())
    tracker = TimeToTarget(test, true_ll - TARGET_GAP)
    settings = {"max_iter": 10} if quick else {}
    estimator, params = VARIANTS[method]
    settings.update(overrides or {})
    if ensemble:
        # Members train in worker processes, out of the tracker's reach: no time to target.
        n_estimators, n_jobs = ensemble
        member = estimator(**params, latent_dim=2, **settings)
        imputer = VAEEnsembleImputer(member, n_estimators=n_estimators, n_jobs=n_jobs, random_state=seed)
        method = f"{method}x{n_estimators}"
    else:
        imputer = estimator(**params, latent_dim=2, random_state=seed, callbacks=[tracker], **settings)
    start = time.perf_counter()
    imputer.fit(X_train)
    fit_time = time.perf_counter() - start - tracker.eval_time
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
        # Where the gap to the truth comes from: rows of the small against the large clusters.
        "gap_small_clusters": float(gap[small].sum() / len(test)),
        "gap_large_clusters": float(gap[~small].sum() / len(test)),
        "loglik_true": true_ll,
        "score_std_5_seeds": float(np.std(scores)),
        "rmse": rmse,
        "rmse_oracle": oracle,
        "rmse_ratio": rmse / oracle,
        "fit_time_s": fit_time,
        "epochs": max(m.n_iter_ for m in getattr(imputer, "estimators_", [imputer])),
        "time_to_target_s": tracker.reached_at if tracker.reached_at is not None else np.nan,
        "epoch_target_reached": tracker.reached_epoch if tracker.reached_epoch is not None else np.nan,
    }


def write_report(frame: pd.DataFrame, stem: str, command: str, note: str) -> None:
    """Write ``frame`` (one row per fit) as CSV and a Markdown summary of medians over seeds."""
    columns = ["loglik_iwelbo", "loglik_grid", "score_std_5_seeds", "rmse", "rmse_ratio",
               "fit_time_s", "epochs", "time_to_target_s"]
    columns += [c for c in ("gap_small_clusters", "gap_large_clusters") if c in frame]  # newer runs
    summary = frame.groupby("method", sort=False)[columns].median()
    true_ll = frame["loglik_true"].iloc[0]
    best = summary["loglik_grid"].idxmax()
    body = (
        f"{note} Defaults with `latent_dim=2`; medians over seeds "
        f"{sorted(frame['seed'].unique().tolist())}. True model: {true_ll:.4f} nats; oracle "
        f"RMSE {frame['rmse_oracle'].median():.4f}.\n\n"
        + markdown_table(summary)
        + f"\nBest variant by grid log-likelihood: {best}, "
        f"{summary.loc[best, 'loglik_grid'] - true_ll:+.4f} nats from the truth "
        f"(target: within -{TARGET_GAP}); RMSE ratio to oracle "
        f"{summary.loc[best, 'rmse_ratio']:.3f} (target: <= {1 + RMSE_TOLERANCE}).\n"
    )
    save_report(stem, frame, "Mixture-of-Gaussians toy benchmark", command, body)
    print(summary.round(4).to_string())


def _read_labelled(item: str) -> pd.DataFrame:
    """``"stem"`` or ``"stem:label"`` -> that run's rows, methods suffixed with the label."""
    stem, _, label = item.partition(":")
    frame = pd.read_csv(RESULTS / f"{stem}.csv")
    if label:
        frame["method"] = frame["method"] + f" ({label})"
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description="Paper toy benchmark (mixture of Gaussians).")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(VARIANTS),
                        help="default: the six finite-mixture variants")
    parser.add_argument("--data", type=Path, default=SHARED_DATA)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--output", default="mog", help="results file stem")
    parser.add_argument("--merge", nargs="+", metavar="STEM[:LABEL]",
                        help="only re-render: combine results/STEM.csv files (e.g. runs made in "
                             "parallel) into results/OUTPUT.md; STEM:LABEL shows that file's "
                             "methods as 'method (LABEL)'")
    parser.add_argument("--note", default="", help="extra sentence for the report (e.g. how runs shared the machine)")
    parser.add_argument("--missing-rate", type=float, default=0.5,
                        help="MCAR rate of the training rows (0: the complete-data reference)")
    parser.add_argument("--set", nargs="+", default=[], metavar="PARAM=VALUE",
                        help="estimator settings on top of the defaults, e.g. gradient_estimator=total")
    parser.add_argument("--ensemble", nargs=2, type=int, metavar=("N", "JOBS"),
                        help="fit each variant as a VAEEnsembleImputer of N members, JOBS in "
                             "parallel (reported as METHODxN; grid log-likelihood of the mixture)")
    args = parser.parse_args()
    if args.merge:
        frame = pd.concat([_read_labelled(item) for item in args.merge])
        command = f"python benchmarks/mog.py --merge {' '.join(args.merge)} --output {args.output}"
        note = f"Merged from runs {', '.join(args.merge)}. {args.note}"
        command += f' --note "{args.note}"' if args.note else ""
        write_report(frame, args.output, command, note)
        return

    train, test, mixture, source = load_data(args.data, args.quick)
    overrides = parse_settings(args.set)
    rows = []
    for seed in args.seeds:
        for method in args.methods:
            row = run(method, seed, train, test, mixture, args.quick, args.missing_rate, overrides,
                      args.ensemble)
            rows.append(row)
            print({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}, flush=True)
    command = "python benchmarks/mog.py " + " ".join(
        [f"--seeds {' '.join(map(str, args.seeds))}", f"--methods {' '.join(args.methods)}",
         f"--output {args.output}"] + (["--quick"] if args.quick else [])
        + ([f"--missing-rate {args.missing_rate}"] if args.missing_rate != 0.5 else [])
        + ([f"--set {' '.join(args.set)}"] if args.set else [])
        + ([f"--ensemble {' '.join(map(str, args.ensemble))}"] if args.ensemble else [])
    )
    note = (f"Data: {source}; {len(train)} training rows, {args.missing_rate:.0%} MCAR; "
            f"{len(test)} complete test rows." + (f" Settings: {overrides}." if overrides else ""))
    write_report(pd.DataFrame(rows), args.output + ("_quick" if args.quick else ""), command, note)


if __name__ == "__main__":
    main()
