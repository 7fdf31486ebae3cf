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

# Dense step: jsgd vs optax (torch runs on the CPU in this harness: left out).
timeout 240 $python benchmarks/run.py --no-torch --repeats 30 \
  --trees flat-10M flat-100M gpt2-small --out "$out" 2>&1 | tee "$out/run.txt"
