"""
Progress, logging and callbacks
===============================

``verbose=1`` shows a progress bar (tqdm, on standard error) with the loss, the validation
score and the time left; ``verbose=2`` prints one line per epoch with the losses to
standard error, which suits logs and this gallery. For your own tools, ``callbacks`` are
called after each epoch with the estimator and a dictionary ``info`` with the keys
``epoch``, ``loss``, ``validation_score``, ``validation_standard_error`` and ``elapsed``;
returning True ends training as if ``max_iter`` had been reached.
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
# One line per epoch (``verbose=2``); in a terminal or a notebook, ``verbose=1`` draws a
# progress bar instead.
imputer = MixtureVAEImputer(latent_dim=2, hidden_width=32, max_iter=20, verbose=2, random_state=0)
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
