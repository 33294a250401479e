"""Layering of the package outside ``skmissvae.core``: the estimators are thin facades and
every other module works through the fitted model, never an estimator's private methods."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import skmissvae
from skmissvae import DeMissVAEImputer, MixtureVAEImputer, VAEEnsembleImputer
from skmissvae.impute._base import BaseVAEImputer

PACKAGE = Path(skmissvae.__file__).parent
OUTSIDE_IMPUTE = sorted(p for p in PACKAGE.rglob("*.py") if "impute" not in p.relative_to(PACKAGE).parts)
ESTIMATORS = (BaseVAEImputer, MixtureVAEImputer, DeMissVAEImputer, VAEEnsembleImputer)
PRIVATE = {
    name for cls in ESTIMATORS for name in dir(cls)
    if name.startswith("_") and not name.startswith("__")
}


@pytest.mark.parametrize("path", OUTSIDE_IMPUTE, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_outside_impute_calls_private_estimator_methods(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in PRIVATE:
            owner = node.value.id if isinstance(node.value, ast.Name) else None
            assert owner in ("self", "cls"), (
                f"{path.name}:{node.lineno} uses {ast.unparse(node)}, a private member of an estimator"
            )


def test_estimators_take_keyword_only_parameters():
    for cls in (MixtureVAEImputer, DeMissVAEImputer):
        parameters = list(inspect.signature(cls).parameters.values())
        assert parameters and all(p.kind is p.KEYWORD_ONLY for p in parameters), cls.__name__
        with pytest.raises(TypeError):
            cls(5)
    ensemble = list(inspect.signature(VAEEnsembleImputer).parameters.values())
    assert ensemble[0].name == "estimator" and all(p.kind is p.KEYWORD_ONLY for p in ensemble[1:])


def test_base_estimator_stays_small():
    # The base class orchestrates; tables, inference and training live below it.
    source = inspect.getsource(BaseVAEImputer)
    code = [line for line in source.splitlines() if line.strip() and not line.strip().startswith("#")]
    assert len(code) < 300, len(code)
