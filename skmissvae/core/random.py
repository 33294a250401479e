"""Row-wise counter-based random numbers: a row's draws never depend on the other rows.

A ``RowGenerator`` gives every row of a batch its own stream, keyed by a hash of
``(seed, row content)``. Element ``j`` of draw call ``c`` of a row is a pure function of
``(row key, c, j)`` (a counter-based generator, Salmon et al., 2011), so a row's draws do
not depend on the batch size, the other rows or their order, and equal rows get equal
draws. The sampling primitives below take either such a generator or a ``torch.Generator``
(or None); with the latter they make exactly the call torch's own sampler would, so
training keeps torch's random streams bit for bit.

The hashing runs on 32-bit lanes held in int64 tensors. Every product is a 32-bit value
times a constant below ``2**31``, hence below ``2**63``: no signed overflow on any device.
The mixer is a two-round xorshift-multiply permutation of 32-bit integers, the construction
of MurmurHash3's finaliser (Appleby), with the multipliers ``0x21f0aaad`` and ``0x735a2d97``
of the hash-prospector search (Wellons, 2018) for a low avalanche bias. Row keys, per-call
row states and spawned keys go through 4-round Feistel networks of that mixer (Luby &
Rackoff, 1988): bijections on 64 bits, so distinct keys give distinct states. An element's
value then chains the state's two lanes and its index through the mixer twice, a bijection
of the index within a row and call.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "RowGenerator",
    "GeneratorLike",
    "standard_normal",
    "uniform",
    "bernoulli",
    "categorical",
]

_MASK = 0xFFFFFFFF
# Multipliers of the mixer, both odd and below 2**31 (see the module docstring).
_MUL1, _MUL2 = 0x21F0AAAD, 0x735A2D97
# Domain tags: per-call row states for draws, keys of spawned children, row digests.
_DRAW, _SPAWN, _DIGEST, _SEED = 0x3C6EF372, 0x5BE0CD19, 0x1F83D9AB, 0x510E527F
_SQRT2 = math.sqrt(2.0)
_CANONICAL_NAN = 0x7FF8000000000000  # the bits of float64 NaN as produced by most hardware


def _mix_int(x: int) -> int:
    """The mixer on a Python int (for scalar round keys)."""
    x &= _MASK
    x ^= x >> 16
    x = (x * _MUL1) & _MASK
    x ^= x >> 15
    x = (x * _MUL2) & _MASK
    return x ^ (x >> 15)


def _mix_(x: Tensor, scratch: Tensor | None = None) -> Tensor:
    """The mixer, in place, on 32-bit values held in an int64 tensor.

    ``scratch`` (like ``x``) holds the shifted copies, saving three allocations.
    """
    scratch = torch.empty_like(x) if scratch is None else scratch
    x.bitwise_xor_(torch.bitwise_right_shift(x, 16, out=scratch))
    x.mul_(_MUL1).bitwise_and_(_MASK)
    x.bitwise_xor_(torch.bitwise_right_shift(x, 15, out=scratch))
    x.mul_(_MUL2).bitwise_and_(_MASK)
    return x.bitwise_xor_(torch.bitwise_right_shift(x, 15, out=scratch))


def _round_keys(domain: int, *words: int) -> list[int]:
    """Four 32-bit round keys chained from a domain tag and 64-bit words."""
    state, keys = _mix_int(domain), []
    for word in words:
        word &= 2**64 - 1
        state = _mix_int(_mix_int(state ^ (word & _MASK)) ^ (word >> 32))
    for i in range(4):
        state = _mix_int(state + 0x6A09E667 + i)
        keys.append(state)
    return keys


def _feistel(lo: Tensor, hi: Tensor, keys) -> tuple[Tensor, Tensor]:
    """A Feistel network on 64-bit values ``(lo, hi)``: a bijection for any round keys."""
    for key in keys:  # ints or tensors broadcasting against lo and hi
        lo, hi = hi, lo ^ _mix_(hi ^ key)
    return lo, hi


def _row_keys(seed: int, rows: Tensor) -> tuple[Tensor, Tensor]:
    """64-bit key per row ``[B, D] -> ([B], [B])`` from ``seed`` and the row's float64 bits."""
    x = rows.detach().to(torch.float64).contiguous()
    # Equal values must give equal bits: one NaN pattern (which also marks missing entries,
    # as no number has it) and the bits of +0.0 for -0.0.
    bits = x.view(torch.int64)  # [B, D]
    bits = torch.where(torch.isnan(x), _CANONICAL_NAN, torch.where(x == 0, 0, bits))
    lo, hi = bits & _MASK, (bits >> 32) & _MASK
    # A keyed bijection per column: rows that differ in one column always get different
    # digests, and differences in several columns cancel in the sum only by chance.
    columns = torch.arange(x.shape[1], device=x.device, dtype=torch.int64)  # [D]
    keys = [_mix_(columns ^ k) for k in _round_keys(_DIGEST, seed)]
    lo, hi = _feistel(lo, hi, keys)  # [B, D]
    # The row digest: the sum of the column digests modulo 2**64, carried between lanes.
    total_lo = lo.sum(1)  # [B], below D * 2**32
    total_hi = hi.sum(1) + (total_lo >> 32)
    lo, hi = total_lo & _MASK, total_hi & _MASK
    return _feistel(lo ^ x.shape[1], hi, _round_keys(_SEED, seed))


class RowGenerator:
    """Counter-based random numbers with one independent stream per row.

    Parameters
    ----------
    seed : int
        Any integer (taken modulo ``2**64``).
    rows : Tensor ``[B, D]``
        The rows the draws are for, in the data's units, NaN at missing entries (read as
        float64). Each row's 64-bit key hashes ``seed``, the bits of its values and its
        missing pattern: equal rows get equal keys, hence equal draws.

    Every draw call (``standard_normal``, ``uniform``, ``bernoulli``, ``categorical``) and
    every ``spawn`` advances a counter shared by the rows, so successive calls give fresh
    numbers.
    """

    def __init__(self, seed: int, rows: Tensor) -> None:
        if rows.dim() != 2:
            raise ValueError(f"rows must be a [B, D] tensor, got shape {tuple(rows.shape)}.")
        self._lo, self._hi = _row_keys(int(seed) & (2**64 - 1), rows)  # [B] each
        self._counter = 0

    @classmethod
    def _from_keys(cls, lo: Tensor, hi: Tensor, counter: int) -> RowGenerator:
        generator = cls.__new__(cls)
        generator._lo, generator._hi, generator._counter = lo, hi, counter
        return generator

    @property
    def device(self) -> torch.device:
        return self._lo.device

    def __len__(self) -> int:
        return len(self._lo)

    def __repr__(self) -> str:
        return f"RowGenerator(rows={len(self)}, counter={self._counter}, device={self.device})"

    def subset(self, index: Tensor) -> RowGenerator:
        """The streams of the rows selected by a bool mask or an index tensor, at the same
        position (the next draw gives those rows what this generator's next draw would)."""
        index = torch.as_tensor(index, device=self.device)
        return RowGenerator._from_keys(self._lo[index], self._hi[index], self._counter)

    def spawn(self) -> RowGenerator:
        """A child generator for the same rows, independent of this one.

        Counts as one call on this generator, so its later draws are the same whether or
        how the child is used.
        """
        lo, hi = self._next_state(_SPAWN)
        return RowGenerator._from_keys(lo, hi, 0)

    def _next_state(self, domain: int) -> tuple[Tensor, Tensor]:
        """Per-row 64-bit state of the current call ``([B], [B])``; advances the counter."""
        keys = _round_keys(domain, self._counter)
        self._counter += 1
        return _feistel(self._lo, self._hi, keys)

    def _bits(self, shape, row_dim: int, device) -> Tensor:
        """Uniform 32-bit integers (int64) of ``shape``; rows along ``row_dim``."""
        shape = torch.Size(shape)
        if not -len(shape) <= row_dim < len(shape):
            raise ValueError(f"row_dim {row_dim} is out of range for shape {tuple(shape)}.")
        row_dim %= len(shape)
        if shape[row_dim] != len(self):
            raise ValueError(
                f"The draw has {shape[row_dim]} rows along dimension {row_dim} of shape "
                f"{tuple(shape)}, but the RowGenerator has {len(self)} rows."
            )
        state_lo, state_hi = self._next_state(_DRAW)  # [B]
        device = self.device if device is None else torch.device(device)
        per_row = shape[:row_dim] + shape[row_dim + 1 :]
        if per_row.numel() > 2**32:
            raise ValueError(f"At most 2**32 draws per row and call, got {per_row.numel()}.")
        # Flat index of each element within its row: the same whatever the batch size.
        index = torch.arange(per_row.numel(), device=device).reshape(per_row).unsqueeze(row_dim)
        view = [1] * len(shape)
        view[row_dim] = len(self)
        x = index ^ state_lo.to(device).view(view)  # [*shape]
        scratch = torch.empty_like(x)
        _mix_(x, scratch).add_(state_hi.to(device).view(view)).bitwise_and_(_MASK)
        return _mix_(x, scratch)

    def _uniform64(self, shape, row_dim: int, device) -> Tensor:
        """Float64 uniforms ``(h + 1/2) / 2**32`` in the open interval (0, 1)."""
        return self._bits(shape, row_dim, device).to(torch.float64).add_(0.5).mul_(2.0**-32)


#: What every sampler accepts: torch's generator (or None: torch's global one) or row streams.
GeneratorLike = torch.Generator | RowGenerator | None


def _to_open_unit(u: Tensor, dtype: torch.dtype) -> Tensor:
    """Cast float64 uniforms to ``dtype``, keeping them strictly inside (0, 1)."""
    if dtype == torch.float64:
        return u
    below_one = 1.0 - torch.finfo(dtype).eps / 2  # the largest value below 1
    return u.to(dtype).clamp_(torch.finfo(dtype).tiny, below_one)


def standard_normal(shape, generator: GeneratorLike, *, row_dim: int, device, dtype) -> Tensor:
    """Standard normal draws of ``shape``, like ``torch.randn``.

    With a ``RowGenerator`` the rows lie along ``row_dim`` of ``shape``; each value is the
    inverse normal CDF of one uniform, ``sqrt(2) erfinv(2u - 1)`` in float64 (exactly
    symmetric, tails to about 6.3 standard deviations).
    """
    if not isinstance(generator, RowGenerator):
        return torch.randn(shape, generator=generator, device=device, dtype=dtype)
    bits = generator._bits(shape, row_dim, device).to(torch.float64)
    # 2u - 1 = h / 2**31 + 1 / 2**32 - 1 = (2h + 1 - 2**32) / 2**32, exact in float64.
    centred = bits.mul_(2.0**-31).add_(2.0**-32 - 1.0)
    return centred.erfinv_().mul_(_SQRT2).to(dtype or torch.get_default_dtype())


def uniform(shape, generator: GeneratorLike, *, row_dim: int, device, dtype) -> Tensor:
    """Uniform draws on (0, 1) of ``shape``, like ``torch.rand``; rows along ``row_dim``."""
    if not isinstance(generator, RowGenerator):
        return torch.rand(shape, generator=generator, device=device, dtype=dtype)
    u = generator._uniform64(shape, row_dim, device)
    return _to_open_unit(u, dtype or torch.get_default_dtype())


def bernoulli(probs: Tensor, generator: GeneratorLike, *, row_dim: int) -> Tensor:
    """0/1 draws with success probabilities ``probs`` (same shape and dtype), like
    ``torch.bernoulli``; rows along ``row_dim``."""
    if not isinstance(generator, RowGenerator):
        return torch.bernoulli(probs, generator=generator)
    u = generator._uniform64(probs.shape, row_dim, probs.device)
    return (u < probs).to(probs.dtype)


def categorical(probs: Tensor, n_draws: int, generator: GeneratorLike) -> Tensor:
    """``n_draws`` category indices per row with replacement: ``[B, C] -> long [B, n_draws]``.

    ``probs`` are nonnegative weights, not necessarily normalised, with a positive finite
    sum per row. A ``RowGenerator`` inverts the cumulative weights at one uniform per draw,
    so a category with zero weight is never drawn.
    """
    if not isinstance(generator, RowGenerator):
        return torch.multinomial(probs, n_draws, replacement=True, generator=generator)
    cdf = probs.to(torch.float64).cumsum(-1)  # [B, C]
    u = generator._uniform64((len(probs), n_draws), 0, probs.device)  # [B, n_draws]
    # u < 1 - 2**-33 keeps u * total below total, so the index is at most C - 1 and its
    # weight is positive; the clamp only guards against non-finite weights.
    index = torch.searchsorted(cdf, u * cdf[:, -1:], right=True)
    return index.clamp_(max=probs.shape[-1] - 1)
