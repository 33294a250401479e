"""Shared scikit-learn facade of the VAE imputers.

The base class owns everything that is not model maths: parameter validation, input
checking, per-column standardisation, ``random_state`` and ``device`` resolution, batching,
numpy/pandas in and out, and CPU-safe pickling. Subclasses say how to build and train the
model and how to impute, sample and score one standardised batch.
"""

from __future__ import annotations

import copy
import numbers
import warnings

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from .._compat import Interval, StrOptions, _fit_context
from .._progress import TrainingProgress
from ..core.samplers import (
    importance_conditional_mean,
    importance_log_likelihood,
    importance_resample,
)
from ..core.training import TrainingConfig, TrainingResult

# Rows per inference batch are chosen so that rows x Monte-Carlo samples stays near this.
_INFERENCE_BUDGET = 2**16


def resolve_device(device: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; an unavailable CUDA is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was requested but CUDA is not available; use 'cpu' or 'auto'.")
    return torch.device(device)


def torch_generator(random_state, device: torch.device) -> torch.Generator:
    """A torch.Generator on ``device`` seeded from ``random_state`` (never a global RNG).

    ``None`` draws fresh entropy instead of using numpy's global RandomState as
    ``check_random_state(None)`` would: users' programs must not be reseeded or advanced.
    """
    rng = np.random.RandomState() if random_state is None else check_random_state(random_state)
    seed = int(rng.randint(np.iinfo(np.int32).max))
    return torch.Generator(device=device).manual_seed(seed)


def cpu_generator_from(generator: torch.Generator) -> torch.Generator:
    """A CPU generator seeded from ``generator`` (weights are initialised on the CPU)."""
    seed = torch.randint(2**62, (1,), generator=generator, device=generator.device).item()
    return torch.Generator().manual_seed(int(seed))


class BaseVAEImputer(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Base class of the VAE imputers; not for direct use."""

    _parameter_constraints: dict = {
        "latent_dim": [Interval(numbers.Integral, 1, None, closed="left")],
        "hidden_width": [Interval(numbers.Integral, 1, None, closed="left")],
        "n_hidden_blocks": [Interval(numbers.Integral, 0, None, closed="left")],
        "dropout": [Interval(numbers.Real, 0, 1, closed="left")],
        "learning_rate": [Interval(numbers.Real, 0, None, closed="neither")],
        "batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
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
    }

    # -- what subclasses provide ------------------------------------------------------
    def _fit_model(self, x, observed, generator) -> TrainingResult:
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
        values = self._validate_input(X, reset=True)
        observed = ~np.isnan(values)
        self.mean_, self.scale_ = _column_statistics(values, observed)
        self.device_ = resolve_device(self.device)
        generator = torch_generator(self.random_state, self.device_)
        x, mask = self._to_tensors(values, observed, self.device_)
        # verbose output is drawn here, not in core, so that it can adapt to notebooks.
        self._progress = TrainingProgress(self.max_iter, self.verbose, label=type(self).__name__)
        try:
            result = self._fit_model(x, mask, generator)
        finally:
            self.__dict__.pop("_progress").close()
        self.loss_curve_ = result.loss_curve
        self.validation_scores_ = result.validation_scores
        self.best_iteration_ = result.best_epoch + 1
        self.n_iter_ = result.n_epochs
        self.fit_time_ = result.fit_time
        if self.early_stopping and self.n_iter_ == self.max_iter and self.best_iteration_ == self.n_iter_:
            warnings.warn(
                f"{type(self).__name__} reached max_iter={self.max_iter} epochs while the "
                "validation objective was still improving; consider increasing max_iter.",
                ConvergenceWarning,
            )
        return self

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
        """
        values, observed = self._prepare(X)
        imputed = self._map_batches(self._impute_batch, values, observed, "transform")
        out = np.where(observed, values, self._unstandardise(imputed).astype(values.dtype))
        return self._wrap_like(out, X)

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
        imputations : ndarray of shape (n_imputations, n_samples, n_features)
            Completed copies of ``X``; observed entries are unchanged in every copy.
        """
        if isinstance(n_imputations, bool) or not isinstance(n_imputations, numbers.Integral) or n_imputations < 1:
            raise ValueError(f"n_imputations must be a positive integer, got {n_imputations!r}.")
        values, observed = self._prepare(X)

        def sample(x, mask, generator):
            return self._sample_batch(x, mask, n_imputations, generator)

        draws = self._map_batches(sample, values, observed, "sample", rows_axis=1)
        return np.where(observed, values, self._unstandardise(draws).astype(values.dtype))

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
            data passed in (the standardisation's Jacobian is accounted for).
        """
        values, observed = self._prepare(X)
        log_lik = self._map_batches(self._log_likelihood_batch, values, observed, "score")
        jacobian = (observed * np.log(self.scale_)).sum(axis=1)
        return (log_lik.astype(np.float64) - jacobian).astype(values.dtype)

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

    def _training_config(self) -> TrainingConfig:
        return TrainingConfig(
            max_epochs=self.max_iter,
            batch_size=self.batch_size,
            learning_rate=self.learning_rate,
            lr_schedule=self.lr_schedule,
            clip_grad_norm=self.clip_grad_norm,
            validation_fraction=self.validation_fraction if self.early_stopping else 0.0,
            n_iter_no_change=self.n_iter_no_change,
            tol=self.tol,
            verbose=0,  # progress is shown by _epoch_end (skmissvae._progress)
        )

    def _validate_input(self, X, reset: bool) -> np.ndarray:
        values = validate_data(
            self,
            X,
            reset=reset,
            dtype=[np.float64, np.float32],
            ensure_all_finite="allow-nan",
            copy=False,
        )
        return values

    def _prepare(self, X) -> tuple[np.ndarray, np.ndarray]:
        check_is_fitted(self)
        values = self._validate_input(X, reset=False)
        return values, ~np.isnan(values)

    def _to_tensors(self, values, observed, device):
        standardised = (values - self.mean_) / self.scale_
        x = torch.as_tensor(np.where(observed, standardised, 0.0), dtype=torch.float32, device=device)
        return x, torch.as_tensor(observed, device=device)

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

    def _wrap_like(self, out: np.ndarray, X):
        if isinstance(X, pd.DataFrame):
            return pd.DataFrame(out, columns=X.columns, index=X.index)
        return out


def _column_statistics(values: np.ndarray, observed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Observed mean and standard deviation per column (0 and 1 where undefined or constant)."""
    # A contiguous float64 copy makes the sums independent of the caller's memory layout
    # (pandas hands over column-major data), so arrays and DataFrames give identical results.
    values = np.ascontiguousarray(values, dtype=np.float64)
    counts = observed.sum(axis=0)
    filled = np.where(observed, values, 0.0).astype(np.float64)
    mean = np.divide(filled.sum(axis=0), counts, out=np.zeros(values.shape[1]), where=counts > 0)
    sq = np.where(observed, (filled - mean) ** 2, 0.0).sum(axis=0)
    std = np.sqrt(np.divide(sq, counts, out=np.zeros(values.shape[1]), where=counts > 0))
    scale = np.where(std > 0, std, 1.0)
    return mean, scale
