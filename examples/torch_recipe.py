"""torchvision's classification recipe, ported line by line to jsgd.torch.

torchvision's ``references/classification/train.py`` trains with SGD
(momentum 0.9, weight decay 1e-4, norm layers' weight decay 0 through
``set_weight_decay``), a ``LinearLR`` warm-up then ``CosineAnnealingLR``
chained by ``SequentialLR`` and stepped once per epoch, ``clip_grad_norm_``,
and resumes from ``optimizer.state_dict()`` / ``lr_scheduler.state_dict()``.
Here is each torch line and its jsgd counterpart (the model is a small MLP
with a LayerNorm, on generated data)::

    # torch: parameters = set_weight_decay(model, 1e-4, norm_weight_decay=0.0)
    param_groups = [
        {"params": r"^(fc1|fc2)/", "weight_decay": 1e-4},
        {"params": r"^norm/", "weight_decay": 0.0},
    ]
    # torch: warmup = LinearLR(optimizer, start_factor=0.01, total_iters=warmup)
    warmup = LinearLR(start_factor=0.01, total_iters=warmup)
    # torch: main = CosineAnnealingLR(optimizer, T_max=epochs - warmup)
    main = CosineAnnealingLR(T_max=epochs - warmup)
    # torch: SequentialLR(optimizer, [warmup, main], milestones=[warmup])
    scheduler = SequentialLR([warmup, main], milestones=[warmup])
    # torch: optimizer = SGD(parameters, lr, momentum=0.9, weight_decay=1e-4);
    # lr_scheduler.step() once per epoch
    sgd = SGD(lr, momentum=0.9, weight_decay=1e-4, param_groups=param_groups,
              scheduler=scheduler, steps_per_epoch=len(loader))
    # torch: clip_grad_norm_(model.parameters(), 1.0) before optimizer.step()
    tx = optax.chain(clip_grad_norm(1.0), sgd)
    # torch: optimizer.state_dict(), lr_scheduler.state_dict(), load_state_dict
    state_dict(sgd, params, state), scheduler_state_dict(sgd, state),
    load_state_dict(sgd, params, saved, scheduler_state_dict=saved_scheduler)

``tests/test_torch_recipe.py`` runs the same recipe in torch and checks that the
parameter trajectories agree to float32 tolerance over 200 steps, across the
resume.

Run: python examples/torch_recipe.py [--epochs N] [--quick]
"""

from __future__ import annotations

import argparse
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jsgd.torch
from jsgd.torch import lr_scheduler

INPUTS, HIDDEN, CLASSES = 16, 32, 4


def make_data(samples: int = 640, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blobs, one per class (float32 inputs, int labels)."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(CLASSES, INPUTS)).astype(np.float32)
    labels = rng.integers(CLASSES, size=samples)
    inputs = centers[labels] + rng.normal(size=(samples, INPUTS)).astype(np.float32)
    return inputs.astype(np.float32), labels


def init_params(seed: int = 1) -> dict[str, dict[str, np.ndarray]]:
    """torch.nn.Linear's default initialization (uniform in ±1/sqrt(fan_in))."""
    rng = np.random.default_rng(seed)

    def linear(fan_in: int, fan_out: int) -> dict[str, np.ndarray]:
        bound = 1 / np.sqrt(fan_in)
        return {
            "weight": rng.uniform(-bound, bound, (fan_out, fan_in)).astype(np.float32),
            "bias": rng.uniform(-bound, bound, fan_out).astype(np.float32),
        }

    return {
        "fc1": linear(INPUTS, HIDDEN),
        "norm": {
            "weight": np.ones(HIDDEN, np.float32),
            "bias": np.zeros(HIDDEN, np.float32),
        },
        "fc2": linear(HIDDEN, CLASSES),
    }


# torch's parameter order, model.parameters(): what state_dict indices refer to.
TORCH_ORDER = [
    "fc1/weight",
    "fc1/bias",
    "norm/weight",
    "norm/bias",
    "fc2/weight",
    "fc2/bias",
]


def loss_fn(params: Any, inputs: jax.Array, labels: jax.Array) -> jax.Array:
    """Linear, LayerNorm, ReLU, Linear; cross entropy with label smoothing 0.1."""
    h = inputs @ params["fc1"]["weight"].T + params["fc1"]["bias"]
    mean = h.mean(-1, keepdims=True)
    variance = ((h - mean) ** 2).mean(-1, keepdims=True)
    h = (h - mean) / jnp.sqrt(variance + 1e-5)
    h = jax.nn.relu(h * params["norm"]["weight"] + params["norm"]["bias"])
    logits = h @ params["fc2"]["weight"].T + params["fc2"]["bias"]
    targets = optax.smooth_labels(jax.nn.one_hot(labels, CLASSES), 0.1)
    return optax.softmax_cross_entropy(logits, targets).mean()


def make_optimizer(
    lr: float, epochs: int, warmup_epochs: int, steps_per_epoch: int
) -> tuple[optax.GradientTransformationExtraArgs, optax.GradientTransformation]:
    """The recipe's optimizer: (the whole chain, the SGD inside it)."""
    warmup = lr_scheduler.LinearLR(start_factor=0.01, total_iters=warmup_epochs)
    main = lr_scheduler.CosineAnnealingLR(T_max=epochs - warmup_epochs)
    scheduler = lr_scheduler.SequentialLR([warmup, main], milestones=[warmup_epochs])
    sgd = jsgd.torch.SGD(
        lr,
        momentum=0.9,
        weight_decay=1e-4,
        param_groups=[
            {"params": r"^(fc1|fc2)/", "weight_decay": 1e-4},
            {"params": r"^norm/", "weight_decay": 0.0},
        ],
        scheduler=scheduler,
        steps_per_epoch=steps_per_epoch,
    )
    return optax.chain(jsgd.torch.clip_grad_norm(1.0), sgd), sgd


def batches(samples: int, batch_size: int, epoch: int) -> list[np.ndarray]:
    """The epoch's shuffled batches (the same permutation torch's side uses)."""
    order = np.random.default_rng(100 + epoch).permutation(samples)
    return [order[i : i + batch_size] for i in range(0, samples, batch_size)]


def train(
    epochs: int = 10,
    warmup_epochs: int = 2,
    lr: float = 0.2,
    batch_size: int = 32,
    resume_at: int | None = 5,
) -> list[dict[str, np.ndarray]]:
    """Runs the recipe; returns the parameters after every step.

    At epoch ``resume_at`` the run "restarts": the optimizer's and the
    scheduler's state dicts are saved in torch's layout and loaded into a
    fresh optimizer state, as torchvision's ``--resume`` does.
    """
    inputs, labels = make_data()
    steps_per_epoch = -(-len(inputs) // batch_size)
    tx, sgd = make_optimizer(lr, epochs, warmup_epochs, steps_per_epoch)
    params = jax.tree.map(jnp.asarray, init_params())
    state = tx.init(params)

    @jax.jit
    def step(params, state, x, y):
        grads = jax.grad(loss_fn)(params, x, y)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    trajectory = []
    for epoch in range(epochs):
        if epoch == resume_at:
            clip_state, sgd_state = state
            checkpoint = {
                "optimizer": jsgd.torch.state_dict(
                    sgd, params, sgd_state, order=TORCH_ORDER
                ),
                "lr_scheduler": jsgd.torch.scheduler_state_dict(sgd, sgd_state),
            }
            sgd_state = jsgd.torch.load_state_dict(
                sgd,
                params,
                checkpoint["optimizer"],
                order=TORCH_ORDER,
                scheduler_state_dict=checkpoint["lr_scheduler"],
            )
            state = (clip_state, sgd_state)
        for batch in batches(len(inputs), batch_size, epoch):
            params, state = step(params, state, inputs[batch], labels[batch])
            trajectory.append(jax.tree.map(np.asarray, params))
    return trajectory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="4 epochs (for CI)")
    args = parser.parse_args()
    epochs = 4 if args.quick else args.epochs
    trajectory = train(epochs=epochs, warmup_epochs=1, resume_at=epochs // 2)
    inputs, labels = make_data()
    params = jax.tree.map(jnp.asarray, trajectory[-1])
    loss = float(loss_fn(params, jnp.asarray(inputs), jnp.asarray(labels)))
    print(
        f"{len(trajectory)} steps over {epochs} epochs; final training loss {loss:.4f}"
    )


if __name__ == "__main__":
    main()
