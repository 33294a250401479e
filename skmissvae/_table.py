"""The table layer: tables <-> the standardised tensors a model sees, and back.

``TableEncoder`` owns everything that turns a user's table into model inputs: the column
types (with ``skmissvae._columns.ColumnCodec`` for semicontinuous, binary and categorical
columns), the per-column standardisation, columns that were empty at fit, and the
log-Jacobian of the standardisation. Every log-likelihood that the package reports in the
data's units takes its Jacobian from :meth:`TableEncoder.log_jacobian`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ._columns import ColumnCodec
from .core.likelihoods import GaussianLikelihood, MixedLikelihood

__all__ = ["TableEncoder", "column_moments"]

# Standardised values are clipped to this many standard deviations before they enter the
# float32 network: squares of larger values overflow float32 and would give NaN or -inf.
_STANDARDISED_LIMIT = 1e6
# Columns whose largest magnitude exceeds this are rescaled before their mean and standard
# deviation are computed, so that sums and squares cannot overflow float64.
_RESCALE_ABOVE = 1e150


def column_moments(values: np.ndarray, observed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Observed mean and standard deviation per column (0 and 1 where undefined or constant)."""
    # A contiguous float64 copy makes the sums independent of the caller's memory layout
    # (pandas hands over column-major data), so arrays and DataFrames give identical results.
    values = np.ascontiguousarray(values, dtype=np.float64)
    counts = observed.sum(axis=0)
    filled = np.where(observed, values, 0.0).astype(np.float64)
    # Columns with huge values are divided by their largest magnitude first, so that sums
    # and squares stay finite; other columns are untouched (bit-identical statistics).
    magnitude = np.abs(filled).max(axis=0, initial=0.0)
    unit = np.where(magnitude > _RESCALE_ABOVE, magnitude, 1.0)
    filled = filled / unit
    mean = np.divide(filled.sum(axis=0), counts, out=np.zeros(values.shape[1]), where=counts > 0)
    sq = np.where(observed, (filled - mean) ** 2, 0.0).sum(axis=0)
    std = np.sqrt(np.divide(sq, counts, out=np.zeros(values.shape[1]), where=counts > 0))
    mean, std = mean * unit, std * unit
    scale = np.where((std > 0) & np.isfinite(std), std, 1.0)
    return mean, scale


class TableEncoder:
    """Convert tables to standardised tensors and model outputs back to tables.

    Parameters
    ----------
    kinds : list of str
        The type of every input column (``skmissvae._columns.infer_column_types``).
    keep_empty_features : bool, default=False
        Keep the columns without an observed value at fit in the outputs (their missing
        entries set to 0, scikit-learn's convention) instead of dropping them.

    Attributes
    ----------
    codec_ : ColumnCodec or None
        The one-hot layout of a table with semicontinuous, binary or categorical columns;
        None when every column is continuous (the encoded matrix is then the table).
    mean_, scale_ : ndarray of shape (n_encoded,)
        Centre and scale of each encoded column: the observed mean and standard deviation
        of continuous columns, the point mass of semicontinuous ones, 0 and 1 for binary
        and one-hot columns (left as 0/1 for their likelihoods).
    empty_ : ndarray of bool of shape (n_features,)
        Input columns without an observed value at fit; the model never sees them.
    column_types_ : dict
        ``{label or position: type}`` of every input column.
    """

    def __init__(self, kinds: list[str], keep_empty_features: bool = False) -> None:
        self.kinds = list(kinds)
        self.keep_empty_features = keep_empty_features

    # -- fit ------------------------------------------------------------------------
    def fit(self, X, labels=None) -> "TableEncoder":
        """Learn the layout and the standardisation from ``X``.

        ``X`` is a float array when every column is continuous (already validated), else
        the table as given. ``labels`` names the columns in ``column_types_`` (positions
        when None).
        """
        if all(kind == "continuous" for kind in self.kinds):
            self.codec_ = None
            values = np.asarray(X)
            observed = ~np.isnan(values)
            labels = range(values.shape[1]) if labels is None else labels
            self.column_types_ = dict.fromkeys(labels, "continuous")
        else:
            self.codec_ = ColumnCodec(self.kinds).fit(X)
            values, observed = self.codec_.encode(X)
            self.column_types_ = {column.label: column.kind for column in self.codec_.columns_}
        # A table with discrete columns refuses empty columns (the codec checks).
        self.empty_ = ~observed.any(axis=0) if self.codec_ is None else np.zeros(len(self.kinds), bool)
        mean, scale = column_moments(values, observed)
        if self.codec_ is not None:
            mean, scale = self._restrict(mean, scale)
        self.mean_, self.scale_ = mean, scale
        return self

    def _restrict(self, mean: np.ndarray, scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Standardise numeric columns only: mean 0 and scale 1 for the others.

        Binary and one-hot columns must stay 0/1 for their likelihoods, and with scale 1
        they add nothing to the Jacobian. A semicontinuous column is centred on its atom
        instead of its mean, so that the point mass sits at exactly 0, where the
        zero-inflated likelihood puts it.
        """
        codec = self.codec_
        centre = np.where(np.isnan(codec.atoms_), mean, codec.atoms_)
        return np.where(codec.continuous_, centre, 0.0), np.where(codec.continuous_, scale, 1.0)

    @property
    def n_features_in(self) -> int:
        return len(self.kinds)

    @property
    def is_numeric(self) -> bool:
        """Whether outputs are plain float arrays (no binary or categorical column)."""
        return self.codec_ is None or self.codec_.numeric_only_

    # -- tables -> encoded values -------------------------------------------------------
    def encode(self, X) -> tuple[np.ndarray, np.ndarray]:
        """``(values, observed)`` of a checked table, both ``[N, n_encoded]``.

        ``values`` holds NaN at missing entries (a float array keeps its dtype);
        ``observed`` is False at missing entries and in the columns empty at fit.
        """
        if self.codec_ is not None:
            return self.codec_.encode(X)
        values = X if isinstance(X, np.ndarray) and X.dtype.kind == "f" else np.asarray(X, dtype=np.float64)
        if values.ndim != 2 or values.shape[1] != self.n_features_in:
            raise ValueError(
                f"Expected a 2D table with {self.n_features_in} columns, got shape {values.shape}."
            )
        # Columns entirely missing at fit are unknown to the model: never treat as observed.
        return values, ~np.isnan(values) & ~self.empty_

    def to_tensors(self, values: np.ndarray, observed: np.ndarray, device) -> tuple[torch.Tensor, torch.Tensor]:
        """Standardised, zero-filled float32 values and the boolean mask, on ``device``."""
        with np.errstate(over="ignore", invalid="ignore"):
            standardised = (values - self.mean_) / self.scale_
        standardised = np.clip(standardised, -_STANDARDISED_LIMIT, _STANDARDISED_LIMIT)
        x = torch.as_tensor(np.where(observed, standardised, 0.0), dtype=torch.float32, device=device)
        return x, torch.as_tensor(observed, device=device)

    def unstandardise(self, x: np.ndarray) -> np.ndarray:
        """Standardised values ``[..., n_encoded]`` in the data's units."""
        return x * self.scale_ + self.mean_

    def log_jacobian(self, values: np.ndarray, observed: np.ndarray) -> np.ndarray:
        """``sum_d log scale_d`` over each row's entries scored by a density: ``[N]``.

        A density of standardised values is one of the data divided by the scales of the
        observed entries. The point masses of semicontinuous columns are probabilities and
        get no Jacobian term.
        """
        density = observed if self.codec_ is None else observed & ~self.codec_.at_atom(values)
        return (density * np.log(self.scale_)).sum(axis=-1)

    # -- the model's view -----------------------------------------------------------------
    def likelihood(self, min_scale: float) -> GaussianLikelihood | MixedLikelihood:
        """The decoder's observation model: per-block for mixed tables, else Gaussian."""
        if self.codec_ is None:
            return GaussianLikelihood(min_scale)
        return MixedLikelihood(self.codec_.blocks_, min_scale)

    # -- encoded values -> outputs --------------------------------------------------------
    def complete(self, values: np.ndarray, observed: np.ndarray, standardised: np.ndarray) -> np.ndarray:
        """``values`` with their unobserved entries from ``standardised [..., N, D]``.

        Observed entries are taken from ``values`` unchanged (bit for bit).
        """
        filled = self.unstandardise(standardised).astype(values.dtype)
        return np.where(observed, values, filled)

    def output_features(self) -> np.ndarray:
        """Boolean mask of the input columns that outputs keep (``keep_empty_features``)."""
        if self.keep_empty_features:
            return np.ones(self.n_features_in, dtype=bool)
        return ~self.empty_

    def decode(self, completed: np.ndarray, values: np.ndarray, X):
        """A completed encoded table ``[N, D]`` as ``transform`` returns it for ``X``."""
        out = self._handle_empty_features(completed, values)
        if self.codec_ is not None:
            if isinstance(X, pd.DataFrame):
                return self.codec_.decode(out, index=X.index)
            return self.codec_.decode(out).to_numpy()
        if isinstance(X, pd.DataFrame):
            return pd.DataFrame(out, columns=X.columns[self.output_features()], index=X.index)
        return out

    def decode_draws(self, draws: np.ndarray, values: np.ndarray, X):
        """Completed copies ``[M, N, D]`` as ``sample_imputations`` returns them for ``X``."""
        if self.is_numeric:
            return self._handle_empty_features(draws, values)
        copies = [self.decode(copy_, values, X) for copy_ in draws]
        return copies if isinstance(X, pd.DataFrame) else np.stack(copies)

    def _handle_empty_features(self, out: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Drop the columns empty at fit from ``out [..., N, D]``, or fill their gaps with 0."""
        empty = self.empty_
        if not empty.any():
            return out
        if not self.keep_empty_features:
            return out[..., ~empty]
        out = out.copy()
        # scikit-learn's convention (SimpleImputer): an empty feature is imputed with 0.
        out[..., empty] = np.where(np.isnan(values[:, empty]), 0.0, values[:, empty])
        return out

    # -- plain state (safe save files) ------------------------------------------------------
    def get_state(self) -> dict:
        """The fitted encoder as tensors and plain Python values (see ``from_state``)."""
        labels = list(self.column_types_)
        return {
            "kinds": list(self.kinds),
            "keep_empty_features": bool(self.keep_empty_features),
            "labels": [label.item() if isinstance(label, np.generic) else label for label in labels],
            "codec": None if self.codec_ is None else self.codec_.get_state(),
            "mean": torch.from_numpy(np.asarray(self.mean_, dtype=np.float64)),
            "scale": torch.from_numpy(np.asarray(self.scale_, dtype=np.float64)),
            "empty": torch.from_numpy(np.asarray(self.empty_, dtype=bool)),
        }

    @classmethod
    def from_state(cls, state: dict) -> "TableEncoder":
        """Rebuild a fitted encoder from ``get_state()``'s output."""
        encoder = cls(state["kinds"], state["keep_empty_features"])
        encoder.codec_ = None if state["codec"] is None else ColumnCodec.from_state(state["codec"])
        encoder.column_types_ = dict(zip(state["labels"], state["kinds"]))
        encoder.mean_ = state["mean"].numpy().copy()
        encoder.scale_ = state["scale"].numpy().copy()
        encoder.empty_ = state["empty"].numpy().copy()
        return encoder
