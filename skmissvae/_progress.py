"""Training progress shown by ``verbose``: dependency-free and safe in notebooks.

On an interactive terminal one status line is rewritten in place with ``\\r``; on any other
stream (a notebook cell, a log file, a pipe) carriage returns would pile up or be lost, so a
plain line is printed about every 10 % of ``max_iter`` and once more at the end. This module
imports only the standard library: it is loaded by every ``fit``.
"""

from __future__ import annotations

import math
import shutil
import sys
import time

__all__ = ["TrainingProgress", "format_duration"]

_BAR_WIDTH = 20
# Redraws of the in-place line closer together than this are skipped (fast epochs would
# otherwise spend their time writing to the terminal).
_MIN_REDRAW_SECONDS = 0.1


def format_duration(seconds: float) -> str:
    """``"4.2s"``, ``"3m05s"`` or ``"1h02m"``; ``"?"`` for an unknown duration."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _is_terminal(stream) -> bool:
    # ipykernel's streams and pytest's capture report False; broken streams count as files.
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


class TrainingProgress:
    """Show epoch, loss, validation score, elapsed and remaining time during ``fit``.

    Parameters
    ----------
    max_epochs : int
        Epochs planned (``max_iter``); early stopping may end training sooner, so the time
        left is an upper estimate.
    verbose : int, default=1
        0 prints nothing; 1 a progress line (rewritten in place on a terminal, about ten
        plain lines elsewhere); 2 or more a plain line after every epoch.
    label : str, default=""
        Printed at the start of each line, e.g. the estimator's class name.
    stream : file-like, default=None
        Where to write; None means ``sys.stdout`` as it is at each write (so redirections
        made after construction, such as pytest's ``capsys``, are honoured).

    Examples
    --------
    >>> import io
    >>> out = io.StringIO()
    >>> progress = TrainingProgress(2, label="demo", stream=out)
    >>> progress.update({"epoch": 1, "loss": 1.5, "validation_score": -1.4, "elapsed": 0.5})
    >>> progress.update({"epoch": 2, "loss": 1.2, "validation_score": -1.3, "elapsed": 1.0})
    >>> progress.close()
    >>> print(out.getvalue().splitlines()[-1])
    demo epoch 2/2 [####################] loss 1.2000  validation -1.3000 (best -1.3000)  1.0s
    """

    def __init__(self, max_epochs: int, verbose: int = 1, label: str = "", stream=None) -> None:
        self.max_epochs = int(max_epochs)
        self.verbose = int(verbose)
        self.label = label
        self.stream = stream
        self._last = None  # the latest epoch's info
        self._first = None  # (epoch, elapsed) of the first epoch seen
        self._best = -math.inf
        self._printed_epoch = 0  # the epoch of the latest line written
        self._line_length = 0  # characters of the in-place line, to blank leftovers
        self._last_draw = -math.inf
        self._closed = False

    # -- public -----------------------------------------------------------------------
    def update(self, info: dict) -> None:
        """Record one epoch's ``{"epoch", "loss", "validation_score", "elapsed"}``.

        Parameters
        ----------
        info : dict
            The summary that the training loop passes to callbacks (epochs from 1, elapsed
            seconds since training started).
        """
        if self.verbose <= 0 or self._closed:
            return
        self._last = info
        if self._first is None:
            self._first = (int(info["epoch"]), float(info.get("elapsed", math.nan)))
        score = info.get("validation_score", math.nan)
        if score is not None and math.isfinite(score):
            self._best = max(self._best, score)
        epoch = int(info["epoch"])
        if self.verbose == 1 and self._terminal():
            if time.perf_counter() - self._last_draw >= _MIN_REDRAW_SECONDS:
                self._write_in_place(self._terminal_line(final=False))
        elif epoch < self.max_epochs and (self.verbose >= 2 or epoch % self._plain_step() == 0):
            # The last planned epoch is left to ``close``, which prints it with the total time.
            self._write_plain(self._format(final=False))

    def close(self) -> None:
        """Write the final line (the last epoch, with the total time) and end the line."""
        if self.verbose <= 0 or self._closed:
            return
        self._closed = True
        if self._last is None:
            return
        if self._line_length:  # an in-place line is showing: overwrite it and end it
            self._write_in_place(self._terminal_line(final=True))
            self._emit("\n")
        elif self._printed_epoch != int(self._last["epoch"]):
            self._write_plain(self._format(final=True))

    # -- formatting -------------------------------------------------------------------
    def _format(self, final: bool, short: bool = False) -> str:
        info = self._last
        epoch, elapsed = int(info["epoch"]), float(info.get("elapsed", math.nan))
        bar_width = _BAR_WIDTH // 2 if short else _BAR_WIDTH
        filled = min(bar_width, round(bar_width * epoch / self.max_epochs))
        width = len(str(self.max_epochs))
        parts = [
            f"{self.label} " if self.label and not short else "",
            f"epoch {epoch:>{width}d}/{self.max_epochs} ",
            f"[{'#' * filled}{'.' * (bar_width - filled)}] ",
            f"loss {_number(info.get('loss'))}",
        ]
        score = info.get("validation_score")
        if score is not None and short:
            parts.append(f"  val {_number(score)}")
        elif score is not None:
            parts.append(f"  validation {_number(score)} (best {_number(self._best)})")
        if final:
            parts.append(f"  {format_duration(elapsed)}")
        else:
            left = format_duration(self._seconds_per_epoch(epoch, elapsed) * (self.max_epochs - epoch))
            parts.append(f"  {format_duration(elapsed)}, <= {left} left" if short
                         else f"  {format_duration(elapsed)} elapsed, <= {left} left")
        return "".join(parts)

    def _terminal_line(self, final: bool) -> str:
        # A line wider than the terminal wraps, and ``\r`` then returns only to the start of
        # its last row: every redraw would leave a row behind. Shorten, then cut.
        columns = max(20, shutil.get_terminal_size().columns - 1)
        line = self._format(final)
        if len(line) > columns:
            line = self._format(final, short=True)
        return line[:columns]

    def _seconds_per_epoch(self, epoch: int, elapsed: float) -> float:
        # The first epoch carries one-off costs (allocation, kernel warm-up) that can exceed
        # many later epochs: extrapolate from the epochs after it once there are some.
        first_epoch, first_elapsed = self._first
        if epoch > first_epoch:
            return (elapsed - first_elapsed) / (epoch - first_epoch)
        return elapsed / epoch if epoch else math.nan

    def _plain_step(self) -> int:
        return max(1, math.ceil(self.max_epochs / 10))

    # -- writing ----------------------------------------------------------------------
    def _out(self):
        return sys.stdout if self.stream is None else self.stream

    def _terminal(self) -> bool:
        return _is_terminal(self._out())

    def _emit(self, text: str) -> None:
        out = self._out()
        out.write(text)
        out.flush()

    def _write_plain(self, line: str) -> None:
        self._emit(line + "\n")
        self._printed_epoch = int(self._last["epoch"])

    def _write_in_place(self, line: str) -> None:
        padding = " " * max(0, self._line_length - len(line))
        self._emit("\r" + line + padding)
        self._line_length = len(line)
        self._printed_epoch = int(self._last["epoch"])
        self._last_draw = time.perf_counter()


def _number(value) -> str:
    if value is None:
        return "?"
    return f"{value:.4f}" if math.isfinite(value) else str(value)
