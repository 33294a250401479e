"""The variants every benchmark compares: an estimator class and its non-default settings."""

from skmissvae import METHODS, DeMissVAEImputer, MixtureVAEImputer

VARIANTS = {name: (MixtureVAEImputer, params) for name, params in METHODS.items()}
# The paper's toy setting of LAIR: T=1 iteration, no prior proposal, no final resampling.
VARIANTS["DeMissVAE-LAIR-toy"] = (
    DeMissVAEImputer,
    {"lair_iterations": 1, "lair_prior_proposals": 0, "lair_final_resampling": False},
)
# The continuous-data setting (the estimator's defaults): T=10, I=1, R=1, final resampling.
VARIANTS["DeMissVAE-LAIR"] = (DeMissVAEImputer, {})
# DeMissVAE refreshing its imputations by pseudo-Gibbs sampling (the paper's choice for images).
VARIANTS["DeMissVAE-pseudo-Gibbs"] = (DeMissVAEImputer, {"sampler": "pseudo_gibbs"})
# MIWAE with the 20 importance samples per row that the MIWAE paper (Mattei & Frellsen,
# 2019) trained with on UCI data; the estimator's default is 5.
VARIANTS["MIWAE-20"] = (MixtureVAEImputer, {**METHODS["MIWAE"], "n_particles": 20})
# Ensembles of a variant above: {name: (member variant, members)}, fitted by
# VAEEnsembleImputer, which averages the members' imputations. Kept apart from VARIANTS:
# each costs several fits; the imputation benchmark runs them (toy.py has --ensemble).
ENSEMBLES = {"MIWAE-20x3": ("MIWAE-20", 3)}

# The pairs the paper's findings compare: (importance-weighted, its ELBO counterpart),
# (mixture, its single-Gaussian counterpart), (stratified, ancestral); and the ELBO methods
# among which DeMissVAE should be best or tied.
IW_PAIRS = [("MIWAE", "MVAE"), ("MissIWAE", "MissVAE"), ("MissSIWAE", "MissSVAE")]
MIXTURE_PAIRS = [("MissVAE", "MVAE"), ("MissSVAE", "MVAE"), ("MissIWAE", "MIWAE"), ("MissSIWAE", "MIWAE")]
STRATIFIED_PAIRS = [("MissSVAE", "MissVAE"), ("MissSIWAE", "MissIWAE")]
ELBO_METHODS = ["MVAE", "MissVAE", "MissSVAE"]
