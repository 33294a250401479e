"""Where the default toy model falls short of the truth, cluster by cluster.

Usage::

    python benchmarks/toy_clusters.py --seed 0                    # 50 % MCAR training data
    python benchmarks/toy_clusters.py --seed 0 --missing-rate 0   # complete training data

Fits the default estimator with ``latent_dim=2`` (as ``mog.py`` does) on the paper's toy
data and compares it with the true mixture, for each true component ``k``:

* ``share_model``: the share of the model's own samples (``z ~ N(0, I)``, ``x ~ p(x|z)``)
  that component ``k`` is the likeliest source of, against ``weight`` (the truth's share);
* ``gap``: the mean of ``log p_true(x) - log p_model(x)`` (grid integration) over the test
  rows of component ``k``, and ``gap_share``, its contribution to the overall gap;
* ``decoder_scale``: the median standard deviation of ``p(x|z)`` over the model's samples
  of component ``k`` (median over samples, then over columns, in column standard
  deviations), against ``ppca_noise``: the noise standard deviation of the component's
  best probabilistic-PCA model with a 2-D latent (Tipping & Bishop, 1999: the root of the
  mean of its three smallest covariance eigenvalues), what a decoder needs locally to
  match the cluster. A decoder noise much wider than that blurs the cluster.

Writes ``benchmarks/results/toy_clusters_<stem>.md`` and ``.csv``.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import torch

from skmissvae import MixtureVAEImputer
from skmissvae.datasets import make_mcar
from skmissvae.evaluation import grid_log_likelihood

from _report import SHARED_DATA, markdown_table, save_report
from mog import SMALL_CLUSTER, likeliest_component, load_data

N_MODEL_SAMPLES = 100_000


def model_samples(imputer, n_samples: int, seed: int):
    """Draws from the fitted model in data units, and the decoder's scales (standardised)."""
    generator = torch.Generator().manual_seed(seed)
    model = imputer.model_
    with torch.no_grad():
        z = torch.randn(n_samples, model.latent_dim, generator=generator)
        loc, scale = model.likelihood.params(model.decode(z))
        x = loc + scale * torch.randn(loc.shape, generator=generator)
    return x.numpy() * imputer.scale_ + imputer.mean_, scale.numpy()


def cluster_table(imputer, mixture, test, seed: int) -> pd.DataFrame:
    gap = mixture.log_likelihood(test) - grid_log_likelihood(imputer, test)
    test_cluster = likeliest_component(mixture, test)
    samples, scales = model_samples(imputer, N_MODEL_SAMPLES, seed)
    sample_cluster = likeliest_component(mixture, samples)
    standardised = mixture.covariances / np.outer(imputer.scale_, imputer.scale_)
    rows = []
    for k in np.argsort(-mixture.weights):
        mine = sample_cluster == k
        rows.append({
            "component": int(k),
            "weight": mixture.weights[k],
            "share_model": mine.mean(),
            "test_rows": int((test_cluster == k).sum()),
            "gap": gap[test_cluster == k].mean() if (test_cluster == k).any() else np.nan,
            "gap_share": gap[test_cluster == k].sum() / len(test),
            "decoder_scale": float(np.median(np.median(scales[mine], axis=0))) if mine.any() else np.nan,
            "ppca_noise": float(np.sqrt(np.linalg.eigvalsh(standardised[k])[:-2].mean())),
        })
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--missing-rate", type=float, default=0.5)
    args = parser.parse_args()
    train, test, mixture, source = load_data(SHARED_DATA, quick=False)
    X_train = train if args.missing_rate == 0 else make_mcar(
        train, args.missing_rate, drop_empty_rows=True, random_state=args.seed)[0]
    imputer = MixtureVAEImputer(latent_dim=2, random_state=args.seed).fit(X_train)
    table = cluster_table(imputer, mixture, test, args.seed)
    stem = f"toy_clusters_s{args.seed}_mis{round(100 * args.missing_rate)}"
    command = f"python benchmarks/toy_clusters.py --seed {args.seed} --missing-rate {args.missing_rate}"
    total_gap = table["gap_share"].sum()
    small = table["weight"] < SMALL_CLUSTER
    body = (
        f"Data: {source}; {args.missing_rate:.0%} MCAR training data. Default "
        f"MixtureVAEImputer with latent_dim=2, seed {args.seed}; {N_MODEL_SAMPLES:,} model "
        f"samples. Gap to the truth: {total_gap:.3f} nats, of which "
        f"{table.loc[small, 'gap_share'].sum():.3f} from the rows of the components with "
        f"weight < {SMALL_CLUSTER} ({table.loc[small, 'weight'].sum():.0%} of the mass).\n\n"
        + markdown_table(table.set_index("component"), floatfmt="{:.3f}")
    )
    save_report(stem, table, "Toy data: the default model against the truth, cluster by cluster",
                command, body)
    print(table.round(3).to_string(index=False))


if __name__ == "__main__":
    main()
