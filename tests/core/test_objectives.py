"""Closed-form and two-code-path tests of the bounds in ``skmissvae.core.objectives``."""

from __future__ import annotations

import math

import pytest
import torch

from skmissvae.core import objectives


def _log_w(*shape, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return 3.0 * torch.randn(*shape, generator=generator, dtype=torch.float64) - 5.0


def test_elbo_is_mean_over_particles():
    log_w = _log_w(7, 4)
    out = objectives.elbo(log_w)
    assert out.shape == (4,)
    torch.testing.assert_close(out, log_w.sum(0) / 7)


def test_iwelbo_matches_log_mean_exp():
    log_w = _log_w(6, 3)
    expected = torch.log(torch.exp(log_w).mean(0))
    out = objectives.iwelbo(log_w)
    assert out.shape == (3,)
    torch.testing.assert_close(out, expected)


def test_iwelbo_with_one_particle_equals_elbo():
    log_w = _log_w(1, 10)
    torch.testing.assert_close(objectives.iwelbo(log_w), objectives.elbo(log_w))
    torch.testing.assert_close(objectives.iwelbo(log_w), log_w[0])


@pytest.mark.parametrize("n_particles", [1, 4, 50])
def test_iwelbo_of_constant_log_weights_is_the_constant(n_particles):
    constant = torch.tensor([-3.25, 0.0, 17.5], dtype=torch.float64)
    log_w = constant.expand(n_particles, 3)
    torch.testing.assert_close(objectives.iwelbo(log_w), constant)
    torch.testing.assert_close(objectives.elbo(log_w), constant)


def test_iwelbo_is_stable_for_very_negative_log_weights():
    log_w = torch.tensor([[-1000.0], [-1001.0]], dtype=torch.float64)
    expected = -1000.0 + math.log((1 + math.exp(-1.0)) / 2)
    torch.testing.assert_close(
        objectives.iwelbo(log_w), torch.tensor([expected], dtype=torch.float64)
    )


def test_elbo_below_iwelbo_per_row():
    # Jensen: mean_i log w_i <= log mean_i w_i, with equality only for constant weights.
    log_w = _log_w(5, 200, seed=3)
    gap = objectives.iwelbo(log_w) - objectives.elbo(log_w)
    assert (gap > 0).all()


def test_stratified_iwelbo_with_one_component_equals_iwelbo():
    log_w = _log_w(5, 1, 4)  # [I, K=1, B]
    log_pi = torch.zeros(4, 1, dtype=torch.float64)
    torch.testing.assert_close(
        objectives.stratified_iwelbo(log_w, log_pi), objectives.iwelbo(log_w[:, 0])
    )
    torch.testing.assert_close(
        objectives.stratified_elbo(log_w, log_pi), objectives.elbo(log_w[:, 0])
    )


def test_stratified_bounds_with_equal_weights_pool_all_samples():
    n_per, n_components, batch = 3, 4, 5
    log_w = _log_w(n_per, n_components, batch, seed=1)
    log_pi = torch.full((batch, n_components), -math.log(n_components), dtype=torch.float64)
    pooled = log_w.flatten(0, 1)  # [I*K, B]
    torch.testing.assert_close(
        objectives.stratified_iwelbo(log_w, log_pi), objectives.iwelbo(pooled)
    )
    torch.testing.assert_close(objectives.stratified_elbo(log_w, log_pi), objectives.elbo(pooled))


def test_stratified_bounds_match_their_formulas():
    n_per, n_components, batch = 2, 3, 4
    log_w = _log_w(n_per, n_components, batch, seed=2)
    logits = torch.randn(
        batch, n_components, generator=torch.Generator().manual_seed(5), dtype=torch.float64
    )
    log_pi = torch.log_softmax(logits, -1)
    pi = log_pi.exp()
    expected_elbo = torch.zeros(batch, dtype=torch.float64)
    expected_iwelbo = torch.zeros(batch, dtype=torch.float64)
    for b in range(batch):
        total = 0.0
        for k in range(n_components):
            expected_elbo[b] += pi[b, k] * log_w[:, k, b].mean()
            total += pi[b, k] * torch.exp(log_w[:, k, b]).mean()
        expected_iwelbo[b] = torch.log(total)
    torch.testing.assert_close(objectives.stratified_elbo(log_w, log_pi), expected_elbo)
    torch.testing.assert_close(objectives.stratified_iwelbo(log_w, log_pi), expected_iwelbo)
    # Jensen with the weights pi_k / I.
    assert (
        objectives.stratified_elbo(log_w, log_pi) < objectives.stratified_iwelbo(log_w, log_pi)
    ).all()


def test_stratified_bounds_of_constant_log_weights_is_the_constant():
    constant = torch.tensor([1.5, -2.0], dtype=torch.float64)
    log_w = constant.expand(4, 3, 2)
    log_pi = torch.log_softmax(
        torch.tensor([[0.0, 1.0, -2.0], [3.0, 0.5, 0.0]], dtype=torch.float64), -1
    )
    torch.testing.assert_close(objectives.stratified_iwelbo(log_w, log_pi), constant)
    torch.testing.assert_close(objectives.stratified_elbo(log_w, log_pi), constant)


@pytest.mark.parametrize("bound", [objectives.stratified_elbo, objectives.stratified_iwelbo])
def test_stratified_bounds_pass_gradients_to_the_mixture_weights(bound):
    log_w = _log_w(2, 3, 4, seed=4)
    logits = torch.zeros(4, 3, dtype=torch.float64, requires_grad=True)
    bound(log_w, torch.log_softmax(logits, -1)).sum().backward()
    assert logits.grad is not None
    assert logits.grad.abs().sum() > 0
    # Mass moves towards the component with the largest log-weights.
    per_component = (
        log_w.mean(0) if bound is objectives.stratified_elbo else torch.logsumexp(log_w, 0)
    )
    best = per_component.argmax(0)  # [B]
    assert (logits.grad.argmax(-1) == best).all()


# -- learning signals of the component choices ---------------------------------------------


def test_elbo_choice_signal_is_the_log_weight_against_the_others_mean():
    log_w = _log_w(4, 3, seed=5)
    signal = objectives.choice_signal(log_w, "elbo")
    for s in range(4):
        others = torch.cat([log_w[:s], log_w[s + 1:]]).mean(0)
        torch.testing.assert_close(signal[s], (log_w[s] - others) / 4)


def test_iwelbo_choice_signal_is_vimco_leave_one_out():
    # Mnih & Rezende (2016): the bound minus the bound with log w_s replaced by the mean
    # of the other particles' log-weights; written out with a loop.
    log_w = _log_w(5, 3, seed=6)
    signal = objectives.choice_signal(log_w, "iwelbo")
    for s in range(5):
        replaced = log_w.clone()
        replaced[s] = torch.cat([log_w[:s], log_w[s + 1:]]).mean(0)
        expected = objectives.iwelbo(log_w) - objectives.iwelbo(replaced)
        torch.testing.assert_close(signal[s], expected)


@pytest.mark.parametrize("objective", ["elbo", "iwelbo"])
def test_choice_signal_is_zero_for_equal_log_weights_and_the_bound_alone_for_one_particle(objective):
    equal = torch.full((4, 2), -3.0, dtype=torch.float64)
    torch.testing.assert_close(objectives.choice_signal(equal, objective), torch.zeros(4, 2, dtype=torch.float64))
    single = _log_w(1, 3, seed=7)
    torch.testing.assert_close(objectives.choice_signal(single, objective), single)


def test_choice_signal_rewards_the_better_particle():
    log_w = torch.tensor([[0.0], [-2.0], [-2.0]], dtype=torch.float64)
    for objective in ("elbo", "iwelbo"):
        signal = objectives.choice_signal(log_w, objective)
        assert signal[0] > 0 > signal[1]
