"""``min_scale="auto"``: the decoder's scale floor, lowered while held-out rows gain from it.

A floor of 0.1 column standard deviations keeps the decoder of a small table from
becoming more certain than the data support, but it also caps the density of data whose
structure is tighter than a tenth of a column's spread (measurements related by near-exact
laws, clusters a few percent wide). "auto" trains at 0.1 first. When most decoder scales
then sit at the floor, it lowers the floor tenfold and trains on for a quarter of the
epochs, keeping the lower floor only if the held-out rows score clearly higher
(``score_samples``, row by row); then the next floor, down to 1e-3 (see "Decoder scale
floor" in the design notes).
"""

from __future__ import annotations

import copy
import dataclasses
import math

import numpy as np
import torch

from ..core.distributed import max_across, sum_across
from ..core.training import NonFiniteLossError, TrainingResult, mean_and_standard_error, split_rows

#: The floors "auto" tries, in order; training starts at the first.
AUTO_FLOORS = (0.1, 0.01, 0.001)
# A lower floor is tried when at least this share of the observed entries has a decoder
# scale under twice the floor, i.e. the floor is at least half of the scale.
_BINDING_SHARE = 0.5
# Rows on which the binding share is measured (per process).
_BINDING_ROWS = 2048
# Each lower floor trains for this fraction of the main run's epochs.
_STAGE_FRACTION = 4


def initial_floor(min_scale) -> float:
    """The floor a fit starts with: ``min_scale``, or the first of ``AUTO_FLOORS``."""
    return AUTO_FLOORS[0] if min_scale == "auto" else float(min_scale)


def binding_share(model, x, observed, floor: float, generator: torch.Generator) -> float:
    """Share of the observed continuous entries (those with a scale parameter) whose
    decoder scale, at one draw from the encoder per row, is under twice ``floor``; over
    the first rows of every process."""
    rows = slice(0, _BINDING_ROWS)
    x, observed = x[rows], observed[rows]
    with torch.no_grad():
        z = model.encode(x, observed).sample(generator=generator)
        scale = model.likelihood.scale(model.decode(z))
    scaled = observed & ~torch.isnan(scale)  # binary and categorical columns have none
    counts = sum_across(torch.stack([(scaled & (scale < 2 * floor)).sum(), scaled.sum()]).double())
    bound, total = counts.tolist()
    return bound / total if total else 0.0


def held_out_scores(estimator, fit) -> torch.Tensor:
    """``score_samples`` of this process's held-out rows of the main run (replayed from the
    generator's state before training), with a fixed seed: per-row values that pair up
    between models."""
    rows = split_rows(len(fit.x), fit.config.validation_fraction, _replayed(fit))[1].cpu().numpy()
    scores = estimator.fitted_model_.log_likelihood(
        fit.values[rows], fit.observed[rows], n_samples=estimator.n_score_samples, random_state=0)
    return torch.from_numpy(np.asarray(scores, dtype=np.float64))


def lower_floor(estimator, problem, result: TrainingResult, fit) -> TrainingResult:
    """Train on at lower floors while the held-out rows say so; returns the merged result.

    Each stage replays the main run's generator, so it holds out the same rows. The
    decision compares ``score_samples`` of those rows (``n_score_samples`` importance
    samples, the same draws for both models) before and after the stage, row by row: the
    lower floor is kept when the mean gain is above ``tol`` and two standard errors. The
    training objective, a bound with a few particles, is too loose for this: near the
    truth it rose on the test rows and fell on the held-out ones.
    """
    fitted, config = estimator.fitted_model_, fit.config
    n_validation = math.floor(config.validation_fraction * len(fit.x))  # as split_rows holds out
    if not max_across(int(2 <= n_validation < len(fit.x))):
        return result  # no held-out rows to judge a lower floor by
    model, floor, kept = fitted.model, AUTO_FLOORS[0], None
    stage_config = dataclasses.replace(config, max_epochs=max(1, config.max_epochs // _STAGE_FRACTION))
    check_generator = torch.Generator(device=fit.generator.device).manual_seed(0)
    for lower in AUTO_FLOORS[1:]:
        if binding_share(model, fit.x, fit.mask, floor, check_generator) < _BINDING_SHARE:
            break
        kept = held_out_scores(estimator, fit) if kept is None else kept
        state = copy.deepcopy(model.state_dict())
        model.likelihood = fitted.table.likelihood(lower)
        stage_fit = dataclasses.replace(fit, config=stage_config, generator=_replayed(fit))
        try:
            stage = estimator._train(problem, stage_fit, f"{type(estimator).__name__} at floor {lower:g}")
            scores = held_out_scores(estimator, fit)
            gain, error = mean_and_standard_error(scores - kept)
        except NonFiniteLossError:
            stage, gain, error = None, -math.inf, 0.0
        if not gain > max(config.tol, 2 * error):
            model.load_state_dict(state)
            model.likelihood = fitted.table.likelihood(floor)
            if stage is not None:
                result.fit_time += stage.fit_time
            break
        result = _appended(result, stage)
        floor, kept = lower, scores
    fitted.config = dataclasses.replace(fitted.config, min_scale=floor)
    return result


def _replayed(fit) -> torch.Generator:
    """A generator in the state the main run's had before training."""
    generator = torch.Generator(device=fit.generator.device)
    generator.set_state(fit.generator_state)
    return generator


def _appended(first: TrainingResult, stage: TrainingResult) -> TrainingResult:
    """``first`` followed by ``stage``: curves joined, epochs counted on."""
    return dataclasses.replace(
        first,
        loss_curve=first.loss_curve + stage.loss_curve,
        validation_scores=first.validation_scores + stage.validation_scores,
        validation_standard_errors=first.validation_standard_errors + stage.validation_standard_errors,
        best_epoch=first.n_epochs + stage.best_epoch,
        n_epochs=first.n_epochs + stage.n_epochs,
        stopped_early=stage.stopped_early,
        n_non_finite_steps=first.n_non_finite_steps + stage.n_non_finite_steps,
        fit_time=first.fit_time + stage.fit_time,
    )
