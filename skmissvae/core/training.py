"""Validated training configuration, the training-problem interface and the loop.

The loop is generic: it maximises the batch mean of a ``TrainingProblem``'s per-row
objective over in-memory tensors, with Adam (amsgrad), an optional cosine schedule,
global gradient-norm clipping, mini-batches by index permutation, and early stopping on
held-out rows or held-out entries by a named stopping rule. ``run_epoch`` is one pass of
it, also used on its own for training block by block. Inside a ``torch.distributed``
process group the loop trains data-parallel (``skmissvae.core.distributed``).
"""

from __future__ import annotations

import copy
import math
import numbers
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch
from torch import Tensor, nn

from .distributed import average_gradients, broadcast_module, is_data_parallel, max_across, sum_across

__all__ = [
    "EpochOutcome",
    "NoImprovementRule",
    "NonFiniteLossError",
    "OverfittingRule",
    "TrainingConfig",
    "TrainingProblem",
    "TrainingResult",
    "adam",
    "epoch_batches",
    "mean_and_standard_error",
    "run_epoch",
    "split_entries",
    "split_rows",
    "stopping_rule",
    "train",
]


class NonFiniteLossError(RuntimeError):
    """Training produced non-finite losses from the first steps on: nothing to restore."""


@dataclass(frozen=True)
class TrainingConfig:
    """Settings of ``train``; validated on construction.

    Attributes
    ----------
    max_epochs : int
        Passes over the training rows.
    batch_size : int
        Rows per step (capped at the number of training rows).
    learning_rate : float
        Adam's initial step size.
    lr_schedule : {"cosine", "constant"}
        Cosine annealing to 0 over ``max_epochs`` or a constant rate.
    clip_grad_norm : float or None
        Global gradient-norm threshold.
    validation_fraction : float
        Share of rows, or of observed entries, held out for early stopping (0 disables
        early stopping).
    validation_split : {"rows", "entries"}
        Hold out whole rows (scored with the validation function) or single observed
        entries of every row (scored by how well they are predicted from the rest of the
        row, which is what an imputer is asked for).
    n_iter_no_change : int
        Epochs in a row with the validation score clearly below its best (by more than
        ``tol`` and than two standard errors) before training stops.
    tol : float
        Minimum change of the validation objective that counts (nats per row).
    max_non_finite_steps : int
        Consecutive non-finite losses tolerated (each is skipped) before training stops.
    """

    max_epochs: int = 100
    batch_size: int = 256
    learning_rate: float = 1e-3
    lr_schedule: str = "cosine"
    clip_grad_norm: Optional[float] = 5.0
    validation_fraction: float = 0.1
    validation_split: str = "rows"
    n_iter_no_change: int = 10
    tol: float = 1e-3
    max_non_finite_steps: int = 20

    def __post_init__(self) -> None:
        def count(value) -> bool:
            return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1

        checks = {
            "max_epochs": count(self.max_epochs),
            "batch_size": count(self.batch_size),
            "learning_rate": self.learning_rate > 0,
            "lr_schedule": self.lr_schedule in ("cosine", "constant"),
            "clip_grad_norm": self.clip_grad_norm is None or self.clip_grad_norm > 0,
            "validation_fraction": 0 <= self.validation_fraction < 1,
            "validation_split": self.validation_split in ("rows", "entries"),
            "n_iter_no_change": count(self.n_iter_no_change),
            "tol": self.tol >= 0,
            "max_non_finite_steps": count(self.max_non_finite_steps),
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"Invalid training settings: {', '.join(bad)}.")


@dataclass
class TrainingResult:
    """What ``train`` observed: per-epoch curves and how it stopped."""

    loss_curve: list[float] = field(default_factory=list)
    validation_scores: list[float] = field(default_factory=list)
    validation_standard_errors: list[float] = field(default_factory=list)
    best_epoch: int = 0  # the epoch whose weights were kept
    n_epochs: int = 0
    stopped_early: bool = False
    n_non_finite_steps: int = 0
    fit_time: float = 0.0


def split_rows(n_rows: int, validation_fraction: float, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Random train/validation row indices; no validation rows when too few rows."""
    perm = torch.randperm(n_rows, generator=generator, device=generator.device)
    n_val = int(math.floor(validation_fraction * n_rows))
    if n_val < 1 or n_rows - n_val < 1:
        return perm, perm[:0]
    return perm[n_val:], perm[:n_val]


def split_entries(
    observed: Tensor, fraction: float, generator: torch.Generator, groups: Optional[Tensor] = None
) -> Tensor:
    """Boolean ``[N, D]`` mask of held-out entries: each observed entry with probability
    ``fraction``, but never every observed entry of a row (such rows keep all theirs).

    ``groups`` (``[D]`` ids) holds out columns that share an id together, such as the
    one-hot columns of a categorical variable, which are observed or missing as a whole.
    """
    n_rows, n_features = observed.shape
    if groups is None:
        groups = torch.arange(n_features, device=observed.device)
    draws = torch.rand((n_rows, int(groups.max()) + 1), generator=generator, device=generator.device)
    held = observed & (draws.to(observed.device)[:, groups] < fraction)
    keeps_none = ~(observed & ~held).any(1, keepdim=True)
    return held & ~keeps_none


class TrainingProblem:
    """What ``train`` optimises: a model, its per-row objective and optional hooks.

    Subclasses implement ``objective``; the other methods have defaults. Every method that
    draws random numbers takes the loop's ``torch.Generator``.

    Parameters
    ----------
    model : nn.Module
        Trained in place.
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def parameters(self) -> list[nn.Parameter]:
        """What the optimiser updates (default: every parameter of the model)."""
        return list(self.model.parameters())

    def objective(self, x_filled: Tensor, observed: Tensor, rows: Tensor, generator: torch.Generator) -> Tensor:
        """Per-row training objective ``[B]`` (higher is better) of a batch ``[B, D]``;
        ``rows`` are the batch's indices into the training set."""
        raise NotImplementedError

    def backward(self, per_row: Tensor) -> None:
        """Accumulate the gradients of the step's loss ``-mean(per_row)``."""
        (-per_row.mean()).backward()

    def on_epoch_start(self, epoch: int) -> None:
        """Called with the epoch index (from 0) before each epoch."""

    def validation_score(self, x_filled: Tensor, observed: Tensor, rows: Tensor, generator: torch.Generator) -> Tensor:
        """Per-row score ``[B]`` of held-out rows (default: the training objective)."""
        return self.objective(x_filled, observed, rows, generator)

    def held_out_score(self, x_filled: Tensor, observed: Tensor, x_target: Tensor, held: Tensor,
                       generator: torch.Generator) -> Tensor:
        """Per-row score ``[B]`` of how well the held-out entries ``held [B, D]``, whose
        values are in ``x_target``, are predicted from the observed ones (higher is
        better); needed for ``validation_split="entries"``."""
        raise NotImplementedError(f"{type(self).__name__} cannot score held-out entries.")

    def entry_groups(self, device) -> Optional[Tensor]:
        """Column group ids ``[D]`` held out together by ``split_entries`` (or None)."""
        return None


@dataclass(frozen=True)
class OverfittingRule:
    """Early stopping on held-out rows: stop when the score has stayed below its best by
    more than ``tol`` and two standard errors for ``n_iter_no_change`` epochs.

    Only a fall beyond two standard errors (the luck of which rows were held out) is
    evidence of overfitting; stopping on smaller falls forgoes the annealed end of the
    schedule. A fit that runs to the end keeps its final weights unless they score
    clearly below the best in the same sense.
    """

    n_iter_no_change: int
    tol: float

    def latest_is_good(self, score: float, standard_error: float, best_score: float,
                       improved: bool, usable: bool) -> bool:
        return usable and score >= best_score - max(self.tol, 2 * standard_error)

    def keep_final(self, latest_is_good: bool, stopped_early: bool, finite: bool) -> bool:
        return latest_is_good


@dataclass(frozen=True)
class NoImprovementRule:
    """Early stopping on held-out entries: stop after ``n_iter_no_change`` epochs without
    a new best (by more than ``tol``).

    Every epoch is scored on the same held-out entries, so epochs compare as pairs: any
    epoch without a new best counts as worse. A stopped fit restores its best weights (the
    caller may then refit on every entry); one that runs to the end keeps its final,
    annealed weights.
    """

    n_iter_no_change: int
    tol: float

    def latest_is_good(self, score: float, standard_error: float, best_score: float,
                       improved: bool, usable: bool) -> bool:
        return improved

    def keep_final(self, latest_is_good: bool, stopped_early: bool, finite: bool) -> bool:
        return not stopped_early and finite


def stopping_rule(config: TrainingConfig) -> OverfittingRule | NoImprovementRule:
    """The rule that goes with ``config.validation_split``."""
    rule = NoImprovementRule if config.validation_split == "entries" else OverfittingRule
    return rule(config.n_iter_no_change, config.tol)


def _evaluate(score_fn, x, observed, rows, batch_size, seed) -> tuple[float, float]:
    """Mean per-row score over ``rows`` (of every process) and its standard error."""
    # A fixed seed gives every epoch the same Monte-Carlo noise (common random numbers),
    # so validation scores differ only through the parameters.
    generator = torch.Generator(device=x.device).manual_seed(seed)
    with torch.no_grad():
        values = torch.cat([
            score_fn(x[idx], observed[idx], idx, generator).double()
            for idx in rows.split(batch_size)
        ] + [torch.zeros(0, dtype=torch.float64, device=x.device)])
    return mean_and_standard_error(values)


def mean_and_standard_error(values: Tensor) -> tuple[float, float]:
    """Mean of per-row ``values`` (of every process) and its standard error."""
    if is_data_parallel():
        return _pooled_mean(values)
    mean = values.double().mean().item()
    if len(values) < 2 or not math.isfinite(mean):
        return mean, 0.0
    return mean, values.double().std().item() / math.sqrt(len(values))


def _pooled_mean(values: Tensor) -> tuple[float, float]:
    """Mean and standard error of the values of every process, from their summed moments."""
    values = values.double()
    count, total, squares = sum_across(torch.stack([
        torch.tensor(float(len(values)), dtype=torch.float64, device=values.device),
        values.sum(), (values**2).sum()])).tolist()
    mean = total / count
    if count < 2 or not math.isfinite(mean):
        return mean, 0.0
    variance = max(squares - count * mean**2, 0.0) / (count - 1)
    return mean, math.sqrt(variance / count)


def _all_finite(model: nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def _validation_setup(problem: TrainingProblem, x_filled, observed, config, generator):
    """Training data, training rows, validation rows and the validation score function."""
    if config.validation_split == "entries" and config.validation_fraction > 0:
        if type(problem).held_out_score is TrainingProblem.held_out_score:
            raise NotImplementedError(
                f"{type(problem).__name__} cannot score held-out entries; "
                "validation_split='entries' needs a held_out_score."
            )
        x_target = x_filled
        held = split_entries(observed, config.validation_fraction, generator,
                             problem.entry_groups(observed.device))
        observed = observed & ~held
        x_filled = torch.where(observed, x_filled, 0.0)
        train_rows = torch.arange(len(x_filled), device=generator.device)
        val_rows = train_rows[held.any(1).to(train_rows.device)]

        def score_fn(x_batch, observed_batch, rows, gen):
            return problem.held_out_score(x_batch, observed_batch, x_target[rows], held[rows], gen)

        return x_filled, observed, train_rows, val_rows, score_fn
    train_rows, val_rows = split_rows(len(x_filled), config.validation_fraction, generator)
    return x_filled, observed, train_rows, val_rows, problem.validation_score


def adam(params: list[nn.Parameter], learning_rate: float) -> torch.optim.Adam:
    """The optimiser of every training run: Adam with amsgrad."""
    # The fused CPU/GPU kernel (torch >= 2.4) makes the optimiser step about 3x cheaper.
    fused = tuple(int(v) for v in torch.__version__.split(".")[:2]) >= (2, 4)
    return torch.optim.Adam(params, lr=learning_rate, amsgrad=True, fused=fused or None)


def epoch_batches(train_rows: Tensor, batch_size: int, generator: torch.Generator) -> list[Tensor]:
    """Row indices of every step of one epoch: the rows in a fresh random order, in batches.

    In data-parallel training every process takes as many steps as the process with the
    most rows; a process whose rows have run out takes its remaining steps with empty
    batches (and no weight in the averaged gradient).
    """
    batch_size = min(batch_size, len(train_rows))
    order = train_rows[torch.randperm(len(train_rows), generator=generator, device=generator.device)]
    n_steps = max_across(math.ceil(len(train_rows) / batch_size))
    return [order[step * batch_size:(step + 1) * batch_size] for step in range(n_steps)]


@dataclass
class EpochOutcome:
    """What one pass of ``run_epoch`` did."""

    loss_sum: Tensor  # sum over the rows of finite steps of the batch losses times rows
    n_rows: int  # rows of the finite steps
    n_steps: int  # steps taken
    n_skipped: int  # steps skipped for a non-finite loss
    non_finite_run: int  # consecutive skipped steps at the end


def run_epoch(problem: TrainingProblem, x_filled: Tensor, observed: Tensor, batches: list[Tensor],
              optimizer: torch.optim.Optimizer, generator: torch.Generator, *,
              clip_grad_norm: Optional[float], scheduler=None, non_finite_run: int = 0,
              max_non_finite_steps: int = 20) -> EpochOutcome:
    """One optimiser step per batch of rows of ``x_filled``.

    A step whose loss is not finite (on any process) is skipped: it would poison Adam's
    moments for good. The pass ends early after ``max_non_finite_steps`` skipped steps in
    a row (counting ``non_finite_run`` from earlier passes).
    """
    params = [p for group in optimizer.param_groups for p in group["params"]]
    outcome = EpochOutcome(torch.zeros((), device=x_filled.device), 0, 0, 0, non_finite_run)
    for idx in batches:
        optimizer.zero_grad(set_to_none=True)
        loss, finite = torch.zeros((), device=x_filled.device), True
        if len(idx):  # empty once a data-parallel process's rows have run out
            per_row = problem.objective(x_filled[idx], observed[idx], idx, generator)
            loss = -per_row.mean()
            finite = bool(torch.isfinite(loss))
            if finite:
                problem.backward(per_row)
        if not average_gradients(params, finite, len(idx)):
            outcome.n_skipped += 1
            outcome.non_finite_run += 1
            if outcome.non_finite_run >= max_non_finite_steps:
                break
            continue
        outcome.non_finite_run = 0
        if clip_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(params, clip_grad_norm)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        outcome.loss_sum += loss.detach() * len(idx)  # no host sync per step
        outcome.n_rows += len(idx)
        outcome.n_steps += 1
    return outcome


def train(
    problem: TrainingProblem,
    x_filled: Tensor,
    observed: Tensor,
    config: TrainingConfig,
    generator: torch.Generator,
    on_epoch_end: Optional[Callable[[dict], Optional[bool]]] = None,
) -> TrainingResult:
    """Maximise ``mean(problem.objective(...))`` over ``x_filled`` ``[N, D]``.

    Parameters
    ----------
    problem : TrainingProblem
        Its model is trained in place and holds the kept weights on return.
    x_filled, observed : Tensor ``[N, D]``
        Zero-filled data and its boolean observed-mask, on the training device.
    config : TrainingConfig
    generator : torch.Generator
        The only source of randomness (split, batches, Monte-Carlo draws).
    on_epoch_end : callable, optional
        Called after each epoch with ``{"epoch", "loss", "validation_score",
        "validation_standard_error", "elapsed"}`` (epochs from 1); returning True stops
        training (weights kept as at the end).

    With ``validation_split="entries"`` the held-out entries are removed from the training
    data and scored with ``problem.held_out_score``; otherwise held-out rows are scored
    with ``problem.validation_score``. The stopping rule is ``stopping_rule(config)``.
    When it stops training, the weights of the best epoch are restored; a fit that runs to
    ``max_epochs`` keeps its final weights when the rule says so (and they are finite).
    Without validation rows (``validation_fraction=0`` or too few rows) the final weights
    are kept.
    """
    start_time = time.perf_counter()
    model = problem.model
    params = problem.parameters()
    x_filled, observed, train_rows, val_rows, score_fn = _validation_setup(
        problem, x_filled, observed, config, generator
    )
    rule = stopping_rule(config)
    broadcast_module(model)  # data-parallel: every process starts from rank 0's weights
    batch_size = min(config.batch_size, len(train_rows))
    steps_per_epoch = max_across(math.ceil(len(train_rows) / batch_size))
    optimizer = adam(params, config.learning_rate)
    total_steps = config.max_epochs * steps_per_epoch
    scheduler = None
    if config.lr_schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps))
        )
    val_seed = int(torch.randint(2**62, (1,), generator=generator, device=generator.device).item())
    result = TrainingResult()
    best_score, best_state, n_worse, non_finite_run, n_steps = -math.inf, None, 0, 0, 0
    latest_is_good = False
    has_validation = max_across(len(val_rows)) > 0

    for epoch in range(config.max_epochs):
        problem.on_epoch_start(epoch)
        model.train()
        outcome = run_epoch(problem, x_filled, observed, epoch_batches(train_rows, batch_size, generator),
                            optimizer, generator, clip_grad_norm=config.clip_grad_norm,
                            scheduler=scheduler, non_finite_run=non_finite_run,
                            max_non_finite_steps=config.max_non_finite_steps)
        result.n_non_finite_steps += outcome.n_skipped
        non_finite_run, n_steps = outcome.non_finite_run, n_steps + outcome.n_steps
        result.n_epochs = epoch + 1
        loss_sum, n_finite = _epoch_loss(outcome)
        result.loss_curve.append(loss_sum / n_finite if n_finite else math.nan)

        model.eval()
        if has_validation:
            score, standard_error = _evaluate(score_fn, x_filled, observed, val_rows, 4 * batch_size, val_seed)
        else:
            score, standard_error = -result.loss_curve[-1], 0.0
        result.validation_scores.append(score)
        result.validation_standard_errors.append(standard_error)
        # A finite score can come with weights already broken by the epoch's last steps.
        usable = math.isfinite(score) and _all_finite(model)
        improved = usable and score > best_score + config.tol
        if improved:
            best_score, result.best_epoch = score, epoch
            best_state = copy.deepcopy(model.state_dict())
        latest_is_good = rule.latest_is_good(score, standard_error, best_score, improved, usable)
        n_worse = 0 if latest_is_good else n_worse + 1
        if non_finite_run >= config.max_non_finite_steps:
            break
        if on_epoch_end is not None:
            info = {"epoch": epoch + 1, "loss": result.loss_curve[-1], "validation_score": score,
                    "validation_standard_error": standard_error,
                    "elapsed": time.perf_counter() - start_time}
            # Data-parallel: a callback that stops one process stops them all.
            if max_across(int(bool(on_epoch_end(info)))):
                break
        if has_validation and n_worse >= rule.n_iter_no_change:
            result.stopped_early = True
            break

    if best_state is None or n_steps == 0:
        raise NonFiniteLossError(
            "Training produced no finite objective value; lower learning_rate or check the "
            "scale of the data."
        )
    # Also restore when the last steps were non-finite: the final weights may be NaN.
    keep_final = rule.keep_final(latest_is_good, result.stopped_early, _all_finite(model))
    if non_finite_run == 0 and (keep_final or not has_validation):
        result.best_epoch = result.n_epochs - 1
    else:
        model.load_state_dict(best_state)
    model.eval()
    result.fit_time = time.perf_counter() - start_time
    return result


def _epoch_loss(outcome: EpochOutcome) -> tuple[float, int]:
    """The epoch's summed loss and rows, over every process."""
    if not is_data_parallel():
        return outcome.loss_sum.item(), outcome.n_rows
    loss_sum, n_rows = sum_across(torch.stack([outcome.loss_sum.double(),
                                               torch.tensor(float(outcome.n_rows), device=outcome.loss_sum.device,
                                                            dtype=torch.float64)])).tolist()
    return loss_sum, int(n_rows)
