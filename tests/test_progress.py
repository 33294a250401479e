"""Progress display of ``verbose`` (tqdm on standard error) and the callbacks hook."""

from __future__ import annotations

import io
import logging
import pickle
import re

import pytest

from _helpers import script_validation
from skmissvae._progress import TrainingProgress

# tqdm's "elapsed<left" field, e.g. "[00:01<00:03, 2.10epoch/s" (left is "?" before a rate).
TIME_LEFT = re.compile(r"\[\d\d:\d\d<(\d\d:\d\d|\?)")


def _info(epoch, loss=1.0, score=-1.0, error=0.05, elapsed=None):
    return {"epoch": epoch, "loss": loss, "validation_score": score,
            "validation_standard_error": error,
            "elapsed": epoch * 0.5 if elapsed is None else elapsed}


def _final_bar(text: str) -> str:
    """The bar as last drawn: tqdm redraws in place with carriage returns."""
    return text.rstrip("\n").split("\r")[-1].strip()


@pytest.fixture
def no_bar(monkeypatch):
    """Make any attempt to create a tqdm bar fail."""
    import tqdm.auto

    def refuse(*args, **kwargs):
        raise AssertionError("a tqdm bar was created")

    monkeypatch.setattr(tqdm.auto, "tqdm", refuse)


# -- through fit ---------------------------------------------------------------------------
def test_verbose_0_prints_nothing(make_imputer, X_missing, capsys, no_bar):
    make_imputer(verbose=0).fit(X_missing)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == ""


def test_verbose_1_draws_a_bar_on_standard_error(make_imputer, X_missing, capsys):
    imputer = make_imputer(verbose=1, max_iter=4).fit(X_missing)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.endswith("\n")  # closed: the bar's line is ended
    assert captured.err.count("\n") == 1  # one bar, redrawn in place
    final = _final_bar(captured.err)
    assert final.startswith("MixtureVAEImputer: 100%")
    assert "4/4" in final
    assert f"loss={imputer.loss_curve_[-1]:.4f}" in final
    assert f"validation={imputer.validation_scores_[-1]:.4f}" in final
    assert TIME_LEFT.search(final)


def test_verbose_1_early_stopping_leaves_the_bar_at_the_last_epoch(make_imputer, X_missing,
                                                                   capsys, monkeypatch):
    script_validation(monkeypatch, [-1.0, -2.0])
    imputer = make_imputer(verbose=1, max_iter=50, early_stopping=True, validation_split="entries",
                           n_iter_no_change=1).fit(X_missing)
    assert imputer.n_iter_ == 2 and imputer.refitted_
    err = capsys.readouterr().err
    search, refit = err.rstrip("\n").split("\n")  # the search's bar, then the refit's
    assert _final_bar(search).startswith("MixtureVAEImputer:   4%")
    assert " 2/50 " in _final_bar(search)
    assert _final_bar(refit).startswith("MixtureVAEImputer refit: 100%")
    assert " 1/1 " in _final_bar(refit)


def test_verbose_2_prints_one_line_per_epoch_and_no_bar(make_imputer, X_missing, capsys, no_bar):
    imputer = make_imputer(verbose=2, max_iter=5).fit(X_missing)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "\r" not in captured.err
    lines = captured.err.splitlines()
    assert [line.split(":")[0] for line in lines] == [
        f"MixtureVAEImputer epoch {epoch}/5" for epoch in range(1, 6)]
    for line, loss, score in zip(lines, imputer.loss_curve_, imputer.validation_scores_):
        assert f"loss {loss:.4f}, validation {score:.4f}" in line
        assert re.search(r", \d+\.\ds$", line)  # elapsed seconds


def test_fitted_estimator_keeps_no_progress_state(make_imputer, X_missing, capsys):
    imputer = make_imputer(verbose=1).fit(X_missing)
    assert "_progress" not in vars(imputer)
    pickle.loads(pickle.dumps(imputer))


_COPIES = []


def _pickle_imputer(imputer, info):
    _COPIES.append(pickle.dumps(imputer))


def test_estimator_can_be_pickled_while_the_bar_is_showing(make_imputer, X_missing, capsys):
    _COPIES.clear()
    make_imputer(verbose=1, callbacks=[_pickle_imputer]).fit(X_missing)
    assert len(_COPIES) == 3
    pickle.loads(_COPIES[-1])
    assert capsys.readouterr().err.count("\n") == 1  # one bar, nothing drawn by the copies


def test_a_copied_display_draws_nothing():
    out = io.StringIO()
    progress = TrainingProgress(3, verbose=1, file=out)
    progress.update(_info(1))
    copy = pickle.loads(pickle.dumps(progress))
    assert copy._bar is None and copy.file is None
    copy.update(_info(2))
    copy.close()
    progress.close()
    assert out.getvalue().count("\n") == 1 and " 1/3 " in _final_bar(out.getvalue())


# -- the display on its own ----------------------------------------------------------------
def test_bar_shows_epochs_loss_validation_and_time_left():
    out = io.StringIO()
    progress = TrainingProgress(3, verbose=1, label="demo", file=out)
    progress.update(_info(1, loss=1.5, score=-1.25))
    progress.update(_info(2, loss=1.25, score=-1.125))
    progress.close()
    text = out.getvalue()
    assert text.endswith("\n") and text.count("\n") == 1
    final = _final_bar(text)
    assert final.startswith("demo:  67%")
    assert "2/3 [" in final
    assert final.endswith("loss=1.2500, validation=-1.1250]")
    assert TIME_LEFT.search(final)


def test_bar_writes_to_standard_error_by_default(capsys):
    progress = TrainingProgress(2, verbose=1)
    progress.update(_info(1))
    progress.update(_info(2))
    progress.close()
    captured = capsys.readouterr()
    assert captured.out == ""
    final = _final_bar(captured.err)
    assert final.startswith("100%") and "2/2" in final and "loss=1.0000" in final


def test_bar_takes_epochs_as_they_come():
    """Epochs are absolute: a skipped or repeated number moves the bar to it, never back."""
    out = io.StringIO()
    progress = TrainingProgress(10, verbose=1, file=out)
    progress.update(_info(3))
    progress.update(_info(3))
    progress.update(_info(7))
    assert progress._bar.n == 7
    progress.close()
    assert " 7/10 " in _final_bar(out.getvalue())


def test_non_finite_and_missing_numbers_are_shown():
    out = io.StringIO()
    progress = TrainingProgress(2, verbose=2, file=out)
    progress.update({"epoch": 1, "loss": float("nan"), "validation_score": float("-inf")})
    progress.update({"epoch": 2})
    assert out.getvalue().splitlines() == [
        "epoch 1/2: loss nan, validation -inf",
        "epoch 2/2: loss ?",
    ]


def test_lines_show_the_standard_error_and_elapsed_time(capsys):
    progress = TrainingProgress(100, verbose=2, label="demo")
    progress.update(_info(12, loss=0.5, score=-0.75, error=0.125, elapsed=61.25))
    progress.close()
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "demo epoch 12/100: loss 0.5000, validation -0.7500 (+/- 0.1250), 61.2s\n"


def test_verbose_0_creates_no_bar_and_writes_nothing(capsys, no_bar):
    progress = TrainingProgress(3, verbose=0)
    progress.update(_info(1))
    progress.close()
    assert capsys.readouterr() == ("", "")


def test_close_ends_the_display_once():
    out = io.StringIO()
    progress = TrainingProgress(3, verbose=1, file=out)
    progress.update(_info(1))
    progress.close()
    after_close = out.getvalue()
    progress.close()
    progress.update(_info(2))  # too late: ignored
    assert out.getvalue() == after_close
    assert progress._bar is None


def test_close_without_epochs_leaves_an_empty_bar():
    out = io.StringIO()
    progress = TrainingProgress(3, verbose=1, file=out)
    progress.close()
    assert " 0/3 " in _final_bar(out.getvalue()) and out.getvalue().endswith("\n")


def test_updates_after_close_print_no_lines():
    out = io.StringIO()
    progress = TrainingProgress(3, verbose=2, file=out)
    progress.close()
    progress.update(_info(1))
    assert out.getvalue() == ""


# -- callbacks ---------------------------------------------------------------------------
def test_callbacks_feed_the_logging_module(make_imputer, X_missing, caplog):
    """The user guide's logging example: a callback that logs every epoch."""
    logger = logging.getLogger("my_experiment")

    def log_epoch(imputer, info):
        logger.info("epoch %d loss %.4f validation %.4f", info["epoch"], info["loss"],
                    info["validation_score"])

    with caplog.at_level(logging.INFO, logger="my_experiment"):
        imputer = make_imputer(max_iter=3, callbacks=[log_epoch]).fit(X_missing)
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 3
    assert messages[-1].startswith(f"epoch 3 loss {imputer.loss_curve_[-1]:.4f}")
