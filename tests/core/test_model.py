"""Tests of the VAE and of ``finite_mixture_objective``.

Two-code-path tests (K=1 mixture == Gaussian encoder, STL and DReG gradients written out by
hand) and closed-form tests on a linear-Gaussian model whose ``log p(x_o)`` is known
(``conftest.LinearGaussianProblem``).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import (
    Categorical,
    Independent,
    MixtureSameFamily,
    MultivariateNormal,
    Normal,
    kl_divergence,
)

from skmissvae.core import objectives
from skmissvae.core.families import DiagNormal, NormalMixture
from skmissvae.core.likelihoods import GaussianLikelihood
from skmissvae.core.model import MissingDataVAE, finite_mixture_objective, standard_normal_log_prob

DTYPE = torch.float64


def _generator(seed=0):
    return torch.Generator().manual_seed(seed)


def _small_problem(batch=6, n_features=4, seed=0):
    g = _generator(seed)
    x = torch.randn(batch, n_features, generator=g, dtype=DTYPE)
    observed = torch.rand(batch, n_features, generator=g) < 0.6
    observed[:, 0] = True
    observed[:, -1] = False
    return torch.where(observed, x, torch.zeros_like(x)), observed


def _vae(n_features=4, latent_dim=2, n_components=1, seed=0, **kwargs):
    return MissingDataVAE(
        n_features,
        latent_dim,
        n_components=n_components,
        width=16,
        n_blocks=1,
        generator=_generator(seed),
        **kwargs,
    ).double()


# -- the model --------------------------------------------------------------------------


def test_standard_normal_log_prob():
    z = torch.randn(3, 5, 2, generator=_generator(), dtype=DTYPE)
    torch.testing.assert_close(standard_normal_log_prob(z), Normal(0.0, 1.0).log_prob(z).sum(-1))


def test_encode_single_component_returns_diag_normal():
    x_filled, observed = _small_problem()
    q = _vae(n_components=1).encode(x_filled, observed)
    assert isinstance(q, DiagNormal)
    assert q.loc.shape == q.scale.shape == (6, 2)
    assert (q.scale >= 1e-5).all()


def test_encode_mixture_returns_normal_mixture():
    x_filled, observed = _small_problem()
    model = _vae(n_components=3)
    assert model.encoder.output.out_features == 3 * 2 * 2 + 3
    q = model.encode(x_filled, observed)
    assert isinstance(q, NormalMixture)
    assert q.logits.shape == (6, 3)
    assert q.loc.shape == q.scale.shape == (6, 3, 2)
    assert (q.scale >= 1e-5).all()
    # The components differ: the encoder output is not tied across components.
    assert not torch.allclose(q.loc[:, 0], q.loc[:, 1])


def test_encoder_sees_the_mask():
    x_filled, observed = _small_problem()
    model = _vae()
    assert model.encoder.input.in_features == 2 * 4
    flipped = observed.clone()
    flipped[:, 1] = ~flipped[:, 1]
    assert not torch.allclose(
        model.encode(x_filled, observed).loc, model.encode(x_filled, flipped).loc
    )
    no_mask = _vae(encoder_uses_mask=False)
    assert no_mask.encoder.input.in_features == 4
    torch.testing.assert_close(
        no_mask.encode(x_filled, observed).loc, no_mask.encode(x_filled, flipped).loc
    )


def test_log_joint_is_likelihood_plus_prior():
    x_filled, observed = _small_problem()
    model = _vae()
    z = torch.randn(5, 6, 2, generator=_generator(1), dtype=DTYPE)
    h = model.decode(z)
    assert h.shape == (5, 6, 8)
    expected = GaussianLikelihood().log_prob(x_filled, observed, h) + Normal(0.0, 1.0).log_prob(
        z
    ).sum(-1)
    torch.testing.assert_close(model.log_joint(x_filled, observed, z), expected)


@pytest.mark.parametrize("n_components", [1, 3])
def test_log_weights_use_a_stopped_gradient_density(n_components):
    """STL: with the sample path cut, no gradient reaches the encoder through ``log q``."""
    x_filled, observed = _small_problem()
    model = _vae(n_components=n_components)
    q = model.encode(x_filled, observed)
    z = q.sample((4,), _generator(1))  # no path to the encoder
    log_w = model.log_weights(x_filled, observed, z, q)
    expected = model.log_joint(x_filled, observed, z) - q.log_prob(z)
    torch.testing.assert_close(log_w, expected)
    log_w.sum().backward()
    assert all(p.grad is None for p in model.encoder.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.decoder.parameters())


# -- finite_mixture_objective: shapes and plumbing -----------------------------------------


def _record_latents(model):
    """Make ``model.log_weights`` remember the latents it is called with."""
    seen = []
    original = model.log_weights

    def log_weights(x_filled, observed, z, q, generator=None, stl=True):
        seen.append(z)
        return original(x_filled, observed, z, q, generator, stl)

    model.log_weights = log_weights
    return seen


@pytest.mark.parametrize(
    "n_components, sampling, expected_shape",
    [(1, "ancestral", (6, 5, 2)), (3, "ancestral", (6, 5, 2)), (3, "stratified", (2, 3, 5, 2))],
)
@pytest.mark.parametrize("objective", ["elbo", "iwelbo"])
def test_objective_shapes_and_particles(n_components, sampling, expected_shape, objective):
    x_filled, observed = _small_problem(batch=5)
    model = _vae(n_components=n_components)
    seen = _record_latents(model)
    out = finite_mixture_objective(
        model,
        x_filled,
        observed,
        objective=objective,
        sampling=sampling,
        n_particles=6,
        generator=_generator(),
    )
    assert out.shape == (5,)
    assert torch.isfinite(out).all()
    assert seen[0].shape == expected_shape


@pytest.mark.parametrize(
    "n_components, sampling", [(1, "ancestral"), (3, "ancestral"), (3, "stratified")]
)
def test_objective_is_reproducible_and_uses_only_the_generator(n_components, sampling):
    x_filled, observed = _small_problem()
    model = _vae(n_components=n_components)
    state = torch.random.get_rng_state()
    kwargs = dict(objective="iwelbo", sampling=sampling, n_particles=6)
    a = finite_mixture_objective(model, x_filled, observed, generator=_generator(3), **kwargs)
    b = finite_mixture_objective(model, x_filled, observed, generator=_generator(3), **kwargs)
    c = finite_mixture_objective(model, x_filled, observed, generator=_generator(4), **kwargs)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_sampling_is_ignored_with_one_component():
    x_filled, observed = _small_problem()
    model = _vae(n_components=1)
    a = finite_mixture_objective(
        model, x_filled, observed, sampling="ancestral", generator=_generator(3)
    )
    b = finite_mixture_objective(
        model, x_filled, observed, sampling="stratified", generator=_generator(3)
    )
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize(
    "sampling, choice_gradient", [("ancestral", "implicit"), ("ancestral", "score"), ("stratified", "implicit")]
)
@pytest.mark.parametrize("objective", ["elbo", "iwelbo"])
def test_mixture_objective_trains_every_encoder_output(sampling, choice_gradient, objective):
    """Stratified bounds keep ``pi`` attached; ancestral draws reach it implicitly or
    through the score of the component choice."""
    x_filled, observed = _small_problem()
    model = _vae(n_components=3)
    q = model.encode(x_filled, observed)
    logits, loc, scale = (t.detach().requires_grad_() for t in (q.logits, q.loc, q.scale))
    model.encode = lambda *args, **kwargs: NormalMixture(logits, loc, scale)
    out = finite_mixture_objective(
        model,
        x_filled,
        observed,
        objective=objective,
        sampling=sampling,
        n_particles=6,
        choice_gradient=choice_gradient,
        generator=_generator(),
    )
    out.sum().backward()
    for tensor in (logits, loc, scale):
        assert tensor.grad is not None and torch.isfinite(tensor.grad).all()
        assert tensor.grad.abs().sum() > 0


@pytest.mark.parametrize("sampling", ["ancestral", "stratified"])
@pytest.mark.parametrize("objective", ["elbo", "iwelbo"])
def test_mixture_objective_values_match_the_formulas(sampling, objective):
    """The paper's objectives (Simkus & Gutmann, 2024, sec. 4), with q_mix the *full*
    mixture density in every log-weight."""
    x_filled, observed = _small_problem()
    model = _vae(n_components=3)
    logits = torch.randn(6, 3, generator=_generator(1), dtype=DTYPE)
    loc = 10.0 * torch.arange(3, dtype=DTYPE).reshape(1, 3, 1).expand(6, 3, 2)  # far apart
    scale = torch.full((6, 3, 2), 0.5, dtype=DTYPE)
    model.encode = lambda *a, **k: NormalMixture(logits, loc, scale)
    seen = _record_latents(model)
    out = finite_mixture_objective(
        model,
        x_filled,
        observed,
        objective=objective,
        sampling=sampling,
        n_particles=6,
        generator=_generator(2),
    )
    z = seen[0].detach()
    reference_q = MixtureSameFamily(Categorical(logits=logits), Independent(Normal(loc, scale), 1))
    log_w = model.log_joint(x_filled, observed, z) - reference_q.log_prob(z)
    pi = torch.softmax(logits, -1)
    if sampling == "ancestral":  # [S, B]
        expected = log_w.mean(0) if objective == "elbo" else log_w.exp().mean(0).log()
    else:  # [I, K, B]: draws from every component, weighted by pi
        # The k-th block of draws comes from component k.
        torch.testing.assert_close(
            z.mean((0, 2, 3)), 10.0 * torch.arange(3, dtype=DTYPE), atol=2.0, rtol=0
        )
        if objective == "elbo":
            expected = (pi.T * log_w.mean(0)).sum(0)
        else:
            expected = (pi.T * log_w.exp().mean(0)).sum(0).log()
    torch.testing.assert_close(out.detach(), expected)


# -- K = 1 mixture == Gaussian encoder ---------------------------------------------------


class _FixedNoiseNormal(DiagNormal):
    """A DiagNormal whose draws reuse given standard-normal noise ``[S, B, d]``."""

    def __init__(self, loc, scale, eps):
        super().__init__(loc, scale)
        self.eps = eps

    def rsample(self, sample_shape=(), generator=None):
        assert self.eps.shape == torch.Size(sample_shape) + self.loc.shape
        return self.loc + self.scale * self.eps


@pytest.mark.parametrize("objective, dreg", [("elbo", False), ("iwelbo", False), ("iwelbo", True)])
def test_one_component_mixture_objective_equals_gaussian_objective(
    linear_gaussian, objective, dreg
):
    """K=1 mixture with implicit reparameterisation == Gaussian encoder: values and gradients.

    The mixture's ancestral sampler spends generator state on the (trivial) component draw,
    so the Gaussian path reuses the mixture's noise ``eps = (z - loc) / scale`` explicitly.
    """
    problem = linear_gaussian
    x_filled, observed = problem.x_filled, problem.observed
    g = _generator(7)
    loc0 = torch.randn(8, 2, generator=g, dtype=DTYPE)
    scale0 = 0.3 + torch.rand(8, 2, generator=g, dtype=DTYPE)
    kwargs = dict(objective=objective, sampling="ancestral", n_particles=6, dreg=dreg)

    mixture_model = problem.model()
    loc_m, scale_m = loc0.clone().requires_grad_(), scale0.clone().requires_grad_()
    logits = torch.zeros(8, 1, dtype=DTYPE, requires_grad=True)
    mixture_model.encode = lambda *a, **k: NormalMixture(
        logits, loc_m.unsqueeze(-2), scale_m.unsqueeze(-2)
    )
    seen = _record_latents(mixture_model)
    value_m = finite_mixture_objective(
        mixture_model, x_filled, observed, generator=_generator(1), **kwargs
    )
    value_m.sum().backward()
    eps = ((seen[0] - loc_m) / scale_m).detach()  # [S, B, d]

    gaussian_model = problem.model()
    loc_g, scale_g = loc0.clone().requires_grad_(), scale0.clone().requires_grad_()
    gaussian_model.encode = lambda *a, **k: _FixedNoiseNormal(loc_g, scale_g, eps)
    value_g = finite_mixture_objective(
        gaussian_model, x_filled, observed, generator=_generator(1), **kwargs
    )
    value_g.sum().backward()

    torch.testing.assert_close(value_m, value_g)
    torch.testing.assert_close(loc_m.grad, loc_g.grad)
    torch.testing.assert_close(scale_m.grad, scale_g.grad)
    torch.testing.assert_close(
        mixture_model.decoder.weight.grad, gaussian_model.decoder.weight.grad
    )
    torch.testing.assert_close(logits.grad, torch.zeros_like(logits))  # softmax of one logit


# -- gradient estimators written out by hand -------------------------------------------------


def _per_particle_score(model, x_filled, observed, z, q):
    """``log w_i`` and ``d log w_i / d z_i`` (``log q`` stopped, as in STL)."""
    z = z.detach().requires_grad_()
    log_w = model.log_weights(x_filled, observed, z, q.detach())
    (grad,) = torch.autograd.grad(log_w.sum(), z)
    return log_w.detach(), grad  # [S, B], [S, B, d]


@pytest.mark.parametrize("dreg", [False, True])
def test_iwelbo_encoder_gradient_is_stl_or_dreg(linear_gaussian, dreg):
    """STL: sum_i w~_i dlogw_i/dz_i dz_i/dphi; DReG: the same with w~_i**2 (Tucker et al., 2018)."""
    problem = linear_gaussian
    model = problem.model()
    g = _generator(2)
    loc = torch.randn(8, 2, generator=g, dtype=DTYPE).requires_grad_()
    scale = (0.3 + torch.rand(8, 2, generator=g, dtype=DTYPE)).requires_grad_()
    model.encode = lambda *a, **k: DiagNormal(loc, scale)
    seen = _record_latents(model)
    out = finite_mixture_objective(
        model,
        problem.x_filled,
        problem.observed,
        objective="iwelbo",
        n_particles=7,
        dreg=dreg,
        generator=_generator(3),
    )
    out.sum().backward()

    z = seen[0].detach()
    eps = (z - loc.detach()) / scale.detach()
    log_w, score = _per_particle_score(
        model, problem.x_filled, problem.observed, z, DiagNormal(loc, scale)
    )
    weights = torch.softmax(log_w, 0).unsqueeze(-1)  # [S, B, 1]
    if dreg:
        weights = weights**2
    torch.testing.assert_close(out.detach(), objectives.iwelbo(log_w))
    torch.testing.assert_close(loc.grad, (weights * score).sum(0))
    torch.testing.assert_close(scale.grad, (weights * score * eps).sum(0))


def test_elbo_encoder_gradient_is_stl(linear_gaussian):
    problem = linear_gaussian
    model = problem.model()
    g = _generator(2)
    loc = torch.randn(8, 2, generator=g, dtype=DTYPE).requires_grad_()
    scale = (0.3 + torch.rand(8, 2, generator=g, dtype=DTYPE)).requires_grad_()
    model.encode = lambda *a, **k: DiagNormal(loc, scale)
    seen = _record_latents(model)
    out = finite_mixture_objective(
        model,
        problem.x_filled,
        problem.observed,
        objective="elbo",
        n_particles=7,
        generator=_generator(3),
    )
    out.sum().backward()
    z = seen[0].detach()
    eps = (z - loc.detach()) / scale.detach()
    _, score = _per_particle_score(
        model, problem.x_filled, problem.observed, z, DiagNormal(loc, scale)
    )
    torch.testing.assert_close(loc.grad, score.mean(0))
    torch.testing.assert_close(scale.grad, (score * eps).mean(0))


@pytest.mark.parametrize("n_components", [1, 3])
def test_dreg_changes_only_encoder_gradients(n_components):
    x_filled, observed = _small_problem()
    kwargs = dict(objective="iwelbo", sampling="ancestral", n_particles=5, generator=None)

    def run(dreg):
        model = _vae(n_components=n_components, seed=1)
        kwargs["generator"] = _generator(4)
        out = finite_mixture_objective(model, x_filled, observed, dreg=dreg, **kwargs)
        out.mean().backward()
        return (
            out.detach(),
            [p.grad.clone() for p in model.encoder.parameters()],
            [p.grad.clone() for p in model.decoder.parameters()],
        )

    value, enc, dec = run(False)
    value_dreg, enc_dreg, dec_dreg = run(True)
    torch.testing.assert_close(value, value_dreg)
    for a, b in zip(dec, dec_dreg, strict=True):
        torch.testing.assert_close(a, b)
    assert any(not torch.allclose(a, b) for a, b in zip(enc, enc_dreg, strict=True))


def test_dreg_with_one_particle_is_stl():
    # With I=1 the normalised weight is 1, so DReG and STL coincide.
    x_filled, observed = _small_problem()
    grads = []
    for dreg in (False, True):
        model = _vae(seed=1)
        finite_mixture_objective(
            model,
            x_filled,
            observed,
            objective="iwelbo",
            n_particles=1,
            dreg=dreg,
            generator=_generator(4),
        ).mean().backward()
        grads.append([p.grad.clone() for p in model.encoder.parameters()])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b)


# -- bounds on a linear-Gaussian model with a known marginal -------------------------------


def _broadened_posterior(problem, factor=1.3):
    post = problem.exact_posterior()
    cov = post.scale_tril @ post.scale_tril.transpose(-1, -2)
    return DiagNormal(post.loc, factor * torch.diagonal(cov, dim1=-2, dim2=-1).sqrt()), post


def test_linear_gaussian_decoder_has_the_intended_scale(linear_gaussian):
    model = linear_gaussian.model()
    h = model.decode(torch.zeros(3, 2, dtype=DTYPE))
    loc, scale = model.likelihood.params(h)
    torch.testing.assert_close(scale, torch.full_like(scale, 0.5), rtol=1e-12, atol=0)
    torch.testing.assert_close(loc, linear_gaussian.bias.expand(3, 5))


def test_monte_carlo_elbo_matches_closed_form(linear_gaussian):
    """ELBO(q) = log p(x_o) - KL(q || p(z|x_o)), both sides in closed form or by Monte Carlo."""
    problem = linear_gaussian
    model = problem.model()
    q, post = _broadened_posterior(problem)
    n_samples = 20000
    with torch.no_grad():
        z = q.rsample((n_samples,), _generator(0))
        log_w = model.log_weights(problem.x_filled, problem.observed, z, q)  # [S, B]
    kl = kl_divergence(
        MultivariateNormal(q.loc, torch.diag_embed(q.scale**2)),
        MultivariateNormal(post.loc, scale_tril=post.scale_tril),
    )
    expected = problem.exact_log_marginal() - kl
    standard_error = log_w.std(0) / math.sqrt(n_samples)
    assert ((objectives.elbo(log_w) - expected).abs() < 4 * standard_error).all()


def test_elbo_below_iwelbo_below_exact_log_likelihood(linear_gaussian):
    problem = linear_gaussian
    model = problem.model()
    q, _ = _broadened_posterior(problem)
    exact = problem.exact_log_marginal()  # [B]
    n_repeats = 2000
    with torch.no_grad():
        z = q.rsample((50, n_repeats), _generator(1))  # [I, R, B, d]
        log_w = model.log_weights(problem.x_filled, problem.observed, z, q)  # [I, R, B]
    elbo = objectives.elbo(log_w[:5])  # [R, B]
    iwelbo_5 = objectives.iwelbo(log_w[:5])
    iwelbo_50 = objectives.iwelbo(log_w)
    assert (elbo <= iwelbo_5).all()  # Jensen, draw by draw
    torch.testing.assert_close(objectives.iwelbo(log_w[:1]), objectives.elbo(log_w[:1]))
    # In expectation: ELBO < IWELBO_5 < IWELBO_50 <= log p(x_o), up to Monte-Carlo error.
    se = lambda t: t.std(0) / math.sqrt(n_repeats)  # noqa: E731
    assert (elbo.mean(0) + 0.05 < iwelbo_5.mean(0)).all()
    assert (iwelbo_5.mean(0) < iwelbo_50.mean(0)).all()
    assert (iwelbo_50.mean(0) <= exact + 3 * se(iwelbo_50)).all()
    assert (iwelbo_5.mean(0) <= exact + 3 * se(iwelbo_5)).all()
    # The bound tightens: with 50 particles it is within a few hundredths of a nat.
    assert ((exact - iwelbo_50.mean(0)).abs() < 0.02).all()


@pytest.mark.parametrize(
    "n_components, sampling", [(1, "ancestral"), (3, "ancestral"), (3, "stratified")]
)
def test_training_objectives_are_lower_bounds(linear_gaussian, n_components, sampling):
    """With the model's own (random) encoder: ELBO <= IWELBO per row and both <= log p(x_o)."""
    problem = linear_gaussian
    model = problem.model(n_components=n_components)
    n_repeats = 100
    x_filled = problem.x_filled.repeat(n_repeats, 1)  # [R*B, D]
    observed = problem.observed.repeat(n_repeats, 1)
    bounds = {}
    with torch.no_grad():
        for objective in ("elbo", "iwelbo"):
            bounds[objective] = finite_mixture_objective(
                model,
                x_filled,
                observed,
                objective=objective,
                sampling=sampling,
                n_particles=6,
                generator=_generator(5),
            ).reshape(n_repeats, 8)
    assert (bounds["elbo"] <= bounds["iwelbo"] + 1e-12).all()
    assert (bounds["elbo"] < bounds["iwelbo"]).float().mean() > 0.99
    exact = problem.exact_log_marginal()
    assert (bounds["iwelbo"].mean(0) < exact).all()


def _double_mixture_problem(n_components):
    """A small float64 VAE and a zero-filled batch ``[8, 4]`` with its mask."""
    gen = torch.Generator().manual_seed(0)
    model = MissingDataVAE(4, 2, n_components=n_components, width=16, n_blocks=1,
                           generator=gen).double()
    x = torch.randn(8, 4, generator=gen, dtype=torch.float64)
    observed = torch.rand(8, 4, generator=gen) > 0.4
    return model, x * observed, observed


def _elbo_gradients(model, x, observed, sampling, n_particles, seed, stl=True):
    """Mean ELBO's value, encoder gradient and decoder gradient (flattened)."""
    model.zero_grad()
    value = finite_mixture_objective(
        model, x, observed, objective="elbo", sampling=sampling, n_particles=n_particles,
        stl=stl, generator=torch.Generator().manual_seed(seed))
    value.mean().backward()
    encoder = torch.cat([p.grad.flatten() for p in model.encoder.parameters()])
    decoder = torch.cat([p.grad.flatten() for p in model.decoder.parameters()])
    return value.detach(), encoder, decoder


def _relative_difference(a, b):
    return ((a - b).norm() / b.norm()).item()


def test_ancestral_and_stratified_elbo_gradients_agree_in_expectation():
    # Both estimators are unbiased for the gradient of the same mixture ELBO (STL drops a
    # zero-mean term from each), so their large-sample averages must agree: a check of the
    # implicit-reparameterisation path, the mixture weights included, on a real encoder.
    model, x, observed = _double_mixture_problem(3)
    _, ancestral, _ = _elbo_gradients(model, x, observed, "ancestral", 30_000, seed=1)
    _, stratified, _ = _elbo_gradients(model, x, observed, "stratified", 30_000, seed=2)
    # Monte-Carlo noise between two seeds of the same estimator is about 0.01 here.
    assert _relative_difference(ancestral, stratified) < 0.05
    # The mixture weights' share of the gradient is not negligible, so dropping the
    # implicit gradient of the logits would fail the check above.
    model.zero_grad()
    q = model.encode(x, observed)
    z = q.rsample_ancestral((30_000,), torch.Generator().manual_seed(3))
    (model.log_weights(x, observed, z, q).mean()).backward(inputs=[q.logits])
    assert q.logits.grad.abs().max() > 1e-3


@pytest.mark.parametrize("n_components,sampling", [(1, "ancestral"), (3, "ancestral"), (3, "stratified")])
def test_total_gradient_differs_from_stl_by_a_zero_mean_score_term(n_components, sampling):
    model, x, observed = _double_mixture_problem(n_components)
    value_stl, encoder_stl, decoder_stl = _elbo_gradients(model, x, observed, sampling, 3, seed=1)
    value_total, encoder_total, decoder_total = _elbo_gradients(
        model, x, observed, sampling, 3, seed=1, stl=False)
    assert torch.equal(value_stl, value_total)
    torch.testing.assert_close(decoder_stl, decoder_total)
    assert not torch.allclose(encoder_stl, encoder_total)
    # The score term has mean zero: with many particles the two estimators agree.
    _, encoder_stl, _ = _elbo_gradients(model, x, observed, sampling, 30_000, seed=1)
    _, encoder_total, _ = _elbo_gradients(model, x, observed, sampling, 30_000, seed=2, stl=False)
    assert _relative_difference(encoder_total, encoder_stl) < 0.05


def test_dreg_needs_stl():
    model = MissingDataVAE(3, 2, n_components=1, width=8, n_blocks=1)
    x, observed = torch.zeros(4, 3), torch.ones(4, 3, dtype=torch.bool)
    with pytest.raises(ValueError, match="STL"):
        finite_mixture_objective(model, x, observed, objective="iwelbo", dreg=True, stl=False)


# -- score-function gradients of the component choice -------------------------------------


def _encoder_gradient(model, x, observed, objective, choice_gradient, seed, n_particles=5, replicas=1):
    """Value and encoder gradient of the mean bound over ``replicas`` copies of the rows."""
    model.zero_grad()
    value = finite_mixture_objective(
        model, x.repeat(replicas, 1), observed.repeat(replicas, 1), objective=objective,
        sampling="ancestral", n_particles=n_particles, choice_gradient=choice_gradient,
        generator=torch.Generator().manual_seed(seed))
    value.mean().backward()
    decoder = torch.cat([p.grad.flatten() for p in model.decoder.parameters()])
    return value.detach(), torch.cat([p.grad.flatten() for p in model.encoder.parameters()]), decoder


@pytest.mark.parametrize("objective", ["elbo", "iwelbo"])
def test_score_choice_keeps_the_draws_value_and_decoder_gradient(objective):
    # The same generator gives the same ancestral draws on both paths; only the encoder's
    # gradient differs.
    model, x, observed = _double_mixture_problem(3)
    value_i, encoder_i, decoder_i = _encoder_gradient(model, x, observed, objective, "implicit", seed=1)
    value_s, encoder_s, decoder_s = _encoder_gradient(model, x, observed, objective, "score", seed=1)
    torch.testing.assert_close(value_s, value_i)
    torch.testing.assert_close(decoder_s, decoder_i)
    assert not torch.allclose(encoder_s, encoder_i)


def test_score_choice_elbo_gradient_matches_the_stratified_gradient_in_expectation():
    model, x, observed = _double_mixture_problem(3)
    _, score, _ = _encoder_gradient(model, x, observed, "elbo", "score", seed=1, n_particles=30_000)
    _, stratified, _ = _elbo_gradients(model, x, observed, "stratified", 30_000, seed=2)
    # Monte-Carlo noise between two seeds of the same estimator is about 0.01 here.
    assert _relative_difference(score, stratified) < 0.05


def test_score_and_implicit_iwelbo_gradients_agree_in_expectation():
    # Both are unbiased for the gradient of the same 5-particle ancestral IWELBO: averaged
    # over 3,000 copies of each row they agree to Monte-Carlo noise (about 0.015 between
    # two seeds of one estimator).
    model, x, observed = _double_mixture_problem(3)
    _, score, _ = _encoder_gradient(model, x, observed, "iwelbo", "score", seed=1, replicas=3000)
    _, implicit, _ = _encoder_gradient(model, x, observed, "iwelbo", "implicit", seed=2, replicas=3000)
    assert _relative_difference(score, implicit) < 0.06
    # Without the score term the mixture weights would get no gradient, and the check
    # above would fail: the logits' share of the gradient is not negligible.
    q = model.encode(x, observed)
    z, log_pi = q.rsample_choice_score((5,), torch.Generator().manual_seed(3))
    (model.log_weights(x, observed, z, q).mean()).backward(inputs=[q.logits], retain_graph=True)
    assert q.logits.grad is None or q.logits.grad.abs().max() == 0
    log_pi.sum().backward(inputs=[q.logits])
    assert q.logits.grad.abs().max() > 0


def test_choice_gradient_is_ignored_with_one_component():
    model, x, observed = _double_mixture_problem(1)
    _, implicit, _ = _encoder_gradient(model, x, observed, "iwelbo", "implicit", seed=1)
    _, score, _ = _encoder_gradient(model, x, observed, "iwelbo", "score", seed=1)
    assert torch.equal(implicit, score)


def test_score_choice_rejects_dreg_and_unknown_names():
    model, x, observed = _double_mixture_problem(3)
    with pytest.raises(ValueError, match="DReG"):
        finite_mixture_objective(model, x, observed, objective="iwelbo", sampling="ancestral",
                                 dreg=True, choice_gradient="score")
    with pytest.raises(ValueError, match="choice_gradient"):
        finite_mixture_objective(model, x, observed, sampling="ancestral", choice_gradient="reinforce")
