"""scikit-learn estimators: the VAE imputers."""

from ._demissvae import DeMissVAEImputer
from ._ensemble import VAEEnsembleImputer
from ._mixture_vae import METHODS, MixtureVAEImputer

__all__ = ["METHODS", "DeMissVAEImputer", "MixtureVAEImputer", "VAEEnsembleImputer"]
