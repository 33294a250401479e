"""The paper's real-data experiment on the offline tables: test log-likelihood of seven methods.

Simkus & Gutmann (TMLR 2024), sec. 5.2, fit VAEs to UCI tables with 50 % and 80 % of the
training entries missing completely at random and compare the seven methods by the
log-likelihood of complete test rows, with the encoder refitted on them. Their tables
(GAS, POWER, HEPMASS, MINIBOONE) cannot be downloaded here; this benchmark runs the same
protocol on the nine tables that ship with scikit-learn and the ``benchmarks`` extra
(iris, wine, diabetes, breast_cancer, concrete, spambase, letter, yeast, red_wine):

* data: each table's rows shuffled once (``--data-seed``); a quarter of them, at most
  ``--test-rows``, are the complete test rows, the others (at most ``--train-rows``) the
  training rows, of which ``--rates`` are hidden completely at random (rows left fully
  missing dropped; the mask from the seed, the same for every method);
* methods: MVAE, MIWAE, MissVAE, MissSVAE, MissIWAE, MissSIWAE (``skmissvae.METHODS``) and
  DeMissVAE (``DeMissVAEImputer``; ``--demiss``: LAIR at the paper's toy setting T=1 by
  default, the estimator's T=10 LAIR, or pseudo-Gibbs), the estimators' default
  networks (latent 16, two residual blocks of width 128) and budget 5 (components =
  particles = imputations), the same number of optimiser steps for every method
  (``--steps``, rounded to whole epochs of batch 128; no early stopping; cosine schedule),
  one torch thread;
* score: the paper's protocol, ``skmissvae.evaluation.refit_test_log_likelihood``: the
  decoder frozen, a copy of the encoder refitted on the complete test rows (IWELBO, 50
  samples, ``--refit-epochs``), then an IWELBO with ``--score-samples`` importance samples,
  in nats per row in the table's own units (so only methods on the same table compare).

The paper trains for about 200,000 steps and scores with 50,000 samples; 378 fits (9 tables
x 2 rates x 7 methods x 3 seeds) cannot afford that on a shared CPU, and the report states
the budget used.

Usage::

    python benchmarks/tables_loglik.py                 # 9 tables x 2 rates x 7 methods x 3 seeds
    python benchmarks/tables_loglik.py --quick         # smoke run: 2 tables, seed 0, 20 steps
    python benchmarks/tables_loglik.py --rates 0.8 --output tables_loglik_80   # one rate
    python benchmarks/tables_loglik.py --merge tables_loglik_50 tables_loglik_80

Writes ``benchmarks/results/tables_loglik.md`` and ``.csv``: per missing rate, a table of the
median test log-likelihood over seeds per table and method, and the paper's findings checked
table by table. ``--merge`` only re-renders the report from saved CSVs.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time

import numpy as np
import pandas as pd
import torch

from skmissvae import METHODS, MixtureVAEImputer
from skmissvae.datasets import make_mcar
from skmissvae.evaluation import refit_test_log_likelihood

from _report import RESULTS, header, markdown_table
from _tables import NAMES, load_table, require_tables
from _variants import ELBO_METHODS, IW_PAIRS, MIXTURE_PAIRS, STRATIFIED_PAIRS, VARIANTS

TITLE = "Real tables, 50 % and 80 % MCAR: test log-likelihood of the seven methods"
ORDER = [*METHODS, "DeMissVAE"]
BATCH = 128
# DeMissVAE's setting for --demiss, by the name of its variant.
DEMISS = {"lair-toy": "DeMissVAE-LAIR-toy", "lair": "DeMissVAE-LAIR", "pseudo-gibbs": "DeMissVAE-pseudo-Gibbs"}


def split_table(name: str, args) -> tuple[np.ndarray, np.ndarray]:
    """``(train, test)``: complete rows of ``name``, shuffled by the data seed."""
    X, _, _ = load_table(name, max_rows=10**9)
    X = X[np.random.default_rng(args.data_seed).permutation(len(X))]
    n_test = min(args.test_rows, len(X) // 4)
    return X[n_test:n_test + args.train_rows], X[:n_test]


def make_imputer(method: str, seed: int, epochs: int, args):
    # The paper's learning rate ("auto" would take 3e-3 for the short runs).
    common = dict(max_iter=epochs, early_stopping=False, batch_size=BATCH, random_state=seed,
                  device="cpu", n_jobs=1, learning_rate=1e-3)
    if method == "DeMissVAE":
        estimator, params = VARIANTS[DEMISS[args.demiss]]
        return estimator(**params, **common)
    return MixtureVAEImputer(**METHODS[method], **common)


def run_one(table: str, rate: float, method: str, seed: int, data, args) -> dict:
    train, test = data
    train_missing, _ = make_mcar(train, rate, drop_empty_rows=True, random_state=seed)
    epochs = max(1, round(args.steps / -(-len(train_missing) // BATCH)))
    imputer = make_imputer(method, seed, epochs, args)
    start = time.perf_counter()
    imputer.fit(train_missing)
    fit_time = time.perf_counter() - start
    loglik = refit_test_log_likelihood(imputer, test, n_refit_epochs=args.refit_epochs,
                                       n_importance_samples=args.score_samples, random_state=seed)
    return {"table": table, "missing_rate": rate, "method": method, "seed": seed,
            "test_ll_refit": float(loglik.mean()), "n_train": len(train_missing), "n_test": len(test),
            "epochs": epochs, "fit_time_s": fit_time}


# ---------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------
def count(pairs, tables, holds) -> tuple[int, int]:
    """How many (table, pair) cases ``holds(table, pair)``, out of those with both methods."""
    cases = [holds(t, p) for t in tables for p in pairs]
    return sum(cases), len(cases)


def findings(frame: pd.DataFrame) -> list[str]:
    """The paper's findings at one missing rate, each counted over tables (medians over seeds)."""
    stats = frame.groupby(["table", "method"])["test_ll_refit"]
    median = stats.median().unstack("method")
    spread = (stats.max() - stats.min()).unstack("method")
    tables = list(median.index)
    lines = []

    def present(pairs):
        return [p for p in pairs if set(p) <= set(median.columns)]

    def verdict(wins, total):
        share = "holds" if wins == total else ("mostly holds" if wins >= 2 * total / 3 else "does not hold")
        return f"**{share}** ({wins} of {total})"

    pairs = present(IW_PAIRS)
    if pairs:
        wins, total = count(pairs, tables, lambda t, p: median.loc[t, p[0]] > median.loc[t, p[1]])
        lines.append(f"- Importance-weighted bounds beat their ELBO counterparts (table x pair): {verdict(wins, total)}.")
    pairs = present(MIXTURE_PAIRS)
    if pairs:
        wins, total = count(pairs, tables, lambda t, p: median.loc[t, p[0]] > median.loc[t, p[1]])
        per_pair = ", ".join(
            f"{mix} {int((median[mix] > median[single]).sum())}/{len(tables)}" for mix, single in pairs)
        lines.append(f"- Each mixture beats its single-Gaussian counterpart: {verdict(wins, total)}; "
                     f"per pair: {per_pair}.")
    pairs = present(STRATIFIED_PAIRS)
    if pairs and frame["seed"].nunique() > 1:
        wins, total = count(pairs, tables, lambda t, p: spread.loc[t, p[0]] <= spread.loc[t, p[1]])
        lines.append("- Stratified sampling is more stable than ancestral (range of the test "
                     f"log-likelihood over seeds no larger): {verdict(wins, total)}.")
    elbo = [m for m in ELBO_METHODS if m in median.columns]
    if "DeMissVAE" in median.columns and elbo:
        def best_or_tied(table):
            best = median.loc[table, elbo].idxmax()
            noise = (spread.loc[table, "DeMissVAE"] + spread.loc[table, best]) / 2
            return median.loc[table, "DeMissVAE"] >= median.loc[table, best] - noise
        wins = sum(best_or_tied(t) for t in tables)
        lines.append("- DeMissVAE is best or tied-best among the ELBO methods (tied: within half the "
                     f"summed ranges over seeds): {verdict(wins, len(tables))}.")
    return lines or ["- not checked: the methods they compare were not run."]


def mixture_gain_by_rate(frame: pd.DataFrame) -> str | None:
    """The paper's 'mixtures help most at high missingness': the gain of each mixture over its
    single-Gaussian counterpart (nats, medians over seeds), its median over tables and pairs
    at each rate, and in how many (table, pair) cases it is larger at the highest rate."""
    median = frame.groupby(["missing_rate", "table", "method"])["test_ll_refit"].median().unstack("method")
    pairs = [p for p in MIXTURE_PAIRS if set(p) <= set(median.columns)]
    rates = sorted(frame["missing_rate"].unique())
    if not pairs or len(rates) < 2:
        return None
    gain = {rate: pd.concat([median.loc[rate][m] - median.loc[rate][s] for m, s in pairs]) for rate in rates}
    larger = int((gain[rates[-1]] > gain[rates[0]]).sum())
    typical = {rate: float(g.median()) for rate, g in gain.items()}
    holds = larger > len(gain[rates[0]]) / 2 and typical[rates[-1]] > 0
    return ("- Mixtures help most at high missingness: "
            f"**{'holds' if holds else 'does not hold'}**; the gain of a mixture over its "
            f"counterpart is larger at {rates[-1]:.0%} than at {rates[0]:.0%} in {larger} of "
            f"{len(gain[rates[0]])} (table, pair) cases; median gain "
            + ", ".join(f"{rate:.0%}: {g:+.3f} nats" for rate, g in typical.items()) + ".")


def rate_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Median over seeds per table (rows) and method (columns); the best of each row starred."""
    median = frame.groupby(["table", "method"])["test_ll_refit"].median().unstack("method")
    median = median[[m for m in ORDER if m in median.columns]]
    median = median.loc[[t for t in NAMES if t in median.index]]
    best = median.idxmax(axis=1)
    cells = pd.DataFrame({m: [f"**{v:.3f}**" if m == best[t] else f"{v:.3f}" for t, v in median[m].items()]
                          for m in median.columns}, index=median.index)
    seeds = frame.groupby("table")["seed"].nunique().reindex(cells.index)
    cells.insert(0, "seeds", seeds.astype(str))
    return cells


def write_report(frame: pd.DataFrame, stem: str, command: str, note: str, wall_time=None) -> None:
    RESULTS.mkdir(exist_ok=True)
    frame.to_csv(RESULTS / f"{stem}.csv", index=False)
    body = [note, "",
            "Median over seeds of the mean test log-likelihood (nats per complete test row, in the "
            "table's units; higher is better; the best of each row in bold), by the paper's protocol: "
            "encoder refitted on the test rows, then an IWELBO. Only methods on the same table and "
            "rate compare.", ""]
    for rate, group in frame.groupby("missing_rate"):
        body += [f"## {rate:.0%} MCAR", "", markdown_table(rate_table(group)),
                 "The paper's findings, table by table:", "", *findings(group), ""]
    gain = mixture_gain_by_rate(frame)
    if gain:
        body += ["## Across missing rates", "", gain, ""]
    times = frame.groupby("method")["fit_time_s"].median().reindex([m for m in ORDER if m in set(frame["method"])])
    body += ["Median fit time per method (s, over tables, rates and seeds): "
             + ", ".join(f"{m} {t:.1f}" for m, t in times.items()) + ".", ""]
    (RESULTS / f"{stem}.md").write_text(header(TITLE, command, wall_time) + "\n".join(body))
    print("\n".join(body))


def settings_note(args) -> str:
    """The data, budget and score settings of ``args``, and the extra note."""
    return (
        f"Data: {', '.join(args.tables)}; per table a quarter of the rows (at most {args.test_rows}) "
        f"as complete test rows and at most {args.train_rows} training rows (split from data seed "
        f"{args.data_seed}), the training entries hidden completely at random (mask from the seed, rows "
        f"left fully missing dropped). Budget, the same for every method: about {args.steps} optimiser "
        f"steps of batch {BATCH} (whole epochs), no early stopping, cosine schedule from the paper's "
        "learning rate 1e-3; estimator defaults "
        "otherwise (latent 16, 2 residual blocks of width 128, 5 components / particles / imputations); "
        f"DeMissVAE with `{VARIANTS[DEMISS[args.demiss]][1] or 'its default LAIR'}`; one torch thread. Score: encoder refitted "
        f"for {args.refit_epochs} epochs (IWELBO, 50 samples), then {args.score_samples:,} importance "
        f"samples. The paper: about 200,000 steps and 50,000 samples. Seeds "
        f"{' '.join(map(str, args.seeds))}. " + args.note).strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tables", nargs="+", default=NAMES, choices=NAMES)
    parser.add_argument("--rates", type=float, nargs="+", default=[0.5, 0.8])
    parser.add_argument("--methods", nargs="+", default=ORDER, choices=ORDER)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=600, help="optimiser steps per fit (whole epochs)")
    parser.add_argument("--train-rows", type=int, default=2000, help="at most this many training rows")
    parser.add_argument("--test-rows", type=int, default=500, help="at most this many test rows (and a quarter)")
    parser.add_argument("--refit-epochs", type=int, default=20, help="epochs of the encoder refit")
    parser.add_argument("--score-samples", type=int, default=1000, help="importance samples of the score")
    parser.add_argument("--demiss", default="lair-toy", choices=list(DEMISS),
                        help="DeMissVAE's sampler setting (default: LAIR as in the paper's toy study)")
    parser.add_argument("--data-seed", type=int, default=0, help="seed of the train/test split")
    parser.add_argument("--output", default="tables_loglik", help="results file stem")
    parser.add_argument("--quick", action="store_true", help="smoke run: iris and wine, seed 0, 20 steps")
    parser.add_argument("--merge", nargs="+", metavar="STEM",
                        help="only re-render: combine results/STEM.csv files (the settings options "
                             "describe the runs in the report)")
    parser.add_argument("--note", default="", help="extra sentence for the report")
    args = parser.parse_args()
    command = ("python benchmarks/tables_loglik.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])).strip()
    torch.set_num_threads(1)
    if args.merge:
        frame = pd.concat([pd.read_csv(RESULTS / f"{stem}.csv") for stem in args.merge], ignore_index=True)
        write_report(frame, args.output, command, settings_note(args))
        return
    if args.quick:
        args.tables, args.seeds, args.steps, args.refit_epochs, args.score_samples = ["iris", "wine"], [0], 20, 2, 100
    require_tables(args.tables)
    stem = args.output + ("_quick" if args.quick else "")
    start = time.perf_counter()
    data = {table: split_table(table, args) for table in args.tables}
    rows = []
    # Seeds outermost: a run stopped early has every table and method at the seeds it finished.
    for seed in args.seeds:
        for table in args.tables:
            for rate in args.rates:
                for method in args.methods:
                    rows.append(run_one(table, rate, method, seed, data[table], args))
                    print({k: round(v, 4) if isinstance(v, float) else v for k, v in rows[-1].items()}, flush=True)
                    pd.DataFrame(rows).to_csv(RESULTS / f"{stem}_partial.csv", index=False)
    write_report(pd.DataFrame(rows), stem, command, settings_note(args), time.perf_counter() - start)
    (RESULTS / f"{stem}_partial.csv").unlink()


if __name__ == "__main__":
    main()
