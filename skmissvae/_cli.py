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

Missing cells are empty fields or NA/NaN in CSV files, nulls in Parquet files. Numeric
columns are continuous, text columns categorical and true/false columns binary; --categorical
and --binary override that (e.g. for integer codes), and --semicontinuous marks numeric
columns that are mostly one value, such as amounts that are usually 0. Observed cells are written back
unchanged. With --n-imputations M > 1 the output is one long table: the M completed copies
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
    training = parent.add_argument_group("training")
    training.add_argument("--max-iter", type=_max_iter, default=200, metavar="N",
                          help="maximum training epochs, or 'auto' (at least 200 epochs and "
                               "5,000 steps); early stopping may end sooner (default: %(default)s)")
    training.add_argument("--validation-split", choices=["rows", "entries"], default="rows",
                          help="what early stopping holds out: 10 %% of the rows (watching their "
                               "log-likelihood) or 10 %% of the observed entries (watching how well "
                               "they are imputed, then refitting on everything); not for DeMissVAE "
                               "(default: %(default)s)")
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


def read_table(path: Path):
    """Read a CSV or Parquet table and check that skmissvae can model its columns.

    Parameters
    ----------
    path : Path
        A ``.csv``, ``.parquet`` or ``.pq`` file.

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
        frame = pd.read_csv(path) if fmt == "csv" else pd.read_parquet(path)
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
    if not path.parent.is_dir():
        raise CommandError(f"output {str(path)!r}: folder {str(path.parent)!r} does not exist.")


# -- commands -----------------------------------------------------------------------------
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
                  column_types=_column_types(args, frame))
    if args.method == _DEMISSVAE:
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
        return load(args.model)
    except Exception as error:  # noqa: BLE001 - torch.load fails on foreign files in many ways
        raise CommandError(f"cannot load --model {str(args.model)!r} (is it a file written by "
                           f"--save-model?): {type(error).__name__}: {error}") from None


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
    if args.save_model is not None and not args.save_model.parent.is_dir():
        raise CommandError(f"--save-model {str(args.save_model)!r}: folder "
                           f"{str(args.save_model.parent)!r} does not exist.")
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
    frame = read_table(args.input)
    estimator = _fitted_estimator(args, frame)
    if args.n_imputations == 1:
        out = estimator.transform(frame)
    else:
        # A numeric table gives an array [M, N, D], a mixed one a list of M DataFrames.
        draws = estimator.sample_imputations(frame, args.n_imputations)
        copies = [pd.DataFrame(np.asarray(d), columns=frame.columns) if isinstance(d, np.ndarray)
                  else d.reset_index(drop=True) for d in draws]
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
    frame = read_table(args.input)
    train = frame if args.train is None else read_table(args.train)
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
