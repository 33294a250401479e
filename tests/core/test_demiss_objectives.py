"""DeMissVAE's two objectives: values, two-code-path identities, gradient routing, STL."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from skmissvae.core.likelihoods import SCALE_FLOOR
from skmissvae.core.model import (
    MissingDataVAE,
    demissvae_backward,
    demissvae_objectives,
    finite_mixture_objective,
)

DTYPE = torch.float64


def _generator(seed=0):
    return torch.Generator().manual_seed(seed)


def _model(n_features=5, latent_dim=2, encoder_uses_mask=False, seed=0):
    model = MissingDataVAE(
        n_features, latent_dim, width=16, n_blocks=1, encoder_uses_mask=encoder_uses_mask,
        generator=_generator(seed),
    ).double()
    return model.eval()


def _imputed(problem, n_imputations=4, seed=1):
    """Random imputations of the linear-Gaussian rows: ``[8, K, D]``."""
    noise = torch.randn(8, n_imputations, problem.n_features, generator=_generator(seed), dtype=DTYPE)
    return torch.where(problem.observed.unsqueeze(1), problem.x_filled.unsqueeze(1), noise)


@pytest.mark.parametrize("encoder_uses_mask", [False, True])
def test_objectives_are_per_row_and_finite(linear_gaussian, encoder_uses_mask):
    problem = linear_gaussian
    model = _model(encoder_uses_mask=encoder_uses_mask)
    x = _imputed(problem)
    x_before = x.clone()
    decoder_term, encoder_term = demissvae_objectives(model, x, problem.observed, _generator())
    assert decoder_term.shape == encoder_term.shape == (8,)
    assert torch.isfinite(decoder_term).all() and torch.isfinite(encoder_term).all()
    assert torch.equal(x, x_before)
    # Reproducible from the generator.
    again = demissvae_objectives(model, x, problem.observed, _generator())
    assert torch.equal(again[0], decoder_term) and torch.equal(again[1], encoder_term)


def test_single_gaussian_encoder_is_required(linear_gaussian):
    model = MissingDataVAE(5, 2, n_components=2, width=8, n_blocks=1).double()
    with pytest.raises(ValueError, match="n_components=1"):
        demissvae_objectives(model, _imputed(linear_gaussian), linear_gaussian.observed)


def test_complete_rows_give_equal_objectives():
    # Nothing missing: all K copies are the row itself, q_mix = q_k, observed = all dims.
    x = torch.randn(6, 5, generator=_generator(2), dtype=DTYPE)
    observed = torch.ones(6, 5, dtype=torch.bool)
    copies = x.unsqueeze(1).expand(6, 3, 5)
    decoder_term, encoder_term = demissvae_objectives(_model(), copies, observed, _generator())
    torch.testing.assert_close(decoder_term, encoder_term, rtol=0, atol=1e-12)


@pytest.mark.parametrize("encoder_uses_mask", [False, True])
def test_one_imputation_of_zeros_is_the_mvae_elbo(linear_gaussian, encoder_uses_mask):
    # K=1 with the zero-filled row as the "imputation": the decoder objective is the
    # single-sample ELBO of MVAE computed by the finite-mixture code path (same draws).
    problem = linear_gaussian
    model = _model(encoder_uses_mask=encoder_uses_mask)
    decoder_term, _ = demissvae_objectives(
        model, problem.x_filled.unsqueeze(1), problem.observed, _generator(3)
    )
    mvae = finite_mixture_objective(
        model, problem.x_filled, problem.observed, objective="elbo", n_particles=1, generator=_generator(3)
    )
    torch.testing.assert_close(decoder_term, mvae, rtol=1e-12, atol=1e-12)


def test_decoder_objective_is_a_lower_bound_on_log_p_x_observed(linear_gaussian):
    # Any imputations define a valid mixture q_mix, so E[L_theta] <= log p(x_o).
    problem = linear_gaussian
    model = problem.model()
    n_rep = 400
    x = _imputed(problem, n_imputations=5).repeat(n_rep, 1, 1)
    observed = problem.observed.repeat(n_rep, 1)
    decoder_term, _ = demissvae_objectives(model, x, observed, _generator(4))
    values = decoder_term.reshape(n_rep, 8)
    mean, se = values.mean(0), values.std(0) / math.sqrt(n_rep)
    assert (mean < problem.exact_log_marginal() + 3 * se).all()


# --------------------------------------------------------------------------------------
# gradient routing: each objective reaches only its own network
# --------------------------------------------------------------------------------------
def _grads(objective, params):
    grads = torch.autograd.grad(-objective.mean(), params, retain_graph=True, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]


@pytest.mark.parametrize("encoder_uses_mask", [False, True])
def test_each_objective_reaches_only_its_own_network(linear_gaussian, encoder_uses_mask):
    problem = linear_gaussian
    model = _model(encoder_uses_mask=encoder_uses_mask).train()
    decoder_params = list(model.decoder.parameters())
    encoder_params = list(model.encoder.parameters())
    assert len(decoder_params) + len(encoder_params) == len(list(model.parameters()))
    decoder_term, encoder_term = demissvae_objectives(model, _imputed(problem), problem.observed, _generator(5))

    expected_decoder = _grads(decoder_term, decoder_params)
    expected_encoder = _grads(encoder_term, encoder_params)
    # The routing matters: each objective does depend on the other network.
    leaks_into_encoder = _grads(decoder_term, encoder_params)
    leaks_into_decoder = _grads(encoder_term, decoder_params)
    assert any(g.abs().max() > 0 for g in leaks_into_encoder)
    assert any(g.abs().max() > 0 for g in leaks_into_decoder)

    model.zero_grad(set_to_none=True)
    demissvae_backward(decoder_term, encoder_term, decoder_params, encoder_params)
    for (name, param) in model.decoder.named_parameters():
        expected = expected_decoder[[p is param for p in decoder_params].index(True)]
        assert param.grad is not None, name
        torch.testing.assert_close(param.grad, expected, rtol=1e-12, atol=1e-14, msg=f"decoder.{name}")
    for (name, param) in model.encoder.named_parameters():
        expected = expected_encoder[[p is param for p in encoder_params].index(True)]
        assert param.grad is not None, name
        torch.testing.assert_close(param.grad, expected, rtol=1e-12, atol=1e-14, msg=f"encoder.{name}")
    assert any(p.grad.abs().max() > 0 for p in decoder_params)
    assert any(p.grad.abs().max() > 0 for p in encoder_params)


# --------------------------------------------------------------------------------------
# STL: with the exact complete-data posterior, the encoder gradient vanishes per sample
# --------------------------------------------------------------------------------------
class _LinearGaussianHead(nn.Module):
    """``[x @ weight^T + bias, raw_scale]``: a linear loc and a constant raw scale."""

    def __init__(self, weight, bias, raw_scale):
        super().__init__()
        self.weight, self.bias = nn.Parameter(weight.clone()), nn.Parameter(bias.clone())
        self.raw_scale = nn.Parameter(raw_scale.clone())

    def forward(self, x, generator=None):
        loc = x @ self.weight.T + self.bias  # [..., n]
        return torch.cat([loc, self.raw_scale.expand_as(loc)], -1)


def _inverse_softplus(y):
    return y + torch.log(-torch.expm1(-y))


def test_encoder_gradient_is_zero_at_the_exact_posterior():
    # 1-D latent, linear-Gaussian decoder x | z ~ N(w z + b, s^2 I): the complete-data
    # posterior N(c w.(x - b) / s^2, c), c = 1 / (1 + |w|^2 / s^2), is a diagonal Gaussian,
    # so an encoder can be exact. STL then gives a zero encoder gradient for every draw
    # (the score-function term, zero only in expectation, is dropped).
    generator = _generator(6)
    n_features, sigma = 4, 0.7
    w = torch.randn(n_features, 1, generator=generator, dtype=DTYPE)
    b = torch.randn(n_features, generator=generator, dtype=DTYPE)
    c = 1.0 / (1.0 + (w**2).sum() / sigma**2)
    model = MissingDataVAE(n_features, 1, width=4, n_blocks=0, encoder_uses_mask=False).double()
    sigma_raw = _inverse_softplus(torch.full((n_features,), sigma - SCALE_FLOOR, dtype=DTYPE))
    model.decoder = _LinearGaussianHead(w, b, sigma_raw)
    gain = c * w.T / sigma**2  # [1, D]
    scale_raw = _inverse_softplus((c.sqrt() - SCALE_FLOOR).reshape(1))
    model.encoder = _LinearGaussianHead(gain, -(gain @ b), scale_raw)

    x = torch.randn(10, 3, n_features, generator=generator, dtype=DTYPE)
    observed = torch.rand(10, n_features, generator=generator) < 0.5
    x = torch.where(observed.unsqueeze(1), x[:, :1], x)  # copies share the observed entries
    _, encoder_term = demissvae_objectives(model, x, observed, _generator(7))
    grads = torch.autograd.grad(encoder_term.sum(), list(model.encoder.parameters()))
    for g in grads:
        assert g.abs().max() < 1e-10
    # Without STL (q attached) the same draws give a non-zero gradient: the test has teeth.
    q = model.encode(x, observed)
    z = q.rsample((), _generator(7))
    h = model.decode(z)
    naive = model.likelihood.log_prob_elementwise(x, h).sum(-1) - 0.5 * z.pow(2).sum(-1) - q.log_prob(z)
    naive_grads = torch.autograd.grad(naive.sum(), list(model.encoder.parameters()))
    assert max(g.abs().max() for g in naive_grads) > 1e-3
