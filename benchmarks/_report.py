"""Helpers shared by the benchmark scripts: paths, Markdown tables and report headers."""

from __future__ import annotations

import ast
import os
import platform
import sys
from pathlib import Path

import pandas as pd
import torch

RESULTS = Path(__file__).resolve().parent / "results"


def stop(message: str) -> None:
    """Say why the benchmark cannot run and exit with status 1."""
    print(f"{Path(sys.argv[0]).name}: {message}", file=sys.stderr)
    raise SystemExit(1)


def markdown_table(frame: pd.DataFrame, floatfmt: str = "{:.4g}") -> str:
    """A pipe table of ``frame`` (index included) without the optional tabulate package."""
    frame = frame.reset_index()
    cells = [[floatfmt.format(v) if isinstance(v, float) else str(v) for v in row] for row in frame.itertuples(index=False)]
    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    return "\n".join([header, rule] + ["| " + " | ".join(row) + " |" for row in cells]) + "\n"


def machine() -> str:
    """CPU, cores, memory, torch threads and versions of this process's machine."""
    try:
        memory = f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB memory, "
    except (ValueError, OSError, AttributeError):
        memory = ""
    return (f"{platform.machine()}, {os.cpu_count()} CPU cores, {memory}"
            f"torch threads: {torch.get_num_threads()}, torch {torch.__version__}, "
            f"Python {sys.version.split()[0]}")


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def header(title: str, command: str, wall_time: float | None = None) -> str:
    """Title, the command that wrote the report, and the machine and wall time of the run.

    ``wall_time=None`` marks a report rendered from saved results (``--merge``): the runs'
    machine and times are then in the report's note, not in the header.
    """
    if wall_time is None:
        where = "Rendered from saved results; the runs' machine and times are given below."
    else:
        where = f"Machine: {machine()}  \nWall time: {duration(wall_time)}"
    return f"# {title}\n\nCommand: `{command}`  \n{where}\n\n"


def save_report(stem: str, frame: pd.DataFrame, title: str, command: str, body: str,
                wall_time: float | None = None, index: bool = False) -> None:
    """Write ``frame`` to ``results/<stem>.csv`` and the Markdown report (the header with the
    command that made it, then ``body``) to ``results/<stem>.md``."""
    RESULTS.mkdir(exist_ok=True)
    frame.to_csv(RESULTS / f"{stem}.csv", index=index)
    (RESULTS / f"{stem}.md").write_text(header(title, command, wall_time) + body)


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


def status_kib(field: str) -> int | None:
    """A field of /proc/self/status in KiB (``VmRSS``, ``VmHWM``); None off Linux."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_peak() -> bool:
    """Reset the Linux VmHWM (not ru_maxrss) to the current RSS; False where impossible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False
