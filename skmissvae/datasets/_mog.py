"""Mixture-of-Gaussians data with known parameters: exact likelihoods and the oracle imputer."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import groupby

import numpy as np

from ._missingness import check_random_state

__all__ = ["MixtureOfGaussians", "make_mixture_of_gaussians"]

_LOG_2PI = np.log(2 * np.pi)


@dataclass(frozen=True)
class MixtureOfGaussians:
    """A Gaussian mixture ``sum_k weights[k] N(means[k], covariances[k])``.

    Every method accepts data with missing entries (``np.nan``) and works with the
    marginal of the observed entries of each row, which for a Gaussian mixture is exact.

    Attributes
    ----------
    weights : ndarray of shape (n_components,)
    means : ndarray of shape (n_components, n_features)
    covariances : ndarray of shape (n_components, n_features, n_features)
    """

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray

    def sample(self, n_samples: int, random_state=None) -> np.ndarray:
        """Draw ``n_samples`` complete rows."""
        rng = check_random_state(random_state)
        k = rng.choice(len(self.weights), size=n_samples, p=self.weights / self.weights.sum())
        chol = np.linalg.cholesky(self.covariances)
        eps = rng.standard_normal((n_samples, self.means.shape[1]))
        return self.means[k] + np.einsum("nij,nj->ni", chol[k], eps)

    def log_likelihood(self, X: np.ndarray) -> np.ndarray:
        """Exact ``log p(x_o)`` of each row's observed entries, shape ``(n_samples,)``."""
        return self._by_pattern(X, want_mean=False)

    def conditional_mean(self, X: np.ndarray) -> np.ndarray:
        """Bayes-optimal imputation ``E[x_m | x_o]``; observed entries are copied."""
        return self._by_pattern(X, want_mean=True)

    def _by_pattern(self, X: np.ndarray, want_mean: bool) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        observed = ~np.isnan(X)
        out = X.copy() if want_mean else np.zeros(len(X))
        keys = [row.tobytes() for row in observed]
        order = sorted(range(len(X)), key=keys.__getitem__)
        for _, group in groupby(order, key=keys.__getitem__):
            rows = np.fromiter(group, dtype=int)
            o = observed[rows[0]]
            log_lik, cond_means = self._pattern(X[rows][:, o], o)
            if want_mean:
                resp = np.exp(log_lik - _logsumexp(log_lik)[:, None])  # [n, K]
                out[np.ix_(rows, ~o)] = np.einsum("nk,nkm->nm", resp, cond_means)
            else:
                out[rows] = _logsumexp(log_lik)
        return out

    def _pattern(self, x_o: np.ndarray, o: np.ndarray):
        """Per-component ``log pi_k N(x_o)`` ``[n, K]`` and ``E_k[x_m | x_o]`` ``[n, K, m]``."""
        m = ~o
        mu_o, mu_m = self.means[:, o], self.means[:, m]  # [K, o], [K, m]
        s_oo = self.covariances[:, o][:, :, o]  # [K, o, o]
        s_mo = self.covariances[:, m][:, :, o]  # [K, m, o]
        diff = x_o[:, None, :] - mu_o[None]  # [n, K, o]
        if o.sum() == 0:
            log_lik = np.broadcast_to(np.log(self.weights), (len(x_o), len(self.weights))).copy()
            return log_lik, np.broadcast_to(mu_m, (len(x_o),) + mu_m.shape)
        chol = np.linalg.cholesky(s_oo)  # [K, o, o]
        # Solve L y = diff for each component (batched over rows).
        sol = np.linalg.solve(chol[None], diff[..., None])[..., 0]  # [n, K, o]
        log_det = 2 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(-1)  # [K]
        log_lik = (
            np.log(self.weights)
            - 0.5 * (sol**2).sum(-1)
            - 0.5 * log_det
            - 0.5 * o.sum() * _LOG_2PI
        )
        # Sigma_oo^{-1} diff = L^{-T} y
        alpha = np.linalg.solve(np.swapaxes(chol, 1, 2)[None], sol[..., None])[..., 0]
        cond = mu_m[None] + np.einsum("kmo,nko->nkm", s_mo, alpha)
        return log_lik, cond


def _logsumexp(a: np.ndarray) -> np.ndarray:
    top = a.max(axis=-1)
    return top + np.log(np.exp(a - top[..., None]).sum(-1))


def make_mixture_of_gaussians(
    n_samples: int = 20_000,
    n_features: int = 5,
    n_components: int = 15,
    random_state=None,
) -> tuple[np.ndarray, MixtureOfGaussians]:
    """Generate a standardised mixture-of-Gaussians table with known parameters.

    Follows the recipe of Simkus & Gutmann (2024, app. E): Dirichlet(1) weights, wide
    means, inverse-Wishart covariances (few degrees of freedom, so the components are
    elongated), and finally an affine map that gives every column mean 0 and variance 1
    under the mixture.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
    mixture : MixtureOfGaussians
        The true parameters (after standardisation).
    """
    rng = check_random_state(random_state)
    weights = rng.dirichlet(np.ones(n_components))
    means = rng.normal(0.0, 2.0, size=(n_components, n_features))
    covariances = np.empty((n_components, n_features, n_features))
    for k in range(n_components):
        # Inverse-Wishart(df = D + 1, I): the inverse of a Wishart draw.
        a = rng.standard_normal((n_features + 1, n_features))
        covariances[k] = np.linalg.inv(a.T @ a + 1e-3 * np.eye(n_features))
    mean = weights @ means
    second = np.einsum("k,kij->ij", weights, covariances + np.einsum("ki,kj->kij", means, means))
    std = np.sqrt(np.diag(second) - mean**2)
    mixture = MixtureOfGaussians(
        weights=weights,
        means=(means - mean) / std,
        covariances=covariances / np.outer(std, std),
    )
    return mixture.sample(n_samples, rng), mixture
