"""Test configuration: 8 fake CPU devices and Keras on the JAX backend.

Both must be set before JAX initializes its backends or Keras is imported.

The long oracle sweeps run a fixed sample by default and the rest under
``-m oracle`` (tests/_oracle.py; ``.ci/run`` runs both).
"""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax

jax.config.update("jax_num_cpu_devices", 8)
