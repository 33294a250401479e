"""Run by ``torchrun --standalone --nproc-per-node=N`` from ``tests/test_distributed.py``.

``python run_ranks.py estimator OUT``: each rank fits both estimators on its shard of one
table and saves what the test compares. ``python run_ranks.py steps OUT 8,4``: rank r trains a
deterministic least-squares problem with ``train`` on a shard of the r-th size, all of it
in each step; with one process the same command trains on all the rows in each step.
"""

import os
import sys
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from skmissvae import DeMissVAEImputer, MixtureVAEImputer
from skmissvae.core.distributed import rank, world_size
from skmissvae.core.training import TrainingConfig, TrainingProblem, train

SMALL = dict(latent_dim=2, hidden_width=16, n_hidden_blocks=1, batch_size=32, max_iter=6,
             n_iter_no_change=2, n_impute_samples=16, n_score_samples=32, random_state=0, n_jobs=1)


def table(n=400, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    x[:, 1] += x[:, 0]
    x[rng.random(x.shape) < 0.2] = np.nan
    return x


class LeastSquares(TrainingProblem):
    """A problem without Monte-Carlo noise: its gradient is a plain mean over rows."""

    def objective(self, x_filled, observed, rows, generator):
        return -((self.model(x_filled[:, :3]) - x_filled[:, 3:]) ** 2).sum(1)


def tight_table(n=2000, seed=0):
    """One free column and three linear functions of it plus 1 % noise: a table on which
    ``min_scale="auto"`` lowers the decoder floor."""
    rng = np.random.default_rng(seed)
    factor = rng.normal(size=(n, 1))
    x = np.column_stack([factor, factor @ rng.normal(size=(1, 3)) + 0.01 * rng.normal(size=(n, 3))])
    x[rng.random(x.shape) < 0.2] = np.nan
    return x[~np.isnan(x).all(axis=1)]


def fit_estimators(out: Path) -> None:
    shard, tight = table()[rank()::world_size()], tight_table()[rank()::world_size()]
    saved = {}
    for name, estimator, rows in [
            ("mixture", MixtureVAEImputer(**SMALL), shard),
            ("demiss", DeMissVAEImputer(**SMALL, n_imputations=2), shard),
            ("auto_floor", MixtureVAEImputer(**{**SMALL, "hidden_width": 32, "max_iter": 20,
                                                 "n_iter_no_change": 10}), tight)]:
        estimator.fit(rows)
        saved[name] = {"weights": estimator.model_.state_dict(), "n_iter": estimator.n_iter_,
                       "validation": estimator.validation_scores_, "mean": estimator.mean_,
                       "min_scale": estimator.min_scale_}
    torch.save(saved, out / f"estimators_{rank()}.pt")


def train_steps(out: Path, shard_sizes: list[int]) -> None:
    rng = np.random.default_rng(1)
    x = torch.tensor(rng.normal(size=(sum(shard_sizes), 4)), dtype=torch.float32)
    if world_size() > 1:  # rank r holds the r-th slice of rows, in one batch
        start = sum(shard_sizes[:rank()])
        x = x[start:start + shard_sizes[rank()]]
    torch.manual_seed(0)  # the same initial weights in every process (rank 0's win anyway)
    problem = LeastSquares(torch.nn.Linear(3, 1))
    config = TrainingConfig(max_epochs=5, batch_size=max(shard_sizes) if world_size() > 1 else len(x),
                            learning_rate=0.05, lr_schedule="constant", clip_grad_norm=0.5, validation_fraction=0.0)
    train(problem, x, torch.ones_like(x, dtype=torch.bool), config, torch.Generator().manual_seed(rank()))
    name = "-".join(map(str, shard_sizes))
    torch.save(problem.model.state_dict(), out / f"steps_{name}_{world_size()}_{rank()}.pt")


if __name__ == "__main__":
    task, out = sys.argv[1], Path(sys.argv[2])
    if "RANK" in os.environ:
        dist.init_process_group("gloo")
    try:
        if task == "steps":
            train_steps(out, [int(size) for size in sys.argv[3].split(",")])
        else:
            fit_estimators(out)
        if dist.is_initialized():
            # Every rank done before any tears its connections down: a rank that destroys
            # the group while its peer still reads from it can make gloo abort the peer.
            dist.barrier()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    # Done and saved: leave without the interpreter's teardown. There, gloo's worker
    # threads can still hold tensors and occasionally abort a finished rank ("terminate
    # called without an active exception"), which would fail a run that succeeded.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
