"""Our imputers against MissForest over all nine tables, pooled from the imputation runs.

The imputation benchmark runs tables in parts: the five tables of at most 1,030 rows with
5 seeds (``results/imputation*.csv``), the four longer ones at full size with 3 seeds
(``results/full_*.csv``). This script reads the CSVs listed in ``SOURCES`` and reports, per
table, each of our methods' error relative to MissForest's (mean over the four protocols
of the ratio of mean errors), the (protocol, table) pairs it wins, and the average rank
among mean, KNN, MICE, MissForest and it. A method not run on a table falls back to
``FALLBACK`` there, and the report says so.

Usage::

    python benchmarks/nine_tables.py

Writes ``benchmarks/results/nine_tables.md`` and ``.csv``.
"""

from __future__ import annotations

import pandas as pd

from _report import RESULTS, header, markdown_table

SMALL = ["breast_cancer", "concrete", "diabetes", "iris", "wine"]
LONG = ["letter", "red_wine", "spambase", "yeast"]
# {CSV stem: the tables taken from it}; our methods' "+semi" labels are dropped (the
# long tables were run with the --semicontinuous 0.3 rule, which declares no column in
# letter or red wine).
SOURCES = {
    "imputation_baselines": SMALL,
    "imputation_g": SMALL,
    "imputation_h": SMALL,
    "imputation_x3_a": SMALL,
    "imputation_x3_b": SMALL,
    "full_baselines": LONG,
    "full_letter_a": LONG,
    "full_letter_b": LONG,
    "full_letter_c": LONG,
    "full_spam_a": LONG,
    "full_spam_b": LONG,
    "full_spam_c": LONG,
    "full_rw_x3": LONG,
    # yeast's ensemble ran in five parts, each 'python benchmarks/imputation.py --datasets
    # yeast --max-rows 20000 --steps 10000 --semicontinuous 0.3 --methods MIWAE-20x3' with:
    # 1: --seeds 0 1 (stopped after seed 0's miwae row; its partial CSV kept), 2: --seeds 0
    # --protocols gain mar30 mnar30, 3: --seeds 1 --protocols miwae gain mnar30, 4: --seeds 2,
    # 5: --seeds 1 --protocols mar30. Red wine: the same with --datasets red_wine --seeds 0 1 2.
    **{f"full_yeast_x3_{part}": LONG for part in range(1, 6)},
}
BASELINES = ["mean", "knn", "mice", "missforest"]
OURS = ["MIWAE-20", "MIWAE-20x3"]
FALLBACK = {"MIWAE-20x3": "MIWAE-20"}


def load() -> pd.DataFrame:
    parts = []
    for stem, tables in SOURCES.items():
        if not (RESULTS / f"{stem}.csv").exists():
            print(f"{stem}.csv not found; skipped")
            continue
        frame = pd.read_csv(RESULTS / f"{stem}.csv")
        frame["method"] = frame["method"].str.removesuffix("+semi")
        parts.append(frame[frame["dataset"].isin(tables)])
    return pd.concat(parts, ignore_index=True)


def main() -> None:
    frame = load()
    means = frame.groupby(["dataset", "protocol", "method"])["error"].mean().unstack("method")
    # A method counts on a (table, protocol) only with every seed MissForest has there.
    seeds = frame.groupby(["dataset", "protocol", "method"])["seed"].nunique().unstack("method")
    means = means.where(seeds.ge(seeds["missforest"], axis=0))
    rows, notes = [], []
    for ours in OURS:
        column = means[ours].copy()
        missing = column.isna()
        if missing.any() and ours in FALLBACK:
            column[missing] = means[FALLBACK[ours]][missing]
            tables = sorted(set(column[missing].index.get_level_values("dataset")))
            notes.append(f"{ours}: not run (with every seed) on {', '.join(tables)}; {FALLBACK[ours]}'s "
                         "errors stand in there.")
        ratio = column / means["missforest"]
        ranks = pd.concat([means[BASELINES], column.rename(ours)], axis=1).rank(axis=1)
        for table, sub in ratio.groupby(level="dataset"):
            rows.append({"method": ours, "dataset": table, "ratio_to_missforest": sub.mean(),
                         "pairs_won": int((sub < 1).sum()), "pairs": len(sub),
                         "rank": ranks.loc[table, ours].mean(), "missforest_rank": ranks.loc[table, "missforest"].mean()})
    result = pd.DataFrame(rows)
    result.to_csv(RESULTS / "nine_tables.csv", index=False)
    with open(RESULTS / "nine_tables.md", "w") as f:
        f.write(header("Our imputers against MissForest on all nine tables", "python benchmarks/nine_tables.py"))
        f.write("Small tables (breast_cancer, concrete, diabetes, iris, wine): 5 seeds, 1,000 optimiser "
                "steps. Long tables (letter 20,000 rows, red wine 1,599, spambase 4,601, yeast 1,484): "
                "full size, 3 seeds, about 10,000 steps (20,000 for letter). Sources: "
                + ", ".join(f"`{s}.csv`" for s in SOURCES if (RESULTS / f"{s}.csv").exists()) + ".\n\n" + "".join(f"- {n}\n" for n in notes) + "\n")
        f.write("Ratio: the method's mean error over MissForest's, averaged over the four protocols "
                "(below 1: the method wins the table). Rank: average over the protocols among mean, KNN, "
                "MICE, MissForest and the method (1 = best).\n\n")
        table = result.pivot(index="dataset", columns="method", values="ratio_to_missforest")
        f.write(markdown_table(table, "{:.3f}"))
        f.write("\n| method | tables with ratio < 1 | pairs won | average rank | MissForest's average rank |\n|---|---|---|---|---|\n")
        for ours, sub in result.groupby("method"):
            f.write(f"| {ours} | {int((sub['ratio_to_missforest'] < 1).sum())} of {len(sub)} | "
                    f"{sub['pairs_won'].sum()} of {sub['pairs'].sum()} | {sub['rank'].mean():.2f} | "
                    f"{sub['missforest_rank'].mean():.2f} |\n")
    print(result.round(3).to_string(index=False))


if __name__ == "__main__":
    main()
