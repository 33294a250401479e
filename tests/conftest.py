"""Shared fixtures: fast estimator settings, small incomplete tables, the ``gpu`` marker."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from skmissvae import METHODS, MixtureVAEImputer

from _helpers import FAST_PARAMS, correlated_table

# The test models are tiny: several threads only add synchronisation overhead (a loaded
# 2-core machine ran the suite 8x slower with torch's default thread count).
torch.set_num_threads(1)


def method_params(method: str) -> dict:
    """The paper's ``method`` as parameters, with 2 components (and 4 particles) for speed."""
    params = dict(METHODS[method])
    if params["n_components"] > 1:
        params["n_components"] = 2
        params["n_particles"] = 4  # a multiple of n_components, as stratified needs
    else:
        params["n_particles"] = 3
    return params


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(params=sorted(METHODS), ids=str)
def method(request) -> str:
    """Each of the paper's six finite-mixture methods in turn."""
    return request.param


@pytest.fixture(scope="session")
def make_imputer():
    """Factory: ``make_imputer(method="MissSIWAE", **overrides)`` with fast settings."""

    def make(method: str = "MissSIWAE", **overrides) -> MixtureVAEImputer:
        params = {**FAST_PARAMS, **method_params(method), "random_state": 0}
        params.update(overrides)
        return MixtureVAEImputer(**params)

    return make


@pytest.fixture(scope="session")
def table():
    """The ``correlated_table`` factory (fresh arrays on every call)."""
    return correlated_table


@pytest.fixture
def X_missing() -> np.ndarray:
    """A fresh 120 x 4 float64 table with about 25% missing entries (NaN)."""
    return correlated_table()[1]
