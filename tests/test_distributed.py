"""Data-parallel training on torch.distributed: two gloo processes started by torchrun."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).parent / "distributed" / "run_ranks.py"

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not built")


def _torchrun(task, out, n_processes, *args):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={n_processes}",
               str(SCRIPT), task, str(out), *args]
    if n_processes == 1:  # no process group: a plain single-process run
        command = [sys.executable, str(SCRIPT), task, str(out), *args]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("ranks")
    _torchrun("estimator", out, 2)
    return [torch.load(out / f"estimators_{r}.pt", weights_only=False) for r in range(2)]


@pytest.mark.parametrize("name", ["mixture", "demiss", "auto_floor"])
def test_every_rank_ends_with_the_same_model(two_ranks, name):
    first, second = (rank[name] for rank in two_ranks)
    assert first["n_iter"] == second["n_iter"]
    assert first["min_scale"] == second["min_scale"]
    assert first["validation"] == second["validation"]  # pooled: every rank stops alike
    assert (first["mean"] == second["mean"]).all()  # the whole table's standardisation
    for key, value in first["weights"].items():
        assert torch.equal(value, second["weights"][key]), key


def test_min_scale_auto_lowers_the_floor_of_every_rank_alike(two_ranks):
    # The floor is chosen on the pooled held-out rows and binding shares of both shards.
    assert two_ranks[0]["auto_floor"]["min_scale"] < 0.1


def test_standardisation_is_the_whole_tables(two_ranks):
    sys.path.insert(0, str(SCRIPT.parent))
    from run_ranks import table

    import numpy as np

    np.testing.assert_allclose(two_ranks[0]["mixture"]["mean"], np.nanmean(table(), axis=0), rtol=1e-10)


@pytest.mark.parametrize("shards", ["8,8", "8,4"])
def test_two_ranks_of_b_rows_match_one_rank_of_2b_rows(tmp_path, shards):
    # Uneven shards too: gradients are weighted by the rows each process contributed.
    _torchrun("steps", tmp_path, 2, shards)
    _torchrun("steps", tmp_path, 1, shards)
    name = shards.replace(",", "-")
    single = torch.load(tmp_path / f"steps_{name}_1_0.pt")
    for r in range(2):
        shared = torch.load(tmp_path / f"steps_{name}_2_{r}.pt")
        for key, value in single.items():
            torch.testing.assert_close(shared[key], value, rtol=1e-5, atol=1e-6)
    torch.manual_seed(0)
    initial = torch.nn.Linear(3, 1)  # the weights moved: the comparison is not vacuous
    assert not torch.allclose(single["weight"], initial.weight, atol=1e-2)
