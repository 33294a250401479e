"""Training progress shown by ``verbose``, on standard error.

``verbose=1`` draws a `tqdm <https://tqdm.github.io>`_ bar over the planned epochs
(``tqdm.auto``: a widget in Jupyter when ipywidgets is installed, text elsewhere), with the
latest loss and validation score after it and tqdm's estimate of the time left.
``verbose=2`` writes one plain line per epoch instead, as scikit-learn's estimators do,
which suits log files. Standard output is never written to, so that a command line can
send data there.
"""

from __future__ import annotations

import math
import sys

__all__ = ["TrainingProgress"]


class TrainingProgress:
    """Show epoch, loss and validation score during ``fit``.

    Parameters
    ----------
    max_epochs : int
        Epochs planned (``max_iter``); early stopping may end training sooner, and the bar
        then stops short of its end.
    verbose : int, default=1
        0 shows nothing (and creates no bar); 1 a tqdm progress bar; 2 or more a plain
        line after every epoch.
    label : str, default=""
        Description of the bar, or start of each line, e.g. the estimator's class name.
    file : file-like, default=None
        Where to write; None means ``sys.stderr`` as it is when the bar is created (with
        ``verbose=1``) or at each line (with ``verbose=2``).

    Examples
    --------
    >>> import io
    >>> out = io.StringIO()
    >>> progress = TrainingProgress(2, verbose=2, label="demo", file=out)
    >>> progress.update({"epoch": 1, "loss": 1.5, "validation_score": -1.4,
    ...                  "validation_standard_error": 0.1, "elapsed": 0.5})
    >>> progress.close()
    >>> print(out.getvalue(), end="")
    demo epoch 1/2: loss 1.5000, validation -1.4000 (+/- 0.1000), 0.5s
    """

    def __init__(self, max_epochs: int, verbose: int = 1, label: str = "", file=None) -> None:
        self.max_epochs = int(max_epochs)
        self.verbose = int(verbose)
        self.label = label
        self.file = file
        self._bar = None
        self._closed = False
        if self.verbose == 1:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=self.max_epochs, desc=label or None, unit="epoch",
                             file=file, dynamic_ncols=True, leave=True)

    def update(self, info: dict) -> None:
        """Show one epoch's ``{"epoch", "loss", "validation_score", ...}``.

        Parameters
        ----------
        info : dict
            The summary that the training loop passes to callbacks: ``epoch`` (from 1),
            ``loss``, ``validation_score``, ``validation_standard_error`` and ``elapsed``
            (seconds since training started); any but ``epoch`` may be missing.
        """
        if self.verbose <= 0 or self._closed:
            return
        epoch = int(info["epoch"])
        if self._bar is not None:
            postfix = f"loss={_number(info.get('loss'))}"
            score = info.get("validation_score")
            if score is not None:
                postfix += f", validation={_number(score)}"
            self._bar.set_postfix_str(postfix, refresh=False)
            self._bar.update(max(0, epoch - self._bar.n))  # redraws at most ~10 times a second
            return
        line = f"epoch {epoch}/{self.max_epochs}: loss {_number(info.get('loss'))}"
        if self.label:
            line = f"{self.label} {line}"
        score = info.get("validation_score")
        if score is not None:
            line += f", validation {_number(score)}"
            error = info.get("validation_standard_error")
            if error:
                line += f" (+/- {_number(error)})"
        elapsed = info.get("elapsed")
        if elapsed is not None:
            line += f", {elapsed:.1f}s"
        print(line, file=sys.stderr if self.file is None else self.file, flush=True)

    def __getstate__(self):
        # A display pickled or copied (e.g. with an object that holds it mid-fit) draws nothing:
        # the bar and the stream stay with the original.
        state = dict(self.__dict__)
        state.update(_bar=None, file=None, _closed=True)
        return state

    def close(self) -> None:
        """Draw the bar's final state and end its line; calling it again does nothing."""
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _number(value) -> str:
    if value is None:
        return "?"
    value = float(value)
    return f"{value:.4f}" if math.isfinite(value) else str(value)
