"""skmissvae: variational autoencoders for incomplete tabular data.

Fit VAEs to tables with missing values, impute them (single and multiple imputation) and
score them, following Simkus & Gutmann, "Improving Variational Autoencoder Estimation from
Incomplete Data with Mixture Variational Families" (TMLR 2024).
"""

from .impute import METHODS, MixtureVAEImputer

__version__ = "0.1.0"

__all__ = ["METHODS", "MixtureVAEImputer", "__version__"]
