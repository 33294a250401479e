"""Shared scikit-learn facade of the VAE imputers.

The base class validates parameters and input, fits a ``TableEncoder``, trains the model
that a subclass describes, and answers ``transform``, ``sample_imputations`` and
``score_samples`` through the ``FittedModel``. Subclasses say how the model is configured,
which training problem fits it, and which proposal imputes with it.
"""

from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted, validate_data

from .._columns import infer_column_types
from .._compat import Interval, MissingValues, StrOptions, _fit_context
from .._fitted import FittedModel, build_model, draw_seed, resolve_device
from .._progress import TrainingProgress
from .._table import ColumnStatistics, TableEncoder, column_statistics
from ..core.distributed import broadcast_module, is_data_parallel, merge_objects, rank
from ..core.training import NonFiniteLossError, TrainingConfig, TrainingResult, train
from ._options import indicator_names, is_na_like, mask_missing_values, missing_entries, torch_threads, with_indicator
from ._validation import check_n_imputations, validate_numeric

# Training rows on which a fitted model is checked for finite scores and imputations, and
# importance samples per row for the check: one sampling round. Diverged weights give
# non-finite values with any number of samples; with all n_score_samples the check cost
# about as much as training a small table (0.9 s of a 3 s fit on iris).
_FINITE_CHECK_ROWS, _FINITE_CHECK_SAMPLES = 64, 32
# max_iter="auto": at least this many epochs and optimiser steps.
_AUTO_MIN_EPOCHS, _AUTO_MIN_STEPS = 200, 5000
# learning_rate="auto": the larger step size for runs of at most this many optimiser steps.
# Short runs (tables of up to a few thousand rows) impute better with it; long ones fit
# the toy data worse (see "Learning rate" in the design notes).
_AUTO_LR_SHORT, _AUTO_LR_LONG, _AUTO_LR_MAX_STEPS = 3e-3, 1e-3, 5000
# min_effective_samples="auto": transform and sample_imputations stop a row at this
# effective sample size; score_samples draws all n_score_samples. Imputations stayed within
# the Monte-Carlo noise of all 1,000 samples, scores did not (see "Importance samples" in
# the design notes).
_AUTO_IMPUTE_ESS = 100


def cpu_generator_from(generator: torch.Generator) -> torch.Generator:
    """A CPU generator seeded from ``generator`` (weights are initialised on the CPU)."""
    seed = torch.randint(2**62, (1,), generator=generator, device=generator.device).item()
    return torch.Generator().manual_seed(int(seed))


def training_generator(random_state, device) -> torch.Generator:
    """The generator of a training run, seeded from ``random_state``; each process of a
    data-parallel run gets its own stream (its rows need their own noise)."""
    return torch.Generator(device=device).manual_seed(draw_seed(random_state) + rank())


def training_config(estimator, n_rows: int) -> TrainingConfig:
    """The training settings of ``estimator`` for ``n_rows`` training rows.

    ``max_iter="auto"`` is resolved to at least 200 epochs and 5,000 optimiser steps;
    ``learning_rate="auto"`` to 3e-3 when the run plans at most 5,000 optimiser steps
    (epochs times batches of all ``n_rows``), else 1e-3. In a data-parallel run both follow
    the largest shard, so that every process trains with the same settings.
    """
    n_rows = merge_objects(n_rows, max)
    steps_per_epoch = math.ceil(n_rows / min(estimator.batch_size, max(n_rows, 1)))
    max_epochs = estimator.max_iter
    if max_epochs == "auto":
        max_epochs = max(_AUTO_MIN_EPOCHS, math.ceil(_AUTO_MIN_STEPS / steps_per_epoch))
    return TrainingConfig(
        max_epochs=max_epochs,
        batch_size=estimator.batch_size,
        learning_rate=resolve_learning_rate(estimator.learning_rate, max_epochs * steps_per_epoch),
        lr_schedule=estimator.lr_schedule,
        clip_grad_norm=estimator.clip_grad_norm,
        validation_fraction=estimator.validation_fraction if estimator.early_stopping else 0.0,
        validation_split=estimator.validation_split,
        n_iter_no_change=estimator.n_iter_no_change,
        tol=estimator.tol,
    )


def resolve_learning_rate(learning_rate, planned_steps: float) -> float:
    """``learning_rate``, or for "auto" the step size for a run of ``planned_steps``
    optimiser steps (``math.inf`` for a stream of unknown length)."""
    if learning_rate != "auto":
        return learning_rate
    return _AUTO_LR_SHORT if planned_steps <= _AUTO_LR_MAX_STEPS else _AUTO_LR_LONG


class LikelihoodImputerMixin:
    """What every imputer of the library shares: NaN input, kept float dtypes, and
    ``score`` as the mean of ``score_samples`` (so that ``GridSearchCV`` tunes without labels)."""

    def score(self, X, y=None):
        """Mean estimated log-likelihood of the observed entries (higher is better).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : None
            Ignored.

        Returns
        -------
        score : float
        """
        return float(np.mean(self.score_samples(X)))

    def __setstate__(self, state):
        # An unpickled NaN is a new float, unequal to np.nan: keep get_params() comparable.
        value = state.get("missing_values")
        if isinstance(value, float) and is_na_like(value):
            state = {**state, "missing_values": np.nan}
        super().__setstate__(state)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


class BaseVAEImputer(LikelihoodImputerMixin, OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Base class of the VAE imputers; not for direct use."""

    _parameter_constraints: dict = {
        "latent_dim": [Interval(numbers.Integral, 1, None, closed="left")],
        "hidden_width": [Interval(numbers.Integral, 1, None, closed="left")],
        "n_hidden_blocks": [Interval(numbers.Integral, 0, None, closed="left")],
        "dropout": [Interval(numbers.Real, 0, 1, closed="left")],
        "min_scale": [Interval(numbers.Real, 0, None, closed="neither"), StrOptions({"auto"})],
        "learning_rate": [Interval(numbers.Real, 0, None, closed="neither"), StrOptions({"auto"})],
        "batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "lr_schedule": [StrOptions({"cosine", "constant"})],
        "clip_grad_norm": [Interval(numbers.Real, 0, None, closed="neither"), None],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(numbers.Integral, 1, None, closed="left")],
        "tol": [Interval(numbers.Real, 0, None, closed="left")],
        "n_impute_samples": [Interval(numbers.Integral, 1, None, closed="left")],
        "n_score_samples": [Interval(numbers.Integral, 1, None, closed="left")],
        "min_effective_samples": [Interval(numbers.Real, 0, None, closed="neither"), StrOptions({"auto"}), None],
        "column_statistics": [ColumnStatistics, None],
        "device": [StrOptions({"auto", "cpu", "cuda"})],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "callbacks": [list, None],
        "keep_empty_features": ["boolean"],
        "column_types": [dict, None],
        "missing_values": [MissingValues()],
        "add_indicator": ["boolean"],
        "min_value": [numbers.Real, "array-like"],
        "max_value": [numbers.Real, "array-like"],
        "n_jobs": [Interval(numbers.Integral, None, -1, closed="right"),
                   Interval(numbers.Integral, 1, None, closed="left"), None],
    }
    # Held-out rows ("rows") or entries ("entries") for early stopping.
    validation_split = "rows"

    # -- what subclasses provide ------------------------------------------------------
    def _check_params(self) -> None:
        """Cross-parameter checks that ``_parameter_constraints`` cannot express."""

    def _model_config(self):
        """The ``ModelConfig`` of the VAE to build."""
        raise NotImplementedError

    def _training_problem(self, model, x, observed, generator):
        """The ``TrainingProblem`` that fits ``model`` to the standardised data."""
        raise NotImplementedError

    def _build_proposal(self, problem, x, observed, generator, table):
        """The importance-sampling proposal of the fitted model."""
        raise NotImplementedError

    def _after_training(self, problem, result: TrainingResult, fit) -> TrainingResult:
        """Work after the main training run (``fit`` holds the data and settings)."""
        return result

    # -- scikit-learn API ---------------------------------------------------------------
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit the VAE to incomplete data.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data with missing entries equal to ``missing_values`` (or NaN).
        y : None
            Ignored.

        Returns
        -------
        self : object
            Fitted estimator.
        """
        self._check_params()
        for name in ("fitted_model_", "indicator_features_", "_stream_state_"):  # a failed refit leaves no model behind
            self.__dict__.pop(name, None)
        with torch_threads(self.n_jobs):
            return self._fit(X)

    def _fit(self, X):
        table, values, observed, X = self._fit_table(X)
        device = resolve_device(self.device)
        generator = training_generator(self.random_state, device)
        x, mask = table.to_tensors(values, observed, device)
        config = training_config(self, len(x))
        model = build_model(self._model_config(), table, cpu_generator_from(generator)).to(device)
        broadcast_module(model)  # data-parallel: every process starts from rank 0's weights
        problem = self._training_problem(model, x, mask, generator)
        proposal = self._build_proposal(problem, x, mask, generator, table)
        self.fitted_model_ = FittedModel(model, table, self._model_config(), proposal, device)
        fit = _FitData(X, values, observed, x, mask, generator, config, generator.get_state())
        try:
            result = self._train(problem, fit, type(self).__name__)
            result = self._after_training(problem, result, fit)
            self._check_trained_model(values, observed, result)
        except BaseException:
            self.__dict__.pop("fitted_model_", None)  # a failed fit leaves no usable model
            raise
        self.loss_curve_ = result.loss_curve
        self.validation_scores_ = result.validation_scores
        self.best_iteration_ = result.best_epoch + 1
        self.n_iter_ = result.n_epochs
        self.fit_time_ = result.fit_time
        scores = result.validation_scores
        if (self.early_stopping and self.n_iter_ == config.max_epochs
                and np.isfinite(scores[-1]) and scores[-1] >= np.nanmax(scores)):
            warnings.warn(
                f"{type(self).__name__} reached max_iter ({config.max_epochs} epochs) while "
                "the validation score was still improving; consider increasing max_iter.",
                ConvergenceWarning,
            )
        return self

    def transform(self, X):
        """Impute missing entries with the model's conditional mean ``E[x_m | x_o]``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data with missing entries equal to ``missing_values`` (or NaN).

        Returns
        -------
        X_imputed : ndarray or DataFrame of shape (n_samples, n_features_out)
            Observed entries are returned unchanged (bit for bit); imputations lie within
            ``min_value`` and ``max_value``. A DataFrame input gives a DataFrame with the
            same columns and index (columns of integer dtype keep it, rounded); arrays keep
            a float input's dtype. ``add_indicator`` appends the missing-indicator columns.
            Columns that were entirely missing during ``fit`` are dropped, or with
            ``keep_empty_features=True`` kept with their missing entries set to 0. Rows
            with no observed entry are imputed from the model's prior predictive mean.
            With binary or categorical columns (``column_types``), a DataFrame comes
            back in the original dtypes, and their missing values are imputed with the
            most probable level or category under the conditional (the mode of the
            importance-weighted predictive probabilities). A row's imputation depends
            only on the row, the model and ``random_state``.
        """
        with torch_threads(self.n_jobs):
            batch = self._encode(X)
            completed = self.fitted_model_.impute(batch.values, batch.observed, **self._inference("impute"))
            return self._output(completed, batch)

    def sample_imputations(self, X, n_imputations=5):
        """Draw multiple imputations from the model's conditional ``p(x_m | x_o)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data with missing entries equal to ``missing_values`` (or NaN).
        n_imputations : int, default=5
            Number of completed copies to draw.

        Returns
        -------
        imputations : ndarray of shape (n_imputations, n_samples, n_features_out) or list
            Completed copies of ``X``; observed entries are unchanged in every copy, draws
            lie within ``min_value`` and ``max_value`` (rounded in a DataFrame's integer
            columns), and each copy ends with the indicator of ``add_indicator``. For a
            DataFrame with binary or categorical columns, a list of ``n_imputations``
            DataFrames in the original dtypes. Columns entirely missing during ``fit`` are
            handled as in :meth:`transform` (``keep_empty_features``). Draws of different
            rows are independent; a row's draws depend only on the row, the model and
            ``random_state`` (identical rows get identical draws).
        """
        check_n_imputations(n_imputations)
        with torch_threads(self.n_jobs):
            batch = self._encode(X)
            draws = self.fitted_model_.sample(batch.values, batch.observed, n_imputations,
                                              **self._inference("impute"))
            return self._output(draws, batch, draws=True)

    def score_samples(self, X):
        """Estimate the log-likelihood ``log p(x_o)`` of each row's observed entries.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data with missing entries equal to ``missing_values`` (or NaN).

        Returns
        -------
        log_likelihood : ndarray of shape (n_samples,)
            Importance-weighted lower bound on ``log p(x_o)`` in nats, in the units of the
            data passed in (the standardisation's Jacobian is accounted for). Columns that
            were entirely missing during ``fit`` are ignored; a row with no observed entry
            scores exactly 0.
        """
        with torch_threads(self.n_jobs):
            batch = self._encode(X)
            log_lik = self.fitted_model_.log_likelihood(batch.values, batch.observed, **self._inference("score"))
        return log_lik.astype(batch.values.dtype)

    def get_feature_names_out(self, input_features=None):
        """Get output feature names for transformation.

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Input features; if None, ``feature_names_in_`` is used when defined, otherwise
            ``["x0", "x1", ...]``.

        Returns
        -------
        feature_names_out : ndarray of str objects
            The input names, without the columns that were entirely missing during ``fit``
            unless ``keep_empty_features=True``; with ``add_indicator``, then
            ``missingindicator_<name>`` for each column of ``indicator_features_``.
        """
        check_is_fitted(self)
        names = super().get_feature_names_out(input_features)
        out = names[self.fitted_model_.table.output_features()]
        return np.concatenate([out, indicator_names(names, self.__dict__.get("indicator_features_"))])

    def __sklearn_is_fitted__(self):
        # Fitted means a usable model: a fit that failed (e.g. diverged) removes it.
        return "fitted_model_" in self.__dict__

    # -- fitted attributes kept by the fitted model ------------------------------------------
    model_ = property(lambda self: self.fitted_model_.model, doc="The trained torch model.")
    device_ = property(lambda self: self.fitted_model_.device, doc="The training device.")
    mean_ = property(lambda self: self.fitted_model_.table.mean_, doc="Centre of each encoded column.")
    scale_ = property(lambda self: self.fitted_model_.table.scale_, doc="Scale of each encoded column.")
    min_scale_ = property(lambda self: self.fitted_model_.config.min_scale,
                          doc="The decoder's scale floor, in column standard deviations ('auto' resolved).")
    empty_features_ = property(lambda self: self.fitted_model_.table.empty_,
                               doc="Input columns without an observed value at fit.")
    column_types_ = property(lambda self: self.fitted_model_.table.column_types_,
                             doc="Observation model of each input column.")
    column_encoder_ = property(lambda self: self.fitted_model_.table.codec_,
                               doc="One-hot layout of a table with discrete columns, or None.")

    # -- input ----------------------------------------------------------------------------
    def _check_table(self, X, kinds=None):
        """``X`` checked for the table encoder: a float array when every column is
        continuous, else the table as given (names and width checked). ``kinds`` is given
        at fit; afterwards the fitted encoder decides."""
        mixed = (kinds is not None and any(kind != "continuous" for kind in kinds)) or (
            kinds is None and self.fitted_model_.table.codec_ is not None
        )
        if mixed:
            validate_data(self, X, reset=kinds is not None, skip_check_array=True)
            return X
        return validate_numeric(self, X, reset=kinds is not None)

    def _fit_table(self, X):
        """The fitted ``TableEncoder``, the encoded training rows with an observed entry, and
        ``X`` with its ``missing_values`` replaced by NaN.

        Rows with no observed entry carry no information about the model (their likelihood
        is 1 whatever the parameters), so they are left out.
        """
        dtypes = list(X.dtypes) if isinstance(X, pd.DataFrame) else None  # before NaN enters
        X = mask_missing_values(X, self.missing_values)
        infer = self.column_types is not None or isinstance(X, pd.DataFrame)
        kinds = infer_column_types(X, self.column_types) if infer else None
        checked = self._check_table(X, kinds or ["continuous"])
        kinds = kinds or ["continuous"] * checked.shape[1]
        statistics = self.column_statistics
        if statistics is None and is_data_parallel():  # the whole table's, from every shard
            statistics = merge_objects(column_statistics(X, self.column_types))
        table = TableEncoder(kinds, self.keep_empty_features).fit(
            checked, getattr(self, "feature_names_in_", None), dtypes, statistics)
        table.set_bounds(self.min_value, self.max_value)
        if self.add_indicator:  # MissingIndicator(features="missing-only"), over every shard
            self.indicator_features_ = np.flatnonzero(merge_objects(missing_entries(checked).any(axis=0), np.logical_or))
        values, observed = table.encode(checked)
        rows = observed.any(axis=1)
        if not rows.any():
            raise ValueError(
                f"Every entry of X is missing (NaN); {type(self).__name__} needs at least "
                "one observed value to fit."
            )
        if rows.all():  # no copy: the encoded table may be large
            return table, values, observed, X
        return table, values[rows], observed[rows], X

    def _encode(self, X) -> "_Encoded":
        """``X`` for a fitted estimator: NaN-encoded, checked, encoded (values, observed)."""
        check_is_fitted(self)
        X = mask_missing_values(X, self.missing_values)
        checked = self._check_table(X)
        return _Encoded(X, checked, *self.fitted_model_.table.encode(checked))

    def _output(self, completed, batch: "_Encoded", draws: bool = False):
        """A completed encoded table ``[N, D]`` as ``transform`` returns it, or completed
        copies ``[M, N, D]`` as ``sample_imputations`` does (indicators included)."""
        table = self.fitted_model_.table
        out = (table.decode_draws if draws else table.decode)(completed, batch.values, batch.X)
        return with_indicator(out, self.__dict__.get("indicator_features_"), batch)

    def _inference(self, kind: str) -> dict:
        """The fitted model's Monte-Carlo settings for ``kind`` ("impute" or "score")."""
        n_samples = self.n_score_samples if kind == "score" else self.n_impute_samples
        min_effective_samples = self.min_effective_samples
        if min_effective_samples == "auto":
            # Imputations tolerate stopping early; a score would be biased low by it.
            min_effective_samples = None if kind == "score" else _AUTO_IMPUTE_ESS
        return {"n_samples": n_samples, "min_effective_samples": min_effective_samples,
                "random_state": self.random_state}

    # -- training -------------------------------------------------------------------------
    def _train(self, problem, fit, label: str) -> TrainingResult:
        progress = TrainingProgress(fit.config.max_epochs, self.verbose, label=label)

        def on_epoch_end(info):
            # Progress first, then the user's callbacks; any returning True stops training.
            progress.update(info)
            stop = False
            for callback in self.callbacks or ():
                stop = bool(callback(self, info)) or stop
            return stop

        try:
            return train(problem, fit.x, fit.mask, fit.config, fit.generator, on_epoch_end)
        finally:
            progress.close()

    def _check_trained_model(self, values, observed, result: TrainingResult) -> None:
        """Refuse a model whose scores or imputations are not finite (training skips steps
        with a non-finite loss, but many of them can still leave diverged weights)."""
        name = type(self).__name__
        rows = slice(0, _FINITE_CHECK_ROWS)
        if not self.fitted_model_.is_finite(values[rows], observed[rows],
                                            n_samples=min(self.n_score_samples, _FINITE_CHECK_SAMPLES)):
            raise NonFiniteLossError(
                f"{name} training diverged: the fitted model gives non-finite "
                f"log-likelihoods or imputations ({result.n_non_finite_steps} steps had a "
                "non-finite loss and were skipped). Lower learning_rate, set "
                "clip_grad_norm, or check the data for extreme values."
            )
        if result.n_non_finite_steps:
            warnings.warn(
                f"{name}: {result.n_non_finite_steps} training steps had a non-finite loss "
                "and were skipped; consider a lower learning_rate.",
                ConvergenceWarning,
            )


class _Encoded(NamedTuple):
    """A table passed to a fitted estimator, at each stage of its input."""

    X: object  # as passed in, with missing_values replaced by NaN
    checked: object  # as the table encoder takes it (_check_table)
    values: np.ndarray  # encoded, NaN where missing [N, D]
    observed: np.ndarray  # [N, D] bool


@dataclass
class _FitData:
    """The data and settings of one ``fit`` call, handed to ``_after_training``."""

    X: object  # the table as passed to fit, with missing_values replaced by NaN
    values: np.ndarray  # encoded training rows [N, D], NaN where missing
    observed: np.ndarray  # [N, D] bool
    x: torch.Tensor  # standardised, zero-filled [N, D]
    mask: torch.Tensor  # observed, on the training device
    generator: torch.Generator
    config: TrainingConfig
    generator_state: torch.Tensor  # the generator's state before training (to replay its split)
