"""Observation models ``p(x | z)`` evaluated on observed entries only.

A likelihood turns the decoder's raw output ``h`` (``[..., B, n_params * D]``) into a
distribution over the ``D`` features. ``log_prob`` takes the zero-filled data ``x_filled``
and the boolean mask ``observed`` and sums ``observed_d * log p(x_d | z)`` over features;
missing positions hold 0, never NaN, so no NaN can leak into gradients.

``sample(h, generator, row_dim=-2)`` draws from ``p(x | z)``; ``row_dim`` says which
dimension of ``h`` holds the rows when ``generator`` is a ``RowGenerator`` (``-2`` for
``[..., B, n_outputs]``, ``0`` for batch-first ``[B, K, n_outputs]``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .families import normal_log_density
from .random import GeneratorLike, bernoulli, standard_normal, uniform

__all__ = [
    "GaussianLikelihood",
    "ZeroInflatedGaussianLikelihood",
    "BernoulliLikelihood",
    "CategoricalLikelihood",
    "MixedLikelihood",
]

#: Smallest scale of a Gaussian: keeps densities finite (encoder and default decoder).
SCALE_FLOOR = 1e-5


class GaussianLikelihood:
    """Factorised Gaussian with ``loc = h[:D]`` and ``scale = softplus(h[D:]) + min_scale``.

    Parameters
    ----------
    min_scale : float, default=SCALE_FLOOR
        Smallest standard deviation, in the data's units. A floor well above
        ``SCALE_FLOOR`` keeps the decoder from becoming more certain than the data support
        (a regulariser for small or repetitive tables).
    """

    n_params = 2

    def __init__(self, min_scale: float = SCALE_FLOOR) -> None:
        if not min_scale > 0:
            raise ValueError(f"min_scale must be positive, got {min_scale!r}.")
        self.min_scale = float(min_scale)

    def params(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """``(loc, scale)``, each ``[..., B, D]``, from the decoder output ``h``."""
        loc, raw_scale = h.chunk(2, dim=-1)
        return loc, F.softplus(raw_scale) + self.min_scale

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

    def scale(self, h: Tensor) -> Tensor:
        """The Gaussian's standard deviation, shape ``[..., B, D]``."""
        return self.params(h)[1]

    def sample(self, h: Tensor, generator: GeneratorLike = None, *, row_dim: int = -2) -> Tensor:
        """One draw ``x ~ p(x | z)`` per decoder output, shape ``[..., B, D]``."""
        loc, scale = self.params(h)
        eps = standard_normal(
            loc.shape, generator, row_dim=row_dim, device=loc.device, dtype=loc.dtype
        )
        return loc + scale * eps

    def output_size(self, n_features: int) -> int:
        """Decoder outputs for ``n_features`` features: ``n_params * n_features``."""
        return self.n_params * n_features


class ZeroInflatedGaussianLikelihood:
    """Factorised point mass at 0 plus Gaussian, for semicontinuous columns.

    ``p(x | z) = pi delta_0(x) + (1 - pi) N(x; loc, scale**2)`` per feature, with
    ``pi = sigmoid(h[:D])``, ``loc = h[D:2D]`` and ``scale = softplus(h[2D:]) + min_scale``.
    An exact 0 scores ``log pi`` (a probability, not a density); any other value scores
    ``log(1 - pi) + log N(x; loc, scale**2)``. Columns with a large share of one exact
    value (counts, amounts, word frequencies: mostly 0) are shifted so that this value is
    0 before they reach the model (see ``skmissvae.impute``).

    Parameters
    ----------
    min_scale : float, default=SCALE_FLOOR
        Smallest standard deviation of the Gaussian part (see ``GaussianLikelihood``).
    """

    n_params = 3

    def __init__(self, min_scale: float = SCALE_FLOOR) -> None:
        self.min_scale = GaussianLikelihood(min_scale).min_scale  # validated there

    def params(self, h: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(logit of pi, loc, scale)``, each ``[..., B, D]``, from the decoder output."""
        logit, loc, raw_scale = h.chunk(3, dim=-1)
        return logit, loc, F.softplus(raw_scale) + self.min_scale

    def log_prob_elementwise(self, x_filled: Tensor, h: Tensor) -> Tensor:
        """``log p(x_d | z)`` per feature, shape ``[..., B, D]``."""
        logit, loc, scale = self.params(h)
        at_zero = x_filled == 0
        # log sigmoid(a) = -softplus(-a) and log(1 - sigmoid(a)) = -softplus(a), stably.
        log_point = -F.softplus(-logit)
        log_gaussian = -F.softplus(logit) + normal_log_density(x_filled, loc, scale)
        return torch.where(at_zero, log_point, log_gaussian)

    def log_prob(self, x_filled: Tensor, observed: Tensor, h: Tensor) -> Tensor:
        """``sum_d observed_d log p(x_d | z)``: ``[..., B, D] -> [..., B]``."""
        return (self.log_prob_elementwise(x_filled, h) * observed).sum(-1)

    def mean(self, h: Tensor) -> Tensor:
        """``E[x | z] = (1 - pi) loc``, shape ``[..., B, D]``."""
        logit, loc, _ = self.params(h)
        return torch.sigmoid(-logit) * loc

    def scale(self, h: Tensor) -> Tensor:
        """The standard deviation of the Gaussian part, shape ``[..., B, D]``."""
        return self.params(h)[2]

    def sample(self, h: Tensor, generator: GeneratorLike = None, *, row_dim: int = -2) -> Tensor:
        """One draw per decoder output ``[..., B, D]``: exactly 0 with probability ``pi``."""
        logit, loc, scale = self.params(h)
        at_zero = bernoulli(torch.sigmoid(logit), generator, row_dim=row_dim).bool()
        eps = standard_normal(
            loc.shape, generator, row_dim=row_dim, device=loc.device, dtype=loc.dtype
        )
        return torch.where(at_zero, torch.zeros_like(loc), loc + scale * eps)

    def output_size(self, n_features: int) -> int:
        """Decoder outputs for ``n_features`` features: ``n_params * n_features``."""
        return self.n_params * n_features


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

    def scale(self, h: Tensor) -> Tensor:
        """NaN: a Bernoulli has no scale parameter, shape ``[..., B, D]``."""
        return torch.full_like(h, torch.nan)

    def sample(self, h: Tensor, generator: GeneratorLike = None, *, row_dim: int = -2) -> Tensor:
        """One 0/1 draw per decoder output, shape ``[..., B, D]``."""
        return bernoulli(torch.sigmoid(h), generator, row_dim=row_dim)

    def output_size(self, n_features: int) -> int:
        """Decoder outputs for ``n_features`` features: ``n_params * n_features``."""
        return self.n_params * n_features


class CategoricalLikelihood:
    """One categorical variable over ``C`` classes, one-hot encoded, with logits ``h``.

    The variable occupies ``C`` one-hot columns and the decoder gives ``C`` logits, so
    ``n_params = 1`` per column. ``log_prob_elementwise`` is ``x_c log softmax(h)_c`` per
    column: summed over an observed one-hot block it is ``log p(category | z)``, and a
    zero-filled (missing) block contributes 0. A block is either observed or missing as a
    whole, so masking per column equals masking per variable.
    """

    n_params = 1

    def log_prob_elementwise(self, x_filled: Tensor, h: Tensor) -> Tensor:
        """``x_c log softmax(h)_c`` per one-hot column, shape ``[..., B, C]``."""
        return x_filled * torch.log_softmax(h, dim=-1)

    def log_prob(self, x_filled: Tensor, observed: Tensor, h: Tensor) -> Tensor:
        """``log p(x | z)`` where the block is observed, else 0: ``[..., B, C] -> [..., B]``."""
        return (self.log_prob_elementwise(x_filled, h) * observed).sum(-1)

    def mean(self, h: Tensor) -> Tensor:
        """Class probabilities ``softmax(h)``, shape ``[..., B, C]``."""
        return torch.softmax(h, dim=-1)

    def scale(self, h: Tensor) -> Tensor:
        """NaN: a categorical has no scale parameter, shape ``[..., B, C]``."""
        return torch.full_like(h, torch.nan)

    def sample(self, h: Tensor, generator: GeneratorLike = None, *, row_dim: int = -2) -> Tensor:
        """One one-hot draw per decoder output, shape ``[..., B, C]``.

        Inverse-CDF sampling: one uniform per variable, so every draw is a valid one-hot
        vector (exactly one 1) whatever the batch shape.
        """
        probs = torch.softmax(h, dim=-1)
        cdf = probs.cumsum(-1)  # [..., B, C]
        shape = (*h.shape[:-1], 1)  # rows stay at row_dim (never the class dimension)
        u = uniform(shape, generator, row_dim=row_dim, device=h.device, dtype=h.dtype)
        # Comparing with the last cdf value (~1) guards against rounding: index <= C - 1.
        index = (cdf < u * cdf[..., -1:]).sum(-1, keepdim=True).clamp(max=h.shape[-1] - 1)
        return torch.zeros_like(h).scatter_(-1, index, 1.0)

    def output_size(self, n_features: int) -> int:
        """Decoder outputs for ``n_features`` one-hot columns: one logit each."""
        return n_features


_KINDS = {
    "gaussian": GaussianLikelihood,
    "zero_inflated": ZeroInflatedGaussianLikelihood,
    "bernoulli": BernoulliLikelihood,
    "categorical": CategoricalLikelihood,
}


class MixedLikelihood:
    """Per-block observation models over an encoded table.

    The encoded row is cut into consecutive blocks of columns, each with its own model:
    ``"gaussian"`` (any number of continuous columns), ``"zero_inflated"`` (any number of
    continuous columns with a point mass at 0), ``"bernoulli"`` (any number of 0/1
    columns) or ``"categorical"`` (the ``C`` one-hot columns of one categorical variable).
    The decoder output is the concatenation of the blocks' parameters in block order
    (``2 w`` for a Gaussian block of ``w`` columns, ``3 w`` for a zero-inflated one, ``w``
    otherwise). Every method has the
    interface of the single-type likelihoods, so models and samplers use it unchanged.

    Parameters
    ----------
    blocks : sequence of (kind, width)
        Kinds and column counts in column order; ``sum(width)`` is the number of encoded
        features ``D``.
    min_scale : float, default=SCALE_FLOOR
        Smallest standard deviation of the Gaussian and zero-inflated blocks (see
        ``GaussianLikelihood``).
    """

    def __init__(self, blocks, min_scale: float = SCALE_FLOOR) -> None:
        blocks = [(str(kind), int(width)) for kind, width in blocks]
        if not blocks:
            raise ValueError("MixedLikelihood needs at least one block.")
        self.blocks = blocks
        self._parts, self._columns, self._outputs = [], [], []
        column = output = 0
        for kind, width in blocks:
            if kind not in _KINDS:
                raise ValueError(f"Unknown block kind {kind!r}; expected one of {sorted(_KINDS)}.")
            if width < 1:
                raise ValueError(f"Block widths must be positive, got {width} for {kind!r}.")
            takes_scale = kind in ("gaussian", "zero_inflated")
            part = _KINDS[kind](min_scale) if takes_scale else _KINDS[kind]()
            size = part.output_size(width)
            self._parts.append(part)
            self._columns.append((column, column + width))
            self._outputs.append((output, output + size))
            column, output = column + width, output + size
        self.n_features, self.n_outputs = column, output

    def output_size(self, n_features: int) -> int:
        """Total decoder outputs; ``n_features`` must equal the blocks' total width."""
        if n_features != self.n_features:
            raise ValueError(
                f"The blocks cover {self.n_features} encoded features, not {n_features}."
            )
        return self.n_outputs

    def column_groups(self, device: torch.device | str | None = None) -> Tensor:
        """Group id per encoded column ``[D]``: the columns of one categorical share an id.

        Samplers that fill columns independently (empirical initialisation) draw once per
        group, so a one-hot block is filled from one row of the pool as a whole.
        """
        ids, group = [], 0
        for kind, (start, stop) in zip((k for k, _ in self.blocks), self._columns, strict=True):
            width = stop - start
            if kind == "categorical":
                ids += [group] * width
                group += 1
            else:
                ids += list(range(group, group + width))
                group += width
        return torch.tensor(ids, dtype=torch.long, device=device)

    def _outputs_of(self, h: Tensor):
        """``(model, h_block)`` per block; ``h`` is ``[..., n_outputs]``."""
        return [(part, h[..., o0:o1]) for part, (o0, o1) in zip(self._parts, self._outputs, strict=True)]

    def log_prob_elementwise(self, x_filled: Tensor, h: Tensor) -> Tensor:
        """Per-column log-density terms ``[..., B, D]`` (their masked sum is ``log_prob``)."""
        terms = [
            part.log_prob_elementwise(x_filled[..., c0:c1], h_block)
            for (part, h_block), (c0, c1) in zip(self._outputs_of(h), self._columns, strict=True)
        ]
        return torch.cat(terms, -1)

    def log_prob(self, x_filled: Tensor, observed: Tensor, h: Tensor) -> Tensor:
        """``sum_d observed_d log p(x_d | z)`` over all blocks: ``[..., B, D] -> [..., B]``."""
        return (self.log_prob_elementwise(x_filled, h) * observed).sum(-1)

    def mean(self, h: Tensor) -> Tensor:
        """Block means ``[..., B, D]``: Gaussian locations, zero-inflated means, Bernoulli
        and class probabilities."""
        return torch.cat([part.mean(h_block) for part, h_block in self._outputs_of(h)], -1)

    def scale(self, h: Tensor) -> Tensor:
        """Standard deviations of the Gaussian and zero-inflated blocks ``[..., B, D]``;
        NaN in the columns of the other blocks."""
        return torch.cat([part.scale(h_block) for part, h_block in self._outputs_of(h)], -1)

    def sample(self, h: Tensor, generator: GeneratorLike = None, *, row_dim: int = -2) -> Tensor:
        """One draw per decoder output ``[..., B, D]``; categorical blocks are one-hot."""
        parts = self._outputs_of(h)
        return torch.cat([part.sample(h_b, generator, row_dim=row_dim) for part, h_b in parts], -1)

