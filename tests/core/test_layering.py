"""Layering rules of ``skmissvae.core`` (architecture guide: imports point downwards only)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import skmissvae.core

CORE_DIR = Path(skmissvae.core.__file__).parent
CORE_MODULES = sorted(p.stem for p in CORE_DIR.glob("*.py") if p.stem != "__init__")
CORE_FILES = sorted(CORE_DIR.glob("*.py"))


def test_core_has_the_documented_modules():
    expected = {
        "families",
        "likelihoods",
        "model",
        "networks",
        "objectives",
        "problems",
        "random",
        "samplers",
        "training",
    }
    assert expected <= set(CORE_MODULES)


def test_importing_core_does_not_import_sklearn():
    """A researcher can use ``skmissvae.core`` without scikit-learn being imported."""
    names = ["skmissvae.core"] + [f"skmissvae.core.{name}" for name in CORE_MODULES]
    code = "\n".join(
        [
            "import importlib, sys",
            *(f"importlib.import_module({name!r})" for name in names),
            "leaked = sorted(m for m in sys.modules if m == 'sklearn' or m.startswith('sklearn.'))",
            "print(len(leaked), leaked[:5])",
            "sys.exit(1 if leaked else 0)",
        ]
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"sklearn imported by skmissvae.core: {done.stdout}{done.stderr}"


def _imports(path: Path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield 0, alias.name
        elif isinstance(node, ast.ImportFrom):
            yield node.level, node.module or ""


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda p: p.name)
def test_core_modules_import_only_torch_stdlib_and_core(path):
    allowed_top = {"torch", "numpy", "__future__"} | set(sys.stdlib_module_names)
    for level, module in _imports(path):
        if level == 0:
            top = module.split(".")[0]
            assert top in allowed_top, f"{path.name} imports {module}"
        else:
            # Relative imports stay inside core: ``from .x import`` only, never ``from ..``.
            assert level == 1, f"{path.name} imports from {'.' * level}{module}"


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda p: p.name)
def test_core_modules_never_seed_global_generators(path):
    forbidden = {
        ("torch", "manual_seed"),
        ("torch", "seed"),
        ("random", "manual_seed"),
        ("np", "random"),
        ("numpy", "random"),
    }
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            assert (node.value.id, node.attr) not in forbidden, (
                f"{path.name}:{node.lineno} uses {node.value.id}.{node.attr}"
            )
