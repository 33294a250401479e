"""Shared scikit-learn facade of the VAE imputers.

The base class owns everything that is not model maths: parameter validation, input
checking, per-column standardisation, ``random_state`` and ``device`` resolution, batching,
numpy/pandas in and out, and CPU-safe pickling. Subclasses say how to build and train the
model and how to impute, sample and score one standardised batch.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import numbers
import time
import warnings

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted, validate_data

from .._compat import Interval, StrOptions, _fit_context
from .._progress import TrainingProgress
from ..core.likelihoods import GaussianLikelihood, MixedLikelihood
from ..core.samplers import (
    importance_conditional_mean,
    importance_log_likelihood,
    importance_resample,
)
from ..core.training import NonFiniteLossError, TrainingConfig, TrainingResult
# None means fresh entropy here, never numpy's global RandomState (sklearn's would use it).
from ..datasets._missingness import check_random_state
from ._columns import TableEncoder, infer_column_types

# Rows per inference batch are chosen so that rows x Monte-Carlo samples stays near this.
_INFERENCE_BUDGET = 2**16
# Standardised values are clipped to this many standard deviations before they enter the
# float32 network: squares of larger values overflow float32 and would give NaN or -inf.
_STANDARDISED_LIMIT = 1e6
# Columns whose largest magnitude exceeds this are rescaled before their mean and standard
# deviation are computed, so that sums and squares cannot overflow float64.
_RESCALE_ABOVE = 1e150
# Training rows on which a fitted model is checked for finite scores and imputations.
_FINITE_CHECK_ROWS = 64
# max_iter="auto": at least this many epochs and optimiser steps.
_AUTO_MIN_EPOCHS, _AUTO_MIN_STEPS = 200, 5000


def resolve_device(device: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; an unavailable CUDA is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was requested but CUDA is not available; use 'cpu' or 'auto'.")
    return torch.device(device)


def torch_generator(random_state, device: torch.device) -> torch.Generator:
    """A torch.Generator on ``device`` seeded from ``random_state`` (never a global RNG)."""
    seed = int(check_random_state(random_state).randint(np.iinfo(np.int32).max))
    return torch.Generator(device=device).manual_seed(seed)


def cpu_generator_from(generator: torch.Generator) -> torch.Generator:
    """A CPU generator seeded from ``generator`` (weights are initialised on the CPU)."""
    seed = torch.randint(2**62, (1,), generator=generator, device=generator.device).item()
    return torch.Generator().manual_seed(int(seed))


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
        "min_scale": [Interval(numbers.Real, 0, None, closed="neither")],
        "learning_rate": [Interval(numbers.Real, 0, None, closed="neither")],
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
        "device": [StrOptions({"auto", "cpu", "cuda"})],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "callbacks": [list, None],
        "keep_empty_features": ["boolean"],
        "column_types": [dict, None],
    }

    # -- what subclasses provide ------------------------------------------------------
    def _fit_model(self, x, observed, generator, config: TrainingConfig) -> TrainingResult:
        """Build ``self.model_`` and train it on standardised zero-filled tensors."""
        raise NotImplementedError

    def _proposal(self, x, observed, generator):
        """Importance-sampling proposal ``q(z | x_o)`` for one standardised batch."""
        raise NotImplementedError

    def _impute_batch(self, x, observed, generator) -> torch.Tensor:
        """Conditional-mean imputation ``[B, D]`` of one standardised batch."""
        q = self._proposal(x, observed, generator)
        return importance_conditional_mean(self.model_, x, observed, q, self.n_impute_samples, generator)

    def _sample_batch(self, x, observed, n_imputations, generator) -> torch.Tensor:
        """Draws ``[M, B, D]`` from the model's conditional for one standardised batch."""
        q = self._proposal(x, observed, generator)
        return importance_resample(
            self.model_, x, observed, q, self.n_impute_samples, n_imputations, generator
        )

    def _log_likelihood_batch(self, x, observed, generator) -> torch.Tensor:
        """IWELBO estimate of ``log p(x_o)`` ``[B]`` in standardised units."""
        q = self._proposal(x, observed, generator)
        return importance_log_likelihood(self.model_, x, observed, q, self.n_score_samples, generator)

    def _samples_per_row(self, method: str) -> int:
        """Monte-Carlo samples per row that ``method`` draws (to size inference batches)."""
        return self.n_score_samples if method == "score" else self.n_impute_samples

    # -- scikit-learn API -------------------------------------------------------------
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit the VAE to incomplete data.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data with missing entries encoded as ``np.nan``.
        y : None
            Ignored.

        Returns
        -------
        self : object
            Fitted estimator.
        """
        self._check_params()
        values, observed = self._fit_input(X)
        self.mean_, self.scale_ = _column_statistics(values, observed)
        self._finish_columns()
        self.device_ = resolve_device(self.device)
        generator = torch_generator(self.random_state, self.device_)
        x, mask = self._to_tensors(values, observed, self.device_)
        config = self._training_config(len(x))
        result = self._train(x, mask, generator, config, type(self).__name__)
        self.refitted_ = config.validation_split == "entries" and result.stopped_early
        if self.refitted_:
            # Held-out entries chose the number of epochs. The weights of that epoch were
            # trained at a high learning rate on part of the data; a model trained afresh
            # on every entry, annealed over exactly those epochs, imputes better (see
            # "Early stopping on held-out entries" in docs/benchmarks.md).
            result.fit_time += self._refit(x, mask, generator, config, result.best_epoch + 1)
        self._check_trained_model(x, mask, result)
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

    def _refit(self, x, mask, generator, config, n_epochs) -> float:
        """Train a fresh model on every entry for ``n_epochs``; return the time taken.

        Should the refit diverge, the model chosen on the held-out entries is kept.
        """
        chosen, name = self.model_, type(self).__name__
        refit = dataclasses.replace(config, max_epochs=n_epochs, validation_fraction=0.0)
        start = time.perf_counter()
        try:
            self._train(x, mask, generator, refit, f"{name} refit")
            finite = self._weights_finite()
        except NonFiniteLossError:
            finite = False
        if not finite:
            self.model_, self.refitted_ = chosen, False
            warnings.warn(
                f"{name}: the refit on all entries diverged; the model chosen on the "
                "held-out entries is kept.",
                ConvergenceWarning,
            )
        return time.perf_counter() - start

    def _weights_finite(self) -> bool:
        return all(bool(torch.isfinite(p).all()) for p in self.model_.parameters())

    def _train(self, x, mask, generator, config, label) -> TrainingResult:
        # verbose output is drawn here, not in core, so that it can adapt to notebooks.
        self._progress = TrainingProgress(config.max_epochs, self.verbose, label=label)
        try:
            return self._fit_model(x, mask, generator, config)
        except BaseException:
            self.__dict__.pop("model_", None)  # a failed fit leaves no usable model behind
            raise
        finally:
            self.__dict__.pop("_progress").close()

    def transform(self, X):
        """Impute missing entries with the model's conditional mean ``E[x_m | x_o]``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data with missing entries encoded as ``np.nan``.

        Returns
        -------
        X_imputed : ndarray or DataFrame of shape (n_samples, n_features)
            Observed entries are returned unchanged (bit for bit); a DataFrame input gives a
            DataFrame with the same columns and index; arrays keep a float input's dtype.
            Columns that were entirely missing during ``fit`` are dropped, or with
            ``keep_empty_features=True`` kept with their missing entries set to 0. Rows
            with no observed entry are imputed from the model's prior predictive mean.
            With binary or categorical columns (``column_types``), a DataFrame comes
            back in the original dtypes, and their missing values are imputed with the
            most probable level or category under the conditional (the mode of the
            importance-weighted predictive probabilities).
        """
        values, observed = self._prepare(X)
        imputed = self._map_batches(self._impute_batch, values, observed, "transform")
        return self._complete(values, observed, imputed, X)

    def sample_imputations(self, X, n_imputations=5):
        """Draw multiple imputations from the model's conditional ``p(x_m | x_o)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data with missing entries encoded as ``np.nan``.
        n_imputations : int, default=5
            Number of completed copies to draw.

        Returns
        -------
        imputations : ndarray of shape (n_imputations, n_samples, n_features) or list
            Completed copies of ``X``; observed entries are unchanged in every copy. For a
            DataFrame with binary or categorical columns, a list of ``n_imputations``
            DataFrames in the original dtypes. Columns entirely missing during ``fit`` are
            handled as in :meth:`transform` (``keep_empty_features``).
        """
        check_n_imputations(n_imputations)
        values, observed = self._prepare(X)
        draws = self._draw_imputations(values, observed, n_imputations)
        return self._wrap_draws(self._handle_empty_features(draws, values), X)

    def score_samples(self, X):
        """Estimate the log-likelihood ``log p(x_o)`` of each row's observed entries.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data with missing entries encoded as ``np.nan``.

        Returns
        -------
        log_likelihood : ndarray of shape (n_samples,)
            Importance-weighted lower bound on ``log p(x_o)`` in nats, in the units of the
            data passed in (the standardisation's Jacobian is accounted for). Columns that
            were entirely missing during ``fit`` are ignored; a row with no observed entry
            scores exactly 0.
        """
        values, observed = self._prepare(X)
        log_lik = self._map_batches(self._log_likelihood_batch, values, observed, "score")
        jacobian = (self._density_entries(values, observed) * np.log(self.scale_)).sum(axis=1)
        # A row with nothing observed has log p(x_o) = log 1 = 0 exactly; the Monte-Carlo
        # estimate would only be close to it.
        log_lik = np.where(observed.any(axis=1), log_lik.astype(np.float64) - jacobian, 0.0)
        return log_lik.astype(values.dtype)

    def __sklearn_is_fitted__(self):
        # Fitted means a usable model: a fit that failed (e.g. diverged) removes ``model_``.
        return "model_" in self.__dict__

    def __getstate__(self):
        # A model trained on a GPU must load on a CPU-only machine: pickle a CPU copy.
        state = dict(super().__getstate__())  # a copy: never swap the live estimator's model
        model = state.get("model_")
        if model is not None and any(p.device.type != "cpu" for p in model.parameters()):
            state["model_"] = copy.deepcopy(model).cpu()
        return state

    # -- helpers ----------------------------------------------------------------------
    def _check_params(self) -> None:
        """Cross-parameter checks that ``_parameter_constraints`` cannot express."""

    def _epoch_end(self, info: dict):
        """Pass epoch summaries to the progress display and the user's callbacks.

        Any callback returning True stops training.
        """
        progress = self.__dict__.get("_progress")
        if progress is not None:
            progress.update(info)
        stop = False
        for callback in self.callbacks or ():
            stop = bool(callback(self, info)) or stop
        return stop

    def _max_epochs(self, n_rows: int) -> int:
        """``max_iter`` with "auto" resolved: at least 200 epochs and 5,000 optimiser steps.

        On the benchmark tables of up to 1,000 rows the held-out entries found their best
        epoch within 5,000 steps (docs/benchmarks.md)."""
        if self.max_iter != "auto":
            return self.max_iter
        steps_per_epoch = math.ceil(n_rows / min(self.batch_size, n_rows))
        return max(_AUTO_MIN_EPOCHS, math.ceil(_AUTO_MIN_STEPS / steps_per_epoch))

    def _training_config(self, n_rows: int) -> TrainingConfig:
        return TrainingConfig(
            max_epochs=self._max_epochs(n_rows),
            batch_size=self.batch_size,
            learning_rate=self.learning_rate,
            lr_schedule=self.lr_schedule,
            clip_grad_norm=self.clip_grad_norm,
            validation_fraction=self.validation_fraction if self.early_stopping else 0.0,
            # DeMissVAE has no such parameter: its stored imputations would carry held-out
            # entries into training, so it always holds out rows.
            validation_split=getattr(self, "validation_split", "rows"),
            n_iter_no_change=self.n_iter_no_change,
            tol=self.tol,
            verbose=0,  # progress is shown by _epoch_end (skmissvae._progress)
        )

    def _validate_input(self, X, reset: bool) -> np.ndarray:
        # Named checks first: sklearn's own messages name neither the column nor the fix.
        if isinstance(X, pd.DataFrame) and X.shape[1] == 0:
            raise ValueError(
                f"Found array with 0 feature(s) (shape={X.shape}) while a minimum of 1 is "
                f"required by {type(self).__name__}."
            )
        _reject_non_numeric_columns(X, type(self).__name__)
        values = validate_data(
            self,
            X,
            reset=reset,
            dtype=[np.float64, np.float32],
            ensure_all_finite=False,
            copy=False,
        )
        _reject_infinite_values(values, getattr(self, "feature_names_in_", None))
        return values

    def _fit_input(self, X) -> tuple[np.ndarray, np.ndarray]:
        """Validated training values and observed-mask, without rows that are all missing.

        Sets ``empty_features_``. Rows with no observed entry carry no information about
        the model (their likelihood is 1 whatever the parameters), so they are left out.
        """
        mixed = self._fit_columns(X)
        if mixed is not None:
            return mixed
        values = self._validate_input(X, reset=True)
        observed = ~np.isnan(values)
        self.empty_features_ = ~observed.any(axis=0)
        rows = observed.any(axis=1)
        if not rows.any():
            raise ValueError(
                f"Every entry of X is missing (NaN); {type(self).__name__} needs at least "
                "one observed value to fit."
            )
        return values[rows], observed[rows]

    def _prepare(self, X) -> tuple[np.ndarray, np.ndarray]:
        check_is_fitted(self)
        if self._column_encoder() is not None:
            validate_data(self, X, reset=False, skip_check_array=True)  # names and width
            return self.column_encoder_.encode(X)
        values = self._validate_input(X, reset=False)
        # Columns entirely missing at fit are unknown to the model: never treat as observed.
        return values, ~np.isnan(values) & ~self.empty_features_

    def _to_tensors(self, values, observed, device):
        with np.errstate(over="ignore", invalid="ignore"):
            standardised = (values - self.mean_) / self.scale_
        standardised = np.clip(standardised, -_STANDARDISED_LIMIT, _STANDARDISED_LIMIT)
        x = torch.as_tensor(np.where(observed, standardised, 0.0), dtype=torch.float32, device=device)
        return x, torch.as_tensor(observed, device=device)

    def _draw_imputations(self, values, observed, n_imputations) -> np.ndarray:
        """``[M, N, D]`` completed copies of ``values`` (all columns, observed ones kept)."""

        def sample(x, mask, generator):
            return self._sample_batch(x, mask, n_imputations, generator)

        draws = self._map_batches(sample, values, observed, "sample", rows_axis=1)
        return np.where(observed, values, self._unstandardise(draws).astype(values.dtype))

    def _complete(self, values, observed, imputed, X):
        """``X`` completed with the standardised imputations ``imputed [N, D]``, as returned
        by :meth:`transform`; observed entries are taken from ``values`` unchanged."""
        out = np.where(observed, values, self._unstandardise(imputed).astype(values.dtype))
        return self._wrap_like(self._handle_empty_features(out, values), X)

    def _output_features(self) -> np.ndarray:
        """Boolean mask of the input columns that outputs keep (``keep_empty_features``)."""
        if self.keep_empty_features:
            return np.ones(self.n_features_in_, dtype=bool)
        return ~self.empty_features_

    def _handle_empty_features(self, out: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Drop the columns empty at fit from ``out [..., N, D]``, or fill their gaps with 0."""
        empty = self.empty_features_
        if not empty.any():
            return out
        if not self.keep_empty_features:
            return out[..., ~empty]
        out = out.copy()
        # scikit-learn's convention (SimpleImputer): an empty feature is imputed with 0.
        out[..., empty] = np.where(np.isnan(values[:, empty]), 0.0, values[:, empty])
        return out

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
            unless ``keep_empty_features=True``.
        """
        check_is_fitted(self)
        names = super().get_feature_names_out(input_features)
        return names[self._output_features()]

    def _check_trained_model(self, x, observed, result: TrainingResult) -> None:
        """Refuse a trained model whose scores or imputations are not finite.

        Steps with a non-finite loss are skipped by the training loop; when they were many
        the weights can still have diverged (huge learning rate, extreme data). A model
        that would output NaN is never kept: it is removed and an error raised.
        """
        rows = slice(0, _FINITE_CHECK_ROWS)
        finite = self._weights_finite()
        if finite:
            # A fixed seed: the check must not consume the estimator's random stream.
            generator = torch.Generator(device=x.device).manual_seed(0)
            self.model_.eval()
            with torch.no_grad():
                log_lik = self._log_likelihood_batch(x[rows], observed[rows], generator)
                imputed = self._impute_batch(x[rows], observed[rows], generator)
            finite = bool(torch.isfinite(log_lik).all() and torch.isfinite(imputed).all())
        name = type(self).__name__
        if not finite:
            del self.model_
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

    def _unstandardise(self, x: np.ndarray) -> np.ndarray:
        return x * self.scale_ + self.mean_

    def _inference_device(self) -> torch.device:
        # A model fitted on a GPU and loaded on a CPU-only machine runs on the CPU.
        device = self.device_ if self.device_.type == "cpu" or torch.cuda.is_available() else torch.device("cpu")
        self.model_.to(device)
        return device

    def _map_batches(self, fn, values, observed, method, rows_axis=0) -> np.ndarray:
        """Apply ``fn(x, observed, generator)`` to row batches; concatenate on ``rows_axis``."""
        device = self._inference_device()
        generator = torch_generator(self.random_state, device)
        batch = max(1, _INFERENCE_BUDGET // self._samples_per_row(method))
        self.model_.eval()
        outputs = []
        with torch.no_grad():
            for start in range(0, len(values), batch):
                rows = slice(start, start + batch)
                x, mask = self._to_tensors(values[rows], observed[rows], device)
                outputs.append(fn(x, mask, generator).cpu().numpy().astype(np.float64))
        return np.concatenate(outputs, axis=rows_axis)

    # -- mixed-type tables (skmissvae.impute._columns) -----------------------------------
    def _column_encoder(self) -> TableEncoder | None:
        """The fitted table encoder, or None when every column is continuous."""
        return self.__dict__.get("column_encoder_")

    def _fit_columns(self, X) -> tuple[np.ndarray, np.ndarray] | None:
        """Column types of ``X``; for a table with binary or categorical columns, its
        encoded values and observed-mask (rows with nothing observed left out).

        Sets ``column_types_`` and ``column_encoder_``. Returns None, and leaves ``X`` to
        the numeric validation, when every column is continuous: arrays without
        ``column_types`` never reach the encoder.
        """
        self.column_encoder_ = None
        if self.column_types is None and not isinstance(X, pd.DataFrame):
            kinds = None
        else:
            kinds = infer_column_types(X, self.column_types)
        if kinds is None or all(kind == "continuous" for kind in kinds):
            return None
        validate_data(self, X, reset=True, skip_check_array=True)  # names and width
        self.column_encoder_ = TableEncoder(kinds).fit(X)
        values, observed = self.column_encoder_.encode(X)
        # Every column has an observed value (the encoder checks), so none is empty.
        self.empty_features_ = np.zeros(self.n_features_in_, dtype=bool)
        rows = observed.any(axis=1)
        return values[rows], observed[rows]

    def _finish_columns(self) -> None:
        """After the statistics: set ``column_types_``; standardise continuous columns only."""
        encoder = self._column_encoder()
        if encoder is None:
            labels = getattr(self, "feature_names_in_", range(self.n_features_in_))
            self.column_types_ = dict.fromkeys(labels, "continuous")
            return
        self.column_types_ = {column.label: column.kind for column in encoder.columns_}
        self.mean_, self.scale_ = encoder.restrict_statistics(self.mean_, self.scale_)

    def _density_entries(self, values: np.ndarray, observed: np.ndarray) -> np.ndarray:
        """Observed entries scored by a density, which the standardisation rescales.

        The point masses of semicontinuous columns are probabilities: no Jacobian term.
        """
        encoder = self._column_encoder()
        return observed if encoder is None else observed & ~encoder.at_atom(values)

    def _likelihood(self) -> GaussianLikelihood | MixedLikelihood:
        """The decoder's observation model: per-block for mixed tables, else Gaussian."""
        encoder = self._column_encoder()
        if encoder is None:
            return GaussianLikelihood(self.min_scale)
        return MixedLikelihood(encoder.blocks_, self.min_scale)

    def _column_groups(self, device):
        """Encoded columns that are observed or missing together (one-hot blocks), or None."""
        groups = getattr(self.model_.likelihood, "column_groups", None)
        return None if groups is None else groups(device)

    def _wrap_draws(self, draws: np.ndarray, X):
        """``[M, N, D]`` completed copies as returned by ``sample_imputations``."""
        encoder = self._column_encoder()
        if encoder is None or encoder.numeric_only_:
            return draws
        copies = [self._wrap_like(copy_, X) for copy_ in draws]
        return copies if isinstance(X, pd.DataFrame) else np.stack(copies)

    def _wrap_like(self, out: np.ndarray, X):
        encoder = self._column_encoder()
        if encoder is not None:
            if isinstance(X, pd.DataFrame):
                return encoder.decode(out, index=X.index)
            return encoder.decode(out).to_numpy()
        if isinstance(X, pd.DataFrame):
            return pd.DataFrame(out, columns=X.columns[self._output_features()], index=X.index)
        return out


def check_n_imputations(n_imputations) -> None:
    """Refuse anything but a positive integer (a bool too) as ``n_imputations``."""
    if isinstance(n_imputations, bool) or not isinstance(n_imputations, numbers.Integral) or n_imputations < 1:
        raise ValueError(f"n_imputations must be a positive integer, got {n_imputations!r}.")


def _column_statistics(values: np.ndarray, observed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Observed mean and standard deviation per column (0 and 1 where undefined or constant)."""
    # A contiguous float64 copy makes the sums independent of the caller's memory layout
    # (pandas hands over column-major data), so arrays and DataFrames give identical results.
    values = np.ascontiguousarray(values, dtype=np.float64)
    counts = observed.sum(axis=0)
    filled = np.where(observed, values, 0.0).astype(np.float64)
    # Columns with huge values are divided by their largest magnitude first, so that sums
    # and squares stay finite; other columns are untouched (bit-identical statistics).
    magnitude = np.abs(filled).max(axis=0, initial=0.0)
    unit = np.where(magnitude > _RESCALE_ABOVE, magnitude, 1.0)
    filled = filled / unit
    mean = np.divide(filled.sum(axis=0), counts, out=np.zeros(values.shape[1]), where=counts > 0)
    sq = np.where(observed, (filled - mean) ** 2, 0.0).sum(axis=0)
    std = np.sqrt(np.divide(sq, counts, out=np.zeros(values.shape[1]), where=counts > 0))
    mean, std = mean * unit, std * unit
    scale = np.where((std > 0) & np.isfinite(std), std, 1.0)
    return mean, scale


def _column_name(names, index: int) -> str:
    return repr(str(names[index])) if names is not None else f"{index} (position)"


def _reject_non_numeric_columns(X, estimator_name: str) -> None:
    """Raise a ValueError naming the first column of ``X`` that holds non-numeric values.

    Object columns of numbers, booleans, ``None``, ``NaN`` and ``pd.NA`` are accepted;
    strings and DataFrame columns of category, string or date dtypes are not. Kept in one
    place so that mixed-type support can replace this rule.
    """
    if isinstance(X, pd.DataFrame):
        columns = [(name, X[name]) for name in X.columns] if X.columns.is_unique else []
        for name, column in columns:
            dtype = column.dtype
            if pd.api.types.is_numeric_dtype(dtype) and not isinstance(dtype, pd.CategoricalDtype):
                continue
            bad = _first_non_numeric(column.to_numpy(dtype=object))
            if bad is not None or not pd.api.types.is_object_dtype(dtype):
                _raise_non_numeric(estimator_name, repr(str(name)), dtype, bad)
        return
    if hasattr(X, "toarray") or not hasattr(X, "__len__"):
        return  # sparse matrices and scalars get scikit-learn's own errors
    try:
        array = X if isinstance(X, np.ndarray) else np.asarray(X)
    except Exception:  # ragged nested lists: left to scikit-learn's error
        return
    if array.dtype.kind not in "OUSV" or array.ndim != 2:
        return
    for index in range(array.shape[1]):
        bad = _first_non_numeric(array[:, index].astype(object))
        if bad is not None:
            _raise_non_numeric(estimator_name, f"{index} (position)", array.dtype, bad)


def _first_non_numeric(values: np.ndarray):
    """The first string entry of ``values``, else None.

    Other objects (dicts, lists, ...) are left to scikit-learn, whose ``TypeError`` its
    estimator checks expect.
    """
    for value in values:
        if isinstance(value, (str, bytes)):
            return value
    return None


def _raise_non_numeric(estimator_name, column, dtype, example):
    found = f" such as {example!r}" if example is not None else ""
    raise ValueError(
        f"Column {column} has dtype {dtype} with non-numeric values{found}: could not "
        f"convert string to float. {estimator_name} treats it as continuous; declare it "
        "'categorical' or 'binary' in column_types, encode it as numbers, or drop it."
    )


def _reject_infinite_values(values: np.ndarray, names) -> None:
    """Raise a ValueError naming the columns that contain +inf or -inf."""
    infinite = np.isinf(values).any(axis=0)
    if infinite.any():
        columns = ", ".join(_column_name(names, i) for i in np.flatnonzero(infinite)[:5])
        raise ValueError(
            f"Input X contains infinity in column(s) {columns}; values must be finite, "
            "with missing entries encoded as NaN."
        )

