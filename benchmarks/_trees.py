"""Parameter-tree shapes for the optimizer-step benchmark.

Each tree is a flat ``dict`` from a dotted name to a shape; only the leaf shapes
matter to an optimizer step (the number of leaves and their sizes), so nesting
is left out. The ResNet-50 and GPT-2-small trees have the real models' leaf
shapes (trainable parameters only: no BatchNorm running statistics, no
attention masks).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

Shapes = dict[str, tuple[int, ...]]


def flat(n: int) -> Shapes:
    """One float32 vector of ``n`` elements."""
    return {"w": (n,)}


def resnet50(num_classes: int = 1000) -> Shapes:
    """The torchvision ResNet-50: 161 leaves, 25,557,032 parameters.

    Conv kernels are HWIO (as flax stores them); each BatchNorm has a scale
    and a bias; the head is a 2048x1000 kernel and a bias.
    """
    shapes: Shapes = {}

    def conv_bn(name: str, k: int, cin: int, cout: int) -> None:
        shapes[f"{name}.conv.kernel"] = (k, k, cin, cout)
        shapes[f"{name}.bn.scale"] = (cout,)
        shapes[f"{name}.bn.bias"] = (cout,)

    conv_bn("stem", 7, 3, 64)
    cin = 64
    for stage, (blocks, width) in enumerate(
        zip((3, 4, 6, 3), (64, 128, 256, 512), strict=True), start=1
    ):
        for block in range(blocks):
            name = f"layer{stage}.{block}"
            conv_bn(f"{name}.a", 1, cin, width)
            conv_bn(f"{name}.b", 3, width, width)
            conv_bn(f"{name}.c", 1, width, 4 * width)
            if block == 0:
                conv_bn(f"{name}.downsample", 1, cin, 4 * width)
            cin = 4 * width
    shapes["fc.kernel"] = (cin, num_classes)
    shapes["fc.bias"] = (num_classes,)
    return shapes


def gpt2_small(
    vocab: int = 50257, context: int = 1024, width: int = 768, layers: int = 12
) -> Shapes:
    """Hugging Face's GPT-2 small: 148 leaves, 124,439,808 parameters."""
    shapes: Shapes = {"wte": (vocab, width), "wpe": (context, width)}
    for i in range(layers):
        h = f"h.{i:02d}"
        shapes[f"{h}.ln_1.g"] = (width,)
        shapes[f"{h}.ln_1.b"] = (width,)
        shapes[f"{h}.attn.c_attn.w"] = (width, 3 * width)
        shapes[f"{h}.attn.c_attn.b"] = (3 * width,)
        shapes[f"{h}.attn.c_proj.w"] = (width, width)
        shapes[f"{h}.attn.c_proj.b"] = (width,)
        shapes[f"{h}.ln_2.g"] = (width,)
        shapes[f"{h}.ln_2.b"] = (width,)
        shapes[f"{h}.mlp.c_fc.w"] = (width, 4 * width)
        shapes[f"{h}.mlp.c_fc.b"] = (4 * width,)
        shapes[f"{h}.mlp.c_proj.w"] = (4 * width, width)
        shapes[f"{h}.mlp.c_proj.b"] = (width,)
    shapes["ln_f.g"] = (width,)
    shapes["ln_f.b"] = (width,)
    return shapes


def many_leaves(leaves: int = 3000, size: int = 3500) -> Shapes:
    """``leaves`` vectors of ``size`` elements (10.5M parameters by default)."""
    return {f"p{i:05d}": (size,) for i in range(leaves)}


def mixed_small() -> Shapes:
    """A tiny tree with a scalar, vectors, matrices and a conv kernel.

    Used by the correctness gate and the smoke test: every kind of leaf shape
    the big trees have, in a few thousand elements.
    """
    return {
        "scalar": (),
        "bias": (7,),
        "kernel": (3, 3, 4, 5),
        "dense": (33, 17),
        "embed": (50, 8),
        "ln.g": (8,),
    }


TREES: dict[str, Callable[[], Shapes]] = {
    "flat-1M": lambda: flat(1_000_000),
    "flat-10M": lambda: flat(10_000_000),
    "flat-100M": lambda: flat(100_000_000),
    "resnet50": resnet50,
    "gpt2-small": gpt2_small,
    "3000x3500": many_leaves,
}
QUICK_TREES = ("flat-1M", "flat-10M", "3000x3500")


def size(shapes: Shapes) -> int:
    """Number of parameters."""
    return sum(math.prod(s) for s in shapes.values())


def random_leaves(
    shapes: Shapes, seed: int, scale: float = 1.0
) -> dict[str, np.ndarray]:
    """float32 normal leaves (one buffer, split), deterministic in ``seed``."""
    rng = np.random.default_rng(seed)
    buffer = rng.standard_normal(size(shapes), dtype=np.float32)
    if scale != 1.0:
        buffer *= np.float32(scale)
    out, start = {}, 0
    for name, shape in shapes.items():
        n = math.prod(shape)
        out[name] = buffer[start : start + n].reshape(shape)
        start += n
    return out
