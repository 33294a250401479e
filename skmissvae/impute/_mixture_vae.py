"""MixtureVAEImputer: MVAE, MIWAE, MissVAE, MissSVAE, MissIWAE and MissSIWAE."""

from __future__ import annotations

import numbers

import dataclasses
import warnings

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning

from .._compat import Interval, StrOptions
from .._fitted import EncoderProposal, ModelConfig, build_model
from ..core.problems import FiniteMixtureProblem
from ..core.training import NonFiniteLossError
from ._base import BaseVAEImputer, cpu_generator_from
from ._floor import initial_floor, lower_floor
from ._streaming import IncrementalFitMixin

#: The paper's method names as parameters of :class:`MixtureVAEImputer`.
METHODS = {
    "MVAE": {"n_components": 1, "objective": "elbo"},
    "MIWAE": {"n_components": 1, "objective": "iwelbo"},
    "MissVAE": {"n_components": 5, "objective": "elbo", "sampling": "ancestral"},
    "MissSVAE": {"n_components": 5, "objective": "elbo", "sampling": "stratified"},
    "MissIWAE": {"n_components": 5, "objective": "iwelbo", "sampling": "ancestral"},
    "MissSIWAE": {"n_components": 5, "objective": "iwelbo", "sampling": "stratified"},
}


class MixtureVAEImputer(IncrementalFitMixin, BaseVAEImputer):
    """Impute and score incomplete tables with a VAE and a mixture variational family.

    A VAE ``p(x) = int p(x|z) p(z) dz`` is fitted to the observed entries only, with an
    encoder ``q(z | x_o)`` that is a mixture of ``n_components`` diagonal Gaussians, as in
    Simkus & Gutmann (2024). Missing entries are imputed by importance sampling from the
    fitted model.

    Parameters
    ----------
    n_components : int, default=5
        Mixture components ``K`` of the encoder; 1 gives a single Gaussian (MVAE, MIWAE).
    objective : {"iwelbo", "elbo"}, default="iwelbo"
        Importance-weighted bound or ELBO.
    sampling : {"stratified", "ancestral"}, default="stratified"
        How latents are drawn from a mixture during training: one draw per component,
        weighted by the mixture weights (stratified), or component first then latent with
        implicit-reparameterisation gradients (ancestral). Ignored when ``n_components=1``.
    n_particles : int, default=5
        Latent draws per row per training step. With stratified sampling it must be a
        multiple of ``n_components`` (``n_particles // n_components`` draws per component).
        Training time grows in proportion to it. For point imputation,
        ``n_components=1, n_particles=20`` (MIWAE with the MIWAE paper's 20 importance
        samples) is the better setting (see "Training particles" in the design notes,
        ``docs/design.md``).
    gradient_estimator : {"auto", "stl", "dreg", "total"}, default="auto"
        Encoder gradients: sticking the landing (``"stl"``, the paper's choice), doubly
        reparameterised (``"dreg"``; only with ``objective="iwelbo"`` and a
        single-component encoder, or an ancestral one with ``choice_gradient="implicit"``), or the total reparameterisation gradient
        (``"total"``), which keeps the zero-mean score term of ``log q``. ``"auto"`` is
        ``"total"`` for the ELBO with ancestral mixture sampling and
        ``choice_gradient="implicit"`` (MissVAE as in the paper) and ``"stl"`` otherwise
        (see Notes).
    choice_gradient : {"score", "implicit"}, default="score"
        How ancestral draws from a mixture (``sampling="ancestral"``) pass gradients to the
        mixture weights. ``"score"``: the score function of the component choice with a
        leave-one-out baseline (VIMCO's for the IWELBO), each draw reparameterised within
        its component. ``"implicit"``: implicit reparameterisation through the mixture's
        distributional transform, the paper's estimator. Both are unbiased for the same
        objective; the implicit gradient is heavy-tailed once components separate, and
        trained MissVAE and MissIWAE worse on the paper's toy data (see Notes). With
        ``n_particles=1`` the score has no baseline and is noisier. Ignored for
        stratified sampling and a single Gaussian.
    latent_dim : int, default=16
        Dimension of the latent space.
    hidden_width : int, default=128
        Width of the residual MLPs of encoder and decoder. The paper uses 256 on UCI data;
        wider networks impute larger tables a little better but take longer to fit and can
        give over-confident draws on small tables (see "Network width" in the design notes,
        ``docs/design.md``).
    n_hidden_blocks : int, default=2
        Residual blocks per network.
    dropout : float, default=0.0
        Dropout probability inside the residual blocks.
    min_scale : float or "auto", default="auto"
        Smallest standard deviation of the decoder's Gaussian ``p(x_d | z)`` for continuous
        columns, as a fraction of each column's standard deviation. A floor well above zero
        stops the decoder from becoming more certain than a small table supports (see
        "Decoder scale floor" in the design notes, ``docs/design.md``). "auto" trains at
        0.1; if most decoder scales then sit at the floor, it lowers the floor to 0.01 and
        trains on for a quarter of ``max_iter``, keeping the lower floor only if the
        held-out rows score clearly higher (by ``tol`` and two standard errors), then
        likewise to 0.001. Data whose columns are related more tightly than a tenth of
        their spread gain up to a few nats per row, for about a third more fit time;
        other data train exactly as with 0.1.
        The search needs held-out rows (``early_stopping=True``,
        ``validation_split="rows"``); without them "auto" is 0.1. The floor in use is
        ``min_scale_``.
    learning_rate : float or "auto", default="auto"
        Initial step size of Adam (amsgrad). "auto" is 3e-3 for a run of at most 5,000
        optimiser steps (``max_iter`` times the batches per epoch: tables of up to about
        3,000 rows at the defaults) and 1e-3 for longer runs. Short runs impute better with
        the larger step; long ones, such as 200 epochs of 20,000 rows, fit better with the
        smaller (see "Learning rate" in the design notes).
    batch_size : int, default=128
        Rows per training step (capped at the number of training rows).
    max_iter : int or "auto", default=200
        Maximum number of epochs. "auto" gives at least 200 epochs and at least 5,000
        optimiser steps (``ceil(5000 / steps per epoch)`` epochs on small tables), the
        budget to pair with ``validation_split="entries"``.
    lr_schedule : {"cosine", "constant"}, default="cosine"
        Cosine annealing of the step size to 0 over ``max_iter`` epochs, or none.
    clip_grad_norm : float or None, default=5.0
        Global gradient-norm clipping threshold.
    early_stopping : bool, default=True
        Hold out part of the data and stop training when the held-out score shows
        overfitting; what is held out and how it is scored is set by
        ``validation_split``.
    validation_fraction : float, default=0.1
        Share of the rows, or of the observed entries, held out for early stopping.
    validation_split : {"rows", "entries"}, default="rows"
        ``"rows"``: hold out whole rows and score them with the training objective. Stop
        when the score has stayed below its best by more than ``tol`` and two standard
        errors for ``n_iter_no_change`` epochs; the best weights are then restored. A fit
        that runs to ``max_iter`` keeps its final, annealed weights unless their score is
        below the best in that sense (see "Early stopping" in the design notes,
        ``docs/design.md``).

        ``"entries"``: hold out observed entries (never all of a row's) and score, after
        every epoch, how well the model imputes them: minus the squared error of their
        conditional-mean imputation in standardised units (the Brier score for binary
        and categorical columns), summed per row. When ``n_iter_no_change`` epochs bring
        no new best (by more than ``tol``), training stops and a fresh model is trained
        on every entry for the best number of epochs, with the schedule annealed over
        them (``refitted_``). A fit that runs to ``max_iter`` keeps its final weights; the
        held-out entries then never reach the model. Pair it with ``max_iter="auto"``. It
        tends to help tables of several hundred rows or more and to hurt the smallest
        tables and MNAR data, whose held-out entries are a poor guide (see "Early stopping
        on held-out entries" in the design notes, ``docs/design.md``).
    n_iter_no_change : int, default=50
    tol : float, default=1e-3
        Minimum change of the validation score (per row) that counts for early stopping.
    n_impute_samples : int, default=1000
        Importance samples per row for :meth:`transform` and :meth:`sample_imputations`.
        Imputing costs time proportional to it. Fewer make the draws of
        :meth:`sample_imputations` too narrow, because resampling from few proposals
        leans towards the encoder, which is narrower than the model's conditional (see
        "Importance samples" in the design notes, ``docs/design.md``).
    n_score_samples : int, default=1000
        Importance samples per row for :meth:`score_samples`.
    column_statistics : ColumnStatistics or None, default=None
        Statistics of the whole table (``skmissvae.column_statistics``, merged over its
        parts with ``+``) when ``X`` is only a part of it: the standardisation of the
        continuous columns and the categories and levels of the discrete ones are taken
        from them instead of from ``X``, as ``classes`` in ``SGDClassifier.partial_fit``.
        Not for tables with semicontinuous columns.
    min_effective_samples : float, "auto" or None, default="auto"
        Draw the importance samples of a row in rounds of 32 and stop once their
        effective sample size ``(sum w)**2 / sum w**2`` reaches this value;
        ``n_impute_samples`` and ``n_score_samples`` are then the most a row takes. None
        draws all of them. "auto" stops :meth:`transform` and
        :meth:`sample_imputations` at 100 and lets :meth:`score_samples` draw all
        ``n_score_samples``: imputations stay within the Monte-Carlo noise of all samples,
        while stopping early would lower every score. Smaller values are faster and
        noisier (see "Importance samples" in the design notes, ``docs/design.md``).
    device : {"auto", "cpu", "cuda"}, default="auto"
        Where to train; outputs always come back as CPU arrays.
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, batching and all Monte-Carlo draws, in ``fit`` and in
        every later call. torch's and numpy's global generators are never touched.
    verbose : int, default=0
        0 is silent; 1 shows a progress bar (tqdm, on standard error) with the loss, the
        validation score and the time left; 2 prints one line per epoch with the losses
        to standard error.
    callbacks : list of callable, default=None
        Each is called after every epoch as ``callback(imputer, info)`` with
        ``info = {"epoch", "loss", "validation_score", "validation_standard_error",
        "elapsed"}``, while ``imputer.model_`` holds the current weights; a callback
        returning True stops training.
    keep_empty_features : bool, default=False
        What to do with columns that have no observed value during ``fit``: by default
        they are dropped from the outputs of :meth:`transform` and
        :meth:`sample_imputations` and from :meth:`get_feature_names_out`; with True they
        are kept and their missing entries imputed with 0 (scikit-learn's convention, as
        in ``SimpleImputer``). Either way the model is trained on the other columns only
        and :meth:`score_samples` ignores such columns.
    column_types : dict or None, default=None
        Observation model of each column. None infers it: for a DataFrame, ``category``
        and object/string columns are ``"categorical"`` (softmax over the categories seen
        in ``fit``, one-hot internally), ``bool``/``boolean`` columns ``"binary"``
        (Bernoulli), numeric columns ``"continuous"`` (Gaussian); every column of an array
        is continuous. A dict ``{column label or position: "continuous" |
        "semicontinuous" | "binary" | "categorical"}`` overrides the inference, e.g. for a
        0/1 integer column or an integer code column. ``"semicontinuous"`` (never
        inferred) is for numbers with a point mass at one value, such as amounts or word
        frequencies that are mostly 0: the model gives the column's most frequent value
        a probability and the other values a Gaussian density (a zero-inflated
        Gaussian), so that draws reproduce the exact zeros. With any binary or
        categorical column, :meth:`transform`
        returns a DataFrame in the columns' original dtypes (an array for array input),
        :meth:`sample_imputations` a list of such DataFrames (a 3-D array for array
        input), and :meth:`score_samples` includes the log-probabilities of the observed
        discrete values. See "Mixed-type tables" in the user guide.
    missing_values : int, float, str, np.nan, None or pandas.NA, default=np.nan
        The placeholder of missing entries, as in scikit-learn's ``SimpleImputer``: entries
        equal to it are missing (an integer array with ``-1`` for missing values, say).
        NaN, None and ``pd.NA`` entries are missing in any case. The input is never
        modified; it is converted on a copy.
    add_indicator : bool, default=False
        Append to the outputs of :meth:`transform` and :meth:`sample_imputations` (each
        copy) one 0/1 column per input column that had a missing value during ``fit``, as
        ``MissingIndicator(features="missing-only")`` does; they are named
        ``missingindicator_<name>`` by :meth:`get_feature_names_out` and in DataFrame
        outputs (float columns, as ``SimpleImputer(add_indicator=True)`` gives them).
    min_value : float or array-like of shape (n_features,), default=-np.inf
        Lower bound of the imputed values of the continuous and semicontinuous columns,
        one for all or one per input column (-inf for binary and categorical columns), as
        in ``IterativeImputer``. Conditional means and every draw of
        :meth:`sample_imputations` are clipped to it; observed entries are never changed.
        Fixed by ``fit``.
    max_value : float or array-like of shape (n_features,), default=np.inf
        Upper bound of the imputed values, as ``min_value``.
    n_jobs : int, default=None
        Number of torch threads used inside ``fit``, :meth:`transform`,
        :meth:`sample_imputations` and :meth:`score_samples` (set for the call and
        restored afterwards); -1 means all cores, -2 all but one. None means one
        thread (unless a ``joblib.parallel_config`` context sets ``n_jobs``), as in
        scikit-learn: more threads rarely pay off for these small networks and can be many
        times slower on a busy machine.

    Attributes
    ----------
    fitted_model_ : skmissvae._fitted.FittedModel
        Everything learned in ``fit``: the torch model, the table encoder, the
        importance-sampling proposal and the device. The attributes below that describe
        the model (``model_``, ``mean_``, ``scale_``, ``empty_features_``,
        ``column_types_``, ``column_encoder_``, ``device_``) are read-only views of it.
    column_types_ : dict
        The observation model used for each input column, ``{label or position: type}``.
    column_encoder_ : TableEncoder or None
        Converts a table with semicontinuous, binary or categorical columns to and from
        the float matrix the model sees (one-hot blocks for categorical columns); None
        when every column is continuous. When it is not None, ``mean_`` and ``scale_`` have one entry per
        encoded column (0 and 1 for the binary and one-hot columns, which are not
        standardised; a semicontinuous column is centred on its point mass, not its
        mean).
    model_ : skmissvae.core.model.MissingDataVAE
        The trained torch model (on the training device).
    indicator_features_ : ndarray of int
        With ``add_indicator=True``: the input columns that had a missing value during
        ``fit``, whose missing-indicator the outputs end with.
    empty_features_ : ndarray of bool of shape (`n_features_in_`,)
        True for the columns that had no observed value during ``fit``.
    mean_, scale_ : ndarray of shape (n_features,)
        Per-column mean and standard deviation of the observed entries, used to standardise.
    min_scale_ : float
        The decoder's scale floor of the fitted model, in column standard deviations
        (``min_scale``, or the floor that "auto" chose).
    loss_curve_ : list of float
        Mean training loss (negative objective) per epoch, in nats per row of the
        internally standardised data (before any refit; the epochs at a lower floor kept
        by ``min_scale="auto"`` follow those of the main run).
    validation_scores_ : list of float
        Held-out score per epoch (see ``validation_split``; minus the training loss when
        early stopping is off).
    best_iteration_ : int
        Epoch whose weights were kept, or after a refit the number of epochs it trained.
    n_iter_ : int
        Epochs run (before any refit), the kept epochs at lower floors included.
    refitted_ : bool
        Whether, with ``validation_split="entries"``, early stopping stopped training and
        the model was then trained afresh on every entry for ``best_iteration_`` epochs.
    fit_time_ : float
        Seconds spent training, the refit included.
    device_ : torch.device
        The resolved training device.
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Defined only when ``X`` has string column names.

    See Also
    --------
    DeMissVAEImputer : The paper's imputation-based mixture (DeMissVAE).
    VAEEnsembleImputer : Several fits with different seeds, imputing with their average.

    Notes
    -----
    The six methods of the paper are settings of this class (see ``METHODS``):

    ==========  ==============  ============  =============
    method      n_components    objective     sampling
    ==========  ==============  ============  =============
    MVAE        1               "elbo"        --
    MIWAE       1               "iwelbo"      --
    MissVAE     K > 1           "elbo"        "ancestral"
    MissSVAE    K > 1           "elbo"        "stratified"
    MissIWAE    K > 1           "iwelbo"      "ancestral"
    MissSIWAE   K > 1           "iwelbo"      "stratified"
    ==========  ==============  ============  =============

    Each row follows the method definitions of Simkus & Gutmann (2024, sec. 4): the ELBO
    family averages ``log w = log p(x_o, z) - log q_mix(z)``; the IWELBO family takes
    ``logsumexp(log w) - log I``; stratified bounds weight each component's draws by
    ``pi_k`` (kept attached to the graph); every ``log q`` is evaluated with detached
    encoder outputs (STL, Roeder et al. 2017). The defaults (MissSIWAE, 5 components, 5
    particles) are the paper's best all-round choice (see "Default method" in the design
    notes, ``docs/design.md``).

    One deliberate departure: ancestral draws (MissVAE, MissIWAE) pass their gradient to
    the mixture weights through the score function of the component choice
    (``choice_gradient="score"``), not through the paper's implicit reparameterisation.
    Both are unbiased for the same objective, but the implicit gradient grows like
    ``1 / q(z)`` for draws between separated components: on the paper's toy data its
    encoder gradient had 100 to 200 times the variance, and MissVAE trained with it scored
    about 0.4 nats per row below MVAE. With the score function MissVAE and MissIWAE beat
    their single-Gaussian counterparts on each of three seeds there (see "Gradient
    estimator for ancestral mixtures" in the design notes, ``docs/design.md``).
    ``choice_gradient="implicit"`` restores the paper's estimator; with it
    ``gradient_estimator="auto"`` trains MissVAE with the total reparameterisation
    gradient, which was steadier there than STL, so add ``gradient_estimator="stl"`` to
    train exactly as the paper does.

    Data are standardised per column internally; all log-likelihoods are reported in the
    units of the data passed in.

    References
    ----------
    V. Simkus and M. U. Gutmann. Improving Variational Autoencoder Estimation from
    Incomplete Data with Mixture Variational Families. TMLR, 2024.

    Examples
    --------
    >>> import numpy as np
    >>> from skmissvae import MixtureVAEImputer
    >>> X = np.array([[1.0, 2.0], [np.nan, 3.0], [7.0, np.nan], [4.0, 5.0]])
    >>> imputer = MixtureVAEImputer(max_iter=2, hidden_width=8, random_state=0).fit(X)
    >>> imputer.transform(X).shape
    (4, 2)
    """

    _parameter_constraints: dict = {
        **BaseVAEImputer._parameter_constraints,
        "n_components": [Interval(numbers.Integral, 1, None, closed="left")],
        "objective": [StrOptions({"elbo", "iwelbo"})],
        "sampling": [StrOptions({"ancestral", "stratified"})],
        "n_particles": [Interval(numbers.Integral, 1, None, closed="left")],
        "gradient_estimator": [StrOptions({"auto", "stl", "dreg", "total"})],
        "choice_gradient": [StrOptions({"implicit", "score"})],
        "validation_split": [StrOptions({"rows", "entries"})],
    }

    def __init__(
        self,
        *,
        n_components=5,
        objective="iwelbo",
        sampling="stratified",
        n_particles=5,
        gradient_estimator="auto",
        choice_gradient="score",
        latent_dim=16,
        hidden_width=128,
        n_hidden_blocks=2,
        dropout=0.0,
        min_scale="auto",
        learning_rate="auto",
        batch_size=128,
        max_iter=200,
        lr_schedule="cosine",
        clip_grad_norm=5.0,
        early_stopping=True,
        validation_fraction=0.1,
        validation_split="rows",
        n_iter_no_change=50,
        tol=1e-3,
        n_impute_samples=1000,
        n_score_samples=1000,
        min_effective_samples="auto",
        column_statistics=None,
        device="auto",
        random_state=None,
        verbose=0,
        callbacks=None,
        keep_empty_features=False,
        column_types=None,
        missing_values=np.nan,
        add_indicator=False,
        min_value=-np.inf,
        max_value=np.inf,
        n_jobs=None,
    ):
        self.n_components = n_components
        self.objective = objective
        self.sampling = sampling
        self.n_particles = n_particles
        self.gradient_estimator = gradient_estimator
        self.choice_gradient = choice_gradient
        self.latent_dim = latent_dim
        self.hidden_width = hidden_width
        self.n_hidden_blocks = n_hidden_blocks
        self.dropout = dropout
        self.min_scale = min_scale
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.lr_schedule = lr_schedule
        self.clip_grad_norm = clip_grad_norm
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.validation_split = validation_split
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.n_impute_samples = n_impute_samples
        self.n_score_samples = n_score_samples
        self.min_effective_samples = min_effective_samples
        self.column_statistics = column_statistics
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.callbacks = callbacks
        self.keep_empty_features = keep_empty_features
        self.column_types = column_types
        self.missing_values = missing_values
        self.add_indicator = add_indicator
        self.min_value = min_value
        self.max_value = max_value
        self.n_jobs = n_jobs

    def _stratified(self) -> bool:
        return self.n_components > 1 and self.sampling == "stratified"

    def _check_params(self) -> None:
        if self._stratified() and self.n_particles % self.n_components:
            raise ValueError(
                f"With sampling='stratified', n_particles ({self.n_particles}) must be a "
                f"multiple of n_components ({self.n_components})."
            )
        if self.gradient_estimator == "dreg" and (
            self.objective != "iwelbo" or self._stratified()
            or (self.n_components > 1 and self.choice_gradient == "score")
        ):
            raise ValueError(
                "gradient_estimator='dreg' needs objective='iwelbo' and a single-component "
                "encoder or an ancestral one with choice_gradient='implicit'."
            )

    def _gradient_estimator(self) -> str:
        """``gradient_estimator`` with ``"auto"`` resolved (see the class Notes)."""
        if self.gradient_estimator != "auto":
            return self.gradient_estimator
        implicit_elbo = (self.n_components > 1 and self.sampling == "ancestral" and self.objective == "elbo"
                         and self.choice_gradient == "implicit")
        return "total" if implicit_elbo else "stl"

    def _model_config(self) -> ModelConfig:
        return ModelConfig(
            latent_dim=self.latent_dim, n_components=self.n_components, hidden_width=self.hidden_width,
            n_hidden_blocks=self.n_hidden_blocks, dropout=self.dropout,
            min_scale=initial_floor(self.min_scale),
        )

    def _training_problem(self, model, x, observed, generator) -> FiniteMixtureProblem:
        return FiniteMixtureProblem(
            model, objective=self.objective, sampling=self.sampling, n_particles=self.n_particles,
            gradient_estimator=self._gradient_estimator(), choice_gradient=self.choice_gradient,
        )

    def _build_proposal(self, problem, x, observed, generator, table) -> EncoderProposal:
        return EncoderProposal()

    def _after_training(self, problem, result, fit):
        """A refit on every entry after held-out entries stopped the fit; with
        ``min_scale="auto"`` and held-out rows, the search for a lower decoder floor."""
        result = self._refit_on_entries(result, fit)
        if self.min_scale == "auto" and fit.config.validation_split == "rows":
            result = lower_floor(self, problem, result, fit)
        return result

    def _refit_on_entries(self, result, fit):
        """With held-out entries, a stopped fit is followed by a refit on every entry.

        Held-out entries chose the number of epochs. The weights of that epoch were
        trained at a high learning rate on part of the data; a model trained afresh on
        every entry, annealed over exactly those epochs, imputes better (see "Early
        stopping on held-out entries" in the design notes). Should the refit diverge, the
        model chosen on the held-out entries is kept.
        """
        self.refitted_ = fit.config.validation_split == "entries" and result.stopped_early
        if not self.refitted_:
            return result
        fitted, chosen, name = self.fitted_model_, self.fitted_model_.model, type(self).__name__
        config = dataclasses.replace(fit.config, max_epochs=result.best_epoch + 1, validation_fraction=0.0)
        fitted.model = build_model(fitted.config, fitted.table, cpu_generator_from(fit.generator)).to(fit.x.device)
        refit = dataclasses.replace(fit, config=config)
        try:
            result.fit_time += self._train(self._training_problem(fitted.model, fit.x, fit.mask, fit.generator),
                                           refit, f"{name} refit").fit_time
            finite = all(bool(torch.isfinite(p).all()) for p in fitted.model.parameters())
        except NonFiniteLossError:
            finite = False
        if not finite:
            fitted.model, self.refitted_ = chosen, False
            warnings.warn(
                f"{name}: the refit on all entries diverged; the model chosen on the "
                "held-out entries is kept.",
                ConvergenceWarning,
            )
        return result
