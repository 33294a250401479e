"""Small helpers shared by the benchmark scripts: paths, Markdown tables and result headers."""

from __future__ import annotations

import ast
import platform
import sys
from pathlib import Path

import pandas as pd
import torch

RESULTS = Path(__file__).resolve().parent / "results"
#: The paper's toy data with its true mixture parameters, beside the checkout when present.
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mog2_large.npz"


def markdown_table(frame: pd.DataFrame, floatfmt: str = "{:.4g}") -> str:
    """A pipe table of ``frame`` (index included) without the optional tabulate package."""
    frame = frame.reset_index()
    cells = [[floatfmt.format(v) if isinstance(v, float) else str(v) for v in row] for row in frame.itertuples(index=False)]
    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    return "\n".join([header, rule] + ["| " + " | ".join(row) + " |" for row in cells]) + "\n"


def header(title: str, command: str) -> str:
    return (
        f"# {title}\n\nCommand: `{command}`  \n"
        f"Machine: {platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}, Python {sys.version.split()[0]}\n\n"
    )


def save_report(stem: str, frame: pd.DataFrame, title: str, command: str, body: str,
                index: bool = False) -> None:
    """Write ``frame`` to ``results/<stem>.csv`` and the Markdown report (the header with the
    command that made it, then ``body``) to ``results/<stem>.md``."""
    RESULTS.mkdir(exist_ok=True)
    frame.to_csv(RESULTS / f"{stem}.csv", index=index)
    (RESULTS / f"{stem}.md").write_text(header(title, command) + body)


def parse_settings(items: list[str]) -> dict:
    """``["name=value", ...]`` -> ``{name: value}``, values read as Python literals when they are."""
    settings = {}
    for item in items:
        name, _, value = item.partition("=")
        try:
            settings[name] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            settings[name] = value
    return settings
