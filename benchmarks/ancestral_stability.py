"""Why ancestral mixtures train unstably with STL, and what the total gradient changes.

Usage::

    python benchmarks/ancestral_stability.py             # 8,000 toy rows, 30 epochs
    python benchmarks/ancestral_stability.py --quick

Fits MissVAE (5 components, ELBO, ancestral sampling with implicit reparameterisation) on
the paper's toy data (50 % MCAR; the package's generated mixture when the paper's file is
absent) with each encoder-gradient estimator, and records per epoch: the training loss,
the median / 99th percentile / maximum of the global gradient norm before clipping, and the
smallest encoder component scale on a probe batch. Writes
``benchmarks/results/ancestral_stability.md`` and ``.csv``.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import torch

from skmissvae import MixtureVAEImputer
from skmissvae.datasets import make_mcar

from _report import RESULTS, header, markdown_table
from mog import SHARED_DATA, load_data



class GradientNormRecorder:
    """Wraps ``torch.nn.utils.clip_grad_norm_`` to keep the norms it returns."""

    def __init__(self):
        self.norms, self._original = [], torch.nn.utils.clip_grad_norm_

    def __enter__(self):
        def recording(parameters, max_norm, *args, **kwargs):
            norm = self._original(parameters, max_norm, *args, **kwargs)
            self.norms.append(float(norm))
            return norm

        torch.nn.utils.clip_grad_norm_ = recording
        return self

    def __exit__(self, *exc):
        torch.nn.utils.clip_grad_norm_ = self._original

    def pop(self) -> np.ndarray:
        norms, self.norms = np.array(self.norms), []
        return norms


def run(estimator_name: str, X: np.ndarray, epochs: int, seed: int) -> list[dict]:
    probe = X[:512]
    rows = []
    with GradientNormRecorder() as recorder:
        def record(imputer, info):
            x, observed = imputer._to_tensors(np.nan_to_num(probe), ~np.isnan(probe), torch.device("cpu"))
            with torch.no_grad():
                scale = imputer.model_.encode(x, observed).scale
            norms = recorder.pop()
            rows.append({"gradient_estimator": estimator_name, "epoch": info["epoch"],
                         "loss": info["loss"], "grad_norm_median": np.median(norms),
                         "grad_norm_p99": np.percentile(norms, 99), "grad_norm_max": norms.max(),
                         "min_component_scale": scale.min().item()})
            return False

        MixtureVAEImputer(
            n_components=5, objective="elbo", sampling="ancestral", latent_dim=2,
            gradient_estimator=estimator_name, max_iter=epochs, early_stopping=False,
            random_state=seed, callbacks=[record],
        ).fit(X)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rows", type=int, default=8_000)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows_used, epochs = (1_000, 3) if args.quick else (args.rows, args.epochs)
    train, _, _, source = load_data(SHARED_DATA, quick=False)
    X = make_mcar(train[:rows_used], 0.5, drop_empty_rows=True, random_state=args.seed)[0]
    frame = pd.DataFrame([row for name in ("stl", "total") for row in run(name, X, epochs, args.seed)])
    stem = "ancestral_stability" + ("_quick" if args.quick else "")
    RESULTS.mkdir(exist_ok=True)
    frame.to_csv(RESULTS / f"{stem}.csv", index=False)
    command = "python benchmarks/ancestral_stability.py" + (
        " --quick" if args.quick else f" --rows {args.rows} --epochs {args.epochs} --seed {args.seed}")
    wide = frame.pivot(index="epoch", columns="gradient_estimator",
                       values=["loss", "grad_norm_p99", "min_component_scale"])
    wide.columns = [f"{value} ({name})" for value, name in wide.columns]
    with open(RESULTS / f"{stem}.md", "w") as f:
        f.write(header("Ancestral mixture training: STL against the total gradient", command))
        f.write(f"MissVAE (K=5, ELBO, ancestral), latent 2, estimator defaults otherwise; "
                f"{len(X)} rows of {source}, 50 % MCAR; gradient norms before clipping.\n\n")
        f.write(markdown_table(wide))
    print(wide.round(4).to_string())


if __name__ == "__main__":
    main()
