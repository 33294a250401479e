"""Save and load fitted imputers without pickle.

A save file is written with :func:`torch.save` and read back with
``torch.load(path, weights_only=True)``: it holds only tensors and plain Python values
(numbers, strings, lists, dicts), so loading one cannot run code hidden in the file, as
unpickling can. It stores the estimator's parameters, its fitted model (the network's
``state_dict``, the table encoder and the proposal, see ``FittedModel.get_state``), its other
fitted attributes, the library version and a format version.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pandas as pd
import torch

from . import __version__
from ._fitted import EncoderProposal, FittedModel, ImputationMixtureProposal, ModelConfig, build_model
from ._columns import _plain
from ._table import ColumnStatistics, TableEncoder
from .core.likelihoods import SCALE_FLOOR
from .core.problems import ImputationSampler

__all__ = ["save", "load", "FORMAT_VERSION"]

#: (major, minor) of the save-file layout; files with another major or a newer minor are refused.
# 1.1 added the min_scale parameter; 1.0 files are read with the floor they were trained with.
# 1.2 added ensembles (VAEEnsembleImputer): the members are stored as single models are.
# 1.3 stores the fitted model whole (table encoder with every column type, proposal).
# 1.4 added choice_gradient; older ancestral mixtures were trained with "implicit".
# 1.5 allows min_effective_samples="auto" (the new default); files without the parameter
#     imputed with every sample, as None does.
FORMAT_VERSION = (1, 5)

_MAGIC = "skmissvae-estimator"


def _estimator_classes() -> dict:
    from .impute import DeMissVAEImputer, MixtureVAEImputer

    return {cls.__name__: cls for cls in (MixtureVAEImputer, DeMissVAEImputer)}


# -- values <-> plain types -----------------------------------------------------------------
def _encode(name: str, value):
    """``value`` as ``{"kind", "value"}`` built from tensors and plain Python types only."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return {"kind": "plain", "value": value}
    if value is pd.NA:  # a missing_values marker
        return {"kind": "pd_na", "value": None}
    if isinstance(value, ColumnStatistics):
        return {"kind": "column_statistics", "value": {
            "kinds": list(value.kinds), "labels": [_plain(v, "a column label") for v in value.labels],
            "count": torch.from_numpy(value.count), "mean": torch.from_numpy(value.mean),
            "std": torch.from_numpy(value.std),
            "categories": [None if c is None else [[_plain(k, "a category"), int(n)] for k, n in c.items()]
                           for c in value.categories],
        }}
    if isinstance(value, np.generic):
        return {"kind": "plain", "value": value.item()}
    if isinstance(value, torch.device):
        return {"kind": "device", "value": str(value)}
    if isinstance(value, np.random.RandomState):
        bit_generator, keys, pos, has_gauss, cached = value.get_state(legacy=True)
        return {
            "kind": "random_state",
            "value": [bit_generator, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        }
    if isinstance(value, np.ndarray):
        if value.dtype == object and all(isinstance(v, str) for v in value.ravel()):
            return {"kind": "str_array", "value": [str(v) for v in value.ravel()], "shape": list(value.shape)}
        if value.dtype.kind in "biuf":
            return {"kind": "array", "value": torch.from_numpy(np.ascontiguousarray(value))}
    if isinstance(value, (list, tuple)) and all(
        v is None or isinstance(v, (bool, int, float, str)) for v in value
    ):
        return {"kind": "list" if isinstance(value, list) else "tuple", "value": list(value)}
    if isinstance(value, dict) and all(
        isinstance(k, (int, str)) and (v is None or isinstance(v, (bool, int, float, str)))
        for k, v in value.items()
    ):
        return {"kind": "dict", "value": dict(value)}
    raise TypeError(
        f"Cannot save {name!r} of type {type(value).__name__}: a save file holds only "
        "numbers, strings, arrays and lists or dicts of them. Use pickle or joblib for "
        "this estimator instead."
    )


def _decode(entry: dict):
    kind, value = entry["kind"], entry["value"]
    if kind in ("plain", "dict"):
        return value
    if kind == "list":
        return list(value)
    if kind == "tuple":
        return tuple(value)
    if kind == "pd_na":
        return pd.NA
    if kind == "column_statistics":
        return ColumnStatistics(
            tuple(value["kinds"]), tuple(value["labels"]), value["count"].numpy().copy(),
            value["mean"].numpy().copy(), value["std"].numpy().copy(),
            tuple(None if c is None else {k: n for k, n in c} for c in value["categories"]),
        )
    if kind == "device":
        return torch.device(value)
    if kind == "array":
        return value.numpy().copy()
    if kind == "str_array":
        return np.asarray(value, dtype=object).reshape(entry["shape"])
    if kind == "random_state":
        bit_generator, keys, pos, has_gauss, cached = value
        rng = np.random.RandomState()
        rng.set_state((bit_generator, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
        return rng
    raise ValueError(f"Unknown entry kind {kind!r} in the save file.")


def _params_state(estimator) -> dict:
    params = estimator.get_params(deep=False)
    if params.get("callbacks"):
        warnings.warn("callbacks are functions and are not saved; the loaded estimator has callbacks=None.")
    params["callbacks"] = None
    return {key: _encode(key, value) for key, value in params.items()}


def _model_state(estimator) -> dict:
    """A fitted single-model imputer as tensors and plain values."""
    attributes = {
        key: _encode(key, value)
        for key, value in vars(estimator).items()
        if key.endswith("_") and not key.startswith("_") and key != "fitted_model_"
    }
    return {
        "estimator": _model_class_name(estimator),
        "params": _params_state(estimator),
        "attributes": attributes,
        "fitted_model": estimator.fitted_model_.get_state(),
    }


def _ensemble_state(ensemble) -> dict:
    """A fitted ensemble: its own parameters, its template's and each member's state."""
    params = ensemble.get_params(deep=False)
    template = params.pop("estimator")
    return {
        "estimator": type(ensemble).__name__,
        "params": {key: _encode(key, value) for key, value in params.items()},
        "template": None if template is None else {
            "estimator": _model_class_name(template), "params": _params_state(template),
        },
        "members": [_model_state(member) for member in ensemble.estimators_],
    }


def _model_class_name(estimator) -> str:
    name = type(estimator).__name__
    if _estimator_classes().get(name) is not type(estimator):
        raise TypeError(
            "save() takes a MixtureVAEImputer or DeMissVAEImputer, or a VAEEnsembleImputer of "
            f"them, got {name}."
        )
    return name


# -- public API -------------------------------------------------------------------------------
def save(estimator, path) -> None:
    """Save a fitted imputer to ``path`` in a format that loads without unpickling code.

    Parameters
    ----------
    estimator : MixtureVAEImputer, DeMissVAEImputer or VAEEnsembleImputer
        A fitted imputer (an ensemble is stored member by member). ``callbacks`` are
        functions and are not saved (a warning says so); the loaded estimator has
        ``callbacks=None``.
    path : str or path-like
        Destination file (conventionally ``*.pt``).

    Raises
    ------
    TypeError
        If ``estimator`` is not one of the library's imputers, or holds a fitted attribute
        that cannot be stored as tensors and plain values.
    sklearn.exceptions.NotFittedError
        If ``estimator`` is not fitted.

    See Also
    --------
    load : Rebuild the estimator from such a file.
    """
    from sklearn.utils.validation import check_is_fitted

    from .impute import VAEEnsembleImputer

    ensemble = isinstance(estimator, VAEEnsembleImputer)
    if not ensemble:
        _model_class_name(estimator)  # a foreign estimator is refused before the fit check
    check_is_fitted(estimator)
    state = _ensemble_state(estimator) if ensemble else _model_state(estimator)
    state.update(magic=_MAGIC, format_version=list(FORMAT_VERSION), library_version=__version__)
    torch.save(state, os.fspath(path))


def load(path):
    """Load an imputer written by :func:`save`; no code from the file is executed.

    The file is read with ``torch.load(..., weights_only=True)``, which refuses anything
    but tensors and plain Python values. The model is put on the CPU; a model trained on a
    GPU runs on the CPU of a machine without one.

    Parameters
    ----------
    path : str or path-like
        A file written by :func:`save`.

    Returns
    -------
    estimator : MixtureVAEImputer, DeMissVAEImputer or VAEEnsembleImputer
        The fitted estimator, giving the same outputs as the saved one.

    Raises
    ------
    ValueError
        If the file is not a save file of this library, holds objects that cannot be
        loaded safely, or has another major or minor format version.
    """
    try:
        state = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
    except OSError:
        raise
    except Exception as error:  # torch reports a foreign file in many ways (KeyError, IndexError...)
        raise ValueError(
            f"{os.fspath(path)!r} is not a skmissvae save file, or it contains objects "
            f"that cannot be loaded safely (refused: {error})."
        ) from None
    if not isinstance(state, dict) or state.get("magic") != _MAGIC:
        raise ValueError(f"{os.fspath(path)!r} is not a skmissvae save file.")
    version = tuple(state["format_version"])
    if version[0] != FORMAT_VERSION[0] or version[1] > FORMAT_VERSION[1]:
        raise ValueError(
            f"{os.fspath(path)!r} has save-format version {'.'.join(map(str, version))} "
            f"(written by skmissvae {state.get('library_version')}); this skmissvae "
            f"({__version__}) reads formats {FORMAT_VERSION[0]}.0 to "
            f"{'.'.join(map(str, FORMAT_VERSION))} only."
        )
    try:
        if state["estimator"] == "VAEEnsembleImputer":
            return _ensemble_from_state(state, version)
        return _model_from_state(state, version)
    except (KeyError, IndexError, TypeError) as error:
        raise ValueError(
            f"{os.fspath(path)!r} is an incomplete or damaged skmissvae save file "
            f"({type(error).__name__}: {error})."
        ) from None


def _params_from_state(state: dict, version: tuple) -> dict:
    """An estimator's parameters, with those that older formats lacked set as they were then."""
    params = {key: _decode(entry) for key, entry in state["params"].items()}
    if tuple(version[:2]) < (1, 1):
        params["min_scale"] = SCALE_FLOOR  # the decoder's fixed floor before min_scale existed
    if tuple(version[:2]) < (1, 4) and state["estimator"] == "MixtureVAEImputer":
        params["choice_gradient"] = "implicit"  # the only estimator before choice_gradient existed
    # Files from before min_effective_samples existed (formats 1.0 to early 1.3) lack it;
    # they imputed with every sample, as None does.
    params.setdefault("min_effective_samples", None)
    return params


def _model_from_state(state: dict, version: tuple):
    params = _params_from_state(state, version)
    estimator = _estimator_class(state["estimator"])(**params)
    attributes = {key: _decode(entry) for key, entry in state["attributes"].items()}
    if tuple(version[:2]) < (1, 3):
        estimator.fitted_model_ = _legacy_fitted_model(state, params, attributes)
        attributes = {key: value for key, value in attributes.items() if key not in _LEGACY_TABLE_ATTRIBUTES}
    else:
        estimator.fitted_model_ = FittedModel.from_state(state["fitted_model"])
    for key, value in attributes.items():
        setattr(estimator, key, value)
    return estimator


# Fitted attributes of format 1.0-1.2 files that now live in the fitted model.
_LEGACY_TABLE_ATTRIBUTES = ("mean_", "scale_", "empty_features_", "column_types_", "column_encoder_", "device_",
                             "imputation_pool_")


def _legacy_fitted_model(state: dict, params: dict, attributes: dict) -> FittedModel:
    """The fitted model of a format 1.0-1.2 file: continuous columns only, as those
    formats could store nothing else."""
    kinds = ["continuous"] * len(attributes["mean_"])
    table = TableEncoder(kinds, params["keep_empty_features"])
    table.codec_ = None
    table.mean_, table.scale_ = attributes["mean_"], attributes["scale_"]
    table.empty_ = attributes["empty_features_"]
    table.column_types_ = attributes["column_types_"]
    model_config = state["model_config"]
    config = ModelConfig(
        latent_dim=model_config["latent_dim"], n_components=model_config["n_components"],
        hidden_width=params["hidden_width"], n_hidden_blocks=params["n_hidden_blocks"],
        dropout=params["dropout"], min_scale=params["min_scale"],
        encoder_uses_mask=model_config["encoder_uses_mask"],
    )
    model = build_model(config, table)
    model.load_state_dict(state["model_state"])
    if state["estimator"] == "DeMissVAEImputer":
        sampler = ImputationSampler(
            sampler=params["sampler"], lair_iterations=params["lair_iterations"],
            lair_samples_per_proposal=params["lair_samples_per_proposal"],
            lair_prior_proposals=params["lair_prior_proposals"],
            lair_final_resampling=params["lair_final_resampling"],
        )
        proposal = ImputationMixtureProposal(attributes["imputation_pool_"], table, params["n_imputations"],
                                             sampler, params["n_transform_sweeps"])
    else:
        proposal = EncoderProposal()
    return FittedModel(model.eval(), table, config, proposal, attributes.get("device_", torch.device("cpu")))


def _estimator_class(name: str) -> type:
    classes = _estimator_classes()
    if name not in classes:
        raise ValueError(f"Unknown estimator {name!r} in the save file.")
    return classes[name]


def _ensemble_from_state(state: dict, version: tuple):
    from .impute import VAEEnsembleImputer

    template = state["template"]
    if template is not None:
        template = _estimator_class(template["estimator"])(**_params_from_state(template, version))
    params = {key: _decode(entry) for key, entry in state["params"].items()}
    if not state["members"]:
        raise IndexError("the ensemble has no members")
    ensemble = VAEEnsembleImputer(template, **params)
    ensemble.estimators_ = [_model_from_state(member, version) for member in state["members"]]
    return ensemble
