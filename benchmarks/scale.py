"""Scale-out on a small machine: streaming training from Parquet as the table grows,
in-memory ``fit`` of a million rows, Dask transform on 1 and 2 workers, and data-parallel
training on 1 and 2 ``torch.distributed`` processes.

Usage::

    python benchmarks/scale.py            # about 35-40 minutes on 2 busy cores
    python benchmarks/scale.py --quick    # smoke run, 2-3 minutes (mostly process start-up)

Writes ``benchmarks/results/scale.md`` (``--quick``: ``/tmp/scale/scale_quick.md``, so that
a smoke run never overwrites the report; ``--output`` chooses another file). Scratch data
(Parquet files, the fitted model, the raw measurements as ``<report stem>_raw.json``) go to
``--scratch`` (``/tmp/scale``), which is reused between runs: the Parquet files are only
written when missing.

Data: a synthetic incomplete table of 50 float32 columns, a rank-5 Gaussian plus noise,
``x = mu + s * (z W / sqrt(5) + 0.5 e)`` with ``z ~ N(0, I_5)``, ``e ~ N(0, I_50)``, fixed
``W ~ N(0, 1)``, column means ``mu ~ N(0, 3^2)`` and scales ``s ~ U(0.5, 5)``, and 20 % of
the entries missing completely at random (Parquet nulls). It is written in files of
500,000 rows (row groups of 100,000), file ``i`` from seed ``(0, i)``, so that a table of
``n`` rows is the first ``n / 500,000`` files: the dataset grows by appending files.

Every measurement runs in a fresh subprocess (so that its peak memory is its own), with the
number of torch threads set explicitly (``n_jobs``):

1. *Streaming* (``--sizes``): one pass of ``skmissvae.column_statistics`` over the blocks
   (``ParquetFile.iter_batches``, blocks of ``--block-rows`` rows), merged with ``+``; then
   one pass of ``MixtureVAEImputer(column_statistics=..., n_jobs=1).partial_fit(block)``.
   Reported: both passes' time and rows/s, the resident set after every block (first,
   median, last) and the process's peak (``ru_maxrss``, the kernel's high-water mark, which
   counts torch's allocations too). ``--sizes auto`` (default) runs 10^6 rows first and then
   3x10^6 and 10^7 if one pass over 10^7 rows is projected to take under 12 minutes, else
   2x10^6 and 4x10^6.
2. *In-memory fit*: the first ``--fit-rows`` rows read into a pandas DataFrame, then
   ``MixtureVAEImputer(max_iter=1, early_stopping=False, n_jobs=1).fit`` (one epoch; without
   early stopping no validation rows are held out). Reported: rows/s, the resident
   set after reading, what ``fit`` adds to the high-water mark, and the process's peak.
   The fitted model is saved for 3.
3. *Dask transform*: that model (``n_impute_samples=100``, ``n_jobs=1``) imputes
   ``--transform-rows`` rows read with ``dask.dataframe.read_parquet`` (8 files, one
   partition each) on a ``distributed.LocalCluster`` of 1 and of 2 single-threaded worker
   processes, with ``skmissvae.dask.transform`` (or, where that module is missing or
   fails, ``map_partitions`` with the estimator as a ``dask.delayed`` object; the report
   says which), end to end (read, impute, gather); the workers' CPU seconds are measured
   with psutil. Both cluster sizes run twice: as distributed starts workers (with
   ``MALLOC_TRIM_THRESHOLD_=65536``) and without that variable. The same model's
   ``transform`` in one process (1 torch thread) on the first 1/5 of the rows is the
   reference.
4. *Data-parallel training*: each process fits ``MixtureVAEImputer(max_iter=2,
   early_stopping=False, n_jobs=threads)`` on its own ``--ddp-rows`` rows (generated in the
   process); with ``torchrun --nproc-per-node=2`` the two processes form a ``gloo`` process
   group and train one model (gradients averaged every step). Rows/s = rows of the second
   epoch / its time, summed over processes. The configurations (1 process x 1 thread,
   2 processes x 1 thread, and 1 process x 2 threads with and without
   ``OMP_WAIT_POLICY=PASSIVE``) alternate within each of ``--repeats`` repeats, and the
   ratios to 1 x 1 are taken within a repeat.

The machine is typically shared: the 1-minute load average is recorded before and after
every measurement, and CPU seconds next to wall seconds where that is cheap, so that a
shortfall from other processes can be told from one in the library.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from _report import reset_peak, status_kib

N_COLUMNS = 50
RANK = 5
MISSING_RATE = 0.2
FILE_ROWS = 500_000
ROW_GROUP_ROWS = 100_000
TRANSFORM_FILES = 8
N_IMPUTE_SAMPLES = 100
PASS_LIMIT_S = 12 * 60  # --sizes auto: the largest size must take less per pass
HERE = Path(__file__).resolve().parent


# -- data -----------------------------------------------------------------------------------
def _generator_parameters():
    rng = np.random.default_rng(12345)
    W = rng.standard_normal((RANK, N_COLUMNS))
    mu = rng.normal(0.0, 3.0, N_COLUMNS)
    scale = rng.uniform(0.5, 5.0, N_COLUMNS)
    return W, mu, scale


def make_block(n_rows: int, seed) -> np.ndarray:
    """``n_rows`` rows of the synthetic table (float32, NaN where missing)."""
    W, mu, scale = _generator_parameters()
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n_rows, RANK))
    X = z @ W / math.sqrt(RANK) + 0.5 * rng.standard_normal((n_rows, N_COLUMNS))
    X = (mu + scale * X).astype(np.float32)
    X[rng.random(X.shape) < MISSING_RATE] = np.nan
    return X


def column_names() -> list[str]:
    return [f"x{j}" for j in range(N_COLUMNS)]


def write_parquet(path: Path, X: np.ndarray, row_group_rows: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrays = [pa.array(X[:, j], mask=np.isnan(X[:, j])) for j in range(X.shape[1])]
    table = pa.Table.from_arrays(arrays, names=column_names())
    tmp = path.with_suffix(".tmp")
    pq.write_table(table, tmp, row_group_size=row_group_rows)
    tmp.rename(path)  # a file that exists is complete


def data_files(scratch: Path, n_rows: int, file_rows: int, row_group_rows: int) -> tuple[list[Path], float]:
    """The files that hold the first ``n_rows`` rows, written where missing; and the
    seconds spent writing."""
    folder = scratch / f"table_{file_rows}"
    folder.mkdir(parents=True, exist_ok=True)
    files, spent = [], 0.0
    for i in range(math.ceil(n_rows / file_rows)):
        path = folder / f"part-{i:04d}.parquet"
        if not path.exists():
            start = time.perf_counter()
            write_parquet(path, make_block(file_rows, (0, i)), row_group_rows)
            spent += time.perf_counter() - start
        files.append(path)
    return files, spent


def blocks(files: list[Path], n_rows: int, block_rows: int):
    """Blocks of at most ``block_rows`` rows (float32 arrays, NaN where missing) of the
    first ``n_rows`` rows of ``files``, read one at a time."""
    import pyarrow.parquet as pq

    left = n_rows
    for path in files:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=block_rows):
            block = np.column_stack([column.to_numpy(zero_copy_only=False) for column in batch.columns])
            block = block[:left]
            left -= len(block)
            yield block
            if left <= 0:
                return


# -- measurement helpers ------------------------------------------------------------------
def rss_mib() -> float:
    kib = status_kib("VmRSS")
    if kib is None:  # not Linux: psutil if present
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    return kib / 1024


def peak_mib() -> float:
    """The process's resident high-water mark (ru_maxrss: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def load() -> float:
    return os.getloadavg()[0]


def run_child(kind: str, spec: dict, launcher: list[str] | None = None, env: dict | None = None) -> dict:
    """Run ``--child kind`` in a fresh process; its result is the last line of stdout."""
    command = (launcher or [sys.executable]) + [str(Path(__file__).resolve()), "--child", kind, json.dumps(spec)]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore", **(env or {}))
    out = subprocess.run(command, capture_output=True, text=True, cwd=HERE, env=env)
    if out.returncode != 0:
        sys.stderr.write(out.stdout[-4000:] + out.stderr[-8000:])
        raise SystemExit(f"child {kind} failed with status {out.returncode}")
    try:
        return json.loads(out.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):  # torchrun's ranks share stdout: they write a file
        return {}


# -- children ---------------------------------------------------------------------------------
def child_stream(spec: dict) -> dict:
    """One statistics pass and one partial_fit pass over the first ``n_rows`` rows."""
    import skmissvae
    from skmissvae import MixtureVAEImputer

    files = [Path(p) for p in spec["files"]]
    n_rows, block_rows = spec["n_rows"], spec["block_rows"]
    rss_start = rss_mib()
    load_before = load()

    start, cpu = time.perf_counter(), time.process_time()
    statistics = None
    for block in blocks(files, n_rows, block_rows):
        part = skmissvae.column_statistics(block)
        statistics = part if statistics is None else statistics + part
    stats_s, stats_cpu = time.perf_counter() - start, time.process_time() - cpu
    rss_after_stats = rss_mib()

    imputer = MixtureVAEImputer(column_statistics=statistics, n_jobs=1, random_state=0)
    rss_blocks, seen = [], 0
    start, cpu = time.perf_counter(), time.process_time()
    for block in blocks(files, n_rows, block_rows):
        imputer.partial_fit(block)
        seen += len(block)
        rss_blocks.append(rss_mib())
    train_s, train_cpu = time.perf_counter() - start, time.process_time() - cpu
    assert seen == n_rows, (seen, n_rows)
    return {
        "n_rows": n_rows, "n_blocks": len(rss_blocks), "stats_s": stats_s, "stats_cpu_s": stats_cpu,
        "train_s": train_s, "train_cpu_s": train_cpu, "rss_start_mib": rss_start,
        "rss_after_stats_mib": rss_after_stats, "rss_first_block_mib": rss_blocks[0],
        "rss_median_block_mib": float(np.median(rss_blocks)), "rss_last_block_mib": rss_blocks[-1],
        "peak_mib": peak_mib(), "load_before": load_before, "load_after": load(),
        "statistics_count": int(np.sum(statistics.count)),
    }


def child_fit(spec: dict) -> dict:
    """One epoch of in-memory fit on the first ``n_rows`` rows; saves the model."""
    import pyarrow.parquet as pq

    import skmissvae
    from skmissvae import MixtureVAEImputer

    rss_start = rss_mib()
    start = time.perf_counter()
    frames, left = [], spec["n_rows"]
    for path in spec["files"]:
        table = pq.read_table(path)
        frames.append(table.slice(0, left).to_pandas())
        left -= len(frames[-1])
        del table
        if left <= 0:
            break
    import pandas as pd

    X = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    del frames
    read_s = time.perf_counter() - start
    data_mib = X.memory_usage(deep=True).sum() / 2**20
    rss_loaded = rss_mib()
    peak_loaded = peak_mib()
    reset = reset_peak()
    elapsed = []
    imputer = MixtureVAEImputer(max_iter=1, early_stopping=False, n_jobs=1, random_state=0,
                                callbacks=[lambda imputer, info: elapsed.append(info["elapsed"])])
    load_before = load()
    start, cpu = time.perf_counter(), time.process_time()
    imputer.fit(X)
    fit_s, fit_cpu = time.perf_counter() - start, time.process_time() - cpu
    hwm = status_kib("VmHWM") if reset else None
    skmissvae.save(imputer, spec["model"])
    n_train = len(X)  # early_stopping=False: no validation rows are held out
    return {
        "n_rows": len(X), "n_train": n_train, "read_s": read_s, "fit_s": fit_s, "fit_cpu_s": fit_cpu,
        "epoch_s": elapsed[0], "data_mib": data_mib, "rss_start_mib": rss_start, "rss_loaded_mib": rss_loaded,
        "peak_loaded_mib": peak_loaded,
        "fit_added_mib": (hwm / 1024 - rss_loaded) if hwm is not None else None,
        "peak_mib": peak_mib(), "load_before": load_before, "load_after": load(),
    }


def _worker_cpu_seconds() -> float:
    import psutil

    times = psutil.Process().cpu_times()
    return times.user + times.system


def _transform_part(part, estimator):
    import pandas as pd

    return pd.DataFrame(estimator.transform(part), index=part.index, columns=estimator.get_feature_names_out())


def child_transform(spec: dict) -> dict:
    """In-process reference, then Dask transform on LocalClusters of 1 and 2 workers."""
    import dask
    import dask.dataframe as dd
    import pandas as pd
    import pyarrow.parquet as pq
    from distributed import Client, LocalCluster

    import skmissvae

    estimator = skmissvae.load(spec["model"]).set_params(n_impute_samples=N_IMPUTE_SAMPLES, n_jobs=1)
    files = spec["files"]
    result = {"n_rows": spec["n_rows"], "n_partitions": len(files)}

    # Reference: the same estimator in this process, one torch thread.
    X = pd.concat([pq.read_table(p).to_pandas() for p in files], ignore_index=True)
    reference = X.iloc[: max(1, len(X) // 5)]
    estimator.transform(reference.iloc[:64])  # warm-up
    load_before = load()
    start, cpu = time.perf_counter(), time.process_time()
    expected = estimator.transform(reference)
    wall = time.perf_counter() - start
    result["in_process"] = {"n_rows": len(reference), "wall_s": wall, "cpu_s": time.process_time() - cpu,
                            "load_before": load_before, "load_after": load()}

    def plain_dask(ddf):  # without skmissvae.dask: the estimator as one delayed object
        meta = pd.DataFrame({c: np.float64([]) for c in estimator.get_feature_names_out()})
        return ddf.map_partitions(_transform_part, dask.delayed(estimator, pure=True), meta=meta)

    try:
        import skmissvae.dask as skdask

        def impute(ddf):
            return skdask.transform(estimator, ddf)

        how = "skmissvae.dask.transform"
    except Exception as error:  # the module is missing or broken
        impute = plain_dask
        how = f"map_partitions with a delayed estimator (importing skmissvae.dask failed: {error!r})"

    # distributed's nanny sets MALLOC_TRIM_THRESHOLD_=65536 in its workers (to give memory
    # back to the OS); setting it also turns off glibc's dynamic mmap threshold, so large
    # tensors are mmap'ed and unmapped, and faulted in, on every allocation. The "no trim"
    # configurations start the workers without it.
    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}))
    untrimmed = {k: v for k, v in environ.items() if k != "MALLOC_TRIM_THRESHOLD_"}
    for trim in (True, False):
        for n_workers in (1, 2):
            key = f"workers_{n_workers}" + ("" if trim else "_no_trim")
            if not trim:  # starting a nanny can leave the variable in this process's environment too
                os.environ.pop("MALLOC_TRIM_THRESHOLD_", None)
            with dask.config.set({"distributed.nanny.pre-spawn-environ": environ if trim else untrimmed}), \
                    LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                                 dashboard_address=None) as cluster, Client(cluster) as client:
                client.run(lambda: __import__("skmissvae").MixtureVAEImputer and __import__("torch"))
                trims = set(client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_")).values())
                ddf = dd.read_parquet(files)
                small = dd.from_pandas(X.iloc[: 32 * n_workers], npartitions=n_workers)
                try:
                    impute(small).compute()  # warm-up: the estimator reaches the workers, torch starts
                except Exception as error:
                    if impute is plain_dask:
                        raise
                    impute = plain_dask
                    how = f"map_partitions with a delayed estimator (skmissvae.dask.transform failed: {error!r})"
                    impute(small).compute()
                cpu_before = sum(client.run(_worker_cpu_seconds).values())
                load_before = load()
                start = time.perf_counter()
                imputed = impute(ddf).compute()
                wall = time.perf_counter() - start
                cpu = sum(client.run(_worker_cpu_seconds).values()) - cpu_before
                assert len(imputed) == len(X) and not np.isnan(np.asarray(imputed, dtype=float)).any()
                same = bool(np.allclose(np.asarray(imputed)[: len(reference)], np.asarray(expected)))
                result[key] = {"wall_s": wall, "cpu_s": cpu, "how": how, "equals_in_process": same,
                               "malloc_trim_threshold": sorted(map(str, trims)), "n_workers": n_workers,
                               "load_before": load_before, "load_after": load()}
    return result


def child_ddp(spec: dict) -> dict:
    """Fit on this process's shard; inside a process group when torchrun started us."""
    import torch.distributed as dist

    from skmissvae import MixtureVAEImputer

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1:
        dist.init_process_group("gloo")
    X = make_block(spec["n_rows"], (1, rank))
    elapsed, cpu = [], []

    def clock(imputer, info) -> None:  # a callback returning something true stops training
        elapsed.append(info["elapsed"])
        cpu.append(time.process_time())

    imputer = MixtureVAEImputer(max_iter=2, early_stopping=False, n_jobs=spec["threads"], random_state=0,
                                callbacks=[clock])
    load_before = load()
    start = time.perf_counter()
    imputer.fit(X)
    fit_s = time.perf_counter() - start
    epoch_s, epoch_cpu = elapsed[1] - elapsed[0], cpu[1] - cpu[0]
    digest = float(sum(p.detach().double().sum() for p in imputer.model_.parameters()))
    record = {"rank": rank, "world": world, "n_rows": len(X), "epoch_s": epoch_s, "epoch_cpu_s": epoch_cpu,
              "fit_s": fit_s, "weights_sum": digest, "load_before": load_before, "load_after": load()}
    if world > 1:
        records = [None] * world
        dist.all_gather_object(records, record)
        dist.destroy_process_group()
    else:
        records = [record]
    if rank == 0:
        Path(spec["out"]).write_text(json.dumps(records))
    return records


CHILDREN = {"stream": child_stream, "fit": child_fit, "transform": child_transform, "ddp": child_ddp}


# -- the driver -------------------------------------------------------------------------------
def run_ddp(spec: dict, processes: int, threads: int, passive: bool = False, n_rows: int | None = None) -> dict:
    spec = dict(spec, threads=threads, n_rows=n_rows or spec["n_rows"])
    launcher = None
    if processes > 1:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}"]
    out = Path(spec["out"])
    out.unlink(missing_ok=True)
    run_child("ddp", spec, launcher, {"OMP_WAIT_POLICY": "PASSIVE"} if passive else None)
    records = json.loads(out.read_text())
    rows_per_s = sum(r["n_rows"] / r["epoch_s"] for r in records)
    rows_per_cpu_s = sum(r["n_rows"] for r in records) / sum(r["epoch_cpu_s"] for r in records)
    same = len({round(r["weights_sum"], 6) for r in records}) == 1
    cores = sum(r["epoch_cpu_s"] / r["epoch_s"] for r in records)
    return {"processes": processes, "threads": threads, "passive": passive, "n_rows": spec["n_rows"],
            "rows_per_s": rows_per_s, "rows_per_cpu_s": rows_per_cpu_s,
            "epoch_s": max(r["epoch_s"] for r in records), "same_weights": same, "cores": cores,
            "load": max(max(r["load_before"], r["load_after"]) for r in records)}


def fmt(x, spec="{:,.0f}"):
    return "–" if x is None else spec.format(x)


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny tables, one repeat")
    parser.add_argument("--sizes", nargs="+", default=["auto"],
                        help="streaming table sizes in rows, or 'auto' (see the module docstring)")
    parser.add_argument("--block-rows", type=int, default=100_000, help="rows per streamed block")
    parser.add_argument("--fit-rows", type=int, default=1_000_000, help="rows of the in-memory fit")
    parser.add_argument("--transform-rows", type=int, default=50_000, help="rows imputed with Dask")
    parser.add_argument("--ddp-rows", type=int, default=30_000, help="rows per process in data-parallel training")
    parser.add_argument("--repeats", type=int, default=2, help="repeats of the data-parallel comparison")
    parser.add_argument("--parts", nargs="+", default=["stream", "fit", "transform", "ddp"],
                        choices=["stream", "fit", "transform", "ddp"])
    parser.add_argument("--scratch", type=Path, default=Path("/tmp/scale"))
    parser.add_argument("--output", type=Path, default=None,
                        help="the report (default benchmarks/results/scale.md; --quick: <scratch>/scale_quick.md)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)  # KIND JSON: one measurement
    args = parser.parse_args()
    if args.child:
        print(json.dumps(CHILDREN[args.child[0]](json.loads(args.child[1]))), flush=True)
        return

    wall_start = time.perf_counter()
    sys.path.insert(0, str(HERE))
    from _report import header

    file_rows, row_group_rows = FILE_ROWS, ROW_GROUP_ROWS
    if args.quick:
        file_rows, row_group_rows = 10_000, 5_000
        args.block_rows, args.fit_rows, args.transform_rows, args.ddp_rows = 5_000, 10_000, 800, 1_000
        args.repeats = 1
        if args.sizes == ["auto"]:
            args.sizes = ["10000", "20000"]
    output = args.output or (args.scratch / "scale_quick.md" if args.quick else HERE / "results" / "scale.md")
    args.scratch.mkdir(parents=True, exist_ok=True)
    uptime_start = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    notes, generated = [], 0.0
    sections = []

    # 1. Streaming.
    stream = []
    if "stream" in args.parts:
        auto = args.sizes == ["auto"]
        sizes = [1_000_000] if auto else [int(float(s)) for s in args.sizes]
        i = 0
        while i < len(sizes):
            n = sizes[i]
            files, spent = data_files(args.scratch, n, file_rows, row_group_rows)
            generated += spent
            r = run_child("stream", {"files": [str(f) for f in files], "n_rows": n, "block_rows": args.block_rows})
            stream.append(r)
            print(f"stream {n:,} rows: stats {r['stats_s']:.0f} s, train {r['train_s']:.0f} s "
                  f"({n / r['train_s']:,.0f} rows/s), peak {r['peak_mib']:.0f} MiB, load {r['load_after']:.1f}", flush=True)
            if auto and i == 0:
                projected = r["train_s"] * 10
                if projected < PASS_LIMIT_S:
                    sizes += [3_000_000, 10_000_000]
                    notes.append(f"`--sizes auto`: one pass over 10^6 rows took {r['train_s']:.0f} s, so one over "
                                 f"10^7 rows was projected at {projected / 60:.1f} min (< 12): sizes 10^6, 3x10^6, 10^7.")
                else:
                    sizes += [2_000_000, 4_000_000]
                    notes.append(f"`--sizes auto`: one training pass over 10^6 rows took {r['train_s']:.0f} s, so one "
                                 f"over 10^7 rows was projected at {projected / 60:.0f} min, more than 12 minutes on "
                                 "this machine: 2x10^6 and 4x10^6 rows were measured instead of 3x10^6 and 10^7.")
            i += 1
        base = stream[0]
        rows = []
        for r in stream:
            n = r["n_rows"]
            rows.append([f"{n:,}", r["n_blocks"], fmt(r["stats_s"], "{:.1f}"), fmt(n / r["stats_s"]),
                         fmt(r["train_s"], "{:.0f}"), fmt(n / r["train_s"]), fmt(n / r["train_cpu_s"]),
                         fmt(r["train_cpu_s"] / r["train_s"], "{:.2f}"),
                         fmt(r["train_s"] / base["train_s"] / (n / base["n_rows"]), "{:.2f}"),
                         fmt(r["train_cpu_s"] / base["train_cpu_s"] / (n / base["n_rows"]), "{:.2f}"),
                         fmt(r["rss_first_block_mib"]), fmt(r["rss_median_block_mib"]), fmt(r["rss_last_block_mib"]),
                         fmt(r["peak_mib"]), f"{r['load_before']:.1f} / {r['load_after']:.1f}"])
        sections += [
            "## 1. Streaming training from Parquet\n",
            f"One statistics pass and one `partial_fit` pass, blocks of {args.block_rows:,} rows read with "
            "`pyarrow.parquet.ParquetFile.iter_batches`; `MixtureVAEImputer` defaults (MissSIWAE: K = 5, "
            "5 particles, latent 16, width 128, batch 128), `n_jobs=1`, one fresh process per size. "
            "`cores obtained`: CPU seconds / wall seconds of the training pass (1.00 = a whole core; "
            "less when other jobs take the CPU). `time / linear`: pass time divided by (rows / smallest "
            "size's rows) times the smallest size's pass time (1.00 = exactly linear), from wall time and "
            "from the process's CPU time. RSS columns: resident set after the first, the median and the "
            "last block of the training pass; `peak`: the process's high-water mark (`ru_maxrss`, whole run "
            "of the process, Python, torch, Arrow and the model included). `load`: 1-minute load average "
            "before / after.\n",
            table(["rows", "blocks", "stats pass s", "stats rows/s", "train pass s", "train rows/s",
                   "train rows/CPU-s", "cores obtained", "time / linear", "CPU time / linear",
                   "RSS 1st MiB", "RSS median MiB", "RSS last MiB",
                   "peak MiB", "load"], rows),
        ]

    # 2. In-memory fit.
    model = args.scratch / "model.skmissvae"
    fit = t = runs = None
    if "fit" in args.parts or ("transform" in args.parts and not model.exists()):
        files, spent = data_files(args.scratch, args.fit_rows, file_rows, row_group_rows)
        generated += spent
        fit = run_child("fit", {"files": [str(f) for f in files], "n_rows": args.fit_rows, "model": str(model)})
        print(f"fit {fit['n_rows']:,} rows: {fit['fit_s']:.0f} s, peak {fit['peak_mib']:.0f} MiB", flush=True)
        rows = [[f"{fit['n_rows']:,}", fmt(fit["read_s"], "{:.1f}"), fmt(fit["fit_s"], "{:.0f}"),
                 fmt(fit["epoch_s"], "{:.0f}"), fmt(fit["n_train"] / fit["epoch_s"]), fmt(fit["n_rows"] / fit["fit_s"]),
                 fmt(fit["n_rows"] / fit["fit_cpu_s"]),
                 fmt(fit["data_mib"]), fmt(fit["rss_loaded_mib"]), fmt(fit["fit_added_mib"]), fmt(fit["peak_mib"]),
                 f"{fit['load_before']:.1f} / {fit['load_after']:.1f}"]]
        sections += [
            "## 2. In-memory fit, one epoch\n",
            f"The first {fit['n_rows']:,} rows of the same table read into a pandas DataFrame (float32), then "
            "`MixtureVAEImputer(max_iter=1, early_stopping=False, n_jobs=1, random_state=0).fit(X)` in a fresh "
            "process (without early stopping no rows are held out for validation). "
            "`epoch rows/s`: rows / time of the epoch (callback `elapsed`); `fit rows/s`: rows / "
            "wall time of `fit` (setup, e.g. standardisation, and the end of `fit` included); `rows/CPU-s` from the "
            "process's CPU time. `fit adds`: rise of the resident high-water mark (Linux `VmHWM`, reset "
            "after reading) over the resident set after reading.\n",
            table(["rows", "read s", "fit s", "epoch s", "epoch rows/s", "fit rows/s",
                   "fit rows/CPU-s", "DataFrame MiB", "RSS after read MiB", "fit adds MiB", "peak MiB", "load"], rows),
        ]

    # 3. Dask transform.
    if "transform" in args.parts:
        folder = args.scratch / f"transform_{args.transform_rows}"
        folder.mkdir(parents=True, exist_ok=True)
        per_file = args.transform_rows // TRANSFORM_FILES
        files = []
        for i in range(TRANSFORM_FILES):
            path = folder / f"part-{i:02d}.parquet"
            if not path.exists():
                write_parquet(path, make_block(per_file, (2, i)), per_file)
            files.append(str(path))
        t = run_child("transform", {"files": files, "model": str(model), "n_rows": per_file * TRANSFORM_FILES})
        ref = t["in_process"]
        ref_speed = ref["n_rows"] / ref["wall_s"]
        rows = [["in process, 1 torch thread", f"{ref['n_rows']:,}", fmt(ref["wall_s"], "{:.1f}"), fmt(ref_speed),
                 "1.00", fmt(ref["n_rows"] / ref["cpu_s"]), fmt(ref["cpu_s"] / ref["wall_s"], "{:.2f}"), "–",
                 f"{ref['load_before']:.1f} / {ref['load_after']:.1f}"]]
        for key in ("workers_1", "workers_2", "workers_1_no_trim", "workers_2_no_trim"):
            w = t[key]
            k = w["n_workers"]
            speed = t["n_rows"] / w["wall_s"]
            values = w["malloc_trim_threshold"]
            trim = "MALLOC_TRIM_THRESHOLD_ unset" if values == ["None"] else "MALLOC_TRIM_THRESHOLD_=" + "/".join(values)
            rows.append([f"Dask, {k} worker{'s' if k > 1 else ''} x 1 thread, {trim}", f"{t['n_rows']:,}",
                         fmt(w["wall_s"], "{:.1f}"), fmt(speed), fmt(speed / ref_speed, "{:.2f}"),
                         fmt(t["n_rows"] / w["cpu_s"]), fmt(w["cpu_s"] / w["wall_s"], "{:.2f}"),
                         "yes" if w["equals_in_process"] else "no",
                         f"{w['load_before']:.1f} / {w['load_after']:.1f}"])
        print("transform", {k: round(t["n_rows"] / v["wall_s"]) for k, v in t.items() if k.startswith("workers")},
              flush=True)
        hows = {v["how"] for k, v in t.items() if k.startswith("workers")}
        sections += [
            "## 3. Transform with Dask\n",
            f"The model of section 2 (`n_impute_samples={N_IMPUTE_SAMPLES}`, `n_jobs=1`) imputes "
            f"{t['n_rows']:,} rows (fresh rows of the same generator) read with `dask.dataframe.read_parquet` "
            f"from {TRANSFORM_FILES} files, one partition each, on a `distributed.LocalCluster(n_workers=k, "
            "threads_per_worker=1, processes=True)`; wall time from building the graph to the imputed "
            f"DataFrame in the client (read, impute, gather), after an untimed warm-up. Via: {'; '.join(sorted(hows))}. "
            "`rows/CPU-s` counts the workers' CPU time (psutil); `cores obtained`: CPU seconds / wall seconds, "
            "the share of the machine the measured processes got. distributed's nanny starts its workers with "
            "`MALLOC_TRIM_THRESHOLD_=65536` (its default `distributed.nanny.pre-spawn-environ`); the last two "
            "rows start them without it. `= in process`: whether the Dask result "
            "equals the in-process `transform` on the rows both imputed. The reference runs on the first "
            "fifth of the rows.\n",
            table(["how", "rows", "wall s", "rows/s", "× in process", "rows/CPU-s", "cores obtained", "= in process",
                   "load"], rows),
        ]

    # 4. Data-parallel training.
    if "ddp" in args.parts:
        spec = {"n_rows": args.ddp_rows, "out": str(args.scratch / "ddp.json")}
        # (processes, threads, OMP_WAIT_POLICY=PASSIVE, rows per process). Two OpenMP threads with
        # the default (spinning) wait policy can be many times slower on a busy machine, so that
        # configuration gets a smaller shard (its rows/s stay comparable: same steps, same batch).
        small = min(args.ddp_rows, 5_000)
        configs = [(1, 1, False, None), (2, 1, False, None), (1, 2, True, None), (1, 2, False, small)]
        runs = []
        for repeat in range(args.repeats):
            results = {c: run_ddp(spec, *c) for c in configs}
            base = results[configs[0]]
            for c, r in results.items():
                runs.append(dict(r, config=c, repeat=repeat, ratio=r["rows_per_s"] / base["rows_per_s"],
                                 cpu_ratio=r["rows_per_cpu_s"] / base["rows_per_cpu_s"]))
            print("ddp repeat", repeat, {c[:3]: round(r["rows_per_s"]) for c, r in results.items()}, flush=True)
        rows = []
        for c in configs:
            mine = [r for r in runs if r["config"] == c]
            med = lambda key: float(np.median([r[key] for r in mine]))  # noqa: E731
            label = (f"{c[0]} process{'es' if c[0] > 1 else ''} x {c[1]} thread{'s' if c[1] > 1 else ''}"
                     + (", OMP_WAIT_POLICY=PASSIVE" if c[2] else ", default OpenMP wait policy" if c[1] > 1 else ""))
            rows.append([label, f"{c[0] * mine[0]['n_rows']:,}", fmt(med("epoch_s"), "{:.1f}"), fmt(med("rows_per_s")),
                         fmt(med("ratio"), "{:.2f}"), ", ".join(f"{r['ratio']:.2f}" for r in mine),
                         fmt(med("rows_per_cpu_s")), fmt(med("cpu_ratio"), "{:.2f}"), fmt(med("cores"), "{:.2f}"),
                         "yes" if all(r["same_weights"] for r in mine) else "no",
                         ", ".join(f"{r['load']:.1f}" for r in mine)])
        sections += [
            "## 4. Data-parallel training with torch.distributed\n",
            f"Each process fits `MixtureVAEImputer(max_iter=2, early_stopping=False, "
            f"n_jobs=threads, random_state=0)` on its own {args.ddp_rows:,} rows of the generator; two "
            "processes are started by `python -m torch.distributed.run --standalone --nproc-per-node=2` "
            "(one `gloo` group: one model, gradients averaged every step, each rank taking the same number of "
            "steps on its shard), one process by plain `python`. The two-thread runs use one process's "
            "intra-op threads instead; with OpenMP's default wait policy (threads spin while they wait) they "
            f"are measured on {small:,} rows, since they can be very slow on a busy machine; "
            "`OMP_WAIT_POLICY=PASSIVE` makes waiting threads sleep. `rows/s`: rows of the second epoch / its "
            "time, summed over processes; `× 1x1` is the ratio to 1 process x 1 thread within a repeat "
            f"(median, and each of {args.repeats} repeat(s)); `rows/CPU-s` and its ratio from the processes' "
            "CPU time, which other load on the machine disturbs less; `cores obtained`: the processes' CPU "
            "seconds / wall seconds of the epoch, summed. `same weights`: all ranks ended with "
            "the same weights. `load`: the highest 1-minute load average seen by the processes.\n",
            table(["configuration", "rows per epoch", "epoch s", "rows/s", "× 1x1", "× 1x1 per repeat",
                   "rows/CPU-s", "CPU × 1x1", "cores obtained", "same weights", "load"], rows),
        ]

    uptime_end = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    command = "python benchmarks/scale.py" + (" " + shlex.join(sys.argv[1:]) if sys.argv[1:] else "")
    intro = [
        f"`uptime` at the start: `{uptime_start}`  \n`uptime` at the end: `{uptime_end}`\n",
        "The machine is shared with other jobs: with a load average above the number of cores, a process "
        "gets less than a core, so wall-clock rows/s understate what the code does on an idle machine, and "
        "the more so the more processes a configuration runs. The CPU-time columns are less affected.\n",
        f"Data: the synthetic table of the module docstring ({N_COLUMNS} float32 columns, rank-{RANK} Gaussian "
        f"+ noise, {MISSING_RATE:.0%} MCAR, Parquet files of {file_rows:,} rows in row groups of "
        f"{row_group_rows:,}); {generated:.0f} s were spent writing Parquet in this run (files already in "
        f"`{args.scratch}` are reused).\n",
    ] + [n + "\n" for n in notes]
    raw = {"stream": stream, "fit": fit, "transform": t, "ddp": runs}
    (args.scratch / f"{output.stem}_raw.json").write_text(json.dumps(raw, indent=1, default=str))
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(header("Scale-out on a small machine", command, time.perf_counter() - wall_start)
                      + "\n".join(intro + sections))
    print(output.read_text())


if __name__ == "__main__":
    main()
