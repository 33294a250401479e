"""Shared fixtures for the tests of ``skmissvae.core``.

The centrepiece is a linear-Gaussian model whose marginal and posterior are known in closed
form: ``z ~ N(0, I_d)``, ``x | z ~ N(W z + b, sigma^2 I_D)``, so that for the observed part
``log p(x_o) = log N(x_o; b_o, W_o W_o^T + sigma^2 I)`` and
``p(z | x_o) = N(C W_o^T (x_o - b_o) / sigma^2, C)``, ``C = (I + W_o^T W_o / sigma^2)^{-1}``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch
from torch import Tensor, nn

from skmissvae.core.likelihoods import SCALE_FLOOR
from skmissvae.core.model import MissingDataVAE


class LinearGaussianDecoder(nn.Module):
    """Decoder output ``[W z + b, raw_scale]`` with ``softplus(raw_scale) + 1e-5 == sigma``."""

    def __init__(self, weight: Tensor, bias: Tensor, sigma: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight.clone())  # [D, d]
        self.bias = nn.Parameter(bias.clone())  # [D]
        target = sigma - SCALE_FLOOR
        raw = target + math.log(-math.expm1(-target))  # inverse softplus, stable
        self.register_buffer("raw_scale", torch.full_like(bias, raw))

    def forward(self, z: Tensor, generator: torch.Generator | None = None) -> Tensor:
        loc = z @ self.weight.T + self.bias  # [..., B, D]
        return torch.cat([loc, self.raw_scale.expand_as(loc)], -1)  # [..., B, 2D]


class FullGaussian:
    """Full-covariance Gaussian proposal ``N(loc, cov)`` per row, with ``sample``/``log_prob``."""

    def __init__(self, loc: Tensor, cov: Tensor) -> None:
        self.loc = loc  # [B, d]
        self.scale_tril = torch.linalg.cholesky(cov)  # [B, d, d]

    def detach(self) -> "FullGaussian":
        return self

    def sample(self, sample_shape=(), generator=None) -> Tensor:
        shape = torch.Size(sample_shape) + self.loc.shape
        eps = torch.randn(shape, generator=generator, dtype=self.loc.dtype)
        return self.loc + (self.scale_tril @ eps.unsqueeze(-1)).squeeze(-1)

    rsample = sample

    def log_prob(self, z: Tensor) -> Tensor:
        dist = torch.distributions.MultivariateNormal(self.loc, scale_tril=self.scale_tril)
        return dist.log_prob(z)


@dataclass
class LinearGaussianProblem:
    weight: Tensor  # [D, d]
    bias: Tensor  # [D]
    sigma: float
    x: Tensor  # [B, D] complete data
    x_filled: Tensor  # [B, D] zeros at missing positions
    observed: Tensor  # [B, D] bool

    @property
    def n_features(self) -> int:
        return self.weight.shape[0]

    @property
    def latent_dim(self) -> int:
        return self.weight.shape[1]

    def model(self, n_components: int = 1, seed: int = 0) -> MissingDataVAE:
        """A float64 MissingDataVAE (random encoder) with the linear-Gaussian decoder."""
        generator = torch.Generator().manual_seed(seed)
        model = MissingDataVAE(
            self.n_features,
            self.latent_dim,
            n_components=n_components,
            width=16,
            n_blocks=1,
            generator=generator,
        ).double()
        model.decoder = LinearGaussianDecoder(self.weight, self.bias, self.sigma)
        model.eval()
        return model

    def _row(self, n: int):
        o = self.observed[n]
        w_o = self.weight[o]  # [D_o, d]
        s2 = self.sigma**2
        precision = torch.eye(self.latent_dim, dtype=w_o.dtype) + w_o.T @ w_o / s2
        cov = torch.linalg.inv(precision)
        mean = cov @ w_o.T @ (self.x[n, o] - self.bias[o]) / s2
        return o, w_o, mean, cov

    def exact_log_marginal(self) -> Tensor:
        """``log p(x_o)`` per row, shape ``[B]``."""
        out = []
        for n in range(len(self.x)):
            o, w_o, _, _ = self._row(n)
            cov = w_o @ w_o.T + self.sigma**2 * torch.eye(len(w_o), dtype=w_o.dtype)
            dist = torch.distributions.MultivariateNormal(self.bias[o], cov)
            out.append(dist.log_prob(self.x[n, o]))
        return torch.stack(out)

    def exact_posterior(self) -> FullGaussian:
        """``p(z | x_o)`` for every row as a full-covariance Gaussian."""
        means, covs = zip(*(self._row(n)[2:] for n in range(len(self.x))), strict=True)
        return FullGaussian(torch.stack(means), torch.stack(covs))

    def exact_conditional(self) -> tuple[Tensor, Tensor]:
        """Mean ``[B, D]`` and marginal variance ``[B, D]`` of ``x | x_o``.

        Observed entries have their observed value and variance 0.
        """
        means, variances = [], []
        for n in range(len(self.x)):
            o, _, z_mean, z_cov = self._row(n)
            mean = self.weight @ z_mean + self.bias
            var = torch.diagonal(self.weight @ z_cov @ self.weight.T) + self.sigma**2
            means.append(torch.where(o, self.x[n], mean))
            variances.append(torch.where(o, torch.zeros_like(var), var))
        return torch.stack(means), torch.stack(variances)


@pytest.fixture
def linear_gaussian() -> LinearGaussianProblem:
    """D=5 features, d=2 latents, sigma=0.5, 8 rows each with observed and missing entries."""
    return make_linear_gaussian()


def make_linear_gaussian() -> LinearGaussianProblem:
    generator = torch.Generator().manual_seed(1234)
    n_features, latent_dim, sigma = 5, 2, 0.5
    weight = torch.randn(n_features, latent_dim, generator=generator, dtype=torch.float64)
    bias = torch.randn(n_features, generator=generator, dtype=torch.float64)
    z = torch.randn(8, latent_dim, generator=generator, dtype=torch.float64)
    noise = torch.randn(8, n_features, generator=generator, dtype=torch.float64)
    x = z @ weight.T + bias + sigma * noise
    observed = torch.tensor(
        [
            [1, 1, 1, 1, 0],
            [0, 1, 1, 1, 1],
            [1, 0, 1, 0, 1],
            [1, 1, 0, 0, 0],
            [0, 0, 0, 1, 1],
            [0, 0, 1, 0, 0],
            [1, 0, 0, 0, 0],
            [0, 1, 1, 1, 0],
        ],
        dtype=torch.bool,
    )
    x_filled = torch.where(observed, x, torch.zeros_like(x))
    return LinearGaussianProblem(weight, bias, sigma, x, x_filled, observed)
