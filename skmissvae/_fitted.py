"""The fitted model: a trained VAE with its table encoder, device and proposal.

``FittedModel`` is what every consumer of a fitted imputer uses (the estimators, the
ensemble, ``evaluation``, ``plotting``, persistence): batched conditional-mean imputation,
multiple imputation by importance resampling, log-likelihood estimates in the data's
units, and the importance-sampling proposal ``q(z | x_o)``.

Monte Carlo is row-independent: each batch draws from a ``RowGenerator`` keyed by the
seed and the content of each row, so a row's output never depends on the other rows of a
call, their order or the batch size.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

from ._table import TableEncoder
from .core.model import MissingDataVAE
from .core.problems import ImputationSampler, column_groups
from .core.random import RowGenerator
from .core.samplers import (
    ImportanceEstimates,
    adaptive_importance_sampling,
    empirical_imputations,
    imputation_mixture,
)
from .datasets._missingness import check_random_state

__all__ = [
    "EncoderProposal",
    "FittedModel",
    "ImputationMixtureProposal",
    "ModelConfig",
    "build_model",
    "draw_seed",
    "resolve_device",
]

# Rows per inference batch are chosen so that rows x Monte-Carlo samples stays near this.
_INFERENCE_BUDGET = 2**16
# Inference batches hold a multiple of this many rows (see FittedModel._map_batches).
_ROW_ALIGN = 16
# Importance samples drawn per row and round (adaptive_importance_sampling's chunk_size).
_ROUND = 32


def resolve_device(device: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; an unavailable CUDA is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was requested but CUDA is not available; use 'cpu' or 'auto'.")
    return torch.device(device)


def draw_seed(random_state) -> int:
    """A 31-bit seed from ``random_state`` (None: fresh entropy, never a global generator)."""
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


@dataclass(frozen=True)
class ModelConfig:
    """What ``build_model`` needs besides the table: the network and decoder settings."""

    latent_dim: int
    n_components: int
    hidden_width: int
    n_hidden_blocks: int
    dropout: float
    min_scale: float
    encoder_uses_mask: bool = True


def build_model(config: ModelConfig, table: TableEncoder, generator: torch.Generator | None = None) -> MissingDataVAE:
    """The VAE for ``table`` (initial weights drawn from ``generator``); used by fitting
    and by loading."""
    n_encoded = len(table.mean_)
    return MissingDataVAE(
        n_features=n_encoded,
        latent_dim=config.latent_dim,
        n_components=config.n_components,
        likelihood=table.likelihood(config.min_scale),
        width=config.hidden_width,
        n_blocks=config.n_hidden_blocks,
        dropout=config.dropout,
        encoder_uses_mask=config.encoder_uses_mask,
        generator=generator,
    )


# -- proposals --------------------------------------------------------------------------------
class EncoderProposal:
    """The encoder's ``q(z | x_o)``, sampled ancestrally also after stratified training."""

    def __call__(self, model: MissingDataVAE, x, observed, generator):
        return model.encode(x, observed)

    def samples_per_row(self, n_samples: int) -> int:
        return n_samples

    def get_state(self) -> dict:
        return {"kind": "encoder"}


class ImputationMixtureProposal:
    """DeMissVAE's imputation mixture of new rows after ``n_sweeps`` sampler refreshes.

    Initial imputations are drawn from ``pool`` (``[P, D]`` observed training values in
    the data's units, NaN-padded per column).
    """

    def __init__(self, pool: np.ndarray, table: TableEncoder, n_imputations: int,
                 sampler: ImputationSampler, n_sweeps: int) -> None:
        self.pool = pool
        self.table = table
        self.n_imputations = n_imputations
        self.sampler = sampler
        self.n_sweeps = n_sweeps

    def __call__(self, model: MissingDataVAE, x, observed, generator):
        pool, pool_observed = self.table.to_tensors(self.pool, ~np.isnan(self.pool), x.device)
        imputations = empirical_imputations(
            x, observed, pool, pool_observed.sum(0), self.n_imputations, generator,
            groups=column_groups(model, x.device),
        )  # [B, K, D]
        # The sweeps draw from a stream of their own, so that the draws after them do not
        # depend on how many sweeps run. Every row is swept (with the batch's shape, see
        # FittedModel._map_batches) and complete rows keep their values.
        sweeps = generator.spawn() if isinstance(generator, RowGenerator) else generator
        incomplete = ~observed.all(1, keepdim=True).unsqueeze(1)  # [B, 1, 1]
        for _ in range(self.n_sweeps):
            refreshed = self.sampler.refresh(model, imputations, observed, sweeps)
            imputations = torch.where(incomplete, refreshed, imputations)
        return imputation_mixture(model, imputations, observed)

    def samples_per_row(self, n_samples: int) -> int:
        return max(n_samples, self.n_imputations + self.sampler.candidates_per_row(self.n_imputations))

    def get_state(self) -> dict:
        return {"kind": "imputation_mixture", "pool": torch.from_numpy(np.ascontiguousarray(self.pool)),
                "n_imputations": self.n_imputations, "sampler": asdict(self.sampler),
                "n_sweeps": self.n_sweeps}


def proposal_from_state(state: dict, table: TableEncoder):
    if state["kind"] == "encoder":
        return EncoderProposal()
    return ImputationMixtureProposal(state["pool"].numpy().copy(), table, state["n_imputations"],
                                     ImputationSampler(**state["sampler"]), state["n_sweeps"])


# -- the fitted model ---------------------------------------------------------------------------
class FittedModel:
    """A trained VAE with what it needs to impute, sample and score tables.

    Parameters
    ----------
    model : MissingDataVAE
    table : TableEncoder
        Fitted on the training table.
    config : ModelConfig
        How ``model`` was built (``build_model``).
    proposal : EncoderProposal or ImputationMixtureProposal
        The importance-sampling proposal ``q(z | x_o)``.
    device : torch.device
        The training device; inference runs there, or on the CPU when it is unavailable.

    All methods take the encoded ``values`` (NaN at missing entries) and ``observed`` mask
    of ``TableEncoder.encode`` and return numpy arrays in the data's units.
    """

    def __init__(self, model: MissingDataVAE, table: TableEncoder, config: ModelConfig,
                 proposal, device: torch.device) -> None:
        self.model = model
        self.table = table
        self.config = config
        self.importance_proposal = proposal
        self.device = device

    # -- public inference ---------------------------------------------------------------
    def impute(self, values, observed, *, n_samples: int, min_effective_samples=None,
               random_state=None) -> np.ndarray:
        """Conditional means ``E[x_m | x_o]``, completed into ``values``: ``[N, D]``.

        ``n_samples`` importance samples per row at most; with ``min_effective_samples``
        a row stops once its effective sample size reaches it. Binary and one-hot columns
        hold predictive probabilities at missing entries.
        """
        def batch(x, mask, generator):
            return self._estimates(x, mask, generator, n_samples, min_effective_samples,
                                   conditional_mean=True).mean

        imputed = self._map_batches(batch, values, observed, n_samples, random_state)
        return self.table.complete(values, observed, imputed)

    def sample(self, values, observed, n_draws: int, *, n_samples: int, min_effective_samples=None,
               random_state=None) -> np.ndarray:
        """``n_draws`` completed copies of ``values`` from ``p(x_m | x_o)``: ``[M, N, D]``
        (sampling-importance resampling)."""
        def batch(x, mask, generator):
            z = self._estimates(x, mask, generator, n_samples, min_effective_samples, n_draws=n_draws).draws
            x_sampled = self.model.likelihood.sample(self.model.decode(z), generator)  # [M, B, D]
            return torch.where(mask, x, x_sampled)

        draws = self._map_batches(batch, values, observed, n_samples, random_state, rows_axis=1)
        return self.table.complete(values, observed, draws)

    def log_likelihood(self, values, observed, *, n_samples: int, min_effective_samples=None,
                       random_state=None) -> np.ndarray:
        """Importance-weighted bound on ``log p(x_o)`` per row, in the data's units: ``[N]``.

        A row with no observed entry scores exactly 0 (``log 1``).
        """
        def batch(x, mask, generator):
            return self._estimates(x, mask, generator, n_samples, min_effective_samples).log_likelihood

        log_lik = self._map_batches(batch, values, observed, n_samples, random_state)
        log_lik = log_lik - self.table.log_jacobian(values, observed)
        return np.where(observed.any(axis=1), log_lik, 0.0)

    def _estimates(self, x, mask, generator, n_samples, min_effective_samples, **wanted) -> ImportanceEstimates:
        q = self.importance_proposal(self.model, x, mask, generator)
        return adaptive_importance_sampling(
            self.model, x, mask, q, max_samples=n_samples, min_effective_samples=min_effective_samples,
            chunk_size=_ROUND, generator=generator, **wanted,
        )

    def is_finite(self, values, observed, *, n_samples: int) -> bool:
        """Whether the weights, and the scores and imputations of the rows, are finite."""
        if not all(bool(torch.isfinite(p).all()) for p in self.model.parameters()):
            return False
        # A fixed seed: a check must not consume the caller's random stream.
        log_lik = self.log_likelihood(values, observed, n_samples=n_samples, random_state=0)
        imputed = self.impute(values, observed, n_samples=n_samples, random_state=0)
        return bool(np.isfinite(log_lik).all() and np.isfinite(imputed).all())

    def proposal(self, values, observed, random_state=None):
        """The proposal ``q(z | x_o)`` of the rows (one batch), on the inference device."""
        device = self.inference_device()
        x, mask = self.table.to_tensors(values, observed, device)
        self.model.eval()
        with torch.no_grad():
            return self.importance_proposal(self.model, x, mask, self._generator(draw_seed(random_state), x, mask))

    def inference_device(self) -> torch.device:
        """The training device, or the CPU for a GPU model on a machine without one."""
        device = self.device if self.device.type == "cpu" or torch.cuda.is_available() else torch.device("cpu")
        self.model.to(device)
        return device

    # -- plain state (safe save files) --------------------------------------------------
    def get_state(self) -> dict:
        """Tensors and plain Python values that ``from_state`` rebuilds the model from."""
        return {
            "config": asdict(self.config),
            "table": self.table.get_state(),
            "proposal": self.importance_proposal.get_state(),
            "device": str(self.device),
            "model_state": {key: value.detach().cpu() for key, value in self.model.state_dict().items()},
        }

    @classmethod
    def from_state(cls, state: dict) -> "FittedModel":
        table = TableEncoder.from_state(state["table"])
        config = ModelConfig(**state["config"])
        model = build_model(config, table)
        model.load_state_dict(state["model_state"])
        proposal = proposal_from_state(state["proposal"], table)
        return cls(model.eval(), table, config, proposal, torch.device(state["device"]))

    def __getstate__(self):
        # A model trained on a GPU must load on a CPU-only machine: pickle a CPU copy.
        state = dict(self.__dict__)
        if any(p.device.type != "cpu" for p in self.model.parameters()):
            state["model"] = copy.deepcopy(self.model).cpu()
        return state

    # -- batching ---------------------------------------------------------------------------
    @staticmethod
    def _generator(seed: int, x: torch.Tensor, mask: torch.Tensor) -> RowGenerator:
        # Rows are keyed by what the model sees, their standardised observed values: a
        # rescaled or shifted table then gets the same draws as the original.
        return RowGenerator(seed, torch.where(mask, x.double(), math.nan))

    def _map_batches(self, fn, values, observed, n_samples, random_state, rows_axis=0) -> np.ndarray:
        """``fn(x, mask, generator)`` on row batches, concatenated on ``rows_axis``.

        Batches are padded with empty rows to a multiple of ``_ROW_ALIGN`` rows: matrix
        kernels choose their method by the number of rows, and with aligned shapes a row's
        output does not depend on the size of its batch.
        """
        device = self.inference_device()
        seed = draw_seed(random_state)
        per_row = self.importance_proposal.samples_per_row(min(n_samples, _ROUND))  # draws held at once
        batch = _ROW_ALIGN * max(1, _INFERENCE_BUDGET // per_row // _ROW_ALIGN)
        self.model.eval()
        outputs = []
        with torch.no_grad():
            for start in range(0, len(values), batch):
                rows = slice(start, start + batch)
                batch_values, batch_observed = _pad_rows(values[rows], observed[rows])
                x, mask = self.table.to_tensors(batch_values, batch_observed, device)
                out = fn(x, mask, self._generator(seed, x, mask)).cpu().numpy().astype(np.float64)
                n_rows = len(values[rows])
                outputs.append(out[:n_rows] if rows_axis == 0 else out[:, :n_rows])
        return np.concatenate(outputs, axis=rows_axis)


def _pad_rows(values: np.ndarray, observed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``values`` and ``observed`` with empty rows added up to a multiple of ``_ROW_ALIGN``."""
    pad = -len(values) % _ROW_ALIGN
    if not pad:
        return values, observed
    empty = np.full((pad, values.shape[1]), np.nan, dtype=values.dtype)
    return np.concatenate([values, empty]), np.concatenate([observed, np.zeros(empty.shape, bool)])
