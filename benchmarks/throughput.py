"""Throughput and scale: training rows per second of every variant, with the Gaussian VAE
as yardstick, on a 20,000 x 5 and a 100,000 x 50 table; and (``--inference``) the speed,
memory and accuracy of inference with and without early stopping of importance sampling.

Usage::

    python benchmarks/throughput.py               # training: 3 repeats, about a quarter of an hour
    python benchmarks/throughput.py --quick       # smoke run: 2,000-row tables, one repeat
    python benchmarks/throughput.py --inference   # inference on the toy data, about 25 minutes
    python benchmarks/throughput.py --inference --quick   # smoke run: 2 epochs, 200 test rows

Training writes ``benchmarks/results/throughput.md`` and ``.csv``. Throughput is training
rows / time of the second epoch (early stopping off), so every variant does the same number
of steps and DeMissVAE's sampler, which starts in the second epoch, is counted. The figure
quoted is the median over repeats; the overhead ratios are taken within one repeat (these
machines are noisy) before their median is taken.

Inference writes ``benchmarks/results/inference.md`` and ``.csv``. A ``MixtureVAEImputer``
(defaults, ``latent_dim=2``, ``random_state=0``) is fitted on the paper's toy data (20,000
training rows with 50 % of their entries hidden completely at random, as in ``toy.py``; the
data are read from ``../shared/data/mog2_large.npz`` or ``--data``, and the benchmark stops
without them). On the 1,000 complete test rows with half of their entries hidden (one
entry revealed again in any row left empty), for each ``min_effective_samples`` setting and
``n_impute_samples = n_score_samples = 1000``, it measures

* rows per second of ``transform``, ``score_samples`` and ``sample_imputations(X, 40)``:
  median of ``--repeats`` repeats in this process, for each torch thread count of
  ``--threads``, with the ratio to the ``None`` setting taken within each repeat;
* the peak memory of each call: the rise of the resident set's high-water mark (Linux
  ``VmHWM``, reset before the call) over the resident set before it, in a fresh process
  per call (one torch thread, after an untimed warm-up call on 64 rows);
* accuracy: RMSE of ``transform`` on the hidden entries, the mean ``score_samples`` of the
  masked and of the complete test rows, and the coverage of the central 90 % intervals of
  the 40 draws over the hidden entries; the ``None`` setting is repeated with another
  ``random_state`` to show the Monte-Carlo noise;
* at 20,000 rows (the test rows tiled, with fresh masks), rows per second (one run, one
  thread) and peak memory for ``None`` and 50, to show that memory stays bounded.

``--model PATH`` loads the fitted imputer from ``PATH`` when the file exists and otherwise
fits it (one torch thread) and saves it there.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import skmissvae
from skmissvae import MixtureVAEImputer
from skmissvae.datasets import make_mcar
from skmissvae.evaluation import imputation_rmse

from _report import RESULTS, duration, header, markdown_table, reset_peak, status_kib
from _tables import TOY_DATA, load_toy
from _variants import VARIANTS


# (name, rows, columns, extra settings): the estimator defaults, and the network and batch
# size of the paper's toy experiment (batch 64, 3 x 200 residual MLPs, latent 2).
# The tables are synthetic (make_table), with half of their entries missing.
TABLES = [
    ("20000x5 defaults", 20_000, 5, {"latent_dim": 2}),
    ("20000x5 paper toy config", 20_000, 5,
     {"latent_dim": 2, "batch_size": 64, "hidden_width": 200, "n_hidden_blocks": 3}),
    ("100000x50 defaults", 100_000, 50, {}),
]


def make_table(n_rows: int, n_cols: int, seed: int = 0) -> np.ndarray:
    rng = np.random.RandomState(seed)
    latent = rng.standard_normal((n_rows, 3))
    X = np.tanh(latent @ rng.standard_normal((3, n_cols))) + 0.1 * rng.standard_normal((n_rows, n_cols))
    return make_mcar(X, 0.5, drop_empty_rows=True, random_state=seed)[0]


def rows_per_second(method: str, X: np.ndarray, settings: dict) -> float:
    """Training rows per second in the second epoch (DeMissVAE's sampler starts there)."""
    elapsed = []
    estimator, params = VARIANTS[method]
    imputer = estimator(
        **params, max_iter=2, early_stopping=False, device="cpu", random_state=0,
        callbacks=[lambda imputer, info: elapsed.append(info["elapsed"])], **settings,
    )
    imputer.fit(X)
    return len(X) / (elapsed[1] - elapsed[0])


# -- inference ---------------------------------------------------------------------------------
SETTINGS = [None, 200, 100, 50, 25]  # min_effective_samples
LARGE_SETTINGS = [None, 50]  # measured again on 20,000 rows
N_SAMPLES = 1000  # n_impute_samples = n_score_samples
N_DRAWS = 40  # sample_imputations
LEVEL = 0.90  # central interval for coverage
CALLS = {
    "transform": lambda imputer, X: imputer.transform(X),
    "score_samples": lambda imputer, X: imputer.score_samples(X),
    "sample_imputations": lambda imputer, X: imputer.sample_imputations(X, N_DRAWS),
}


def label(setting) -> str:
    return "None" if setting is None else str(setting)


def hide_half(X: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``X`` with 50 % of its entries hidden completely at random; a row left empty gets one
    random entry back. Returns the masked copy and the observed mask."""
    X_missing, observed = make_mcar(X, 0.5, random_state=seed)
    rng = np.random.RandomState(seed)
    for row in np.flatnonzero(~observed.any(axis=1)):
        column = rng.randint(X.shape[1])
        observed[row, column] = True
        X_missing[row, column] = X[row, column]
    return X_missing, observed


def fit_or_load(train: np.ndarray, model_path: Path | None, quick: bool) -> tuple[MixtureVAEImputer, str]:
    """The imputer under test and a sentence on where it came from."""
    if model_path is not None and model_path.exists():
        imputer = skmissvae.load(model_path)
        return imputer, (f"Model loaded from `{model_path}` ({imputer.n_iter_} epochs): an imputer fitted "
                         "as this script fits it, saved earlier (`--model`).")
    X_train = make_mcar(train[:2_000] if quick else train, 0.5, drop_empty_rows=True, random_state=0)[0]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    start = time.perf_counter()
    imputer = MixtureVAEImputer(latent_dim=2, random_state=0, **({"max_iter": 2} if quick else {})).fit(X_train)
    fit_time = time.perf_counter() - start
    torch.set_num_threads(threads)
    if model_path is not None:
        skmissvae.save(imputer, model_path)
    return imputer, (f"Model fitted in this run on {len(X_train):,} rows: {imputer.n_iter_} epochs in "
                     f"{duration(fit_time)} (one torch thread).")


def probe(spec: dict) -> dict:
    """One inference call in this (fresh) process: its time and how far it raises the
    resident set above what it was before the call."""
    torch.set_num_threads(spec["threads"])
    imputer = skmissvae.load(spec["model"]).set_params(min_effective_samples=spec["setting"])
    X = np.load(spec["data"])["X"]
    call = CALLS[spec["call"]]
    call(imputer, X[:64])  # one-off start-up costs (kernels, thread pools) are not counted
    gc.collect()
    reset = reset_peak()
    before = status_kib("VmRSS")
    start, cpu = time.perf_counter(), time.process_time()
    call(imputer, X)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    if reset and before is not None:
        peak = status_kib("VmHWM")
        how = "VmHWM"
    else:  # the process's peak since it started, which may predate the call
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        how = "ru_maxrss"
    return {"seconds": seconds, "cpu_seconds": cpu_seconds, "rss_before_mib": (before or 0) / 1024, "peak_mib": peak / 1024,
            "added_mib": (peak - (before or 0)) / 1024, "how": how}


def run_probe(model: Path, data: Path, setting, call: str, threads: int = 1) -> dict:
    spec = {"model": str(model), "data": str(data), "setting": setting, "call": call, "threads": threads}
    out = subprocess.run([sys.executable, __file__, "--probe", json.dumps(spec)], check=True,
                         capture_output=True, text=True, cwd=Path(__file__).parent)
    return json.loads(out.stdout.strip().splitlines()[-1])


def accuracy(imputer, test, X_missing, observed) -> dict:
    hidden = ~observed
    draws = imputer.sample_imputations(X_missing, N_DRAWS)
    low, high = np.quantile(draws, [(1 - LEVEL) / 2, (1 + LEVEL) / 2], axis=0)
    inside = (low <= test) & (test <= high)
    return {
        "rmse": imputation_rmse(test, imputer.transform(X_missing), hidden),
        "score_masked": float(imputer.score_samples(X_missing).mean()),
        "score_complete": float(imputer.score_samples(test).mean()),
        "coverage": float(inside[hidden].mean()),
    }


def inference(args) -> None:
    start = time.perf_counter()
    train, test, _ = load_toy(args.data)
    n_test = 200 if args.quick else len(test)
    n_large = 2_000 if args.quick else 20_000
    repeats = 1 if args.quick else args.repeats
    test = test[:n_test]
    X_missing, observed = hide_half(test, seed=1)
    imputer, origin = fit_or_load(train, args.model, args.quick)
    imputer.set_params(n_impute_samples=N_SAMPLES, n_score_samples=N_SAMPLES)
    records = []

    def record(measure, value, **keys):
        records.append({"measure": measure, "n_rows": n_test, "threads": 1, "repeat": 0,
                        "min_effective_samples": "", "call": "", **keys, "value": value})

    # Accuracy (random_state=0 as fitted; the None setting again with random_state=1).
    for setting, seed in [(s, 0) for s in SETTINGS] + [(None, 1)]:
        imputer.set_params(min_effective_samples=setting, random_state=seed)
        for name, value in accuracy(imputer, test, X_missing, observed).items():
            record(name, value, min_effective_samples=label(setting) + ("" if seed == 0 else f" (seed {seed})"))
    imputer.set_params(random_state=0)
    print("accuracy done", flush=True)

    # Speed in this process, settings interleaved within each repeat.
    default_threads = torch.get_num_threads()
    for threads in args.threads:
        torch.set_num_threads(threads)
        for call in CALLS.values():  # untimed warm-up
            call(imputer, X_missing[:64])
        for repeat in range(repeats):
            for setting in SETTINGS:
                imputer.set_params(min_effective_samples=setting)
                for name, call in CALLS.items():
                    begin, cpu = time.perf_counter(), time.process_time()
                    call(imputer, X_missing)
                    wall, cpu = time.perf_counter() - begin, time.process_time() - cpu
                    keys = {"threads": threads, "repeat": repeat, "min_effective_samples": label(setting),
                            "call": name}
                    record("rows_per_s", n_test / wall, **keys)
                    record("rows_per_cpu_s", n_test / cpu, **keys)
            print("speed", threads, "threads, repeat", repeat, flush=True)
    torch.set_num_threads(default_threads)

    # Memory (and, at 20,000 rows, speed) in a fresh process per call.
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model if args.model is not None and args.model.exists() else Path(tmp) / "model.pt"
        if not model.exists():
            skmissvae.save(imputer, model)
        small, large = Path(tmp) / "small.npz", Path(tmp) / "large.npz"
        np.savez(small, X=X_missing)
        tiles = [hide_half(test, seed=100 + k)[0] for k in range(n_large // n_test)]
        np.savez(large, X=np.concatenate(tiles))
        for data, n_rows, settings in [(small, n_test, SETTINGS), (large, n_large, LARGE_SETTINGS)]:
            for setting in settings:
                for name in CALLS:
                    result = run_probe(model, data, setting, name)
                    keys = {"n_rows": n_rows, "min_effective_samples": label(setting), "call": name}
                    record("added_mib", result["added_mib"], **keys)
                    record("peak_mib", result["peak_mib"], **keys)
                    record("probe_rows_per_s", n_rows / result["seconds"], **keys)
                    record("probe_rows_per_cpu_s", n_rows / result["cpu_seconds"], **keys)
                    print("memory", n_rows, label(setting), name, round(result["added_mib"], 1),
                          round(result["seconds"], 1), result["how"], flush=True)
    frame = pd.DataFrame(records)
    RESULTS.mkdir(exist_ok=True)
    frame.to_csv(RESULTS / f"inference{'_quick' if args.quick else ''}.csv", index=False)
    write_inference_report(frame, args, origin, time.perf_counter() - start, n_test, n_large, repeats,
                           float((~observed).mean()))


def write_inference_report(frame, args, origin, wall_time, n_test, n_large, repeats, hidden_share) -> None:
    suffix = "_quick" if args.quick else ""
    command = "python benchmarks/throughput.py --inference" + (" --quick" if args.quick else "")
    order = [label(s) for s in SETTINGS]
    calls = list(CALLS)

    def pick(measure, **keys):
        rows = frame[frame["measure"] == measure]
        for key, value in keys.items():
            rows = rows[rows[key] == value]
        return rows

    # Speed: median rows/s (wall and CPU time) and the within-repeat ratio to None, median
    # over repeats.
    index = pd.MultiIndex.from_product([calls, order], names=["call", "min_effective_samples"])
    speed_table = pd.DataFrame(index=index)
    for threads in args.threads:
        for measure, unit in [("rows_per_s", "s"), ("rows_per_cpu_s", "CPU-s")]:
            rows = pick(measure, threads=threads, n_rows=n_test)
            wide = rows.pivot_table(index=["repeat", "call"], columns="min_effective_samples", values="value")
            ratio = wide.div(wide["None"], axis=0).groupby("call").median().stack().reindex(index)
            speed = wide.groupby("call").median().stack().reindex(index)
            speed_table[f"{threads} thr: rows/{unit}"] = speed.map("{:,.0f}".format)
            speed_table[f"{threads} thr: × None ({'wall' if unit == 's' else 'CPU'})"] = ratio.map("{:.1f}".format)

    # Memory and the 20,000-row runs.
    memory = pick("added_mib").pivot_table(index=["n_rows", "min_effective_samples"], columns="call", values="value")
    probe_speed = pick("probe_rows_per_s").pivot_table(index=["n_rows", "min_effective_samples"], columns="call",
                                                       values="value")
    peak = pick("peak_mib").pivot_table(index=["n_rows", "min_effective_samples"], columns="call", values="value")
    memory_table = pd.DataFrame(index=memory.index)
    for call in calls:
        memory_table[f"{call} MiB added"] = memory[call].map("{:.0f}".format)
    memory_table["largest peak RSS MiB"] = peak.max(axis=1).map("{:.0f}".format)
    for call in calls:
        memory_table[f"{call} rows/s"] = probe_speed[call].map("{:,.0f}".format)
    probe_cpu = pick("probe_rows_per_cpu_s").pivot_table(index=["n_rows", "min_effective_samples"],
                                                         columns="call", values="value")
    for call in calls:
        memory_table[f"{call} rows/CPU-s"] = probe_cpu[call].map("{:,.0f}".format)
    key = [(n, s) for n in (n_test, n_large) for s in order if (n, s) in memory_table.index]
    memory_table = memory_table.loc[key]

    # Accuracy against the None setting of the same seed.
    acc = frame[frame["measure"].isin(["rmse", "score_masked", "score_complete", "coverage"])]
    acc = acc.pivot_table(index="min_effective_samples", columns="measure", values="value")
    acc = acc.loc[order + [i for i in acc.index if i not in order]]
    base = acc.loc["None"]
    accuracy_table = pd.DataFrame(index=acc.index)
    accuracy_table["RMSE"] = acc["rmse"].map("{:.4f}".format)
    accuracy_table["Δ RMSE"] = ((acc["rmse"] / base["rmse"] - 1) * 100).map("{:+.2f} %".format)
    accuracy_table["score, masked rows"] = acc["score_masked"].map("{:.4f}".format)
    accuracy_table["Δ masked (nats/row)"] = (acc["score_masked"] - base["score_masked"]).map("{:+.4f}".format)
    accuracy_table["score, complete rows"] = acc["score_complete"].map("{:.4f}".format)
    accuracy_table["Δ complete (nats/row)"] = (acc["score_complete"] - base["score_complete"]).map("{:+.4f}".format)
    accuracy_table["90 % coverage"] = acc["coverage"].map("{:.3f}".format)

    ceiling = LEVEL * (N_DRAWS - 1) / (N_DRAWS + 1)
    body = [
        f"{origin} Test rows: {n_test:,} complete toy test rows with {hidden_share:.1%} of their entries "
        f"hidden (50 % MCAR, one entry revealed again in rows left empty); `n_impute_samples = "
        f"n_score_samples = {N_SAMPLES}`, drawn in rounds of 32 per row; `min_effective_samples` "
        "stops a row once the effective sample size of its weights reaches it (None: all 1,000).\n",
        "## Speed\n",
        f"Rows per second on the {n_test:,} test rows, median of {repeats} repeat(s) in one process; "
        "`thr`: torch threads; `rows/s` from wall time, `rows/CPU-s` from the process's CPU time "
        "(all threads), which other processes on the machine disturb less; `× None` is the speed-up "
        "over the None setting, taken within each repeat, median over repeats. "
        f"`sample_imputations` draws {N_DRAWS} completed copies.\n",
    ]
    body.append(markdown_table(speed_table))
    body += [
        "## Memory, and 20,000 rows\n",
        "Each call in a fresh process (one torch thread) after an untimed warm-up call on 64 rows: "
        "`MiB added` is the rise of the resident set's high-water mark during the call over the "
        "resident set before it (it includes the call's output); `largest peak RSS` is the whole "
        "process's high-water mark (interpreter, torch, model and data included) over the three calls. "
        f"Rows/s (wall and CPU time) here are from that single run. The {n_large:,} rows are the test rows tiled "
        f"{n_large // n_test} times, each copy with a fresh mask.\n",
        markdown_table(memory_table),
        "## Accuracy\n",
        "On the same test rows, `random_state=0`; the last row repeats the None setting with "
        "`random_state=1`, the Monte-Carlo noise of the None setting itself. `RMSE`: `transform` "
        "on the hidden entries against the truth; `score`: mean `score_samples` of the masked and "
        f"of the complete test rows; coverage of the central {LEVEL:.0%} intervals of the "
        f"{N_DRAWS} draws over the hidden entries (exact draws would cover "
        f"{LEVEL:.0%}·(M−1)/(M+1) = {ceiling:.3f} on average).\n",
        markdown_table(accuracy_table),
    ]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"inference{suffix}.md").write_text(
        header("Inference speed, memory and accuracy", command, wall_time) + "\n".join(body))
    print((RESULTS / f"inference{suffix}.md").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description="Training throughput, or (--inference) inference speed, memory and accuracy.")
    parser.add_argument("--quick", action="store_true",
                        help="tiny tables, one repeat (with --inference: 2 epochs, 200 test rows)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--inference", action="store_true",
                        help="measure inference (transform, score_samples, sample_imputations) on the toy data")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                        help="torch thread counts for the inference speed runs")
    parser.add_argument("--data", type=Path, default=TOY_DATA, help=f"the toy data (default {TOY_DATA})")
    parser.add_argument("--model", type=Path, default=None,
                        help="load the fitted imputer from this file, or fit it and save it there")
    parser.add_argument("--probe", help=argparse.SUPPRESS)  # one inference call (a child process)
    args = parser.parse_args()
    if args.probe:
        print(json.dumps(probe(json.loads(args.probe))))
        return
    if args.inference:
        inference(args)
        return
    start = time.perf_counter()
    repeats = 1 if args.quick else args.repeats
    # An untimed warm-up fit: the first fit in a process pays one-off start-up costs.
    rows_per_second("MVAE", make_table(500, 5), {"latent_dim": 2})
    rows = []
    for name, n_rows, n_cols, settings in TABLES:
        if args.quick:
            n_rows = 2_000
        X = make_table(n_rows, n_cols)
        for repeat in range(repeats):
            speeds = {m: rows_per_second(m, X, settings) for m in VARIANTS}
            for method, speed in speeds.items():
                rows.append({
                    "table": name, "method": method, "repeat": repeat, "rows_per_s": speed,
                    # Step-time ratio to the Gaussian-encoder VAE of the same objective
                    # (DeMissVAE's objectives are ELBOs).
                    "step_time_vs_gaussian": speeds["MIWAE" if "IWAE" in method else "MVAE"] / speed,
                })
            print(name, repeat, {m: round(s) for m, s in speeds.items()}, flush=True)
    frame = pd.DataFrame(rows)
    summary = frame.groupby(["table", "method"], sort=False)[["rows_per_s", "step_time_vs_gaussian"]].median()
    RESULTS.mkdir(exist_ok=True)
    suffix = "_quick" if args.quick else ""
    frame.to_csv(RESULTS / f"throughput{suffix}.csv", index=False)
    command = "python benchmarks/throughput.py" + (" --quick" if args.quick else "")
    with open(RESULTS / f"throughput{suffix}.md", "w") as f:
        f.write(header("Training throughput", command, time.perf_counter() - start))
        f.write(f"Median of {repeats} repeat(s); rows/s = rows / time of the second epoch "
                "(early stopping off; includes DeMissVAE's sampler). "
                "`step_time_vs_gaussian` is the step-time ratio to the single-Gaussian encoder "
                "with the same objective (MVAE for ELBO methods, MIWAE for IWELBO methods), "
                "measured within each repeat.\n\n")
        f.write(markdown_table(summary, "{:.2f}"))
    print(summary.round(2).to_string())


if __name__ == "__main__":
    main()
