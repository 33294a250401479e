"""The one home of imports from scikit-learn's private modules (they move between releases)."""

from sklearn.base import _fit_context
from sklearn.utils._param_validation import Interval, MissingValues, StrOptions

__all__ = ["Interval", "MissingValues", "StrOptions", "_fit_context"]
