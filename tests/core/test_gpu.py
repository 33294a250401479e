"""The core on a CUDA device: same numbers as on the CPU, generators on the device."""

from __future__ import annotations

import math

import pytest
import torch

from skmissvae.core.families import NormalMixture
from skmissvae.core.model import MissingDataVAE, finite_mixture_objective
from skmissvae.core.samplers import importance_log_likelihood
from skmissvae.core.training import TrainingConfig, TrainingProblem, train

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

CUDA = torch.device("cuda")


def _mixture(device, requires_grad=False):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 3, generator=g)
    loc = torch.randn(4, 3, 2, generator=g)
    scale = 0.5 + torch.rand(4, 3, 2, generator=g)
    return NormalMixture(
        *[t.to(device).requires_grad_(requires_grad) for t in (logits, loc, scale)]
    )


def test_mixture_densities_agree_with_cpu():
    z = torch.randn(5, 4, 2, generator=torch.Generator().manual_seed(1))
    cpu = _mixture("cpu").log_prob(z)
    gpu = _mixture(CUDA).log_prob(z.to(CUDA))
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-5, atol=1e-5)


def test_mixture_sampling_on_cuda_uses_the_device_generator():
    q = _mixture(CUDA, requires_grad=True)
    z = q.rsample_ancestral((6,), torch.Generator(device=CUDA).manual_seed(0))
    assert z.device.type == "cuda" and z.shape == (6, 4, 2)
    z.pow(2).sum().backward()
    assert all(torch.isfinite(t.grad).all() for t in (q.logits, q.loc, q.scale))
    stratified = q.rsample_stratified((2,), torch.Generator(device=CUDA).manual_seed(0))
    assert stratified.device.type == "cuda" and stratified.shape == (2, 3, 4, 2)


def test_objective_training_and_scoring_on_cuda():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, generator=g)
    observed = torch.rand(64, 3, generator=g) < 0.7
    observed[:, 0] = True
    x_filled = torch.where(observed, x, torch.zeros_like(x)).to(CUDA)
    observed = observed.to(CUDA)
    model = MissingDataVAE(3, 2, n_components=3, width=16, n_blocks=1, dropout=0.1, generator=g).to(
        CUDA
    )

    class Problem(TrainingProblem):
        def objective(self, xb, ob, rows, generator):
            return finite_mixture_objective(
                self.model,
                xb,
                ob,
                objective="iwelbo",
                sampling="ancestral",
                n_particles=3,
                generator=generator,
            )

    config = TrainingConfig(max_epochs=3, batch_size=16, validation_fraction=0.25)
    result = train(
        Problem(model), x_filled, observed, config, torch.Generator(device=CUDA).manual_seed(0)
    )
    assert all(math.isfinite(v) for v in result.loss_curve)
    assert all(p.device.type == "cuda" for p in model.parameters())
    q = model.encode(x_filled, observed)
    score = importance_log_likelihood(
        model, x_filled, observed, q, 50, torch.Generator(device=CUDA).manual_seed(1)
    )
    assert score.device.type == "cuda" and torch.isfinite(score).all()
