"""Sphinx configuration of the skmissvae documentation (``make docs``)."""

import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # document the checkout, also without an installed package
# Examples run while the docs build: one thread each (CI has 2 shared cores), no windows.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import skmissvae  # noqa: E402

project = "skmissvae"
author = "the skmissvae developers"
copyright = "2024-2026, the skmissvae developers"
version = release = skmissvae.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "examples", "auto_examples/*.ipynb", "auto_examples/*.py",
                    "auto_examples/*.zip", "auto_examples/*.json", "auto_examples/*.md5"]

# -- API reference ----------------------------------------------------------------------
templates_path = ["_templates"]
autosummary_generate = True
autodoc_default_options = {"members": True}
numpydoc_show_class_members = True
numpydoc_show_inherited_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# -- Markdown pages ----------------------------------------------------------------------
myst_enable_extensions = ["colon_fence", "dollarmath"]
myst_heading_anchors = 3

# -- examples, executed at every build -----------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": "examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "remove_config_comments": True,
    "abort_on_example_error": True,
    "reset_modules": ("matplotlib",),
    "capture_repr": (),  # printed output only, no repr of the last expression
}

html_theme = "alabaster"
html_title = f"skmissvae {release}"
html_theme_options = {
    "description": "Variational autoencoders for incomplete tables",
    "fixed_sidebar": True,
}


# -- API reference, written from the modules' ``__all__`` at every build -------------------
# Generated rather than hand-kept so that a new public function cannot be left out.
API_SECTIONS = [
    ("Estimators and persistence", "skmissvae", ""),
    ("Data sets", "skmissvae.datasets", "Synthetic data with known densities and missingness generators."),
    ("Evaluation", "skmissvae.evaluation", "Test log-likelihoods and imputation metrics."),
    ("Plotting", "skmissvae.plotting", "Needs matplotlib (``pip install skmissvae[plot]``)."),
    ("Dask", "skmissvae.dask",
     "Tables larger than memory and clusters; needs Dask (``pip install skmissvae[dask]``)."),
]


def _methods_table():
    """The ``skmissvae.METHODS`` entry of the API page, its table generated from the dict."""
    header = ("method", "n_components", "objective", "sampling")
    rows = [(name, str(params["n_components"]), f'"{params["objective"]}"',
             f'"{params["sampling"]}"' if "sampling" in params else "--")
            for name, params in skmissvae.METHODS.items()]
    widths = [max(len(row[i]) for row in [header, *rows]) + 2 for i in range(len(header))]
    rule = "  ".join("=" * width for width in widths)

    def line(cells):
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths)).rstrip()

    table = [rule, line(header), rule, *(line(row) for row in rows), rule]
    return [
        ".. data:: skmissvae.METHODS",
        "   :no-index:",
        "",
        "   The paper's method names mapped to parameters of :class:`MixtureVAEImputer`, e.g.",
        '   ``MixtureVAEImputer(**METHODS["MissVAE"])``:',
        "",
        *(f"   {row}" for row in table),
    ]


def _public_callables(module_name):
    import importlib

    module = importlib.import_module(module_name)
    return [name for name in module.__all__
            if not name.startswith("_") and callable(getattr(module, name))]


def _write_api_page():
    lines = ["API reference", "=============", "",
             "Everything listed here is public; anything else may change without notice.", ""]
    for title, module_name, intro in API_SECTIONS:
        lines += [title, "-" * len(title), ""]
        if intro:
            lines += [intro, ""]
        lines += [f".. currentmodule:: {module_name}", "", ".. autosummary::",
                  "   :toctree: generated", "   :nosignatures:", ""]
        lines += [f"   {name}" for name in _public_callables(module_name)]
        lines.append("")
        if module_name == "skmissvae":
            lines += _methods_table() + [""]
    text = "\n".join(lines)
    path = Path(__file__).parent / "api.rst"
    if not path.exists() or path.read_text() != text:  # unchanged: keep Sphinx's cache valid
        path.write_text(text)


_write_api_page()


# -- links from the Markdown pages to files outside docs/ -----------------------------------
# The pages are read on GitHub too, where ``[results](../benchmarks/results/downstream.md)`` is a
# plain link. Sphinx would look for a page of that name; make such links downloads of the
# file instead, and show it with its name as the link text.
_OUTSIDE_LINK = re.compile(r"(?<!!)\[([^\]]+)\]\((\.\./[^)\s]+)\)")


def _outside_links_as_downloads(app, docname, source):
    def download(match):
        text = match.group(1).replace("`", "")
        return f"{{download}}`{text} <{match.group(2)}>`"

    source[0] = _OUTSIDE_LINK.sub(download, source[0])


def setup(app):
    app.connect("source-read", _outside_links_as_downloads)
