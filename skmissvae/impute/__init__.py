"""scikit-learn estimators: the VAE imputers."""

from ._mixture_vae import METHODS, MixtureVAEImputer

__all__ = ["METHODS", "MixtureVAEImputer"]
