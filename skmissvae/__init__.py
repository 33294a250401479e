"""skmissvae: variational autoencoders for incomplete tabular data.

Fit VAEs to tables with missing values, impute them (single and multiple imputation) and
score them, following Simkus & Gutmann, "Improving Variational Autoencoder Estimation from
Incomplete Data with Mixture Variational Families" (TMLR 2024).
"""

__version__ = "0.1.0"

__all__ = [
    "METHODS",
    "DeMissVAEImputer",
    "MixtureVAEImputer",
    "VAEEnsembleImputer",
    "__version__",
    "column_statistics",
    "load",
    "save",
]


def __getattr__(name):
    # Lazy (PEP 562): ``import skmissvae.core`` must not pull in scikit-learn.
    if name in ("save", "load"):
        from . import _persistence

        return getattr(_persistence, name)
    if name == "column_statistics":
        from ._table import column_statistics

        return column_statistics
    if name in __all__:
        from . import impute

        return getattr(impute, name)
    raise AttributeError(f"module 'skmissvae' has no attribute {name!r}")
