"""Tests of the variational families: densities, samplers and implicit reparameterisation."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal

from skmissvae.core.families import DiagNormal, NormalMixture, normal_log_density

DTYPE = torch.float64


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _mixture_params(batch=2, n_components=3, dim=3, seed=0, requires_grad=False):
    g = _generator(seed)
    logits = torch.randn(batch, n_components, generator=g, dtype=DTYPE)
    loc = 1.5 * torch.randn(batch, n_components, dim, generator=g, dtype=DTYPE)
    scale = 0.3 + torch.rand(batch, n_components, dim, generator=g, dtype=DTYPE)
    return [p.requires_grad_(requires_grad) for p in (logits, loc, scale)]


def _torch_mixture(logits, loc, scale) -> MixtureSameFamily:
    return MixtureSameFamily(Categorical(logits=logits), Independent(Normal(loc, scale), 1))


# -- densities --------------------------------------------------------------------------


def test_normal_log_density_matches_torch():
    g = _generator(1)
    x, loc = (
        torch.randn(4, 3, generator=g, dtype=DTYPE),
        torch.randn(4, 3, generator=g, dtype=DTYPE),
    )
    scale = 0.1 + torch.rand(4, 3, generator=g, dtype=DTYPE)
    torch.testing.assert_close(normal_log_density(x, loc, scale), Normal(loc, scale).log_prob(x))


def test_diag_normal_log_prob_matches_torch():
    g = _generator(2)
    loc, scale = (
        torch.randn(4, 3, generator=g, dtype=DTYPE),
        0.2 + torch.rand(4, 3, generator=g, dtype=DTYPE),
    )
    z = torch.randn(6, 4, 3, generator=g, dtype=DTYPE)
    q = DiagNormal(loc, scale)
    out = q.log_prob(z)
    assert out.shape == (6, 4)
    torch.testing.assert_close(out, Independent(Normal(loc, scale), 1).log_prob(z))


def test_diag_normal_rsample_shape_moments_and_generator():
    loc = torch.tensor([[1.0, -2.0], [0.0, 3.0]], dtype=DTYPE)
    scale = torch.tensor([[0.5, 2.0], [1.0, 0.1]], dtype=DTYPE)
    q = DiagNormal(loc, scale)
    z = q.rsample((40000,), _generator(0))
    assert z.shape == (40000, 2, 2)
    torch.testing.assert_close(z.mean(0), loc, atol=4 * 2.0 / 200, rtol=0)
    torch.testing.assert_close(z.std(0), scale, rtol=0.03, atol=0)
    torch.testing.assert_close(q.rsample((3,), _generator(7)), q.rsample((3,), _generator(7)))
    assert not torch.equal(q.rsample((3,), _generator(7)), q.rsample((3,), _generator(8)))


def test_diag_normal_detach_cuts_the_graph():
    loc = torch.zeros(2, 3, requires_grad=True)
    scale = torch.ones(2, 3, requires_grad=True)
    detached = DiagNormal(loc, scale).detach()
    assert not detached.loc.requires_grad and not detached.scale.requires_grad


def test_mixture_log_prob_matches_torch_mixture_same_family():
    logits, loc, scale = _mixture_params(batch=4, n_components=3, dim=2)
    z = torch.randn(5, 4, 2, generator=_generator(3), dtype=DTYPE)
    q = NormalMixture(logits, loc, scale)
    out = q.log_prob(z)
    assert out.shape == (5, 4)
    torch.testing.assert_close(out, _torch_mixture(logits, loc, scale).log_prob(z))
    assert q.component_log_prob(z).shape == (5, 4, 3)
    torch.testing.assert_close(q.log_weights.exp().sum(-1), torch.ones(4, dtype=DTYPE))


def test_mixture_log_prob_of_stratified_draws_is_the_full_mixture_density():
    logits, loc, scale = _mixture_params(batch=4, n_components=3, dim=2)
    q = NormalMixture(logits, loc, scale)
    z = q.rsample_stratified((2,), _generator(0))  # [I, K, B, d]
    out = q.log_prob(z)
    assert out.shape == (2, 3, 4)
    expected = _torch_mixture(logits, loc, scale).log_prob(z)  # the *full* mixture density
    torch.testing.assert_close(out, expected)


def test_one_component_mixture_log_prob_equals_diag_normal():
    g = _generator(4)
    loc, scale = (
        torch.randn(5, 3, generator=g, dtype=DTYPE),
        0.2 + torch.rand(5, 3, generator=g, dtype=DTYPE),
    )
    z = torch.randn(7, 5, 3, generator=g, dtype=DTYPE)
    mixture = NormalMixture(torch.zeros(5, 1, dtype=DTYPE), loc.unsqueeze(-2), scale.unsqueeze(-2))
    torch.testing.assert_close(mixture.log_prob(z), DiagNormal(loc, scale).log_prob(z))
    # Logits of a single component are irrelevant after normalisation.
    shifted = NormalMixture(
        torch.full((5, 1), 3.7, dtype=DTYPE), loc.unsqueeze(-2), scale.unsqueeze(-2)
    )
    torch.testing.assert_close(shifted.log_prob(z), DiagNormal(loc, scale).log_prob(z))


def test_one_component_ancestral_rsample_is_the_plain_reparameterisation():
    """K=1: value ``loc + scale * eps`` and gradients equal to the ordinary reparam trick."""
    g = _generator(5)
    loc = torch.randn(4, 3, generator=g, dtype=DTYPE).requires_grad_()
    scale = (0.2 + torch.rand(4, 3, generator=g, dtype=DTYPE)).requires_grad_()
    weight = torch.randn(6, 4, 3, generator=g, dtype=DTYPE)
    mixture = NormalMixture(torch.zeros(4, 1, dtype=DTYPE), loc.unsqueeze(-2), scale.unsqueeze(-2))
    z = mixture.rsample_ancestral((6,), _generator(0))  # [S, B, d]
    assert z.shape == (6, 4, 3)
    (weight * z).sum().backward()
    eps = ((z - loc) / scale).detach()
    torch.testing.assert_close(loc.grad, weight.sum(0))
    torch.testing.assert_close(scale.grad, (weight * eps).sum(0))


# -- ancestral sampling -----------------------------------------------------------------


def _analytic_moments(logits, loc, scale):
    pi = torch.softmax(logits, -1)  # [B, K]
    mean = (pi.unsqueeze(-1) * loc).sum(-2)  # [B, d]
    second = (
        pi[..., None, None] * (torch.diag_embed(scale**2) + loc.unsqueeze(-1) * loc.unsqueeze(-2))
    ).sum(-3)
    return mean, second - mean.unsqueeze(-1) * mean.unsqueeze(-2)


def test_ancestral_sample_shapes():
    q = NormalMixture(*_mixture_params(batch=2, n_components=3, dim=4))
    assert q.sample((), _generator()).shape == (2, 4)
    assert q.sample((5,), _generator()).shape == (5, 2, 4)
    assert q.sample((5, 6), _generator()).shape == (5, 6, 2, 4)
    assert q.rsample_ancestral((5,), _generator()).shape == (5, 2, 4)


def test_ancestral_forward_values_are_exact_ancestral_draws():
    params = _mixture_params(batch=2, n_components=3, dim=3, requires_grad=True)
    q = NormalMixture(*params)
    z = q.rsample_ancestral((50,), _generator(11))
    assert z.requires_grad
    torch.testing.assert_close(z.detach(), q.sample((50,), _generator(11)), rtol=0, atol=1e-12)


def test_ancestral_draws_have_the_mixture_moments():
    logits, loc, scale = _mixture_params(batch=2, n_components=3, dim=3, seed=3, requires_grad=True)
    q = NormalMixture(logits, loc, scale)
    z = q.rsample_ancestral((100000,), _generator(0)).detach()  # [S, B, d]
    mean, cov = _analytic_moments(logits.detach(), loc.detach(), scale.detach())
    centred = z - z.mean(0)
    sample_cov = torch.einsum("sbi,sbj->bij", centred, centred) / (len(z) - 1)
    # Standard errors: sqrt(var / S) <= ~0.01 for these parameters.
    torch.testing.assert_close(z.mean(0), mean, atol=0.03, rtol=0)
    torch.testing.assert_close(sample_cov, cov, atol=0.06, rtol=0.03)


def test_ancestral_component_frequencies_follow_the_weights():
    logits = torch.log(torch.tensor([[0.1, 0.6, 0.3]], dtype=DTYPE))
    loc = torch.tensor([[[-100.0], [0.0], [100.0]]], dtype=DTYPE)
    scale = torch.ones(1, 3, 1, dtype=DTYPE)
    z = NormalMixture(logits, loc, scale).sample((30000,), _generator(1))[:, 0, 0]
    freq = torch.stack(
        [(z < -50).double().mean(), (z.abs() < 50).double().mean(), (z > 50).double().mean()]
    )
    torch.testing.assert_close(freq, torch.tensor([0.1, 0.6, 0.3], dtype=DTYPE), atol=0.015, rtol=0)


def test_ancestral_sampling_uses_only_the_generator():
    q = NormalMixture(*_mixture_params(requires_grad=True))
    state = torch.random.get_rng_state()
    a = q.rsample_ancestral((4,), _generator(3))
    b = q.rsample_ancestral((4,), _generator(3))
    assert torch.equal(torch.random.get_rng_state(), state)
    torch.testing.assert_close(a, b)


def test_implicit_reparameterisation_gradient_matches_analytic_gradient():
    """Monte-Carlo gradient of E[z1 z2 + z3^2 + z2] vs its closed form (Figurnov et al., 2018)."""

    def make():
        logits = torch.tensor([[0.3, -0.5, 0.1]], dtype=DTYPE, requires_grad=True)
        loc = torch.tensor(
            [[[0.5, -1.0, 0.8], [-1.2, 0.4, -0.3], [1.0, 1.5, 0.2]]],
            dtype=DTYPE,
            requires_grad=True,
        )
        scale = torch.tensor(
            [[[0.7, 0.5, 1.1], [0.9, 1.3, 0.6], [0.4, 0.8, 0.9]]], dtype=DTYPE, requires_grad=True
        )
        return logits, loc, scale

    mc_params = make()
    z = NormalMixture(*mc_params).rsample_ancestral((200_000,), _generator(0))  # [S, 1, 3]
    f = z[..., 0] * z[..., 1] + z[..., 2] ** 2 + z[..., 1]
    f.mean().backward()

    logits, loc, scale = make()
    pi = torch.softmax(logits, -1)
    expectation = (
        pi * (loc[..., 0] * loc[..., 1] + loc[..., 2] ** 2 + scale[..., 2] ** 2 + loc[..., 1])
    ).sum()
    expectation.backward()

    for mc, exact in zip(mc_params, (logits, loc, scale), strict=True):
        # Observed Monte-Carlo error ~0.01 with gradients of size ~1.
        torch.testing.assert_close(mc.grad, exact.grad, atol=0.04, rtol=0.02)


def _independent_transform(z, logits, loc, scale):
    """Distributional transform written out dimension by dimension (test reference).

    z ``[M, d]``, logits ``[M, K]``, loc/scale ``[M, K, d]`` -> ``[M, d]``.
    """
    log_pi = torch.log_softmax(logits, -1)
    components = Normal(loc, scale)
    out = []
    prefix = torch.zeros_like(log_pi)
    for i in range(z.shape[-1]):
        w = torch.softmax(log_pi + prefix, -1)  # [M, K]
        out.append((w * components.cdf(z[:, None, :])[..., i]).sum(-1))
        prefix = prefix + components.log_prob(z[:, None, :])[..., i]
    return torch.stack(out, -1)


def test_distributional_transform_matches_reference_and_maps_to_uniform():
    logits, loc, scale = _mixture_params(batch=1, n_components=3, dim=3, seed=6)
    q = NormalMixture(logits, loc, scale)
    z = q.sample((2000,), _generator(2))  # [S, 1, d]
    transform, _ = q._distributional_transform(z)
    expected = _independent_transform(
        z[:, 0], logits.expand(2000, 3), loc.expand(2000, 3, 3), scale.expand(2000, 3, 3)
    )
    torch.testing.assert_close(transform[:, 0], expected)
    # T pushes the mixture forward to U(0, 1)^d with independent coordinates.
    u = transform[:, 0]
    torch.testing.assert_close(u.mean(0), torch.full((3,), 0.5, dtype=DTYPE), atol=0.03, rtol=0)
    torch.testing.assert_close(u.var(0), torch.full((3,), 1 / 12, dtype=DTYPE), atol=0.01, rtol=0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_closed_form_jacobian_matches_autograd(seed):
    logits, loc, scale = _mixture_params(batch=1, n_components=3, dim=4, seed=seed)
    q = NormalMixture(logits, loc, scale)
    z = q.sample((), _generator(seed))  # [1, d]
    _, jacobian = q._distributional_transform(z)  # [1, d, d]
    reference = torch.autograd.functional.jacobian(lambda x: q._distributional_transform(x)[0], z)
    reference = reference[0, :, 0, :]  # [d, d]
    assert torch.equal(torch.triu(reference, 1), torch.zeros_like(reference))
    torch.testing.assert_close(jacobian[0], reference, rtol=1e-8, atol=1e-10)


def _invert_transform(target, logits, loc, scale, n_iter=200):
    """Solve ``T(z) = target`` dimension by dimension by bisection. Shapes as above."""
    z = torch.zeros_like(target)
    for i in range(target.shape[-1]):
        low = torch.full_like(target[:, i], -40.0)
        high = torch.full_like(target[:, i], 40.0)
        for _ in range(n_iter):
            mid = 0.5 * (low + high)
            trial = z.clone()
            trial[:, i] = mid
            above = _independent_transform(trial, logits, loc, scale)[:, i] > target[:, i]
            high = torch.where(above, mid, high)
            low = torch.where(above, low, mid)
        z[:, i] = 0.5 * (low + high)
    return z


def test_implicit_gradient_matches_finite_differences_of_the_inverse_transform():
    """``dz/dtheta`` per sample equals the derivative of ``T_theta^{-1}(u)`` at fixed ``u``."""
    n_samples, n_components, dim = 2, 3, 3
    logits, loc, scale = _mixture_params(
        batch=1, n_components=n_components, dim=dim, seed=8, requires_grad=True
    )
    z = NormalMixture(logits, loc, scale).rsample_ancestral((n_samples,), _generator(4))[
        :, 0
    ]  # [S, d]
    params = [logits, loc, scale]
    autograd_jac = []  # per (sample, dim): gradient w.r.t. flattened parameters
    for s in range(n_samples):
        for i in range(dim):
            grads = torch.autograd.grad(z[s, i], params, retain_graph=True)
            autograd_jac.append(torch.cat([g.flatten() for g in grads]))
    autograd_jac = torch.stack(autograd_jac).reshape(n_samples, dim, -1)  # [S, d, P]

    flat = torch.cat([p.detach().flatten() for p in params])  # [P]
    n_params, step = flat.numel(), 1e-5
    sizes = [p.numel() for p in params]

    def unflatten(theta):  # theta [M, P] -> logits [M, K], loc/scale [M, K, d]
        a, b, c = torch.split(theta, sizes, dim=-1)
        return a, b.reshape(-1, n_components, dim), c.reshape(-1, n_components, dim)

    z0 = z.detach()
    target = _independent_transform(
        z0, *[t.expand(n_samples, *t.shape[1:]) for t in unflatten(flat.unsqueeze(0))]
    )  # [S, d]
    # Perturb each parameter up and down, for every sample: M = S * P * 2 problems at once.
    offsets = step * torch.eye(n_params, dtype=DTYPE)
    theta = torch.cat([flat + offsets, flat - offsets])  # [2P, P]
    theta = theta.repeat(n_samples, 1)  # [S*2P, P]
    targets = target.repeat_interleave(2 * n_params, 0)  # [S*2P, d]
    solved = _invert_transform(targets, *unflatten(theta)).reshape(n_samples, 2, n_params, dim)
    fd = ((solved[:, 0] - solved[:, 1]) / (2 * step)).transpose(1, 2)  # [S, d, P]
    torch.testing.assert_close(autograd_jac, fd, rtol=1e-5, atol=1e-6)


# -- stratified sampling ----------------------------------------------------------------


def test_stratified_rsample_shape_and_per_component_moments():
    logits, loc, scale = _mixture_params(batch=2, n_components=3, dim=4, seed=9)
    q = NormalMixture(logits, loc, scale)
    z = q.rsample_stratified((20000,), _generator(0))
    assert z.shape == (20000, 3, 2, 4)  # [S, K, B, d]
    assert q.rsample_stratified((), _generator(0)).shape == (3, 2, 4)
    torch.testing.assert_close(
        z.mean(0), loc.transpose(0, 1), atol=4 * 1.3 / math.sqrt(20000), rtol=0
    )
    torch.testing.assert_close(z.std(0), scale.transpose(0, 1), rtol=0.04, atol=0)


def test_stratified_rsample_is_reparameterised():
    logits, loc, scale = _mixture_params(batch=2, n_components=3, dim=2, requires_grad=True)
    z = NormalMixture(logits, loc, scale).rsample_stratified((5,), _generator(0))  # [S, K, B, d]
    z.sum().backward()
    torch.testing.assert_close(loc.grad, torch.full_like(loc, 5.0))
    eps = (z.detach() - loc.detach().transpose(0, 1)) / scale.detach().transpose(0, 1)
    torch.testing.assert_close(scale.grad, eps.sum(0).transpose(0, 1))
    assert logits.grad is None


def test_choice_score_draws_match_ancestral_draws_for_any_sample_shape():
    # The same generator gives the same draws as sample(); log pi is that of each drawn
    # component, attached to the logits.
    logits = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    loc = torch.randn(3, 4, 2, dtype=torch.float64)
    scale = torch.rand(3, 4, 2, dtype=torch.float64) + 0.1
    q = NormalMixture(logits, loc, scale)
    for shape in [(), (5,), (2, 3)]:
        z, log_pi = q.rsample_choice_score(shape, torch.Generator().manual_seed(7))
        assert z.shape == (*shape, 3, 2) and log_pi.shape == (*shape, 3)
        torch.testing.assert_close(z, q.sample(shape, torch.Generator().manual_seed(7)))
        _, k = q._ancestral_draw(torch.Size(shape), torch.Generator().manual_seed(7))
        expected = torch.log_softmax(logits, -1).detach()[torch.arange(3), k]  # [*S, B]
        torch.testing.assert_close(log_pi.detach(), expected)
        assert log_pi.requires_grad
