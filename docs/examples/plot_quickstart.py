"""
Impute a table and look at the fit
==================================

Fit the default imputer (MissSIWAE) to a table with half of its cells missing, compare its
imputations with the column means, and check the training curves and the distribution of
the imputed values. The model is kept tiny so that this page builds in seconds: raise
``max_iter`` (default 200) and ``hidden_width`` (default 128) for real data.
"""

import numpy as np

from skmissvae import MixtureVAEImputer
from skmissvae.datasets import make_mcar, make_mixture_of_gaussians
from skmissvae.evaluation import imputation_rmse
from skmissvae.plotting import plot_imputed_distributions, plot_training_curves

X, mixture = make_mixture_of_gaussians(2000, random_state=0)
X_missing, observed = make_mcar(X, 0.5, random_state=0)
print(f"{X_missing.shape[0]} rows x {X_missing.shape[1]} columns, "
      f"{np.isnan(X_missing).mean():.0%} of the cells missing")

# %%
# Fit and impute
# --------------
# ``transform`` fills each missing cell with the model's conditional mean
# ``E[x_missing | x_observed]``; observed cells come back unchanged.
imputer = MixtureVAEImputer(latent_dim=2, hidden_width=64, max_iter=30, random_state=0)
X_imputed = imputer.fit_transform(X_missing)

column_means = np.broadcast_to(np.nanmean(X_missing, axis=0), X.shape)
print(f"RMSE on the missing cells: {imputation_rmse(X, X_imputed, ~observed):.3f} "
      f"(column means {imputation_rmse(X, column_means, ~observed):.3f}, Bayes-optimal "
      f"{imputation_rmse(X, mixture.conditional_mean(X_missing), ~observed):.3f})")

# %%
# This tiny model, trained for 30 epochs, gains little on the column means; the
# Benchmarks page shows what the default settings reach on this kind of table.

# %%
# Training curves
# ---------------
# The objective per row on the training batches and on the held-out validation rows; the
# dotted line marks the epoch whose weights were kept. A curve still rising at the end
# (and a ``ConvergenceWarning``) says that ``max_iter`` was too small.
plot_training_curves(imputer)

# %%
# Observed and imputed values
# ---------------------------
# One draw per missing cell from the model's conditional distribution, against the
# observed values of the same column. The cells are missing completely at random here,
# so both histograms should look alike.
fig = plot_imputed_distributions(imputer, X_missing)
