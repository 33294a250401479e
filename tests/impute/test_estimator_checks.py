"""scikit-learn's estimator checks on every variant of MixtureVAEImputer (fast settings)."""

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from _helpers import FAST_PARAMS
from skmissvae import METHODS, MixtureVAEImputer

# The shared fast settings, smaller still: the checks fit many times per variant.
FAST = dict(FAST_PARAMS, batch_size=16, max_iter=2, n_impute_samples=10, n_score_samples=20, random_state=0)


def _variant(method):
    params = dict(METHODS[method])
    if params["n_components"] > 1:
        params.update(n_components=2, n_particles=4)
    return MixtureVAEImputer(**params, **FAST)


ESTIMATORS = [_variant(method) for method in sorted(METHODS)] + [
    # The default variant with early stopping on (validation split, best-state restore).
    MixtureVAEImputer(
        **{**FAST, "early_stopping": True, "n_iter_no_change": 1, "max_iter": 3},
        n_components=2,
        n_particles=2,
    ),
    # The options shared with scikit-learn's imputers.
    MixtureVAEImputer(**FAST, n_components=2, n_particles=2, missing_values=-12345, add_indicator=True,
                      min_value=-1e3, max_value=1e3, n_jobs=1),
]

@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.filterwarnings("ignore:.*partial_fit standardises the data with the first block:UserWarning")
@parametrize_with_checks(ESTIMATORS)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
