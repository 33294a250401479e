"""``skmissvae.METHODS`` is the one source of the method table.

The class docstring of ``MixtureVAEImputer`` shows the table by hand (Notes); it must list
the same methods with the same settings. The command line and the API page of the docs
(``docs/conf.py``) generate theirs from the dict.
"""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

from skmissvae import METHODS, MixtureVAEImputer
from skmissvae._cli import _methods, _parser

ROOT = Path(__file__).resolve().parents[1]
HEADER = ["method", "n_components", "objective", "sampling"]


def _rst_table(text: str, after: str) -> list[list[str]]:
    """The rows (header first) of the first simple reST table after the line ``after``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == after)
    rules = [i for i in range(start, len(lines)) if lines[i].strip().startswith("==")]
    assert len(rules) >= 3, f"no table after {after!r}"
    top, below_header, bottom = rules[:3]
    rule = lines[top]
    # Column spans from the rule line: runs of "=" separated by spaces.
    spans, col = [], None
    for i, char in enumerate(rule + " "):
        if char == "=" and col is None:
            col = i
        elif char != "=" and col is not None:
            spans.append((col, i))
            col = None
    # The last column extends to the end of the line, as in docutils.
    spans[-1] = (spans[-1][0], None)
    rows = [lines[top + 1]] + lines[below_header + 1:bottom]
    return [[row[a:b].strip() for a, b in spans] for row in rows]


def _docstring_table() -> list[list[str]]:
    return _rst_table(inspect.cleandoc(MixtureVAEImputer.__doc__), "Notes")


def _expected_row(name: str, params: dict, n_components: str) -> list[str]:
    sampling = "--" if params["n_components"] == 1 else f'"{params["sampling"]}"'
    return [name, n_components, f'"{params["objective"]}"', sampling]


def test_methods_are_the_papers_settings():
    """The dict itself: every method names a complete, valid setting."""
    assert METHODS, "METHODS is empty"
    for name, params in METHODS.items():
        assert params["objective"] in {"elbo", "iwelbo"}, name
        if params["n_components"] == 1:
            assert "sampling" not in params, f"{name}: sampling means nothing with one component"
        else:
            assert params["n_components"] > 1 and params["sampling"] in {"ancestral", "stratified"}
        MixtureVAEImputer(**params)._validate_params()


def test_docstring_table_lists_every_method_in_order():
    header, *rows = _docstring_table()
    assert header == HEADER
    assert [row[0] for row in rows] == list(METHODS), (
        "the Notes table of MixtureVAEImputer must list the methods of METHODS, in its order"
    )


@pytest.mark.parametrize("name", list(METHODS))
def test_docstring_table_row_matches_the_settings(name):
    rows = {row[0]: row for row in _docstring_table()[1:]}
    params = METHODS[name]
    components = "1" if params["n_components"] == 1 else "K > 1"
    assert rows[name] == _expected_row(name, params, components)


def test_the_docs_generate_their_table_from_methods():
    """``_methods_table`` of docs/conf.py, run without importing the Sphinx configuration."""
    tree = ast.parse((ROOT / "docs" / "conf.py").read_text(encoding="utf-8"))
    function = next(node for node in tree.body
                    if isinstance(node, ast.FunctionDef) and node.name == "_methods_table")
    namespace = {"skmissvae": sys.modules["skmissvae"]}
    exec(compile(ast.Module(body=[function], type_ignores=[]), "docs/conf.py", "exec"), namespace)
    text = "\n".join(line[3:] for line in namespace["_methods_table"]())  # the directive's body
    header, *rows = _rst_table("Notes\n" + text, "Notes")
    assert header == HEADER
    assert rows == [_expected_row(name, params, str(params["n_components"]))
                    for name, params in METHODS.items()]


def _method_action():
    impute = _parser()._subparsers._group_actions[0].choices["impute"]
    return next(action for action in impute._actions if action.dest == "method")


def test_command_line_accepts_exactly_the_methods_and_demissvae():
    action = _method_action()
    assert list(action.choices) == [*METHODS, "DeMissVAE"]
    assert action.default in METHODS
    for name in action.choices:
        assert _parser().parse_args(["impute", "x.csv", "-o", "y.csv", "--method", name]).method == name
    with pytest.raises(SystemExit):
        _parser().parse_args(["impute", "x.csv", "-o", "y.csv", "--method", "VAE"])


def test_command_line_help_describes_every_method(capsys):
    with pytest.raises(SystemExit):
        _parser().parse_args(["impute", "--help"])
    help_text = capsys.readouterr().out
    methods = help_text[help_text.index("methods (--method):"):].split("\n\n")[0].splitlines()[1:]
    described = {line.split()[0]: line for line in methods}
    assert list(described) == [*METHODS, "DeMissVAE"]
    for name, params in METHODS.items():
        assert params["objective"].upper() in described[name]
        if params["n_components"] > 1:
            assert f"{params['sampling']} sampling" in described[name]


def test_command_line_reads_methods_without_importing_torch():
    """``skmissvae --help`` stays fast: the dict is read from the source, not imported."""
    assert _methods() == METHODS
    code = ("import sys; from skmissvae._cli import _methods, _parser; _parser(); "
            "assert 'torch' not in sys.modules, 'torch imported'; print(sorted(_methods()))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(sorted(METHODS))
