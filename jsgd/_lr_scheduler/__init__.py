"""torch.optim.lr_scheduler in pure JAX (public face: jsgd.torch.lr_scheduler)."""
