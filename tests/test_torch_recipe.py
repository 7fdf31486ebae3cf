"""examples/torch_recipe.py against the same recipe run in torch.

torchvision's classification recipe (SGD with momentum, norm layers without
weight decay, LinearLR warm-up then CosineAnnealingLR through SequentialLR
stepped per epoch, clip_grad_norm_, a resume from state dicts) trained for
10 epochs of 20 steps in torch and in jsgd.torch from the same initial
parameters and data: each side computes its own gradients, so the two agree
to float32 tolerance (the gradients' rounding differs by an ulp or so) over
all 200 steps, across the resume. torch's trajectory comes from the golden
file when torch is not installed (tests/_golden.py).
"""

from __future__ import annotations

import pathlib
import sys

import numpy as np

from tests import _golden

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "examples"))
import torch_recipe

golden = _golden.Golden(__name__)
EPOCHS, WARMUP, LR, BATCH, RESUME = 10, 2, 0.2, 32, 5
KEPT = list(range(9, 200, 10))  # every 10th step is compared (and stored)


def torch_trajectory() -> dict[str, np.ndarray]:
    torch = _golden.torch
    nn = torch.nn
    inputs, labels = torch_recipe.make_data()
    init = torch_recipe.init_params()

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(torch_recipe.INPUTS, torch_recipe.HIDDEN)
            self.norm = nn.LayerNorm(torch_recipe.HIDDEN, eps=1e-5)
            self.fc2 = nn.Linear(torch_recipe.HIDDEN, torch_recipe.CLASSES)

        def forward(self, x):
            return self.fc2(torch.relu(self.norm(self.fc1(x))))

    model = MLP()
    with torch.no_grad():
        for name, p in model.named_parameters():
            layer, key = name.split(".")
            p.copy_(torch.tensor(init[layer][key]))

    def set_weight_decay(model):  # torchvision's, for this model
        norm = [p for n, p in model.named_parameters() if n.startswith("norm.")]
        other = [p for n, p in model.named_parameters() if not n.startswith("norm.")]
        return [
            {"params": other, "weight_decay": 1e-4},
            {"params": norm, "weight_decay": 0.0},
        ]

    def make():
        opt = torch.optim.SGD(
            set_weight_decay(model), lr=LR, momentum=0.9, weight_decay=1e-4
        )
        warmup = torch.optim.lr_scheduler.LinearLR(
            opt, start_factor=0.01, total_iters=WARMUP
        )
        main = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=EPOCHS - WARMUP)
        sched = torch.optim.lr_scheduler.SequentialLR(
            opt, [warmup, main], milestones=[WARMUP]
        )
        return opt, sched

    opt, sched = make()
    criterion = nn.CrossEntropyLoss(label_smoothing=0.1)
    x_all, y_all = torch.tensor(inputs), torch.tensor(labels)
    steps = []
    for epoch in range(EPOCHS):
        if epoch == RESUME:
            checkpoint = {"optimizer": opt.state_dict(), "lr": sched.state_dict()}
            opt, sched = make()
            opt.load_state_dict(checkpoint["optimizer"])
            sched.load_state_dict(checkpoint["lr"])
        for batch in torch_recipe.batches(len(inputs), BATCH, epoch):
            opt.zero_grad()
            loss = criterion(model(x_all[batch]), y_all[batch])
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            params = {}
            for name, p in model.named_parameters():
                layer, key = name.split(".")
                params.setdefault(layer, {})[key] = p.detach().numpy().copy()
            steps.append(params)
        sched.step()
    assert len(steps) == 200
    return {f"step{i}": steps[i] for i in KEPT}


def test_the_recipe_follows_torch_for_200_steps_across_a_resume():
    expected = golden("sgd-sequential-clip-resume", torch_trajectory)
    ours = torch_recipe.train(
        epochs=EPOCHS, warmup_epochs=WARMUP, lr=LR, batch_size=BATCH, resume_at=RESUME
    )
    assert len(ours) == 200
    worst = 0.0
    for i in KEPT:
        for layer, leaves in expected[f"step{i}"].items():
            for key, value in leaves.items():
                got = ours[i][layer][key]
                scale = float(np.max(np.abs(value))) + 1e-3
                worst = max(worst, float(np.max(np.abs(got - value))) / scale)
    print(f"worst relative difference over 200 steps: {worst:.2e}")
    assert worst < 5e-6, worst  # measured: 5.0e-7
