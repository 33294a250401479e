"""The table layer: tables <-> the standardised tensors a model sees, and back.

``TableEncoder`` owns everything that turns a user's table into model inputs: the column
types (with ``skmissvae._columns.ColumnCodec`` for semicontinuous, binary and categorical
columns), the per-column standardisation, columns that were empty at fit, and the
log-Jacobian of the standardisation. Every log-likelihood that the package reports in the
data's units takes its Jacobian from :meth:`TableEncoder.log_jacobian`.
"""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd
import torch

from dataclasses import dataclass

from ._columns import ColumnCodec, _as_frame, infer_column_types
from .core.likelihoods import GaussianLikelihood, MixedLikelihood

__all__ = ["ColumnStatistics", "TableEncoder", "column_moments", "column_statistics"]

# Standardised values are clipped to this many standard deviations before they enter the
# float32 network: squares of larger values overflow float32 and would give NaN or -inf.
_STANDARDISED_LIMIT = 1e6
# Columns whose largest magnitude exceeds this are rescaled before their mean and standard
# deviation are computed, so that sums and squares cannot overflow float64.
_RESCALE_ABOVE = 1e150


def column_moments(values: np.ndarray, observed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Observed mean and scale per column: the standard deviation, 1 where it is 0 or
    undefined (mean 0 where undefined)."""
    mean, std = _mean_and_std(values, observed)
    return mean, _scale_of(std)


def _scale_of(std: np.ndarray) -> np.ndarray:
    return np.where((std > 0) & np.isfinite(std), std, 1.0)


def _mean_and_std(values: np.ndarray, observed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Observed mean and (population) standard deviation per column; 0 where undefined."""
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
    return mean * unit, std * unit


@dataclass(frozen=True)
class ColumnStatistics:
    """Mergeable statistics of every column of a table, from ``column_statistics``.

    Two statistics of parts of one table merge with ``+`` (or ``sum``) into those of the whole (to
    floating-point round-off; the variances are combined as in Chan, Golub and LeVeque,
    1979). A ``TableEncoder`` fitted with them standardises as if fitted on the whole
    table.

    Attributes
    ----------
    kinds : tuple of str
        The type of every column.
    labels : tuple
        Column labels (positions for arrays).
    count : ndarray of shape (n_features,)
        Observed entries per column.
    mean, std : ndarray of shape (n_features,)
        Mean and standard deviation of the observed values of the continuous and
        semicontinuous columns (0 for the others and where nothing is observed).
    categories : tuple of (dict or None)
        ``{value: count}`` of the observed values of binary and categorical columns;
        None for numeric columns.
    """

    kinds: tuple
    labels: tuple
    count: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    categories: tuple

    def __add__(self, other: "ColumnStatistics") -> "ColumnStatistics":
        if not isinstance(other, ColumnStatistics):
            return NotImplemented
        if self.kinds != other.kinds or list(self.labels) != list(other.labels):
            raise ValueError(
                "Column statistics of tables with different columns or column types cannot be "
                f"merged: {list(zip(self.labels, self.kinds))} and {list(zip(other.labels, other.kinds))}."
            )
        n1, n2 = self.count.astype(np.float64), other.count.astype(np.float64)
        n = n1 + n2
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(n > 0, n2 / n, 0.0)
            delta = other.mean - self.mean
            mean = np.where(n2 > 0, np.where(n1 > 0, self.mean + delta * share, other.mean), self.mean)
            variance = (1 - share) * self.std**2 + share * other.std**2 + share * (1 - share) * delta**2
        std = np.where(n1 == 0, other.std, np.where(n2 == 0, self.std, np.sqrt(variance)))
        categories = tuple(
            None if a is None else {key: a.get(key, 0) + b.get(key, 0) for key in {**a, **b}}
            for a, b in zip(self.categories, other.categories)
        )
        return ColumnStatistics(self.kinds, self.labels, self.count + other.count, mean, std, categories)

    def __radd__(self, other) -> "ColumnStatistics":
        # ``sum(statistics)`` starts from 0.
        if isinstance(other, numbers.Integral) and other == 0:
            return self
        return NotImplemented


def column_statistics(X, column_types=None) -> ColumnStatistics:
    """Mergeable per-column statistics of a table (a numpy array, a pandas DataFrame, or a
    Dask DataFrame or 2-D Dask Array).

    A Dask collection is handed to ``skmissvae.dask.column_statistics``, which computes
    the statistics of its partitions where they are and merges them, in one pass.

    Parameters
    ----------
    X : array-like, DataFrame, or Dask DataFrame or Array of shape (n_samples, n_features)
        Missing entries are NaN (None or ``pd.NA`` in a DataFrame).
    column_types : dict or None, default=None
        As the estimators' ``column_types``: the types that are not inferred.

    Returns
    -------
    statistics : ColumnStatistics
        Statistics of parts of a table add up (``+``) to those of the whole.
    """
    # Dask collections are recognised by their module, so that dask stays optional.
    if type(X).__module__.split(".")[0] in ("dask", "dask_expr"):
        from .dask import column_statistics as dask_column_statistics

        return dask_column_statistics(X, column_types)
    kinds = infer_column_types(X, column_types)
    frame = _as_frame(X)
    labels = tuple(frame.columns) if isinstance(X, pd.DataFrame) else tuple(range(frame.shape[1]))
    n = len(kinds)
    count, mean, std = np.zeros(n, dtype=np.int64), np.zeros(n), np.zeros(n)
    categories = []
    for j, kind in enumerate(kinds):
        series = frame.iloc[:, j]
        if kind in ("continuous", "semicontinuous"):
            values = ColumnCodec._continuous(series, labels[j], kind)[:, None]
            observed = ~np.isnan(values)
            count[j] = observed.sum()
            (mean[j],), (std[j],) = _mean_and_std(values, observed)
            categories.append(None)
        else:
            observed = series[series.notna()].to_numpy(dtype=object)
            count[j] = len(observed)
            values, counts = np.unique(pd.Series(observed, dtype=object).astype(str), return_counts=True)
            # Counts keyed by the values themselves (first occurrence of each text).
            first = {}
            for value in observed:
                first.setdefault(str(value), value)
            categories.append({first[text]: int(c) for text, c in zip(values, counts)})
    return ColumnStatistics(tuple(kinds), labels, count, mean, std, tuple(categories))


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
    lower_, upper_ : ndarray of shape (n_encoded,) or None
        Bounds of the imputed values of each encoded column (``set_bounds``); -inf and
        +inf for binary and one-hot columns. None: no bounds.
    integer_dtypes_ : list of (str or None) or None
        Per input column, the name of its integer dtype when it was a numeric column of
        integer dtype in a DataFrame at fit, else None. DataFrame outputs give such
        columns back in that dtype, rounded. None: no such column.
    """

    # Encoders rebuilt from older states have neither bounds nor integer columns.
    lower_ = upper_ = None
    integer_dtypes_ = None

    def __init__(self, kinds: list[str], keep_empty_features: bool = False) -> None:
        self.kinds = list(kinds)
        self.keep_empty_features = keep_empty_features

    # -- fit ------------------------------------------------------------------------
    def fit(self, X, labels=None, dtypes=None, statistics: "ColumnStatistics | None" = None) -> "TableEncoder":
        """Learn the layout and the standardisation from ``X``.

        ``X`` is a float array when every column is continuous (already validated), else
        the table as given. ``labels`` names the columns in ``column_types_`` (positions
        when None). ``dtypes`` are the column dtypes of a DataFrame as the caller passed
        it (numeric columns of integer dtype come back in it), None for arrays.
        ``statistics`` (``column_statistics`` of the whole table of which ``X`` may be a
        part) gives the standardisation of the continuous columns, the categories and
        binary levels, and which columns are empty, instead of ``X``.
        """
        if statistics is not None:
            _check_statistics(statistics, self.kinds)
        self.integer_dtypes_ = _integer_dtypes(dtypes, self.kinds)
        if all(kind == "continuous" for kind in self.kinds):
            self.codec_ = None
            values = np.asarray(X)
            observed = ~np.isnan(values)
            labels = range(values.shape[1]) if labels is None else labels
            self.column_types_ = dict.fromkeys(labels, "continuous")
        else:
            levels = None if statistics is None else list(statistics.categories)
            self.codec_ = ColumnCodec(self.kinds).fit(X, levels)
            values, observed = self.codec_.encode(X)
            self.column_types_ = {column.label: column.kind for column in self.codec_.columns_}
        # A table with discrete columns refuses empty columns (the codec checks).
        self.empty_ = ~observed.any(axis=0) if self.codec_ is None else np.zeros(len(self.kinds), bool)
        mean, scale = column_moments(values, observed)
        if statistics is not None:
            mean, scale = self._from_statistics(statistics, mean, scale)
        if self.codec_ is not None:
            mean, scale = self._restrict(mean, scale)
        self.mean_, self.scale_ = mean, scale
        return self

    def _from_statistics(self, statistics, mean, scale):
        """``mean`` and ``scale`` of the encoded columns with the numeric columns' taken
        from ``statistics``; columns without an observed value in them are empty."""
        mean, scale = mean.copy(), scale.copy()
        positions = range(len(self.kinds)) if self.codec_ is None else [c.start for c in self.codec_.columns_]
        for j, position in enumerate(positions):
            if self.kinds[j] in ("continuous", "semicontinuous"):
                mean[position] = statistics.mean[j]
                scale[position] = _scale_of(statistics.std[j:j + 1])[0]
        if self.codec_ is None:
            self.empty_ = statistics.count == 0
        return mean, scale

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

    def set_bounds(self, min_value=-np.inf, max_value=np.inf) -> "TableEncoder":
        """Bound the imputed values of the numeric columns (observed values are kept).

        Each bound is a number, applied to every continuous and semicontinuous column, or
        an array-like with one entry per input column; the entries of binary and
        categorical columns must then be -inf (lower) or +inf (upper).
        """
        n = self.n_features_in
        lower = _bound_per_column(min_value, "min_value", n, -np.inf)
        upper = _bound_per_column(max_value, "max_value", n, np.inf)
        crossed = np.flatnonzero(lower > upper)
        if len(crossed):
            raise ValueError(
                f"min_value must not exceed max_value; they do for column(s) "
                f"{', '.join(self._describe_column(j) for j in crossed[:5])}."
            )
        numeric = np.array([kind in ("continuous", "semicontinuous") for kind in self.kinds])
        for name, given, bound, free in (("min_value", min_value, lower, -np.inf),
                                         ("max_value", max_value, upper, np.inf)):
            wrong = np.flatnonzero(~numeric & (bound != free))
            if len(wrong) and np.ndim(given):  # a number bounds the numeric columns only
                raise ValueError(
                    f"{name} bounds numeric columns only; column(s) "
                    f"{', '.join(self._describe_column(j) for j in wrong[:5])} are binary or "
                    f"categorical: give them {free} in the array."
                )
        lower, upper = np.where(numeric, lower, -np.inf), np.where(numeric, upper, np.inf)
        if not (np.isfinite(lower).any() or np.isfinite(upper).any()):
            self.lower_ = self.upper_ = None
            return self
        starts = self._encoded_positions()
        n_encoded = len(self.mean_)
        self.lower_, self.upper_ = np.full(n_encoded, -np.inf), np.full(n_encoded, np.inf)
        self.lower_[starts], self.upper_[starts] = lower, upper
        return self

    def _describe_column(self, j: int) -> str:
        return repr(list(self.column_types_)[j])

    def _encoded_positions(self) -> np.ndarray:
        """The encoded column of each input column (the first of a one-hot block)."""
        if self.codec_ is None:
            return np.arange(self.n_features_in)
        return np.array([column.start for column in self.codec_.columns_], dtype=np.int64)

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

        Observed entries are taken from ``values`` unchanged (bit for bit); the others are
        clipped to the bounds (``set_bounds``).
        """
        filled = self.clip(self.unstandardise(standardised), values.dtype)
        return np.where(observed, values, filled)

    def clip(self, filled: np.ndarray, dtype) -> np.ndarray:
        """Encoded values ``[..., D]`` in the data's units, as ``dtype``, within the bounds."""
        filled = filled.astype(dtype, copy=False)
        if self.lower_ is None:
            return filled
        return np.clip(filled, self.lower_.astype(dtype), self.upper_.astype(dtype))

    def output_features(self) -> np.ndarray:
        """Boolean mask of the input columns that outputs keep (``keep_empty_features``)."""
        if self.keep_empty_features:
            return np.ones(self.n_features_in, dtype=bool)
        return ~self.empty_

    def decode(self, completed: np.ndarray, values: np.ndarray, X):
        """A completed encoded table ``[N, D]`` as ``transform`` returns it for ``X``.

        A DataFrame gives a DataFrame, whose columns of integer dtype at fit come back in
        that dtype (imputations rounded, within the bounds).
        """
        out = self._handle_empty_features(completed, values)
        if not isinstance(X, pd.DataFrame):
            return out if self.codec_ is None else self.codec_.decode(out).to_numpy()
        if self.codec_ is not None:
            frame = self.codec_.decode(out, index=X.index)
        else:
            frame = pd.DataFrame(out, columns=X.columns[self.output_features()], index=X.index)
        for position, j in self._integer_outputs(values):
            column = frame.iloc[:, position].to_numpy()
            imputed = self._imputed_entries(values, j)
            dtype = pd.api.types.pandas_dtype(self.integer_dtypes_[j])
            frame.isetitem(position, pd.Series(self._round(column, imputed, j, dtype), index=frame.index,
                                               dtype=dtype))
        return frame

    def decode_draws(self, draws: np.ndarray, values: np.ndarray, X):
        """Completed copies ``[M, N, D]`` as ``sample_imputations`` returns them for ``X``.

        For a numeric table, a float array; the imputations of a DataFrame's integer
        columns are rounded (within the bounds).
        """
        if self.is_numeric:
            out = self._handle_empty_features(draws, values)
            if self.codec_ is not None:  # encoded columns (semicontinuous last) in input order
                out = out[..., self._encoded_positions()]
            if isinstance(X, pd.DataFrame) and self._integer_outputs(values):
                out = out.copy()
                for position, j in self._integer_outputs(values):
                    dtype = pd.api.types.pandas_dtype(self.integer_dtypes_[j])
                    imputed = self._imputed_entries(values, j)
                    out[..., position] = self._round(out[..., position], imputed, j, dtype)
            return out
        copies = [self.decode(copy_, values, X) for copy_ in draws]
        return copies if isinstance(X, pd.DataFrame) else np.stack(copies)

    def _integer_outputs(self, values: np.ndarray) -> list[tuple[int, int]]:
        """``(output position, input column)`` of the kept columns of integer dtype at fit
        whose observed values in ``values`` are whole numbers (a column that now holds
        fractions stays float)."""
        if self.integer_dtypes_ is None:
            return []
        kept = self.output_features()
        positions = np.cumsum(kept) - 1
        encoded = self._encoded_positions()

        def whole(j):
            column = values[:, encoded[j]]
            observed = column[~np.isnan(column)]
            info = np.iinfo(getattr(pd.api.types.pandas_dtype(self.integer_dtypes_[j]), "numpy_dtype",
                                    pd.api.types.pandas_dtype(self.integer_dtypes_[j])))
            in_range = np.all((observed >= info.min) & (observed <= np.nextafter(float(info.max), 0.0)))
            return bool(np.all(observed == np.round(observed)) and in_range)

        return [(int(positions[j]), j) for j, dtype in enumerate(self.integer_dtypes_)
                if dtype is not None and kept[j] and whole(j)]

    def _imputed_entries(self, values: np.ndarray, j: int) -> np.ndarray:
        """Rows whose entry of input column ``j`` was missing: ``[N]``."""
        return np.isnan(values[:, self._encoded_positions()[j]])

    def _round(self, column: np.ndarray, imputed: np.ndarray, j: int, dtype) -> np.ndarray:
        """Whole numbers for an integer column ``[..., N]``: imputations rounded, then kept
        within the bounds and the range of ``dtype``; observed values as they are."""
        info = np.iinfo(getattr(dtype, "numpy_dtype", dtype))
        e = self._encoded_positions()[j]
        # The largest float that the dtype holds (2**63 - 1 rounds up to 2**63 as a float).
        lower, upper = float(info.min), float(info.max) if int(float(info.max)) == info.max else \
            np.nextafter(float(info.max), 0.0)
        if self.lower_ is not None:
            lower, upper = max(lower, np.ceil(self.lower_[e])), min(upper, np.floor(self.upper_[e]))
        rounded = np.clip(np.round(column.astype(np.float64)), lower, upper)
        return np.where(imputed, rounded, column)

    def _handle_empty_features(self, out: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Drop the columns empty at fit from ``out [..., N, D]``, or fill their gaps with 0."""
        empty = self.empty_
        if not empty.any():
            return out
        if not self.keep_empty_features:
            return out[..., ~empty]
        out = out.copy()
        # scikit-learn's convention (SimpleImputer): an empty feature is imputed with 0
        # (within the bounds).
        fill = np.zeros(empty.sum()) if self.lower_ is None else np.clip(
            0.0, self.lower_[self._encoded_positions()[empty]], self.upper_[self._encoded_positions()[empty]])
        out[..., empty] = np.where(np.isnan(values[:, empty]), fill.astype(out.dtype), values[:, empty])
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
            "lower": None if self.lower_ is None else torch.from_numpy(np.asarray(self.lower_, np.float64)),
            "upper": None if self.upper_ is None else torch.from_numpy(np.asarray(self.upper_, np.float64)),
            "integer_dtypes": None if self.integer_dtypes_ is None else list(self.integer_dtypes_),
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
        if state.get("lower") is not None:  # states without bounds: none
            encoder.lower_ = state["lower"].numpy().copy()
            encoder.upper_ = state["upper"].numpy().copy()
        encoder.integer_dtypes_ = state.get("integer_dtypes")
        return encoder


def _integer_dtypes(dtypes, kinds) -> list | None:
    """The integer dtype's name of each numeric column of ``dtypes`` (None elsewhere)."""
    if dtypes is None:
        return None
    names = [
        str(dtype) if kind in ("continuous", "semicontinuous") and pd.api.types.is_integer_dtype(dtype)
        and not pd.api.types.is_bool_dtype(dtype) else None
        for dtype, kind in zip(dtypes, kinds)
    ]
    return names if any(name is not None for name in names) else None


def _bound_per_column(bound, name: str, n_features: int, default: float) -> np.ndarray:
    """A ``min_value`` or ``max_value`` as one float per input column, or a named error."""
    if isinstance(bound, numbers.Real) and not isinstance(bound, bool):
        array = np.full(n_features, float(bound))
    else:
        try:
            array = np.asarray(bound, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(
                f"{name} must be a number or an array-like of {n_features} numbers, got {bound!r}."
            ) from None
        if array.shape != (n_features,):
            raise ValueError(
                f"{name} should be of shape ({n_features},) when an array-like is provided "
                f"(one bound per input column); got shape {array.shape}."
            )
    if np.isnan(array).any():
        raise ValueError(f"{name} must not be NaN; use {default} for no bound.")
    return array


def _check_statistics(statistics, kinds) -> None:
    if not isinstance(statistics, ColumnStatistics):
        raise TypeError(f"column_statistics must come from skmissvae.column_statistics, got {type(statistics).__name__}.")
    if list(statistics.kinds) != list(kinds):
        raise ValueError(
            f"column_statistics describe columns of types {list(statistics.kinds)}, but X has "
            f"{list(kinds)}; compute them with the same column_types."
        )
    if "semicontinuous" in kinds:
        raise ValueError("column_statistics do not hold the point masses of semicontinuous columns; "
                         "fit such tables without column_statistics.")
