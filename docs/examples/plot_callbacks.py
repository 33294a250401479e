"""
Progress, logging and callbacks
===============================

``verbose=1`` shows the epoch, the training loss, the validation score, the time spent and
an upper estimate of the time left: one line rewritten in place on a terminal, about ten
lines in a notebook or a log file. For your own tools, ``callbacks`` are called after each
epoch with the estimator and a dictionary ``info`` with the keys ``epoch``, ``loss``,
``validation_score`` and ``elapsed``; returning True stops training and keeps the weights
of that epoch.
"""

import logging
import sys

import numpy as np

from skmissvae import MixtureVAEImputer

rng = np.random.RandomState(0)
X = rng.standard_normal((500, 4)) @ rng.standard_normal((4, 4))
X[rng.rand(*X.shape) < 0.3] = np.nan

# %%
# Progress
# --------
imputer = MixtureVAEImputer(latent_dim=2, hidden_width=32, max_iter=20, verbose=1, random_state=0)
imputer.fit(X)

# %%
# Logging every epoch
# -------------------
# Send the epoch summaries to :mod:`logging` (or to an experiment tracker: call its
# ``log`` function instead).
logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(name)s: %(message)s",
                    force=True)
logger = logging.getLogger("my_experiment")


def log_epoch(imputer, info):
    logger.info("epoch %d  loss %.4f  validation %.4f  %.1fs", info["epoch"], info["loss"],
                info["validation_score"], info["elapsed"])


imputer = MixtureVAEImputer(latent_dim=2, hidden_width=32, max_iter=5, early_stopping=False,
                            callbacks=[log_epoch], random_state=0)
imputer.fit(X)

# %%
# Stopping on your own rule
# -------------------------
# A time budget: stop after the first epoch that ends past one second of training.


def time_budget(imputer, info):
    return info["elapsed"] > 1.0


imputer = MixtureVAEImputer(latent_dim=2, hidden_width=32, max_iter=1000,
                            callbacks=[time_budget], random_state=0).fit(X)
print(f"stopped after {imputer.n_iter_} of 1000 epochs, kept epoch {imputer.best_iteration_}")
