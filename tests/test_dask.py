"""skmissvae.dask: column statistics, imputation and scoring of Dask collections, and
training on a Dask cluster, checked against the in-memory methods on the whole table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal

dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

import dask  # noqa: E402
import dask.array as da  # noqa: E402
from dask.utils import key_split  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402

import skmissvae  # noqa: E402
from _helpers import FAST_PARAMS, correlated_table  # noqa: E402
from skmissvae import MixtureVAEImputer  # noqa: E402
from skmissvae import dask as skdask  # noqa: E402
from skmissvae.datasets import make_mcar, make_mixture_of_gaussians  # noqa: E402

pytestmark = [
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
    # The scheduler's HTTP server moves off port 8787 when another cluster holds it.
    pytest.mark.filterwarnings("ignore:Port 8787 is already in use:UserWarning"),
    pytest.mark.timeout(300),  # a training task that fails leaves the others waiting
]

# Settings of the comparison of a fit on the cluster with a fit in one process.
CLUSTER_FIT_PARAMS = dict(latent_dim=2, hidden_width=32, n_hidden_blocks=1, batch_size=64, max_iter=20,
                          learning_rate=3e-3, early_stopping=False, n_impute_samples=50, n_score_samples=100,
                          device="cpu", random_state=0)


@pytest.fixture(scope="module")
def client():
    """Two single-threaded worker processes (training needs one process per rank)."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        client.run(torch.set_num_threads, 1)  # the models are tiny; the machine is shared
        yield client


def numeric_frame(n_samples=400) -> pd.DataFrame:
    return pd.DataFrame(correlated_table(n_samples)[1], columns=["a", "b", "c", "d"])


def mixed_frame(n_samples=400, seed=0) -> pd.DataFrame:
    """Continuous, categorical, binary and string columns. The strings of the first 100
    rows are all missing: a partition of them does not show that the column is categorical."""
    rng = np.random.RandomState(seed)
    frame = pd.DataFrame({
        "x": rng.standard_normal(n_samples) * 100 + 1e6,
        "y": rng.standard_normal(n_samples),
        "kind": pd.Categorical(rng.choice(["u", "v", "w"], n_samples)),
        "flag": rng.rand(n_samples) < 0.4,
        "label": rng.choice(["p", "q"], n_samples).astype(object),
    })
    frame.loc[rng.rand(n_samples) < 0.3, "x"] = np.nan
    frame["kind"] = frame["kind"].where(rng.rand(n_samples) > 0.2)
    frame.loc[:99, "label"] = None
    return frame


@pytest.fixture(scope="module", params=["numeric", "mixed"])
def fitted(request):
    """``(imputer fitted on the frame, frame)`` for a numeric and a mixed table."""
    frame = numeric_frame() if request.param == "numeric" else mixed_frame()
    return MixtureVAEImputer(**FAST_PARAMS, random_state=0).fit(frame), frame


def assert_frames_equal(result: pd.DataFrame, expected: pd.DataFrame) -> None:
    pd.testing.assert_index_equal(result.columns, expected.columns)
    pd.testing.assert_index_equal(result.index, expected.index)
    for got, want in zip(result.dtypes, expected.dtypes):
        # Under pandas < 3 Dask stores text columns as string[pyarrow] where pandas has object.
        text = pd.api.types.is_string_dtype(got) and pd.api.types.is_string_dtype(want)
        assert got == want or text, (got, want)
    for name in expected.columns:
        if pd.api.types.is_float_dtype(expected[name].dtype):
            assert_allclose(result[name].to_numpy(), expected[name].to_numpy(), rtol=1e-6)
        else:
            assert result[name].tolist() == expected[name].tolist()


def keys_named(collection, name: str) -> set:
    return {key for key in dict(collection.__dask_graph__()) if key_split(key) == name}


# -- column statistics ----------------------------------------------------------------------
@pytest.mark.parametrize("make_frame", [numeric_frame, mixed_frame], ids=["numeric", "mixed"])
def test_column_statistics_equal_those_of_the_whole_table(client, make_frame):
    frame = make_frame()
    # Rows 250 on: the last partition is empty and the one before partly filled.
    ddf = dd.from_pandas(frame, npartitions=4)
    ddf, frame = ddf[ddf.index.to_series() < 250], frame.iloc[:250]
    expected = skmissvae.column_statistics(frame)
    for result in (skdask.column_statistics(ddf), skmissvae.column_statistics(ddf)):
        assert result.kinds == expected.kinds and result.labels == expected.labels
        assert_array_equal(result.count, expected.count)
        assert_allclose(result.mean, expected.mean, rtol=1e-12, atol=1e-12)
        assert_allclose(result.std, expected.std, rtol=1e-10, atol=1e-12)
        assert result.categories == expected.categories


def test_column_statistics_of_an_array_and_of_no_rows(client):
    X = correlated_table(300)[1]
    result = skdask.column_statistics(da.from_array(X, chunks=(70, 2)))  # columns in two blocks
    expected = skmissvae.column_statistics(X)
    assert_array_equal(result.count, expected.count)
    assert_allclose(result.mean, expected.mean, rtol=1e-12)
    assert_allclose(result.std, expected.std, rtol=1e-10)
    ddf = dd.from_pandas(numeric_frame(), npartitions=2)
    assert_array_equal(skdask.column_statistics(ddf[ddf["a"] > 1e9]).count, [0, 0, 0, 0])


def test_statistics_make_a_fit_standardise_as_on_the_whole_table(client):
    frame = mixed_frame().drop(columns="label")
    whole = MixtureVAEImputer(**FAST_PARAMS, random_state=0).fit(frame)
    statistics = skdask.column_statistics(dd.from_pandas(frame, npartitions=3))
    part = MixtureVAEImputer(**FAST_PARAMS, random_state=0, column_statistics=statistics).fit(frame.iloc[:80])
    assert_allclose(part.mean_, whole.mean_, rtol=1e-12)
    assert_allclose(part.scale_, whole.scale_, rtol=1e-12)


# -- imputation and scoring -------------------------------------------------------------------
def test_transform_and_score_samples_equal_the_in_memory_results(client, fitted):
    imputer, frame = fitted
    ddf = dd.from_pandas(frame, npartitions=3)
    imputed = skdask.transform(imputer, ddf)
    assert list(imputed.columns) == list(imputer.get_feature_names_out())
    result = imputed.compute()
    expected = imputer.transform(frame)
    assert_frames_equal(result, expected)
    assert list(imputed.dtypes) == list(expected.dtypes)  # the meta told the truth
    assert len(keys_named(imputed, type(imputer).__name__)) == 1  # the estimator enters once

    scores = skdask.score_samples(imputer, ddf)
    assert scores.dtype == np.float64
    computed = scores.compute()
    pd.testing.assert_index_equal(computed.index, frame.index)
    assert_allclose(computed.to_numpy(), imputer.score_samples(frame), rtol=1e-6)


def test_copies_equal_the_in_memory_draws_and_share_one_task_per_partition(client, fitted):
    imputer, frame = fitted
    ddf = dd.from_pandas(frame, npartitions=3)
    copies = skdask.sample_imputations(imputer, ddf, n_imputations=3)
    assert len(copies) == 3
    tasks = [keys_named(copy_, "sample_partition") for copy_ in copies]
    assert len(tasks[0]) == ddf.npartitions and all(keys == tasks[0] for keys in tasks)
    expected = imputer.sample_imputations(frame, n_imputations=3)
    for result, copy_ in zip(dask.compute(*copies), expected):
        if isinstance(copy_, np.ndarray):  # a numeric table's copies are one float array
            copy_ = pd.DataFrame(copy_, index=frame.index, columns=imputer.get_feature_names_out())
        assert_frames_equal(result, copy_)


def test_parallel_post_fit_transforms_as_in_memory(client, fitted):
    wrappers = pytest.importorskip("dask_ml.wrappers")
    imputer, frame = fitted
    # Dask would infer the output by transforming placeholder strings, which are not
    # categories the imputer knows: a table with string columns needs the meta given.
    numeric = all(pd.api.types.is_float_dtype(dtype) for dtype in frame.dtypes)
    meta = None if numeric else imputer.transform(frame.iloc[:1]).iloc[:0]
    wrapper = wrappers.ParallelPostFit(estimator=imputer, transform_meta=meta)
    result = wrapper.transform(dd.from_pandas(frame, npartitions=3))
    assert_frames_equal(result.compute(), imputer.transform(frame))


def test_incremental_trains_partition_by_partition_and_the_score_improves(client):
    wrappers = pytest.importorskip("dask_ml.wrappers")
    frame = numeric_frame(2_000)
    held_out = pd.DataFrame(correlated_table(500, seed=1)[1], columns=frame.columns)
    stream = dd.from_pandas(frame, npartitions=4)
    imputer = MixtureVAEImputer(**dict(FAST_PARAMS, hidden_width=16, learning_rate=3e-3),
                                column_statistics=skdask.column_statistics(stream), random_state=0)
    untrained = clone(imputer).partial_fit(frame.iloc[:16])  # one step: barely trained
    model = wrappers.Incremental(imputer)
    for _ in range(3):
        model.partial_fit(stream)
    assert model.estimator_.n_iter_ == 12  # one partial_fit per partition and pass
    assert model.estimator_.score(held_out) > untrained.score(held_out) + 0.3


def test_arrays_give_the_in_memory_results(client):
    X = correlated_table(300)[1]
    imputer = MixtureVAEImputer(**FAST_PARAMS, random_state=0).fit(X)
    dX = da.from_array(X, chunks=(70, 2))
    assert_allclose(skdask.transform(imputer, dX).compute(), imputer.transform(X), rtol=1e-6)
    assert_allclose(skdask.score_samples(imputer, dX).compute(), imputer.score_samples(X), rtol=1e-6)
    draws = skdask.sample_imputations(imputer, dX, n_imputations=2)
    assert draws.shape == (2, *X.shape)
    assert_allclose(draws.compute(), imputer.sample_imputations(X, n_imputations=2), rtol=1e-6)


# -- training on the cluster -------------------------------------------------------------------
def training_table():
    X, _ = make_mixture_of_gaussians(n_samples=1200, n_features=4, n_components=3, random_state=0)
    X_missing, _ = make_mcar(X, 0.3, drop_empty_rows=True, random_state=1)
    frame = pd.DataFrame(X_missing, columns=["a", "b", "c", "d"])
    return frame.iloc[:800], frame.iloc[800:]


def on_workers(client, frame: pd.DataFrame, n_partitions: int):
    """``frame`` as a Dask DataFrame whose partitions lie on the workers in turn."""
    workers = sorted(client.scheduler_info()["workers"])
    chunks = [frame.iloc[rows] for rows in np.array_split(np.arange(len(frame)), n_partitions)]
    # Each partition is computed on its worker only (the scheduler would otherwise be free
    # to move such small partitions to an idle worker).
    return dd.concat([client.persist(dd.from_pandas(chunk, npartitions=1), workers=[workers[i % len(workers)]],
                                     allow_other_workers=False) for i, chunk in enumerate(chunks)])


@pytest.fixture(scope="module")
def cluster_fit(client):
    """The results of every rank of a fit on two workers, and the train and test tables."""
    train, test = training_table()
    ranks = skdask._fit_on_workers(MixtureVAEImputer(**CLUSTER_FIT_PARAMS), on_workers(client, train, 4), client)
    return ranks, train, test


def test_a_fit_on_the_cluster_gives_an_ordinary_fitted_estimator(cluster_fit):
    ranks, train, test = cluster_fit
    assert [rank.rank for rank in ranks] == [0, 1]
    assert len({rank.worker for rank in ranks}) == 2  # one task per worker holding rows
    assert [rank.n_rows for rank in ranks] == [len(train) // 2] * 2  # the partitions stayed put
    fitted = ranks[0].estimator
    assert isinstance(fitted, MixtureVAEImputer) and ranks[1].estimator is None
    assert fitted.get_params() == MixtureVAEImputer(**CLUSTER_FIT_PARAMS).get_params()
    imputed = fitted.transform(test)
    assert imputed.shape == test.shape and not imputed.isna().any().any()


def test_a_fit_on_the_cluster_scores_as_a_fit_in_one_process(cluster_fit):
    ranks, train, test = cluster_fit
    # Each step of the cluster averages the gradients of batch_size rows per rank: one
    # process takes as many steps of as many rows with batch_size times the ranks.
    params = {**CLUSTER_FIT_PARAMS, "batch_size": CLUSTER_FIT_PARAMS["batch_size"] * len(ranks)}
    alone = MixtureVAEImputer(**params).fit(train)
    assert abs(ranks[0].estimator.score(test) - alone.score(test)) < 0.3


def test_ranks_end_with_identical_weights(cluster_fit):
    # Data-parallel training inside a process group: every rank ends with rank 0's weights.
    ranks, _, _ = cluster_fit
    assert ranks[0].weights_digest == ranks[1].weights_digest


def test_only_workers_holding_rows_train(client):
    frame = numeric_frame(200)
    ranks = skdask._fit_on_workers(MixtureVAEImputer(**FAST_PARAMS, random_state=0),
                                   dd.from_pandas(frame, npartitions=1), client)
    assert len(ranks) == 1  # one worker holds the only partition: no process group
    with client.as_current():  # fit's default: the current client
        fitted = skdask.fit(MixtureVAEImputer(**FAST_PARAMS, random_state=0), dd.from_pandas(frame, npartitions=1))
    assert fitted.random_state == 0 and fitted.transform(frame).shape == frame.shape


def test_an_array_trains_on_the_cluster(client):
    X = correlated_table(200)[1]
    fitted = skdask.fit(MixtureVAEImputer(**FAST_PARAMS, random_state=0), da.from_array(X, chunks=(100, 2)),
                        client=client)
    assert fitted.transform(X).shape == X.shape


def test_workers_sharing_a_process_are_refused():
    frame = numeric_frame(200)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None,
                                  worker_dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        with pytest.raises(ValueError, match="share a process"):
            skdask.fit(MixtureVAEImputer(**FAST_PARAMS), on_workers(client, frame, 2), client=client)


# -- errors -------------------------------------------------------------------------------------
@pytest.mark.parametrize("function", [skdask.transform, skdask.score_samples, skdask.sample_imputations])
def test_an_unfitted_estimator_is_refused(function):
    with pytest.raises(NotFittedError):
        function(MixtureVAEImputer(), dd.from_pandas(numeric_frame(), npartitions=2))


@pytest.mark.parametrize("function", [skdask.transform, skdask.score_samples, skdask.sample_imputations])
def test_in_memory_tables_are_refused(function):
    X = correlated_table()[1]
    imputer = MixtureVAEImputer(**FAST_PARAMS).fit(X)
    with pytest.raises(TypeError, match="Dask DataFrame or a 2-D Dask Array"):
        function(imputer, X)
    with pytest.raises(TypeError, match="1 dimension"):
        function(imputer, da.from_array(X[:, 0]))


def test_column_statistics_and_fit_refuse_in_memory_tables():
    frame = numeric_frame()
    with pytest.raises(TypeError, match="got DataFrame"):
        skdask.column_statistics(frame)
    with pytest.raises(TypeError, match="got DataFrame"):
        skdask.fit(MixtureVAEImputer(), frame)


def test_partitions_that_type_a_column_differently_are_refused():
    # Booleans in one partition and strings in the other; kept as objects, not converted.
    frame = pd.DataFrame({"x": np.arange(4.0), "answer": pd.Series([True, False, "yes", "no"], dtype=object)})
    with dask.config.set({"dataframe.convert-string": False}):
        ddf = dd.from_pandas(frame, npartitions=2)
    with pytest.raises(ValueError, match="Declare the types of object and string columns"):
        skdask.column_statistics(ddf)
    declared = skdask.column_statistics(ddf, {"answer": "categorical"})
    assert declared.categories == skmissvae.column_statistics(frame, {"answer": "categorical"}).categories
