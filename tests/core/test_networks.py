"""Tests of the residual MLP: shapes, architecture, initialisation and randomness."""

from __future__ import annotations

import math

import pytest
import torch

from skmissvae.core.model import MissingDataVAE
from skmissvae.core.networks import ResidualMLP


def _generator(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("leading", [(4,), (3, 4), (2, 3, 4)])
def test_residual_mlp_shapes(leading):
    net = ResidualMLP(5, 7, width=8, n_blocks=2, generator=_generator())
    x = torch.randn(*leading, 5, generator=_generator(1))
    assert net(x).shape == (*leading, 7)


def test_residual_mlp_layer_sizes():
    net = ResidualMLP(5, 7, width=8, n_blocks=3, generator=_generator())
    assert net.input.weight.shape == (8, 5)
    assert len(net.blocks) == 3
    for first, second in net.blocks:
        assert first.weight.shape == second.weight.shape == (8, 8)
    assert net.output.weight.shape == (7, 8)
    n_params = sum(p.numel() for p in net.parameters())
    assert n_params == (5 * 8 + 8) + 3 * 2 * (8 * 8 + 8) + (8 * 7 + 7)


def test_residual_mlp_computes_the_residual_architecture():
    net = ResidualMLP(3, 2, width=6, n_blocks=2, generator=_generator(2)).double()
    x = torch.randn(10, 3, generator=_generator(3), dtype=torch.float64)
    h = torch.relu(x @ net.input.weight.T + net.input.bias)
    for first, second in net.blocks:
        inner = torch.relu(h @ first.weight.T + first.bias)
        h = torch.relu(h + inner @ second.weight.T + second.bias)
    expected = h @ net.output.weight.T + net.output.bias
    torch.testing.assert_close(net(x), expected)


def test_zero_blocks_is_a_one_hidden_layer_mlp():
    net = ResidualMLP(3, 2, width=6, n_blocks=0, generator=_generator(2))
    x = torch.randn(4, 3, generator=_generator(3))
    expected = torch.relu(net.input(x)) @ net.output.weight.T + net.output.bias
    torch.testing.assert_close(net(x), expected)


def test_initial_weights_follow_pytorch_default_bounds():
    net = ResidualMLP(16, 4, width=64, n_blocks=1, generator=_generator())
    for layer in [net.input, net.blocks[0][0], net.blocks[0][1], net.output]:
        bound = 1 / math.sqrt(layer.in_features)
        for p in (layer.weight, layer.bias):
            assert p.abs().max() <= bound
            assert p.abs().max() > 0.5 * bound  # not all zeros / not a degenerate init
            assert torch.isfinite(p).all()


def _state(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def _assert_same_state(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_same_generator_seed_gives_identical_weights():
    a = ResidualMLP(4, 3, width=8, n_blocks=2, generator=_generator(5))
    b = ResidualMLP(4, 3, width=8, n_blocks=2, generator=_generator(5))
    c = ResidualMLP(4, 3, width=8, n_blocks=2, generator=_generator(6))
    _assert_same_state(_state(a), _state(b))
    assert not torch.equal(a.input.weight, c.input.weight)


def test_vae_same_generator_seed_gives_identical_weights():
    a = MissingDataVAE(4, 2, n_components=3, width=8, n_blocks=1, generator=_generator(5))
    b = MissingDataVAE(4, 2, n_components=3, width=8, n_blocks=1, generator=_generator(5))
    _assert_same_state(_state(a), _state(b))
    # Encoder and decoder are drawn from the same stream, not from copies of it.
    assert not torch.equal(a.encoder.blocks[0][0].weight, a.decoder.blocks[0][0].weight)


def test_construction_does_not_touch_the_global_rng():
    state = torch.random.get_rng_state()
    ResidualMLP(4, 3, width=8, n_blocks=2, generator=_generator())
    MissingDataVAE(4, 2, n_components=3, width=8, n_blocks=1, generator=_generator())
    MissingDataVAE(4, 2, n_components=1, width=8, n_blocks=1, dropout=0.5, generator=_generator())
    assert torch.equal(torch.random.get_rng_state(), state)


def test_dropout_uses_the_passed_generator():
    net = ResidualMLP(4, 3, width=32, n_blocks=2, dropout=0.5, generator=_generator())
    net.train()
    x = torch.randn(8, 4, generator=_generator(1))
    state = torch.random.get_rng_state()
    a = net(x, _generator(7))
    b = net(x, _generator(7))
    c = net(x, _generator(8))
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_dropout_is_inactive_in_eval_mode_and_scales_in_training():
    net = ResidualMLP(4, 3, width=32, n_blocks=1, dropout=0.25, generator=_generator()).double()
    x = torch.randn(8, 4, generator=_generator(1), dtype=torch.float64)
    net.eval()
    eval_out = net(x, _generator(0))
    net.dropout = 0.0
    torch.testing.assert_close(eval_out, net(x))
    net.dropout = 0.25
    net.train()
    assert not torch.equal(net(x, _generator(0)), eval_out)
    # Inverted dropout: a share p of the inner units is zeroed, the rest scaled by 1/(1-p).
    seen = []
    hook = net.blocks[0][1].register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    net.eval()
    net(x)
    net.train()
    net(x.expand(500, 8, 4), _generator(4))
    hook.remove()
    clean, dropped = seen[0], seen[1]  # [8, W], [500, 8, W]
    active = clean > 0
    kept = dropped[:, active] != 0  # [500, n_active]
    assert abs(kept.double().mean().item() - 0.75) < 0.01
    torch.testing.assert_close(
        dropped[:, active][kept], (clean[active] / 0.75).expand_as(kept)[kept]
    )
