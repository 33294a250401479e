"""Would a learned mixture-of-Gaussians prior close the toy gap? (an experiment)

Usage::

    python benchmarks/toy_prior.py --seeds 0 1 2                 # 50 % MCAR training data
    python benchmarks/toy_prior.py --seeds 0 --missing-rate 0    # complete training data

Stop 18 found that most of the toy gap to the truth comes from the true mixture's small
clusters, which the model blurs. A standard-normal prior makes the decoder squeeze each
cluster into a region of the latent plane with that cluster's prior mass, and the
continuous decoder spends mass on "bridges" between the regions. A learned prior
``p(z) = sum_j pi_j N(z; m_j, diag(s_j^2))`` (``--prior-components`` J) can give each
cluster its own blob, with low prior density between them.

This is an experiment, not a feature: the package has no prior option, so the script
swaps the model class of ``MixtureVAEImputer`` for a subclass with the learned prior and
points grid integration at that prior (the two lines marked PATCH). Everything else is
``benchmarks/mog.py``'s run: default MissSIWAE with ``latent_dim=2``.

Writes ``benchmarks/results/<output>.md`` and ``.csv``.
"""

from __future__ import annotations

import argparse
import math

import pandas as pd
import torch
import torch.nn.functional as F

import skmissvae.evaluation
import skmissvae.impute._mixture_vae
from skmissvae.core.model import MissingDataVAE

from _report import SHARED_DATA
from mog import load_data, run, write_report

_LOG_2PI = math.log(2 * math.pi)


class LearnedPriorVAE(MissingDataVAE):
    """``MissingDataVAE`` whose prior is a learned diagonal-Gaussian mixture."""

    n_prior_components = 16
    latest = None  # the model built last: grid integration needs its prior

    def __init__(self, *args, generator=None, **kwargs):
        super().__init__(*args, generator=generator, **kwargs)
        shape = (self.n_prior_components, self.latent_dim)
        # Random locations break the symmetry between the prior's components.
        self.prior_loc = torch.nn.Parameter(torch.randn(shape, generator=generator))
        self.prior_raw_scale = torch.nn.Parameter(torch.full(shape, math.log(math.expm1(1.0))))
        self.prior_logits = torch.nn.Parameter(torch.zeros(self.n_prior_components))
        LearnedPriorVAE.latest = self

    def prior_log_prob(self, z):
        scale = F.softplus(self.prior_raw_scale) + 1e-3
        standard = (z.unsqueeze(-2) - self.prior_loc) / scale  # [..., J, d]
        per_component = (-0.5 * standard**2 - torch.log(scale) - 0.5 * _LOG_2PI).sum(-1)
        return torch.logsumexp(per_component + torch.log_softmax(self.prior_logits, -1), -1)

    def log_joint(self, x_filled, observed, z, generator=None):
        h = self.decode(z, generator)
        return self.likelihood.log_prob(x_filled, observed, h) + self.prior_log_prob(z)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--missing-rate", type=float, default=0.5)
    parser.add_argument("--prior-components", type=int, default=16)
    parser.add_argument("--output", default="toy_prior")
    args = parser.parse_args()

    LearnedPriorVAE.n_prior_components = args.prior_components
    skmissvae.impute._mixture_vae.MissingDataVAE = LearnedPriorVAE  # PATCH: the model class
    skmissvae.evaluation.standard_normal_log_prob = (  # PATCH: the prior of grid integration
        lambda z: LearnedPriorVAE.latest.prior_log_prob(z))

    train, test, mixture, source = load_data(SHARED_DATA, quick=False)
    rows = []
    for seed in args.seeds:
        row = run("MissSIWAE", seed, train, test, mixture, False, args.missing_rate)
        row["method"] = f"MissSIWAE, learned prior ({args.prior_components})"
        rows.append(row)
        print(row, flush=True)
    command = (f"python benchmarks/toy_prior.py --seeds {' '.join(map(str, args.seeds))} "
               f"--missing-rate {args.missing_rate} --prior-components {args.prior_components} "
               f"--output {args.output}")
    note = (f"Data: {source}; {len(train)} training rows, {args.missing_rate:.0%} MCAR; "
            f"{len(test)} complete test rows. Learned mixture prior with "
            f"{args.prior_components} components (an experiment: see the script's docstring).")
    write_report(pd.DataFrame(rows), args.output, command, note)


if __name__ == "__main__":
    main()
