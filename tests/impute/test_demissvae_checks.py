"""scikit-learn's estimator checks on DeMissVAEImputer (fast settings, both samplers)."""

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from _helpers import FAST_PARAMS
from skmissvae import DeMissVAEImputer

# The shared fast settings, smaller still: the checks fit many times per sampler.
FAST = dict(
    FAST_PARAMS, batch_size=16, max_iter=2, n_impute_samples=10, n_score_samples=20,
    n_imputations=2, lair_iterations=2, n_transform_sweeps=1, pool_size=20, random_state=0,
)

ESTIMATORS = [
    DeMissVAEImputer(**FAST),
    DeMissVAEImputer(**FAST, sampler="pseudo_gibbs", encoder_uses_mask=True),
    # Early stopping on (validation rows in the imputation store, best-state restore) and
    # the training imputations kept as a fitted attribute.
    DeMissVAEImputer(
        **{**FAST, "early_stopping": True, "n_iter_no_change": 1, "max_iter": 3},
        keep_imputations=True,
    ),
    # The options shared with scikit-learn's imputers.
    DeMissVAEImputer(**FAST, missing_values=-12345, add_indicator=True, min_value=-1e3, max_value=1e3, n_jobs=1),
]

@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@parametrize_with_checks(ESTIMATORS)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
