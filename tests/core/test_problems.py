"""Tests of the training problems of the paper's methods (``skmissvae.core.problems``)."""

from __future__ import annotations

import copy
import math

import pytest
import torch

import skmissvae.core.problems as problems
from skmissvae.core.model import (
    MissingDataVAE,
    demissvae_backward,
    demissvae_objectives,
    finite_mixture_objective,
)
from skmissvae.core.problems import DeMissVAEProblem, FiniteMixtureProblem, ImputationSampler
from skmissvae.core.samplers import importance_conditional_mean
from skmissvae.core.training import NonFiniteLossError, TrainingConfig, train

N_ROWS, N_FEATURES, LATENT_DIM, N_IMPUTATIONS = 24, 3, 2, 4


def _generator(seed=0):
    return torch.Generator().manual_seed(seed)


def _data(n_rows=N_ROWS):
    """Correlated float32 rows with about a third of the entries missing (never a whole row)."""
    g = _generator(10)
    z = torch.randn(n_rows, 1, generator=g)
    x = torch.cat([z, -z, 0.5 * z], 1) + 0.1 * torch.randn(n_rows, N_FEATURES, generator=g) + 2.0
    observed = torch.rand(n_rows, N_FEATURES, generator=g) < 0.65
    observed[:, 0] |= ~observed.any(1)
    return torch.where(observed, x, torch.zeros_like(x)), observed


def _model(n_components=1):
    return MissingDataVAE(N_FEATURES, LATENT_DIM, n_components, width=8, n_blocks=1, generator=_generator(0))


def _grads(params):
    return [p.grad.clone() if p.grad is not None else None for p in params]


def _states_equal(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


# -- FiniteMixtureProblem ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("objective", "sampling", "gradient_estimator", "n_components", "flags"),
    [
        ("iwelbo", "ancestral", "stl", 2, {"dreg": False, "stl": True}),
        ("iwelbo", "stratified", "stl", 2, {"dreg": False, "stl": True}),
        ("elbo", "stratified", "total", 2, {"dreg": False, "stl": False}),
        ("iwelbo", "ancestral", "dreg", 1, {"dreg": True, "stl": True}),
        ("elbo", "ancestral", "stl", 1, {"dreg": False, "stl": True}),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_finite_mixture_problem_is_the_finite_mixture_objective(
    objective, sampling, gradient_estimator, n_components, flags
):
    x_filled, observed = _data()
    model = _model(n_components)
    direct_model = copy.deepcopy(model)
    problem = FiniteMixtureProblem(
        model, objective=objective, sampling=sampling, n_particles=4, gradient_estimator=gradient_estimator
    )
    rows = torch.arange(N_ROWS)
    per_row = problem.objective(x_filled, observed, rows, _generator(5))
    expected = finite_mixture_objective(
        direct_model, x_filled, observed, objective=objective, sampling=sampling, n_particles=4,
        generator=_generator(5), **flags,
    )
    assert per_row.shape == (N_ROWS,)
    assert torch.equal(per_row, expected)
    # The default backward is that of -mean(objective), with the estimator's gradients.
    problem.backward(per_row)
    (-expected.mean()).backward()
    for got, want in zip(_grads(model.parameters()), _grads(direct_model.parameters()), strict=True):
        assert torch.equal(got, want)


def test_finite_mixture_problem_updates_only_its_parameters():
    x_filled, observed = _data()
    model = _model(2)
    assert FiniteMixtureProblem(model, objective="iwelbo", sampling="ancestral", n_particles=2).parameters() == list(
        model.parameters()
    )
    encoder = list(model.encoder.parameters())
    problem = FiniteMixtureProblem(
        model, objective="iwelbo", sampling="stratified", n_particles=2, parameters=encoder
    )
    assert problem.parameters() == encoder
    decoder_before = copy.deepcopy(model.decoder)
    encoder_before = copy.deepcopy(model.encoder)
    config = TrainingConfig(max_epochs=3, batch_size=8, learning_rate=1e-2, validation_fraction=0.0)
    train(problem, x_filled, observed, config, _generator(1))
    assert _states_equal(model.decoder, decoder_before)  # frozen: bit for bit
    assert not _states_equal(model.encoder, encoder_before)


def test_finite_mixture_held_out_score_is_minus_the_squared_error_of_the_held_out_entries():
    x_filled, observed = _data()
    model = _model(2).eval()
    problem = FiniteMixtureProblem(model, objective="iwelbo", sampling="ancestral", n_particles=5)
    x_target = x_filled + 1.0
    held = torch.zeros_like(observed)
    held[::2, 1] = True  # held-out entries of even rows; odd rows hold nothing out
    with torch.no_grad():
        score = problem.held_out_score(x_filled, observed & ~held, x_target, held, _generator(3))
        q = model.encode(x_filled, observed & ~held)
        imputed = importance_conditional_mean(model, x_filled, observed & ~held, q, 5, _generator(3))
    assert score.shape == (N_ROWS,)
    assert torch.equal(score, -(((imputed - x_target) ** 2) * held).sum(-1))
    assert (score[::2] < 0).all() and (score[1::2] == 0).all()
    assert problem.entry_groups(torch.device("cpu")) is None  # Gaussian columns stand alone


def test_finite_mixture_problem_trains_with_held_out_entries():
    x_filled, observed = _data(48)
    model = _model(1)
    problem = FiniteMixtureProblem(model, objective="iwelbo", sampling="ancestral", n_particles=3)
    config = TrainingConfig(max_epochs=2, batch_size=16, learning_rate=1e-2, validation_fraction=0.2,
                            validation_split="entries")
    result = train(problem, x_filled, observed, config, _generator(2))
    assert result.n_epochs == 2
    assert all(math.isfinite(v) and v <= 0 for v in result.validation_scores)


# -- DeMissVAEProblem ----------------------------------------------------------------------


def _demiss_problem(sampler=None, model=None):
    x_filled, observed = _data()
    model = _model(1) if model is None else model
    problem = DeMissVAEProblem(
        model, x_filled, observed, n_imputations=N_IMPUTATIONS,
        sampler=ImputationSampler() if sampler is None else sampler, generator=_generator(7),
    )
    return problem, x_filled, observed


def test_demissvae_store_holds_the_data_and_draws_from_observed_values():
    problem, x_filled, observed = _demiss_problem()
    store = problem.store
    assert store.shape == (N_ROWS, N_IMPUTATIONS, N_FEATURES) and store.dtype == torch.float32
    observed_k = observed.unsqueeze(1).expand_as(store)
    x_k = x_filled.unsqueeze(1).expand_as(store)
    assert torch.equal(store[observed_k], x_k[observed_k])  # bit for bit
    for d in range(N_FEATURES):  # missing entries start as observed values of their column
        pool = set(x_filled[observed[:, d], d].tolist())
        assert set(store[:, :, d][~observed[:, d]].flatten().tolist()) <= pool
    assert len(torch.unique(store[~observed_k])) > 1


@pytest.mark.parametrize("sampler", [ImputationSampler(), ImputationSampler("pseudo_gibbs")],
                         ids=["lair", "pseudo_gibbs"])
def test_demissvae_store_is_refreshed_from_the_second_epoch_on_at_missing_entries_only(sampler):
    problem, x_filled, observed = _demiss_problem(sampler)
    rows = torch.arange(0, N_ROWS, 2)
    initial = problem.store.clone()

    problem.on_epoch_start(0)
    problem.objective(x_filled[rows], observed[rows], rows, _generator(1))
    assert torch.equal(problem.store, initial)  # epoch 0 trains on the initial imputations

    problem.on_epoch_start(1)
    problem.objective(x_filled[rows], observed[rows], rows, _generator(1))
    changed = problem.store != initial
    observed_k = observed.unsqueeze(1).expand_as(initial)
    assert changed[rows].any()
    assert not (changed & observed_k).any()  # observed entries stay bit for bit
    others = torch.ones(N_ROWS, dtype=torch.bool)
    others[rows] = False
    assert not changed[others].any()  # only the batch's rows are refreshed


def test_demissvae_training_refreshes_only_missing_entries():
    problem, x_filled, observed = _demiss_problem()
    initial = problem.store.clone()
    config = TrainingConfig(max_epochs=2, batch_size=8, learning_rate=1e-2, validation_fraction=0.25)
    result = train(problem, x_filled, observed, config, _generator(2))
    assert result.n_epochs == 2 and all(math.isfinite(v) for v in result.loss_curve)
    changed = problem.store != initial
    assert changed.any()
    assert not (changed & observed.unsqueeze(1).expand_as(changed)).any()


def test_demissvae_backward_routes_each_objective_to_its_own_network():
    problem, x_filled, observed = _demiss_problem()
    model = problem.model
    direct_model = copy.deepcopy(model)
    rows = torch.arange(N_ROWS)
    imputations = problem.store[rows].clone()

    problem.on_epoch_start(0)
    per_row = problem.objective(x_filled, observed, rows, _generator(4))
    problem.backward(per_row)

    decoder_term, encoder_term = demissvae_objectives(direct_model, imputations, observed, _generator(4))
    assert torch.equal(per_row, decoder_term)  # the loop logs the decoder objective
    decoder, encoder = list(direct_model.decoder.parameters()), list(direct_model.encoder.parameters())
    # Each objective reaches the other network too, so the routing matters.
    assert any(g.abs().sum() > 0 for g in torch.autograd.grad(-encoder_term.mean(), decoder, retain_graph=True))
    assert any(g.abs().sum() > 0 for g in torch.autograd.grad(-decoder_term.mean(), encoder, retain_graph=True))
    decoder_only = torch.autograd.grad(-decoder_term.mean(), decoder, retain_graph=True)
    encoder_only = torch.autograd.grad(-encoder_term.mean(), encoder, retain_graph=True)
    demissvae_backward(decoder_term, encoder_term, decoder, encoder)

    for got, want, alone in zip(_grads(model.decoder.parameters()), _grads(decoder), decoder_only, strict=True):
        assert torch.equal(got, want)
        torch.testing.assert_close(got, alone)
    for got, want, alone in zip(_grads(model.encoder.parameters()), _grads(encoder), encoder_only, strict=True):
        assert torch.equal(got, want)
        torch.testing.assert_close(got, alone)


def _break_encoder_terms(monkeypatch, rows_to_break, value):
    def broken(model, x_imputed, observed, generator=None):
        decoder_term, encoder_term = demissvae_objectives(model, x_imputed, observed, generator)
        encoder_term = encoder_term.clone()
        encoder_term[rows_to_break] = value
        return decoder_term, encoder_term

    monkeypatch.setattr(problems, "demissvae_objectives", broken)


@pytest.mark.parametrize("value", [math.nan, -math.inf, math.inf])
def test_demissvae_row_with_a_non_finite_encoder_term_makes_the_objective_non_finite(monkeypatch, value):
    problem, x_filled, observed = _demiss_problem()
    rows = torch.arange(N_ROWS)
    decoder_term, _ = demissvae_objectives(copy.deepcopy(problem.model), problem.store.clone(), observed,
                                           _generator(4))
    _break_encoder_terms(monkeypatch, [1, 5], value)
    per_row = problem.objective(x_filled, observed, rows, _generator(4))
    finite = torch.isfinite(per_row)
    assert not finite[[1, 5]].any()
    assert finite.sum() == N_ROWS - 2
    assert torch.equal(per_row[finite], decoder_term[finite])
    assert not torch.isfinite(per_row.mean())  # so the loop skips the step


def test_demissvae_training_with_broken_encoder_terms_never_steps(monkeypatch):
    problem, x_filled, observed = _demiss_problem()
    before = copy.deepcopy(problem.model)
    _break_encoder_terms(monkeypatch, [0], math.nan)
    config = TrainingConfig(max_epochs=5, batch_size=N_ROWS, validation_fraction=0.0, max_non_finite_steps=2)
    with pytest.raises(NonFiniteLossError):
        train(problem, x_filled, observed, config, _generator(2))
    assert _states_equal(problem.model, before)
