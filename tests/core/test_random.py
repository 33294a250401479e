"""Row-wise counter-based random numbers: ``RowGenerator`` and the sampling primitives.

A row's draws must depend only on (seed, row, call, element): splitting the batch,
reordering its rows or drawing in a bigger batch changes nothing for that row, while
different rows, seeds and calls give independent numbers.
"""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

from skmissvae.core.families import DiagNormal, NormalMixture
from skmissvae.core.likelihoods import (
    BernoulliLikelihood,
    CategoricalLikelihood,
    GaussianLikelihood,
    MixedLikelihood,
    ZeroInflatedGaussianLikelihood,
)
from skmissvae.core.networks import ResidualMLP
from skmissvae.core.random import (
    RowGenerator,
    _to_open_unit,
    bernoulli,
    categorical,
    standard_normal,
    uniform,
)
from skmissvae.core.samplers import (
    column_pools,
    empirical_imputations,
    importance_conditional_mean,
    importance_log_likelihood,
    importance_resample,
    lair,
    pseudo_gibbs,
)

DTYPE = torch.float64
NAN = math.nan


def _u(gen, shape, row_dim=0, dtype=DTYPE):
    return uniform(shape, gen, row_dim=row_dim, device=None, dtype=dtype)


def _z(gen, shape, row_dim=0, dtype=DTYPE):
    return standard_normal(shape, gen, row_dim=row_dim, device=None, dtype=dtype)


def _rows(n=12, n_features=4, seed=0):
    """``[n, D]`` float64 rows with some NaNs, all distinct."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, n_features, generator=g, dtype=DTYPE)
    x[torch.rand(n, n_features, generator=g) < 0.3] = NAN
    return x


def _shape(n_rows, row_dim):
    """A 3-d draw shape with ``n_rows`` at ``row_dim``."""
    shape = [3, 5, 2]
    shape.insert(row_dim % 4, n_rows)
    return tuple(shape)


def _probs(shape, row_dim, seed=1):
    g = torch.Generator().manual_seed(seed)
    probs = torch.rand(shape, generator=g, dtype=DTYPE)
    probs.select(row_dim, 0).fill_(1.0)  # edge cases: certain and impossible successes
    probs.select(row_dim, 1).fill_(0.0)
    return probs


# Each draw: (generator, rows in the draw, row_dim, probs-like tensor or None) -> Tensor.
def _draw_normal(gen, n, row_dim, _):
    return _z(gen, _shape(n, row_dim), row_dim, torch.float32)


def _draw_uniform(gen, n, row_dim, _):
    return _u(gen, _shape(n, row_dim), row_dim)


def _draw_bernoulli(gen, n, row_dim, probs):
    return bernoulli(probs, gen, row_dim=row_dim)


PRIMITIVES = {"normal": _draw_normal, "uniform": _draw_uniform, "bernoulli": _draw_bernoulli}


# -- row independence: split, stack, permute ----------------------------------------------


@pytest.mark.parametrize("kind", PRIMITIVES)
@pytest.mark.parametrize("row_dim", [0, 1, 3, -1, -3])
def test_draws_split_and_stack_and_follow_row_permutations(kind, row_dim):
    rows, draw, k = _rows(), PRIMITIVES[kind], 5
    probs = _probs(_shape(len(rows), row_dim), row_dim)
    whole_gen = RowGenerator(7, rows)
    head_gen, tail_gen = RowGenerator(7, rows[:k]), RowGenerator(7, rows[k:])
    perm = torch.randperm(len(rows), generator=torch.Generator().manual_seed(3))
    perm_gen = RowGenerator(7, rows[perm])
    for _ in range(2):  # the first and a later call
        whole = draw(whole_gen, len(rows), row_dim, probs)
        head = draw(head_gen, k, row_dim, probs.narrow(row_dim, 0, k))
        tail = draw(tail_gen, len(rows) - k, row_dim, probs.narrow(row_dim, k, len(rows) - k))
        assert torch.equal(torch.cat([head, tail], row_dim), whole)
        permuted = draw(perm_gen, len(rows), row_dim, probs.index_select(row_dim, perm))
        assert torch.equal(permuted, whole.index_select(row_dim, perm))


def test_categorical_splits_and_stacks_and_follows_row_permutations():
    rows = _rows()
    weights = torch.rand(len(rows), 6, generator=torch.Generator().manual_seed(2), dtype=DTYPE)
    weights[:, 2] = 0.0
    whole = categorical(weights, 9, RowGenerator(1, rows))
    halves = (slice(4), slice(4, None))
    parts = [categorical(weights[s], 9, RowGenerator(1, rows[s])) for s in halves]
    assert torch.equal(torch.cat(parts), whole)
    perm = torch.arange(len(rows)).flip(0)
    assert torch.equal(categorical(weights[perm], 9, RowGenerator(1, rows[perm])), whole[perm])
    assert whole.dtype == torch.long and whole.shape == (len(rows), 9)
    assert not (whole == 2).any()  # zero weight: never drawn


def test_a_row_draws_the_same_in_any_batch():
    rows = _rows(30)
    alone = _z(RowGenerator(5, rows[17:18]), (4, 1, 3), 1)
    batch = _z(RowGenerator(5, rows), (4, 30, 3), 1)
    assert torch.equal(batch[:, 17:18], alone)


# -- keys: equal rows, seeds, calls -------------------------------------------------------


def _from_bits(*patterns: int) -> torch.Tensor:
    """float64 values with the given 64-bit patterns (NaN payloads and signs kept)."""
    signed = [(p ^ 2**63) - 2**63 for p in patterns]
    return torch.tensor(signed, dtype=torch.int64).view(DTYPE)


def test_equal_rows_get_equal_draws():
    one_and_a_half = 0x3FF8000000000000
    rows = torch.stack(
        [
            _from_bits(one_and_a_half, 0x0000000000000000, 0x7FF8000000000000),  # 1.5, 0, NaN
            _from_bits(one_and_a_half, 0x8000000000000000, 0xFFF8000000000001),  # -0, -NaN
            _from_bits(one_and_a_half, 0x0000000000000000, 0x7FF0000000000001),  # signalling
        ]
    )
    assert rows[:, 2].isnan().all() and rows[1, 1] == 0
    draws = _u(RowGenerator(0, rows), (3, 50))
    assert torch.equal(draws[0], draws[1]) and torch.equal(draws[0], draws[2])
    # float32 input: the same keys as its exact float64 values.
    x32 = _rows().float()
    u32 = _u(RowGenerator(0, x32), (12, 8))
    u64 = _u(RowGenerator(0, x32.double()), (12, 8))
    assert torch.equal(u32, u64)


def test_rows_that_differ_anywhere_get_different_draws():
    base = torch.tensor([0.25, NAN, -3.0], dtype=DTYPE)
    variants = [
        base,
        torch.tensor([0.25, 0.0, -3.0], dtype=DTYPE),  # observed instead of missing
        torch.tensor([0.25, NAN, NAN], dtype=DTYPE),  # missing instead of observed
        torch.tensor([math.nextafter(0.25, 1.0), NAN, -3.0], dtype=DTYPE),  # one ulp
        torch.tensor([-3.0, NAN, 0.25], dtype=DTYPE),  # same values, other columns
    ]
    draws = _u(RowGenerator(0, torch.stack(variants)), (5, 20))
    for i in range(5):
        for j in range(i):
            assert not torch.isclose(draws[i], draws[j]).any()


def test_seeds_and_successive_calls_give_fresh_numbers():
    rows = _rows()
    gen = RowGenerator(0, rows)
    first = _u(gen, (12, 30))
    second = _u(gen, (12, 30))
    other_seed = _u(RowGenerator(1, rows), (12, 30))
    same_seed = _u(RowGenerator(2**64, rows), (12, 30))
    assert not torch.isclose(first, second).any()
    assert not torch.isclose(first, other_seed).any()
    assert torch.equal(first, same_seed)  # seeds are taken modulo 2**64
    # Within a row and call, the 32-bit values are distinct (a permutation of the index).
    bits = RowGenerator(0, rows)._bits((12, 4096), 0, None)
    assert all(len(torch.unique(row)) == 4096 for row in bits)


def test_the_row_count_must_match_the_generator():
    gen = RowGenerator(0, _rows())
    with pytest.raises(ValueError, match="12 rows"):
        _z(gen, (12, 5), 1)
    with pytest.raises(ValueError, match="out of range"):
        _u(gen, (12,), 1)
    with pytest.raises(ValueError, match="B, D"):
        RowGenerator(0, torch.zeros(3))


def test_uniforms_stay_inside_the_open_unit_interval_in_every_dtype():
    gen = RowGenerator(0, _rows())
    for dtype in (torch.float64, torch.float32, torch.float16, torch.bfloat16):
        u = _u(gen, (12, 4000), dtype=dtype)
        assert u.dtype == dtype and (u > 0).all() and (u < 1).all()
    # The extreme values (h + 1/2) / 2**32, h = 0 and 2**32 - 1, would round to 0 or 1.
    extremes = (torch.tensor([0, 2**32 - 1], dtype=DTYPE) + 0.5) * 2.0**-32
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        u = _to_open_unit(extremes, dtype)
        assert (u > 0).all() and (u < 1).all()


def test_spawn_gives_an_independent_child_and_leaves_the_parent_unaffected():
    rows = _rows()
    used, unused = RowGenerator(3, rows), RowGenerator(3, rows)
    child = used.spawn()
    unused.spawn()
    child_draws = _u(child, (12, 40))
    _u(child, (12, 7))
    parent_draws = _u(used, (12, 40))
    assert torch.equal(parent_draws, _u(unused, (12, 40)))
    assert not torch.isclose(child_draws, parent_draws).any()
    # spawn counts as a call: the parent moves on.
    fresh = RowGenerator(3, rows)
    first_call = _u(fresh, (12, 40))
    assert not torch.isclose(first_call, parent_draws).any()
    # Spawning commutes with selecting rows.
    mask = torch.arange(12) % 3 == 0
    a = RowGenerator(3, rows).spawn().subset(mask)
    b = RowGenerator(3, rows).subset(mask).spawn()
    assert torch.equal(_u(a, (4, 9)), _u(b, (4, 9)))


def test_subset_continues_the_selected_rows_streams():
    rows = _rows()
    full, sub_source = RowGenerator(4, rows), RowGenerator(4, rows)
    _u(full, (12, 3))
    _u(sub_source, (12, 3))
    index = torch.tensor([7, 2, 2])
    sub = sub_source.subset(index)
    assert len(sub) == 3 and len(sub_source) == 12 and sub.device == torch.device("cpu")
    expected = _u(full, (12, 6))[index]
    assert torch.equal(_u(sub, (3, 6)), expected)


def test_torch_generators_get_exactly_torchs_own_draws():
    def pair():
        return torch.Generator().manual_seed(11), torch.Generator().manual_seed(11)

    a, b = pair()
    assert torch.equal(_z(a, (4, 3)), torch.randn((4, 3), generator=b, dtype=DTYPE))
    assert torch.equal(_u(a, (4, 3)), torch.rand((4, 3), generator=b, dtype=DTYPE))
    p = torch.full((4, 3), 0.4)
    assert torch.equal(bernoulli(p, a, row_dim=0), torch.bernoulli(p, generator=b))
    assert torch.equal(categorical(p, 5, a), torch.multinomial(p, 5, replacement=True, generator=b))


# -- statistics -------------------------------------------------------------------------------


def _integer_rows(n):
    """Rows 0, 1, ..., n-1: the most similar keys there are."""
    return torch.arange(n, dtype=DTYPE).unsqueeze(1)


def test_uniforms_are_uniform_within_and_across_rows():
    gen = RowGenerator(0, _integer_rows(2000))
    u = _u(gen, (2000, 100))
    assert stats.kstest(u.flatten().numpy(), "uniform").pvalue > 1e-3
    # One element of every row: the keys themselves must look uniform.
    assert stats.kstest(u[:, 0].numpy(), "uniform").pvalue > 1e-3
    # 256 equal-width bins of all values: chi-square.
    counts = torch.bincount((u.flatten() * 256).long(), minlength=256).numpy()
    assert stats.chisquare(counts).pvalue > 1e-3


def test_normals_are_standard_normal():
    gen = RowGenerator(1, _integer_rows(1000))
    z = _z(gen, (50, 1000, 4), 1).flatten()
    n = len(z)
    assert abs(z.mean()) < 4 / math.sqrt(n)
    assert abs(z.var() - 1) < 4 * math.sqrt(2 / n)
    assert stats.kstest(z.numpy(), "norm").pvalue > 1e-3
    z32 = _z(gen, (1000, 2), dtype=torch.float32)
    assert z32.dtype == torch.float32 and z32.isfinite().all()


def _assert_uncorrelated(a, b):
    """Rows of ``a`` and ``b`` ``[P, n]`` pairwise uncorrelated: the mean correlation and the
    mean of ``n r**2`` (about chi-square(1)) within 4 standard errors of 0 and 1."""
    n_pairs, n = a.shape
    a = (a - a.mean(1, keepdim=True)) / a.std(1, keepdim=True)
    b = (b - b.mean(1, keepdim=True)) / b.std(1, keepdim=True)
    r = (a * b).sum(1) / (n - 1)  # [P]
    assert abs(r.mean()) < 4 / math.sqrt(n * n_pairs), r.mean()
    assert abs((n * r**2).mean() - 1) < 4 * math.sqrt(2 / n_pairs), (n * r**2).mean()


@pytest.mark.parametrize("rows", ["consecutive", "one_value", "one_ulp", "missing_pattern"])
def test_draws_of_similar_rows_are_uncorrelated(rows):
    n_rows, base = 1001, torch.tensor([0.5, -1.25, 3.0], dtype=DTYPE)
    x = base.repeat(n_rows, 1)
    if rows == "consecutive":
        x = _integer_rows(n_rows)
    elif rows == "one_value":
        x[:, 1] += 1e-3 * torch.arange(n_rows)
    elif rows == "one_ulp":
        for i in range(1, n_rows):
            x[i, 2] = math.nextafter(x[i - 1, 2].item(), math.inf)
    else:  # the same values with 1001 of the 1024 missing patterns
        patterns = (torch.arange(n_rows).unsqueeze(1) >> torch.arange(10)) & 1 == 1  # [n, 10]
        x = torch.where(patterns, NAN, torch.linspace(0, 1, 10, dtype=DTYPE))
    z = _z(RowGenerator(0, x), (n_rows, 400))
    _assert_uncorrelated(z[:-1], z[1:])  # neighbours
    _assert_uncorrelated(z[:-2:2], z[1:-1:2].flip(0))  # arbitrary pairs


def test_streams_are_uncorrelated_along_elements_and_calls():
    gen = RowGenerator(0, _integer_rows(500))
    first = _u(gen, (500, 400))
    second = _u(gen, (500, 400))
    _assert_uncorrelated(first, second)  # the same elements in successive calls
    _assert_uncorrelated(first[:, :-1], first[:, 1:])  # neighbouring elements (lag 1)
    spawned = _u(gen.spawn(), (500, 400))
    _assert_uncorrelated(first, spawned)


def test_categorical_frequencies_match_the_weights():
    weights = torch.tensor([1.0, 2.0, 0.0, 3.0, 4.0], dtype=DTYPE) * 7.5  # not normalised
    n_rows, n_draws = 4000, 25
    gen = RowGenerator(0, _integer_rows(n_rows))
    k = categorical(weights.expand(n_rows, 5), n_draws, gen)
    counts = torch.bincount(k.flatten(), minlength=5)
    assert counts[2] == 0
    expected = weights / weights.sum() * k.numel()
    keep = expected > 0
    assert stats.chisquare(counts[keep].numpy(), expected[keep].numpy()).pvalue > 1e-3
    # float32 weights and a single category work too.
    one = categorical(torch.ones(n_rows, 1), 3, gen)
    assert (one == 0).all()


def test_bernoulli_frequencies_match_the_probabilities():
    probs = torch.tensor([0.0, 0.01, 0.3, 0.5, 0.97, 1.0], dtype=torch.float32)
    n_rows = 20_000
    gen = RowGenerator(0, _integer_rows(n_rows))
    draws = bernoulli(probs.expand(n_rows, 6), gen, row_dim=0)
    assert draws.dtype == torch.float32 and set(draws.unique().tolist()) <= {0.0, 1.0}
    freq = draws.double().mean(0)
    se = (probs.double() * (1 - probs.double()) / n_rows).sqrt()
    assert ((freq - probs.double()).abs() <= 4 * se + 1e-12).all()


# -- families and likelihoods -----------------------------------------------------------------


def _split_check(fn, rows, dim, k=5):
    """``fn(rows, row_slice) -> Tensor`` with rows along ``dim``: the whole batch equals its
    two parts drawn apart and concatenated, bit for bit."""
    whole = fn(rows, slice(None))
    parts = torch.cat([fn(rows[:k], slice(0, k)), fn(rows[k:], slice(k, None))], dim)
    assert torch.equal(parts, whole)


def test_families_draw_rows_independently():
    rows = _rows()
    g = torch.Generator().manual_seed(0)
    loc = torch.randn(12, 3, 2, generator=g, dtype=DTYPE)
    scale = 0.5 + torch.rand(12, 3, 2, generator=g, dtype=DTYPE)
    logits = torch.randn(12, 3, generator=g, dtype=DTYPE)

    def diag(r, s):
        return DiagNormal(loc[s, 0], scale[s, 0]).rsample((4, 2), RowGenerator(0, r))  # [4,2,B,d]

    def diag_batch_first(r, s):
        return DiagNormal(loc[s], scale[s]).sample((), RowGenerator(0, r))  # [B, K, d]

    def ancestral(r, s):
        return NormalMixture(logits[s], loc[s], scale[s]).sample((6,), RowGenerator(0, r))

    def stratified(r, s):
        mixture = NormalMixture(logits[s], loc[s], scale[s])
        return mixture.rsample_stratified((2,), RowGenerator(0, r))  # [I, K, B, d]

    _split_check(diag, rows, 2)
    _split_check(diag_batch_first, rows, 0)
    _split_check(ancestral, rows, 1)  # [6, B, d]
    _split_check(stratified, rows, 2)


LIKELIHOODS = {
    "gaussian": (GaussianLikelihood(), 2),
    "zero_inflated": (ZeroInflatedGaussianLikelihood(), 3),
    "bernoulli": (BernoulliLikelihood(), 1),
    "categorical": (CategoricalLikelihood(), 1),
    "mixed": (
        MixedLikelihood(
            [("gaussian", 1), ("zero_inflated", 1), ("bernoulli", 1), ("categorical", 3)]
        ),
        None,
    ),
}


@pytest.mark.parametrize("name", LIKELIHOODS)
@pytest.mark.parametrize("row_dim", [-2, 0])
def test_likelihood_draws_are_row_independent(name, row_dim):
    likelihood, n_params = LIKELIHOODS[name]
    n_outputs = likelihood.output_size(6) if n_params is None else n_params * 6
    g = torch.Generator().manual_seed(0)
    h = torch.randn(12, 4, n_outputs, generator=g, dtype=DTYPE)  # [B, K, n_outputs]
    if row_dim == -2:
        h = h.transpose(0, 1)  # [K, B, n_outputs]

    def draw(r, s):
        h_rows = h[:, s] if row_dim == -2 else h[s]
        return likelihood.sample(h_rows, RowGenerator(0, r), row_dim=row_dim)

    _split_check(draw, _rows(), row_dim)


# -- samplers end to end ---------------------------------------------------------------------


def _problem_rows(problem, n_copies=3):
    """The linear-Gaussian rows repeated (all distinct by noise), with NaN at missing."""
    g = torch.Generator().manual_seed(5)
    noise = torch.randn(8 * n_copies, problem.n_features, generator=g, dtype=DTYPE)
    x = problem.x.repeat(n_copies, 1) + 0.1 * noise
    observed = problem.observed.repeat(n_copies, 1)
    x_filled = torch.where(observed, x, torch.zeros_like(x))
    x_nan = torch.where(observed, x, torch.full_like(x, NAN))
    return x_filled, observed, x_nan


@pytest.mark.parametrize("n_components", [1, 2])
def test_importance_sampling_is_row_independent(linear_gaussian, n_components):
    model = linear_gaussian.model(n_components=n_components)
    x_filled, observed, x_nan = _problem_rows(linear_gaussian)
    k = 10

    def run(fn):
        def one(s):
            q = model.encode(x_filled[s], observed[s])
            return fn(x_filled[s], observed[s], q, RowGenerator(42, x_nan[s]))

        return one(slice(None)), one(slice(0, k)), one(slice(k, None))

    def check(outputs, dim):
        whole, head, tail = outputs
        torch.testing.assert_close(torch.cat([head, tail], dim), whole, rtol=1.3e-6, atol=1e-5)

    check(run(lambda x, o, q, g: importance_resample(model, x, o, q, 30, 5, g)), 1)  # [M, B, D]
    check(run(lambda x, o, q, g: importance_conditional_mean(model, x, o, q, 30, g)), 0)
    check(run(lambda x, o, q, g: importance_log_likelihood(model, x, o, q, 50, g, 16)), 0)


def test_demissvae_samplers_are_row_independent(linear_gaussian):
    model = linear_gaussian.model()
    x_filled, observed, x_nan = _problem_rows(linear_gaussian)
    pool, counts = column_pools(x_filled, observed)
    k = 7
    groups = torch.tensor([0, 1, 1, 2, 3])

    def start(s, gen):
        return empirical_imputations(x_filled[s], observed[s], pool, counts, 4, gen, groups)

    def check(fn, exact=False):
        outs = [fn(s, RowGenerator(9, x_nan[s])) for s in (slice(None), slice(k), slice(k, None))]
        parts = torch.cat(outs[1:], 0)
        if exact:
            assert torch.equal(parts, outs[0])
        else:
            torch.testing.assert_close(parts, outs[0], rtol=1.3e-6, atol=1e-5)
        return outs[0]

    check(start, exact=True)  # [B, K, D]

    def ungrouped(s, gen):
        return empirical_imputations(x_filled[s], observed[s], pool, counts, 3, gen)

    check(ungrouped, exact=True)
    check(lambda s, gen: pseudo_gibbs(model, start(s, gen), observed[s], 2, gen))
    check(lambda s, gen: lair(model, start(s, gen), observed[s], 3, 2, 1, True, gen))
    check(lambda s, gen: lair(model, start(s, gen), observed[s], 2, 1, 1, False, gen))


def test_dropout_refuses_row_generators_in_training_mode():
    g = torch.Generator().manual_seed(0)
    net = ResidualMLP(3, 2, width=4, n_blocks=1, dropout=0.5, generator=g)
    x = torch.randn(5, 3)
    with pytest.raises(TypeError, match="eval"):
        net(x, RowGenerator(0, x))
    net.eval()
    assert net(x, RowGenerator(0, x)).shape == (5, 2)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_draws_equal_cpu_draws():
    rows = _rows()
    cpu, gpu = RowGenerator(0, rows), RowGenerator(0, rows.cuda())
    assert gpu.device.type == "cuda"
    u_cpu = _u(cpu, (12, 3, 5))
    u_gpu = _u(gpu, (12, 3, 5))
    assert u_gpu.device.type == "cuda" and torch.equal(u_gpu.cpu(), u_cpu)
    z_cpu = _z(cpu, (2, 12), 1)
    z_gpu = _z(gpu, (2, 12), 1)
    torch.testing.assert_close(z_gpu.cpu(), z_cpu, rtol=1e-12, atol=1e-12)
    w = torch.rand(12, 4, dtype=DTYPE)
    assert torch.equal(categorical(w.cuda(), 6, gpu).cpu(), categorical(w, 6, cpu))
