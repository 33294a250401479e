"""DeMissVAEImputer: a VAE fitted with an imputation-based variational mixture."""

from __future__ import annotations

import numbers

import numpy as np
import torch
from sklearn.utils.metaestimators import available_if

from .._compat import Interval, StrOptions
from .._fitted import ImputationMixtureProposal, ModelConfig
from ..core.problems import DeMissVAEProblem, ImputationSampler
from ..core.samplers import column_pools
from ._base import BaseVAEImputer


class DeMissVAEImputer(BaseVAEImputer):
    """Impute and score incomplete tables with DeMissVAE.

    A VAE ``p(x) = int p(x|z) p(z) dz`` is fitted to the observed entries only. Instead of
    a mixture encoder, DeMissVAE (Simkus & Gutmann, 2024, sec. 5) keeps ``n_imputations``
    imputed copies of every training row, refreshes them with a sampler that targets the
    model's conditional ``p(x_m | x_o)``, and uses the mixture of the encoder's Gaussians
    over the copies as the variational family of the observed data. Missing entries of new
    rows are imputed by running the same sampler from initial imputations drawn from the
    training data, then importance sampling with the resulting mixture.

    Parameters
    ----------
    n_imputations : int, default=5
        Imputed copies ``K`` kept per training row (and used per row at inference); also
        the number of components of the imputation mixture.
    sampler : {"lair", "pseudo_gibbs"}, default="lair"
        How imputations are refreshed: latent-adaptive importance resampling (the paper's
        choice for continuous data) or pseudo-Gibbs sampling (one encode-sample-decode-sample
        step per imputation; cheaper, can be unstable on continuous data).
    lair_iterations : int, default=10
        LAIR iterations ``T`` per refresh.
    lair_samples_per_proposal : int, default=1
        Latent draws ``I`` per LAIR proposal.
    lair_prior_proposals : int, default=1
        Standard-normal proposals ``R`` added to the ``K`` encoder proposals in LAIR.
    lair_final_resampling : bool, default=True
        Draw LAIR's final imputations from the pooled candidates of all ``T`` iterations.
    encoder_uses_mask : bool, default=False
        Feed the observed-mask to the encoder besides the imputed row (the paper does not
        for most data sets: imputed rows are encoded as if complete).
    n_transform_sweeps : int, default=5
        Sampler refreshes (each one LAIR call of ``lair_iterations`` iterations, or one
        pseudo-Gibbs step) run on the rows passed to :meth:`transform`,
        :meth:`sample_imputations` and :meth:`score_samples` before importance sampling.
        0 uses the initial imputations as they are. The importance-sampling step corrects
        for an imperfect proposal, so a few sweeps suffice; each costs as much as a
        training refresh. This value and the sampler settings (``sampler`` and the
        ``lair_*`` parameters) are fixed into ``fitted_model_`` by ``fit``: changing them
        afterwards has no effect until the next ``fit``.
    pool_size : int, default=1000
        At most this many observed training values per column are kept (a uniform random
        sample, in ``imputation_pool_``) to initialise the imputations of new rows.
    keep_imputations : bool, default=False
        Keep the final training imputations as ``imputations_``; by default the store is
        freed after ``fit``.
    latent_dim : int, default=16
        Dimension of the latent space.
    hidden_width : int, default=128
        Width of the residual MLPs of encoder and decoder. The paper uses 256 on UCI data
        and 200 with 3 blocks on its toy data; wider networks take longer to fit and can
        give over-confident draws on small tables (see "Network width" in the design notes,
        ``docs/design.md``).
    n_hidden_blocks : int, default=2
        Residual blocks per network.
    dropout : float, default=0.0
        Dropout probability inside the residual blocks (off while the sampler runs).
    min_scale : float, default=0.1
        Smallest standard deviation of the decoder's Gaussian ``p(x_d | z)`` for continuous
        columns, as a fraction of each column's standard deviation. A floor well above zero
        stops the decoder from becoming more certain than a small table supports (see
        "Decoder scale floor" in the design notes, ``docs/design.md``).
    learning_rate : float or "auto", default=1e-3
        Initial step size of Adam (amsgrad). "auto" applies ``MixtureVAEImputer``'s rule
        (3e-3 for runs of at most 5,000 optimiser steps, else 1e-3), which was measured
        for that estimator, not for this one.
    batch_size : int, default=128
        Rows per training step (capped at the number of training rows).
    max_iter : int or "auto", default=200
        Maximum number of epochs; "auto" gives at least 200 epochs and at least 5,000
        optimiser steps, as in ``MixtureVAEImputer``.
    lr_schedule : {"cosine", "constant"}, default="cosine"
        Cosine annealing of the step size to 0 over ``max_iter`` epochs, or none.
    clip_grad_norm : float or None, default=5.0
        Global gradient-norm clipping threshold, applied once to the joint gradient of
        encoder and decoder (the paper used 0.5-1 for DeMissVAE on UCI data).
    early_stopping : bool, default=True
        Hold out ``validation_fraction`` of the rows and stop when the validation objective
        has stayed below its best by more than ``tol`` and two standard errors for
        ``n_iter_no_change`` epochs (overfitting); the best weights are then restored. A fit
        that runs to ``max_iter`` keeps its final weights unless their validation score is
        below the best in that sense. Validation rows keep imputations in the store too,
        refreshed once per epoch, and are scored with the decoder objective (see "Early
        stopping" in the design notes, ``docs/design.md``).
    validation_fraction : float, default=0.1
    n_iter_no_change : int, default=50
    tol : float, default=1e-3
        Minimum change of the validation objective, in nats per row, that counts for
        early stopping.
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
        Seeds weight initialisation, initial imputations, batching and all Monte-Carlo
        draws, in ``fit`` and in every later call. torch's and numpy's global generators
        are never touched.
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
        importance-sampling proposal (with the imputation pool and the sampler settings)
        and the device. The attributes below that describe the model (``model_``,
        ``mean_``, ``scale_``, ``empty_features_``, ``column_types_``,
        ``column_encoder_``, ``device_``) are read-only views of it.
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
        The trained torch model (single-Gaussian encoder; on the training device).
    indicator_features_ : ndarray of int
        With ``add_indicator=True``: the input columns that had a missing value during
        ``fit``, whose missing-indicator the outputs end with.
    imputation_pool_ : ndarray of shape (n_pool, n_features)
        Column ``j`` holds up to ``pool_size`` observed training values of that column,
        padded with ``np.nan`` (``n_pool <= pool_size``); new rows' missing entries are
        initialised by drawing from it. For a table with binary or categorical columns
        the columns are those of the encoded matrix (see ``column_encoder_``); a
        categorical column's one-hot block is drawn as a whole, from one pool row.
    imputations_ : ndarray of shape (n_samples, n_imputations, n_features)
        The training rows' imputations after the last epoch (observed entries as given to
        ``fit``). Only with ``keep_imputations=True``. For a table with binary or
        categorical columns, a list of ``n_imputations`` completed tables instead (as
        :meth:`sample_imputations` returns).
    empty_features_ : ndarray of bool of shape (`n_features_in_`,)
        True for the columns that had no observed value during ``fit``.
    mean_, scale_ : ndarray of shape (n_features,)
        Per-column mean and standard deviation of the observed entries, used to standardise.
    loss_curve_ : list of float
        Mean training loss (negative decoder objective) per epoch, in nats per row of the
        internally standardised data.
    validation_scores_ : list of float
        Per epoch, the IWELBO of the validation rows with their imputation mixture as
        proposal (25 samples), or minus the training loss when early stopping is off; in
        the same standardised units.
    best_iteration_ : int
        Epoch whose weights were kept.
    n_iter_ : int
        Epochs run.
    refitted_ : bool
        Always False: DeMissVAE holds out rows, not entries, and restores the weights of
        its best epoch instead of refitting.
    fit_time_ : float
        Seconds spent training.
    device_ : torch.device
        The resolved training device.
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Defined only when ``X`` has string column names.

    See Also
    --------
    MixtureVAEImputer : VAEs with a mixture encoder (MVAE, MIWAE, MissVAE, MissSVAE,
        MissIWAE, MissSIWAE).
    VAEEnsembleImputer : Several fits with different seeds, imputing with their average.

    Notes
    -----
    Training follows Simkus & Gutmann (2024, sec. 5). A store of ``K`` imputed copies
    ``x~_k = (x_o, x~_k,m)`` per training row is initialised by drawing each missing entry
    from the observed values of its column. Each step fetches the batch's copies, refreshes
    them with the sampler (from the second epoch on, without gradients, writing them back),
    encodes every copy as if complete, ``q_k = q(z | x~_k)``, draws one ``z_k ~ q_k`` each,
    and forms two objectives:

    * decoder: ``(1/K) sum_k [log p(x_o | z_k) + log p(z_k) - log q_mix(z_k)]`` with the
      imputation mixture ``q_mix = (1/K) sum_j q_j`` (no gradient through ``q_mix``),
      an ELBO of ``log p(x_o)`` with one stratified sample per component;
    * encoder: ``(1/K) sum_k [log p(x~_k | z_k) + log p(z_k) - log q_k(z_k)]``, the
      complete-data ELBO of each copy, with STL gradients (Roeder et al., 2017).

    The decoder objective is back-propagated into the decoder only and the encoder
    objective into the encoder only; then one joint gradient-norm clip and one Adam step.

    LAIR, one iteration per row: proposals ``q_1..q_K`` plus ``R`` standard normals,
    ``I`` draws each, deterministic-mixture weights
    ``log w = log p(x_o | z) + log p(z) - log[(1/(K+R)) sum_j q_j(z)]``, ``K`` candidates
    resampled by ``softmax(log w)``, decoded, and their missing entries sampled.

    For new rows, :meth:`transform` returns the self-normalised importance-sampling
    estimate of ``E[x_m | x_o]`` with the final imputation mixture ``q_mix`` as proposal,
    :meth:`sample_imputations` resamples from the same proposal (SIR), and
    :meth:`score_samples` is the importance-weighted bound on ``log p(x_o)`` with
    ``n_score_samples`` draws from ``q_mix``.

    Memory: the imputation store is one float32 tensor of shape
    ``(n_samples, n_imputations, n_features)`` on the training device, i.e.
    ``4 * n_samples * n_imputations * n_features`` bytes (20 MB for 100,000 rows of 10
    features with the default ``n_imputations=5``), besides the data itself. It is freed
    after ``fit`` unless ``keep_imputations=True`` (then kept as float arrays in the
    data's dtype). The fitted estimator keeps at most ``pool_size * n_features`` training
    values. Time: a LAIR refresh costs ``lair_iterations * (K + I (K + R))`` network passes
    per row, so with the defaults an epoch takes several times as long as one of
    :class:`MixtureVAEImputer` (see "Default method" in the design notes,
    ``docs/design.md``); ``sampler="pseudo_gibbs"`` or the paper's toy setting
    (``lair_iterations=1``, ``lair_prior_proposals=0``, ``lair_final_resampling=False``)
    are about as fast as :class:`MixtureVAEImputer`, at some cost in accuracy.

    Data are standardised per column internally; all log-likelihoods are reported in the
    units of the data passed in.

    References
    ----------
    V. Simkus and M. U. Gutmann. Improving Variational Autoencoder Estimation from
    Incomplete Data with Mixture Variational Families. TMLR, 2024.

    Examples
    --------
    >>> import numpy as np
    >>> from skmissvae import DeMissVAEImputer
    >>> X = np.array([[1.0, 2.0], [np.nan, 3.0], [7.0, np.nan], [4.0, 5.0]])
    >>> imputer = DeMissVAEImputer(max_iter=2, hidden_width=8, random_state=0).fit(X)
    >>> imputer.transform(X).shape
    (4, 2)
    """

    _parameter_constraints: dict = {
        **BaseVAEImputer._parameter_constraints,
        "min_scale": [Interval(numbers.Real, 0, None, closed="neither")],
        "n_imputations": [Interval(numbers.Integral, 1, None, closed="left")],
        "sampler": [StrOptions({"lair", "pseudo_gibbs"})],
        "lair_iterations": [Interval(numbers.Integral, 1, None, closed="left")],
        "lair_samples_per_proposal": [Interval(numbers.Integral, 1, None, closed="left")],
        "lair_prior_proposals": [Interval(numbers.Integral, 0, None, closed="left")],
        "lair_final_resampling": ["boolean"],
        "encoder_uses_mask": ["boolean"],
        "n_transform_sweeps": [Interval(numbers.Integral, 0, None, closed="left")],
        "pool_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "keep_imputations": ["boolean"],
    }

    def __init__(
        self,
        *,
        n_imputations=5,
        sampler="lair",
        lair_iterations=10,
        lair_samples_per_proposal=1,
        lair_prior_proposals=1,
        lair_final_resampling=True,
        encoder_uses_mask=False,
        n_transform_sweeps=5,
        pool_size=1000,
        keep_imputations=False,
        latent_dim=16,
        hidden_width=128,
        n_hidden_blocks=2,
        dropout=0.0,
        min_scale=0.1,
        learning_rate=1e-3,
        batch_size=128,
        max_iter=200,
        lr_schedule="cosine",
        clip_grad_norm=5.0,
        early_stopping=True,
        validation_fraction=0.1,
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
        self.n_imputations = n_imputations
        self.sampler = sampler
        self.lair_iterations = lair_iterations
        self.lair_samples_per_proposal = lair_samples_per_proposal
        self.lair_prior_proposals = lair_prior_proposals
        self.lair_final_resampling = lair_final_resampling
        self.encoder_uses_mask = encoder_uses_mask
        self.n_transform_sweeps = n_transform_sweeps
        self.pool_size = pool_size
        self.keep_imputations = keep_imputations
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

    def _model_config(self) -> ModelConfig:
        return ModelConfig(
            latent_dim=self.latent_dim, n_components=1, hidden_width=self.hidden_width,
            n_hidden_blocks=self.n_hidden_blocks, dropout=self.dropout, min_scale=self.min_scale,
            encoder_uses_mask=self.encoder_uses_mask,
        )

    def _sampler(self) -> ImputationSampler:
        return ImputationSampler(
            sampler=self.sampler,
            lair_iterations=self.lair_iterations,
            lair_samples_per_proposal=self.lair_samples_per_proposal,
            lair_prior_proposals=self.lair_prior_proposals,
            lair_final_resampling=self.lair_final_resampling,
        )

    def _training_problem(self, model, x, observed, generator) -> DeMissVAEProblem:
        return DeMissVAEProblem(model, x, observed, n_imputations=self.n_imputations,
                                sampler=self._sampler(), generator=generator)

    def _build_proposal(self, problem, x, observed, generator, table) -> ImputationMixtureProposal:
        # A bounded random sample of each column's observed values, for new rows.
        pool, counts = column_pools(x, observed, self.pool_size, generator)
        in_pool = torch.arange(len(pool), device=x.device).unsqueeze(1) < counts  # [P, D]
        pool_values = table.unstandardise(pool.cpu().numpy().astype(np.float64))
        pool_values = np.where(in_pool.cpu().numpy(), pool_values, np.nan)
        return ImputationMixtureProposal(pool_values, table, self.n_imputations,
                                         self._sampler(), self.n_transform_sweeps)

    def _after_training(self, problem, result, fit):
        """Keep the training imputations as ``imputations_`` if asked."""
        self.refitted_ = False
        self.__dict__.pop("imputations_", None)
        if self.keep_imputations:
            self.imputations_ = self._completed_store(problem.store, fit.X)
        return result

    def _refuse_streaming(self):
        raise AttributeError(
            "DeMissVAEImputer cannot train block by block (partial_fit): it keeps "
            f"n_imputations={self.n_imputations} imputations of every training row between "
            "epochs. Fit it with fit(); for a table larger than one machine, fit it "
            "data-parallel, each process on its shard (torchrun, or skmissvae.dask.fit on a "
            "Dask cluster); or stream with MixtureVAEImputer."
        )

    @available_if(_refuse_streaming)
    def partial_fit(self, X, y=None):
        """Not available: DeMissVAE keeps imputations of every training row."""

    imputation_pool_ = property(lambda self: self.fitted_model_.importance_proposal.pool,
                                doc="Observed training values that start new rows' imputations.")

    def _completed_store(self, store, X):
        """The store ``[n, K, D]`` as completed copies of every row of ``X`` (rows with
        nothing observed, left out of training, get draws from the fitted model)."""
        fitted = self.fitted_model_
        values = fitted.table.encode(self._check_table(X))[0]  # encoded, all rows
        trained = ~np.isnan(values).all(axis=1)
        imputed = np.empty(values.shape[:1] + store.shape[1:])  # [N, K, D]
        imputed[trained] = fitted.table.unstandardise(store.cpu().numpy().astype(np.float64))
        if not trained.all():
            empty = values[~trained]
            draws = fitted.sample(empty, np.zeros(empty.shape, bool), self.n_imputations,
                                  n_samples=self.n_impute_samples, random_state=self.random_state)
            imputed[~trained] = draws.transpose(1, 0, 2)  # [K, n, D] -> [n, K, D]
        observed = ~np.isnan(values)[:, None, :]  # [N, 1, D]
        imputations = np.where(observed, values[:, None, :], fitted.table.clip(imputed, values.dtype))
        if fitted.table.codec_ is not None:  # one completed table per imputation
            return fitted.table.decode_draws(imputations.transpose(1, 0, 2), values, X)
        return imputations
