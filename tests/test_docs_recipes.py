"""The user guide's recipes for larger-than-memory tables and clusters, run as written.

The Dask, streaming and torchrun recipes run in CI; the Spark and Ray ones need those
engines and run only with ``SKMISSVAE_TEST_ENGINES=1`` (pytest marker ``engines``).
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

GUIDE = Path(__file__).parents[1] / "docs" / "user_guide.md"
SECTION = "## Larger than memory and clusters"


def _recipes() -> list[str]:
    section = GUIDE.read_text().split(SECTION, 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def _engine(recipe: str) -> str | None:
    """"Spark" or "Ray" for those recipes; None for plain Python."""
    first = recipe.splitlines()[0]
    return next((name for name in ("Spark", "Ray") if first.startswith(f"# {name}")), None)


def _script(recipe: str) -> tuple[str, str] | None:
    """``(file name, command)`` of a recipe that is a script of its own
    (first line ``# name.py; run with: command``), else None."""
    match = re.match(r"# (\S+\.py); run with: (.+)", recipe.splitlines()[0])
    return match.groups() if match else None


def _run(command, cwd):
    # Spark's Python workers run this interpreter, where skmissvae is installed.
    env = dict(os.environ, OMP_NUM_THREADS="1", PYSPARK_PYTHON=sys.executable)
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]


def _command(text: str) -> list[str]:
    """A recipe's command with this interpreter for ``python`` and ``torchrun``."""
    program, *args = text.split()
    launcher = {"python": [sys.executable], "torchrun": [sys.executable, "-m", "torch.distributed.run"]}
    return launcher[program] + args


def test_the_guide_has_every_recipe():
    recipes = _recipes()
    engines = {_engine(recipe) for recipe in recipes}
    scripts = {_script(recipe)[0] for recipe in recipes if _script(recipe)}
    assert len(recipes) >= 8 and {"Spark", "Ray"} <= engines and len(scripts) == 2


def test_streaming_dask_and_torchrun_recipes_run_as_written(tmp_path):
    pytest.importorskip("dask_ml")
    pytest.importorskip("distributed")
    recipes = [recipe for recipe in _recipes() if _engine(recipe) is None]
    inline = "\n".join(recipe for recipe in recipes if not _script(recipe))
    (tmp_path / "recipes.py").write_text("import torch\ntorch.set_num_threads(1)\n" + inline)
    _run([sys.executable, "recipes.py"], tmp_path)
    for recipe in filter(_script, recipes):
        name, command = _script(recipe)
        (tmp_path / name).write_text(recipe)
        _run(_command(command), tmp_path)
    for folder in ("imputed", "imputed-cluster"):
        imputed = pd.read_parquet(tmp_path / folder)
        assert len(imputed) == 4_000 and not imputed.isna().any().any()
    assert (tmp_path / "imputer.skm").exists()


@pytest.mark.engines
@pytest.mark.skipif(os.environ.get("SKMISSVAE_TEST_ENGINES") != "1", reason="set SKMISSVAE_TEST_ENGINES=1")
@pytest.mark.parametrize("engine", ["Spark", "Ray"])
def test_spark_and_ray_recipes_run_as_written(tmp_path, engine):
    pytest.importorskip({"Spark": "pyspark", "Ray": "ray"}[engine])
    recipes = _recipes()
    setup = "\n".join(recipe for recipe in recipes[:2])  # the table on disk and a fitted imputer
    prelude = "from pyspark.sql import SparkSession\nspark = SparkSession.builder.master('local[2]').getOrCreate()\n"
    recipe = next(recipe for recipe in recipes if _engine(recipe) == engine)
    (tmp_path / "recipe.py").write_text(setup + "\n" + (prelude if engine == "Spark" else "") + recipe)
    _run([sys.executable, "recipe.py"], tmp_path)
    imputed = pd.read_parquet(tmp_path / f"imputed-{engine.lower()}")
    assert len(imputed) == 4_000 and np.isfinite(imputed.to_numpy()).all()
