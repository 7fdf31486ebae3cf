"""Layer 2: the gradient transformations every optimizer is composed of."""
