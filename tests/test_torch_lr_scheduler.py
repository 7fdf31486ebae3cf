"""jsgd.torch.lr_scheduler against torch.optim.lr_scheduler (torch 2.13).

Every case runs torch's own ``optimizer.step(); scheduler.step()`` loop on a
real torch optimizer (SGD with three parameter groups of different lr and
momentum, or Adam for beta1) for 1,000 steps, and jsgd's ``trajectory`` from
the same groups, and compares each group's lr (and momentum or beta1) after
every step. torch's numbers come live or from
``tests/golden/test_torch_lr_scheduler.npz`` (tests/_golden.py).

Tolerances: torch computes in Python double, jsgd in float32, so a value can
be no closer than float32's rounding of torch's (6e-8 relative; the initial
lrs themselves are rounded so). The closed forms round a few times per
value: ``RTOL = 1e-6`` (measured worst 3.9e-7). The recursions torch's
semantics requires (MultiplicativeLR, every child of ChainedScheduler) round
about once per step, a random walk: ``RECURSIVE_RTOL = 1e-5`` over 1,000
steps (measured worst 3e-6). A user lambda computing in float32 carries its
own error, compounded by MultiplicativeLR's recursion (float32's 0.999 is
1.3e-8 off, 1.3e-5 after 1,000 steps; ``0.95 ** epoch`` is float32 ``pow``):
``FLOAT32_LAMBDA_RTOL = 3e-5`` (measured worst 1.4e-5). An absolute tolerance
of 1e-35 covers the values float32 cannot hold (torch's 0.5 ** 300 in double
is 0 in float32, whose smallest normal is 1.2e-38).
"""

from __future__ import annotations

import re
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jsgd.torch import lr_scheduler as js
from tests import _golden
from tests._golden import Golden
from tests._oracle import covering_sample, oracle

golden = Golden(__name__)

STEPS = 1000
RTOL = 1e-6
RECURSIVE_RTOL = 1e-5
FLOAT32_LAMBDA_RTOL = 3e-5
ATOL = 1e-35

SGD_GROUPS = ((0.1, 0.9), (0.03, 0.5), (0.007, 0.0))  # (lr, momentum)
ADAM_GROUPS = ((0.001, 0.9), (0.0003, 0.8))  # (lr, beta1)


def _metrics(kind: str) -> np.ndarray:
    """A scripted validation metric per step, float32-exact."""
    rng = np.random.default_rng(20_26)
    t = np.arange(STEPS)
    if kind == "loss":  # falls, with plateaus and noise
        curve = np.exp(-t / 300) + 0.02 * rng.standard_normal(STEPS)
        curve[200:320] = curve[200]  # a long plateau
        curve[600:] = np.maximum(curve[600:], curve[600])  # no improvement after 600
    else:  # "accuracy": rises and saturates
        curve = 1 - np.exp(-t / 150) + 0.01 * rng.standard_normal(STEPS)
        curve[500:] = np.minimum(curve[500:], 0.9)
    return curve.astype(np.float32)


# Lambdas written once for both torch (a Python int epoch) and jsgd (a traced
# int32 epoch).
def inverse(epoch):
    return 1 / (1 + 0.01 * epoch)


def staircase(epoch):
    return epoch // 30


def power95(epoch):
    return 0.95**epoch


def constant999(epoch):
    return 0.999 + 0 * epoch


def constant95(epoch):
    return 0.95  # a Python number: jsgd multiplies by its double value


def wobble(epoch):
    return 1 - 0.0001 * (epoch % 7)


def halve_per_cycle(x):
    return 1 / (2.0 ** (x - 1))


def slow_decay(x):
    return 1 / (1 + 0.001 * x)


# (id, spec, optimizer, metrics, rtol). A spec is (class name, kwargs); the
# kwargs "schedulers" of a composite hold specs.
CASES = [
    # LambdaLR
    ("LambdaLR/inverse", ("LambdaLR", {"lr_lambda": inverse}), "sgd", None, RTOL),
    (
        "LambdaLR/list",
        ("LambdaLR", {"lr_lambda": [staircase, power95, inverse]}),
        "sgd",
        None,
        FLOAT32_LAMBDA_RTOL,
    ),
    # MultiplicativeLR
    (
        "MultiplicativeLR/0.999",
        ("MultiplicativeLR", {"lr_lambda": constant999}),
        "sgd",
        None,
        FLOAT32_LAMBDA_RTOL,
    ),
    (
        "MultiplicativeLR/python_constant",
        ("MultiplicativeLR", {"lr_lambda": constant95}),
        "sgd",
        None,
        RECURSIVE_RTOL,
    ),
    (
        "MultiplicativeLR/list",
        ("MultiplicativeLR", {"lr_lambda": [wobble, constant999, wobble]}),
        "sgd",
        None,
        FLOAT32_LAMBDA_RTOL,
    ),
    # StepLR
    (
        "StepLR/step_size=3,gamma=0.5",
        ("StepLR", {"step_size": 3, "gamma": 0.5}),
        "sgd",
        None,
        RTOL,
    ),
    ("StepLR/step_size=30", ("StepLR", {"step_size": 30}), "sgd", None, RTOL),
    (
        "StepLR/step_size=1,gamma=0.99",
        ("StepLR", {"step_size": 1, "gamma": 0.99}),
        "sgd",
        None,
        RTOL,
    ),
    # MultiStepLR
    (
        "MultiStepLR/0,10,10,500",
        ("MultiStepLR", {"milestones": [0, 10, 10, 500], "gamma": 0.5}),
        "sgd",
        None,
        RTOL,
    ),
    ("MultiStepLR/30,80", ("MultiStepLR", {"milestones": [30, 80]}), "sgd", None, RTOL),
    (
        "MultiStepLR/unsorted",
        ("MultiStepLR", {"milestones": [300, 100, 100], "gamma": 0.7}),
        "sgd",
        None,
        RTOL,
    ),
    # ConstantLR
    ("ConstantLR/default", ("ConstantLR", {}), "sgd", None, RTOL),
    (
        "ConstantLR/factor=0.5,total_iters=40",
        ("ConstantLR", {"factor": 0.5, "total_iters": 40}),
        "sgd",
        None,
        RTOL,
    ),
    (
        "ConstantLR/total_iters=0",
        ("ConstantLR", {"factor": 0.3, "total_iters": 0}),
        "sgd",
        None,
        RTOL,
    ),
    (
        "ConstantLR/factor=1",
        ("ConstantLR", {"factor": 1.0, "total_iters": 3}),
        "sgd",
        None,
        RTOL,
    ),
    # LinearLR
    ("LinearLR/default", ("LinearLR", {}), "sgd", None, RTOL),
    (
        "LinearLR/start=0.05,total=40",
        ("LinearLR", {"start_factor": 0.05, "total_iters": 40}),
        "sgd",
        None,
        RTOL,
    ),
    (
        "LinearLR/decay_to_0",
        ("LinearLR", {"start_factor": 1.0, "end_factor": 0.0, "total_iters": 1000}),
        "sgd",
        None,
        RTOL,
    ),
    (
        "LinearLR/0.5_to_0.25",
        ("LinearLR", {"start_factor": 0.5, "end_factor": 0.25, "total_iters": 100}),
        "sgd",
        None,
        RTOL,
    ),
    (
        "LinearLR/total_iters=0",
        ("LinearLR", {"start_factor": 0.5, "total_iters": 0}),
        "sgd",
        None,
        RTOL,
    ),
    # ExponentialLR
    ("ExponentialLR/0.95", ("ExponentialLR", {"gamma": 0.95}), "sgd", None, RTOL),
    ("ExponentialLR/0.999", ("ExponentialLR", {"gamma": 0.999}), "sgd", None, RTOL),
    ("ExponentialLR/1.001", ("ExponentialLR", {"gamma": 1.001}), "sgd", None, RTOL),
    ("ExponentialLR/0.5", ("ExponentialLR", {"gamma": 0.5}), "sgd", None, RTOL),
    # PolynomialLR
    ("PolynomialLR/default", ("PolynomialLR", {}), "sgd", None, RTOL),
    (
        "PolynomialLR/500,0.9",
        ("PolynomialLR", {"total_iters": 500, "power": 0.9}),
        "sgd",
        None,
        RTOL,
    ),
    (
        "PolynomialLR/1000,2",
        ("PolynomialLR", {"total_iters": 1000, "power": 2.0}),
        "sgd",
        None,
        RTOL,
    ),
    (
        "PolynomialLR/power=0",
        ("PolynomialLR", {"total_iters": 10, "power": 0.0}),
        "sgd",
        None,
        RTOL,
    ),
    (
        "PolynomialLR/total_iters=0",
        ("PolynomialLR", {"total_iters": 0}),
        "sgd",
        None,
        RTOL,
    ),
    # CosineAnnealingLR
    (
        "CosineAnnealingLR/T_max=100",
        ("CosineAnnealingLR", {"T_max": 100}),
        "sgd",
        None,
        RTOL,
    ),
    (
        "CosineAnnealingLR/T_max=1000",
        ("CosineAnnealingLR", {"T_max": 1000}),
        "sgd",
        None,
        RTOL,
    ),
    (
        "CosineAnnealingLR/T_max=7,eta_min=0.001",
        ("CosineAnnealingLR", {"T_max": 7, "eta_min": 0.001}),
        "sgd",
        None,
        RTOL,
    ),
    (
        "CosineAnnealingLR/T_max=1",
        ("CosineAnnealingLR", {"T_max": 1}),
        "sgd",
        None,
        RTOL,
    ),
    (
        "CosineAnnealingLR/T_max=300,eta_min=1e-4",
        ("CosineAnnealingLR", {"T_max": 300, "eta_min": 1e-4}),
        "sgd",
        None,
        RTOL,
    ),
    # CosineAnnealingWarmRestarts
    (
        "CosineAnnealingWarmRestarts/T_0=10",
        ("CosineAnnealingWarmRestarts", {"T_0": 10}),
        "sgd",
        None,
        RTOL,
    ),
    (
        "CosineAnnealingWarmRestarts/T_0=10,T_mult=2",
        ("CosineAnnealingWarmRestarts", {"T_0": 10, "T_mult": 2}),
        "sgd",
        None,
        RTOL,
    ),
    (
        "CosineAnnealingWarmRestarts/T_0=3,T_mult=3,eta_min=1e-3",
        ("CosineAnnealingWarmRestarts", {"T_0": 3, "T_mult": 3, "eta_min": 1e-3}),
        "sgd",
        None,
        RTOL,
    ),
    (
        "CosineAnnealingWarmRestarts/T_0=1",
        ("CosineAnnealingWarmRestarts", {"T_0": 1}),
        "sgd",
        None,
        RTOL,
    ),
    # CyclicLR
    (
        "CyclicLR/triangular",
        ("CyclicLR", {"base_lr": 0.001, "max_lr": 0.1, "step_size_up": 50}),
        "sgd",
        None,
        RTOL,
    ),
    (
        "CyclicLR/triangular2",
        (
            "CyclicLR",
            {
                "base_lr": 0.001,
                "max_lr": 0.1,
                "step_size_up": 20,
                "step_size_down": 30,
                "mode": "triangular2",
            },
        ),
        "sgd",
        None,
        RTOL,
    ),
    (
        "CyclicLR/exp_range",
        (
            "CyclicLR",
            {
                "base_lr": [0.001, 0.002, 0.0001],
                "max_lr": [0.1, 0.05, 0.01],
                "step_size_up": 25,
                "mode": "exp_range",
                "gamma": 0.995,
            },
        ),
        "sgd",
        None,
        RTOL,
    ),
    (
        "CyclicLR/scale_fn_cycle",
        (
            "CyclicLR",
            {
                "base_lr": 0.01,
                "max_lr": 0.1,
                "step_size_up": 10,
                "step_size_down": 5,
                "scale_fn": halve_per_cycle,
            },
        ),
        "sgd",
        None,
        RTOL,
    ),
    (
        "CyclicLR/scale_fn_iterations",
        (
            "CyclicLR",
            {
                "base_lr": 0.01,
                "max_lr": 0.1,
                "step_size_up": 40,
                "scale_fn": slow_decay,
                "scale_mode": "iterations",
                "base_momentum": [0.7, 0.8, 0.85],
                "max_momentum": [0.95, 0.9, 0.9],
            },
        ),
        "sgd",
        None,
        RTOL,
    ),
    (
        "CyclicLR/no_momentum",
        (
            "CyclicLR",
            {
                "base_lr": 0.01,
                "max_lr": 0.1,
                "step_size_up": 33,
                "cycle_momentum": False,
            },
        ),
        "sgd",
        None,
        RTOL,
    ),
    (
        "CyclicLR/adam_beta1",
        (
            "CyclicLR",
            {
                "base_lr": 0.0001,
                "max_lr": 0.001,
                "step_size_up": 100,
                "base_momentum": 0.85,
                "max_momentum": 0.95,
            },
        ),
        "adam",
        None,
        RTOL,
    ),
    (
        "CyclicLR/fractional_steps",
        (
            "CyclicLR",
            {
                "base_lr": 0.01,
                "max_lr": 0.1,
                "step_size_up": 12.5,
                "step_size_down": 7.5,
            },
        ),
        "sgd",
        None,
        RTOL,
    ),
    # OneCycleLR
    (
        "OneCycleLR/default",
        ("OneCycleLR", {"max_lr": 0.1, "total_steps": 1000}),
        "sgd",
        None,
        RTOL,
    ),
    (
        "OneCycleLR/linear",
        (
            "OneCycleLR",
            {
                "max_lr": [0.1, 0.05, 0.2],
                "total_steps": 1000,
                "anneal_strategy": "linear",
            },
        ),
        "sgd",
        None,
        RTOL,
    ),
    (
        "OneCycleLR/three_phase",
        (
            "OneCycleLR",
            {
                "max_lr": 0.1,
                "total_steps": 1000,
                "three_phase": True,
                "pct_start": 0.25,
            },
        ),
        "sgd",
        None,
        RTOL,
    ),
    (
        "OneCycleLR/three_phase_linear",
        (
            "OneCycleLR",
            {
                "max_lr": 0.1,
                "epochs": 10,
                "steps_per_epoch": 100,
                "three_phase": True,
                "anneal_strategy": "linear",
            },
        ),
        "sgd",
        None,
        RTOL,
    ),
    (
        "OneCycleLR/adam_beta1",
        (
            "OneCycleLR",
            {
                "max_lr": 0.003,
                "total_steps": 1000,
                "pct_start": 0.3333,
                "div_factor": 10.0,
                "final_div_factor": 100.0,
            },
        ),
        "adam",
        None,
        RTOL,
    ),
    (
        "OneCycleLR/no_momentum,momentum_lists",
        ("OneCycleLR", {"max_lr": 0.1, "total_steps": 1200, "cycle_momentum": False}),
        "sgd",
        None,
        RTOL,
    ),
    (
        "OneCycleLR/momentum_lists",
        (
            "OneCycleLR",
            {
                "max_lr": 0.1,
                "total_steps": 1000,
                "base_momentum": [0.8, 0.85, 0.7],
                "max_momentum": [0.9, 0.95, 0.99],
            },
        ),
        "sgd",
        None,
        RTOL,
    ),
    # SequentialLR
    (
        "SequentialLR/linear_warmup_cosine",
        (
            "SequentialLR",
            {
                "schedulers": [
                    ("LinearLR", {"start_factor": 0.01, "total_iters": 5}),
                    ("CosineAnnealingLR", {"T_max": 995}),
                ],
                "milestones": [5],
            },
        ),
        "sgd",
        None,
        RTOL,
    ),
    (
        "SequentialLR/three",
        (
            "SequentialLR",
            {
                "schedulers": [
                    ("ConstantLR", {"factor": 0.1, "total_iters": 20}),
                    ("ExponentialLR", {"gamma": 0.99}),
                    ("StepLR", {"step_size": 50, "gamma": 0.5}),
                ],
                "milestones": [20, 400],
            },
        ),
        "sgd",
        None,
        RTOL,
    ),
    (
        "SequentialLR/milestone_0",
        (
            "SequentialLR",
            {
                "schedulers": [
                    ("ExponentialLR", {"gamma": 0.9}),
                    ("StepLR", {"step_size": 10}),
                ],
                "milestones": [0],
            },
        ),
        "sgd",
        None,
        RTOL,
    ),
    (
        "SequentialLR/repeated_milestones",
        (
            "SequentialLR",
            {
                "schedulers": [
                    ("LinearLR", {"start_factor": 0.1, "total_iters": 10}),
                    ("ConstantLR", {"factor": 0.5}),
                    ("ExponentialLR", {"gamma": 0.995}),
                ],
                "milestones": [10, 10],
            },
        ),
        "sgd",
        None,
        RTOL,
    ),
    (
        "SequentialLR/multiplicative_then_cyclic",
        (
            "SequentialLR",
            {
                "schedulers": [
                    ("ExponentialLR", {"gamma": 0.99}),
                    ("MultiplicativeLR", {"lr_lambda": constant999}),
                    (
                        "CyclicLR",
                        {"base_lr": 0.001, "max_lr": 0.01, "step_size_up": 50},
                    ),
                ],
                "milestones": [100, 300],
            },
        ),
        "sgd",
        None,
        RECURSIVE_RTOL,
    ),
    (
        "SequentialLR/warmup_onecycle",
        (
            "SequentialLR",
            {
                "schedulers": [
                    ("LinearLR", {"start_factor": 0.1, "total_iters": 10}),
                    ("OneCycleLR", {"max_lr": 0.1, "total_steps": 990}),
                ],
                "milestones": [10],
            },
        ),
        "sgd",
        None,
        RTOL,
    ),
    (
        "SequentialLR/warm_restarts_poly",
        (
            "SequentialLR",
            {
                "schedulers": [
                    ("CosineAnnealingWarmRestarts", {"T_0": 30, "T_mult": 2}),
                    ("PolynomialLR", {"total_iters": 300, "power": 0.9}),
                    ("MultiStepLR", {"milestones": [0, 50, 50]}),
                ],
                "milestones": [210, 700],
            },
        ),
        "sgd",
        None,
        RTOL,
    ),
    (
        "SequentialLR/cyclic_first",
        (
            "SequentialLR",
            {
                "schedulers": [
                    (
                        "CyclicLR",
                        {"base_lr": 0.001, "max_lr": 0.01, "step_size_up": 25},
                    ),
                    ("ExponentialLR", {"gamma": 0.99}),
                ],
                "milestones": [500],
            },
        ),
        "sgd",
        None,
        RTOL,
    ),
    (
        "SequentialLR/two_onecycles",
        (
            "SequentialLR",
            {
                "schedulers": [
                    ("OneCycleLR", {"max_lr": 0.1, "total_steps": 400}),
                    (
                        "OneCycleLR",
                        {"max_lr": 0.05, "total_steps": 600, "base_momentum": 0.8},
                    ),
                ],
                "milestones": [400],
            },
        ),
        "adam",
        None,
        RTOL,
    ),
    # ChainedScheduler
    (
        "ChainedScheduler/exponential_step",
        (
            "ChainedScheduler",
            {
                "schedulers": [
                    ("ExponentialLR", {"gamma": 0.995}),
                    ("StepLR", {"step_size": 100, "gamma": 0.5}),
                ]
            },
        ),
        "sgd",
        None,
        RECURSIVE_RTOL,
    ),
    (
        "ChainedScheduler/constant_exponential",
        (
            "ChainedScheduler",
            {
                "schedulers": [
                    ("ConstantLR", {"factor": 0.1, "total_iters": 20}),
                    ("ExponentialLR", {"gamma": 0.99}),
                ]
            },
        ),
        "sgd",
        None,
        RECURSIVE_RTOL,
    ),
    (
        "ChainedScheduler/linear_cosine",
        (
            "ChainedScheduler",
            {
                "schedulers": [
                    ("LinearLR", {"start_factor": 0.2, "total_iters": 50}),
                    ("CosineAnnealingLR", {"T_max": 100, "eta_min": 1e-4}),
                ]
            },
        ),
        "sgd",
        None,
        RECURSIVE_RTOL,
    ),
    (
        "ChainedScheduler/polynomial_multistep_lambda",
        (
            "ChainedScheduler",
            {
                "schedulers": [
                    ("PolynomialLR", {"total_iters": 800, "power": 0.5}),
                    ("MultiStepLR", {"milestones": [0, 100, 100]}),
                    ("ConstantLR", {}),
                ]
            },
        ),
        "sgd",
        None,
        RECURSIVE_RTOL,
    ),
    (
        "ChainedScheduler/sequential_child",
        (
            "ChainedScheduler",
            {
                "schedulers": [
                    (
                        "SequentialLR",
                        {
                            "schedulers": [
                                ("LinearLR", {"total_iters": 10}),
                                ("ExponentialLR", {"gamma": 0.998}),
                            ],
                            "milestones": [10],
                        },
                    ),
                    ("StepLR", {"step_size": 200, "gamma": 0.5}),
                ]
            },
        ),
        "sgd",
        None,
        RECURSIVE_RTOL,
    ),
    (
        "ChainedScheduler/cyclic_momentum",
        (
            "ChainedScheduler",
            {
                "schedulers": [
                    (
                        "CyclicLR",
                        {"base_lr": 0.001, "max_lr": 0.01, "step_size_up": 40},
                    ),
                    ("ExponentialLR", {"gamma": 0.999}),
                ]
            },
        ),
        "sgd",
        None,
        RECURSIVE_RTOL,
    ),
    (
        "ChainedScheduler/warm_restarts_multiplicative",
        (
            "ChainedScheduler",
            {
                "schedulers": [
                    ("CosineAnnealingWarmRestarts", {"T_0": 50, "T_mult": 2}),
                    ("MultiplicativeLR", {"lr_lambda": constant999}),
                ]
            },
        ),
        "sgd",
        None,
        RECURSIVE_RTOL,
    ),
    (
        "ChainedScheduler/two_onecycles",
        (
            "ChainedScheduler",
            {
                "schedulers": [
                    ("OneCycleLR", {"max_lr": 0.1, "total_steps": 1000}),
                    (
                        "OneCycleLR",
                        {
                            "max_lr": 0.05,
                            "total_steps": 1000,
                            "cycle_momentum": False,
                            "three_phase": True,
                        },
                    ),
                ]
            },
        ),
        "sgd",
        None,
        RTOL,
    ),
    # ReduceLROnPlateau
    ("ReduceLROnPlateau/default", ("ReduceLROnPlateau", {}), "sgd", "loss", RTOL),
    (
        "ReduceLROnPlateau/max,abs",
        (
            "ReduceLROnPlateau",
            {
                "mode": "max",
                "threshold_mode": "abs",
                "threshold": 0.001,
                "patience": 5,
                "factor": 0.5,
            },
        ),
        "sgd",
        "accuracy",
        RTOL,
    ),
    (
        "ReduceLROnPlateau/cooldown,min_lr_list",
        (
            "ReduceLROnPlateau",
            {"patience": 3, "cooldown": 5, "factor": 0.5, "min_lr": [0.01, 1e-3, 1e-5]},
        ),
        "sgd",
        "loss",
        RTOL,
    ),
    (
        "ReduceLROnPlateau/max,rel,patience=0",
        (
            "ReduceLROnPlateau",
            {"mode": "max", "patience": 0, "factor": 0.7, "threshold": 0.01},
        ),
        "sgd",
        "accuracy",
        RTOL,
    ),
    (
        "ReduceLROnPlateau/min,abs,eps",
        (
            "ReduceLROnPlateau",
            {
                "threshold_mode": "abs",
                "threshold": 0.005,
                "patience": 2,
                "factor": 0.5,
                "eps": 1e-4,
            },
        ),
        "sgd",
        "loss",
        RTOL,
    ),
]

CASE_IDS = [case[0] for case in CASES]


def _name(case_id: str) -> str:
    return case_id.split("/")[0]


def _features(i: int):
    case_id, _, optimizer, _, _ = CASES[i]
    yield _name(case_id)
    yield optimizer


DEFAULT = covering_sample(len(CASES), _features, default=20, salt=7)
PARAMS = [
    pytest.param(*case, id=case[0], marks=() if i in DEFAULT else oracle)
    for i, case in enumerate(CASES)
]


# ------------------------------------------------------------------ runners


def _groups(optimizer: str):
    return SGD_GROUPS if optimizer == "sgd" else ADAM_GROUPS


def _initial(optimizer: str) -> dict[str, list[float]]:
    groups = _groups(optimizer)
    key = "momentum" if optimizer == "sgd" else "beta1"
    return {"lr": [g[0] for g in groups], key: [g[1] for g in groups]}


def _build_torch(spec, optimizer):
    torch = _golden.torch
    name, kwargs = spec
    kwargs = dict(kwargs)
    if "schedulers" in kwargs:
        kwargs["schedulers"] = [
            _build_torch(s, optimizer) for s in kwargs["schedulers"]
        ]
    cls = getattr(torch.optim.lr_scheduler, name)
    if name == "ChainedScheduler":
        return cls(kwargs["schedulers"], optimizer=optimizer)
    return cls(optimizer, **kwargs)


def _build_jsgd(spec):
    name, kwargs = spec
    kwargs = dict(kwargs)
    if "schedulers" in kwargs:
        kwargs["schedulers"] = [_build_jsgd(s) for s in kwargs["schedulers"]]
    return getattr(js, name)(**kwargs)


def run_torch(spec, optimizer: str, steps: int = STEPS, metrics=None):
    """torch's values of every group after its constructor and each step."""
    torch = _golden.torch
    groups = _groups(optimizer)
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in groups]
    if optimizer == "sgd":
        opt = torch.optim.SGD(
            [
                {"params": [p], "lr": lr, "momentum": m}
                for p, (lr, m) in zip(params, groups, strict=True)
            ]
        )
        key = "momentum"
    else:
        opt = torch.optim.Adam(
            [
                {"params": [p], "lr": lr, "betas": (b, 0.999)}
                for p, (lr, b) in zip(params, groups, strict=True)
            ]
        )
        key = "beta1"

    def read():
        lr = [float(g["lr"]) for g in opt.param_groups]
        if key == "momentum":
            other = [float(g["momentum"]) for g in opt.param_groups]
        else:
            other = [float(g["betas"][0]) for g in opt.param_groups]
        return lr, other

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sched = _build_torch(spec, opt)
        rows = [read()]
        for k in range(steps):
            opt.step()
            if metrics is None:
                sched.step()
            else:
                sched.step(float(metrics[k]))
            rows.append(read())
    return {
        "lr": np.array([r[0] for r in rows], np.float64),
        key: np.array([r[1] for r in rows], np.float64),
    }


def run_jsgd(spec, optimizer: str, steps: int = STEPS, metrics=None):
    return js.trajectory(_build_jsgd(spec), _initial(optimizer), steps, metrics)


def _relative_error(ours: np.ndarray, theirs: np.ndarray) -> float:
    big = np.abs(theirs) > 1e-30
    if not big.any():
        return 0.0
    return float(np.max(np.abs(ours[big] - theirs[big]) / np.abs(theirs[big])))


# -------------------------------------------------------------------- oracle


@pytest.mark.parametrize(("case_id", "spec", "optimizer", "metrics", "rtol"), PARAMS)
def test_matches_torch(case_id, spec, optimizer, metrics, rtol):
    # The metrics come from the golden file too: the same numbers torch saw,
    # whatever NumPy's random streams become.
    values = None
    if metrics is not None:
        values = golden(f"metrics/{metrics}", lambda: _metrics(metrics))
    expected = golden(case_id, lambda: run_torch(spec, optimizer, STEPS, values))
    ours = run_jsgd(spec, optimizer, STEPS, values)
    assert set(ours) == set(expected)
    for key in expected:
        np.testing.assert_allclose(
            ours[key], expected[key], rtol=rtol, atol=ATOL, err_msg=f"{case_id}: {key}"
        )


def test_sample_covers_every_scheduler():
    names = {_name(CASES[i][0]) for i in DEFAULT}
    assert names == set(js.__all__) - {"LRScheduler", "SchedulerState", "trajectory"}
    assert {CASES[i][2] for i in DEFAULT} == {"sgd", "adam"}


# --------------------------------------------------------------- properties


@pytest.mark.parametrize(
    "sched",
    [
        js.SequentialLR(
            [
                js.LinearLR(0.1, total_iters=2),
                js.CosineAnnealingLR(T_max=3, eta_min=1e-3),
            ],
            milestones=[2],
        ),
        js.OneCycleLR([0.1, 0.2, 0.3], total_steps=6, three_phase=True),
        js.ReduceLROnPlateau(patience=0, factor=0.5),
    ],
    ids=["SequentialLR", "OneCycleLR", "ReduceLROnPlateau"],
)
def test_jit_equals_eager(sched):
    initial = _initial("sgd")
    eager = sched.init(initial)
    jitted = jax.jit(sched.init)(initial)
    step = jax.jit(sched.step)
    metric = 1.0 if isinstance(sched, js.ReduceLROnPlateau) else None
    # Under jit XLA may fuse core.times' x * hi + x * lo into one fused
    # multiply-add: at most an ulp apart (float32's ulp is 1.2e-7 relative).
    for _ in range(6):
        for key in initial:
            np.testing.assert_allclose(
                eager.values[key], jitted.values[key], rtol=2.4e-7
            )
        assert int(eager.last_epoch) == int(jitted.last_epoch)
        eager, jitted = sched.step(eager, metric), step(jitted, metric)


def test_one_compile_for_a_whole_trajectory():
    traces = []

    class Counting(js.ExponentialLR):
        def step(self, state, value=None):
            traces.append(1)
            return super().step(state, value)

    out = js.trajectory(Counting(gamma=0.9), {"lr": [1.0]}, 200)
    assert out["lr"].shape == (201, 1)
    assert len(traces) == 1

    sched = js.CosineAnnealingWarmRestarts(T_0=5, T_mult=2)
    step = jax.jit(sched.step)
    state = sched.init({"lr": [0.1]})
    for _ in range(40):
        state = step(state)
    assert step._cache_size() == 1  # no recompilation as last_epoch changes


def test_hyperparameters():
    sgd = frozenset({"lr", "momentum"})
    adam = frozenset({"lr", "beta1"})
    plain = frozenset({"lr"})
    assert js.StepLR(3).hyperparameters(sgd) == plain
    assert js.ReduceLROnPlateau().hyperparameters(sgd) == plain
    cyclic = js.CyclicLR(0.01, 0.1)
    assert cyclic.hyperparameters(sgd) == sgd
    assert cyclic.hyperparameters(adam) == adam
    assert js.CyclicLR(0.01, 0.1, cycle_momentum=False).hyperparameters(plain) == plain
    one = js.OneCycleLR(0.1, total_steps=10)
    assert one.hyperparameters(adam) == adam
    assert js.SequentialLR([js.StepLR(3), one], [5]).hyperparameters(sgd) == sgd
    assert (
        js.ChainedScheduler([js.StepLR(3), js.ExponentialLR(0.9)]).hyperparameters(sgd)
        == plain
    )


def test_cycle_momentum_needs_momentum_or_beta1():
    message = (
        "optimizer must support momentum or beta1 with `cycle_momentum` option enabled"
    )
    for sched in (js.CyclicLR(0.01, 0.1), js.OneCycleLR(0.1, total_steps=10)):
        with pytest.raises(ValueError, match=re.escape(message)):
            sched.hyperparameters(frozenset({"lr"}))
        with pytest.raises(ValueError, match=re.escape(message)):
            sched.init({"lr": [0.1]})
    if _golden.LIVE:
        torch = _golden.torch
        opt = torch.optim.Adagrad([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
        with pytest.raises(ValueError, match=re.escape(message)):
            torch.optim.lr_scheduler.CyclicLR(opt, 0.01, 0.1)


def test_untouched_keys_pass_through():
    sched = js.OneCycleLR(0.1, total_steps=10)
    initial = {"lr": [0.1, 0.2], "momentum": [0.9, 0.8], "weight_decay": [1e-4, 0.0]}
    out = js.trajectory(sched, initial, 10)
    np.testing.assert_array_equal(
        out["weight_decay"], np.tile([1e-4, 0.0], (11, 1)).astype(np.float32)
    )
    state = js.StepLR(2).init(initial)
    assert set(state.values) == set(initial)
    np.testing.assert_array_equal(state.values["momentum"], np.float32([0.9, 0.8]))


def test_last_epoch_saturates():
    sched = js.StepLR(step_size=7, gamma=0.5)
    state = sched.init({"lr": [1.0]})
    top = np.iinfo(np.int32).max
    state = state._replace(last_epoch=jnp.int32(top))
    after = jax.jit(sched.step)(state)
    assert int(after.last_epoch) == top
    assert after.last_epoch.dtype == jnp.int32
    warm = js.CosineAnnealingWarmRestarts(T_0=2**30, T_mult=4)
    s = warm.init({"lr": [1.0]})
    _, t_i = s.extra
    s = s._replace(extra=(t_i - 1, t_i))
    s = warm.step(s)
    assert int(s.extra[1]) == top  # T_i * T_mult saturates


def test_one_cycle_past_total_steps():
    sched = js.OneCycleLR(0.1, total_steps=5)
    message = "Tried to step 6 times. The specified number of total steps is 5"
    with pytest.raises(ValueError, match=message):
        js.trajectory(sched, {"lr": [0.1], "momentum": [0.9]}, 6)
    state = sched.init({"lr": [0.1], "momentum": [0.9]})
    for _ in range(6):
        state = sched.step(state)
    assert np.isnan(state.values["lr"]).all()  # torch raises; jit cannot


def test_plateau_needs_the_metric():
    sched = js.ReduceLROnPlateau()
    state = sched.init({"lr": [0.1]})
    with pytest.raises(TypeError, match="needs the metric"):
        sched.step(state)
    with pytest.raises(TypeError, match="takes no metric"):
        js.StepLR(3).step(js.StepLR(3).init({"lr": [0.1]}), 0.5)
    state = jax.jit(sched.step)(state, jnp.float32(1.0))
    assert float(state.extra["best"]) == 1.0


# ----------------------------------------------------------- error messages

# (constructor, torch's call, the message): torch's wording, checked against
# torch itself when it is installed.
ERRORS = [
    (
        lambda: js.ConstantLR(factor=1.5),
        lambda S, o: S.ConstantLR(o, factor=1.5),
        "Constant multiplicative factor expected to be between 0 and 1.",
    ),
    (
        lambda: js.LinearLR(start_factor=0),
        lambda S, o: S.LinearLR(o, start_factor=0),
        "Starting multiplicative factor expected to be greater than 0 and less or equal to 1.",
    ),
    (
        lambda: js.LinearLR(end_factor=1.5),
        lambda S, o: S.LinearLR(o, end_factor=1.5),
        "Ending multiplicative factor expected to be between 0 and 1.",
    ),
    (
        lambda: js.CosineAnnealingWarmRestarts(T_0=0),
        lambda S, o: S.CosineAnnealingWarmRestarts(o, T_0=0),
        "Expected positive integer T_0, but got 0",
    ),
    (
        lambda: js.CosineAnnealingWarmRestarts(T_0=2, T_mult=0),
        lambda S, o: S.CosineAnnealingWarmRestarts(o, T_0=2, T_mult=0),
        "Expected integer T_mult >= 1, but got 0",
    ),
    (
        lambda: js.CosineAnnealingWarmRestarts(T_0=2, eta_min="0"),
        lambda S, o: S.CosineAnnealingWarmRestarts(o, T_0=2, eta_min="0"),
        "Expected float or int eta_min, but got 0 of type <class 'str'>",
    ),
    (
        lambda: js.CyclicLR(0.1, 0.2, mode="square"),
        lambda S, o: S.CyclicLR(o, 0.1, 0.2, mode="square"),
        "mode is invalid and scale_fn is None",
    ),
    (
        lambda: js.OneCycleLR(0.1, total_steps=0),
        lambda S, o: S.OneCycleLR(o, 0.1, total_steps=0),
        "Expected positive integer total_steps, but got 0",
    ),
    (
        lambda: js.OneCycleLR(0.1),
        lambda S, o: S.OneCycleLR(o, 0.1),
        "You must define either total_steps OR (epochs AND steps_per_epoch)",
    ),
    (
        lambda: js.OneCycleLR(0.1, epochs=0, steps_per_epoch=3),
        lambda S, o: S.OneCycleLR(o, 0.1, epochs=0, steps_per_epoch=3),
        "Expected positive integer epochs, but got 0",
    ),
    (
        lambda: js.OneCycleLR(0.1, epochs=2, steps_per_epoch=-1),
        lambda S, o: S.OneCycleLR(o, 0.1, epochs=2, steps_per_epoch=-1),
        "Expected positive integer steps_per_epoch, but got -1",
    ),
    (
        lambda: js.OneCycleLR(0.1, total_steps=10, pct_start=1.5),
        lambda S, o: S.OneCycleLR(o, 0.1, total_steps=10, pct_start=1.5),
        "Expected float between 0 and 1 pct_start, but got 1.5",
    ),
    (
        lambda: js.OneCycleLR(0.1, total_steps=10, pct_start=1),
        lambda S, o: S.OneCycleLR(o, 0.1, total_steps=10, pct_start=1),
        "Expected float between 0 and 1 pct_start, but got 1",
    ),
    (
        lambda: js.OneCycleLR(0.1, total_steps=10, anneal_strategy="exp"),
        lambda S, o: S.OneCycleLR(o, 0.1, total_steps=10, anneal_strategy="exp"),
        "anneal_strategy must be one of 'cos' or 'linear', instead got exp",
    ),
    (
        lambda: js.ReduceLROnPlateau(factor=1.0),
        lambda S, o: S.ReduceLROnPlateau(o, factor=1.0),
        "Factor should be < 1.0.",
    ),
    (
        lambda: js.ReduceLROnPlateau(mode="max2"),
        lambda S, o: S.ReduceLROnPlateau(o, mode="max2"),
        "mode max2 is unknown!",
    ),
    (
        lambda: js.ReduceLROnPlateau(threshold_mode="ab"),
        lambda S, o: S.ReduceLROnPlateau(o, threshold_mode="ab"),
        "threshold mode ab is unknown!",
    ),
    (
        lambda: js.SequentialLR([], []),
        lambda S, o: S.SequentialLR(o, [], []),
        "SequentialLR expects at least one scheduler, but got no scheduler.",
    ),
    (
        lambda: js.SequentialLR([js.StepLR(2), js.StepLR(3)], []),
        lambda S, o: S.SequentialLR(o, [S.StepLR(o, 2), S.StepLR(o, 3)], []),
        "Sequential Schedulers expects number of schedulers provided to be one more than the number of milestone points, but got number of schedulers 2 and the number of milestones to be equal to 0",
    ),
    (
        lambda: js.SequentialLR([js.StepLR(2), js.ReduceLROnPlateau()], [3]),
        lambda S, o: S.SequentialLR(o, [S.StepLR(o, 2), S.ReduceLROnPlateau(o)], [3]),
        "SequentialLR does not support `ReduceLROnPlateau` scheduler as it requires additional kwargs to be specified when calling `step`, but got one at index 1 in the given schedulers sequence.",
    ),
    (
        lambda: js.ChainedScheduler([]),
        lambda S, o: S.ChainedScheduler([], optimizer=o),
        "ChainedScheduler expects at least one scheduler to be chained, but got no scheduler.",
    ),
    (
        lambda: js.ChainedScheduler([js.ReduceLROnPlateau()]),
        lambda S, o: S.ChainedScheduler([S.ReduceLROnPlateau(o)], optimizer=o),
        "ChainedScheduler does not support `ReduceLROnPlateau` scheduler as it requires additional kwargs to be specified when calling `step`, but got one at index 0 in the given schedulers sequence.",
    ),
]

# Per-group lists, checked in init (torch: in the constructor, against the
# optimizer's groups): two groups here.
INIT_ERRORS = [
    (
        lambda: js.LambdaLR([inverse] * 3),
        lambda S, o: S.LambdaLR(o, [inverse] * 3),
        "Expected 2 lr_lambdas, but got 3",
    ),
    (
        lambda: js.MultiplicativeLR([constant999]),
        lambda S, o: S.MultiplicativeLR(o, [constant999]),
        "Expected 2 lr_lambdas, but got 1",
    ),
    (
        lambda: js.CyclicLR([0.1] * 3, 0.2),
        lambda S, o: S.CyclicLR(o, [0.1] * 3, 0.2),
        "base_lr must have the same length as optimizer.param_groups. base_lr has 3 values, param_groups has 2.",
    ),
    (
        lambda: js.CyclicLR(0.1, [0.2]),
        lambda S, o: S.CyclicLR(o, 0.1, [0.2]),
        "max_lr must have the same length as optimizer.param_groups. max_lr has 1 values, param_groups has 2.",
    ),
    (
        lambda: js.CyclicLR(0.1, 0.2, base_momentum=[0.8] * 3),
        lambda S, o: S.CyclicLR(o, 0.1, 0.2, base_momentum=[0.8] * 3),
        "base_momentum must have the same length as optimizer.param_groups. base_momentum has 3 values, param_groups has 2.",
    ),
    (
        lambda: js.OneCycleLR([0.1] * 3, total_steps=5),
        lambda S, o: S.OneCycleLR(o, [0.1] * 3, total_steps=5),
        "max_lr must have the same length as optimizer.param_groups. max_lr has 3 values, param_groups has 2.",
    ),
    (
        lambda: js.OneCycleLR(0.1, total_steps=5, max_momentum=[0.9]),
        lambda S, o: S.OneCycleLR(o, 0.1, total_steps=5, max_momentum=[0.9]),
        "max_momentum must have the same length as optimizer.param_groups. max_momentum has 1 values, param_groups has 2.",
    ),
    (
        lambda: js.ReduceLROnPlateau(min_lr=[0.1] * 3),
        lambda S, o: S.ReduceLROnPlateau(o, min_lr=[0.1] * 3),
        "expected 2 min_lrs, got 3",
    ),
]


def _torch_two_groups():
    torch = _golden.torch
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in range(2)]
    return torch.optim.SGD([{"params": [p]} for p in params], lr=0.1, momentum=0.9)


@pytest.mark.parametrize(("ours", "theirs", "message"), ERRORS, ids=range(len(ERRORS)))
def test_constructor_errors(ours, theirs, message):
    with pytest.raises(ValueError, match=re.escape(message) + "$"):
        ours()
    if _golden.LIVE:
        with pytest.raises(ValueError, match=re.escape(message) + "$"):
            theirs(_golden.torch.optim.lr_scheduler, _torch_two_groups())


@pytest.mark.parametrize(
    ("ours", "theirs", "message"), INIT_ERRORS, ids=range(len(INIT_ERRORS))
)
def test_per_group_length_errors(ours, theirs, message):
    sched = ours()
    with pytest.raises(ValueError, match=re.escape(message) + "$"):
        sched.init({"lr": [0.1, 0.2], "momentum": [0.9, 0.9]})
    if _golden.LIVE:
        with pytest.raises(ValueError, match=re.escape(message) + "$"):
            theirs(_golden.torch.optim.lr_scheduler, _torch_two_groups())


def test_multiplicative_lambda_must_be_callable():
    with pytest.raises(
        TypeError, match="lr_lambda should be a function, but got float"
    ):
        js.MultiplicativeLR(0.5)  # type: ignore[arg-type]


def test_jsgd_only_checks():
    """Arguments torch accepts but cannot run (ZeroDivisionError, or children
    started without a restart) are refused at construction."""
    with pytest.raises(
        ValueError, match="Expected positive integer step_size, but got 0"
    ):
        js.StepLR(0)
    with pytest.raises(ValueError, match="Expected positive integer T_max, but got 0"):
        js.CosineAnnealingLR(0)
    with pytest.raises(ValueError, match="Expected positive step_size_up"):
        js.CyclicLR(0.1, 0.2, step_size_up=0)
    with pytest.raises(ValueError, match="non-decreasing milestones"):
        js.SequentialLR([js.StepLR(2), js.StepLR(3), js.StepLR(4)], [5, 3])
    with pytest.raises(ValueError, match="does not take a ChainedScheduler"):
        js.SequentialLR([js.StepLR(2), js.ChainedScheduler([js.StepLR(3)])], [5])
    with pytest.raises(
        TypeError, match=re.escape("at index 0 should be a jsgd.torch.lr_scheduler")
    ):
        js.ChainedScheduler([object()])  # type: ignore[list-item]
