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
]

_MONTE_CARLO = (
    "score_samples is a Monte-Carlo (IWELBO) estimate; one torch.Generator seeded from "
    "random_state serves a whole call, so a row's draws depend on which rows share its "
    "batch and in what order. Deterministic per call, not per row."
)

EXPECTED_FAILED_CHECKS = {
    "check_methods_subset_invariance": _MONTE_CARLO,
    "check_methods_sample_order_invariance": _MONTE_CARLO,
}


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@parametrize_with_checks(ESTIMATORS, expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
