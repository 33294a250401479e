"""Column types of mixed tables: inference, encoding to a float matrix, decoding.

The VAE sees a table as a float matrix whose columns are grouped into blocks: all
continuous columns (standardised later by ``skmissvae._table``, Gaussian likelihood), all
semicontinuous columns (continuous with a point mass at their most frequent value, which
the standardisation moves to 0; zero-inflated Gaussian likelihood), all binary columns
(0/1, Bernoulli likelihood), then one block of one-hot columns per categorical column
(softmax likelihood). ``ColumnCodec`` learns that layout in ``fit`` and converts
between the caller's table and the matrix; missing values become ``NaN`` (a missing
categorical value makes its whole one-hot block ``NaN``, i.e. unobserved).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["KINDS", "infer_column_types", "ColumnCodec"]

#: The column types a table may hold.
KINDS = ("continuous", "semicontinuous", "binary", "categorical")

# Block kinds of ``skmissvae.core.likelihoods.MixedLikelihood`` per column type.
_LIKELIHOOD_OF = {
    "continuous": "gaussian",
    "semicontinuous": "zero_inflated",
    "binary": "bernoulli",
    "categorical": "categorical",
}
# Column types whose values are numbers, standardised by the table encoder.
_NUMERIC = ("continuous", "semicontinuous")
# How many distinct values are listed in an error message.
_SHOW = 5


def _as_frame(X) -> pd.DataFrame:
    """``X`` as a DataFrame without copying a DataFrame; arrays get positional columns."""
    if isinstance(X, pd.DataFrame):
        return X
    array = np.asarray(X)
    if array.ndim != 2:
        raise ValueError(f"Expected a 2D table, got an array of shape {array.shape}.")
    return pd.DataFrame(array)


def _name(frame: pd.DataFrame, position: int, is_frame: bool) -> object:
    return frame.columns[position] if is_frame else position


def _infer_kind(column: pd.Series, label) -> str:
    """A column's type from its pandas dtype (see ``infer_column_types``)."""
    dtype = column.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return "categorical"
    if pd.api.types.is_bool_dtype(dtype):
        return "binary"
    if pd.api.types.is_numeric_dtype(dtype):
        return "continuous"
    if pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype):
        inferred = pd.api.types.infer_dtype(column, skipna=True)
        if inferred == "boolean":
            return "binary"
        if inferred in ("integer", "floating", "mixed-integer-float", "decimal", "empty"):
            return "continuous"  # numbers held as objects convert to float as before
        return "categorical"
    # Other dtypes (dates, ...) count as continuous: numeric validation names and rejects them.
    return "continuous"


def _position_of(key, frame: pd.DataFrame, is_frame: bool) -> int:
    """Position of the column that a ``column_types`` key names (label first, then index)."""
    if is_frame and key in frame.columns:
        position = frame.columns.get_loc(key)
        if isinstance(position, numbers.Integral):
            return int(position)
        raise ValueError(f"column_types key {key!r} names more than one column.")
    if isinstance(key, numbers.Integral) and not isinstance(key, bool) and 0 <= key < frame.shape[1]:
        return int(key)
    raise ValueError(
        f"column_types names column {key!r}, which is neither a column label nor a "
        f"position in 0..{frame.shape[1] - 1}."
    )


def infer_column_types(X, column_types=None) -> list[str]:
    """The type of every column of ``X``: inferred, then overridden by ``column_types``.

    Parameters
    ----------
    X : array-like or DataFrame of shape (n_samples, n_features)
    column_types : dict or None, default=None
        ``{column label or position: "continuous" | "semicontinuous" | "binary" |
        "categorical"}``. Semicontinuous columns are never inferred; declare them.
        Undeclared columns of a DataFrame are inferred from their dtype: ``category`` and
        object/string columns are categorical (object columns holding only booleans are
        binary, only numbers continuous), ``bool`` and ``boolean`` columns binary, numbers
        continuous. Undeclared columns of an array are continuous.

    Returns
    -------
    kinds : list of str
        One entry of ``KINDS`` per column, in column order.
    """
    frame = _as_frame(X)
    is_frame = isinstance(X, pd.DataFrame)
    if is_frame:
        kinds = [_infer_kind(frame.iloc[:, j], frame.columns[j]) for j in range(frame.shape[1])]
    else:
        kinds = ["continuous"] * frame.shape[1]
    if column_types is None:
        return kinds
    if not isinstance(column_types, dict):
        raise TypeError(f"column_types must be a dict or None, got {type(column_types).__name__}.")
    for key, kind in column_types.items():
        if kind not in KINDS:
            raise ValueError(
                f"column_types[{key!r}] is {kind!r}; expected one of {', '.join(map(repr, KINDS))}."
            )
        kinds[_position_of(key, frame, is_frame)] = kind
    return kinds


def _sorted_levels(values: np.ndarray) -> np.ndarray:
    """Distinct values, sorted (by their text where types do not compare), as objects."""
    unique = pd.unique(pd.Series(values, dtype=object))
    try:
        ordered = sorted(unique)
    except TypeError:
        ordered = sorted(unique, key=lambda v: (type(v).__name__, str(v)))
    out = np.empty(len(ordered), dtype=object)
    out[:] = ordered
    return out


def _describe(values) -> str:
    values = list(values)
    shown = ", ".join(repr(v) for v in values[:_SHOW])
    return shown + (f", ... ({len(values)} in all)" if len(values) > _SHOW else "")


@dataclass
class _Column:
    """What the encoder learned about one input column."""

    label: object  # the column's label (its position for arrays)
    kind: str
    dtype: object  # dtype at fit, restored on decode
    start: int  # encoded columns start:stop
    stop: int
    levels: np.ndarray | None = None  # binary levels / categories, sorted, as objects
    atom: float | None = None  # semicontinuous: the value of the point mass


class ColumnCodec:
    """Encode a mixed-type table as a float matrix with one-hot blocks, and back.

    Parameters
    ----------
    kinds : list of str
        The type of every column (``infer_column_types``).

    Attributes
    ----------
    columns_ : list of _Column
        Per input column, in input order: type, fit dtype, encoded columns, levels.
    n_encoded_ : int
        Width of the encoded matrix.
    blocks_ : list of (str, int)
        ``MixedLikelihood`` blocks (kind, width) in encoded column order: all continuous
        columns, all semicontinuous columns, all binary columns, then each categorical
        column's one-hot block.
    continuous_ : ndarray of bool of shape (n_encoded_,)
        Which encoded columns hold numbers, continuous or semicontinuous (only those are
        standardised).
    numeric_only_ : bool
        Whether every column is continuous or semicontinuous (the encoded matrix is then
        the table itself).
    atoms_ : ndarray of shape (n_encoded_,)
        The point mass of each semicontinuous column: its most frequent observed value
        (the smallest, on ties); NaN for the other columns.
    """

    def __init__(self, kinds: list[str]) -> None:
        self.kinds = list(kinds)

    # -- fit ---------------------------------------------------------------------------
    def fit(self, X, levels=None) -> "ColumnCodec":
        """Learn each column's levels (binary) or categories (categorical) from ``X``.

        ``levels`` (one entry per column, None for the numeric ones) gives them instead,
        e.g. from the column statistics of a whole table of which ``X`` is a part.
        """
        frame, is_frame = _as_frame(X), isinstance(X, pd.DataFrame)
        if frame.shape[1] != len(self.kinds):
            raise ValueError(f"Expected {len(self.kinds)} columns, got {frame.shape[1]}.")
        # Encoded order: continuous, then binary, then one block per categorical column.
        order = sorted(range(len(self.kinds)), key=lambda j: KINDS.index(self.kinds[j]))
        columns: list[_Column | None] = [None] * len(self.kinds)
        start = 0
        for j in order:
            kind, series = self.kinds[j], frame.iloc[:, j]
            label = _name(frame, j, is_frame)
            if not series.notna().any():
                raise ValueError(
                    f"Column {label!r} has no observed value; a table with binary or "
                    "categorical columns cannot learn anything about it. Drop it first."
                )
            given = None if levels is None else levels[j]
            column_levels = atom = None
            if kind == "semicontinuous":
                atom = self._most_frequent(self._continuous(series, label, kind))
            elif kind == "binary":
                column_levels = self._binary_levels(series if given is None else pd.Series(list(given), dtype=object), label)
            elif kind == "categorical":
                column_levels = _sorted_levels(series[series.notna()].to_numpy(dtype=object)
                                               if given is None else np.asarray(list(given), dtype=object))
            width = len(column_levels) if kind == "categorical" else 1
            columns[j] = _Column(label, kind, series.dtype, start, start + width, column_levels, atom)
            start += width
        return self._set_layout(columns, is_frame)

    def _set_layout(self, columns: list[_Column], is_frame: bool) -> "ColumnCodec":
        """Set the fitted attributes that follow from the columns (in input order)."""
        self.columns_ = columns
        self.n_encoded_ = max(column.stop for column in columns)
        blocks: list[list] = []
        for column in sorted(columns, key=lambda c: c.start):
            kind = _LIKELIHOOD_OF[column.kind]
            if column.kind == "categorical" or not blocks or blocks[-1][0] != kind:
                blocks.append([kind, 0])
            blocks[-1][1] += column.stop - column.start
        self.blocks_ = [tuple(block) for block in blocks]
        self.continuous_ = np.zeros(self.n_encoded_, dtype=bool)
        self.atoms_ = np.full(self.n_encoded_, np.nan)
        for column in columns:
            if column.kind in _NUMERIC:
                self.continuous_[column.start] = True
            if column.kind == "semicontinuous":
                self.atoms_[column.start] = column.atom
        self.numeric_only_ = all(column.kind in _NUMERIC for column in columns)
        self.is_frame_ = is_frame
        return self

    def restrict_statistics(self, mean: np.ndarray, scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Standardise numeric columns only: mean 0 and scale 1 for the others.

        Binary and one-hot columns must stay 0/1 for their likelihoods, and with scale 1
        they add nothing to the standardisation's Jacobian in ``score_samples``. A
        semicontinuous column is centred on its atom instead of its mean, so that the
        point mass sits at exactly 0, where the zero-inflated likelihood puts it.
        """
        centre = np.where(np.isnan(self.atoms_), mean, self.atoms_)
        return np.where(self.continuous_, centre, 0.0), np.where(self.continuous_, scale, 1.0)

    def at_atom(self, values: np.ndarray) -> np.ndarray:
        """Where ``values`` (``[..., n_encoded_]``) equal their semicontinuous column's atom.

        These entries have a probability, not a density: ``score_samples`` leaves them out
        of the standardisation's Jacobian.
        """
        return values == self.atoms_  # NaN atoms (other columns) never compare equal

    @staticmethod
    def _most_frequent(values: np.ndarray) -> float:
        observed = values[~np.isnan(values)]
        distinct, counts = np.unique(observed, return_counts=True)
        return float(distinct[np.argmax(counts)])  # np.unique sorts: ties give the smallest

    @staticmethod
    def _binary_levels(series: pd.Series, label) -> np.ndarray:
        observed = series[series.notna()].to_numpy(dtype=object)
        levels = _sorted_levels(observed)
        if all(isinstance(v, (bool, np.bool_)) for v in levels):
            levels = np.array([False, True], dtype=object)  # both levels, even if one is unseen
        elif len(levels) and set(levels) <= {0, 1}:
            levels = np.array([0, 1], dtype=object)
        if len(levels) > 2:
            raise ValueError(
                f"Binary column {label!r} has {len(levels)} distinct values "
                f"({_describe(levels)}); declare it 'categorical' in column_types."
            )
        return levels

    # -- plain state (safe save files) -----------------------------------------------
    def get_state(self) -> dict:
        """The fitted layout as plain Python values (see ``from_state``)."""
        return {
            "kinds": list(self.kinds),
            "is_frame": bool(self.is_frame_),
            "columns": [
                {
                    "label": _plain(column.label, "a column label"),
                    "kind": column.kind,
                    "dtype": _dtype_state(column.dtype),
                    "start": column.start,
                    "stop": column.stop,
                    "levels": None if column.levels is None
                    else [_plain(v, f"a level of column {column.label!r}") for v in column.levels],
                    "atom": column.atom,
                }
                for column in self.columns_
            ],
        }

    @classmethod
    def from_state(cls, state: dict) -> "ColumnCodec":
        """Rebuild a fitted codec from ``get_state()``'s output."""
        codec = cls(state["kinds"])
        columns = []
        for entry in state["columns"]:
            levels = entry["levels"]
            if levels is not None:
                array = np.empty(len(levels), dtype=object)
                array[:] = levels
                levels = array
            columns.append(_Column(entry["label"], entry["kind"], _dtype_from_state(entry["dtype"]),
                                   entry["start"], entry["stop"], levels, entry["atom"]))
        codec._set_layout(columns, state["is_frame"])
        return codec

    # -- encode ------------------------------------------------------------------------
    def encode(self, X) -> tuple[np.ndarray, np.ndarray]:
        """Encode ``X`` as ``(values, observed)``, both of shape ``(n_samples, n_encoded_)``.

        ``values`` is float64 with ``NaN`` at missing entries: a continuous value, a
        binary level's index (0/1) or a one-hot block; ``observed = ~isnan(values)``.
        Raises ``ValueError`` naming the column for values unseen in ``fit``.
        """
        frame = _as_frame(X)
        if frame.shape[1] != len(self.columns_):
            raise ValueError(
                f"X has {frame.shape[1]} columns; the encoder was fitted on {len(self.columns_)}."
            )
        values = np.full((frame.shape[0], self.n_encoded_), np.nan)
        for j, column in enumerate(self.columns_):
            series = frame.iloc[:, j]
            if column.kind in _NUMERIC:
                values[:, column.start] = self._continuous(series, column.label, column.kind)
                continue
            codes = self._codes(series, column)  # -1 where missing
            if column.kind == "binary":
                values[:, column.start] = np.where(codes >= 0, codes, np.nan)
            else:
                block = np.zeros((len(codes), column.stop - column.start))
                block[np.flatnonzero(codes >= 0), codes[codes >= 0]] = 1.0
                block[codes < 0] = np.nan  # a missing category hides the whole block
                values[:, column.start : column.stop] = block
        return values, ~np.isnan(values)

    @staticmethod
    def _continuous(series: pd.Series, label, kind: str) -> np.ndarray:
        try:
            numbers_ = pd.to_numeric(series, errors="raise")
            out = np.asarray(numbers_.astype("float64").to_numpy(na_value=np.nan), dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"{kind.capitalize()} column {label!r} holds values that are not numbers ({error}); "
                "declare it 'categorical' or 'binary' in column_types."
            ) from None
        if np.isinf(out).any():
            raise ValueError(
                f"{kind.capitalize()} column {label!r} contains infinity; use NaN for missing values."
            )
        return out

    @staticmethod
    def _codes(series: pd.Series, column: _Column) -> np.ndarray:
        """Index of each value in the column's levels; -1 where missing."""
        missing = series.isna().to_numpy()
        objects = series.to_numpy(dtype=object)
        # Hash lookup on objects: 1, 1.0 and True match the same level, as in a dict.
        codes = pd.Index(column.levels, dtype=object).get_indexer(objects).astype(np.int64)
        codes[missing] = -1
        unseen = objects[(codes < 0) & ~missing]
        if len(unseen):
            raise ValueError(
                f"{column.kind.capitalize()} column {column.label!r} has values not seen "
                f"during fit: {_describe(_sorted_levels(unseen))}. "
                f"Known values: {_describe(column.levels)}."
            )
        return codes

    # -- decode ------------------------------------------------------------------------
    def decode(self, values: np.ndarray, index=None) -> pd.DataFrame:
        """The table of an encoded matrix without missing entries, in the fit dtypes.

        Continuous columns come back as floats (a float column keeps its dtype; others
        become float64). Binary columns take the level of probability >= 0.5, categorical
        columns the category with the largest entry of its block (for imputed blocks:
        the most probable category); both come back in the column's dtype at fit (bool,
        ``boolean``, integer or ``category`` dtypes are kept).
        """
        data = {}
        for j, column in enumerate(self.columns_):
            block = values[:, column.start : column.stop]
            if column.kind in _NUMERIC:
                data[j] = pd.Series(block[:, 0], index=index).astype(self._float_dtype(column.dtype))
                continue
            if column.kind == "binary":
                codes = (block[:, 0] >= 0.5).astype(np.int64)
                codes = np.minimum(codes, len(column.levels) - 1)  # a single observed level
            else:
                codes = np.argmax(block, axis=1)
            data[j] = self._restore(column.levels[codes], column, index)
        frame = pd.DataFrame(data, index=index)
        # Positions as keys above, labels now: labels may repeat or look like positions.
        labels = [column.label for column in self.columns_]
        frame.columns = pd.Index(labels) if self.is_frame_ else range(len(labels))
        return frame

    @staticmethod
    def _float_dtype(dtype) -> object:
        if isinstance(dtype, np.dtype) and dtype.kind == "f":
            return dtype
        return np.float64

    @staticmethod
    def _restore(levels: np.ndarray, column: _Column, index) -> pd.Series:
        """Decoded values (objects) as a Series in the column's fit dtype, where possible."""
        series = pd.Series(levels, index=index, dtype=object)
        dtype = column.dtype
        if column.kind == "binary" and all(isinstance(v, (bool, np.bool_)) for v in column.levels):
            # bool and "boolean" stay; booleans held as objects (missing allowed) become bool.
            return series.astype(dtype if pd.api.types.is_bool_dtype(dtype) else bool)
        try:
            return series.astype(dtype)
        except (TypeError, ValueError):
            return series


def _plain(value, what: str):
    """``value`` as a plain Python number, string or bool, for a safe save file."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(
        f"Cannot save {what} of type {type(value).__name__} ({value!r}): a save file holds "
        "only numbers, strings and booleans. Use pickle or joblib for this estimator."
    )


def _dtype_state(dtype) -> dict:
    """A column dtype as plain values; categories of a ``category`` dtype included."""
    if isinstance(dtype, pd.CategoricalDtype):
        categories = [_plain(v, "a category") for v in dtype.categories]
        return {"name": "category", "categories": categories, "ordered": bool(dtype.ordered)}
    return {"name": str(dtype)}


def _dtype_from_state(state: dict):
    if state["name"] == "category":
        return pd.CategoricalDtype(state["categories"], ordered=state["ordered"])
    return pd.api.types.pandas_dtype(state["name"])
