"""Plots of fitted imputers: training curves, imputed distributions, latent posteriors.

matplotlib is an optional dependency (``pip install skmissvae[plot]``); it is imported when
a function here is called, not when this module is imported. Every function returns the
matplotlib object it drew on so that the caller can restyle or save it.
"""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd

from ._columns import _as_frame
from .impute._options import mask_missing_values

__all__ = ["plot_imputed_distributions", "plot_latent_posterior", "plot_training_curves"]


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as error:  # pragma: no cover - exercised only without matplotlib
        raise ImportError(
            "skmissvae.plotting needs matplotlib; install it with `pip install skmissvae[plot]` "
            "(or `pip install matplotlib`)."
        ) from error
    return plt


def _check_fitted(estimator) -> None:
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(estimator, "model_")


# -- training curves --------------------------------------------------------------------
def plot_training_curves(estimator, ax=None):
    """Plot the training objective and the validation score per epoch.

    Both curves are per-row objectives (negative training loss and validation score) in
    nats of the internally standardised data, so higher is better; a dotted line marks the
    epoch whose weights were kept (``best_iteration_``).

    Parameters
    ----------
    estimator : fitted MixtureVAEImputer or DeMissVAEImputer
        Its ``loss_curve_``, ``validation_scores_`` and ``best_iteration_`` are plotted.
    ax : matplotlib Axes, default=None
        Where to draw; a new figure is created when None.

    Returns
    -------
    ax : matplotlib Axes
        The Axes drawn on.

    Examples
    --------
    >>> import numpy as np
    >>> from skmissvae import MixtureVAEImputer
    >>> from skmissvae.plotting import plot_training_curves
    >>> X = np.random.RandomState(0).normal(size=(60, 3))
    >>> X[::4, 1] = np.nan
    >>> imputer = MixtureVAEImputer(max_iter=5, hidden_width=8, random_state=0).fit(X)
    >>> ax = plot_training_curves(imputer)
    """
    _check_fitted(estimator)
    plt = _pyplot()
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    training = -np.asarray(estimator.loss_curve_, dtype=float)
    validation = np.asarray(estimator.validation_scores_, dtype=float)
    epochs = np.arange(1, len(training) + 1)
    ax.plot(epochs, training, label="training objective")
    # Without validation rows the training loop reports minus the loss as the score:
    # the same curve again says nothing.
    if not np.allclose(validation, training, equal_nan=True):
        ax.plot(epochs, validation, label="validation score")
    ax.axvline(estimator.best_iteration_, color="0.4", linestyle=":",
               label=f"kept (epoch {estimator.best_iteration_})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("objective per row (nats, standardised data)")
    ax.set_title(f"{type(estimator).__name__} training")
    ax.legend()
    return ax


# -- observed vs imputed distributions ------------------------------------------------
def plot_imputed_distributions(estimator, X, columns=None, kind="sample", bins=30, n_cols=3):
    """Compare the observed values of each column with the values imputed for it.

    Numeric columns get overlaid density histograms, other columns (categories, booleans)
    bar charts of relative frequencies. Imputations that look unlike the observed values
    are not necessarily wrong (under MAR or MNAR the missing values differ), but a large
    difference under MCAR points at a poor fit.

    Parameters
    ----------
    estimator : fitted MixtureVAEImputer or DeMissVAEImputer
    X : array-like of shape (n_samples, n_features)
        Data with missing entries encoded as ``np.nan``.
    columns : list of str or int, default=None
        Columns to plot (names for a DataFrame, else positions); all columns when None.
    kind : {"sample", "mean"}, default="sample"
        Impute with one draw of :meth:`sample_imputations` (which has the spread of the
        model's conditional distribution) or with :meth:`transform`'s conditional means
        (which are less spread out than the data by construction).
    bins : int, default=30
        Histogram bins of numeric columns.
    n_cols : int, default=3
        Panels per row of the figure.

    Returns
    -------
    fig : matplotlib Figure
        One panel per column.
    """
    _check_fitted(estimator)
    if kind not in ("sample", "mean"):
        raise ValueError(f"kind must be 'sample' or 'mean', got {kind!r}.")
    if isinstance(n_cols, bool) or not isinstance(n_cols, numbers.Integral) or n_cols < 1:
        raise ValueError(f"n_cols must be a positive integer, got {n_cols!r}.")
    frame = _as_frame(X)
    imputed = _impute(estimator, X, kind, frame)
    selected = _select_columns(frame, columns)
    plt = _pyplot()
    n_rows = -(-len(selected) // n_cols)
    n_cols = min(n_cols, len(selected))
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(4 * n_cols, 3 * n_rows), squeeze=False)
    for ax, column in zip(axes.ravel(), selected):
        missing = frame[column].isna().to_numpy()
        observed_values = frame[column][~missing]
        imputed_values = imputed[column][missing]
        if _is_numeric(frame[column]) and _is_numeric(imputed[column]):
            _histograms(ax, observed_values, imputed_values, bins)
        else:
            _frequencies(ax, observed_values, imputed_values)
        title = str(column) if missing.any() else f"{column} (no missing values)"
        ax.set_title(title)
    for ax in axes.ravel()[len(selected):]:
        ax.set_visible(False)
    axes.ravel()[0].legend()
    fig.tight_layout()
    return fig


def _impute(estimator, X, kind: str, frame: pd.DataFrame) -> pd.DataFrame:
    if kind == "mean":
        out = estimator.transform(X)
    else:
        out = estimator.sample_imputations(X, 1)
        # Arrays come back as (1, n_samples, n_features); mixed tables as a list of frames.
        out = out[0]
    if isinstance(out, pd.DataFrame):
        return out.set_axis(frame.columns, axis=1).set_axis(frame.index, axis=0)
    return pd.DataFrame(np.asarray(out), columns=frame.columns, index=frame.index)


def _select_columns(frame: pd.DataFrame, columns) -> list:
    if columns is None:
        return list(frame.columns)
    if isinstance(columns, (str, numbers.Integral)):
        columns = [columns]
    unknown = [c for c in columns if c not in frame.columns]
    if unknown:
        raise ValueError(f"columns {unknown!r} are not columns of X; X has {list(frame.columns)!r}.")
    if not columns:
        raise ValueError("columns is empty: name at least one column to plot.")
    return list(columns)


def _is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def _histograms(ax, observed_values, imputed_values, bins: int) -> None:
    both = np.concatenate([np.asarray(observed_values, float), np.asarray(imputed_values, float)])
    edges = np.histogram_bin_edges(both, bins=bins)
    ax.hist(np.asarray(observed_values, float), bins=edges, density=True, alpha=0.5,
            label=f"observed ({len(observed_values)})")
    if len(imputed_values):
        ax.hist(np.asarray(imputed_values, float), bins=edges, density=True, alpha=0.5,
                label=f"imputed ({len(imputed_values)})")
    ax.set_ylabel("density")


def _frequencies(ax, observed_values, imputed_values) -> None:
    observed_share = observed_values.astype(str).value_counts(normalize=True)
    imputed_share = imputed_values.astype(str).value_counts(normalize=True)
    levels = sorted(set(observed_share.index) | set(imputed_share.index))
    positions = np.arange(len(levels))
    ax.bar(positions - 0.2, observed_share.reindex(levels, fill_value=0), width=0.4, alpha=0.5,
           label=f"observed ({len(observed_values)})")
    ax.bar(positions + 0.2, imputed_share.reindex(levels, fill_value=0), width=0.4, alpha=0.5,
           label=f"imputed ({len(imputed_values)})")
    ax.set_xticks(positions, levels)
    ax.set_ylabel("share")


# -- latent posterior -------------------------------------------------------------------
def plot_latent_posterior(estimator, X, rows=None, ax=None, grid_size=120, extent=None):
    """Show the posterior over a 2-D latent space for a few rows, with its approximation.

    For each selected row the model's posterior ``p(z | x_o)``, proportional to
    ``p(x_o | z) p(z)`` and normalised on the grid, is drawn as filled contours; the
    variational distribution used at inference time, ``q(z | x_o)``, as contour lines; the
    means of its mixture components as crosses sized by their weights. With missing
    entries the posterior is often multimodal, which is why a mixture encoder helps
    (Simkus & Gutmann, 2024).

    For :class:`MixtureVAEImputer` ``q`` is the encoder's Gaussian or mixture; for
    :class:`DeMissVAEImputer` it is the equal-weight mixture of the encoder's Gaussians
    over the row's imputations, as used by ``transform``.

    Parameters
    ----------
    estimator : fitted MixtureVAEImputer or DeMissVAEImputer
        Must have ``latent_dim=2``.
    X : array-like of shape (n_samples, n_features)
        Data with missing entries encoded as ``np.nan``.
    rows : list of int, default=None
        Positions of the rows to show; None shows the first three rows that have missing
        entries (or the first three rows when none has).
    ax : matplotlib Axes or sequence of Axes, default=None
        One Axes per row; a new figure with one panel per row is created when None.
    grid_size : int, default=120
        Grid points per latent dimension.
    extent : tuple of 4 floats, default=None
        ``(z1_min, z1_max, z2_min, z2_max)``; by default the box that holds the prior's
        central region and every component's mean +- 4 standard deviations.

    Returns
    -------
    fig : matplotlib Figure
        The figure that holds the panels.
    """
    _check_fitted(estimator)
    if estimator.model_.latent_dim != 2:
        raise ValueError(
            f"plot_latent_posterior needs a model with latent_dim=2, got latent_dim={estimator.model_.latent_dim}."
        )
    if isinstance(grid_size, bool) or not isinstance(grid_size, numbers.Integral) or grid_size < 2:
        raise ValueError(f"grid_size must be an integer >= 2, got {grid_size!r}.")
    values, observed = estimator.fitted_model_.table.encode(mask_missing_values(X, estimator.missing_values))
    rows = _select_rows(observed, rows)
    axes = _posterior_axes(ax, len(rows))
    q, z1, z2, posterior = _posterior_on_grid(estimator, values[rows], observed[rows], grid_size, extent)
    for i, (panel, row) in enumerate(zip(axes, rows)):
        _draw_posterior(panel, q, i, z1, z2, posterior[:, i].reshape(grid_size, grid_size))
        n_missing = int((~observed[row]).sum())
        panel.set_title(f"row {row}: {n_missing} of {observed.shape[1]} missing")
        panel.set_xlabel("$z_1$")
        panel.set_ylabel("$z_2$")
    _posterior_legend(axes[0])
    return axes[0].figure


def _select_rows(observed: np.ndarray, rows) -> list:
    n_rows = len(observed)
    if rows is None:
        incomplete = np.flatnonzero(~observed.all(axis=1))
        return [int(r) for r in (incomplete if len(incomplete) else np.arange(n_rows))[:3]]
    if isinstance(rows, numbers.Integral):
        rows = [rows]
    rows = [int(r) for r in rows]
    bad = [r for r in rows if not -n_rows <= r < n_rows]
    if bad or not rows:
        raise ValueError(f"rows must be positions in X (0 to {n_rows - 1}), got {rows!r}.")
    return [r % n_rows for r in rows]


def _posterior_axes(ax, n_panels: int) -> list:
    if ax is None:
        plt = _pyplot()
        _, axes = plt.subplots(1, n_panels, figsize=(4 * n_panels, 4), squeeze=False)
        return list(axes.ravel())
    axes = list(np.ravel(ax)) if isinstance(ax, (list, tuple, np.ndarray)) else [ax]
    if len(axes) != n_panels:
        raise ValueError(f"ax must hold one Axes per row: {n_panels} rows, {len(axes)} Axes.")
    return axes


def _posterior_on_grid(estimator, values, observed, grid_size, extent):
    """Proposal ``q`` of the rows, grid axes and ``p(z | x_o)`` on the grid ``[G*G, B]``."""
    import torch

    with torch.no_grad():
        return _posterior_on_grid_no_grad(estimator, values, observed, grid_size, extent)


def _posterior_on_grid_no_grad(estimator, values, observed, grid_size, extent):
    import torch

    fitted = estimator.fitted_model_
    q = fitted.proposal(values, observed, estimator.random_state)
    device = fitted.inference_device()
    model = fitted.model
    x, mask = fitted.table.to_tensors(values, observed, device)
    loc = q.loc.reshape(len(values), -1, 2)  # [B, K, 2] for Gaussian and mixture alike
    scale = q.scale.reshape(len(values), -1, 2)
    if extent is None:
        low = torch.minimum((loc - 4 * scale).amin((0, 1)), torch.full((2,), -3.0, device=device))
        high = torch.maximum((loc + 4 * scale).amax((0, 1)), torch.full((2,), 3.0, device=device))
        extent = (low[0].item(), high[0].item(), low[1].item(), high[1].item())
    if len(extent) != 4 or not extent[0] < extent[1] or not extent[2] < extent[3]:
        raise ValueError(f"extent must be (z1_min, z1_max, z2_min, z2_max) with min < max, got {extent!r}.")
    z1 = torch.linspace(extent[0], extent[1], grid_size, device=device)
    z2 = torch.linspace(extent[2], extent[3], grid_size, device=device)
    grid = torch.stack(torch.meshgrid(z1, z2, indexing="xy"), -1).reshape(-1, 1, 2)  # [G*G, 1, 2]
    z = grid.expand(-1, len(values), 2)  # [G*G, B, 2]
    log_joint = model.log_joint(x, mask, z)  # [G*G, B]
    log_post = log_joint - torch.logsumexp(log_joint, 0)  # normalised on the grid
    q_density = q.log_prob(z).exp()  # [G*G, B]
    weights = torch.softmax(q.logits, -1) if hasattr(q, "logits") else torch.ones(len(values), 1)
    proposal = {"density": q_density.cpu().numpy(), "loc": loc.cpu().numpy(),
                "weights": weights.reshape(len(values), -1).cpu().numpy()}
    return proposal, z1.cpu().numpy(), z2.cpu().numpy(), log_post.exp().cpu().numpy()


def _draw_posterior(ax, q, i, z1, z2, posterior) -> None:
    grid_size = len(z1)
    density = q["density"][:, i].reshape(grid_size, grid_size)
    # Levels relative to each peak: matplotlib's automatic ones include near-zero levels,
    # whose contours trace numerical noise far from the mass.
    fractions = np.array([0.02, 0.1, 0.25, 0.5, 0.75, 1.0])
    ax.contourf(z1, z2, posterior, levels=posterior.max() * np.concatenate([[0], fractions]),
                cmap="Greys")
    ax.contour(z1, z2, density, levels=density.max() * fractions[:-1], colors="C1", linewidths=1.0)
    means, weights = q["loc"][i], q["weights"][i]
    ax.scatter(means[:, 0], means[:, 1], s=30 + 200 * weights, marker="x", color="C3",
               label="component means of q", gid="component_means")


def _posterior_legend(ax) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    # Contour sets carry no legend entry of their own: stand-ins describe them.
    handles = [Patch(color="0.5", label="model posterior p(z | x_o)"),
               Line2D([], [], color="C1", label="encoder q(z | x_o)"),
               Line2D([], [], color="C3", marker="x", linestyle="", label="means of q's components")]
    ax.legend(handles=handles, loc="upper right", fontsize="small")
