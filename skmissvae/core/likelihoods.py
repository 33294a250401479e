"""Observation models ``p(x | z)`` evaluated on observed entries only.

A likelihood turns the decoder's raw output ``h`` (``[..., B, n_params * D]``) into a
distribution over the ``D`` features. ``log_prob`` takes the zero-filled data ``x_filled``
and the boolean mask ``observed`` and sums ``observed_d * log p(x_d | z)`` over features;
missing positions hold 0, never NaN, so no NaN can leak into gradients (methods.md, sec. 0).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .families import normal_log_density

__all__ = ["GaussianLikelihood", "BernoulliLikelihood"]

SCALE_FLOOR = 1e-5


class GaussianLikelihood:
    """Factorised Gaussian with ``loc = h[:D]`` and ``scale = softplus(h[D:]) + 1e-5``."""

    n_params = 2

    def params(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """``(loc, scale)``, each ``[..., B, D]``, from the decoder output ``h``."""
        loc, raw_scale = h.chunk(2, dim=-1)
        return loc, F.softplus(raw_scale) + SCALE_FLOOR

    def log_prob_elementwise(self, x_filled: Tensor, h: Tensor) -> Tensor:
        """``log p(x_d | z)`` per feature, shape ``[..., B, D]``."""
        loc, scale = self.params(h)
        return normal_log_density(x_filled, loc, scale)

    def log_prob(self, x_filled: Tensor, observed: Tensor, h: Tensor) -> Tensor:
        """``sum_d observed_d log p(x_d | z)``: ``[..., B, D] -> [..., B]``."""
        return (self.log_prob_elementwise(x_filled, h) * observed).sum(-1)

    def mean(self, h: Tensor) -> Tensor:
        """``E[x | z]``, shape ``[..., B, D]``."""
        return self.params(h)[0]

    def sample(self, h: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """One draw ``x ~ p(x | z)`` per decoder output, shape ``[..., B, D]``."""
        loc, scale = self.params(h)
        eps = torch.randn(loc.shape, generator=generator, device=loc.device, dtype=loc.dtype)
        return loc + scale * eps


class BernoulliLikelihood:
    """Factorised Bernoulli with logits ``h``; ``log p = -BCEWithLogits``."""

    n_params = 1

    def log_prob_elementwise(self, x_filled: Tensor, h: Tensor) -> Tensor:
        # x log sigmoid(h) + (1 - x) log sigmoid(-h), broadcasting over particle dims.
        return x_filled * h - F.softplus(h)

    def log_prob(self, x_filled: Tensor, observed: Tensor, h: Tensor) -> Tensor:
        return (self.log_prob_elementwise(x_filled, h) * observed).sum(-1)

    def mean(self, h: Tensor) -> Tensor:
        """``P(x = 1 | z)``, shape ``[..., B, D]``."""
        return torch.sigmoid(h)

    def sample(self, h: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """One 0/1 draw per decoder output, shape ``[..., B, D]``."""
        return torch.bernoulli(torch.sigmoid(h), generator=generator)
