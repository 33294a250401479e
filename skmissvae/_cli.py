"""The ``skmissvae`` command: impute and score CSV/Parquet tables, run the demo.

Heavy imports (pandas, torch, scikit-learn) happen inside the commands so that ``--help``
answers at once. Training progress and messages go to standard error, so that standard
output carries only data (``-o -``, or ``score`` without ``-o``) and the demo's report.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import importlib.util
import math
import os
import sys
import warnings
from pathlib import Path

__all__ = ["main"]

_READERS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
_DEFAULT_METHOD = "MissSIWAE"
_DEMISSVAE = "DeMissVAE"  # DeMissVAEImputer; the other methods are settings of MixtureVAEImputer

_DESCRIPTION = "Impute and score incomplete tables with variational autoencoders (Simkus & Gutmann, TMLR 2024)."
_EPILOG = "Run `skmissvae COMMAND --help` for the options and examples of a command."

_IMPUTE_EPILOG = """\
examples:
  skmissvae impute data.csv -o imputed.csv
  skmissvae impute data.parquet -o imputed.parquet --method MIWAE --max-iter 100
  skmissvae impute data.csv -o draws.csv --n-imputations 20
  skmissvae impute data.csv -o - -q | head        # CSV on standard output
  skmissvae impute train.csv -o train_imputed.csv --save-model model.skm
  skmissvae impute new.csv -o new_imputed.csv --model model.skm
  skmissvae impute data.csv -o imputed.csv --missing-values -1 --integer-columns auto
  skmissvae impute data.csv -o imputed.csv --min-value 0 --max-value age=120 --add-indicator

Missing cells are empty fields or NA/NaN in CSV files, nulls in Parquet files. Numeric
columns are continuous, text columns categorical and true/false columns binary; --categorical
and --binary override that (e.g. for integer codes), and --semicontinuous marks numeric
columns that are mostly one value, such as amounts that are usually 0. Observed cells are written back
unchanged. Integer columns without gaps stay integers; --integer-columns also gives back as
integers (rounded imputations) the columns with gaps, which a CSV reader sees as decimals.
With --n-imputations M > 1 the output is one long table: the M completed copies
stacked, with a first column `imputation` (1 to M) and a column `row` (the input row's
position from 0)."""

_SCORE_EPILOG = """\
examples:
  skmissvae score data.csv                        # fit on data.csv, print one score per row
  skmissvae score test.csv --train train.csv -o scores.csv

The output has one column, `log_likelihood`: an importance-weighted lower bound on
log p(observed cells of the row) in nats, in the units of the data (higher is more typical
under the model). The mean is printed on standard error."""


class CommandError(ValueError):
    """A problem with the command's input that the user can fix; printed without traceback."""


# -- methods ------------------------------------------------------------------------------
def _methods() -> dict:
    """``skmissvae.METHODS``, read without importing torch when possible.

    The dict is a literal in ``impute/_mixture_vae.py``; reading it from the source keeps
    ``--help`` fast. Should that fail (no source file, or no longer a literal), the module
    is imported.
    """
    source = Path(__file__).parent / "impute" / "_mixture_vae.py"
    try:
        for node in ast.parse(source.read_text(encoding="utf-8")).body:
            if (isinstance(node, ast.Assign) and len(node.targets) == 1
                    and isinstance(node.targets[0], ast.Name) and node.targets[0].id == "METHODS"):
                return ast.literal_eval(node.value)
    except (OSError, SyntaxError, ValueError):
        pass
    from .impute import METHODS

    return METHODS


def _method_names() -> list[str]:
    """The values ``--method`` accepts: the keys of ``METHODS``, then DeMissVAE."""
    return [*_methods(), _DEMISSVAE]


def _methods_epilog() -> str:
    """One line per method, generated from ``METHODS``, for the help of impute and score."""
    lines = ["methods (--method):"]
    width = max(len(name) for name in _method_names())
    for name, params in _methods().items():
        k = params["n_components"]
        parts = ["single Gaussian encoder" if k == 1 else f"mixture of {k} Gaussians by default",
                 params["objective"].upper()]
        if k > 1:
            parts.append(f"{params['sampling']} sampling")
        lines.append(f"  {name:<{width}}  {', '.join(parts)}")
    lines.append(f"  {_DEMISSVAE:<{width}}  imputation-based mixture (DeMissVAEImputer)")
    return "\n".join(lines)


# -- argument parsing ---------------------------------------------------------------------
def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _max_iter(text: str) -> int | str:
    """A positive number of epochs or "auto"."""
    return "auto" if text == "auto" else _positive_int(text)


def _min_scale(text: str) -> float | str:
    """A positive number or "auto"."""
    if text == "auto":
        return text
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"expected a positive number or 'auto', got {text!r}")
    return value


def _threads(text: str) -> int:
    """A positive number of threads, or -1 for every core (-2 all but one, ...)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value == 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer or -1 (every core), got {text!r}")
    return value


def _number(text: str) -> float | int | None:
    """``text`` as an int or a float, None when it is not a number."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return None


def _bound(text: str) -> tuple[str | None, float]:
    """``VALUE`` (every numeric column) or ``COLUMN=VALUE`` as ``(column or None, value)``."""
    column, _, value = text.rpartition("=")
    number = _number(value.strip())
    if number is None or math.isnan(number):
        raise argparse.ArgumentTypeError(f"expected a number or COLUMN=NUMBER, got {text!r}")
    return (column if "=" in text else None), float(number)


def _model_options() -> argparse.ArgumentParser:
    """Options shared by ``impute`` and ``score``: which model and how to train it."""
    parent = argparse.ArgumentParser(add_help=False)
    model = parent.add_argument_group("model")
    model.add_argument("--method", choices=_method_names(), default=_DEFAULT_METHOD,
                       metavar="NAME",
                       help="one of %(choices)s; see 'methods' below (default: %(default)s, "
                            "the paper's best all-round method)")
    model.add_argument("--n-components", type=_positive_int, metavar="K",
                       help="mixture components of the encoder (default: 5 for the mixture "
                            "methods); for DeMissVAE, the imputations it keeps per row")
    model.add_argument("--n-particles", type=_positive_int, metavar="I",
                       help="latent draws per row per training step (default: 5, rounded up "
                            "to a multiple of K for stratified methods)")
    model.add_argument("--latent-dim", type=_positive_int, default=16, metavar="D",
                       help="latent dimensions (default: %(default)s)")
    model.add_argument("--categorical", action="append", default=[], metavar="COLUMN",
                       help="treat COLUMN as categorical, e.g. integer codes (repeat for "
                            "several; text columns are categorical anyway)")
    model.add_argument("--binary", action="append", default=[], metavar="COLUMN",
                       help="treat COLUMN as binary, e.g. a 0/1 column (repeat for several; "
                            "true/false columns are binary anyway)")
    model.add_argument("--semicontinuous", action="append", default=[], metavar="COLUMN",
                       help="give COLUMN's most frequent value (e.g. 0) a point mass and the "
                            "other values a Gaussian, e.g. amounts or counts that are mostly "
                            "0 (repeat for several)")
    model.add_argument("--missing-values", metavar="VALUE",
                       help="cells equal to VALUE are missing too, e.g. -1 or '?' (empty cells "
                            "and NA/NaN always are)")
    training = parent.add_argument_group("training")
    training.add_argument("--max-iter", type=_max_iter, default=200, metavar="N",
                          help="maximum training epochs, or 'auto' (at least 200 epochs and "
                               "5,000 steps); early stopping may end sooner (default: %(default)s)")
    training.add_argument("--validation-split", choices=["rows", "entries"], default="rows",
                          help="what early stopping holds out: 10 %% of the rows (watching their "
                               "log-likelihood) or 10 %% of the observed entries (watching how well "
                               "they are imputed, then refitting on everything); not for DeMissVAE "
                               "(default: %(default)s)")
    training.add_argument("--min-scale", type=_min_scale, metavar="S",
                          help="smallest standard deviation of the decoder, as a fraction of each "
                               "column's, or 'auto': 0.1, lowered to 0.01 or 0.001 when held-out "
                               "rows show that the columns are related more tightly (default: "
                               "auto; DeMissVAE takes a number and defaults to 0.1)")
    training.add_argument("--ensemble", type=_positive_int, default=1, metavar="N",
                          help="train N models with different seeds and average their imputations "
                               "(VAEEnsembleImputer): more accurate on small tables, N times the "
                               "training time (default: %(default)s, a single model)")
    training.add_argument("--random-state", type=int, default=0, metavar="SEED",
                          help="seed of every random choice, so reruns give the same output "
                               "(default: %(default)s)")
    training.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                          help="where to train: %(choices)s (default: %(default)s, a GPU when "
                               "there is one)")
    training.add_argument("--threads", type=_threads, metavar="N",
                          help="torch threads for training and inference; -1 for every core "
                               "(default: 1)")
    training.add_argument("-q", "--quiet", action="store_true",
                          help="do not show training progress (shown on standard error)")
    saved = parent.add_argument_group("saved models")
    saved.add_argument("--save-model", type=Path, metavar="FILE",
                       help="after training, save the fitted model to FILE (skmissvae.save)")
    saved.add_argument("--model", type=Path, metavar="FILE",
                       help="use a model saved with --save-model instead of training one; "
                            "the model and training options are then ignored")
    return parent


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="skmissvae", description=_DESCRIPTION, epilog=_EPILOG
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(title="commands", dest="command", required=True, metavar="COMMAND")
    model = _model_options()
    raw = argparse.RawDescriptionHelpFormatter

    impute = commands.add_parser(
        "impute", parents=[model], formatter_class=raw,
        epilog=f"{_methods_epilog()}\n\n{_IMPUTE_EPILOG}",
        help="fill the missing cells of a CSV or Parquet table",
        description="Fit an imputer to a table with missing cells and write the completed table.",
    )
    impute.add_argument("input", type=Path, metavar="IN", help="table to impute (.csv or .parquet)")
    impute.add_argument("-o", "--output", type=Path, required=True, metavar="OUT",
                        help="where to write the completed table (.csv or .parquet; "
                             "- for CSV on standard output)")
    impute.add_argument("--n-imputations", type=_positive_int, default=1, metavar="M",
                        help="1 writes the conditional mean of each missing cell; M > 1 writes "
                             "M draws from the model (multiple imputation) as one long table "
                             "(default: %(default)s)")
    cells = impute.add_argument_group("imputed cells (fixed when the model is trained)")
    cells.add_argument("--min-value", type=_bound, action="append", default=[], metavar="VALUE",
                       help="smallest imputed value of the numeric columns: a number for all, or "
                            "COLUMN=NUMBER for one (repeat for several)")
    cells.add_argument("--max-value", type=_bound, action="append", default=[], metavar="VALUE",
                       help="largest imputed value, as --min-value")
    cells.add_argument("--add-indicator", action="store_true",
                       help="append a 0/1 column missingindicator_COLUMN for each column with "
                            "missing cells")
    cells.add_argument("--integer-columns", action="append", default=[], metavar="COLUMNS",
                       help="'auto': numeric columns whose observed values are all whole numbers "
                            "are written as integers (imputations rounded); or a column name "
                            "(repeat for several). Integer columns without gaps always are")

    score = commands.add_parser(
        "score", parents=[model], formatter_class=raw,
        epilog=f"{_methods_epilog()}\n\n{_SCORE_EPILOG}",
        help="estimate log p(observed cells) of every row of a table",
        description="Fit a model and write the estimated log-likelihood of each row's observed cells.",
    )
    score.add_argument("input", type=Path, metavar="IN", help="table to score (.csv or .parquet)")
    score.add_argument("--train", type=Path, metavar="TRAIN",
                       help="fit on this table instead of IN (same columns)")
    score.add_argument("-o", "--output", type=Path, metavar="OUT",
                       help="write the scores here (.csv or .parquet; - for CSV on standard "
                            "output); default: standard output")

    demo = commands.add_parser(
        "demo", help="fit the default imputer on a generated table and report how well it does",
        description="Fit the default imputer (MissSIWAE) to a generated mixture-of-Gaussians "
                    "table with 50% of cells missing; report imputation error and "
                    "log-likelihood against the true model.",
    )
    demo.add_argument("--n-samples", type=_positive_int, default=5_000, metavar="N",
                      help="training rows (default: %(default)s)")
    demo.add_argument("--max-iter", type=_positive_int, default=60, metavar="N",
                      help="training epochs (default: %(default)s)")
    demo.add_argument("--random-state", type=int, default=0, metavar="SEED",
                      help="seed (default: %(default)s)")
    return parser


# -- tables -------------------------------------------------------------------------------
def _format_of(path: Path, role: str) -> str:
    fmt = _READERS.get(path.suffix.lower())
    if fmt is None:
        raise CommandError(
            f"{role} {str(path)!r}: unknown file type {path.suffix!r}; use .csv, .parquet or .pq."
        )
    if fmt == "parquet" and not any(importlib.util.find_spec(m) for m in ("pyarrow", "fastparquet")):
        raise CommandError(
            f"{role} {str(path)!r}: reading and writing Parquet needs pyarrow "
            "(`pip install pyarrow`); or convert the table to CSV."
        )
    return fmt


def exact_float_options() -> dict:
    """``pd.read_csv`` options that read every float back exactly as written: pandas 2's
    default parser can be off by one unit in the last place; pandas 3 is exact and
    deprecates the option."""
    import pandas as pd

    return {"float_precision": "round_trip"} if int(pd.__version__.split(".")[0]) < 3 else {}


def read_table(path: Path, missing_values: str | None = None):
    """Read a CSV or Parquet table and check that skmissvae can model its columns.

    Parameters
    ----------
    path : Path
        A ``.csv``, ``.parquet`` or ``.pq`` file.
    missing_values : str, default=None
        A text that marks missing cells of a CSV file besides empty fields and NA/NaN
        (numbers are left for the estimator's ``missing_values``, so that integer
        columns stay integers).

    Returns
    -------
    frame : pandas.DataFrame
        The table as read; missing cells are NaN or NA.
    """
    import pandas as pd

    fmt = _format_of(path, "input")
    if not path.is_file():
        raise CommandError(f"input {str(path)!r} does not exist or is not a file.")
    try:
        if fmt == "csv":
            text = missing_values is not None and _number(missing_values) is None
            frame = pd.read_csv(path, na_values=[missing_values] if text else None, **exact_float_options())
        else:
            frame = pd.read_parquet(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, OSError, ValueError) as error:
        raise CommandError(f"cannot read {str(path)!r} as {fmt.upper()}: {error}") from None
    return _check_columns(frame, path)


def _check_columns(frame, path: Path):
    """The table, or an error naming the columns that no observation model fits."""
    import pandas as pd

    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise CommandError(f"{str(path)!r} has no data: {frame.shape[0]} rows, {frame.shape[1]} columns.")
    types = pd.api.types
    # Numbers, booleans, text and categories are modelled; dates, durations and complex
    # numbers are not (yet): say which columns to convert.
    bad = [c for c in frame.columns
           if types.is_datetime64_any_dtype(frame[c]) or types.is_timedelta64_dtype(frame[c])
           or types.is_complex_dtype(frame[c])]
    if bad:
        raise CommandError(
            f"{str(path)!r}: columns {bad!r} hold dates, durations or complex numbers, which "
            "skmissvae cannot model; convert them to numbers or drop them first."
        )
    return frame


def _column_types(args, frame) -> dict | None:
    options = {"categorical": args.categorical, "binary": args.binary,
               "semicontinuous": args.semicontinuous}
    declared = {column: kind for kind, columns in options.items() for column in columns}
    unknown = [c for c in declared if c not in frame.columns]
    if unknown:
        raise CommandError(f"--categorical/--binary/--semicontinuous name columns that the table "
                           f"does not have: {unknown!r}; its columns are {list(frame.columns)!r}.")
    for column in declared:
        kinds = [f"--{kind}" for kind, columns in options.items() if column in columns]
        if len(kinds) > 1:
            raise CommandError(f"column {column!r} is declared {' and '.join(kinds)}.")
    return declared or None


def write_table(frame, path: Path) -> None:
    """Write ``frame`` to ``path`` as CSV or Parquet, by the file's extension.

    Parameters
    ----------
    frame : pandas.DataFrame
        The table to write (its index is not written).
    path : Path
        A ``.csv``, ``.parquet`` or ``.pq`` file; it is replaced if it exists. ``-`` writes
        CSV to standard output.
    """
    if _is_stdout(path):
        frame.to_csv(sys.stdout, index=False)
    elif _format_of(path, "output") == "csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)


def _is_stdout(path: Path) -> bool:
    return str(path) == "-"


def _check_output(path: Path) -> None:
    # Before fitting: a typo in the output path should not cost a training run.
    if _is_stdout(path):
        return
    _format_of(path, "output")
    _check_writable(path, "output")


def _check_writable(path: Path, role: str) -> None:
    """Refuse a path that cannot be written: a folder, or in a missing or read-only folder."""
    folder = path.parent
    if path.is_dir():
        raise CommandError(f"{role} {str(path)!r} is a folder; give a file name.")
    if not folder.is_dir():
        raise CommandError(f"{role} {str(path)!r}: folder {str(folder)!r} does not exist.")
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise CommandError(f"{role} {str(path)!r} cannot be written (permission denied).")


def _integer_columns(args, frame):
    """``frame`` with the float columns that ``--integer-columns`` names as nullable
    integers (``Int64``), which the imputers give back as integers."""
    import numpy as np
    import pandas as pd

    names = list(dict.fromkeys(getattr(args, "integer_columns", [])))
    auto = "auto" in names
    named = [name for name in names if name != "auto"]
    unknown = [name for name in named if name not in frame.columns]
    if unknown:
        raise CommandError(f"--integer-columns names columns that the table does not have: {unknown!r}; "
                           f"its columns are {list(frame.columns)!r}.")
    converted = {}
    for name in frame.columns if auto else named:
        column = frame[name]
        if not pd.api.types.is_float_dtype(column.dtype):
            if name in named and not pd.api.types.is_integer_dtype(column.dtype):
                raise CommandError(f"--integer-columns {name!r}: the column is not numeric.")
            continue
        observed = column.dropna().to_numpy(dtype=np.float64)
        whole = len(observed) and np.isfinite(observed).all() and (observed == np.round(observed)).all()
        if whole and np.abs(observed).max() < 2**53:
            converted[name] = "Int64"
        elif name in named:
            example = observed[observed != np.round(observed)][:1]
            raise CommandError(f"--integer-columns {name!r}: the column holds values that are not "
                               f"whole numbers{f' such as {example[0]!r}' if len(example) else ''}.")
    return frame.astype(converted) if converted else frame


def _output_table(out, frame, estimator):
    """The output of ``transform`` (or one copy of ``sample_imputations``) as a DataFrame
    for a file: integer columns of ``frame`` as integers, missing-indicators as 0/1."""
    import numpy as np
    import pandas as pd

    if not isinstance(out, pd.DataFrame):
        out = pd.DataFrame(np.asarray(out), columns=estimator.get_feature_names_out(), index=frame.index)
    dtypes = {}
    for name in out.columns:
        if name not in frame.columns:
            dtypes[name] = np.int64  # a missing-indicator
        elif pd.api.types.is_integer_dtype(frame[name].dtype) and not pd.api.types.is_integer_dtype(out[name].dtype):
            dtypes[name] = frame[name].dtype
    return out.astype(dtypes) if dtypes else out


# -- commands -----------------------------------------------------------------------------
def _bounds(options: list, frame, flag: str):
    """``--min-value``/``--max-value`` as the estimator's ``min_value``/``max_value``."""
    import numpy as np

    default = -np.inf if flag == "--min-value" else np.inf
    everywhere = [value for column, value in options if column is None]
    if len(everywhere) > 1 or (everywhere and len(options) > 1):
        raise CommandError(f"{flag} takes one number for every column or COLUMN=NUMBER pairs, not both.")
    if everywhere:
        return everywhere[0]
    bounds = np.full(frame.shape[1], default)
    for column, value in options:
        if column not in frame.columns:
            raise CommandError(f"{flag} names column {column!r}, which the table does not have; "
                               f"its columns are {list(frame.columns)!r}.")
        bounds[frame.columns.get_loc(column)] = value
    return bounds


def _missing_values(args):
    """``--missing-values`` as the estimator's ``missing_values`` (NaN when not given)."""
    if args.missing_values is None:
        return math.nan
    number = _number(args.missing_values)
    return args.missing_values if number is None else number


def _set_options(estimator, **params) -> None:
    """Set parameters of a loaded imputer, on every member of an ensemble."""
    for member in getattr(estimator, "estimators_", [estimator]):
        member.set_params(**params)


def _build_estimator(args, frame):
    from .impute import VAEEnsembleImputer

    estimator = _build_model(args, frame)
    if args.ensemble == 1:
        return estimator
    return VAEEnsembleImputer(estimator, n_estimators=args.ensemble, random_state=args.random_state)


def _build_model(args, frame):
    from .impute import METHODS, DeMissVAEImputer, MixtureVAEImputer

    common = dict(latent_dim=args.latent_dim, max_iter=args.max_iter, random_state=args.random_state,
                  device=args.device, verbose=0 if args.quiet else 1,
                  column_types=_column_types(args, frame), missing_values=_missing_values(args),
                  n_jobs=args.threads, add_indicator=getattr(args, "add_indicator", False),
                  min_value=_bounds(getattr(args, "min_value", []), frame, "--min-value"),
                  max_value=_bounds(getattr(args, "max_value", []), frame, "--max-value"))
    if args.min_scale is not None:
        common["min_scale"] = args.min_scale
    if args.method == _DEMISSVAE:
        if args.min_scale == "auto":
            raise CommandError("--min-scale auto does not apply to DeMissVAE; give a number.")
        if args.n_particles is not None:
            raise CommandError("--n-particles does not apply to DeMissVAE.")
        if args.validation_split != "rows":
            raise CommandError("--validation-split entries does not apply to DeMissVAE: its "
                               "stored imputations would carry the held-out entries into training.")
        extra = {} if args.n_components is None else {"n_imputations": args.n_components}
        return DeMissVAEImputer(**common, **extra)
    params = dict(METHODS[args.method])
    if args.n_components is not None:
        if params["n_components"] == 1 and args.n_components > 1:
            # The mixture method with the same objective, stratified as the paper recommends.
            mixture = next(name for name, other in METHODS.items()
                           if other["n_components"] > 1 and other["objective"] == params["objective"]
                           and other.get("sampling") == "stratified")
            raise CommandError(
                f"{args.method} has a single-Gaussian encoder; for {args.n_components} components "
                f"use {mixture}."
            )
        params["n_components"] = args.n_components
    k = params["n_components"]
    if args.n_particles is not None:
        params["n_particles"] = args.n_particles
    elif k > 1 and params.get("sampling") == "stratified":
        params["n_particles"] = k * math.ceil(5 / k)  # stratified: a draw from every component
    return MixtureVAEImputer(**params, **common, validation_split=args.validation_split)


def _fitted_estimator(args, train):
    """The model of ``--model``, or one trained on ``train`` with the command's options."""
    from ._persistence import load

    if args.model is None:
        return _build_estimator(args, train).fit(train)
    if not args.model.is_file():
        raise CommandError(f"--model {str(args.model)!r} does not exist or is not a file.")
    try:
        estimator = load(args.model)
    except Exception as error:  # noqa: BLE001 - torch.load fails on foreign files in many ways
        raise CommandError(f"cannot load --model {str(args.model)!r} (is it a file written by "
                           f"--save-model?): {type(error).__name__}: {error}") from None
    # How cells are read and how many threads run are choices of this command, not of the model.
    if args.missing_values is not None:
        _set_options(estimator, missing_values=_missing_values(args))
    if args.threads is not None:
        _set_options(estimator, n_jobs=args.threads)
    return estimator


def _save_model(args, estimator) -> None:
    from ._persistence import save

    if args.save_model is None or args.model is not None:
        return
    try:
        save(estimator, args.save_model)
    except (TypeError, ValueError) as error:
        raise CommandError(f"cannot save the model to {str(args.save_model)!r}: {error}") from None
    print(f"saved the model to {args.save_model}", file=sys.stderr)


def _check_model_options(args) -> None:
    # Before fitting, as the output path: a model that cannot be written is a lost training run.
    if args.save_model is not None:
        _check_writable(args.save_model, "--save-model")
        target = args.save_model.resolve()
        output = getattr(args, "output", None)
        if output is not None and not _is_stdout(output) and output.resolve() == target:
            raise CommandError(f"--save-model {str(args.save_model)!r} is also the output file; "
                               "give them different names.")
        if any(path is not None and path.resolve() == target for path in (args.input, getattr(args, "train", None))):
            raise CommandError(f"--save-model {str(args.save_model)!r} would overwrite an input table.")
    fixed = [flag for flag, given in (("--min-value", getattr(args, "min_value", [])),
                                      ("--max-value", getattr(args, "max_value", [])),
                                      ("--add-indicator", getattr(args, "add_indicator", False))) if given]
    if args.model is not None and fixed:
        raise CommandError(f"{', '.join(fixed)} are fixed when a model is trained; a model loaded "
                           "with --model keeps those it was saved with.")
    if args.model is not None and args.save_model is not None:
        raise CommandError("--model and --save-model together would save the loaded model "
                           "again; use one of them.")
    if args.model is not None and getattr(args, "train", None) is not None:
        raise CommandError("--model and --train exclude each other: a loaded model is not trained.")


def _impute(args) -> None:
    import numpy as np
    import pandas as pd

    _check_output(args.output)
    _check_model_options(args)
    frame = _integer_columns(args, read_table(args.input, args.missing_values))
    estimator = _fitted_estimator(args, frame)
    if args.n_imputations == 1:
        out = _output_table(estimator.transform(frame), frame, estimator)
    else:
        # A numeric table gives an array [M, N, D], a mixed one a list of M DataFrames.
        draws = estimator.sample_imputations(frame, args.n_imputations)
        copies = [_output_table(d, frame, estimator).reset_index(drop=True) for d in draws]
        m, n = len(copies), len(frame)
        out = pd.concat(copies, ignore_index=True)
        out.insert(0, "row", np.tile(np.arange(n), m))
        out.insert(0, "imputation", np.repeat(np.arange(1, m + 1), n))
    write_table(out, args.output)
    where = "standard output" if _is_stdout(args.output) else args.output
    print(f"wrote {len(out)} rows to {where}", file=sys.stderr)
    _save_model(args, estimator)


def _score(args) -> None:
    import pandas as pd

    if args.output is not None:
        _check_output(args.output)
    _check_model_options(args)
    frame = read_table(args.input, args.missing_values)
    train = frame if args.train is None else read_table(args.train, args.missing_values)
    if list(train.columns) != list(frame.columns):
        raise CommandError(
            f"{str(args.input)!r} and --train {str(args.train)!r} must have the same columns in the "
            f"same order; got {list(frame.columns)!r} and {list(train.columns)!r}."
        )
    estimator = _fitted_estimator(args, train)
    scores = pd.DataFrame({"log_likelihood": estimator.score_samples(frame)})
    if args.output is None:
        scores.to_csv(sys.stdout, index=False)
    else:
        write_table(scores, args.output)
    print(f"mean log-likelihood {scores['log_likelihood'].mean():.4f} nats per row "
          f"({len(scores)} rows)", file=sys.stderr)
    _save_model(args, estimator)


def _demo(args) -> None:
    from ._demo import run_demo

    run_demo(n_samples=args.n_samples, max_iter=args.max_iter, random_state=args.random_state)


def main(argv=None) -> int:
    """Run the ``skmissvae`` command line.

    Parameters
    ----------
    argv : list of str, default=None
        Arguments without the program name; ``sys.argv[1:]`` when None.

    Returns
    -------
    status : int
        0 on success, 2 when the input cannot be used (the reason is printed on standard
        error). Invalid options exit through ``SystemExit(2)`` as argparse does.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    run = {"impute": _impute, "score": _score, "demo": _demo}[args.command]
    try:
        with _short_warnings():
            run(args)
    except ValueError as error:  # CommandError, or the estimator's checks of data and settings
        print(f"skmissvae {args.command}: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader closed the pipe (`skmissvae score data.csv | head`): stop quietly, and
        # point stdout at devnull so that Python's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return 0


@contextlib.contextmanager
def _short_warnings():
    """Print warnings (e.g. ConvergenceWarning) as one line, without source file and code."""
    original = warnings.formatwarning
    warnings.formatwarning = lambda message, category, *args, **kwargs: (
        f"skmissvae: {category.__name__}: {message}\n"
    )
    try:
        yield
    finally:
        warnings.formatwarning = original
