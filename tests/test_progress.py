"""Progress display of ``verbose`` and the callbacks hook for users' own logging."""

from __future__ import annotations

import io
import logging
import pickle

import pytest

from _helpers import script_validation
from skmissvae._progress import TrainingProgress, format_duration


class _Terminal(io.StringIO):
    """A stream that says it is an interactive terminal."""

    def isatty(self):
        return True


def _info(epoch, loss=1.0, score=-1.0, elapsed=None):
    return {"epoch": epoch, "loss": loss, "validation_score": score,
            "elapsed": epoch * 0.5 if elapsed is None else elapsed}


def test_verbose_0_prints_nothing(make_imputer, X_missing, capsys):
    make_imputer(verbose=0).fit(X_missing)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == ""


def test_verbose_1_ends_with_a_line_holding_the_final_loss(make_imputer, X_missing, capsys):
    imputer = make_imputer(verbose=1, max_iter=4).fit(X_missing)
    out = capsys.readouterr().out
    assert "\r" not in out  # captured output is not a terminal: plain lines only
    lines = out.splitlines()
    assert lines, "verbose=1 printed nothing"
    last = lines[-1]
    assert "MixtureVAEImputer" in last
    assert "epoch 4/4" in last
    assert f"loss {imputer.loss_curve_[-1]:.4f}" in last
    assert f"validation {imputer.validation_scores_[-1]:.4f}" in last


def test_verbose_1_prints_about_ten_lines_off_a_terminal(make_imputer, X_missing, capsys):
    make_imputer(verbose=1, max_iter=20).fit(X_missing)
    lines = capsys.readouterr().out.splitlines()
    epochs = [int(line.split("epoch")[1].split("/")[0]) for line in lines]
    assert epochs == [2, 4, 6, 8, 10, 12, 14, 16, 18, 20]
    assert all("left" in line for line in lines[:-1])  # time left while running
    assert "left" not in lines[-1]  # total time at the end


def test_verbose_2_prints_every_epoch(make_imputer, X_missing, capsys):
    make_imputer(verbose=2, max_iter=5).fit(X_missing)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("epoch")[1].split("/")[0].strip() for line in lines] == ["1", "2", "3", "4", "5"]


def test_early_stopping_reports_the_last_epoch_run(make_imputer, X_missing, capsys, monkeypatch):
    script_validation(monkeypatch, [-1.0, -2.0])
    imputer = make_imputer(verbose=1, max_iter=50, early_stopping=True, validation_split="entries",
                           n_iter_no_change=1).fit(X_missing)
    assert imputer.n_iter_ == 2 and imputer.refitted_
    lines = capsys.readouterr().out.splitlines()
    # The search's last line names the epoch it stopped at; the refit reports on its own.
    search = [line for line in lines if line.startswith("MixtureVAEImputer epoch")]
    assert f"epoch {imputer.n_iter_:>2d}/50" in search[-1]
    assert lines[-1].startswith("MixtureVAEImputer refit epoch 1/1")


def test_fitted_estimator_keeps_no_progress_state(make_imputer, X_missing, capsys):
    imputer = make_imputer(verbose=1).fit(X_missing)
    assert "_progress" not in vars(imputer)
    pickle.loads(pickle.dumps(imputer))


def test_terminal_line_is_rewritten_in_place_and_ended(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    out = _Terminal()
    progress = TrainingProgress(3, label="demo", stream=out)
    for epoch in (1, 2, 3):
        progress.update(_info(epoch))
    progress.close()
    text = out.getvalue()
    assert text.startswith("\r") and text.endswith("\n")
    assert text.count("\n") == 1  # one line, rewritten
    final = text.rstrip("\n").split("\r")[-1].rstrip()
    assert final.startswith("demo epoch 3/3 [####################] loss 1.0000")
    assert final.endswith("1.5s")


def test_shorter_redraw_blanks_the_previous_line(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    out = _Terminal()
    progress = TrainingProgress(2, stream=out)
    progress.update(_info(1, loss=123456.0, score=-123456.0))
    first = out.getvalue()
    progress.close()
    redraw = out.getvalue()[len(first):].rstrip("\n")
    assert len(redraw) >= len(first)  # trailing spaces hide leftovers of a longer line


@pytest.mark.parametrize("columns", [80, 60, 30])
def test_terminal_line_fits_the_terminal(monkeypatch, columns):
    """A wrapped line cannot be rewritten in place: the line is shortened to fit."""
    monkeypatch.setenv("COLUMNS", str(columns))
    out = _Terminal()
    progress = TrainingProgress(200, label="MixtureVAEImputer", stream=out)
    for epoch in range(1, 4):
        progress.update(_info(epoch, loss=-1234.5678, score=-1234.5678))
    progress.close()
    redraws = out.getvalue().rstrip("\n").split("\r")[1:]
    assert redraws and all(len(line) <= columns - 1 for line in redraws)
    if columns >= 80:
        assert "epoch   3/200" in redraws[-1] and "loss -1234.5678" in redraws[-1]


def test_time_left_extrapolates_the_epoch_time():
    out = io.StringIO()
    progress = TrainingProgress(100, verbose=2, stream=out)
    progress.update(_info(1, elapsed=2.0))
    assert "2.0s elapsed, <= 3m18s left" in out.getvalue()  # 99 epochs of 2 s


def test_time_left_leaves_out_the_first_epochs_warm_up():
    out = io.StringIO()
    progress = TrainingProgress(100, verbose=2, stream=out)
    progress.update(_info(1, elapsed=5.0))  # one-off start-up costs
    progress.update(_info(11, elapsed=7.0))  # then 0.2 s per epoch
    assert "7.0s elapsed, <= 17.8s left" in out.getvalue().splitlines()[-1]


def test_best_score_is_the_maximum_seen():
    out = io.StringIO()
    progress = TrainingProgress(3, verbose=2, stream=out)
    for epoch, score in [(1, -3.0), (2, -1.0), (3, -2.0)]:
        progress.update(_info(epoch, score=score))
    progress.close()
    assert out.getvalue().splitlines()[-1].count("(best -1.0000)") == 1


def test_close_without_epochs_and_twice_is_silent():
    out = io.StringIO()
    progress = TrainingProgress(3, stream=out)
    progress.close()
    progress.close()
    assert out.getvalue() == ""


@pytest.mark.parametrize(
    "seconds, text",
    [(0.04, "0.0s"), (4.25, "4.2s"), (185, "3m05s"), (3725, "1h02m"), (float("inf"), "?"), (-1, "?")],
)
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


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
