#!/usr/bin/env bash
# The GPU checks behind docs/benchmarks.md's and docs/sparse.md's GPU sections.
# Run from the repository root on a CUDA machine whose Python has jax[cuda],
# optax, numpy, pytest, pytest-xdist, hypothesis and matplotlib (jsgd is taken
# from this checkout): bash benchmarks/gpu_check.sh [OUT_DIR]
set -uo pipefail
out="${1:-out/gpu}"
mkdir -p "$out"
export PYTHONPATH="$PWD" PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
python=${PYTHON:-python3}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/tests.txt"
$python -c "import jax, optax; print('jax', jax.__version__, 'optax', optax.__version__, jax.devices())" \
  | tee -a "$out/tests.txt"

# Correctness on the GPU: the sparse rules, optax parity, clipping and the
# hand tables.
timeout 170 $python -m pytest -q -p no:cacheprovider -n 8 \
  tests/test_sparse.py tests/test_optax_parity.py tests/test_clipping.py \
  tests/test_tables.py 2>&1 | tail -15 | tee -a "$out/tests.txt"

# Sparse rows vs a dense step (100k, 1M, 4M rows).
timeout 120 $python benchmarks/sparse.py --out "$out" 2>&1 | tee "$out/sparse.txt"

# The device's copy bandwidth (read 4 B, write 4 B per element of 1 GiB), the
# reference of the GPU target (GPT-2 small's momentum step, 20 B a parameter,
# at >= 80% of it: compare run.py's jsgd-packed GB/s below).
timeout 60 $python - <<'PY' 2>&1 | tee "$out/copy.txt"
import time, jax, jax.numpy as jnp
x = jnp.zeros(1 << 28, jnp.float32)
f = jax.jit(lambda x: x + 1, donate_argnums=0)
for _ in range(3):
    x = f(x)
x.block_until_ready()
times = []
for _ in range(20):
    t = time.perf_counter(); x = f(x); x.block_until_ready(); times.append(time.perf_counter() - t)
best = sorted(times)[len(times) // 2]
print(f"device copy bandwidth: {8 * x.size / best / 1e9:.0f} GB/s (median of 20, 1 GiB)")
PY

# Dense step: jsgd vs optax, and jsgd.apply_gradients on the tree and on
# jsgd.pack of it (torch runs on the CPU in this harness: left out).
timeout 240 $python benchmarks/run.py --no-torch --repeats 30 \
  --trees flat-10M flat-100M gpt2-small --out "$out" 2>&1 | tee "$out/run.txt"
