"""pmbnn: Bayesian neural networks as PyMC models."""
