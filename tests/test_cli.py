"""The ``skmissvae`` command line, called in-process (and once as ``python -m skmissvae``)."""

from __future__ import annotations

import importlib.util
import io
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from skmissvae._cli import _build_model, _parser, exact_float_options, main

# The tiny fits stop at max_iter on purpose.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

FAST = ["--max-iter", "2", "--latent-dim", "2", "--device", "cpu", "-q"]
EXACT_FLOATS = exact_float_options()  # read floats back exactly as written
HAS_PARQUET = any(importlib.util.find_spec(m) for m in ("pyarrow", "fastparquet"))


@pytest.fixture
def csv_table(tmp_path, X_missing):
    """A CSV file of the shared 120 x 4 incomplete table, and the table as a DataFrame."""
    frame = pd.DataFrame(X_missing, columns=["height", "weight", "age", "income"])
    path = tmp_path / "data.csv"
    frame.to_csv(path, index=False)
    return path, frame


def _error(capsys) -> str:
    return capsys.readouterr().err


# -- impute -------------------------------------------------------------------------------
def test_impute_writes_a_complete_table_with_observed_cells_unchanged(csv_table, tmp_path):
    path, frame = csv_table
    before = path.read_bytes()
    out = tmp_path / "imputed.csv"
    assert main(["impute", str(path), "-o", str(out), *FAST]) == 0
    imputed = pd.read_csv(out, **EXACT_FLOATS)
    assert list(imputed.columns) == list(frame.columns)
    assert imputed.shape == frame.shape
    assert not imputed.isna().any().any()
    observed = frame.notna().to_numpy()
    np.testing.assert_array_equal(imputed.to_numpy()[observed], frame.to_numpy()[observed])
    assert path.read_bytes() == before  # the input file is never touched


def test_impute_is_reproducible_with_a_seed(csv_table, tmp_path):
    path, _ = csv_table
    outputs = []
    for name, seed in [("a.csv", "3"), ("b.csv", "3"), ("c.csv", "4")]:
        main(["impute", str(path), "-o", str(tmp_path / name), *FAST, "--random-state", seed])
        outputs.append(pd.read_csv(tmp_path / name).to_numpy())
    np.testing.assert_array_equal(outputs[0], outputs[1])
    assert not np.array_equal(outputs[0], outputs[2])


def test_multiple_imputation_writes_a_long_table(csv_table, tmp_path):
    path, frame = csv_table
    out = tmp_path / "draws.csv"
    assert main(["impute", str(path), "-o", str(out), "--n-imputations", "3", *FAST]) == 0
    draws = pd.read_csv(out, **EXACT_FLOATS)
    assert list(draws.columns) == ["imputation", "row", *frame.columns]
    assert len(draws) == 3 * len(frame)
    assert sorted(draws["imputation"].unique()) == [1, 2, 3]
    observed = frame.notna().to_numpy()
    copies = []
    for m in (1, 2, 3):
        copy = draws[draws["imputation"] == m]
        np.testing.assert_array_equal(copy["row"], np.arange(len(frame)))
        values = copy[list(frame.columns)].to_numpy()
        np.testing.assert_array_equal(values[observed], frame.to_numpy()[observed])
        copies.append(values[~observed])
    assert not np.array_equal(copies[0], copies[1])  # draws, not one imputation repeated


@pytest.mark.parametrize(
    "options",
    [["--method", "MIWAE"], ["--method", "MissVAE", "--n-components", "3"],
     ["--method", "MissSIWAE", "--n-components", "3"],  # particles rounded up to 6
     ["--method", "DeMissVAE", "--n-components", "2"]],
    ids=["MIWAE", "MissVAE-3", "MissSIWAE-3", "DeMissVAE-2"],
)
def test_impute_with_other_methods(csv_table, tmp_path, options):
    path, _ = csv_table
    out = tmp_path / "imputed.csv"
    assert main(["impute", str(path), "-o", str(out), *FAST, *options]) == 0
    assert not pd.read_csv(out, **EXACT_FLOATS).isna().any().any()


def test_progress_goes_to_standard_error(csv_table, tmp_path, capsys):
    path, _ = csv_table
    args = [a for a in FAST if a != "-q"]
    assert main(["impute", str(path), "-o", str(tmp_path / "o.csv"), *args]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    bar, message = captured.err.rstrip("\n").split("\n")  # splitlines would split at \r too
    assert bar.split("\r")[-1].startswith("MixtureVAEImputer: 100%")
    assert " 2/2 " in bar and "loss=" in bar
    assert message == "wrote 120 rows to " + str(tmp_path / "o.csv")


def test_quiet_shows_no_progress(csv_table, tmp_path, capsys):
    path, _ = csv_table
    assert main(["impute", str(path), "-o", str(tmp_path / "o.csv"), *FAST]) == 0
    assert capsys.readouterr().err == f"wrote 120 rows to {tmp_path / 'o.csv'}\n"


def test_impute_to_standard_output_writes_nothing_but_the_table(csv_table, capsys):
    path, frame = csv_table
    args = [a for a in FAST if a != "-q"]  # progress on: it must stay off standard output
    assert main(["impute", str(path), "-o", "-", *args]) == 0
    captured = capsys.readouterr()
    imputed = pd.read_csv(io.StringIO(captured.out))
    assert list(imputed.columns) == list(frame.columns) and imputed.shape == frame.shape
    assert not imputed.isna().any().any()
    assert "epoch" not in captured.out and "\r" not in captured.out
    assert " 2/2 " in captured.err
    assert captured.err.endswith("wrote 120 rows to standard output\n")


# -- errors that say what to fix ----------------------------------------------------------
def test_mixed_table_gets_valid_categories_back(tmp_path):
    rng = np.random.RandomState(0)
    n = 90
    frame = pd.DataFrame({
        "x": rng.standard_normal(n),
        "city": rng.choice(["Oslo", "Paris", "Rome"], n).astype(object),
        "code": rng.randint(3, size=n) * 10,  # integer codes, declared categorical
    })
    frame.loc[::4, "city"] = None
    frame.loc[1::5, "x"] = np.nan
    path, out = tmp_path / "mixed.csv", tmp_path / "imputed.csv"
    frame.to_csv(path, index=False)
    assert main(["impute", str(path), "-o", str(out), "--categorical", "code", *FAST]) == 0
    imputed = pd.read_csv(out, **EXACT_FLOATS)
    assert not imputed.isna().any().any()
    assert set(imputed["city"]) <= {"Oslo", "Paris", "Rome"}
    assert set(imputed["code"]) <= {0, 10, 20}
    observed = frame["city"].notna()
    assert (imputed["city"][observed] == frame["city"][observed]).all()


def test_mixed_table_multiple_imputation(tmp_path):
    frame = pd.DataFrame({"x": [0.1, np.nan, 0.3, 0.5] * 10, "flag": [True, False, None, True] * 10})
    path, out = tmp_path / "mixed.csv", tmp_path / "draws.csv"
    frame.to_csv(path, index=False)
    assert main(["impute", str(path), "-o", str(out), "--n-imputations", "2", *FAST]) == 0
    draws = pd.read_csv(out, **EXACT_FLOATS)
    assert len(draws) == 80 and list(draws.columns) == ["imputation", "row", "x", "flag"]
    assert set(draws["flag"]) <= {True, False}


def test_semicontinuous_columns_draw_exact_zeros(tmp_path):
    rng = np.random.RandomState(0)
    amount = np.where(rng.rand(60) < 0.6, 0.0, rng.gamma(2.0, size=60))
    frame = pd.DataFrame({"x": rng.standard_normal(60), "amount": amount})
    frame.loc[::4, "amount"] = np.nan
    path, out = tmp_path / "amounts.csv", tmp_path / "draws.csv"
    frame.to_csv(path, index=False)
    args = ["impute", str(path), "-o", str(out), "--n-imputations", "3", "--semicontinuous", "amount"]
    assert main([*args, *FAST]) == 0
    draws = pd.read_csv(out, **EXACT_FLOATS)
    assert len(draws) == 180 and list(draws.columns) == ["imputation", "row", "x", "amount"]
    filled = draws.loc[draws["row"] % 4 == 0, "amount"]
    assert not filled.isna().any() and (filled == 0.0).any() and (filled != 0.0).any()


def test_validation_split_entries_reaches_the_estimator(csv_table, tmp_path):
    import skmissvae

    path, _ = csv_table
    model = tmp_path / "model.skm"
    args = ["impute", str(path), "-o", str(tmp_path / "o.csv"), "--save-model", str(model)]
    assert main([*args, "--validation-split", "entries", *FAST]) == 0
    fitted = skmissvae.load(model)
    assert fitted.validation_split == "entries"
    # Two epochs never stop early, so the model trained with its entries held out is kept.
    assert fitted.refitted_ is False and len(fitted.validation_scores_) == 2


def test_ensemble_averages_models_trained_with_the_seeds_of_the_random_state(csv_table, tmp_path):
    from skmissvae import VAEEnsembleImputer

    path, frame = csv_table
    outputs = {}
    for n in ("1", "2"):
        assert main(["impute", str(path), "-o", str(tmp_path / f"{n}.csv"), "--ensemble", n, *FAST]) == 0
        outputs[n] = pd.read_csv(tmp_path / f"{n}.csv", **EXACT_FLOATS).to_numpy()
    observed = frame.notna().to_numpy()
    np.testing.assert_array_equal(outputs["2"][observed], frame.to_numpy()[observed])
    assert np.isfinite(outputs["2"]).all()
    assert not np.allclose(outputs["1"][~observed], outputs["2"][~observed])
    # the same ensemble built in Python: members cloned from the single model of the CLI
    args = _parser().parse_args(["impute", str(path), "-o", "unused.csv", *FAST])
    ensemble = VAEEnsembleImputer(_build_model(args, frame), n_estimators=2, random_state=0)
    np.testing.assert_allclose(ensemble.fit(frame).transform(frame).to_numpy(), outputs["2"], rtol=1e-6)


def test_saved_ensemble_imputes_as_it_did(csv_table, tmp_path):
    path, _ = csv_table
    model = tmp_path / "ensemble.pt"
    args = ["impute", str(path), "--ensemble", "2", *FAST]
    assert main([*args, "-o", str(tmp_path / "a.csv"), "--save-model", str(model)]) == 0
    assert main(["impute", str(path), "-o", str(tmp_path / "b.csv"), "--model", str(model), "-q"]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "a.csv"), pd.read_csv(tmp_path / "b.csv"))


def test_dates_are_refused_with_the_column_named(tmp_path):
    from skmissvae._cli import CommandError, _check_columns

    frame = pd.DataFrame({"x": [1.0, 2.0], "when": pd.to_datetime(["2024-01-01", "2024-02-01"])})
    with pytest.raises(CommandError, match=r"\['when'\].*convert them"):
        _check_columns(frame, tmp_path / "t.parquet")


@pytest.mark.parametrize(
    "make_args, message",
    [
        (lambda d: ["impute", str(d / "nope.csv"), "-o", str(d / "o.csv")], "does not exist"),
        (lambda d: ["impute", str(d / "data.csv"), "-o", str(d / "o.xlsx")], "unknown file type '.xlsx'"),
        (lambda d: ["impute", str(d / "data.txt"), "-o", str(d / "o.csv")], "unknown file type '.txt'"),
        (lambda d: ["impute", str(d / "data.csv"), "-o", str(d / "no" / "o.csv")], "does not exist"),
        (lambda d: ["impute", str(d / "empty.csv"), "-o", str(d / "o.csv")], "cannot read"),
        (lambda d: ["impute", str(d / "data.csv"), "-o", str(d / "o.csv"), "--method", "MVAE",
                    "--n-components", "3"], "use MissSVAE"),
        (lambda d: ["impute", str(d / "data.csv"), "-o", str(d / "o.csv"), "--n-particles", "7"],
         "multiple of n_components"),
        (lambda d: ["impute", str(d / "data.csv"), "-o", str(d / "o.csv"), "--method", "DeMissVAE",
                    "--n-particles", "4"], "does not apply to DeMissVAE"),
        (lambda d: ["impute", str(d / "data.csv"), "-o", str(d / "o.csv"), "--method", "DeMissVAE",
                    "--validation-split", "entries"], "entries does not apply to DeMissVAE"),
        (lambda d: ["impute", str(d / "data.csv"), "-o", str(d / "o.csv"), "--binary", "sex"],
         "does not have: ['sex']"),
        (lambda d: ["impute", str(d / "data.csv"), "-o", str(d / "o.csv"), "--binary", "age",
                    "--categorical", "age"], "declared --categorical and --binary"),
    ],
    ids=["missing-input", "bad-output-type", "bad-input-type", "missing-folder", "empty-file",
         "single-gaussian-components", "particles", "demissvae-particles", "demissvae-entries",
         "unknown-column", "two-types"],
)
def test_input_errors_exit_2_with_a_message(csv_table, tmp_path, capsys, make_args, message):
    (tmp_path / "empty.csv").write_text("")
    assert main([*make_args(tmp_path), *FAST]) == 2
    err = _error(capsys)
    assert err.startswith("skmissvae impute: error: ")
    assert message in err


def test_unknown_method_is_rejected_by_argparse(csv_table, capsys):
    path, _ = csv_table
    with pytest.raises(SystemExit) as exit_info:
        main(["impute", str(path), "-o", "o.csv", "--method", "VAE"])
    assert exit_info.value.code == 2
    assert "MissSIWAE" in _error(capsys)  # the valid choices are listed


@pytest.mark.parametrize("value", ["0", "many"])
def test_max_iter_takes_a_positive_number_or_auto(csv_table, capsys, value):
    path, _ = csv_table
    with pytest.raises(SystemExit):
        main(["impute", str(path), "-o", "o.csv", "--max-iter", value])
    assert "expected a positive integer" in _error(capsys)


@pytest.mark.parametrize("value", ["0", "-1", "inf", "low"])
def test_min_scale_takes_a_positive_number_or_auto(csv_table, capsys, value):
    path, _ = csv_table
    with pytest.raises(SystemExit):
        main(["impute", str(path), "-o", "o.csv", "--min-scale", value])
    assert "expected a positive number or 'auto'" in _error(capsys)


def test_min_scale_reaches_the_estimator(csv_table, capsys):
    path, frame = csv_table
    for value, expected in (([], "auto"), (["--min-scale", "0.02"], 0.02), (["--min-scale", "auto"], "auto")):
        args = _parser().parse_args(["impute", str(path), "-o", "o.csv", *value])
        assert _build_model(args, frame).min_scale == expected
    args = _parser().parse_args(["impute", str(path), "-o", "o.csv", "--method", "DeMissVAE", "--min-scale", "0.3"])
    assert _build_model(args, frame).min_scale == 0.3
    assert main(["impute", str(path), "-o", "o.csv", "--method", "DeMissVAE", "--min-scale", "auto"]) == 2
    assert "does not apply to DeMissVAE" in _error(capsys)


def test_output_is_required(csv_table, capsys):
    path, _ = csv_table
    with pytest.raises(SystemExit):
        main(["impute", str(path)])
    assert "-o/--output" in _error(capsys)


@pytest.mark.skipif(HAS_PARQUET, reason="Parquet support is installed")
def test_parquet_without_pyarrow_says_what_to_install(csv_table, tmp_path, capsys):
    path, _ = csv_table
    assert main(["impute", str(path), "-o", str(tmp_path / "o.parquet"), *FAST]) == 2
    assert "pip install pyarrow" in _error(capsys)


@pytest.mark.skipif(not HAS_PARQUET, reason="needs pyarrow or fastparquet")
def test_parquet_round_trip(csv_table, tmp_path):
    _, frame = csv_table
    source = tmp_path / "data.parquet"
    frame.to_parquet(source, index=False)
    out = tmp_path / "imputed.parquet"
    assert main(["impute", str(source), "-o", str(out), *FAST]) == 0
    assert not pd.read_parquet(out).isna().any().any()


# -- score ---------------------------------------------------------------------------------
@pytest.mark.parametrize("output", [[], ["-o", "-"]], ids=["default", "dash"])
def test_score_prints_one_log_likelihood_per_row(csv_table, capsys, output):
    path, frame = csv_table
    args = [a for a in FAST if a != "-q"]  # progress on: it must stay off standard output
    assert main(["score", str(path), *output, *args]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0] == "log_likelihood"
    scores = np.array([float(v) for v in lines[1:]])
    assert len(scores) == len(frame) and np.isfinite(scores).all()
    assert " 2/2 " in captured.err
    assert f"mean log-likelihood {scores.mean():.4f}" in captured.err


def test_score_with_a_training_file_writes_to_output(csv_table, tmp_path):
    path, frame = csv_table
    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    frame.iloc[:90].to_csv(train, index=False)
    frame.iloc[90:].to_csv(test, index=False)
    out = tmp_path / "scores.csv"
    assert main(["score", str(test), "--train", str(train), "-o", str(out), *FAST]) == 0
    scores = pd.read_csv(out, **EXACT_FLOATS)
    assert list(scores.columns) == ["log_likelihood"] and len(scores) == 30
    assert np.isfinite(scores["log_likelihood"]).all()


def test_score_needs_matching_columns(csv_table, tmp_path, capsys):
    path, frame = csv_table
    other = tmp_path / "other.csv"
    frame.rename(columns={"age": "years"}).to_csv(other, index=False)
    assert main(["score", str(path), "--train", str(other), *FAST]) == 2
    assert "same columns" in _error(capsys)


# -- demo and entry points -----------------------------------------------------------------
def test_demo_reports_error_and_likelihood(capsys):
    assert main(["demo", "--n-samples", "200", "--max-iter", "2"]) == 0
    out = capsys.readouterr().out
    assert "Imputation RMSE" in out and "log-likelihood" in out


def test_python_dash_m_help_lists_the_commands():
    done = subprocess.run([sys.executable, "-m", "skmissvae", "--help"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for command in ("impute", "score", "demo"):
        assert command in done.stdout


def test_every_command_has_help(capsys):
    for command in ("impute", "score", "demo"):
        with pytest.raises(SystemExit) as exit_info:
            main([command, "--help"])
        assert exit_info.value.code == 0
        assert "usage: skmissvae " + command in capsys.readouterr().out


# -- saved models --------------------------------------------------------------------------
def test_saved_model_imputes_and_scores_without_training(csv_table, tmp_path, capsys):
    path, _ = csv_table
    model = tmp_path / "model.skm"
    first, again = tmp_path / "first.csv", tmp_path / "again.csv"
    assert main(["impute", str(path), "-o", str(first), "--save-model", str(model), *FAST]) == 0
    assert model.is_file()
    capsys.readouterr()
    # No progress: nothing is trained; the same seed gives the same imputations.
    assert main(["impute", str(path), "-o", str(again), "--model", str(model)]) == 0
    assert "epoch" not in capsys.readouterr().err
    pd.testing.assert_frame_equal(pd.read_csv(first), pd.read_csv(again))
    assert main(["score", str(path), "--model", str(model)]) == 0
    assert capsys.readouterr().out.startswith("log_likelihood\n")


@pytest.mark.parametrize(
    "extra, message",
    [(["--model", "{d}/missing.skm"], "does not exist"),
     (["--model", "{d}/data.csv"], "cannot load --model"),
     (["--save-model", "{d}/no/model.skm"], "does not exist"),
     (["--model", "{d}/data.csv", "--save-model", "{d}/m.skm"], "use one of them")],
    ids=["missing", "not-a-model", "missing-folder", "both"],
)
def test_saved_model_errors(csv_table, tmp_path, capsys, extra, message):
    path, _ = csv_table
    extra = [e.format(d=tmp_path) for e in extra]
    assert main(["impute", str(path), "-o", str(tmp_path / "o.csv"), *FAST, *extra]) == 2
    assert message in _error(capsys)


def test_model_and_train_exclude_each_other(csv_table, tmp_path, capsys):
    path, _ = csv_table
    assert main(["score", str(path), "--train", str(path), "--model", str(path)]) == 2
    assert "exclude each other" in _error(capsys)


# -- options shared with scikit-learn's imputers ------------------------------------------------
@pytest.fixture
def integer_csv(tmp_path):
    """A CSV file with an integer column with gaps (``year``), one with -1 for missing
    (``rooms``) and a decimal column (``price``)."""
    rng = np.random.RandomState(0)
    n = 60
    year = rng.randint(1950, 2020, n).astype(float)
    year[::6] = np.nan
    rooms = rng.randint(1, 8, n)
    rooms[1::7] = -1
    price = 50.0 + 2.5 * rooms + rng.standard_normal(n)
    price[2::5] = np.nan
    frame = pd.DataFrame({"year": year, "rooms": rooms, "price": price})
    path = tmp_path / "houses.csv"
    frame.to_csv(path, index=False)
    return path, frame


def test_missing_values_keeps_an_integer_column_integer(integer_csv, tmp_path):
    path, frame = integer_csv
    out = tmp_path / "o.csv"
    assert main(["impute", str(path), "-o", str(out), "--missing-values", "-1", *FAST]) == 0
    imputed = pd.read_csv(out, **EXACT_FLOATS)
    assert imputed["rooms"].dtype == np.int64 and (imputed["rooms"] != -1).all()
    observed = frame["rooms"] != -1
    assert (imputed.loc[observed, "rooms"] == frame.loc[observed, "rooms"]).all()
    assert not imputed.isna().any().any()


def test_text_missing_values_are_read_as_missing(tmp_path):
    path, out = tmp_path / "q.csv", tmp_path / "o.csv"
    rng = np.random.RandomState(0)
    cells = [f"{v:.3f}" for v in rng.standard_normal(40)]
    cells[::5] = ["?"] * 8
    pd.DataFrame({"x": cells, "y": rng.standard_normal(40)}).to_csv(path, index=False)
    assert main(["impute", str(path), "-o", str(out), "--missing-values", "?", *FAST]) == 0
    imputed = pd.read_csv(out, **EXACT_FLOATS)
    assert imputed["x"].dtype == np.float64 and not imputed.isna().any().any()


@pytest.mark.parametrize("spec", [["auto"], ["year"]], ids=["auto", "named"])
def test_integer_columns_are_written_as_integers(integer_csv, tmp_path, spec):
    path, frame = integer_csv
    out = tmp_path / "o.csv"
    flags = [arg for name in spec for arg in ("--integer-columns", name)]
    assert main(["impute", str(path), "-o", str(out), *flags, *FAST]) == 0
    text = out.read_text().splitlines()
    years = [line.split(",")[0] for line in text[1:]]
    assert all(year.isdigit() for year in years)  # 2007, not 2007.0
    imputed = pd.read_csv(out, **EXACT_FLOATS)
    observed = frame["year"].notna()
    assert (imputed.loc[observed, "year"] == frame.loc[observed, "year"]).all()
    assert imputed["price"].dtype == np.float64
    # Multiple imputation writes integers too.
    assert main(["impute", str(path), "-o", str(out), *flags, "--n-imputations", "2", *FAST]) == 0
    assert pd.read_csv(out, **EXACT_FLOATS)["year"].dtype == np.int64


def test_without_integer_columns_a_column_with_gaps_stays_decimal(integer_csv, tmp_path):
    path, _ = integer_csv
    out = tmp_path / "o.csv"
    assert main(["impute", str(path), "-o", str(out), *FAST]) == 0
    assert pd.read_csv(out, **EXACT_FLOATS)["rooms"].dtype == np.int64  # no gaps: an integer column
    assert out.read_text().splitlines()[2].split(",")[0].endswith(".0")  # an observed year


def test_bounds_and_indicator_reach_the_output(integer_csv, tmp_path):
    path, frame = integer_csv
    out = tmp_path / "o.csv"
    args = ["impute", str(path), "-o", str(out), "--missing-values", "-1", "--min-value", "rooms=3",
            "--max-value", "rooms=4", "--max-value", "price=60", "--add-indicator", *FAST]
    assert main(args) == 0
    imputed = pd.read_csv(out, **EXACT_FLOATS)
    assert list(imputed.columns) == ["year", "rooms", "price", "missingindicator_year",
                                     "missingindicator_rooms", "missingindicator_price"]
    gaps = (frame["rooms"] == -1).to_numpy()
    assert imputed.loc[gaps, "rooms"].between(3, 4).all()
    assert (imputed.loc[frame["price"].isna(), "price"] <= 60).all()
    indicators = imputed[["missingindicator_year", "missingindicator_rooms", "missingindicator_price"]]
    assert (indicators.dtypes == np.int64).all()
    np.testing.assert_array_equal(indicators.to_numpy(), np.column_stack(
        [frame["year"].isna(), gaps, frame["price"].isna()]).astype(int))
    assert main([*args, "--n-imputations", "2", "--min-value", "0"]) == 2  # a number and pairs
    draws_args = [a for a in args if a not in ("rooms=3",)]
    draws_args.remove("--min-value")
    assert main([*draws_args, "--n-imputations", "2", "--min-value", "0"]) == 0
    draws = pd.read_csv(out, **EXACT_FLOATS)
    assert list(draws.columns[-3:]) == list(indicators.columns) and len(draws) == 2 * len(frame)
    gaps = np.tile(frame["price"].isna().to_numpy(), 2)
    assert (draws.loc[gaps, "price"] <= 60).all()


def test_scalar_bounds_and_threads_reach_the_estimator(csv_table):
    path, frame = csv_table
    args = _parser().parse_args(["impute", str(path), "-o", "o.csv", "--min-value", "0",
                                 "--max-value", "age=5", "--threads", "2", "--missing-values", "-9"])
    model = _build_model(args, frame)
    assert model.min_value == 0 and model.n_jobs == 2 and model.missing_values == -9
    np.testing.assert_array_equal(model.max_value, [np.inf, np.inf, 5.0, np.inf])


@pytest.mark.parametrize("extra, message", [
    (["--min-value", "0", "--min-value", "age=1"], "not both"),
    (["--max-value", "shoe=3"], "does not have"),
    (["--integer-columns", "shoe"], "does not have: ['shoe']"),
    (["--integer-columns", "height"], "not whole numbers"),
    (["--min-value", "5", "--max-value", "1"], "must not exceed max_value"),
], ids=["number-and-pairs", "unknown-bound-column", "unknown-integer-column", "decimals", "crossed"])
def test_option_errors_exit_2(csv_table, tmp_path, capsys, extra, message):
    path, _ = csv_table
    assert main(["impute", str(path), "-o", str(tmp_path / "o.csv"), *FAST, *extra]) == 2
    assert message in _error(capsys)


@pytest.mark.parametrize("value", ["0", "x", "1.5"])
def test_threads_takes_a_nonzero_integer(csv_table, capsys, value):
    path, _ = csv_table
    with pytest.raises(SystemExit):
        main(["impute", str(path), "-o", "o.csv", "--threads", value])
    assert "expected a positive integer or -1" in _error(capsys)


def test_saving_is_checked_before_training(csv_table, tmp_path, capsys):
    path, _ = csv_table
    (tmp_path / "folder.skm").mkdir()
    cases = [
        (["-o", str(tmp_path / "o.csv"), "--save-model", str(tmp_path / "folder.skm")], "is a folder"),
        (["-o", str(tmp_path / "same.csv"), "--save-model", str(tmp_path / "same.csv")], "also the output"),
        (["-o", str(tmp_path / "o.csv"), "--save-model", str(path)], "overwrite an input table"),
        (["-o", str(tmp_path)], "unknown file type"),
    ]
    for extra, message in cases:
        assert main(["impute", str(path), *extra, *[a for a in FAST if a != "-q"]]) == 2
        err = _error(capsys)
        assert message in err and "epoch" not in err and "2/2" not in err  # nothing was trained
    (tmp_path / "dir.csv").mkdir()
    assert main(["impute", str(path), "-o", str(tmp_path / "dir.csv"), *FAST]) == 2
    assert "is a folder" in _error(capsys)


@pytest.mark.skipif(not hasattr(__import__("os"), "geteuid") or __import__("os").geteuid() == 0,
                    reason="root writes anywhere")
def test_a_read_only_folder_is_refused_before_training(csv_table, tmp_path, capsys):
    path, _ = csv_table
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        args = ["impute", str(path), "-o", str(tmp_path / "o.csv"), "--save-model", str(locked / "m.skm")]
        assert main([*args, *FAST]) == 2
        assert "cannot be written" in _error(capsys)
        assert not (tmp_path / "o.csv").exists()
    finally:
        locked.chmod(0o700)


def test_a_loaded_model_takes_threads_and_missing_values_but_not_bounds(integer_csv, tmp_path, capsys):
    path, frame = integer_csv
    model = tmp_path / "m.skm"
    first, again = tmp_path / "a.csv", tmp_path / "b.csv"
    assert main(["impute", str(path), "-o", str(first), "--missing-values", "-1", "--add-indicator",
                 "--min-value", "0", "--save-model", str(model), *FAST]) == 0
    assert main(["impute", str(path), "-o", str(again), "--model", str(model), "--threads", "1"]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(first), pd.read_csv(again))
    capsys.readouterr()
    assert main(["impute", str(path), "-o", str(again), "--model", str(model), "--min-value", "1"]) == 2
    assert "fixed when a model is trained" in _error(capsys)
