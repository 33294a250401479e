"""Training throughput and scale: rows per second of every variant, with the Gaussian VAE
as yardstick, on a 20,000 x 5 and a 100,000 x 50 table.

Usage::

    python benchmarks/throughput.py            # 3 repeats, about a quarter of an hour
    python benchmarks/throughput.py --quick    # smoke run: 2,000-row tables, one repeat

Writes ``benchmarks/results/throughput.md`` and ``.csv``. Throughput is training rows /
time of the second epoch (early stopping off), so every variant does the same number of
steps and DeMissVAE's sampler, which starts in the second epoch, is counted. The figure
quoted is the median over repeats; the overhead ratios are taken within one repeat (these
machines are noisy) before their median is taken.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from skmissvae.datasets import make_mcar

from _report import RESULTS, header, markdown_table
from _variants import VARIANTS


# (name, rows, columns, extra settings): the estimator defaults, and the network and batch
# size of the paper's toy experiment (batch 64, 3 x 200 residual MLPs, latent 2).
# The tables are synthetic (make_table), with half of their entries missing.
TABLES = [
    ("20000x5 defaults", 20_000, 5, {"latent_dim": 2}),
    ("20000x5 paper toy config", 20_000, 5,
     {"latent_dim": 2, "batch_size": 64, "hidden_width": 200, "n_hidden_blocks": 3}),
    ("100000x50 defaults", 100_000, 50, {}),
]


def make_table(n_rows: int, n_cols: int, seed: int = 0) -> np.ndarray:
    rng = np.random.RandomState(seed)
    latent = rng.standard_normal((n_rows, 3))
    X = np.tanh(latent @ rng.standard_normal((3, n_cols))) + 0.1 * rng.standard_normal((n_rows, n_cols))
    return make_mcar(X, 0.5, drop_empty_rows=True, random_state=seed)[0]


def rows_per_second(method: str, X: np.ndarray, settings: dict) -> float:
    """Training rows per second in the second epoch (DeMissVAE's sampler starts there)."""
    elapsed = []
    estimator, params = VARIANTS[method]
    imputer = estimator(
        **params, max_iter=2, early_stopping=False, device="cpu", random_state=0,
        callbacks=[lambda imputer, info: elapsed.append(info["elapsed"])], **settings,
    )
    imputer.fit(X)
    return len(X) / (elapsed[1] - elapsed[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny tables, one repeat")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    start = time.perf_counter()
    repeats = 1 if args.quick else args.repeats
    # An untimed warm-up fit: the first fit in a process pays one-off start-up costs.
    rows_per_second("MVAE", make_table(500, 5), {"latent_dim": 2})
    rows = []
    for name, n_rows, n_cols, settings in TABLES:
        if args.quick:
            n_rows = 2_000
        X = make_table(n_rows, n_cols)
        for repeat in range(repeats):
            speeds = {m: rows_per_second(m, X, settings) for m in VARIANTS}
            for method, speed in speeds.items():
                rows.append({
                    "table": name, "method": method, "repeat": repeat, "rows_per_s": speed,
                    # Step-time ratio to the Gaussian-encoder VAE of the same objective
                    # (DeMissVAE's objectives are ELBOs).
                    "step_time_vs_gaussian": speeds["MIWAE" if "IWAE" in method else "MVAE"] / speed,
                })
            print(name, repeat, {m: round(s) for m, s in speeds.items()}, flush=True)
    frame = pd.DataFrame(rows)
    summary = frame.groupby(["table", "method"], sort=False)[["rows_per_s", "step_time_vs_gaussian"]].median()
    RESULTS.mkdir(exist_ok=True)
    suffix = "_quick" if args.quick else ""
    frame.to_csv(RESULTS / f"throughput{suffix}.csv", index=False)
    command = "python benchmarks/throughput.py" + (" --quick" if args.quick else "")
    with open(RESULTS / f"throughput{suffix}.md", "w") as f:
        f.write(header("Training throughput", command, time.perf_counter() - start))
        f.write(f"Median of {repeats} repeat(s); rows/s = rows / time of the second epoch "
                "(early stopping off; includes DeMissVAE's sampler). "
                "`step_time_vs_gaussian` is the step-time ratio to the single-Gaussian encoder "
                "with the same objective (MVAE for ELBO methods, MIWAE for IWELBO methods), "
                "measured within each repeat.\n\n")
        f.write(markdown_table(summary, "{:.2f}"))
    print(summary.round(2).to_string())


if __name__ == "__main__":
    main()
