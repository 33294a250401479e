"""skmissvae.plotting with matplotlib's Agg backend (skipped without matplotlib)."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest
import torch

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from skmissvae import DeMissVAEImputer  # noqa: E402
from skmissvae.plotting import (  # noqa: E402
    _posterior_on_grid,
    plot_imputed_distributions,
    plot_latent_posterior,
    plot_training_curves,
)

# The tiny fits stop at max_iter on purpose.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def fitted(table, make_imputer):
    """A two-component MissSIWAE with a validation split, and its training table."""
    X_missing = table()[1]
    imputer = make_imputer(max_iter=6, early_stopping=True)
    return imputer.fit(X_missing), X_missing


# -- training curves --------------------------------------------------------------------
def test_training_curves_plot_both_curves_and_the_kept_epoch(fitted):
    imputer, _ = fitted
    ax = plot_training_curves(imputer)
    training, validation, kept = ax.get_lines()
    np.testing.assert_allclose(training.get_ydata(), -np.asarray(imputer.loss_curve_))
    np.testing.assert_allclose(validation.get_ydata(), imputer.validation_scores_)
    np.testing.assert_array_equal(training.get_xdata(), np.arange(1, imputer.n_iter_ + 1))
    assert kept.get_xdata()[0] == imputer.best_iteration_


def test_training_curves_without_validation_show_one_curve_on_the_given_axes(make_imputer, X_missing):
    imputer = make_imputer(early_stopping=False).fit(X_missing)
    _, ax = plt.subplots()
    assert plot_training_curves(imputer, ax=ax) is ax
    assert len(ax.get_lines()) == 2  # the training curve and the kept-epoch marker


def test_plots_need_a_fitted_estimator(make_imputer, X_missing):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        plot_training_curves(make_imputer())
    with pytest.raises(NotFittedError):
        plot_imputed_distributions(make_imputer(), X_missing)


# -- imputed distributions ----------------------------------------------------------------
def test_imputed_distributions_one_panel_per_column_with_counts(fitted):
    imputer, X_missing = fitted
    before = X_missing.copy()
    fig = plot_imputed_distributions(imputer, X_missing)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == X_missing.shape[1]
    n_missing = np.isnan(X_missing).sum(axis=0)
    for ax, count in zip(visible, n_missing):
        heights = [patch.get_height() for patch in ax.patches]
        assert np.all(np.isfinite(heights)) and max(heights) > 0
    labels = [text.get_text() for text in visible[0].get_legend().get_texts()]
    assert labels == [f"observed ({len(X_missing) - n_missing[0]})", f"imputed ({n_missing[0]})"]
    np.testing.assert_array_equal(X_missing, before)  # the caller's data is untouched


def test_imputed_distributions_select_dataframe_columns_by_name(fitted):
    imputer, X_missing = fitted
    frame = pd.DataFrame(X_missing, columns=["a", "b", "c", "d"])
    imputer_df = type(imputer)(**imputer.get_params()).fit(frame)
    fig = plot_imputed_distributions(imputer_df, frame, columns=["d", "b"], kind="mean", n_cols=2)
    assert [ax.get_title() for ax in fig.axes] == ["d", "b"]


def test_imputed_distributions_mark_complete_columns(make_imputer, X_missing):
    X = X_missing.copy()
    X[:, 2] = np.nan_to_num(X[:, 2], nan=0.5)
    imputer = make_imputer().fit(X)
    fig = plot_imputed_distributions(imputer, X, columns=[2])
    assert fig.axes[0].get_title() == "2 (no missing values)"


def test_imputed_distributions_of_a_mixed_table_show_category_shares(make_imputer):
    rng = np.random.RandomState(0)
    frame = pd.DataFrame({"x": rng.standard_normal(80),
                          "city": pd.Categorical(rng.choice(["Oslo", "Rome"], 80))})
    frame.loc[::3, "city"] = np.nan
    frame.loc[1::4, "x"] = np.nan
    imputer = make_imputer().fit(frame)
    fig = plot_imputed_distributions(imputer, frame)
    city = fig.axes[1]
    assert [label.get_text() for label in city.get_xticklabels()] == ["Oslo", "Rome"]
    observed_share = frame["city"].dropna().astype(str).value_counts(normalize=True).sort_index()
    heights = [patch.get_height() for patch in city.patches]
    np.testing.assert_allclose(heights[:2], observed_share.to_numpy())
    np.testing.assert_allclose(sum(heights[2:]), 1.0)  # imputed shares


@pytest.mark.parametrize(
    "kwargs, match",
    [({"columns": ["nope"]}, "'nope'"), ({"columns": []}, "columns is empty"),
     ({"kind": "median"}, "kind must be"), ({"n_cols": 0}, "n_cols")],
)
def test_imputed_distributions_reject_bad_arguments(fitted, kwargs, match):
    imputer, X_missing = fitted
    with pytest.raises(ValueError, match=match):
        plot_imputed_distributions(imputer, X_missing, **kwargs)


# -- latent posterior ---------------------------------------------------------------------
def _component_means(ax):
    (means,) = [c for c in ax.collections if c.get_gid() == "component_means"]
    return means.get_offsets()


def test_latent_posterior_one_panel_per_row(fitted):
    imputer, X_missing = fitted
    fig = plot_latent_posterior(imputer, X_missing, grid_size=30)
    incomplete = np.flatnonzero(np.isnan(X_missing).any(axis=1))[:3]
    assert [ax.get_title().split(":")[0] for ax in fig.axes] == [f"row {r}" for r in incomplete]
    # two component means of q per panel
    for ax in fig.axes:
        assert len(_component_means(ax)) == 2


def test_latent_posterior_draws_on_given_axes(fitted):
    imputer, X_missing = fitted
    _, axes = plt.subplots(1, 2)
    fig = plot_latent_posterior(imputer, X_missing, rows=[0, -1], ax=axes, grid_size=20)
    assert fig is axes[0].figure
    assert axes[1].get_title().startswith(f"row {len(X_missing) - 1}:")


def test_latent_posterior_grid_is_oriented_and_normalised(make_imputer, X_missing):
    """On a wide grid ``q`` integrates to 1 and a Gaussian ``q`` peaks at its mean."""
    imputer = make_imputer("MIWAE").fit(X_missing)
    values, observed = imputer.fitted_model_.table.encode(X_missing[:2])
    grid_size, extent = 201, (-8.0, 8.0, -8.0, 8.0)
    q, z1, z2, posterior = _posterior_on_grid(imputer, values, observed, grid_size, extent)
    cell = (z1[1] - z1[0]) * (z2[1] - z2[0])
    np.testing.assert_allclose(q["density"].sum(0) * cell, 1.0, atol=1e-3)
    np.testing.assert_allclose(posterior.astype(np.float64).sum(0), 1.0, atol=1e-5)  # float32 cells, exact sum
    for i in range(2):
        peak = np.unravel_index(q["density"][:, i].argmax(), (grid_size, grid_size))
        np.testing.assert_allclose([z1[peak[1]], z2[peak[0]]], q["loc"][i, 0], atol=z1[1] - z1[0])


def test_latent_posterior_of_demissvae(X_missing):
    imputer = DeMissVAEImputer(latent_dim=2, hidden_width=8, n_hidden_blocks=1, batch_size=32,
                               max_iter=2, early_stopping=False, n_imputations=3,
                               n_impute_samples=16, n_score_samples=32, device="cpu",
                               random_state=0).fit(X_missing)
    fig = plot_latent_posterior(imputer, X_missing, rows=1, grid_size=20)
    assert len(_component_means(fig.axes[0])) == 3  # one q component per imputation


@pytest.mark.parametrize(
    "kwargs, match",
    [({"rows": [500]}, "rows must be positions"), ({"rows": []}, "rows must be positions"),
     ({"grid_size": 1}, "grid_size"), ({"extent": (1, 0, 0, 1)}, "extent"),
     ({"rows": [0, 1], "ax": "one"}, "one Axes per row")],
)
def test_latent_posterior_rejects_bad_arguments(fitted, kwargs, match):
    imputer, X_missing = fitted
    if kwargs.get("ax") == "one":
        kwargs["ax"] = plt.subplots()[1]
    with pytest.raises(ValueError, match=match):
        plot_latent_posterior(imputer, X_missing, **kwargs)


def test_latent_posterior_needs_a_2d_latent(make_imputer, X_missing):
    imputer = make_imputer(latent_dim=3).fit(X_missing)
    with pytest.raises(ValueError, match="latent_dim=2"):
        plot_latent_posterior(imputer, X_missing)


def test_missing_matplotlib_names_the_extra(fitted, monkeypatch):
    imputer, _ = fitted
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)  # makes the import fail
    with pytest.raises(ImportError, match=r"skmissvae\[plot\]"):
        plot_training_curves(imputer)


def test_plotting_leaves_torch_state_alone(fitted):
    imputer, X_missing = fitted
    state = torch.random.get_rng_state()
    plot_latent_posterior(imputer, X_missing, rows=[0], grid_size=10)
    assert torch.equal(state, torch.random.get_rng_state())
