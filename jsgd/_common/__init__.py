"""Layer 1: pytree, dtype and hyperparameter-validation helpers."""
