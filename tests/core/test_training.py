"""Tests of the validated training configuration and the training loop."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch import nn

from skmissvae.core.model import MissingDataVAE, finite_mixture_objective
from skmissvae.core.training import (
    NoImprovementRule,
    NonFiniteLossError,
    OverfittingRule,
    TrainingConfig,
    TrainingProblem,
    split_entries,
    split_rows,
    stopping_rule,
    train,
)

DTYPE = torch.float64


def _generator(seed=0):
    return torch.Generator().manual_seed(seed)


# -- configuration -------------------------------------------------------------------------


def test_default_config_is_valid_and_frozen():
    config = TrainingConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.max_epochs = 3


@pytest.mark.parametrize(
    "setting",
    [
        {"max_epochs": 0},
        {"batch_size": 0},
        {"learning_rate": 0.0},
        {"learning_rate": -1e-3},
        {"learning_rate": math.nan},
        {"lr_schedule": "linear"},
        {"clip_grad_norm": 0.0},
        {"clip_grad_norm": -1.0},
        {"validation_fraction": -0.1},
        {"validation_fraction": 1.0},
        {"validation_split": "columns"},
        {"n_iter_no_change": 0},
        {"tol": -1e-3},
        {"tol": math.nan},
        {"max_non_finite_steps": 0},
    ],
    ids=lambda s: "-".join(f"{k}={v}" for k, v in s.items()),
)
def test_config_rejects_bad_settings(setting):
    name = next(iter(setting))
    with pytest.raises(ValueError, match=name):
        TrainingConfig(**setting)


@pytest.mark.parametrize(
    "setting",
    [{"max_epochs": 2.5}, {"batch_size": 16.5}],
    ids=lambda s: "-".join(f"{k}={v}" for k, v in s.items()),
)
def test_config_rejects_non_integer_counts(setting):
    # Accepted, these fail later inside ``train`` with a TypeError from ``range`` (far from
    # the mistake); a config that is validated on construction should reject them at once.
    name = next(iter(setting))
    with pytest.raises(ValueError, match=name):
        TrainingConfig(**setting)


@pytest.mark.parametrize(
    "setting",
    [
        {"clip_grad_norm": None},
        {"validation_fraction": 0.0},
        {"lr_schedule": "constant"},
        {"tol": 0.0},
    ],
)
def test_config_accepts_boundary_settings(setting):
    TrainingConfig(**setting)


def test_split_rows_partitions_the_rows():
    train_rows, val_rows = split_rows(50, 0.2, _generator())
    assert len(val_rows) == 10 and len(train_rows) == 40
    assert sorted(torch.cat([train_rows, val_rows]).tolist()) == list(range(50))
    train_rows, val_rows = split_rows(3, 0.2, _generator())  # too few rows for a validation split
    assert len(val_rows) == 0 and sorted(train_rows.tolist()) == [0, 1, 2]


def test_split_entries_holds_out_observed_entries_but_never_a_whole_row():
    observed = torch.rand(400, 6, generator=_generator(1)) < 0.6
    observed[0] = False
    observed[0, 2] = True  # a row with one observed entry keeps it
    held = split_entries(observed, 0.3, _generator())
    assert not (held & ~observed).any()
    assert (observed & ~held).any(1)[observed.any(1)].all()
    assert not held[0].any()
    assert abs(held.sum().item() / observed.sum().item() - 0.3) < 0.05
    assert torch.equal(held, split_entries(observed, 0.3, _generator()))


def test_split_entries_holds_out_a_group_of_columns_as_a_whole():
    observed = torch.ones(300, 5, dtype=torch.bool)
    groups = torch.tensor([0, 1, 1, 1, 2])  # columns 1-3: one categorical variable
    held = split_entries(observed, 0.4, _generator(), groups)
    assert (held[:, 1:4] == held[:, 1:2]).all()
    assert held[:, 1].any() and not held[:, 1].all()


# -- stopping rules ------------------------------------------------------------------------


def test_stopping_rule_follows_the_validation_split():
    rows = stopping_rule(TrainingConfig(n_iter_no_change=4, tol=0.2))
    entries = stopping_rule(TrainingConfig(validation_split="entries", n_iter_no_change=4, tol=0.2))
    assert rows == OverfittingRule(n_iter_no_change=4, tol=0.2)
    assert entries == NoImprovementRule(n_iter_no_change=4, tol=0.2)
    assert type(rows) is OverfittingRule and type(entries) is NoImprovementRule
    assert stopping_rule(TrainingConfig()) == OverfittingRule(10, 1e-3)


@pytest.mark.parametrize("rule", [OverfittingRule(3, 0.01), NoImprovementRule(3, 0.01)], ids=type)
def test_stopping_rules_are_frozen(rule):
    with pytest.raises(dataclasses.FrozenInstanceError):
        rule.tol = 1.0


@pytest.mark.parametrize(
    ("score", "standard_error", "good"),
    [
        (1.0, 0.0, True),  # at the best
        (0.995, 0.0, True),  # within tol
        (0.98, 0.0, False),  # beyond tol, no standard error
        (0.85, 0.1, True),  # within two standard errors
        (0.8, 0.1, True),  # exactly two standard errors below
        (0.75, 0.1, False),  # beyond two standard errors
        (0.995, 0.001, True),  # tol exceeds two standard errors
        (0.985, 0.001, False),
    ],
)
def test_overfitting_rule_tolerates_a_fall_within_tol_or_two_standard_errors(score, standard_error, good):
    rule = OverfittingRule(n_iter_no_change=3, tol=0.01)
    for improved in (False, True):  # whether the epoch set a new best does not matter
        assert rule.latest_is_good(score, standard_error, 1.0, improved=improved, usable=True) is good


def test_overfitting_rule_never_takes_an_unusable_epoch_as_good():
    rule = OverfittingRule(n_iter_no_change=3, tol=0.01)
    assert not rule.latest_is_good(1.0, 0.0, 1.0, improved=False, usable=False)
    assert not rule.latest_is_good(2.0, 0.5, 1.0, improved=False, usable=False)


@pytest.mark.parametrize(
    ("score", "standard_error"), [(1.0, 0.0), (0.9999, 0.0), (0.99, 0.5), (0.5, 0.0), (1.005, 0.0)]
)
def test_no_improvement_rule_counts_every_epoch_without_a_new_best(score, standard_error):
    rule = NoImprovementRule(n_iter_no_change=3, tol=0.01)
    # However small the fall and however large the standard error: only a new best is good.
    assert not rule.latest_is_good(score, standard_error, 1.0, improved=False, usable=True)
    assert rule.latest_is_good(1.5, 0.0, 1.5, improved=True, usable=True)


@pytest.mark.parametrize("stopped_early", [False, True])
@pytest.mark.parametrize("finite", [False, True])
def test_overfitting_rule_keeps_the_final_weights_when_the_last_epoch_is_good(stopped_early, finite):
    rule = OverfittingRule(n_iter_no_change=3, tol=0.01)
    assert rule.keep_final(True, stopped_early, finite) is True
    assert rule.keep_final(False, stopped_early, finite) is False


@pytest.mark.parametrize("latest_is_good", [False, True])
def test_no_improvement_rule_keeps_the_final_weights_of_a_finite_run_to_the_end(latest_is_good):
    rule = NoImprovementRule(n_iter_no_change=3, tol=0.01)
    assert rule.keep_final(latest_is_good, stopped_early=False, finite=True) is True
    assert rule.keep_final(latest_is_good, stopped_early=True, finite=True) is False
    assert rule.keep_final(latest_is_good, stopped_early=False, finite=False) is False
    assert rule.keep_final(latest_is_good, stopped_early=True, finite=False) is False


# -- a one-parameter "model" whose trajectory under Adam is known --------------------------


class _Problem(TrainingProblem):
    """A training problem around a per-row objective ``(x, observed, rows, generator) -> [B]``,
    with optional hooks."""

    def __init__(self, model, objective, *, parameters=None, backward=None, on_epoch_start=None):
        super().__init__(model)
        self._objective = objective
        self._parameters = parameters
        self._backward = backward
        self._on_epoch_start = on_epoch_start

    def parameters(self):
        return super().parameters() if self._parameters is None else list(self._parameters)

    def objective(self, x_filled, observed, rows, generator):
        return self._objective(x_filled, observed, rows, generator)

    def backward(self, per_row):
        if self._backward is None:
            super().backward(per_row)
        else:
            self._backward(per_row)

    def on_epoch_start(self, epoch):
        if self._on_epoch_start is not None:
            self._on_epoch_start(epoch)


class _HeldOutProblem(_Problem):
    """``_Problem`` that also scores held-out entries with ``held_out(x, observed, x_target,
    held, generator) -> [B]``."""

    def __init__(self, model, objective, held_out, *, groups=None, **hooks):
        super().__init__(model, objective, **hooks)
        self._held_out = held_out
        self._groups = groups

    def held_out_score(self, x_filled, observed, x_target, held, generator):
        return self._held_out(x_filled, observed, x_target, held, generator)

    def entry_groups(self, device):
        return None if self._groups is None else self._groups.to(device)



class Scalar(nn.Module):
    def __init__(self, value=0.0):
        super().__init__()
        self.theta = nn.Parameter(torch.tensor([value], dtype=DTYPE))


def _rows(n):
    x = torch.zeros(n, 2, dtype=DTYPE)
    return x, torch.ones(n, 2, dtype=torch.bool)


def test_early_stopping_restores_the_best_weights():
    """Training pushes theta up forever; validation prefers theta = 1: stop and roll back."""
    model = Scalar()
    seen = []  # theta at each validation pass (one per epoch)

    def objective(x, observed, rows, generator):
        if model.training:
            return model.theta.expand(len(x))  # Adam moves theta by +lr per step
        seen.append(model.theta.item())
        return -((model.theta - 1.0) ** 2).expand(len(x))

    config = TrainingConfig(
        max_epochs=100,
        batch_size=64,
        learning_rate=0.1,
        lr_schedule="constant",
        clip_grad_norm=None,
        validation_fraction=0.25,
        n_iter_no_change=3,
        tol=0.0,
    )
    result = train(_Problem(model, objective), *_rows(20), config, _generator())
    assert result.stopped_early
    assert len(seen) == result.n_epochs == len(result.validation_scores) == len(result.loss_curve)
    best = max(range(len(seen)), key=lambda e: result.validation_scores[e])
    assert result.best_epoch == best == 9  # theta = 0.1 * epochs, best at theta = 1
    assert result.n_epochs == result.best_epoch + 1 + config.n_iter_no_change
    assert model.theta.item() == seen[result.best_epoch]
    assert model.theta.item() != seen[-1]
    assert math.isclose(model.theta.item(), 1.0, abs_tol=1e-6)
    assert not model.training


def test_held_out_rows_are_scored_with_the_problems_validation_score():
    model = Scalar()
    trained, validated = [], []

    class Problem(_Problem):
        def validation_score(self, x_filled, observed, rows, generator):
            validated.append((model.training, rows.clone()))
            return -((model.theta - 1.0) ** 2).expand(len(x_filled))

    def objective(x, observed, rows, generator):
        trained.append(model.training)
        return model.theta.expand(len(x))

    config = TrainingConfig(max_epochs=2, batch_size=64, learning_rate=0.1, lr_schedule="constant",
                            clip_grad_norm=None, validation_fraction=0.25, n_iter_no_change=3, tol=0.0)
    result = train(Problem(model, objective), *_rows(20), config, _generator())
    _, val_rows = split_rows(20, 0.25, _generator())  # the split train drew first
    assert trained == [True, True]  # the objective only trains
    assert [training for training, _ in validated] == [False, False]
    assert all(torch.equal(rows, val_rows) for _, rows in validated)
    assert result.validation_scores == pytest.approx([-(0.1 - 1.0) ** 2, -(0.2 - 1.0) ** 2])


def test_a_problem_must_define_its_objective():
    with pytest.raises(NotImplementedError):
        TrainingProblem(Scalar()).objective(*_rows(2), torch.arange(2), _generator())


def _noisy_rows_objective(model, spread):
    """Training pushes theta up; each validation row scores -(theta - 1)^2 + its own offset.

    The offsets (alternately +spread and -spread) give the validation mean a standard error
    of about ``spread / sqrt(n_rows)`` without changing the mean.
    """

    def objective(x, observed, rows, generator):
        if model.training:
            return model.theta.expand(len(x))
        offsets = spread * (1.0 - 2.0 * (rows % 2).to(DTYPE))
        return -((model.theta - 1.0) ** 2) + offsets

    return objective


def _validation_config(**settings):
    return TrainingConfig(
        batch_size=64, learning_rate=0.1, lr_schedule="constant", clip_grad_norm=None,
        validation_fraction=0.25, n_iter_no_change=3, tol=0.0, **settings,
    )


def test_validation_standard_error_is_that_of_the_row_mean():
    model = Scalar()
    config = _validation_config(max_epochs=2)
    result = train(_Problem(model, _noisy_rows_objective(model, 2.0)), *_rows(40), config, _generator())
    _, val_rows = split_rows(40, 0.25, _generator())  # the split train drew first
    offsets = 2.0 * (1.0 - 2.0 * (val_rows % 2).to(DTYPE))
    expected = offsets.std().item() / math.sqrt(len(val_rows))
    assert len(result.validation_standard_errors) == 2
    for se in result.validation_standard_errors:
        assert math.isclose(se, expected, rel_tol=1e-9)


def test_a_fall_within_two_standard_errors_keeps_training_and_the_final_weights():
    """theta overshoots 1 (the validation optimum) by 0.5 at the end: the validation mean
    falls by 0.25, less than two standard errors, so this is not taken as overfitting."""
    model = Scalar()
    config = _validation_config(max_epochs=15)
    result = train(_Problem(model, _noisy_rows_objective(model, 5.0)), *_rows(40), config, _generator())
    assert not result.stopped_early and result.n_epochs == 15
    assert result.best_epoch == 14
    assert math.isclose(model.theta.item(), 1.5, rel_tol=1e-6)  # the final weights
    assert max(result.validation_scores) > result.validation_scores[-1] + 0.2


def test_a_fall_beyond_two_standard_errors_stops_and_restores_the_best():
    model = Scalar()
    config = _validation_config(max_epochs=100)
    result = train(_Problem(model, _noisy_rows_objective(model, 0.5)), *_rows(40), config, _generator())
    assert result.stopped_early and result.n_epochs < 100
    assert result.best_epoch == 9  # theta = 0.1 * epochs
    assert math.isclose(model.theta.item(), 1.0, abs_tol=1e-6)


def _entries_config(**settings):
    return TrainingConfig(
        batch_size=64, learning_rate=0.1, lr_schedule="constant", clip_grad_norm=None,
        validation_fraction=0.25, validation_split="entries", tol=0.015, **settings,
    )


def _held_out_score(model):
    """Training pushes theta up; every row's held-out score is -(theta - 1)^2."""

    def held_out(x, observed, x_target, held, generator):
        return -((model.theta - 1.0) ** 2).expand(len(x))

    return held_out


def test_entries_are_held_out_of_training_and_scored_against_their_values():
    x = torch.arange(1.0, 121.0, dtype=DTYPE).reshape(30, 4)
    observed = torch.rand(30, 4, generator=_generator(2)) < 0.8
    x_filled = torch.where(observed, x, 0.0)
    model, trained, scored = Scalar(), [], []

    def objective(xb, ob, rows, generator):
        trained.append((xb.clone(), ob.clone(), rows.clone()))
        return model.theta.expand(len(xb))

    def held_out(xb, ob, x_target, held, generator):
        scored.append((xb.clone(), ob.clone(), x_target.clone(), held.clone()))
        return torch.zeros(len(xb), dtype=DTYPE)

    config = _entries_config(max_epochs=1, n_iter_no_change=5)
    train(_HeldOutProblem(model, objective, held_out), x_filled, observed, config, _generator())
    held = split_entries(observed, 0.25, _generator())  # the split train drew first
    assert held.any()
    assert sorted(torch.cat([rows for _, _, rows in trained]).tolist()) == list(range(30))
    for xb, ob, rows in trained:  # every row trains, without its held-out entries
        assert torch.equal(ob, observed[rows] & ~held[rows])
        assert (xb[held[rows]] == 0).all()
    xb, ob, x_target, held_rows = (torch.cat(parts) for parts in zip(*scored, strict=True))
    assert torch.equal(held_rows, held[held.any(1)])  # scored: the rows with held-out entries
    assert torch.equal(x_target[held_rows], x[held])
    assert not (ob & held_rows).any()


def test_entries_split_holds_out_the_problems_entry_groups_together():
    observed = torch.ones(40, 5, dtype=torch.bool)
    groups = torch.tensor([0, 1, 1, 1, 2])  # columns 1-3: one categorical variable
    model, scored = Scalar(), []

    def held_out(xb, ob, x_target, held, generator):
        scored.append(held.clone())
        return torch.zeros(len(xb), dtype=DTYPE)

    problem = _HeldOutProblem(model, lambda x, o, r, g: model.theta.expand(len(x)), held_out, groups=groups)
    train(problem, torch.zeros(40, 5, dtype=DTYPE), observed, _entries_config(max_epochs=1, n_iter_no_change=5),
          _generator())
    expected = split_entries(observed, 0.25, _generator(), groups)  # the split train drew first
    held = torch.cat(scored)
    assert torch.equal(held, expected[expected.any(1)])
    assert (held[:, 1:4] == held[:, 1:2]).all() and held[:, 1].any()


def test_entries_rule_stops_after_epochs_without_a_new_best_and_restores_it():
    """Any epoch without a new best by more than tol counts, however small the fall."""
    model = Scalar()
    config = _entries_config(max_epochs=100, n_iter_no_change=3)
    problem = _HeldOutProblem(model, lambda x, o, r, g: model.theta.expand(len(x)), _held_out_score(model))
    result = train(problem, *_rows(40), config, _generator())
    assert result.stopped_early
    # theta = 0.1 * epochs: the last gain above tol is that of theta = 0.9 (epoch index 8).
    assert result.best_epoch == 8 and result.n_epochs == 8 + 1 + 3
    assert math.isclose(model.theta.item(), 0.9, abs_tol=1e-6)


def test_entries_rule_keeps_the_final_weights_when_training_runs_to_the_end():
    model = Scalar()
    config = _entries_config(max_epochs=12, n_iter_no_change=5)
    problem = _HeldOutProblem(model, lambda x, o, r, g: model.theta.expand(len(x)), _held_out_score(model))
    result = train(problem, *_rows(40), config, _generator())
    assert not result.stopped_early and result.best_epoch == 11
    assert max(result.validation_scores) > result.validation_scores[-1]
    assert math.isclose(model.theta.item(), 1.2, rel_tol=1e-6)


def test_entries_split_needs_a_held_out_score():
    model = Scalar()
    problem = _Problem(model, lambda x, o, r, g: model.theta.expand(len(x)))
    with pytest.raises(NotImplementedError, match="_Problem cannot score held-out entries"):
        train(problem, *_rows(40), _entries_config(max_epochs=1), _generator())


def test_without_validation_training_runs_all_epochs():
    model = Scalar()
    config = TrainingConfig(
        max_epochs=7,
        batch_size=5,
        learning_rate=0.1,
        lr_schedule="constant",
        validation_fraction=0.0,
        tol=0.0,
    )
    result = train(
        _Problem(model, lambda x, o, r, g: model.theta.expand(len(x))), *_rows(10), config, _generator()
    )
    assert result.n_epochs == 7 and not result.stopped_early
    assert math.isclose(model.theta.item(), 0.1 * 14, rel_tol=1e-6)  # 2 steps per epoch


def test_cosine_schedule_anneals_the_learning_rate_to_zero():
    model = Scalar()
    n_steps = 12
    config = TrainingConfig(
        max_epochs=n_steps,
        batch_size=64,
        learning_rate=0.1,
        lr_schedule="cosine",
        validation_fraction=0.0,
        tol=0.0,
    )
    train(_Problem(model, lambda x, o, r, g: model.theta.expand(len(x))), *_rows(10), config, _generator())
    expected = sum(0.1 * 0.5 * (1 + math.cos(math.pi * t / n_steps)) for t in range(n_steps))
    assert math.isclose(model.theta.item(), expected, rel_tol=1e-6)


def test_every_training_row_is_visited_once_per_epoch():
    model = Scalar()
    train_calls, val_calls = [], []

    def objective(x, observed, rows, generator):
        (train_calls if model.training else val_calls).append(rows.clone())
        return model.theta.expand(len(x))

    config = TrainingConfig(max_epochs=3, batch_size=4, validation_fraction=0.2, n_iter_no_change=5)
    train(_Problem(model, objective), *_rows(25), config, _generator())
    assert [len(r) for r in train_calls[:5]] == [4, 4, 4, 4, 4]  # 20 training rows, batches of 4
    validation = torch.cat(val_calls[:1])
    assert len(validation) == 5
    for epoch in range(3):
        rows = torch.cat(train_calls[5 * epoch : 5 * (epoch + 1)])
        assert sorted(rows.tolist()) == sorted(set(range(25)) - set(validation.tolist()))
    # Mini-batches are reshuffled between epochs.
    assert not torch.equal(torch.cat(train_calls[:5]), torch.cat(train_calls[5:10]))


def test_batch_size_is_capped_at_the_number_of_training_rows():
    model = Scalar()
    sizes = []

    def objective(x, observed, rows, generator):
        if model.training:
            sizes.append(len(x))
        return model.theta.expand(len(x))

    train(
        _Problem(model, objective),
        *_rows(10),
        TrainingConfig(max_epochs=2, batch_size=1000, validation_fraction=0.0),
        _generator(),
    )
    assert sizes == [10, 10]


def test_parameters_and_backward_select_what_is_trained():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Parameter(torch.zeros(1, dtype=DTYPE))
            self.b = nn.Parameter(torch.zeros(1, dtype=DTYPE))

    config = TrainingConfig(
        max_epochs=3, lr_schedule="constant", learning_rate=0.1, validation_fraction=0.0, tol=0.0
    )
    model = Two()
    objective = lambda x, o, r, g: (model.a + model.b).expand(len(x))  # noqa: E731
    train(_Problem(model, objective, parameters=[model.a]), *_rows(8), config, _generator())
    assert model.a.item() > 0.2 and model.b.item() == 0.0

    model = Two()
    calls = []

    def backward_fn(per_row):
        calls.append(per_row.shape)
        (-per_row.mean()).backward(inputs=[model.b])

    train(_Problem(model, objective, backward=backward_fn), *_rows(8), config, _generator())
    assert calls == [(8,)] * 3
    assert model.a.item() == 0.0 and model.b.item() > 0.2


def test_epoch_callbacks():
    model = Scalar()
    started, ended = [], []

    def on_end(info):
        ended.append(info)
        return info["epoch"] == 4  # ask to stop after the fourth epoch

    config = TrainingConfig(max_epochs=10, lr_schedule="constant", validation_fraction=0.0, tol=0.0)
    problem = _Problem(model, lambda x, o, r, g: model.theta.expand(len(x)), on_epoch_start=started.append)
    result = train(problem, *_rows(8), config, _generator(), on_epoch_end=on_end)
    assert started == [0, 1, 2, 3]
    assert [info["epoch"] for info in ended] == [1, 2, 3, 4]
    assert {"epoch", "loss", "validation_score", "validation_standard_error", "elapsed"} <= set(ended[0])
    assert result.n_epochs == 4
    assert ended[-1]["loss"] == result.loss_curve[-1]


# -- non-finite objectives -----------------------------------------------------------------


@pytest.mark.parametrize("validation_fraction", [0.0, 0.25])
def test_non_finite_objective_from_the_start_raises(validation_fraction):
    model = Scalar()
    calls = []

    def objective(x, observed, rows, generator):
        calls.append(model.training)
        return model.theta.expand(len(x)) * math.nan

    config = TrainingConfig(
        max_epochs=50, batch_size=2, validation_fraction=validation_fraction, max_non_finite_steps=3
    )
    with pytest.raises(NonFiniteLossError):
        train(_Problem(model, objective), *_rows(12), config, _generator())
    assert sum(calls) == 3  # training stops after max_non_finite_steps consecutive failures
    assert model.theta.item() == 0.0


def test_occasional_non_finite_steps_are_skipped_and_counted():
    model = Scalar()
    n_calls = [0]

    def objective(x, observed, rows, generator):
        n_calls[0] += 1
        bad = n_calls[0] % 4 == 0  # every fourth training step
        return model.theta.expand(len(x)) + (math.inf if bad else 0.0)

    config = TrainingConfig(
        max_epochs=6,
        batch_size=5,
        learning_rate=0.1,
        lr_schedule="constant",
        clip_grad_norm=None,
        validation_fraction=0.0,
        tol=0.0,
        max_non_finite_steps=2,
    )
    result = train(_Problem(model, objective), *_rows(10), config, _generator())
    assert n_calls[0] == 12
    assert result.n_non_finite_steps == 3
    assert result.n_epochs == 6
    assert all(math.isfinite(v) for v in result.loss_curve)
    # Skipped steps leave theta alone: 9 Adam steps of size lr.
    assert math.isclose(model.theta.item(), 0.9, rel_tol=1e-6)


def test_a_run_of_non_finite_steps_stops_and_restores_the_last_good_weights():
    model = Scalar()
    n_calls = [0]

    def objective(x, observed, rows, generator):
        n_calls[0] += 1
        return model.theta.expand(len(x)) + (math.nan if n_calls[0] > 4 else 0.0)

    config = TrainingConfig(
        max_epochs=50,
        batch_size=5,
        learning_rate=0.1,
        lr_schedule="constant",
        validation_fraction=0.0,
        tol=0.0,
        max_non_finite_steps=3,
    )
    result = train(_Problem(model, objective), *_rows(10), config, _generator())
    assert result.n_non_finite_steps == 3
    assert result.n_epochs < 50
    assert math.isclose(model.theta.item(), 0.4, rel_tol=1e-6)


def test_weights_broken_by_an_epochs_last_step_are_never_the_best_state():
    # The epoch's mean loss is finite, but its last optimiser step leaves NaN weights:
    # those weights must not be restored as "best".
    model = Scalar()
    n_calls = [0]

    def objective(x, observed, rows, generator):
        n_calls[0] += 1
        if n_calls[0] == 4:  # the last step of epoch 2 (two steps per epoch)
            model.theta.register_hook(lambda grad: grad * math.nan)
        return model.theta.expand(len(x))

    config = TrainingConfig(
        max_epochs=50, batch_size=5, learning_rate=0.1, lr_schedule="constant",
        validation_fraction=0.0, tol=0.0, max_non_finite_steps=3, clip_grad_norm=None,
    )
    result = train(_Problem(model, objective), *_rows(10), config, _generator())
    assert math.isfinite(model.theta.item())
    assert result.best_epoch == 0
    assert math.isclose(model.theta.item(), 0.2, rel_tol=1e-6)


# -- a tiny VAE --------------------------------------------------------------------------


def _tiny_data(n_rows=96):
    g = _generator(10)
    z = torch.randn(n_rows, 1, generator=g)
    x = torch.cat([z, -z, 0.5 * z], 1) + 0.1 * torch.randn(n_rows, 3, generator=g) + 2.0
    observed = torch.rand(n_rows, 3, generator=g) < 0.7
    observed[:, 0] = True
    return torch.where(observed, x, torch.zeros_like(x)), observed


def _fit_tiny_vae(seed, max_epochs=15, n_components=1):
    x_filled, observed = _tiny_data()
    model = MissingDataVAE(
        3, 1, n_components=n_components, width=16, n_blocks=1, generator=_generator(0)
    )

    def objective(x, o, rows, generator):
        return finite_mixture_objective(
            model,
            x,
            o,
            objective="iwelbo",
            sampling="ancestral",
            n_particles=3,
            generator=generator,
        )

    config = TrainingConfig(
        max_epochs=max_epochs, batch_size=32, learning_rate=1e-2, validation_fraction=0.0, tol=0.0
    )
    result = train(_Problem(model, objective), x_filled, observed, config, _generator(seed))
    return model, result


def test_training_a_tiny_vae_decreases_the_loss():
    _, result = _fit_tiny_vae(seed=1)
    assert result.n_epochs == 15
    assert result.loss_curve[-1] < result.loss_curve[0] - 1.0
    assert result.fit_time > 0


def test_training_is_reproducible_and_leaves_global_rng_alone():
    state = torch.random.get_rng_state()
    model_a, result_a = _fit_tiny_vae(seed=3, max_epochs=3, n_components=2)
    model_b, result_b = _fit_tiny_vae(seed=3, max_epochs=3, n_components=2)
    model_c, result_c = _fit_tiny_vae(seed=4, max_epochs=3, n_components=2)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert result_a.loss_curve == result_b.loss_curve
    for (key, a), (_, b) in zip(
        model_a.state_dict().items(), model_b.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), key
    assert result_a.loss_curve != result_c.loss_curve
