"""Tables whose structure is much tighter than the columns' spread, with known densities.

Usage::

    python benchmarks/low_noise.py                 # both tables, seven settings, seed 0 (~45 min, one core)
    python benchmarks/low_noise.py --quick         # smoke run: 1,000 training rows, 5 epochs
    python benchmarks/low_noise.py --tables clusters --variants default --seeds 1 2 --no-peers
    python benchmarks/low_noise.py --variants --extra min_scale=1e-3 max_iter=600  # other settings
    python benchmarks/low_noise.py --merge low_noise low_noise_seeds     # re-render from CSVs

Data: two generated tables of 10 columns, each column with mean 0 and variance exactly 1,
whose density is a Gaussian mixture known in closed form (``skmissvae.datasets.
MixtureOfGaussians``), so that the log-density of the observed entries of any row and the
Bayes-optimal imputation ``E[x_m | x_o]`` are exact:

* ``clusters``: 8 clusters (Dirichlet(5) weights); each is a Gaussian spread along a random
  plane (standard deviation 0.3 along 2 directions) and tight along the other 8 directions
  (standard deviation ``--noise``, default 0.03, in units of the column standard deviation):
  intrinsic dimension 2 within each cluster;
* ``relations``: one Gaussian ``x = W f + noise`` with 4 standard-normal factors ``f``: every
  column is a linear function of the same 4 factors plus noise of standard deviation
  ``--noise``: any 4 observed columns determine the others up to that noise (intrinsic
  dimension 4).

5,000 training rows and 5,000 test rows per table (``--n-train``, ``--n-test``), drawn once
(``--data-seed``), 40 % of the entries hidden completely at random in both (``--missing-rate``;
rows left fully missing dropped); the masks are fixed too, so that seeds vary only the
estimators. The test set is large because the imputation error of such tables sits in few
rows: those whose observed entries leave the missing ones open (a row that fits several
clusters, or fewer than 4 observed columns of ``relations``). On 1,000 test rows of
``clusters``, 1 % of the rows gave 73 % of the oracle's squared error, and its RMSE had a
bootstrap standard deviation of a quarter of its value.

Measured on the incomplete test rows, for each setting of ``MixtureVAEImputer`` (the default,
MissSIWAE, and one change at a time; ``--variants``):

* ``gap``: the true mean log-density of the observed entries of the test rows minus the
  model's ``score_samples`` mean on the same rows (nats per row, in the data's units;
  ``score_samples`` is an importance-weighted lower bound with 1,000 samples, so the gap is
  slightly overstated);
* ``gap_train``: the same on 1,000 of the incomplete training rows (a gap as large as on the
  test rows means the model underfits rather than overfits);
* ``floor_gap``: the gap that the decoder's scale floor alone forces on a model that is
  otherwise perfect: the true mixture with every component's covariance ``S`` replaced by the
  closest (in KL) covariance that a decoder with noise at least ``min_scale * scale_`` per
  column can produce (eigenvalues of ``D^-1/2 S D^-1/2`` raised to at least 1, ``D`` the
  floor's variances), scored on the same rows;
* ``rmse``: imputation RMSE on the hidden test entries (``transform`` of the test rows by the
  model fitted on the training rows), and its ratio to the MissForest-style imputer's (with
  the standard deviation of that ratio over 200 paired bootstrap resamples of the test rows)
  and to the Bayes oracle's; ``rmse_determined`` and ``rmse_ambiguous`` split it into the
  test rows whose missing entries are determined by the observed ones (true conditional
  standard deviation, root mean square over the missing entries, under 0.1) and the others;
* ``validation_best``: the best held-out score of training (the training objective per
  held-out row, in standardised units), which early stopping watches;
* with ``--more-samples N``: the first 1,000 test rows scored and imputed with 1,000
  (``gap_sub``, ``rmse_determined_sub``) and with N importance samples
  (``gap_more_samples``, ``rmse_determined_more_samples``; RMSE of their determined rows):
  whether the importance sampler, not the model, limits them;
* fit time (s) and epochs (``n_iter_``; ``best_iteration_`` is the epoch kept).

Peers, fitted on the same training rows and applied to the test rows: column means, the
MissForest-style ``IterativeImputer(ExtraTreesRegressor(n_estimators=50,
max_features="sqrt"), max_iter=10)`` of ``imputation.py``, and the Bayes oracle (the true
mixture's conditional mean).

Writes ``benchmarks/results/low_noise.md`` and ``low_noise.csv`` (``--output`` changes the
name; ``--quick`` appends ``_quick``).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
import warnings

import numpy as np
import pandas as pd
import torch
from sklearn.ensemble import ExtraTreesRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer, SimpleImputer

from skmissvae import MixtureVAEImputer
from skmissvae.datasets import MixtureOfGaussians, make_mcar
from skmissvae.evaluation import imputation_rmse

from _report import RESULTS, markdown_table, parse_settings, save_report

TITLE = "Tight structure: MixtureVAEImputer against the true density"
N_FEATURES = 10
# A test row counts as determined when the true conditional standard deviation of its
# missing entries (root mean square over them) is below this, in column standard deviations.
DETERMINED = 0.1
INTRINSIC = {"clusters": 2, "relations": 4}
# One change at a time from the defaults. "latent_dim=intrinsic" is 2 for clusters, 4 for
# relations; max_iter=600 without early stopping triples the default's 200 epochs.
VARIANTS = {
    "default": {},
    "min_scale=0.1": {"min_scale": 0.1},
    "min_scale=1e-3": {"min_scale": 1e-3},
    "latent_dim=intrinsic": {"latent_dim": "intrinsic"},
    "max_iter=600, no early stopping": {"max_iter": 600, "early_stopping": False},
    "hidden_width=256": {"hidden_width": 256},
    "n_particles=15": {"n_particles": 15},
    'validation_split="entries"': {"validation_split": "entries", "max_iter": "auto"},
}


# ---------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------
def random_rotation(rng: np.random.RandomState, d: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def make_clusters(rng, noise: float, n_components: int = 8, spread: float = 0.3, wide: int = 2):
    """Clusters spread along a random plane and ``noise`` wide across it; columns of variance 1."""
    weights = rng.dirichlet(np.full(n_components, 5.0))
    scales = np.array([spread] * wide + [noise] * (N_FEATURES - wide))
    covariances = np.empty((n_components, N_FEATURES, N_FEATURES))
    for k in range(n_components):
        q = random_rotation(rng, N_FEATURES)
        covariances[k] = (q * scales**2) @ q.T
    within = np.einsum("k,kdd->d", weights, covariances)  # each column's within-cluster variance
    means = rng.standard_normal((n_components, N_FEATURES))
    means -= weights @ means
    means *= np.sqrt((1 - within) / (weights @ means**2))  # column variance 1 in total
    return MixtureOfGaussians(weights=weights, means=means, covariances=covariances)


def make_relations(rng, noise: float, rank: int = 4):
    """``x = W f + noise``: every column a linear function of ``rank`` factors; variance 1."""
    w = rng.standard_normal((N_FEATURES, rank))
    w *= np.sqrt(1 - noise**2) / np.linalg.norm(w, axis=1, keepdims=True)
    covariance = w @ w.T + noise**2 * np.eye(N_FEATURES)
    return MixtureOfGaussians(weights=np.ones(1), means=np.zeros((1, N_FEATURES)),
                              covariances=covariance[None])


TABLES = {"clusters": make_clusters, "relations": make_relations}


def make_table(name: str, args) -> dict:
    """Complete and incomplete training and test rows of table ``name`` and its true density.

    The mixture, the training rows and the test rows come from separate random streams, so
    that ``--n-test`` changes neither the density nor the training table.
    """
    offset = 1000 * args.data_seed + (0 if name == "clusters" else 1)
    mixture = TABLES[name](np.random.RandomState(offset), args.noise)
    rng_train, rng_test = np.random.RandomState(offset + 10), np.random.RandomState(offset + 20)
    train_missing, _ = make_mcar(mixture.sample(args.n_train, rng_train), args.missing_rate,
                                 drop_empty_rows=True, random_state=rng_train)
    test = mixture.sample(args.n_test, rng_test)
    test_missing, observed = make_mcar(test, args.missing_rate, random_state=rng_test)
    keep = observed.any(axis=1)
    test, test_missing, observed = test[keep], test_missing[keep], observed[keep]
    spread = oracle_spread(mixture, test_missing)
    return {"mixture": mixture, "train": train_missing, "test": test, "test_missing": test_missing,
            "observed": observed, "determined": spread < DETERMINED,
            "loglik_true": mixture.log_likelihood(test_missing),
            "loglik_true_train": mixture.log_likelihood(train_missing[:1000])}


def oracle_spread(mixture: MixtureOfGaussians, X: np.ndarray) -> np.ndarray:
    """Per row, the root mean over its missing entries of the true ``Var(x_m | x_o)``
    (0 for complete rows): how far the observed entries determine the missing ones."""
    observed = ~np.isnan(X)
    out = np.zeros(len(X))
    patterns, inverse = np.unique(observed, axis=0, return_inverse=True)
    for p, o in enumerate(patterns):
        m = ~o
        rows = np.flatnonzero(inverse.ravel() == p)
        if not m.any():
            continue
        x_o = X[rows][:, o]
        log_w, means, variances = [], [], []
        for w, mu, cov in zip(mixture.weights, mixture.means, mixture.covariances):
            if o.any():
                chol = np.linalg.cholesky(cov[np.ix_(o, o)])
                diff = np.linalg.solve(chol, (x_o - mu[o]).T)  # [o, n]
                a = np.linalg.solve(chol, cov[np.ix_(o, m)])  # [o, m]
                log_w.append(np.log(w) - 0.5 * (diff**2).sum(0) - np.log(np.diag(chol)).sum())
                means.append(mu[m] + diff.T @ a)
                variances.append(np.diag(cov[np.ix_(m, m)]) - (a**2).sum(0))
            else:
                log_w.append(np.full(len(rows), np.log(w)))
                means.append(np.broadcast_to(mu[m], (len(rows), m.sum())))
                variances.append(np.diag(cov[np.ix_(m, m)]))
        log_w = np.array(log_w)  # [K, n]
        resp = np.exp(log_w - log_w.max(0))
        resp /= resp.sum(0)
        means = np.array(means)  # [K, n, m]
        mean = np.einsum("kn,knm->nm", resp, means)
        second = np.einsum("kn,knm->nm", resp, means**2 + np.array(variances)[:, None, :])
        out[rows] = np.sqrt(np.maximum(second - mean**2, 0).mean(1))
    return out


def floored(mixture: MixtureOfGaussians, floor_std: np.ndarray) -> MixtureOfGaussians:
    """The mixture with each covariance raised to the closest one whose decoder noise can be
    ``floor_std`` per column: eigenvalues of ``D^-1/2 S D^-1/2`` raised to at least 1."""
    covariances = np.empty_like(mixture.covariances)
    for k, s in enumerate(mixture.covariances):
        white = s / np.outer(floor_std, floor_std)
        values, vectors = np.linalg.eigh(white)
        covariances[k] = (vectors * np.maximum(values, 1.0)) @ vectors.T * np.outer(floor_std, floor_std)
    return MixtureOfGaussians(weights=mixture.weights, means=mixture.means, covariances=covariances)


# ---------------------------------------------------------------------------------------
# fits
# ---------------------------------------------------------------------------------------
def settings_of(variant: str, table: str, quick: bool) -> dict:
    params = dict(VARIANTS[variant]) if variant in VARIANTS else parse_settings(variant.split(", "))
    if params.get("latent_dim") == "intrinsic":
        params["latent_dim"] = INTRINSIC[table]
    if quick:
        params["max_iter"] = 5
    return params


def imputation_scores(data: dict, imputed: np.ndarray) -> dict:
    """RMSE of the hidden test entries: all, of the determined rows and of the others; with
    MissForest's imputation in ``data``, the paired bootstrap spread of the ratio to it."""
    missing = ~data["observed"]
    sse = (np.where(missing, imputed - data["test"], 0.0) ** 2).sum(1)
    count = missing.sum(1)
    determined = data["determined"]
    scores = {
        "rmse": float(np.sqrt(sse.sum() / count.sum())),
        "rmse_determined": float(np.sqrt(sse[determined].sum() / count[determined].sum())),
        "rmse_ambiguous": float(np.sqrt(sse[~determined].sum() / count[~determined].sum())),
    }
    if "missforest_sse" in data:
        rng = np.random.RandomState(0)
        resamples = rng.randint(0, len(sse), size=(200, len(sse)))
        ratios = np.sqrt(sse[resamples].sum(1) / data["missforest_sse"][resamples].sum(1))
        scores["ratio_sd"] = float(ratios.std())
    scores["_sse"] = sse
    return scores


def run_vae(table: str, data: dict, variant: str, seed: int, quick: bool, more_samples=None) -> dict:
    params = settings_of(variant, table, quick)
    imputer = MixtureVAEImputer(random_state=seed, device="cpu", **params)
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        imputer.fit(data["train"])
    fit_time = time.perf_counter() - start
    still_improving = any("still improving" in str(w.message) for w in caught)
    mixture, test_missing = data["mixture"], data["test_missing"]
    ll_true = data["loglik_true"]
    ll_model = imputer.score_samples(test_missing)
    ll_floor = floored(mixture, imputer.min_scale_ * imputer.scale_).log_likelihood(test_missing)
    start = time.perf_counter()
    imputed = imputer.transform(test_missing)
    transform_time = time.perf_counter() - start
    scores = imputation_scores(data, imputed)
    scores.pop("_sse")
    more = {}
    if more_samples:  # the same model on the first 1,000 test rows, with more importance samples
        imputer.set_params(min_effective_samples=None)  # every sample, in both imputations
        sub, first = test_missing[:1000], slice(0, 1000)
        sub_data = {**data, "test": data["test"][first], "observed": data["observed"][first],
                    "determined": data["determined"][first]}
        sub_data.pop("missforest_sse", None)
        more["gap_sub"] = float(ll_true[first].mean() - ll_model[first].mean())
        more["rmse_determined_sub"] = imputation_scores(sub_data, imputer.transform(sub))["rmse_determined"]
        imputer.set_params(n_score_samples=more_samples, n_impute_samples=more_samples)
        more["gap_more_samples"] = float(ll_true[first].mean() - imputer.score(sub))
        more["rmse_determined_more_samples"] = imputation_scores(
            sub_data, imputer.transform(sub))["rmse_determined"]
    return {
        "table": table, "method": variant, "seed": seed, "settings": str(params),
        "loglik_true": float(ll_true.mean()),
        "loglik_model": float(ll_model.mean()),
        "gap": float(ll_true.mean() - ll_model.mean()),
        "gap_train": float(data["loglik_true_train"].mean() - imputer.score(data["train"][:1000])),
        "floor_gap": float(ll_true.mean() - ll_floor.mean()),
        **scores,
        "fit_time_s": fit_time,
        "transform_time_s": transform_time,
        # Best held-out score of training (the objective per held-out row, standardised
        # units; minus the training loss without early stopping; see validation_split).
        "validation_best": float(np.nanmax(imputer.validation_scores_)),
        "floor": imputer.min_scale_,
        "epochs": imputer.n_iter_,
        "best_iteration": imputer.best_iteration_,
        "refitted": bool(getattr(imputer, "refitted_", False)),
        "stopped_while_improving": still_improving,
        **more,
    }


def run_peers(table: str, data: dict, quick: bool) -> list[dict]:
    """Fit the peers; MissForest's per-row errors go into ``data`` for the paired ratios."""
    peers = {
        "mean": SimpleImputer(strategy="mean"),
        "MissForest-style": IterativeImputer(
            estimator=ExtraTreesRegressor(n_estimators=5 if quick else 50, max_features="sqrt",
                                          random_state=0, n_jobs=1),
            max_iter=2 if quick else 10, random_state=0),
    }
    rows = []
    for name, imputer in peers.items():
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            imputer.fit(data["train"])
            fit_time = time.perf_counter() - start
            imputed = imputer.transform(data["test_missing"])
        scores = imputation_scores(data, imputed)
        if name == "MissForest-style":
            data["missforest_sse"] = scores["_sse"]
        scores.pop("_sse")
        rows.append({"table": table, "method": name, "seed": 0, "fit_time_s": fit_time, **scores})
    scores = imputation_scores(data, data["mixture"].conditional_mean(data["test_missing"]))
    scores.pop("_sse")
    rows.append({"table": table, "method": "Bayes oracle", "seed": 0,
                 "loglik_true": float(data["loglik_true"].mean()),
                 "determined_share": float(data["determined"].mean()), **scores})
    return rows


# ---------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------
COLUMNS = ["gap", "gap_train", "floor_gap", "rmse", "rmse / MissForest", "ratio_sd", "rmse / oracle",
           "rmse_determined", "rmse_ambiguous", "gap_sub", "gap_more_samples",
           "rmse_determined_sub", "rmse_determined_more_samples", "floor", "fit_time_s", "epochs", "best_iteration"]


def summarise(frame: pd.DataFrame, table: str) -> pd.DataFrame:
    """Medians over seeds of one table, peers first, then the settings in run order."""
    sub = frame[frame["table"] == table].copy()
    missforest = sub.loc[sub["method"] == "MissForest-style", "rmse"].median()
    oracle = sub.loc[sub["method"] == "Bayes oracle", "rmse"].median()
    sub["rmse / MissForest"] = sub["rmse"] / missforest
    sub["rmse / oracle"] = sub["rmse"] / oracle
    columns = [c for c in COLUMNS if c in sub]
    summary = sub.groupby("method", sort=False)[columns].median().dropna(axis=1, how="all")
    seeds = sub.groupby("method", sort=False)["seed"].apply(lambda s: " ".join(map(str, sorted(s))))
    summary.insert(0, "seeds", seeds)
    return summary


def write_report(frame: pd.DataFrame, stem: str, command: str, note: str, wall_time=None) -> None:
    body = [note, (
        "`gap`: true minus estimated mean log-density of the observed entries of the test rows "
        "(nats per row; 0 is perfect; `score_samples` with 1,000 importance samples); "
        "`gap_train`: the same on 1,000 training rows; `floor_gap`: the gap that the decoder's "
        "scale floor alone forces on an otherwise perfect model; `rmse`: imputation RMSE of the "
        "hidden test entries (column standard deviations), also divided by the MissForest-style "
        "imputer's (`ratio_sd`: its spread over 200 bootstrap resamples of the test rows, paired) "
        f"and the Bayes oracle's; `rmse_determined`: on the test rows whose missing entries the "
        f"observed ones determine (true conditional standard deviation under {DETERMINED}), "
        "`rmse_ambiguous` on the others; `*_sub`, `*_more_samples`: the first 1,000 test rows "
        "(RMSE: their determined rows) scored and imputed with 1,000 and with more importance "
        "samples (where run). Medians "
        "over seeds; the peers are deterministic (seed 0).")]
    for table in dict.fromkeys(frame["table"]):
        summary = summarise(frame, table)
        rows = frame[frame["table"] == table]
        true = rows["loglik_true"].dropna().iloc[0]
        share = rows["determined_share"].dropna() if "determined_share" in rows else []
        determined = f" {share.iloc[0]:.1%} of the test rows are determined." if len(share) else ""
        body.append(f"## {table}\n\nTrue mean log-density of the observed test entries: "
                    f"{true:.3f} nats per row.{determined}\n\n"
                    + markdown_table(summary.astype(object).where(summary.notna(), "–")))
    save_report(stem, frame, TITLE, command, "\n\n".join(b for b in body if b) + "\n", wall_time)
    for table in dict.fromkeys(frame["table"]):
        print(table)
        print(summarise(frame, table).round(3).to_string())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tables", nargs="+", default=list(TABLES), choices=list(TABLES))
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS),
                        help="settings of MixtureVAEImputer (default: all, run in this order)")
    parser.add_argument("--extra", nargs="+", action="append", default=[], metavar="PARAM=VALUE",
                        help="one more setting: these parameters together on top of the defaults "
                             "(repeat the option for several)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="estimator seeds")
    parser.add_argument("--noise", type=float, default=0.03,
                        help="standard deviation of the tight directions, in column standard deviations")
    parser.add_argument("--missing-rate", type=float, default=0.4)
    parser.add_argument("--n-train", type=int, default=5000)
    parser.add_argument("--n-test", type=int, default=5000)
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--more-samples", type=int, metavar="N",
                        help="also score and impute the first 1,000 test rows with N importance "
                             "samples (gap_more_samples, rmse_determined_more_samples)")
    parser.add_argument("--no-peers", action="store_true",
                        help="leave the peers out of the results (e.g. for extra seeds; MissForest "
                             "is still fitted for the paired ratios)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1,000 training rows, 5 epochs")
    parser.add_argument("--output", default="low_noise", help="results file stem")
    parser.add_argument("--merge", nargs="+", metavar="STEM",
                        help="only re-render: combine results/STEM.csv files into results/OUTPUT.md")
    parser.add_argument("--note", default="", help="extra sentence for the report")
    args = parser.parse_args()
    command = ("python benchmarks/low_noise.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])).strip()
    if args.merge:
        frame = pd.concat([pd.read_csv(RESULTS / f"{stem}.csv") for stem in args.merge], ignore_index=True)
        write_report(frame, args.output, command, args.note)
        return
    torch.set_num_threads(args.threads)
    if args.quick:
        args.n_train, args.n_test = 1000, 500
    variants = list(args.variants) + [", ".join(items) for items in args.extra]
    start = time.perf_counter()
    rows = []
    stem = args.output + ("_quick" if args.quick else "")
    for table in args.tables:
        data = make_table(table, args)
        peers = run_peers(table, data, args.quick)
        print({r["method"]: round(r["rmse"], 4) for r in peers}, flush=True)
        if not args.no_peers:
            rows += peers
        for seed in args.seeds:
            for variant in variants:
                rows.append(run_vae(table, data, variant, seed, args.quick, args.more_samples))
                print({k: round(v, 4) if isinstance(v, float) else v for k, v in rows[-1].items()}, flush=True)
                pd.DataFrame(rows).to_csv(RESULTS / f"{stem}_partial.csv", index=False)
    note = (f"Data: {args.n_train} training and {args.n_test} test rows per table, 10 columns of "
            f"variance 1, tight directions of standard deviation {args.noise}, "
            f"{args.missing_rate:.0%} MCAR (rows left fully missing dropped), data seed "
            f"{args.data_seed}. `MixtureVAEImputer` defaults (MissSIWAE) with one setting "
            f"changed per row; torch threads: {args.threads}. {args.note}")
    write_report(pd.DataFrame(rows), stem, command, note.strip(), time.perf_counter() - start)
    (RESULTS / f"{stem}_partial.csv").unlink(missing_ok=True)


if __name__ == "__main__":
    main()
