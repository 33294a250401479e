"""
Tuning without labels
=====================

``score`` is the mean estimated log-likelihood of the observed cells of held-out rows:
higher is better, and it needs no complete data. ``GridSearchCV`` can therefore choose the
method and its size on the incomplete table itself. Scores compare models fitted to the
same columns (they are in nats per row, in the data's units).
"""

import pandas as pd
from sklearn.model_selection import GridSearchCV

from skmissvae import MixtureVAEImputer
from skmissvae.datasets import make_mcar, make_mixture_of_gaussians

X, _ = make_mixture_of_gaussians(1500, random_state=0)
X_missing, _ = make_mcar(X, 0.5, random_state=0)

search = GridSearchCV(
    MixtureVAEImputer(latent_dim=2, hidden_width=32, max_iter=15, n_score_samples=200,
                      random_state=0),
    # MIWAE (one Gaussian) against MissSIWAE (a mixture of five)
    param_grid={"n_components": [1, 5]},
    cv=2,
)
search.fit(X_missing)

results = pd.DataFrame(search.cv_results_)[["param_n_components", "mean_test_score", "std_test_score"]]
print(results.to_string(index=False))
print("best:", search.best_params_)

# %%
# With 15 epochs of training the two are within the spread of the folds; a real search
# needs the training length it will be used with.
#
# ``search.best_estimator_`` is refitted on all rows and imputes like any other imputer.
# For a real search, train longer (``max_iter``), try ``latent_dim`` and ``hidden_width``
# too, and use ``n_jobs`` to fit the candidates in parallel.
X_imputed = search.best_estimator_.transform(X_missing)
