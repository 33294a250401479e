"""min_scale="auto": the decoder floor is lowered only where held-out rows gain from it."""

import numpy as np
import pandas as pd
import pytest
import torch
from numpy.testing import assert_array_equal
from sklearn.utils._param_validation import InvalidParameterError

import skmissvae
from _helpers import script_validation
from skmissvae import DeMissVAEImputer, MixtureVAEImputer
from skmissvae.impute import _floor

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

PARAMS = dict(latent_dim=2, hidden_width=32, n_hidden_blocks=1, batch_size=64, max_iter=20,
              n_impute_samples=32, n_score_samples=64, device="cpu", random_state=0)


def tight_table(n_rows=2000, seed=0):
    """One free column and three linear functions of it plus noise of 1 % of their spread
    (the same functions for every ``seed``); complete and incomplete (20 % missing)."""
    slopes = np.random.RandomState(0).standard_normal((1, 3))
    rng = np.random.RandomState(seed + 1)
    factor = rng.standard_normal((n_rows, 1))
    X = np.column_stack([factor, factor @ slopes + 0.01 * rng.standard_normal((n_rows, 3))])
    X_missing = X.copy()
    X_missing[rng.rand(*X.shape) < 0.2] = np.nan
    empty = np.isnan(X_missing).all(axis=1)
    X_missing[empty, 0] = X[empty, 0]
    return X, X_missing


def noise_table(n_rows=600, seed=0):
    """Independent standard-normal columns: every decoder scale stays near 1."""
    rng = np.random.RandomState(seed)
    X = rng.standard_normal((n_rows, 4))
    X[rng.rand(*X.shape) < 0.2] = np.nan
    return X


def weights(imputer):
    return [p.detach().clone() for p in imputer.model_.parameters()]


def assert_same_weights(a, b):
    for x, y in zip(weights(a), weights(b), strict=True):
        assert torch.equal(x, y)


def test_auto_lowers_the_floor_of_tightly_related_columns_and_scores_higher():
    X, X_missing = tight_table()
    auto = MixtureVAEImputer(**PARAMS).fit(X_missing)
    fixed = MixtureVAEImputer(min_scale=0.1, **PARAMS).fit(X_missing)
    assert auto.min_scale_ in _floor.AUTO_FLOORS[1:]
    assert auto.model_.likelihood.min_scale == auto.min_scale_
    assert fixed.min_scale_ == 0.1
    # The kept stages' epochs follow the main run's.
    assert auto.n_iter_ > fixed.n_iter_ == PARAMS["max_iter"]
    assert len(auto.loss_curve_) == len(auto.validation_scores_) == auto.n_iter_
    # New rows from the same law: the lower floor is worth nats per row.
    _, X_new = tight_table(seed=1)
    assert auto.score(X_new) > fixed.score(X_new) + 1.0


def test_auto_leaves_data_without_tight_structure_at_the_first_floor():
    X = noise_table()
    auto = MixtureVAEImputer(**PARAMS).fit(X)
    fixed = MixtureVAEImputer(min_scale=0.1, **PARAMS).fit(X)
    assert auto.min_scale_ == 0.1 and auto.n_iter_ == fixed.n_iter_
    assert_same_weights(auto, fixed)


def test_auto_without_held_out_rows_is_the_first_floor():
    _, X_missing = tight_table()
    for params in (dict(early_stopping=False), dict(validation_split="entries")):
        auto = MixtureVAEImputer(**PARAMS, **params).fit(X_missing)
        fixed = MixtureVAEImputer(min_scale=0.1, **PARAMS, **params).fit(X_missing)
        assert auto.min_scale_ == 0.1
        assert_same_weights(auto, fixed)


def script_held_out_scores(monkeypatch, means):
    """Make the floor search see held-out rows scoring ``means[i]`` (then the last one)
    on its i-th evaluation, with a row-to-row spread of 1."""
    calls = iter(list(means) + [means[-1]] * 10)

    def scripted(estimator, fit):
        spread = torch.linspace(-1.0, 1.0, 101, dtype=torch.float64)
        return next(calls) + spread

    monkeypatch.setattr(_floor, "held_out_scores", scripted)


def test_a_lower_floor_that_does_not_score_higher_is_undone(monkeypatch):
    _, X_missing = tight_table()
    script_held_out_scores(monkeypatch, [1.0, 0.5])  # before and after the stage at 0.01
    auto = MixtureVAEImputer(**PARAMS).fit(X_missing)
    fixed = MixtureVAEImputer(min_scale=0.1, **PARAMS).fit(X_missing)
    assert auto.min_scale_ == 0.1 and auto.model_.likelihood.min_scale == 0.1
    assert auto.n_iter_ == fixed.n_iter_ and auto.fit_time_ > fixed.fit_time_ / 2
    assert_same_weights(auto, fixed)


@pytest.mark.parametrize(("means", "floor"), [([1.0, 2.0, 2.0], 0.01), ([1.0, 1.001], 0.1)])
def test_a_lower_floor_is_kept_only_when_it_scores_clearly_higher(monkeypatch, means, floor):
    # Pairs of rows differ by exactly the mean gain (standard error 0): 0.01 gains 1 nat
    # and is kept, 0.001 (tried if the floor still binds) gains nothing; a gain as small
    # as tol is not enough.
    _, X_missing = tight_table()
    script_held_out_scores(monkeypatch, means)
    auto = MixtureVAEImputer(**PARAMS).fit(X_missing)
    stage = PARAMS["max_iter"] // 4
    assert auto.min_scale_ == floor
    assert auto.n_iter_ == PARAMS["max_iter"] + (stage if floor < 0.1 else 0)
    assert len(auto.validation_scores_) == auto.n_iter_


def test_the_decision_scores_the_rows_that_training_held_out(monkeypatch):
    # Every stage and every scoring replays the main run's split instead of drawing anew.
    from skmissvae.core import training

    held, split = [], training.split_rows

    def spy(n_rows, fraction, generator):
        rows = split(n_rows, fraction, generator)
        held.append(rows[1].clone())
        return rows

    monkeypatch.setattr(training, "split_rows", spy)
    monkeypatch.setattr(_floor, "split_rows", spy)
    auto = MixtureVAEImputer(**PARAMS).fit(tight_table()[1])
    assert auto.min_scale_ < 0.1
    assert len(held) >= 4  # main run, scoring before the stage, the stage, scoring after it
    assert all(torch.equal(rows, held[0]) for rows in held)


def test_binding_share_counts_observed_entries_with_a_scale_at_the_floor():
    def share(X, floor):
        imputer = MixtureVAEImputer(min_scale=0.1, **PARAMS).fit(X)
        fitted = imputer.fitted_model_
        x, mask = fitted.table.to_tensors(*fitted.table.encode(X), torch.device("cpu"))
        return _floor.binding_share(imputer.model_, x, mask, floor, torch.Generator().manual_seed(0))

    tight, noise = tight_table()[1], noise_table()
    # The tight columns are predicted near or below the floor, independent noise far above it.
    assert share(tight, 0.1) > 0.5 > share(noise, 0.1)
    # A floor far above every scale binds everything; one below every scale nothing.
    assert share(noise, 100.0) == 1.0
    assert share(tight, 1e-9) == 0.0


def test_a_saved_model_keeps_the_floor_auto_chose(tmp_path):
    _, X_missing = tight_table()
    imputer = MixtureVAEImputer(**PARAMS).fit(X_missing)
    skmissvae.save(imputer, tmp_path / "imputer.pt")
    loaded = skmissvae.load(tmp_path / "imputer.pt")
    assert loaded.min_scale == "auto" and loaded.min_scale_ == imputer.min_scale_ < 0.1
    assert_array_equal(loaded.transform(X_missing), imputer.transform(X_missing))
    assert_array_equal(loaded.score_samples(X_missing), imputer.score_samples(X_missing))


def test_demissvae_takes_a_number_only():
    with pytest.raises(InvalidParameterError, match="min_scale"):
        DeMissVAEImputer(min_scale="auto", max_iter=1).fit(noise_table())


def test_auto_on_a_mixed_type_table_judges_the_continuous_columns():
    # A categorical column (no scale) beside the tight continuous ones: the search runs.
    X, X_missing = tight_table()
    frame = pd.DataFrame(X_missing, columns=list("abcd"))
    frame["sign"] = pd.Series(np.where(X[:, 0] > 0, "up", "down"), dtype="category")
    frame.loc[::7, "sign"] = np.nan
    imputer = MixtureVAEImputer(**PARAMS).fit(frame)
    assert imputer.min_scale_ < 0.1
    completed = imputer.transform(frame)
    assert completed.notna().all().all() and list(completed.columns) == list(frame.columns)
