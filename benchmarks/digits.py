"""The paper's image experiment in small: binarised 8x8 digits with two quadrants missing.

Simkus & Gutmann (TMLR 2024) fit VAEs to binarised MNIST with parts of every image missing
and compare the seven methods by the log-likelihood of complete test images. This benchmark
does the same on scikit-learn's ``load_digits``, which ships with scikit-learn (no download):

* data: the 1,797 images of 8x8 pixels (values 0-16), binarised at >= 8, so 64 binary
  (Bernoulli) columns; split at random into 1,297 training and 500 test images; in every
  image two of its four 4x4 quadrants are hidden, the pair drawn uniformly at random per
  image (6 possible pairs). The split and the masks come from ``--data-seed`` and are the
  same for every method and seed: the seeds vary only the fits.
* methods: MVAE, MIWAE, MissVAE, MissSVAE, MissIWAE, MissSIWAE (``skmissvae.METHODS``,
  ``MixtureVAEImputer``) and DeMissVAE (``DeMissVAEImputer``), all with every column
  declared ``"binary"``, the estimators' default networks (latent 16, two residual blocks
  of width 128), budget 5 (mixture components = particles = imputations), the same number
  of epochs (``--epochs``, no early stopping, cosine schedule) and one torch thread.
  DeMissVAE refreshes its imputations by pseudo-Gibbs sampling, which costs about as much
  per epoch as the others; ``--methods`` also offers ``DeMissVAE-LAIR-toy`` (the paper's
  toy LAIR setting: T=1, no prior proposal, no final resampling; as cheap) and
  ``DeMissVAE-LAIR`` (the estimator's default LAIR, T=10: several times slower).
* test log-likelihood of the complete test images, by the paper's protocol
  (``skmissvae.evaluation.refit_test_log_likelihood``): the decoder frozen, a copy of the
  encoder refitted on the test images with an IWELBO of 50 samples, then an IWELBO with
  ``--score-samples`` importance samples; for comparison ``score_samples`` with the trained
  encoder (same number of samples), whose gap to the refitted value is the encoder's
  inference gap on complete images;
* imputation of the hidden pixels of the (masked) test images: the accuracy of
  ``transform`` (the more probable level under ``p(x_m | x_o)``) and the Brier score of the
  conditional probabilities, estimated from ``--draws`` draws of ``sample_imputations``
  with the finite-draw bias removed (``(p - x)^2 - p (1 - p) / (M - 1)`` for the draw mean
  ``p`` of M draws, unbiased for the squared error of the model's probability);
* fit time.

Usage::

    python benchmarks/digits.py               # 7 methods x seeds 0 1 2, about 35 minutes on one core
    python benchmarks/digits.py --quick       # smoke run: seed 0, 5 epochs, small evaluation
    python benchmarks/digits.py --seeds 0 --methods MVAE MissSIWAE --epochs 100
    python benchmarks/digits.py --methods DeMissVAE-LAIR-toy   # DeMissVAE with LAIR instead

Writes ``benchmarks/results/digits.md``, ``.csv`` and ``.png`` (``digits_quick.*`` with
``--quick``): the table (median [min, max] over seeds), the paper's findings checked, and a
picture of test images (truth, masked input, the conditional probabilities of the hidden
pixels and draws) from the best method's seed-0 fit. ``--merge`` only re-renders the
report from saved CSVs (without the picture).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.datasets import load_digits

from skmissvae import METHODS, DeMissVAEImputer, MixtureVAEImputer
from skmissvae.evaluation import refit_test_log_likelihood

from _report import RESULTS, header, markdown_table
from _variants import ELBO_METHODS, IW_PAIRS, MIXTURE_PAIRS, STRATIFIED_PAIRS, VARIANTS

TITLE = "Binarised digits with two quadrants missing: the seven methods"
ORDER = [*METHODS, "DeMissVAE"]  # the seven methods of the paper, the default
N_TEST = 500
SIDE = 8  # image side in pixels
# DeMissVAE's settings by name: pseudo-Gibbs by default, and the two LAIR variants.
DEMISS = {name: VARIANTS[variant][1] for name, variant in (
    ("DeMissVAE", "DeMissVAE-pseudo-Gibbs"), ("DeMissVAE-LAIR-toy", "DeMissVAE-LAIR-toy"),
    ("DeMissVAE-LAIR", "DeMissVAE-LAIR"))}
CHOICES = [*ORDER, "DeMissVAE-LAIR-toy", "DeMissVAE-LAIR"]


def load_data(data_seed: int):
    """``(train, test, train_missing, test_missing)``: complete binary images ``[N, 64]`` and
    copies with two of the four quadrants of every image set to NaN."""
    images = (load_digits().data >= 8).astype(np.float64)
    rng = np.random.default_rng(data_seed)
    order = rng.permutation(len(images))
    quadrant = np.zeros((4, SIDE, SIDE), dtype=bool)  # top left, top right, bottom left, bottom right
    half = SIDE // 2
    for q in range(4):
        quadrant[q, (q // 2) * half:(q // 2 + 1) * half, (q % 2) * half:(q % 2 + 1) * half] = True
    quadrant = quadrant.reshape(4, -1)
    hidden_pairs = np.array([rng.choice(4, size=2, replace=False) for _ in range(len(images))])
    missing = quadrant[hidden_pairs[:, 0]] | quadrant[hidden_pairs[:, 1]]  # [N, 64]
    masked = np.where(missing, np.nan, images)
    test, train = order[:N_TEST], order[N_TEST:]
    return images[train], images[test], masked[train], masked[test]


def make_imputer(method: str, seed: int, args):
    common = dict(column_types={j: "binary" for j in range(SIDE * SIDE)}, max_iter=args.epochs,
                  early_stopping=False, n_impute_samples=args.impute_samples,
                  min_effective_samples=None,  # every importance sample, as the report says
                  random_state=seed, device="cpu", n_jobs=1)
    if method in DEMISS:
        return DeMissVAEImputer(**DEMISS[method], **common)
    return MixtureVAEImputer(**METHODS[method], **common)


def brier_from_draws(draws: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Unbiased estimate of ``(p - truth)^2`` per entry, ``p`` the probability the draws
    ``[M, ...]`` are Bernoulli samples of (conditionally independent given the importance
    samples, as in sampling-importance resampling)."""
    m = len(draws)
    p = draws.mean(axis=0)
    return (p - truth) ** 2 - p * (1 - p) / (m - 1)


def run_one(method, seed, data, args):
    train, test, train_missing, test_missing = data
    imputer = make_imputer(method, seed, args)
    start = time.perf_counter()
    imputer.fit(train_missing)
    fit_time = time.perf_counter() - start
    # Set after fit: fit's final finiteness check scores training rows with n_score_samples.
    imputer.set_params(n_score_samples=args.score_samples)
    start = time.perf_counter()
    refit = refit_test_log_likelihood(
        imputer, test, n_refit_epochs=args.refit_epochs, n_importance_samples=args.score_samples,
        learning_rate=args.refit_lr, random_state=seed)
    trained = imputer.score_samples(test)
    hidden = np.isnan(test_missing)
    imputed = imputer.transform(test_missing)
    draws = imputer.sample_imputations(test_missing, args.draws)
    eval_time = time.perf_counter() - start
    row = {
        "method": method,
        "seed": seed,
        "test_ll_refit": float(refit.mean()),
        "test_ll_trained_encoder": float(trained.mean()),
        "accuracy": float((imputed[hidden] == test[hidden]).mean()),
        "brier": float(brier_from_draws(draws[:, hidden], test[hidden]).mean()),
        "fit_time_s": fit_time,
        "eval_time_s": eval_time,
        "epochs": imputer.n_iter_,
        "final_loss": float(imputer.loss_curve_[-1]),
    }
    return row, imputer, draws


def summary_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Median [min, max] over seeds per method, in the paper's order."""
    def spread(values: pd.Series, fmt: str) -> str:
        if len(values) == 1:
            return fmt.format(values.iloc[0])
        return f"{fmt.format(values.median())} [{fmt.format(values.min())}, {fmt.format(values.max())}]"

    rows = {}
    for method, group in frame.groupby("method", sort=False):
        rows[method] = {
            "seeds": " ".join(map(str, sorted(group["seed"]))),
            "test LL (refit encoder)": spread(group["test_ll_refit"], "{:.2f}"),
            "test LL (trained encoder)": spread(group["test_ll_trained_encoder"], "{:.2f}"),
            "accuracy": spread(group["accuracy"], "{:.4f}"),
            "Brier": spread(group["brier"], "{:.4f}"),
            "fit s": f"{group['fit_time_s'].median():.0f}",
        }
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "method"
    return table.loc[[m for m in CHOICES if m in table.index]]


def findings(frame: pd.DataFrame) -> list[str]:
    """The paper's findings, each checked on the medians over seeds of the refitted test LL."""
    ll = frame.groupby("method")["test_ll_refit"]
    median, spread = ll.median(), ll.max() - ll.min()
    lines = []

    def have(*methods):
        return all(m in median.index for m in methods)

    def fmt(m):
        return f"{m} {median[m]:.2f}"

    if have("MVAE", "MIWAE", "MissVAE", "MissSVAE", "MissIWAE", "MissSIWAE"):
        pairs = IW_PAIRS
        wins = [iw for iw, elbo in pairs if median[iw] > median[elbo]]
        worst_iw = min(median[m] for m in ("MIWAE", "MissIWAE", "MissSIWAE"))
        best_elbo = max(median[m] for m in ELBO_METHODS)
        lines.append(
            f"- IWELBO family beats ELBO family: **{'holds' if len(wins) == 3 else 'does not hold'}** "
            f"({len(wins)} of 3 pairs; " + ", ".join(f"{fmt(iw)} vs {fmt(elbo)}" for iw, elbo in pairs)
            + f"; the worst IWELBO method {'is above' if worst_iw > best_elbo else 'is not above'} "
            "the best ELBO method).")
    pairs = [(mix, single) for mix, single in MIXTURE_PAIRS if have(mix, single)]
    if pairs:
        wins = [mix for mix, single in pairs if median[mix] > median[single]]
        lines.append(
            f"- Each mixture beats its single-Gaussian counterpart: "
            f"**{'holds' if len(wins) == len(pairs) else 'does not hold'}** "
            f"({len(wins)} of {len(pairs)}: " + ", ".join(
                f"{mix} {median[mix] - median[single]:+.2f} nats vs {single}" for mix, single in pairs) + ").")
    pairs = [(s, a) for s, a in STRATIFIED_PAIRS if have(s, a)]
    if pairs and frame["seed"].nunique() > 1:
        stable = [s for s, a in pairs if spread[s] <= spread[a]]
        lines.append(
            f"- Stratified more stable than ancestral (range of the test LL over seeds): "
            f"**{'holds' if len(stable) == len(pairs) else 'does not hold'}** ("
            + "; ".join(f"{s} {spread[s]:.2f} vs {a} {spread[a]:.2f} nats, median "
                        f"{median[s] - median[a]:+.2f} nats" for s, a in pairs) + ").")
    elif pairs:
        lines.append("- Stratified more stable than ancestral: not checked (one seed).")
    elbo = [m for m in ELBO_METHODS if m in median.index]
    if "DeMissVAE" in median.index and elbo:
        best_other = max(elbo, key=median.get)
        gap = median["DeMissVAE"] - median[best_other]
        noise = (spread.get("DeMissVAE", 0) + spread.get(best_other, 0)) / 2
        verdict = "best" if gap > noise else ("tied" if gap >= -noise else "behind")
        lines.append(
            f"- DeMissVAE best or tied among ELBO methods: **{'holds' if verdict != 'behind' else 'does not hold'}** "
            f"({verdict}: {fmt('DeMissVAE')} vs {fmt(best_other)}, {gap:+.2f} nats; tied means within "
            f"half the summed ranges over seeds, {noise:.2f} nats" + "".join(
                f"; {fmt(m)}" for m in ("DeMissVAE-LAIR-toy", "DeMissVAE-LAIR") if m in median.index)
            + ").")
    return lines or ["- not checked: the methods they compare were not run."]


def plot(best: str, test, test_missing, imputer, draws, path: Path, n_images: int = 10) -> None:
    """Truth, masked input, conditional probabilities and two draws for a few test images."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    half = SIDE // 2
    hidden = np.isnan(test_missing[:n_images])
    probability = np.where(hidden, draws[:, :n_images].mean(axis=0), test[:n_images])
    masked = np.where(hidden, 0.5, test_missing[:n_images])
    rows = [("truth", test[:n_images], "gray_r"), ("input (hidden: grey)", masked, "gray_r"),
            (f"P(pixel on), {len(draws)} draws", probability, "gray_r"),
            ("draw 1", draws[0, :n_images], "gray_r"), ("draw 2", draws[1, :n_images], "gray_r")]
    fig, axes = plt.subplots(len(rows), n_images, figsize=(1.1 * n_images, 1.2 * len(rows) + 0.4))
    for r, (label, images, cmap) in enumerate(rows):
        for i in range(n_images):
            ax = axes[r, i]
            ax.imshow(images[i].reshape(SIDE, SIDE), cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
            for q in range(4):  # outline the hidden quadrants
                top, left = (q // 2) * half, (q % 2) * half
                if hidden[i].reshape(SIDE, SIDE)[top, left]:
                    ax.add_patch(Rectangle((left - 0.45, top - 0.45), half - 0.1, half - 0.1, fill=False,
                                           edgecolor="tab:red", lw=1.2))
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(label, fontsize=7, rotation=0, ha="right", va="center")
    fig.suptitle(f"Test digits, two quadrants hidden: {best} (seed 0); hidden quadrants outlined", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(frame: pd.DataFrame, stem: str, command: str, note: str, wall_time=None) -> str:
    RESULTS.mkdir(exist_ok=True)
    frame.to_csv(RESULTS / f"{stem}.csv", index=False)
    table = summary_table(frame)
    best = frame.groupby("method")["test_ll_refit"].median().idxmax()
    body = (
        f"{note}\n\nMedian [min, max] over seeds. `test LL`: mean log-likelihood (nats per "
        "image, higher is better) of the 500 complete test images, by an IWELBO with the "
        "encoder refitted on them (the paper's protocol) and with the trained encoder; "
        "`accuracy`: share of the hidden test pixels whose more probable level under the "
        "model (`transform`) is right; `Brier`: mean squared error of the model's probability "
        "of the hidden pixels (lower is better); `fit s`: median fit time.\n\n"
        + markdown_table(table)
        + "\nThe paper's findings (on the medians of the refitted test LL):\n\n"
        + "\n".join(findings(frame))
        + f"\n\nBest method by median test LL: {best}.\n"
    )
    if (RESULTS / f"{stem}.png").exists():
        body += f"\n![test digits]({stem}.png)\n"
    (RESULTS / f"{stem}.md").write_text(header(TITLE, command, wall_time) + body)
    print(table.to_string())
    print("\n".join(findings(frame)))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=ORDER, choices=CHOICES,
                        help="default: the seven methods of the paper")
    parser.add_argument("--epochs", type=int, default=500, help="training epochs (no early stopping)")
    parser.add_argument("--refit-epochs", type=int, default=50, help="epochs of the encoder refit on the test images")
    parser.add_argument("--refit-lr", type=float, default=1e-4, help="initial learning rate of the encoder refit")
    parser.add_argument("--score-samples", type=int, default=5000,
                        help="importance samples of the test log-likelihood")
    parser.add_argument("--impute-samples", type=int, default=1000, help="importance samples for imputation")
    parser.add_argument("--draws", type=int, default=100, help="draws of sample_imputations for the Brier score")
    parser.add_argument("--data-seed", type=int, default=0, help="seed of the split and the masks")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--output", default="digits", help="results file stem")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: seed 0, 5 epochs, refit 2 epochs, 200 score samples, 20 draws")
    parser.add_argument("--merge", nargs="+", metavar="STEM", help="only re-render: combine results/STEM.csv files")
    parser.add_argument("--note", default="", help="extra sentence for the report")
    args = parser.parse_args()
    command = ("python benchmarks/digits.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])).strip()
    torch.set_num_threads(args.threads)
    if args.merge:
        frame = pd.concat([pd.read_csv(RESULTS / f"{stem}.csv") for stem in args.merge], ignore_index=True)
        write_report(frame, args.output, command, args.note)
        return
    if args.quick:
        args.seeds, args.epochs, args.refit_epochs = [0], 5, 2
        args.score_samples, args.impute_samples, args.draws = 200, 200, 20
    stem = args.output + ("_quick" if args.quick else "")
    start = time.perf_counter()
    data = load_data(args.data_seed)
    train, test, train_missing, test_missing = data
    rows, kept = [], {}
    for seed in args.seeds:
        for method in args.methods:
            row, imputer, draws = run_one(method, seed, data, args)
            rows.append(row)
            if seed == args.seeds[0]:
                kept[method] = (imputer, draws)
            print({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}, flush=True)
            pd.DataFrame(rows).to_csv(RESULTS / f"{stem}_partial.csv", index=False)
    frame = pd.DataFrame(rows)
    best = frame.groupby("method")["test_ll_refit"].median().idxmax()
    plot(best, test, test_missing, *kept[best], RESULTS / f"{stem}.png")
    batches = -(-len(train) // 128)
    # Reference: each hidden pixel imputed with its column's most frequent observed training level.
    mode = (np.nanmean(train_missing, axis=0) >= 0.5).astype(float)
    hidden = np.isnan(test_missing)
    mode_accuracy = float((np.broadcast_to(mode, test.shape)[hidden] == test[hidden]).mean())
    note = (
        f"Data: scikit-learn's `load_digits`, pixels binarised at >= 8 of 16 ({train.mean():.1%} of "
        f"training pixels on); {len(train)} training and {len(test)} test images (split and masks from "
        f"data seed {args.data_seed}); two of the four 4x4 quadrants of every image hidden (50 % of the "
        f"pixels). Budget, the same for every method: {args.epochs} epochs of batch 128 "
        f"({args.epochs * batches:,} optimiser steps), no early stopping, cosine schedule, estimator "
        "defaults otherwise (latent 16, 2 residual blocks of width 128, 5 components / particles / "
        "imputations), one torch thread. DeMissVAE: pseudo-Gibbs sampler; DeMissVAE-LAIR-toy: "
        f"{DEMISS['DeMissVAE-LAIR-toy']}; DeMissVAE-LAIR: the estimator's LAIR defaults. Test LL: "
        f"encoder refitted for {args.refit_epochs} epochs (IWELBO, 50 samples, learning rate "
        f"{args.refit_lr:g}), then {args.score_samples:,} importance samples; imputation with "
        f"{args.impute_samples:,} importance samples, Brier score from {args.draws} draws. Reference: imputing each hidden pixel with its column's most "
        f"frequent observed training level gives accuracy {mode_accuracy:.4f}. Seeds "
        f"{' '.join(map(str, args.seeds))}. " + args.note)
    pd.DataFrame(rows).to_csv(RESULTS / f"{stem}_partial.csv", index=False)
    write_report(frame, stem, command, note.strip(), time.perf_counter() - start)
    (RESULTS / f"{stem}_partial.csv").unlink()


if __name__ == "__main__":
    main()
