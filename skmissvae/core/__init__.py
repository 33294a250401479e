"""Pure-PyTorch building blocks of skmissvae (no scikit-learn imports).

Researchers can use these directly: variational families (``families``), bounds
(``objectives``), observation models (``likelihoods``), networks (``networks``), the VAE
(``model``), importance sampling and imputation samplers (``samplers``) and the training
loop (``training``).
"""
