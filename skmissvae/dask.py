"""Dask integration: statistics, parallel imputation and scoring, and training on a Dask cluster.

Install it with ``pip install "skmissvae[dask]"``.

- :func:`column_statistics` computes the mergeable statistics of a Dask DataFrame (or a
  2-D Dask Array) in one pass: one ``skmissvae.column_statistics`` per partition, merged
  with ``+`` in a tree. An imputer given them (``column_statistics=``) standardises as if
  fitted on the whole table.
- :func:`transform`, :func:`sample_imputations` and :func:`score_samples` apply a fitted
  imputer partition by partition. The estimator enters the task graph once, however many
  partitions there are. The imputers' Monte Carlo is keyed per row (a row's draws depend
  only on the row, the model and ``random_state``), so the results equal those of the
  in-memory methods on the whole table.
- :func:`fit` trains on a ``distributed`` cluster: one task per worker that holds data,
  on the partitions already in that worker's memory, joined in a ``torch.distributed``
  process group, and returns an ordinary fitted estimator.
"""

from __future__ import annotations

import hashlib
import os
import socket
from contextlib import contextmanager
from dataclasses import dataclass
from typing import NamedTuple
from urllib.parse import urlparse

import numpy as np
import pandas as pd

try:
    import dask
    import dask.array as da
    import dask.dataframe as dd
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        'skmissvae.dask needs dask with its DataFrame support: pip install "skmissvae[dask]"'
    ) from error

from sklearn.base import clone
from sklearn.utils.validation import check_is_fitted

from ._table import ColumnStatistics
from ._table import column_statistics as _in_memory_column_statistics

__all__ = ["column_statistics", "fit", "sample_imputations", "score_samples", "transform"]


# -- input --------------------------------------------------------------------------------
def _check_collection(X):
    """``X`` as a Dask DataFrame or a 2-D Dask Array whose blocks hold whole rows."""
    if isinstance(X, dd.DataFrame):
        return X
    if isinstance(X, da.Array) and X.ndim == 2:
        return X.rechunk({1: -1})  # a block must hold every column of its rows
    described = f"a Dask Array of {X.ndim} dimension(s)" if isinstance(X, da.Array) else type(X).__name__
    raise TypeError(
        f"X must be a Dask DataFrame or a 2-D Dask Array, got {described}; "
        "use the estimator's own methods for in-memory tables."
    )


def _partitions(X) -> list:
    """The partitions (DataFrames) or row blocks (arrays) of ``X`` as Delayed objects."""
    parts = X.to_delayed()
    return list(parts.ravel()) if isinstance(parts, np.ndarray) else list(parts)


# -- column statistics -------------------------------------------------------------------
def column_statistics(X, column_types=None) -> ColumnStatistics:
    """Mergeable per-column statistics of a Dask DataFrame or 2-D Dask Array, in one pass.

    Every partition's ``skmissvae.column_statistics`` is computed where the partition is,
    and they are merged with ``+`` in a tree; one Dask computation reads the data once.

    Parameters
    ----------
    X : dask.dataframe.DataFrame or dask.array.Array of shape (n_samples, n_features)
        Missing entries are NaN (None or ``pd.NA`` in a DataFrame).
    column_types : dict or None, default=None
        As the estimators' ``column_types``: the types that are not inferred. Columns of
        object or string dtype are typed from their values; declaring them makes the
        partitions agree even where their values would suggest different types.

    Returns
    -------
    statistics : ColumnStatistics
        Equal (to floating-point round-off) to ``skmissvae.column_statistics`` of the
        whole table in memory. Pass them to an imputer's ``column_statistics``.

    Raises
    ------
    TypeError
        If ``X`` is not a Dask DataFrame or a 2-D Dask Array.
    ValueError
        If the values of an object or string column suggest different types in
        different partitions (declare its type in ``column_types``).
    """
    X = _check_collection(X)
    per_partition = [dask.delayed(_partition_statistics, pure=True)(part, column_types)
                     for part in _partitions(X)]
    (merged,) = dask.compute(_tree_merge(per_partition))
    if merged is None:  # no rows at all: the statistics of the empty table
        return _in_memory_column_statistics(_empty_table(X), column_types)
    return merged


def _partition_statistics(part, column_types) -> ColumnStatistics | None:
    """``column_statistics`` of one partition; None for a partition without rows, whose
    object columns would have no values to be typed from."""
    if len(part) == 0:
        return None
    return _in_memory_column_statistics(part, column_types)


def _tree_merge(statistics: list):
    """Delayed pairwise merges of ``statistics`` down to one (depth log2 of their number)."""
    level = statistics
    while len(level) > 1:
        pairs = [dask.delayed(_merge, pure=True)(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        level = pairs + level[len(pairs) * 2:]
    return level[0] if level else dask.delayed(None)


def _merge(a: ColumnStatistics | None, b: ColumnStatistics | None) -> ColumnStatistics | None:
    """``a + b``, where None (an empty partition) adds nothing."""
    if a is None or b is None:
        return b if a is None else a
    a, b = _agree_on_unobserved_kinds(a, b), _agree_on_unobserved_kinds(b, a)
    try:
        return a + b
    except ValueError as error:
        raise ValueError(
            f"Partitions of X have columns of different types: {error} Declare the types of "
            "object and string columns in column_types."
        ) from None


def _agree_on_unobserved_kinds(statistics: ColumnStatistics, other: ColumnStatistics) -> ColumnStatistics:
    """``statistics`` with the type of ``other`` for columns that have no observed value
    in ``statistics``: values that are all missing say nothing about a column's type."""
    if len(statistics.kinds) != len(other.kinds):
        return statistics
    unobserved = [j for j, (mine, theirs) in enumerate(zip(statistics.kinds, other.kinds))
                  if mine != theirs and statistics.count[j] == 0]
    if not unobserved:
        return statistics
    kinds, categories = list(statistics.kinds), list(statistics.categories)
    for j in unobserved:
        kinds[j] = other.kinds[j]
        categories[j] = None if other.categories[j] is None else {}
    return ColumnStatistics(tuple(kinds), statistics.labels, statistics.count, statistics.mean,
                            statistics.std, tuple(categories))


def _empty_table(X):
    """The pandas or numpy table of ``X``'s columns and dtypes, without rows."""
    return X._meta if isinstance(X, dd.DataFrame) else np.empty((0, X.shape[1]), dtype=X.dtype)


# -- imputation and scoring ---------------------------------------------------------------
def transform(estimator, X):
    """Impute a Dask collection partition by partition with a fitted imputer.

    Parameters
    ----------
    estimator : fitted imputer
        A fitted ``MixtureVAEImputer``, ``DeMissVAEImputer`` or ``VAEEnsembleImputer``.
        It enters the task graph once, however many partitions ``X`` has.
    X : dask.dataframe.DataFrame or dask.array.Array of shape (n_samples, n_features)

    Returns
    -------
    X_imputed : dask.dataframe.DataFrame or dask.array.Array
        What ``estimator.transform`` gives for the whole table in memory: a DataFrame keeps
        the partitions, divisions and index of ``X``, with the columns of
        ``estimator.get_feature_names_out()``.

    Raises
    ------
    sklearn.exceptions.NotFittedError
        If ``estimator`` is not fitted.
    TypeError
        If ``X`` is not a Dask DataFrame or a 2-D Dask Array.
    """
    check_is_fitted(estimator)  # here, before any task runs on a worker
    X = _check_collection(X)
    model = dask.delayed(estimator, pure=True)
    empty = _empty_output(estimator.transform(_placeholder_row(X)))
    if isinstance(X, dd.DataFrame):
        return X.map_partitions(_transform_partition, model, empty, meta=empty)
    return X.map_blocks(_transform_partition, model, empty, chunks=(X.chunks[0], (empty.shape[1],)),
                        dtype=empty.dtype, meta=empty)


def score_samples(estimator, X):
    """Estimate the log-likelihood of each row of a Dask collection with a fitted imputer.

    Parameters
    ----------
    estimator : fitted imputer
        A fitted ``MixtureVAEImputer``, ``DeMissVAEImputer`` or ``VAEEnsembleImputer``.
    X : dask.dataframe.DataFrame or dask.array.Array of shape (n_samples, n_features)

    Returns
    -------
    log_likelihood : dask.dataframe.Series or dask.array.Array of shape (n_samples,)
        What ``estimator.score_samples`` gives for the whole table in memory, in nats; a
        Series has the index of ``X``. The mean of it is ``estimator.score``.

    Raises
    ------
    sklearn.exceptions.NotFittedError
        If ``estimator`` is not fitted.
    TypeError
        If ``X`` is not a Dask DataFrame or a 2-D Dask Array.
    """
    check_is_fitted(estimator)  # here, before any task runs on a worker
    X = _check_collection(X)
    model = dask.delayed(estimator, pure=True)
    empty = _empty_output(estimator.score_samples(_placeholder_row(X)))
    if isinstance(X, dd.DataFrame):
        empty = pd.Series(empty, index=X._meta.index, name="log_likelihood")
        return X.map_partitions(_score_partition, model, empty, meta=empty)
    return X.map_blocks(_score_partition, model, empty, drop_axis=1, chunks=(X.chunks[0],),
                        dtype=empty.dtype, meta=empty)


def sample_imputations(estimator, X, n_imputations=5):
    """Draw multiple imputations of a Dask collection with a fitted imputer.

    Parameters
    ----------
    estimator : fitted imputer
        A fitted ``MixtureVAEImputer``, ``DeMissVAEImputer`` or ``VAEEnsembleImputer``.
    X : dask.dataframe.DataFrame or dask.array.Array of shape (n_samples, n_features)
    n_imputations : int, default=5
        Number of completed copies to draw.

    Returns
    -------
    imputations : list of dask.dataframe.DataFrame, or dask.array.Array
        For a DataFrame, ``n_imputations`` DataFrames with the partitions, divisions and
        index of ``X`` and the columns of ``estimator.get_feature_names_out()``: the
        copies that ``estimator.sample_imputations`` draws for the whole table in memory
        (the float array of a numeric table as DataFrames). All copies of a partition come
        from one task, run once when the copies are computed together
        (``dask.compute(*imputations)``). For an array, one array of shape
        ``(n_imputations, n_samples, n_features_out)``.

    Raises
    ------
    sklearn.exceptions.NotFittedError
        If ``estimator`` is not fitted.
    TypeError
        If ``X`` is not a Dask DataFrame or a 2-D Dask Array.
    ValueError
        If ``n_imputations`` is not a positive integer.
    """
    check_is_fitted(estimator)  # here, before any task runs on a worker
    X = _check_collection(X)
    row = _placeholder_row(X)
    model = dask.delayed(estimator, pure=True)
    if isinstance(X, da.Array):
        empty = estimator.sample_imputations(row, n_imputations)[:, :0]
        return X.map_blocks(_sample_partition, model, n_imputations, empty, new_axis=0,
                            chunks=((n_imputations,), X.chunks[0], (empty.shape[2],)),
                            dtype=empty.dtype, meta=empty)
    empty = _as_frames(estimator.sample_imputations(row, 1), row, estimator)[0].iloc[:0]
    draws = [dask.delayed(_sample_partition, pure=True)(part, model, n_imputations, empty)
             for part in _partitions(X)]
    divisions = X.divisions
    return [dd.from_delayed([partition_draws[i] for partition_draws in draws], meta=empty,
                            divisions=divisions, verify_meta=False)
            for i in range(n_imputations)]


def _placeholder_row(X):
    """One row with ``X``'s columns and dtypes, missing wherever the dtype holds a missing
    value (other entries take Dask's placeholder values): outputs of the fitted estimator
    on it have the dtypes that real partitions give, without reading any data."""
    if isinstance(X, da.Array):
        if X.dtype.kind in "fcO":
            return np.full((1, X.shape[1]), np.nan, dtype=X.dtype)
        return np.zeros((1, X.shape[1]), dtype=X.dtype)
    row = X._meta_nonempty.iloc[:1].copy()
    nothing = np.zeros(1, dtype=bool)
    for position in range(row.shape[1]):
        column = row.iloc[:, position]
        blank = column.where(nothing)
        if blank.dtype == column.dtype:  # integer and bool columns cannot hold NaN
            row.isetitem(position, blank)
    return row


def _empty_output(output):
    """An output of the estimator without its rows: the ``meta`` of a Dask collection."""
    if isinstance(output, (pd.DataFrame, pd.Series)):
        return output.iloc[:0]
    return output[:0]


def _transform_partition(part, estimator, empty):
    if len(part) == 0:  # the estimator refuses tables without rows
        return empty.set_axis(part.index) if isinstance(empty, pd.DataFrame) else empty
    return estimator.transform(part)


def _score_partition(part, estimator, empty):
    if len(part) == 0:
        return empty.set_axis(part.index) if isinstance(empty, pd.Series) else empty
    scores = estimator.score_samples(part)
    if isinstance(empty, pd.Series):
        return pd.Series(scores, index=part.index, name=empty.name)
    return scores


def _sample_partition(part, estimator, n_imputations, empty):
    """The ``n_imputations`` copies of one partition: a list of DataFrames for a
    DataFrame, an array ``[n_imputations, rows, features]`` for an array."""
    if isinstance(empty, np.ndarray):
        if len(part) == 0:
            return np.empty((n_imputations, 0, empty.shape[2]), dtype=empty.dtype)
        return estimator.sample_imputations(part, n_imputations)
    if len(part) == 0:
        return [empty.set_axis(part.index) for _ in range(n_imputations)]
    return _as_frames(estimator.sample_imputations(part, n_imputations), part, estimator)


def _as_frames(draws, part: pd.DataFrame, estimator) -> list:
    """The copies of ``sample_imputations`` as DataFrames with the index of ``part``."""
    if isinstance(draws, np.ndarray):  # a numeric table gives one float array
        names = estimator.get_feature_names_out()
        return [pd.DataFrame(copy_, index=part.index, columns=names) for copy_ in draws]
    return list(draws)


# -- training on a cluster ------------------------------------------------------------------
class _RankResult(NamedTuple):
    """What the training task of one worker gives back."""

    rank: int
    worker: str
    n_rows: int
    weights_digest: str  # SHA-256 of the trained weights, to compare ranks
    estimator: object  # the fitted estimator on rank 0, else None


@dataclass(frozen=True)
class _ProcessGroup:
    """How the training task of one worker joins the ``torch.distributed`` group."""

    rank: int
    world_size: int
    init_method: str | None = None  # "tcp://host:port" of rank 0; None without a group
    backend: str | None = None


def fit(estimator, X, *, client=None):
    """Fit a clone of ``estimator`` on a Dask collection, on the workers that hold it.

    The partitions of ``X`` are computed (persisted) on the cluster and stay where they
    are: each worker that holds rows runs one training task on the concatenation of its
    own partitions. With several such workers, the tasks join a ``torch.distributed``
    process group (``gloo`` on CPUs, ``nccl`` where the estimator trains on CUDA) with
    rank 0 on the worker that holds the first rows. Inside a group the imputers train
    data-parallel on the ranks' shards: rank 0's initial weights, column statistics
    merged over the ranks, gradients averaged at every step, so that all ranks end with
    the same weights. Rank 0's estimator is returned. With one worker holding rows the
    fit runs there alone.

    Parameters
    ----------
    estimator : MixtureVAEImputer, DeMissVAEImputer or VAEEnsembleImputer
        The estimator to clone and fit (its parameters, ``random_state`` included, are
        kept; it is not modified). Without an ``n_jobs`` of its own, a task trains with
        as many torch threads as its worker has threads.
    X : dask.dataframe.DataFrame or dask.array.Array of shape (n_samples, n_features)
        The training table.
    client : distributed.Client or None, default=None
        The cluster to train on; None means the current client
        (``distributed.default_client()``).

    Returns
    -------
    estimator : fitted estimator
        An ordinary fitted estimator of the class of ``estimator``, used as one fitted in
        memory (no cluster needed).

    Raises
    ------
    TypeError
        If ``X`` is not a Dask DataFrame or a 2-D Dask Array.
    ValueError
        If there is no client, ``X`` has no rows, the workers that hold rows share a
        process (a ``LocalCluster(processes=False)``), or ``device="auto"`` resolves to
        CUDA on some of them and to the CPU on others.

    Notes
    -----
    ``batch_size`` is per rank: a step averages the gradients of ``batch_size`` rows of
    every rank, as a single process would with ``batch_size`` times the ranks. An epoch is
    one pass over every rank's rows; a rank whose rows run out before the others' adds
    nothing to the remaining steps, whose gradients then average fewer rows. Rows spread
    evenly over the workers (partitions of equal size, ``client.rebalance()``) keep every
    step at its full size.

    Workers on one machine that should use different GPUs must each see their own
    (``CUDA_VISIBLE_DEVICES``, as ``dask-cuda`` sets it). If a training task fails, the
    others wait in the process group until ``torch.distributed``'s timeout.
    """
    return _fit_on_workers(estimator, X, client)[0].estimator


def _fit_on_workers(estimator, X, client) -> list[_RankResult]:
    """Train on every worker that holds rows of ``X``; the results in rank order."""
    X = _check_collection(X)
    estimator = clone(estimator)  # unfitted: a fitted model would travel to every worker
    distributed = _import_distributed()
    client = _client(client, distributed)
    futures = client.compute(_partitions(X))
    distributed.wait(futures)
    for future in futures:
        if future.status == "error":
            future.result()  # raises the error of the partition here
    holders = _partitions_by_worker(client, futures)
    if not holders:
        raise ValueError("X has no rows; fit needs at least one row to train on.")
    workers = list(holders)
    groups = _process_groups(client, estimator, workers)
    threads = client.nthreads()
    tasks = [client.submit(_fit_rank, estimator, holders[worker], group, threads[worker],
                           workers=[worker], allow_other_workers=False, pure=False)
             for worker, group in zip(workers, groups)]
    return client.gather(tasks)


def _import_distributed():
    try:
        import distributed
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            'skmissvae.dask.fit needs dask.distributed: pip install "skmissvae[dask]"'
        ) from error
    return distributed


def _client(client, distributed):
    if client is not None:
        return client
    try:
        return distributed.default_client()
    except ValueError:
        raise ValueError(
            "skmissvae.dask.fit trains on a distributed cluster: create a "
            "distributed.Client first or pass one as client."
        ) from None


def _partitions_by_worker(client, futures) -> dict:
    """``{worker address: [futures of its partitions with rows, in order]}``, the workers
    ordered by their first partition; empty partitions are left out."""
    lengths = client.gather(client.map(len, futures))
    who_has = client.who_has(futures)
    holders = {}
    for future, length in zip(futures, lengths):
        if length:
            worker = next(iter(who_has[future.key]))
            holders.setdefault(worker, []).append(future)
    return holders


def _process_groups(client, estimator, workers) -> list[_ProcessGroup]:
    """How each worker's task joins the group: rank by position in ``workers``, with the
    rendezvous on a free port of rank 0's host. One worker needs no group."""
    if len(workers) == 1:
        return [_ProcessGroup(rank=0, world_size=1)]
    _check_separate_processes(client, workers)
    backend = _backend(client, estimator, workers)
    port = client.submit(_free_port, workers=[workers[0]], allow_other_workers=False, pure=False).result()
    host = urlparse(workers[0]).hostname
    address = f"[{host}]" if ":" in host else host  # an IPv6 address needs brackets
    init_method = f"tcp://{address}:{port}"
    return [_ProcessGroup(rank, len(workers), init_method, backend) for rank in range(len(workers))]


def _check_separate_processes(client, workers) -> None:
    """``torch.distributed`` has one group per process: each rank needs its own process."""
    pids = client.run(os.getpid, workers=workers)
    if len(set(pids.values())) < len(workers):
        raise ValueError(
            "The workers that hold X share a process (a LocalCluster(processes=False)?); "
            "training on several workers needs one process per worker: use processes=True."
        )


def _backend(client, estimator, workers) -> str:
    """``"nccl"`` where the estimator trains on CUDA on every worker, ``"gloo"`` where it
    trains on the CPU on every worker."""
    devices = client.run(_training_device, _device_setting(estimator), workers=workers)
    kinds = set(devices.values())
    if len(kinds) > 1:
        raise ValueError(
            f"The estimator's device resolves to {sorted(kinds)} on different workers "
            f"({devices}); set device='cpu' or device='cuda' so that all ranks train alike."
        )
    return "nccl" if kinds == {"cuda"} else "gloo"


def _device_setting(estimator) -> str:
    """The ``device`` parameter that the estimator (or an ensemble's member) trains with."""
    if hasattr(estimator, "device"):
        return estimator.device
    member = getattr(estimator, "estimator", None)
    return getattr(member, "device", "auto")


def _training_device(setting: str) -> str:
    from ._fitted import resolve_device

    return resolve_device(setting).type


def _free_port() -> int:
    """A TCP port that is free on this worker's host now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("", 0))
        return probe.getsockname()[1]


def _fit_rank(estimator, parts: list, group: _ProcessGroup, n_threads: int) -> _RankResult:
    """The training task of one worker: fit a clone on its local partitions, within the
    process group when there is one."""
    from distributed import get_worker

    from .impute._options import torch_threads

    shard = pd.concat(parts) if isinstance(parts[0], pd.DataFrame) else np.concatenate(parts)
    # An estimator without n_jobs leaves torch's thread count alone, which defaults to all
    # the machine's cores; the worker's own thread count keeps workers from competing.
    with _joined(group), torch_threads(n_threads):
        fitted = clone(estimator).fit(shard)
    return _RankResult(group.rank, get_worker().address, len(shard), _weights_digest(fitted),
                       fitted if group.rank == 0 else None)


@contextmanager
def _joined(group: _ProcessGroup):
    """Run the block as a member of ``group``'s ``torch.distributed`` process group,
    left also on error; no group with a world of one."""
    if group.world_size == 1:
        yield
        return
    import torch.distributed

    torch.distributed.init_process_group(group.backend, init_method=group.init_method,
                                         rank=group.rank, world_size=group.world_size)
    try:
        yield
        # Every rank done before any tears its connections down: a rank that destroys the
        # group while a peer still reads from it can make gloo abort that peer.
        torch.distributed.barrier()
    finally:
        torch.distributed.destroy_process_group()


def _weights_digest(estimator) -> str:
    """SHA-256 of the trained weights (every member's for an ensemble)."""
    members = getattr(estimator, "estimators_", [estimator])
    digest = hashlib.sha256()
    for member in members:
        for name, tensor in member.model_.state_dict().items():
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()
