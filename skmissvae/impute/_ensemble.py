"""VAEEnsembleImputer: several VAE imputers, trained with different seeds, used as one."""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.utils.metaestimators import available_if
from sklearn.utils.parallel import Parallel, delayed
from sklearn.utils.validation import check_is_fitted, validate_data

from .._compat import Interval, _fit_context
from ..datasets._missingness import check_random_state
from ._base import BaseVAEImputer, LikelihoodImputerMixin
from ._mixture_vae import MixtureVAEImputer
from ._options import torch_threads
from ._validation import check_n_imputations


def equal_mixture_log_likelihood(member_log_likelihoods):
    """``log((1/n) sum_m exp(l_m))`` per row from the members' ``[n]`` arrays of ``[rows]``.

    Shifted by the largest member value, so that equal values (0 for a row with nothing
    observed) come back exactly.
    """
    scores = np.stack(member_log_likelihoods)
    top = scores.max(axis=0).astype(np.float64)
    mixture = top + np.log(np.mean(np.exp(scores - top), axis=0))
    return mixture.astype(scores.dtype)


class VAEEnsembleImputer(LikelihoodImputerMixin, TransformerMixin, BaseEstimator):
    """An ensemble of VAE imputers that differ only in their random seed.

    Each member is a clone of ``estimator`` trained on the same data from its own
    initialisation and mini-batch order. Averaging their conditional means removes part of
    the error that comes from one training run's randomness, which matters most on small
    tables: a "deep ensemble" (Lakshminarayanan et al., 2017). It costs ``n_estimators``
    fits (see "Ensembles" in the design notes, ``docs/design.md``).

    Parameters
    ----------
    estimator : MixtureVAEImputer or DeMissVAEImputer, default=None
        The member to clone; None means ``MixtureVAEImputer()``. Its ``random_state`` is
        replaced by one drawn from this ensemble's ``random_state``. Its other parameters
        apply to the ensemble too: ``missing_values``, ``add_indicator``, ``min_value``
        and ``max_value`` shape the ensemble's inputs and outputs as a single imputer's,
        and its ``n_jobs`` sets the torch threads of each member's fit and inference.
    n_estimators : int, default=3
        Number of members.
    n_jobs : int, default=None
        Members fitted in parallel by joblib; None means 1, -1 all processors. Parallel
        members train in worker processes: their progress display, warnings and
        ``callbacks`` stay in those processes. The torch threads of each member are set
        by the member's own ``n_jobs`` (see ``estimator``).
    random_state : int, RandomState instance or None, default=None
        Draws the members' seeds. An int makes fits and outputs reproducible; with None,
        as for a single imputer, every fit and every call draws fresh randomness.

    Attributes
    ----------
    estimators_ : list of fitted imputers
        The members.
    n_features_in_ : int
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during ``fit``, when ``X`` has string column names.

    See Also
    --------
    MixtureVAEImputer : The default member.
    DeMissVAEImputer : Another possible member.

    Notes
    -----
    The ensemble's model is the equal-weight mixture of the members' models,
    ``p(x) = (1/n) sum_m p_m(x)``; :meth:`score_samples` is its log-likelihood. Its
    imputations average the members' conditionals with equal weights,
    ``(1/n) sum_m p_m(x_m | x_o)``, a model average. The exact conditional of the mixture
    would weight member ``m`` by ``p_m(x_o)`` instead; on small tables those weights pick
    one member per row and the averaging gain is lost (see "Ensemble weights" in the design
    notes, ``docs/design.md``).

    Examples
    --------
    >>> import numpy as np
    >>> from skmissvae import MixtureVAEImputer, VAEEnsembleImputer
    >>> X = np.random.RandomState(0).standard_normal((200, 3))
    >>> X[::4, 0] = np.nan
    >>> member = MixtureVAEImputer(latent_dim=2, max_iter=5)
    >>> imputer = VAEEnsembleImputer(member, n_estimators=2, random_state=0).fit(X)
    >>> imputer.transform(X).shape
    (200, 3)
    """

    _parameter_constraints: dict = {
        "estimator": "no_validation",  # checked in fit, with a message naming the classes
        "n_estimators": [Interval(numbers.Integral, 1, None, closed="left")],
        "n_jobs": [numbers.Integral, None],
        "random_state": ["random_state"],
    }

    def __init__(self, estimator=None, *, n_estimators=3, n_jobs=None, random_state=None):
        self.estimator = estimator
        self.n_estimators = n_estimators
        self.n_jobs = n_jobs
        self.random_state = random_state

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y=None):
        """Fit ``n_estimators`` clones of ``estimator``, each with its own seed.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data with missing entries equal to the members' ``missing_values`` (or NaN).
        y : None
            Ignored.

        Returns
        -------
        self : object
            Fitted estimator.
        """
        self.__dict__.pop("estimators_", None)  # a failed refit leaves nothing fitted behind
        fitted = Parallel(n_jobs=self.n_jobs)(delayed(m.fit)(X) for m in self._new_members())
        self.estimators_ = self._settled(fitted)
        return self

    def _streams(self):
        if not hasattr(self._template(), "partial_fit"):
            raise AttributeError(f"{type(self._template()).__name__} cannot train block by block.")
        return True

    @available_if(_streams)
    @_fit_context(prefer_skip_nested_validation=False)
    def partial_fit(self, X, y=None):
        """Train every member on one block of rows (see ``MixtureVAEImputer.partial_fit``).

        The first call creates the members, each with its own seed, as ``fit`` does.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            One block of the table.
        y : None
            Ignored.

        Returns
        -------
        self : object
            The ensemble, every member trained on one more block.
        """
        members = self.__dict__.get("estimators_") or self._new_members()
        self.estimators_ = self._settled(Parallel(n_jobs=self.n_jobs)(delayed(m.partial_fit)(X) for m in members))
        return self

    def _new_members(self):
        """Unfitted clones of ``estimator``, each with its own seed."""
        seeds = check_random_state(self.random_state).randint(np.iinfo(np.int32).max, size=self.n_estimators)
        return [clone(self._template()).set_params(random_state=int(seed)) for seed in seeds]

    def _settled(self, fitted):
        if self.random_state is None:  # later calls draw fresh randomness, as a single imputer's do
            for member in fitted:
                member.random_state = None
        return list(fitted)

    def _template(self):
        if self.estimator is None:
            return MixtureVAEImputer()
        if not isinstance(self.estimator, BaseVAEImputer):
            raise ValueError(
                "estimator must be a MixtureVAEImputer or DeMissVAEImputer (None means "
                f"MixtureVAEImputer()), got {type(self.estimator).__name__}."
            )
        return self.estimator

    # The members' view of the input, kept by them (also for an ensemble loaded from a file).
    n_features_in_ = property(lambda self: self.estimators_[0].n_features_in_,
                              doc="Number of features seen during ``fit``.")

    @property
    def feature_names_in_(self):
        """Names of the features seen during ``fit``, when ``X`` had string column names."""
        return self.estimators_[0].feature_names_in_

    def _check_input(self, X) -> None:
        """Refuse ``X`` of the wrong width with an error that names the ensemble."""
        check_is_fitted(self)
        if len(getattr(X, "shape", (0, 0))) == 2:  # a 1-D array gets the member's "Reshape" error
            validate_data(self, X, reset=False, skip_check_array=True)  # names and width

    def _encode(self, X):
        """``X`` encoded as every member sees it (``missing_values`` of the members)."""
        self._check_input(X)
        return self.estimators_[0]._encode(X)

    def transform(self, X):
        """Impute missing entries with the average of the members' conditional means.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data with missing entries equal to the members' ``missing_values`` (or NaN).

        Returns
        -------
        X_imputed : ndarray or DataFrame of shape (n_samples, n_features_out)
            As :meth:`MixtureVAEImputer.transform`: observed entries unchanged (bit for
            bit), a DataFrame for a DataFrame, imputations within the members' bounds and
            the members' missing-indicator appended. Binary and categorical columns take
            the most probable level under the averaged predictive probabilities.
        """
        batch = self._encode(X)
        # The members standardise identically (the same data, deterministic statistics),
        # so their imputations, in the data's units, average directly.
        imputed = []
        for m in self.estimators_:
            with torch_threads(m.n_jobs):
                imputed.append(m.fitted_model_.impute(batch.values, batch.observed, **m._inference("impute")))
        first = self.estimators_[0]
        average = first.fitted_model_.table.clip(np.mean(imputed, axis=0), batch.values.dtype)
        return first._output(np.where(batch.observed, batch.values, average), batch)

    def sample_imputations(self, X, n_imputations=5):
        """Draw multiple imputations from the members' conditionals in turn.

        Draw ``i`` comes from member ``i % n_estimators``. When ``n_imputations`` is a
        multiple of ``n_estimators``, the draws sample the equal-weight average of the
        members' conditionals, whose mean :meth:`transform` returns; otherwise the first
        members give one draw more than the others.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data with missing entries equal to the members' ``missing_values`` (or NaN).
        n_imputations : int, default=5
            Number of completed copies to draw.

        Returns
        -------
        imputations : ndarray of shape (n_imputations, n_samples, n_features) or list
            As :meth:`MixtureVAEImputer.sample_imputations`.
        """
        check_n_imputations(n_imputations)
        batch = self._encode(X)
        n_members = len(self.estimators_)
        draws = np.empty((n_imputations, *batch.values.shape), dtype=batch.values.dtype)
        for m, member in enumerate(self.estimators_[:n_imputations]):
            own = np.arange(m, n_imputations, n_members)
            with torch_threads(member.n_jobs):
                draws[own] = member.fitted_model_.sample(batch.values, batch.observed, len(own),
                                                         **member._inference("impute"))
        return self.estimators_[0]._output(draws, batch, draws=True)

    def score_samples(self, X):
        """Log-likelihood of each row's observed entries under the equal-weight mixture.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data with missing entries equal to the members' ``missing_values`` (or NaN).

        Returns
        -------
        log_likelihood : ndarray of shape (n_samples,)
            ``log((1/n) sum_m p_m(x_o))`` from the members' estimates, in nats and in the
            units of the data passed in.
        """
        self._check_input(X)
        return equal_mixture_log_likelihood([m.score_samples(X) for m in self.estimators_])

    def get_feature_names_out(self, input_features=None):
        """Get output feature names for transformation (those of the members).

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            As :meth:`MixtureVAEImputer.get_feature_names_out`.

        Returns
        -------
        feature_names_out : ndarray of str objects
        """
        check_is_fitted(self)
        return self.estimators_[0].get_feature_names_out(input_features)
