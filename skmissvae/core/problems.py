"""Training problems of the paper's methods, for ``skmissvae.core.training.train``.

``FiniteMixtureProblem`` trains MVAE, MIWAE, MissVAE, MissSVAE, MissIWAE and MissSIWAE
(Simkus & Gutmann, 2024, sec. 4); ``DeMissVAEProblem`` trains DeMissVAE (sec. 5) and owns
its store of imputations. ``ImputationSampler`` is DeMissVAE's refresh of imputations,
shared by training and inference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .model import MissingDataVAE, demissvae_backward, demissvae_objectives, finite_mixture_objective
from .samplers import (
    column_pools,
    empirical_imputations,
    importance_conditional_mean,
    importance_log_likelihood,
    imputation_mixture,
    lair,
    pseudo_gibbs,
)
from .training import TrainingProblem

__all__ = ["DeMissVAEProblem", "FiniteMixtureProblem", "ImputationSampler", "column_groups"]

# Rows per chunk when the imputation store is initialised (bounds the temporaries).
_INIT_CHUNK_ROWS = 4096
# Importance samples per validation row for DeMissVAE's early stopping.
_VALIDATION_SAMPLES = 25


def column_groups(model: MissingDataVAE, device) -> Tensor | None:
    """Encoded columns observed or missing together (one-hot blocks), or None."""
    groups = getattr(model.likelihood, "column_groups", None)
    return None if groups is None else groups(device)


class FiniteMixtureProblem(TrainingProblem):
    """The per-row bound of a finite-mixture method (``finite_mixture_objective``).

    Parameters
    ----------
    model : MissingDataVAE
    objective : {"elbo", "iwelbo"}
    sampling : {"ancestral", "stratified"}
    n_particles : int
        Latent draws per row per step; also the importance samples with which held-out
        entries are imputed for ``validation_split="entries"``.
    gradient_estimator : {"stl", "dreg", "total"}
    choice_gradient : {"implicit", "score"}
        How ancestral mixture draws reach the mixture weights (``finite_mixture_objective``).
    parameters : list of nn.Parameter, optional
        What the optimiser updates (default: the whole model; the encoder alone when the
        decoder is frozen, as in the refit of ``evaluation.refit_test_log_likelihood``).
    """

    def __init__(self, model: MissingDataVAE, *, objective: str, sampling: str, n_particles: int,
                 gradient_estimator: str = "stl", choice_gradient: str = "implicit",
                 parameters=None) -> None:
        super().__init__(model)
        self.objective_name = objective
        self.sampling = sampling
        self.n_particles = n_particles
        self.gradient_estimator = gradient_estimator
        self.choice_gradient = choice_gradient
        self._parameters = parameters

    def parameters(self):
        return list(self.model.parameters()) if self._parameters is None else list(self._parameters)

    def objective(self, x_filled, observed, rows, generator):
        return finite_mixture_objective(
            self.model, x_filled, observed,
            objective=self.objective_name,
            sampling=self.sampling,
            n_particles=self.n_particles,
            dreg=self.gradient_estimator == "dreg",
            stl=self.gradient_estimator != "total",
            choice_gradient=self.choice_gradient,
            generator=generator,
        )

    def held_out_score(self, x_filled, observed, x_target, held, generator):
        # Minus the squared error of the conditional-mean imputation of the held-out
        # entries (the Brier score for binary and categorical ones), per row. Their
        # predictive log-density stopped training too early on small tables.
        q = self.model.encode(x_filled, observed)
        imputed = importance_conditional_mean(self.model, x_filled, observed, q, self.n_particles, generator)
        return -(((imputed - x_target) ** 2) * held).sum(-1)

    def entry_groups(self, device):
        return column_groups(self.model, device)


@dataclass(frozen=True)
class ImputationSampler:
    """DeMissVAE's refresh of imputations ``[B, K, D]``: LAIR or pseudo-Gibbs (sec. 5)."""

    sampler: str = "lair"
    lair_iterations: int = 10
    lair_samples_per_proposal: int = 1
    lair_prior_proposals: int = 1
    lair_final_resampling: bool = True

    def refresh(self, model: MissingDataVAE, imputations: Tensor, observed: Tensor, generator) -> Tensor:
        """One refresh of ``imputations`` ``[B, K, D]``, with dropout off."""
        was_training = model.training
        model.eval()
        try:
            if self.sampler == "pseudo_gibbs":
                return pseudo_gibbs(model, imputations, observed, 1, generator)
            return lair(
                model, imputations, observed,
                n_iterations=self.lair_iterations,
                n_samples_per_proposal=self.lair_samples_per_proposal,
                n_prior_proposals=self.lair_prior_proposals,
                final_resampling=self.lair_final_resampling,
                generator=generator,
            )
        finally:
            model.train(was_training)

    def candidates_per_row(self, n_imputations: int) -> int:
        """Latent candidates that one LAIR iteration draws per row."""
        return self.lair_samples_per_proposal * (n_imputations + self.lair_prior_proposals)


class DeMissVAEProblem(TrainingProblem):
    """DeMissVAE's training (sec. 5): a store of ``K`` imputations per training row,
    refreshed by ``sampler`` from the second epoch on, and two objectives whose gradients
    reach the decoder and the encoder separately (``demissvae_backward``).

    Parameters
    ----------
    model : MissingDataVAE
        With a single-Gaussian encoder.
    x_filled, observed : Tensor ``[N, D]``
        The training data; the store is initialised from each column's observed values.
    n_imputations : int
        ``K``.
    sampler : ImputationSampler
    generator : torch.Generator
        Draws the initial imputations.

    Attributes
    ----------
    store : Tensor ``[N, K, D]``
        The current imputations of every training row (float32, training device).
    """

    def __init__(self, model: MissingDataVAE, x_filled: Tensor, observed: Tensor, *, n_imputations: int,
                 sampler: ImputationSampler, generator: torch.Generator) -> None:
        super().__init__(model)
        self.sampler = sampler
        self.epoch = 0
        self._terms: tuple[Tensor, Tensor] | None = None
        # Missing entries start as draws from all observed values of their column, in
        # chunks of rows so that temporaries stay small.
        pool, counts = column_pools(x_filled, observed)
        groups = column_groups(model, x_filled.device)
        self.store = torch.empty((len(x_filled), n_imputations, x_filled.shape[1]),
                                 dtype=torch.float32, device=x_filled.device)
        for start in range(0, len(x_filled), _INIT_CHUNK_ROWS):
            rows = slice(start, start + _INIT_CHUNK_ROWS)
            self.store[rows] = empirical_imputations(
                x_filled[rows], observed[rows], pool, counts, n_imputations, generator, groups=groups
            )

    def on_epoch_start(self, epoch: int) -> None:
        self.epoch = epoch

    def _imputations(self, observed, rows, generator) -> Tensor:
        """The rows' imputations ``[B, K, D]``, refreshed (and stored) after the first epoch."""
        imputations = self.store[rows]
        if self.epoch >= 1:
            imputations = self.sampler.refresh(self.model, imputations, observed, generator)
            self.store[rows] = imputations
        return imputations

    def objective(self, x_filled, observed, rows, generator):
        imputations = self._imputations(observed, rows, generator)
        decoder_term, encoder_term = demissvae_objectives(self.model, imputations, observed, generator)
        self._terms = (decoder_term, encoder_term)
        # The loop logs the decoder objective (the ELBO of the observed data). A row whose
        # encoder objective is not finite makes it non-finite too, so that the loop skips
        # the step instead of stepping on a broken encoder gradient.
        return torch.where(torch.isfinite(encoder_term), decoder_term, math.nan)

    def backward(self, per_row):
        decoder_term, encoder_term = self._terms
        self._terms = None
        demissvae_backward(decoder_term, encoder_term,
                           list(self.model.decoder.parameters()), list(self.model.encoder.parameters()))

    def validation_score(self, x_filled, observed, rows, generator):
        # An IWELBO of log p(x_o) with the rows' imputation mixture as proposal: the
        # decoder objective (an ELBO) drifts with the imputations and stops training too
        # early.
        imputations = self._imputations(observed, rows, generator)
        q = imputation_mixture(self.model, imputations, observed)
        return importance_log_likelihood(self.model, x_filled, observed, q, _VALIDATION_SAMPLES, generator)
