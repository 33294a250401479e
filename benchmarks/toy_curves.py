"""Learning curves on the paper's toy data: grid log-likelihood against training time.

Fits the default estimator (MissSIWAE, ``latent_dim=2``) on the 50 %-MCAR toy training set
under several training settings, and every ``max_iter / 20`` epochs records the mean
log-likelihood of the complete test rows by grid integration (200 x 200 on [-8, 8)^2;
evaluation time is excluded from the training time). It answers: which settings reach
which quality how fast, and does the curve still climb when training ends?

Usage::

    python benchmarks/toy_curves.py --run default='{}' lr3e-3='{"learning_rate": 3e-3}'
    python benchmarks/toy_curves.py --run paper='{"hidden_width": 200, "n_hidden_blocks": 3,
        "batch_size": 64, "lr_schedule": "constant", "clip_grad_norm": 10.0, "max_iter": 500,
        "early_stopping": false}'
    python benchmarks/toy_curves.py --report     # only re-render from results/toy_curves.csv

Each run appends to ``benchmarks/results/toy_curves.csv``; the report (``.md`` and
``.png``) covers every run in that file. Needs ``../shared/data/mog2_large.npz``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from skmissvae import MixtureVAEImputer
from skmissvae.datasets import make_mcar
from skmissvae.evaluation import grid_log_likelihood

from _report import RESULTS, SHARED_DATA, header, markdown_table

TRUE_LOGLIK = -2.0946  # the paper's value for this data set


class Curve:
    """Callback: coarse-grid test log-likelihood every ``every`` epochs, timed apart."""

    def __init__(self, X_test, every: int):
        self.X_test, self.every = X_test, every
        self.eval_time, self.points = 0.0, []

    def __call__(self, imputer, info):
        if info["epoch"] % self.every == 0:
            start = time.perf_counter()
            value = float(grid_log_likelihood(imputer, self.X_test, grid_size=200, bound=8.0).mean())
            self.points.append((info["epoch"], info["elapsed"] - self.eval_time, value))
            self.eval_time += time.perf_counter() - start
        return False


def run(label: str, settings: dict, train, test, seed: int) -> pd.DataFrame:
    X_train = make_mcar(train, 0.5, drop_empty_rows=True, random_state=seed)[0]
    curve = Curve(test, every=max(1, settings.get("max_iter", 200) // 20))
    imputer = MixtureVAEImputer(latent_dim=2, random_state=seed, callbacks=[curve], **settings)
    imputer.fit(X_train)
    final = float(grid_log_likelihood(imputer, test).mean())  # 500 x 500 grid, restored weights
    frame = pd.DataFrame(curve.points, columns=["epoch", "train_time_s", "grid_loglik"])
    frame.insert(0, "label", label)
    frame["settings"] = json.dumps(settings, sort_keys=True)
    frame["seed"] = seed
    frame["final_grid_loglik"] = final
    frame["final_epochs"] = imputer.n_iter_
    return frame


def write_report(frame: pd.DataFrame, stem: str, command: str, note: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    last = frame.groupby("label").tail(1).set_index("label")
    summary = pd.DataFrame({
        "settings": last["settings"],
        "epochs": last["final_epochs"],
        "train_time_s": last["train_time_s"],
        "final_grid_loglik": last["final_grid_loglik"],
        "gap_to_truth": last["final_grid_loglik"] - TRUE_LOGLIK,
    })
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for label, sub in frame.groupby("label", sort=False):
        ax.plot(sub["train_time_s"], sub["grid_loglik"], marker=".", label=label)
    ax.axhline(TRUE_LOGLIK, color="k", lw=0.8, ls="--", label="true model")
    ax.axhline(TRUE_LOGLIK - 0.10, color="grey", lw=0.8, ls=":", label="target")
    ax.set(xlabel="training time (s, one thread)", ylabel="test log-likelihood (grid)", ylim=(-4.2, -2.0))
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(RESULTS / f"{stem}.png", dpi=110)
    plt.close(fig)
    with open(RESULTS / f"{stem}.md", "w") as f:
        f.write(header("Toy data: learning curves of the default estimator (MissSIWAE, latent 2)", command))
        f.write(
            "50 % MCAR toy training rows (rows left fully missing dropped), seed 0; grid "
            "log-likelihood of the complete test rows (curve: 200 x 200 grid; final: 500 x 500 "
            f"after the best weights are restored). True model {TRUE_LOGLIK} nats; target within "
            "0.10. Each run is a single thread; runs shared the 2-core machine two or three at a "
            "time, so times carry about 20 % noise.\n\n"
        )
        if note:
            f.write(note + "\n\n")
        f.write(markdown_table(summary, "{:.3f}"))
        f.write(f"\n![curves]({stem}.png)\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", nargs="+", default=[], metavar="LABEL=JSON",
                        help="a labelled set of estimator settings, e.g. lr='{\"learning_rate\": 3e-3}'")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, default=SHARED_DATA)
    parser.add_argument("--output", default="toy_curves", help="results file stem")
    parser.add_argument("--report", action="store_true", help="only re-render the report")
    parser.add_argument("--note", default="", help="extra paragraph for the report (how the runs were made)")
    args = parser.parse_args()
    command = "python benchmarks/toy_curves.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    csv = RESULTS / f"{args.output}.csv"
    if not args.report:
        if not args.data.exists():
            sys.exit(f"{args.data} not found: this benchmark needs the paper's toy data.")
        data = np.load(args.data)
        for item in args.run:
            label, _, settings = item.partition("=")
            frame = run(label, json.loads(settings or "{}"), data["train"], data["test"], args.seed)
            print(frame.tail(1).to_string(index=False), flush=True)
            RESULTS.mkdir(exist_ok=True)
            frame.to_csv(csv, mode="a", header=not csv.exists(), index=False)
    if csv.exists():
        write_report(pd.read_csv(csv), args.output, command, args.note)


if __name__ == "__main__":
    main()
