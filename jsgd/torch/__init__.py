"""jsgd.torch: torch.optim's optimizers, schedulers, clipping and loss scaling.

Each optimizer has torch's name, signature (less ``params``), defaults,
errors and arithmetic, and is an ``optax.GradientTransformationExtraArgs``
built from jsgd's transforms: it drops into ``optax.chain``, a jitted step or
``flax.nnx.Optimizer``. What torch's ``Optimizer`` adds is here too:
parameter groups selected by path (``param_groups=[{"params": r"bias$",
"weight_decay": 0.0}]``), a scheduler from :mod:`jsgd.torch.lr_scheduler`
stepping the groups' hyperparameters (``scheduler=``, per step or per epoch
with ``steps_per_epoch=``), and complex parameters stepped as their real view,
as torch does. Nothing here imports torch.

Examples:
  >>> import jax.numpy as jnp, jsgd.torch, optax
  >>> params = {"w": jnp.ones(2), "b": jnp.zeros(())}
  >>> tx = jsgd.torch.SGD(
  ...     lr=0.1, momentum=0.9, weight_decay=1e-2,
  ...     param_groups=[{"params": "b", "weight_decay": 0.0}])
  >>> state = tx.init(params)
  >>> grads = {"w": jnp.ones(2), "b": jnp.ones(())}
  >>> updates, state = tx.update(grads, state, params)
  >>> print(f"{float(updates['w'][0]):.3f} {float(updates['b']):.3f}")
  -0.101 -0.100
"""

from jsgd._optimizers.torch_factories import (
    SGD,
    Adagrad,
    Adam,
    AdamW,
    RMSprop,
    SparseAdam,
)
from jsgd._optimizers.torch_family import OptimizerState
from jsgd._optimizers.torch_grad_scaler import GradScaler, GradScalerState
from jsgd._optimizers.torch_state_dict import (
    load_state_dict,
    scheduler_state_dict,
    state_dict,
)
from jsgd._transforms.torch_clipping import (
    ClipGradNormState,
    clip_grad_norm,
    clip_grad_value,
    get_total_norm,
)
from jsgd.torch import lr_scheduler

__all__ = [
    "SGD",
    "Adagrad",
    "Adam",
    "AdamW",
    "ClipGradNormState",
    "GradScaler",
    "GradScalerState",
    "OptimizerState",
    "RMSprop",
    "SparseAdam",
    "clip_grad_norm",
    "clip_grad_value",
    "get_total_norm",
    "load_state_dict",
    "lr_scheduler",
    "scheduler_state_dict",
    "state_dict",
]
