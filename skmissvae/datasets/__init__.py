"""Synthetic data with known densities and missingness generators (numpy only)."""

from ._missingness import make_mar, make_mcar, make_mnar
from ._mog import MixtureOfGaussians, make_mixture_of_gaussians

__all__ = ["MixtureOfGaussians", "make_mar", "make_mcar", "make_mixture_of_gaussians", "make_mnar"]
