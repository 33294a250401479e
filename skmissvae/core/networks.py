"""Residual MLPs for encoders and decoders (nn.Modules, no losses).

Layers are created without touching torch's global random state and initialised from an
explicit ``torch.Generator``: ``nn.Linear`` would otherwise draw its initial weights from
the global generator and reseed users' programs behind their backs.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .random import GeneratorLike, RowGenerator

__all__ = ["ResidualMLP"]

# In eval mode every layer's input is zero-padded to a multiple of this many columns.
# CPU matrix kernels vectorise along the input dimension, and with an input width that is
# not a multiple of the vector size a row's rounding depends on its position in memory;
# aligned rows make a row's output independent of the other rows in the batch (the zero
# columns add exact zeros).
_ALIGN = 16


def _linear(n_in: int, n_out: int, generator: torch.Generator | None) -> nn.Linear:
    """``nn.Linear`` with PyTorch's default init drawn from ``generator``."""
    layer = torch.nn.utils.skip_init(nn.Linear, n_in, n_out)
    bound = 1.0 / math.sqrt(n_in)  # PyTorch's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    with torch.no_grad():
        layer.weight.uniform_(-bound, bound, generator=generator)
        layer.bias.uniform_(-bound, bound, generator=generator)
    return layer


class ResidualMLP(nn.Module):
    """``h = relu(L_in(x)); h = relu(h + L2(dropout(relu(L1(h))))) x n_blocks; L_out(h)``.

    Parameters
    ----------
    n_in, n_out : int
        Input and output sizes.
    width : int
        Hidden width ``W``.
    n_blocks : int
        Number of residual blocks.
    dropout : float
        Drop probability inside each block (0 disables it).
    generator : torch.Generator, optional
        Source of the initial weights.
    """

    def __init__(
        self,
        n_in: int,
        n_out: int,
        width: int = 256,
        n_blocks: int = 2,
        dropout: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.dropout = dropout
        self.input = _linear(n_in, width, generator)
        self.blocks = nn.ModuleList(
            nn.ModuleList([_linear(width, width, generator), _linear(width, width, generator)])
            for _ in range(n_blocks)
        )
        self.output = _linear(width, n_out, generator)

    def forward(self, x: Tensor, generator: GeneratorLike = None) -> Tensor:
        """Map ``[..., n_in] -> [..., n_out]``; ``generator`` drives dropout in training
        (a ``torch.Generator``; a ``RowGenerator`` is accepted, and unused, in eval mode)."""
        h = torch.relu(self._layer(self.input, x))
        for first, second in self.blocks:
            inner = torch.relu(self._layer(first, h))
            if self.training and self.dropout > 0:
                if isinstance(generator, RowGenerator):
                    # Dropout masks are a training device; row streams are for inference.
                    raise TypeError(
                        "Dropout in training mode needs a torch.Generator, not a RowGenerator; "
                        "call .eval() on the model before sampling with row streams."
                    )
                keep = torch.rand(inner.shape, generator=generator, device=inner.device)
                inner = inner * (keep >= self.dropout) / (1.0 - self.dropout)
            h = torch.relu(h + self._layer(second, inner))
        return self._layer(self.output, h)

    def _layer(self, layer: nn.Linear, h: Tensor) -> Tensor:
        """``layer(h)``; in eval mode with inputs padded to ``_ALIGN`` columns (see above)."""
        pad = -h.shape[-1] % _ALIGN
        if self.training or not pad:
            return layer(h)
        padded_weight = nn.functional.pad(layer.weight, (0, pad))
        return nn.functional.linear(nn.functional.pad(h, (0, pad)), padded_weight, layer.bias)
