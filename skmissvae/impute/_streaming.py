"""Training block by block: ``partial_fit`` for tables that do not fit in memory.

Each call is one pass over the rows of one block, in a random order, at a constant
learning rate and without early stopping: the caller holds the data, so the caller
decides when to stop (for example when ``score`` on a held-out block stops improving).
Everything a later call needs (the optimiser's moments and step count, the random
generator's state) is kept in the estimator as plain tensors, so pickling an estimator
between two calls changes nothing.
"""

from __future__ import annotations

import math
import time
import warnings

import torch

from .._compat import _fit_context
from .._fitted import FittedModel, build_model, resolve_device
from ..core.distributed import broadcast_module
from ..core.training import TrainingResult, adam, epoch_batches, run_epoch
from ._base import cpu_generator_from, resolve_learning_rate, training_generator
from ._options import torch_threads


class IncrementalFitMixin:
    """``partial_fit`` for the imputers whose training needs nothing but the current block."""

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None):
        """Train on one block of rows: one pass over it, in a random order.

        The first call (on an unfitted estimator) fixes the column types and the
        standardisation: from ``column_statistics`` when given (for example
        ``skmissvae.column_statistics`` of the whole table, which also takes a Dask
        DataFrame), otherwise from this first block, with a warning, since later blocks may
        differ. Later calls need the same columns. A fitted estimator continues from its
        weights.

        Unlike ``fit``, training runs at the constant ``learning_rate`` (1e-3 for "auto",
        the step size of long runs) and never stops by itself (``max_iter``,
        ``lr_schedule`` and ``early_stopping`` are not used): call it again for every
        block and every pass, and stop when ``score`` on a
        held-out block stops improving. Adam's moments, the step count and the random
        generator are kept in the estimator between calls; pickling the estimator between
        two calls gives the same model as not pickling. ``skmissvae.save`` keeps the
        model but not that state: a loaded estimator continues with a fresh optimiser.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            One block of the table, with missing entries equal to ``missing_values`` (or
            NaN). With ``add_indicator=True``, the first block decides which columns get
            an indicator.
        y : None
            Ignored.

        Returns
        -------
        self : object
            The estimator, trained on one more block.
        """
        self._check_params()
        with torch_threads(self.n_jobs):
            if "fitted_model_" not in self.__dict__:
                values, observed = self._start_stream(X)
            else:
                batch = self._encode(X)
                rows = batch.observed.any(axis=1)  # rows with nothing observed carry no information
                values, observed = batch.values[rows], batch.observed[rows]
            if len(values):
                self._train_block(values, observed)
        return self

    def _start_stream(self, X):
        """Fit the table encoder on the first block and build an untrained model."""
        if self.column_statistics is None:
            warnings.warn(
                f"{type(self).__name__}.partial_fit standardises the data with the first "
                "block's statistics, and later blocks may differ; pass "
                "column_statistics=skmissvae.column_statistics(X) of the whole table "
                "(a Dask DataFrame works too) to use the whole table's.",
                UserWarning,
            )
        table, values, observed, _ = self._fit_table(X)
        device = resolve_device(self.device)
        generator = training_generator(self.random_state, device)
        model = build_model(self._model_config(), table, cpu_generator_from(generator)).to(device)
        broadcast_module(model)  # data-parallel: every process starts from rank 0's weights
        self.fitted_model_ = FittedModel(model, table, self._model_config(),
                                         self._build_proposal(None, None, None, None, table), device)
        self._stream_state_ = {"generator": generator.get_state(), "optimizer": None}
        self.loss_curve_, self.n_iter_, self.fit_time_ = [], 0, 0.0
        return values, observed

    def _stream_state(self, device) -> dict:
        """The kept optimiser and generator states; fresh ones after ``fit``."""
        state = self.__dict__.get("_stream_state_")
        if state is None:
            state = {"generator": training_generator(self.random_state, device).get_state(), "optimizer": None}
        return state

    def _train_block(self, values, observed) -> None:
        """One pass of the optimiser over the encoded rows of a block."""
        start, fitted = time.perf_counter(), self.fitted_model_
        x, mask = fitted.table.to_tensors(values, observed, fitted.device)
        state = self._stream_state(fitted.device)
        generator = torch.Generator(device=fitted.device)
        generator.set_state(state["generator"])
        problem = self._training_problem(fitted.model, x, mask, generator)
        optimizer = adam(problem.parameters(), resolve_learning_rate(self.learning_rate, math.inf))
        if state["optimizer"] is not None:
            optimizer.load_state_dict(state["optimizer"])
        fitted.model.train()
        try:
            rows = torch.arange(len(x), device=generator.device)
            outcome = run_epoch(problem, x, mask, epoch_batches(rows, self.batch_size, generator), optimizer,
                                generator, clip_grad_norm=self.clip_grad_norm)
        finally:
            fitted.model.eval()
            optimizer.zero_grad(set_to_none=True)
        self._stream_state_ = {"generator": generator.get_state(), "optimizer": optimizer.state_dict()}
        self.n_iter_ = getattr(self, "n_iter_", 0) + 1
        self.fit_time_ = getattr(self, "fit_time_", 0.0) + time.perf_counter() - start
        self.loss_curve_ = [*getattr(self, "loss_curve_", []),
                            outcome.loss_sum.item() / outcome.n_rows if outcome.n_rows else float("nan")]
        try:
            self._check_trained_model(values, observed, TrainingResult(n_non_finite_steps=outcome.n_skipped))
        except BaseException:
            for name in ("fitted_model_", "_stream_state_"):  # a diverged model is not kept
                self.__dict__.pop(name, None)
            raise
